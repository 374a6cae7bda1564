"""A 2-trial job (real Ray, Optuna, SQLite) for teachers of families other than BERT: profile, DisWOT
student search, the references, export; the exported student reloads with Auto classes. (Every family's
whole path without Ray: tests/distill/test_families.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers

from distill.assets import minilm_dir
from distill.hf import load_tokenizer
from search.tune import ensure_ray
from store import jobs, results, trials
from store.settings import Settings
from store.spec import DatasetRef, JobBudget, JobSpec, TeacherRef
from workers.worker import Worker

pytestmark = pytest.mark.slow
LABELS = {"id2label": {0: "rotten", 1: "fresh"}, "label2id": {"rotten": 0, "fresh": 1}, "num_labels": 2}


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ensure_ray(num_cpus=2)
    yield
    ray.shutdown()


def _teacher(family: str, folder: Path) -> Path:
    tok = load_tokenizer(minilm_dir())
    common = {
        "vocab_size": tok.vocab_size, "num_hidden_layers": 2, "num_attention_heads": 2,
        "max_position_embeddings": 80, "pad_token_id": tok.pad_token_id, **LABELS,
    }  # fmt: skip
    bert = {**common, "hidden_size": 32, "intermediate_size": 64}
    if family == "roberta":
        cfg = transformers.RobertaConfig(**bert, type_vocab_size=1)
    elif family == "distilbert":
        cfg = transformers.DistilBertConfig(
            vocab_size=tok.vocab_size, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
            max_position_embeddings=80, pad_token_id=tok.pad_token_id, **LABELS,
        )  # fmt: skip
    else:  # factorised embeddings
        cfg = transformers.AlbertConfig(
            **{**common, "hidden_size": 64, "intermediate_size": 256}, embedding_size=32
        )
    torch.manual_seed(0)
    transformers.AutoModelForSequenceClassification.from_config(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("family", ["roberta", "distilbert", "albert"])
def test_a_job_with_a_teacher_of_another_family(family: str, tmp_path: Path, ray_local) -> None:
    teacher = _teacher(family, tmp_path / "teacher")
    spec = JobSpec(
        dataset=DatasetRef(source="rotten_tomatoes", max_train=60, max_val=40),
        teacher=TeacherRef(path=str(teacher)),
        budget=JobBudget(
            trials=2, space="small", max_length=32, epochs=[1], student_evaluations=6, warm_start_k=0
        ),
    )
    worker = Worker(Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}"))
    job = jobs.create_job(worker.db, **spec.model_dump(mode="json"))
    assert worker.run(once=True) == 1
    job = jobs.get_job(worker.db, job.id)
    assert job.state == "finished", job.error
    assert [t.status for t in trials.finished_trials(worker.db, job.id)] == ["completed"] * 2
    assert results.get_profile(worker.db, "teacher", job_id=job.id).data["model_type"] == family
    (student,) = results.list_artifacts(worker.db, job.id, kind="student")
    clf = transformers.pipeline(
        "text-classification", model=str(worker.settings.home / student.path), device="cpu"
    )
    assert clf("a gorgeous, witty film")[0]["label"] in ("rotten", "fresh")
