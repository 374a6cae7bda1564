"""A job with unlabeled transfer text, end to end through a worker (real Ray, Optuna, SQLite): the text is
loaded with the dataset, the teacher labels it once, and both references train (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from distill.pipeline import StudentArch
from distill.tables import DataError
from search.tune import ensure_ray
from store import jobs, results, trials
from store.settings import Settings
from store.spec import DatasetRef, JobBudget, JobSpec, TeacherRef, TransferRef
from workers.stages import load_job_task
from workers.worker import Worker

pytestmark = pytest.mark.slow
TINY = [StudentArch(layers=1, hidden=32, heads=2, ffn=64)]


def _transfer_file(tmp_path: Path, n: int = 40) -> Path:
    path = tmp_path / "pool.jsonl"
    texts = [
        f"an {w} film, {i} minutes long" for i, w in enumerate(["odd", "fine", "dull", "warm"] * (n // 4))
    ]
    pd.DataFrame({"review": texts}).to_json(path, orient="records", lines=True)
    return path


def test_the_transfer_text_is_loaded_with_the_dataset(tmp_path: Path) -> None:
    ref = TransferRef(source=str(_transfer_file(tmp_path)), text_column="review")
    spec = JobSpec(
        dataset=DatasetRef(source="rotten_tomatoes", max_train=50, max_val=20),
        teacher=TeacherRef(base="minilm"), transfer=ref,
    )  # fmt: skip
    task = load_job_task(spec)
    assert len(task.transfer) == 40 and {e.label for e in task.transfer} == {-1}
    paired = spec.model_copy(update={"transfer": ref.model_copy(update={"text_pair_column": "review"})})
    with pytest.raises(DataError, match="sentence pairs exactly when the dataset is"):
        load_job_task(paired)


def test_a_job_with_transfer_text_trains(tmp_path: Path, tiny_teacher) -> None:
    ensure_ray(num_cpus=2)
    spec = JobSpec(
        dataset=DatasetRef(source="rotten_tomatoes", max_train=120, max_val=60),
        teacher=TeacherRef(path=str(tiny_teacher)),
        transfer=TransferRef(source=str(_transfer_file(tmp_path)), text_column="review"),
        budget=JobBudget(trials=2, space="small", max_length=32, candidates=TINY, warm_start_k=0),
    )
    worker = Worker(Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}"))
    job = jobs.create_job(worker.db, **spec.model_dump(mode="json"))
    assert job.extras["transfer"]["text_column"] == "review"
    assert worker.run(once=True) == 1
    job = jobs.get_job(worker.db, job.id)
    assert job.state == "finished", job.error
    done = trials.finished_trials(worker.db, job.id)
    assert [t.status for t in done] == ["completed"] * 2, [t.error for t in done]
    profile = results.get_profile(worker.db, "dataset", job_id=job.id).data
    assert profile["transfer"] == 40 and profile["train"] == 120
