"""A cancel reaches the worker within a second, not at its next heartbeat (issue 17, finding 6)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from pg import pg_server  # noqa: F401  (session fixture)

from store import jobs
from store.settings import Settings
from workers.worker import Worker


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}" if request.param == "sqlite" else None
    return Settings(
        home=tmp_path / "home", database_url=url or request.getfixturevalue("pg_server").create_database()
    )


def test_cancel_aborts_within_a_second(settings: Settings) -> None:
    worker = Worker(settings, heartbeat_s=5.0, stale_after_s=30.0)
    job = jobs.create_job(worker.db, dataset={"source": "x"}, teacher={"path": "y"}, budget={"trials": 2})
    claimed = jobs.claim_job(worker.db, worker.worker_id, 30.0)
    assert claimed is not None and claimed.id == job.id
    jobs.set_state(worker.db, job.id, "searching", worker_id=worker.worker_id)
    abort = threading.Event()
    beat = threading.Thread(target=worker._heartbeat, args=(job.id, abort), daemon=True)
    beat.start()
    time.sleep(1.2)
    assert not abort.is_set(), "a job still held must not be aborted"
    assert jobs.cancel_job(worker.db, job.id)
    t0 = time.monotonic()
    assert abort.wait(2.0), "the cancel was not noticed"
    assert time.monotonic() - t0 < 1.0
    beat.join(timeout=2)
    assert not beat.is_alive()
    worker.db.kw["bind"].dispose()
