"""The trial database on real SQLite and PostgreSQL: migrations, claiming under races, trials, leaderboard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import warnings
from collections import Counter
from datetime import UTC, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from pg import pg_server  # noqa: F401  (session fixture)
from sqlalchemy.orm import Session, sessionmaker

import store as db
from store import Job, Trial
from store.session import VERSION_TABLE

REPO = Path(__file__).resolve().parents[2]
TABLES = {
    "api_keys",
    "datasets",
    "teachers",
    "jobs",
    "job_trials",
    "profiles",
    "artifacts",
    "recommendations",
    "recommender_models",
}
HEAD = "0006"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'trials.db'}"
    return request.getfixturevalue("pg_server").create_database()


@pytest.fixture
def sf(url: str):
    """A session factory on a migrated database."""
    db.upgrade(url)
    engine = db.make_engine(url)
    yield db.session_factory(engine)
    engine.dispose()


def _tables(url: str) -> set[str]:
    engine = db.make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _job(sf: sessionmaker[Session], **budget: object) -> Job:
    return db.create_job(sf, dataset={"name": "rotten_tomatoes"}, teacher={"path": "t"}, budget=budget)


def _age_heartbeat(sf: sessionmaker[Session], job_id: str, seconds: float) -> None:
    with sf.begin() as s:
        s.execute(
            sa.update(Job)
            .where(Job.id == job_id)
            .values(heartbeat_at=db.utcnow() - timedelta(seconds=seconds))
        )


# ------------------------------------------------------------------------------------------- migrations


def test_migrations_up_down_up_and_models_match(url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    db.upgrade(url)
    assert _tables(url) == TABLES | {VERSION_TABLE}
    assert db.current_revision(url) == HEAD
    engine = db.make_engine(url)
    with engine.connect() as conn, warnings.catch_warnings():  # models and migration: the same schema
        warnings.simplefilter("ignore")  # SQLite cannot reflect the expression index; PostgreSQL compares it
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE}),
            db.Base.metadata,
        )
    engine.dispose()
    assert diff == []
    db.downgrade(url)
    assert _tables(url) <= {VERSION_TABLE}
    assert db.current_revision(url) is None
    db.upgrade(url)
    assert _tables(url) == TABLES | {VERSION_TABLE}


def test_concurrent_upgrades_of_an_empty_database(url: str) -> None:
    errors: list[BaseException] = []

    def go() -> None:
        try:
            db.upgrade(url)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=go) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert db.current_revision(url) == HEAD


def test_alembic_cli_reads_the_settings_url(tmp_path: Path) -> None:
    path = tmp_path / "cli.db"
    env = {**os.environ, "AUTODISTILLER_DATABASE_URL": f"sqlite:///{path}"}
    subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=REPO, env=env, check=True)
    assert _tables(f"sqlite:///{path}") == TABLES | {VERSION_TABLE}


def test_engine_urls_and_sqlite_pragmas(tmp_path: Path) -> None:
    assert db.normalize_url("postgresql://u:p%40ss@h/d").drivername == "postgresql+psycopg"
    assert db.normalize_url("postgres://u@h/d").drivername == "postgresql+psycopg"
    engine = db.make_engine(f"sqlite:///{tmp_path / 'new' / 'folder' / 'x.db'}")  # folder created
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    engine.dispose()


# ------------------------------------------------------------------------------------------------- jobs


def test_create_and_claim(sf: sessionmaker[Session]) -> None:
    first = _job(sf, trials=8, max_params=10_000)
    second = _job(sf)
    assert first.state == "queued" and first.trials_budget == 8 and first.budget["max_params"] == 10_000
    assert first.created_at.tzinfo is not None and first.study_name

    again = db.create_job(sf, dataset={}, teacher={}, idempotency_key="k")
    assert db.create_job(sf, dataset={"x": 1}, teacher={}, idempotency_key="k").id == again.id
    other = db.create_job(sf, dataset={}, teacher={}, idempotency_key="k", owner="key-1")
    assert other.id != again.id
    assert db.create_job(sf, dataset={}, teacher={}, idempotency_key="k", owner="key-1").id == other.id
    assert [j.id for j in db.list_jobs(sf, owner="key-1")] == [other.id]

    job = db.claim_job(sf, "w1", heartbeat_timeout_s=60)
    assert job is not None and job.id == first.id  # oldest first
    assert (job.state, job.worker_id, job.attempts) == ("profiling", "w1", 1)
    assert job.heartbeat_at is not None and job.heartbeat_at.tzinfo == UTC and job.started_at is not None
    assert db.claim_job(sf, "w2", 60).id == second.id
    assert db.heartbeat(sf, first.id, "w1") and not db.heartbeat(sf, first.id, "w2")


def _claim_until_none(
    sf: sessionmaker[Session], worker: str, out: list[str], barrier: threading.Barrier
) -> None:
    barrier.wait()
    while (job := db.claim_job(sf, worker, 60)) is not None:
        out.append(job.id)


def test_racing_threads_claim_each_job_once(sf: sessionmaker[Session]) -> None:
    ids = {_job(sf).id for _ in range(6)}
    got: dict[str, list[str]] = {f"w{i}": [] for i in range(3)}
    barrier = threading.Barrier(3)
    threads = [threading.Thread(target=_claim_until_none, args=(sf, w, got[w], barrier)) for w in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [i for lst in got.values() for i in lst]
    assert Counter(claimed) == Counter(ids)  # every job exactly once
    assert {j.worker_id for j in db.list_jobs(sf)} <= set(got)


CLAIMER = """
import json, sys, time
from pathlib import Path
from store import claim_job, make_engine, session_factory
url, worker, go = sys.argv[1:4]
sf = session_factory(make_engine(url))
print("ready", flush=True)
while not Path(go).exists():
    time.sleep(0.002)
