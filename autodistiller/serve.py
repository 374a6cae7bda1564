"""``autodistiller serve``: the API plus supervised workers against one database — nothing else to start.

The workers are child processes (``autodistiller worker``), each in a process group of its own with the Ray
it starts: training never competes with the API for the GIL, and a crashed worker cannot take the API down.
``Supervisor`` watches them: a worker that dies is reaped with its whole group (no orphaned Ray agents), its
job is released for an immediate resume, and a new worker takes its place. Stopping ``serve`` stops every
group (SIGTERM, then SIGKILL for what ignores it); each worker also dies with the server
(Linux: ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import uvicorn

from autodistiller.local import SUPERVISED_ENV
from service.app import create_app
from store import make_engine, session_factory, upgrade
from store.jobs import release_jobs
from store.keys import ensure_local_key
from store.settings import Settings

log = logging.getLogger("autodistiller.serve")


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class Supervisor:
    """Keeps ``n`` worker processes running; see the module's docstring."""

    def __init__(
        self, n: int, settings: Settings, *, ray_address: str | None = None, stale_after_s: float = 30.0,
        poll_s: float = 0.5, min_uptime_s: float = 10.0, cmd: list[str] | None = None,
    ) -> None:  # fmt: skip
        """``cmd``: the worker command (default ``autodistiller worker``), given ``--worker-id ID``; a worker
        that dies within ``min_uptime_s`` of its start is replaced after a pause (a crash loop)."""
        self.n, self.settings, self.poll_s, self.min_uptime_s = n, settings, poll_s, min_uptime_s
        self.cmd = cmd or [
            sys.executable,
            "-m",
            "autodistiller.cli",
            "worker",
            "--stale-after",
            str(stale_after_s),
            *(["--ray-address", ray_address] if ray_address else []),
        ]
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.restarts = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)
        self._db = session_factory(make_engine(settings.database_url)) if n else None

    def start(self) -> Supervisor:
        self.procs = [self._spawn() for _ in range(self.n)]
        if self.n:
            self._thread.start()
        return self

    def _spawn(self) -> tuple[str, subprocess.Popen[bytes]]:
        worker_id = f"{socket.gethostname()}-serve-{uuid.uuid4().hex[:8]}"
        proc = subprocess.Popen(
            [*self.cmd, "--worker-id", worker_id], preexec_fn=_die_with_parent, start_new_session=True,
            env={**os.environ, SUPERVISED_ENV: "1"},
        )  # fmt: skip
        return worker_id, proc

    def _watch(self) -> None:
        """Replace every worker that died (after a pause if it dies right after starting: a crash loop)."""
        started = {proc.pid: time.monotonic() for _, proc in self.procs}
        while not self._stop.wait(self.poll_s):
            for i, (worker_id, proc) in enumerate(list(self.procs)):
                if proc.poll() is None:
                    continue
                _signal_group(proc.pid, signal.SIGKILL)  # its Ray: raylet, GCS, agents, trial workers
                released = release_jobs(self._db, worker_id) if self._db is not None else 0
                log.warning("worker %s exited (%s); %d job(s) released; restarting", worker_id,
                            proc.returncode, released)  # fmt: skip
                if time.monotonic() - started.get(proc.pid, 0.0) < self.min_uptime_s:
                    self._stop.wait(5.0)  # it died at once: do not spin
                with self._lock:
                    if self._stop.is_set():
                        return
                    self.procs[i] = self._spawn()
                    self.restarts += 1
                    started[self.procs[i][1].pid] = time.monotonic()

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM every worker's group, then SIGKILL what is left after ``grace_s``; release their jobs."""
        with self._lock:
            self._stop.set()
        for _, proc in self.procs:
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for _, proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        while any(_group_alive(p.pid) for _, p in self.procs) and time.monotonic() < deadline:
            time.sleep(0.2)
        for worker_id, proc in self.procs:
            _signal_group(proc.pid, signal.SIGKILL)  # Ray agents that ignore SIGTERM
            proc.wait()
            if self._db is not None:
                release_jobs(self._db, worker_id)
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    workers: int = 1,
    ray_address: str | None = None,
    stale_after_s: float = 30.0,
    settings: Settings,
) -> None:
    """Run the API on ``host:port`` with ``workers`` supervised worker processes until interrupted. A job
    whose worker died is resumed at once by its replacement (finished trials kept)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    upgrade(settings.database_url)
    _, line = ensure_local_key(settings)
    print(f"AutoDistiller API on http://{host}:{port}  (docs: http://{host}:{port}/docs)", flush=True)
    print(f"database: {settings.database_url}; data folder: {settings.home}", flush=True)
    print(line, flush=True)
    sup = Supervisor(workers, settings, ray_address=ray_address, stale_after_s=stale_after_s).start()
    try:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
    finally:
        sup.stop()
        print("stopped: workers and their Ray processes ended", flush=True)
