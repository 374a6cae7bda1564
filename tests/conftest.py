"""Shared fixtures: a real (small) teacher fine-tuned once per test session from the shipped MiniLM."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Jobs of the tests learn from their own database only (fast, deterministic); the shipped meta-dataset has
# its own tests (test_recommender.py).
os.environ.setdefault("AUTODISTILLER_PRIORS", "none")


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("autodistiller-home")
    os.environ["AUTODISTILLER_HOME"] = str(path)
    return path


@pytest.fixture(scope="session")
def rt_small():
    """A stratified 800/200 subset of the real Rotten Tomatoes corpus."""
    from distill.data import load_task

    return load_task("rotten_tomatoes").subset(800, 200, seed=0)


@pytest.fixture(scope="session")
def teacher_cfg():
    from distill.finetune import FinetuneConfig

    return FinetuneConfig(epochs=2, lr=1e-4, batch_size=16, max_length=32)


@pytest.fixture(scope="session")
def teacher(home: Path, rt_small, teacher_cfg):
    """MiniLM fine-tuned for two short epochs on ``rt_small``: a real, if modest, teacher."""
    from distill.assets import minilm_dir
    from distill.finetune import finetune_teacher

    return finetune_teacher(
        minilm_dir(), rt_small, home / "teachers", teacher_cfg, progress=False, log=lambda _: None
    )


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny models: they gain nothing from two, and on a busy 2-core box
    each op waits ~7 ms for the second thread (use with ``pytestmark = pytest.mark.usefixtures(...)``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 64-wide BERT teacher with MiniLM's vocabulary, fine-tuned briefly on Rotten Tomatoes."""
    from bench.tiny import make_tiny_teacher

    return make_tiny_teacher(tmp_path_factory.mktemp("tiny-teacher"))


@pytest.fixture(scope="session")
def tiny_teacher2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another tiny teacher (another seed): the second teacher of multi-teacher jobs."""
    from bench.tiny import make_tiny_teacher

    return make_tiny_teacher(tmp_path_factory.mktemp("tiny-teacher2"), seed=1)


@pytest.fixture(scope="session")
def tiny_mlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random masked LM (MLM head included) with MiniLM's vocabulary."""
    from bench.tiny import make_tiny_mlm

    return make_tiny_mlm(tmp_path_factory.mktemp("tiny-mlm") / "mlm")


@pytest.fixture(scope="module")
def hub_offline():
    """Hub lookups fail at once instead of waiting on the network (``pytestmark = usefixtures(...)``)."""
    import datasets.config
    import huggingface_hub.constants

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        mp.setattr(datasets.config, "HF_HUB_OFFLINE", True)
        mp.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
        yield