got = []
while (job := claim_job(sf, worker, 60)) is not None:
    got.append(job.id)
    time.sleep(0.01)
print(json.dumps(got), flush=True)
"""


def test_racing_processes_claim_each_job_once(url: str, sf: sessionmaker[Session], tmp_path: Path) -> None:
    ids = {_job(sf).id for _ in range(6)}
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, url, f"p{i}", str(go)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()
    claimed = []
    for p in procs:
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0
        claimed += json.loads(out)
    assert Counter(claimed) == Counter(ids)


def test_stale_heartbeat_makes_a_job_claimable_again(sf: sessionmaker[Session]) -> None:
    job = _job(sf)
    assert db.claim_job(sf, "a", 60).id == job.id
    assert db.set_state(sf, job.id, "searching", progress_text="trial 1/8", worker_id="a")
    assert db.claim_job(sf, "b", 60) is None  # fresh heartbeat
    _age_heartbeat(sf, job.id, 30)
    assert db.claim_job(sf, "b", 60) is None  # 30 s old: still alive for a 60 s timeout
    _age_heartbeat(sf, job.id, 120)
    taken = db.claim_job(sf, "b", 60)
    assert taken is not None and (taken.id, taken.worker_id, taken.attempts) == (job.id, "b", 2)
    assert taken.state == "searching"  # resumed where it was
    assert not db.heartbeat(sf, job.id, "a")  # a must stop
    assert not db.set_state(sf, job.id, "finished", worker_id="a")
    assert db.heartbeat(sf, job.id, "b")

    _age_heartbeat(sf, job.id, 120)  # b dies too; two attempts is all we allow here
    assert db.claim_job(sf, "c", 60, max_attempts=2) is None
    lost = db.get_job(sf, job.id)
    assert lost.state == "failed" and "lost 2 times" in lost.error and lost.finished_at is not None


def test_states_and_cancel(sf: sessionmaker[Session]) -> None:
    job = _job(sf)
    assert db.cancel_job(sf, job.id)
    assert db.claim_job(sf, "w", 60) is None  # a cancelled job is never claimed
    assert not db.cancel_job(sf, job.id) and not db.cancel_job(sf, "nope")

    job = _job(sf)
    db.claim_job(sf, "w", 60)
    trial = db.start_trial(sf, job.id, 0, {"p": 0})
    assert db.cancel_job(sf, job.id)
    assert not db.heartbeat(sf, job.id, "w")
    assert not db.set_state(sf, job.id, "finished")  # terminal states stick
    got = db.get_job(sf, job.id)
    assert got.state == "cancelled" and got.finished_at >= got.started_at
    assert db.finished_trials(sf, job.id)[0].error == "job cancelled"
    # a result that arrives after the cancel is real and kept (test_cancel_race.py); only once
    assert db.finish_trial(sf, trial.id, "completed", accuracy=0.9).status == "completed"
    with pytest.raises(db.TrialStateError):
        db.finish_trial(sf, trial.id, "completed", accuracy=0.9)
    with pytest.raises(ValueError, match="unknown job state"):
        db.set_state(sf, job.id, "done")


# ----------------------------------------------------------------------------------------------- trials


def test_trials_update_progress_and_rerun_replaces_running(sf: sessionmaker[Session]) -> None:
    job = _job(sf, trials=4, max_params=1000)
    ref = db.start_trial(sf, job.id, 0, {"p": 0}, is_reference="no_kd")
    db.finish_trial(
        sf, ref.id, "completed", accuracy=0.70, params=500, epochs=[{"epoch": 1, "accuracy": 0.7}]
    )
    got = db.get_job(sf, job.id)
    assert (got.trials_done, got.best_accuracy, got.best_trial_id) == (1, 0.70, ref.id)  # refs count

    big = db.start_trial(sf, job.id, 1, {"p": 1})
    db.finish_trial(sf, big.id, "completed", accuracy=0.90, params=5000)  # over max_params: not the best
    pruned = db.start_trial(sf, job.id, 2, {"p": 2})
    db.finish_trial(sf, pruned.id, "pruned", accuracy=0.95, params=100)  # pruned: not the best
    got = db.get_job(sf, job.id)
    assert (got.trials_done, got.best_accuracy, got.best_trial_id) == (3, 0.70, ref.id)

    crashed = db.start_trial(sf, job.id, 3, {"p": 3})
    db.record_epoch(sf, crashed.id, {"epoch": 1, "accuracy": 0.5})
    rerun = db.start_trial(sf, job.id, 3, {"p": 3, "seed": 1})  # its worker died: run it again
    assert rerun.id != crashed.id and rerun.epochs == []
    with pytest.raises(db.TrialStateError, match="replaced"):
        db.finish_trial(sf, crashed.id, "completed", accuracy=0.99, params=10)  # the dead worker's late write
    for epoch in (1, 2):
        db.record_epoch(sf, rerun.id, {"epoch": epoch, "accuracy": 0.7 + epoch / 100})
    done = db.finish_trial(
        sf, rerun.id, "completed", accuracy=0.80, params=900, latency_ms=3.5, wall_seconds=12
    )
    assert done.finished_at.tzinfo == UTC and done.finished_at >= done.started_at
    got = db.get_job(sf, job.id)
    assert (got.trials_done, got.best_accuracy, got.best_trial_id) == (4, 0.80, rerun.id)
    assert [e["epoch"] for e in db.leaderboard(sf, job.id, sort="number")[3].epochs] == [1, 2]

    with pytest.raises(db.TrialStateError, match="already completed"):
        db.start_trial(sf, job.id, 1, {"p": 1})  # finished trials are never repeated
    with pytest.raises(db.TrialStateError):
        db.finish_trial(sf, rerun.id, "failed")
    failed = db.start_trial(sf, job.id, 4, {"p": 4})
    db.finish_trial(sf, failed.id, "failed", error="CUDA out of memory")
    assert db.get_job(sf, job.id).trials_done == 5
    finished = db.finished_trials(sf, job.id)
    assert [t.number for t in finished] == [0, 1, 2, 3, 4] and finished[4].error == "CUDA out of memory"
    db.backfill_gain(sf, job.id)
    gains = {t.number: t.gain_over_no_kd for t in db.finished_trials(sf, job.id)}
    assert gains[0] == pytest.approx(0.0) and gains[3] == pytest.approx(0.10) and gains[4] is None


def test_leaderboard_sort_filter_pages(sf: sessionmaker[Session]) -> None:
    job = _job(sf)
    rows = [  # number: (status, accuracy, params)
        ("completed", 0.80, 300),
        ("completed", 0.90, 100),
        ("pruned", 0.60, 200),
        ("failed", None, None),
        ("completed", 0.85, 500),
        ("pruned", 0.90, 400),
        ("running", None, None),
    ]
    for n, (status, acc, params) in enumerate(rows):
        t = db.start_trial(sf, job.id, n, {"n": n})
        if status != "running":
            db.finish_trial(sf, t.id, status, accuracy=acc, params=params)

    def numbers(**kw: object) -> list[int]:
        return [t.number for t in db.leaderboard(sf, job.id, **kw)]

    assert numbers() == [1, 5, 4, 0, 2, 3, 6]  # best first, ties by number, missing last
    assert numbers(sort="accuracy") == [2, 0, 4, 1, 5, 3, 6]
    assert numbers(sort="params") == [1, 2, 0, 5, 4, 3, 6]
    assert numbers(status="completed") == [1, 4, 0]
    assert numbers(status=["completed", "pruned"], sort="-params") == [4, 5, 0, 2, 1]
    pages = [numbers(limit=3, offset=o) for o in (0, 3, 6)]
    assert pages == [[1, 5, 4], [0, 2, 3], [6]]
    assert db.count_trials(sf, job.id) == 7 and db.count_trials(sf, job.id, status="pruned") == 2
    assert db.leaderboard(sf, "other-job") == []
    with pytest.raises(ValueError, match="cannot sort"):
        db.leaderboard(sf, job.id, sort="pipeline")


def test_pipeline_json_round_trip_and_records(sf: sessionmaker[Session]) -> None:
    from distill.pipeline import IntermediateSpec, Pipeline, StudentArch

    pipe = Pipeline(
        student=StudentArch(layers=3, hidden=256, heads=8, ffn=1024),
        intermediate=IntermediateSpec(name="mi_alpha", alpha=0.5, weight=0.1),
    )
    job = _job(sf)
    assert db.start_trial(sf, job.id, 0, pipe).pipeline_key == pipe.key()
    trial = db.start_trial(sf, job.id, 0, pipe.model_dump(mode="json"))  # the same pipeline as plain JSON
    assert trial.pipeline_key == pipe.key()
    with sf() as s:  # read back through a fresh session
        stored = s.scalars(sa.select(Trial).where(Trial.job_id == job.id)).one()
        assert Pipeline.model_validate(stored.pipeline) == pipe

    db.add_recommendation(sf, job.id, Pipeline.vanilla_kd(), "predicted", score=0.7, why="prior jobs")
    db.add_recommendation(sf, job.id, pipe, "measured", score=0.8, why="best trial")
    rec = db.latest_recommendation(sf, job.id)
    assert rec.source == "measured" and Pipeline.model_validate(rec.pipeline) == pipe
    with pytest.raises(ValueError):
        db.add_recommendation(sf, job.id, pipe, "guessed")

    db.add_profile(sf, "teacher", {"accuracy": 0.88, "layers": 6}, job_id=job.id)
    assert db.get_profile(sf, "teacher", job_id=job.id).data == {"accuracy": 0.88, "layers": 6}
    assert db.get_profile(sf, "dataset", job_id=job.id) is None
    art = db.add_artifact(sf, job.id, "student", "students/abc", size=1234, trial_id=trial.id)
    assert [a.path for a in db.list_artifacts(sf, job.id, kind="student")] == [art.path] == ["students/abc"]
    for bad in ("/etc/passwd", "../outside", ""):
        with pytest.raises(ValueError, match="relative"):
            db.add_artifact(sf, job.id, "student", bad)

    with sf.begin() as s:  # foreign keys cascade (SQLite too: PRAGMA foreign_keys=ON)
        s.execute(sa.delete(Job).where(Job.id == job.id))
    assert db.leaderboard(sf, job.id) == [] and db.list_artifacts(sf, job.id) == []


def test_a_job_may_not_name_server_side_models_in_a_warm_start() -> None:
    """A warm-start pipeline naming another masked LM than the job's (which passed registration and its
    import-root check), or another number of teachers, would make the server load a path nobody checked or
    fail mid-search: the job contract refuses it."""
    from pydantic import ValidationError

    from distill.pipeline import Augmentation, Pipeline, TeacherMix
    from store.spec import DatasetRef, JobBudget, JobSpec, TeacherRef

    def spec(warm: Pipeline, **kw: object) -> JobSpec:
        return JobSpec(
            dataset=DatasetRef(source="d"), teacher=TeacherRef(path="t"), budget=JobBudget(warm_start=[warm]),
            **kw,
        )  # fmt: skip

    contextual = Pipeline(augmentation=Augmentation(ops=["contextual"], copies=1, mlm="/etc"))
    with pytest.raises(ValidationError, match="masked LM"):
        spec(contextual)
    with pytest.raises(ValidationError, match="masked LM"):
        spec(contextual, mlm="/srv/mlm")
    assert spec(contextual, mlm="/etc").mlm == "/etc"
    two = Pipeline(teachers=TeacherMix(weights=[1, 1]))
    with pytest.raises(ValidationError, match="mixes 2 teachers; the job has 1"):
        spec(two)
    assert spec(two, extra_teachers=[TeacherRef(path="t2")]).extra_teachers[0].path == "t2"
    with pytest.raises(ValidationError, match="must be fine-tuned"):
        spec(Pipeline(), extra_teachers=[TeacherRef(base="minilm")])
    assert JobBudget(warm_start=[Pipeline()]).warm_start == [Pipeline()]
