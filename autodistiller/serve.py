"""``autodistiller serve``: the API plus in-process workers against one database — nothing else to start.

The workers are child processes (``autodistiller worker``): training never competes with the API for the
GIL, a crashed worker cannot take the API down, and each dies with the server (Linux: ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys

import uvicorn

from service.app import create_app
from store import upgrade
from store.keys import ensure_local_key
from store.settings import Settings


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_workers(
    n: int, *, ray_address: str | None = None, stale_after_s: float = 30.0
) -> list[subprocess.Popen[bytes]]:
    cmd = [sys.executable, "-m", "autodistiller.cli", "worker", "--stale-after", str(stale_after_s)]
    if ray_address:
        cmd += ["--ray-address", ray_address]
    return [subprocess.Popen(cmd, preexec_fn=_die_with_parent) for _ in range(n)]


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    workers: int = 1,
    ray_address: str | None = None,
    stale_after_s: float = 30.0,
    settings: Settings,
) -> None:
    """Run the API on ``host:port`` with ``workers`` worker processes until interrupted. A job whose worker
    stopped heart-beating for ``stale_after_s`` (e.g. the server was killed) is resumed by a worker."""
    upgrade(settings.database_url)
    _, line = ensure_local_key(settings)
    print(f"AutoDistiller API on http://{host}:{port}  (docs: http://{host}:{port}/docs)", flush=True)
    print(f"database: {settings.database_url}; data folder: {settings.home}", flush=True)
    print(line, flush=True)
    procs = start_workers(workers, ray_address=ray_address, stale_after_s=stale_after_s)
    try:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
