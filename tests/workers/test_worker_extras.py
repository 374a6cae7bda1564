"""A job with two teachers and a masked LM, end to end through a worker (real Ray, Optuna, SQLite): the
warm start that mixes both teachers' soft targets per example and augments with the masked LM trains and is
recorded; the space offers both to the search."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.pipeline import Augmentation, LogitLossSpec, Pipeline, StudentArch, TeacherMix, Training
from search.tune import ensure_ray
from store import jobs, trials
from store.settings import Settings
from store.spec import DatasetRef, JobBudget, JobSpec, TeacherRef
from workers.worker import Worker

pytestmark = pytest.mark.slow
TINY = [StudentArch(layers=1, hidden=32, heads=2, ffn=64)]


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ensure_ray(num_cpus=2)
    yield
    ray.shutdown()


def test_two_teachers_and_a_masked_lm(tmp_path: Path, tiny_teacher, tiny_teacher2, tiny_mlm, ray_local):
    mixed = Pipeline(
        student=TINY[0],
        loss=LogitLossSpec(name="kl", temperature=2.0),
        teachers=TeacherMix(weights=[1.0, 1.0], mode="confidence"),
        augmentation=Augmentation(ops=("contextual",), p=0.2, copies=1, mlm=str(tiny_mlm)),
        training=Training(max_length=32, epochs=2),
    )
    spec = JobSpec(
        dataset=DatasetRef(source="rotten_tomatoes", max_train=120, max_val=60),
        teacher=TeacherRef(path=str(tiny_teacher)),
        extra_teachers=[TeacherRef(path=str(tiny_teacher2))],
        mlm=str(tiny_mlm),
        budget=JobBudget(
            trials=3, space="small", max_length=32, candidates=TINY, warm_start=[mixed], warm_start_k=0
        ),
    )
    worker = Worker(Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}"))
    job = jobs.create_job(worker.db, **spec.model_dump(mode="json"))
    assert [t["path"] for t in job.extras["extra_teachers"]] == [str(tiny_teacher2)]
    assert job.extras["mlm"] == str(tiny_mlm)
    assert worker.run(once=True) == 1
    job = jobs.get_job(worker.db, job.id)
    assert job.state == "finished", job.error
    done = trials.finished_trials(worker.db, job.id)
    assert [t.status for t in done] == ["completed"] * 3, [t.error for t in done]
    warm = Pipeline.model_validate(done[2].pipeline)
    assert warm == mixed
    assert 0 <= done[2].accuracy <= 1
    # the teachers' outputs of the augmented copy and of the second teacher are cached for later trials
    cached = list(worker.settings.teacher_outputs.iterdir())
    assert len(cached) >= 3
