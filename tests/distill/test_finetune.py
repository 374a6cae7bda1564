"""Teacher fine-tuning is a function of its inputs: the new classifier head starts from the recipe's seed,
not from whatever the process's random state happens to be."""

from __future__ import annotations

from pathlib import Path

import torch

from bench.tiny import make_tiny_mlm
from distill.data import load_task
from distill.finetune import FinetuneConfig, finetune_teacher
from distill.teacher import load_teacher


def test_the_same_inputs_give_the_same_teacher_whatever_ran_before(tmp_path: Path) -> None:
    base = make_tiny_mlm(tmp_path / "base")  # an encoder without a classifier, as MiniLM is
    task = load_task("rotten_tomatoes").subset(48, 16, seed=0)
    cfg = FinetuneConfig(epochs=1, batch_size=16, max_length=16)
    weights = []
    for run, noise in ((0, 1), (1, 7)):
        torch.manual_seed(noise)  # another process's random state
        torch.rand(100)
        folder = Path(
            finetune_teacher(base, task, tmp_path / f"c{run}", cfg, progress=False, log=lambda _: None).source
        )
        weights.append(load_teacher(folder).model.state_dict())
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
