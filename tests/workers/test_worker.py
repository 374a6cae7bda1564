"""Workers end to end: real Ray, real Optuna, a real (tiny) teacher, SQLite and PostgreSQL.

A search stores every trial; a crashing trial is recorded and the job still finishes; a worker killed with
SIGKILL mid-search is replaced by a fresh one that keeps every finished trial and spends only what is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import transformers
from pg import pg_server  # noqa: F401  (session fixture)

from distill.pipeline import LogitLossSpec, Pipeline, StudentArch, Training
from search.tune import ensure_ray
from store import jobs, results, trials
from store.settings import Settings
from store.spec import DatasetRef, JobBudget, JobSpec, TeacherRef
from workers.worker import Worker

pytestmark = pytest.mark.slow

CRASH_PLUGIN = """
from distill.losses import LOSSES, LogitLoss


@LOSSES.register("crash", "always fails, like a trial that runs out of memory")
class Crash(LogitLoss):
    def forward(self, x):
        raise RuntimeError("CUDA out of memory (simulated by the crash plug-in)")
"""
TINY = [StudentArch(layers=1, hidden=32, heads=2, ffn=64), StudentArch(layers=2, hidden=32, heads=2, ffn=64)]


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user plug-in registering a loss that crashes; loaded here and, through the env, in Ray's workers."""
    import importlib.util

    path = tmp_path_factory.mktemp("plugins") / "crash.py"
    path.write_text(CRASH_PLUGIN)
    spec = importlib.util.spec_from_file_location("crash_plugin", path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    os.environ["AUTODISTILLER_PLUGINS"] = str(path)
    return path


@pytest.fixture(scope="module")
def ray_local(plugin: Path):
    import ray

    ensure_ray(num_cpus=2)
    yield
    ray.shutdown()


def _spec(teacher: Path, trials: int, **budget) -> JobSpec:
    budget = {"space": "small", "max_length": 32, "candidates": TINY, **budget}
    return JobSpec(
        dataset=DatasetRef(source="rotten_tomatoes", max_train=200, max_val=100),
        teacher=TeacherRef(path=str(teacher)),
        budget=JobBudget(trials=trials, **budget),
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    url = (
        f"sqlite:///{tmp_path / 'db.sqlite'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_server").create_database()
    )
    return Settings(home=tmp_path / "home", database_url=url)


def test_search_stores_every_trial_and_a_crash_does_not_stop_it(settings, tiny_teacher, ray_local):
    crash = Pipeline(
        student=TINY[0], loss=LogitLossSpec(name="crash"), training=Training(max_length=32, epochs=2)
    )
    worker = Worker(settings)
    # no candidates given: the DisWOT student search picks them; the default space has every loss, crash too
    spec = _spec(
        tiny_teacher, trials=5, warm_start=[crash], space="default", candidates=None, test_every=True
    )
    job = jobs.create_job(worker.db, **spec.model_dump(mode="json"))
    assert worker.run(once=True) == 1

    job = jobs.get_job(worker.db, job.id)
    assert job.state == "finished", job.error
    done = trials.finished_trials(worker.db, job.id)
    assert [t.number for t in done] == [0, 1, 2, 3, 4] and job.trials_done == 5
    assert [(t.is_reference, t.status) for t in done[:2]] == [
        ("no_kd", "completed"),
        ("vanilla_kd", "completed"),
    ]
    failed = [t for t in done if t.status == "failed"]
    assert len(failed) == 1 and "CUDA out of memory (simulated" in failed[0].error
    assert failed[0].pipeline["loss"]["name"] == "crash"
    for t in done:
        if t.status == "completed":
            assert 0 <= t.accuracy <= 1 and t.params > 0 and t.epochs and t.ratio_to_teacher > 0
            assert t.gain_over_no_kd is not None
    assert job.best_accuracy == max(t.accuracy for t in done if t.status == "completed")

    rec = results.latest_recommendation(worker.db, job.id)
    assert rec.source == "measured" and rec.score == job.best_accuracy and rec.why.startswith("best of")
    ev = results.get_profile(worker.db, "evaluation", job_id=job.id).data
    assert ev["split"]["test"] == ev["n"] > 0 and "test 0." in rec.why and "× faster" in rec.why
    assert ev["speed"]["threads"] == 1 and ev["speed"]["seq_len"] == 32
    assert {"no_kd", "vanilla_kd"} <= {r for roles in ev["kept"].values() for r in roles}
    assert set(ev["trials"]) == set(ev["kept"])  # every kept student measured on test, once
    # test_every: every completed trial's student on test too (the kept ones' scores agree), none failed
    completed = {str(t.number) for t in done if t.status == "completed"}
    assert set(ev["every_trial"]) == completed and len(completed) == 4
    for number, m in ev["trials"].items():
        assert ev["every_trial"][number]["accuracy"] == m["accuracy"] and m["n"] == ev["n"]
    probe = results.get_profile(worker.db, "lr_probe", job_id=job.id).data
    assert done[0].pipeline["training"]["lr"] == probe["lr"] == done[1].pipeline["training"]["lr"]
    kinds = {
        p.kind for p in (results.get_profile(worker.db, k, job_id=job.id) for k in ("dataset", "teacher"))
    }
    assert kinds == {"dataset", "teacher"}
    scored = results.get_profile(worker.db, "candidates", job_id=job.id).data
    assert scored["source"] == "diswot" and len(scored["candidates"]) == 50
    assert all(np.isfinite(r["diswot"]) and r["params"] > 0 for r in scored["candidates"])
    (student,) = results.list_artifacts(worker.db, job.id, kind="student")
    others = results.list_artifacts(worker.db, job.id, kind="pareto_student")
    assert len(others) == len(ev["kept"]) - 1 and all((settings.home / a.path).is_dir() for a in others)
    assert not (settings.home / "artifacts" / job.id / "trials").exists()
    clf = transformers.pipeline("text-classification", model=str(settings.home / student.path), device="cpu")
    assert clf("a gorgeous, witty film")[0]["label"] in ("rotten", "fresh")


def test_killed_worker_is_replaced_and_nothing_is_lost_or_repeated(settings, tiny_teacher, ray_local):
    db = Worker(settings).db
    spec = _spec(tiny_teacher, trials=7, objectives=["accuracy", "params"])  # NSGA-II, resumed
    job = jobs.create_job(db, **spec.model_dump(mode="json"))
    env = {**os.environ, "AUTODISTILLER_HOME": str(settings.home),
           "AUTODISTILLER_DATABASE_URL": settings.database_url}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "autodistiller.cli", "worker", "--once"],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while trials.count_trials(db, job.id, status=["completed", "pruned", "failed"]) < 3:
        assert proc.poll() is None, "the worker ended before it was killed"
        assert time.monotonic() < deadline, "the worker made no progress"
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the worker and its Ray processes, mid-search
    proc.wait()
    before = {t.number: (t.id, t.status, t.accuracy) for t in trials.finished_trials(db, job.id)}
    assert jobs.get_job(db, job.id).state == "searching"

    fresh = Worker(settings, stale_after_s=2.0)
    time.sleep(2.5)  # the dead worker's heartbeat goes stale
    assert fresh.run(once=True) == 1
    job = jobs.get_job(db, job.id)
    assert job.state == "finished", job.error
    after = trials.finished_trials(db, job.id)
    assert [t.number for t in after] == list(range(7))  # none repeated, none missing, budget respected
    assert {n: (t.id, t.status, t.accuracy) for n, t in enumerate(after) if n in before} == before
    assert job.attempts == 2
    front = results.get_profile(db, "pareto", job_id=job.id).data
    done = {t.number: (t.accuracy, -t.params) for t in after if t.status == "completed"}
    assert front["objectives"] == ["accuracy", "params"] and front["trials"]
    for n in front["trials"]:  # no completed trial dominates a member of the front
        assert not any(
            all(x >= y for x, y in zip(v, done[n], strict=True)) and v != done[n] for v in done.values()
        )
