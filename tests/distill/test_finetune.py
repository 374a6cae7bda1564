"""Teacher fine-tuning is a function of its inputs: the new classifier head starts from the recipe's seed,
not from whatever the process's random state happens to be."""

from __future__ import annotations

from pathlib import Path

import torch
import transformers

from distill.assets import minilm_dir
from distill.data import load_task
from distill.finetune import FinetuneConfig, finetune_teacher
from distill.hf import load_tokenizer
from distill.teacher import load_teacher


def _base(folder: Path) -> Path:
    """A 1-layer, 32-wide BERT encoder without a classifier (a base model, as MiniLM is)."""
    tok = load_tokenizer(minilm_dir())
    cfg = transformers.BertConfig(
        vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=32,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.BertModel(cfg).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def test_the_same_inputs_give_the_same_teacher_whatever_ran_before(tmp_path: Path) -> None:
    base = _base(tmp_path / "base")
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
