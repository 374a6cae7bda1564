"""``serve``'s supervisor (issue 17, findings 1 and 10): a killed worker is replaced, its process group (its
Ray agents, some of which ignore SIGTERM) reaped, its job released at once; stopping leaves no process."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from autodistiller.serve import Supervisor
from bench.serving import live_processes
from store import create_job, jobs, make_engine, session_factory, upgrade
from store.settings import Settings

REPO = Path(__file__).resolve().parents[2]
# A stand-in worker: starts a child that ignores SIGTERM (as two Ray agents do) and waits.
FAKE_WORKER = """
import signal, subprocess, sys, time
child = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
subprocess.Popen([sys.executable, "-c", child])
time.sleep(600)
"""


def _wait(cond, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def _group(pgid: int) -> set[int]:
    """Live (not zombie) processes of the process group ``pgid``, from /proc."""
    return set(live_processes(2, pgid))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(s.database_url)
    return s


def test_a_killed_worker_is_replaced_reaped_and_its_job_released(settings: Settings) -> None:
    db = session_factory(make_engine(settings.database_url))
    job = create_job(db, dataset={"source": "x"}, teacher={"path": "y"}, budget={"trials": 2})
    sup = Supervisor(1, settings, cmd=[sys.executable, "-c", FAKE_WORKER], min_uptime_s=0).start()
    try:
        worker_id, proc = sup.procs[0]
        assert jobs.claim_job(db, worker_id, 30.0).id == job.id
        jobs.set_state(db, job.id, "searching", worker_id=worker_id)
        assert _wait(lambda: len(_group(proc.pid)) == 2)
        assert jobs.claim_job(db, "other", 30.0) is None  # a live worker's job is not claimable
        os.kill(proc.pid, signal.SIGKILL)  # the worker only: its child is orphaned
        assert _wait(lambda: sup.restarts == 1), "the dead worker was not replaced"
        assert _wait(lambda: not _group(proc.pid), 5), "the dead worker's processes outlived it"
        new_id, new_proc = sup.procs[0]
        assert new_id != worker_id and new_proc.poll() is None
        resumed = jobs.claim_job(db, "other", 30.0)  # at once, not after the 30 s stale limit
        assert resumed is not None and resumed.id == job.id and resumed.state == "searching"
    finally:
        t0 = time.monotonic()
        groups = [proc.pid for _, proc in sup.procs]
        sup.stop(grace_s=2.0)
        assert time.monotonic() - t0 < 10
    assert _wait(lambda: not any(_group(g) for g in groups), 5), "processes survived stop()"
    db.kw["bind"].dispose()


def test_workers_end_with_a_killed_serve(tmp_path: Path) -> None:
    """``serve`` killed with SIGKILL (no chance to stop anything): its workers and their groups still end."""
    import socket
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "AUTODISTILLER_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO),
           "AUTODISTILLER_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}  # fmt: skip
    cmd = [sys.executable, "-m", "autodistiller.cli", "serve", "--port", str(port)]
    serve = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait(lambda: _workers_of(serve.pid), 60), "serve started no worker"
        (worker,) = _workers_of(serve.pid)
        time.sleep(8)  # the worker has imported its modules and installed its handlers
    finally:
        serve.kill()
        serve.wait()
    assert _wait(lambda: not _group(worker), 15), "the worker outlived serve"


def _workers_of(pid: int) -> list[int]:
    out = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid and b"worker" in (proc / "cmdline").read_bytes():
                out.append(int(proc.name))
        except (OSError, ValueError):
            continue
    return out
