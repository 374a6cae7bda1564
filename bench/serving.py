"""A real ``autodistiller serve`` for the drills (bench/drills.py, bench/drills_api.py): started on loopback,
its key, its processes, and what its jobs' trials were."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
TINY = [
    {"layers": 1, "hidden": 32, "heads": 2, "ffn": 64},
    {"layers": 2, "hidden": 32, "heads": 2, "ffn": 64},
]
BUDGET = {
    "trials": 5,
    "space": "small",
    "max_length": 32,
    "candidates": TINY,
    "early_stopping": False,
    "warm_start_k": 0,
}
FINISHED = ("completed", "pruned", "failed")
Row = tuple[str, str, str, bool]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Serve:
    """A running ``autodistiller serve`` on loopback, its key, and an HTTP client."""

    proc: subprocess.Popen[bytes]
    url: str
    home: Path
    env: dict[str, str]
    log: Path
    key: str = ""
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=60)

    @property
    def a(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def _start(home: Path, url: str, workers: int, port: int, roots: Path) -> Serve:
    env = {
        **os.environ,
        "AUTODISTILLER_HOME": str(home),
        "AUTODISTILLER_DATABASE_URL": url,
        "AUTODISTILLER_PRIORS": "none",
        "AUTODISTILLER_IMPORT_ROOTS": str(roots),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(REPO),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    cmd = serve_command(port, workers)
    home.mkdir(parents=True, exist_ok=True)
    log_path = home.parent / f"serve-{port}.log"
    log = log_path.open("ab")
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    srv = Serve(proc, f"http://127.0.0.1:{port}", home, env, log_path)
    for _ in range(240):
        try:
            if srv.http.get("/v1/health").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    srv.key = (home / "api-key").read_text().strip() if (home / "api-key").exists() else _new_key(url)
    return srv


def _new_key(url: str) -> str:
    """A key of its own for a serve whose database already has keys (it then makes no local key)."""
    from store import create_key, make_engine, session_factory

    engine = make_engine(url)
    try:
        return create_key(session_factory(engine), "drills")[1]
    finally:
        engine.dispose()


@contextmanager
def serving(home: Path, url: str, workers: int, roots: Path, port: int | None = None) -> Iterator[Serve]:
    srv = _start(home, url, workers, port or _free_port(), roots)
    try:
        yield srv
    finally:
        if srv.proc.poll() is None:
            srv.proc.send_signal(signal.SIGINT)
            try:
                srv.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                srv.proc.kill()
        srv.http.close()


def serve_command(port: int, workers: int, stale_after: float = 6) -> list[str]:
    """``autodistiller serve`` on ``port`` with ``workers`` worker processes, as a drill or test starts it."""
    return [
        sys.executable, "-m", "autodistiller.cli", "serve", "--port", str(port), "--workers", str(workers),
        "--stale-after", str(stale_after),
    ]  # fmt: skip


def live_processes(field: int, value: int) -> list[int]:
    """Live (not zombie) processes whose /proc stat field ``field`` (after the name: 1 = parent pid,
    2 = process group) equals ``value``."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[field]) == value and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def _children(pid: int) -> list[int]:
    return live_processes(1, pid)


def _group(pgid: int) -> list[int]:
    return live_processes(2, pgid)


def _register(srv: Serve, teacher: Path) -> tuple[str, str]:
    ds = srv.http.post(
        "/v1/datasets", json={"source": "rotten_tomatoes", "max_train": 200, "max_val": 100}, headers=srv.a
    )
    te = srv.http.post("/v1/teachers", json={"path": str(teacher)}, headers=srv.a)
    assert ds.status_code == te.status_code == 201, (ds.text, te.text)
    return ds.json()["id"], te.json()["id"]


def _submit(srv: Serve, ids: tuple[str, str], **extra: Any) -> httpx.Response:
    body = {"dataset_id": ids[0], "teacher_id": ids[1], "budget": {**BUDGET, **extra}}
    return srv.http.post("/v1/jobs", json=body, headers=srv.a)


def _trials(srv: Serve, job_id: str) -> dict[int, tuple[str, float | None]]:
    r = srv.http.get(f"/v1/jobs/{job_id}/trials", params={"limit": 500, "sort": "number"}, headers=srv.a)
    items = r.json()["items"] if r.status_code == 200 else []
    return {t["number"]: (t["status"], t.get("accuracy")) for t in items if t["status"] in FINISHED}


def _wait(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(1)
    return False


def _state(srv: Serve, job_id: str) -> str:
    try:
        return srv.http.get(f"/v1/jobs/{job_id}", headers=srv.a).json()["state"]
    except (httpx.HTTPError, KeyError, ValueError):
        return "?"


def _outcome(srv: Serve, job_id: str, before: dict[int, Any], timeout: float) -> tuple[str, bool]:
    """Wait for the job to end; whether it finished with every earlier finished trial kept, none repeated."""
    _wait(lambda: _state(srv, job_id) in ("finished", "failed", "cancelled"), timeout)
    after, state = _trials(srv, job_id), _state(srv, job_id)
    lost = [n for n, row in before.items() if after.get(n) != row]
    ok = state == "finished" and not lost and len(after) == BUDGET["trials"]
    return f"{state}; {len(before)} kept of {len(before)} before, lost {lost}, {len(after)} finished", ok
