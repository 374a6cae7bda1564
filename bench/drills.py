"""Drills against a real ``autodistiller serve`` (SQLite and PostgreSQL), as an operator and an attacker would
run them; prints drill / expected / observed / pass and exits non-zero if any drill fails.

    python -m bench.drills                       # every drill, both backends (~10 min on 2 cores)
    python -m bench.drills --only api --backend sqlite

Drills: worker kill, serve kill, node kill (bench/cluster_drill.py), 100 concurrent submissions, a bad-input
sweep, authorization across two keys, CSRF, and schemathesis for a bounded time (no 5xx).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
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
    cmd = [
        sys.executable,
        "-m",
        "autodistiller.cli",
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--stale-after",
        "6",
    ]
    log = (home.parent / f"serve-{port}.log").open("ab")
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    srv = Serve(proc, f"http://127.0.0.1:{port}", home, env)
    for _ in range(240):
        try:
            if srv.http.get("/v1/health").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    srv.key = (home / "api-key").read_text().strip() if (home / "api-key").exists() else ""
    return srv


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


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def _group(pgid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


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


# ---------------------------------------------------------------------------------------------- the drills


def drill_worker_kill(srv: Serve, ids: tuple[str, str]) -> Row:
    """SIGKILL the worker mid-search (only it: its Ray is orphaned); serve replaces it and reaps its Ray."""
    job = _submit(srv, ids).json()["id"]
    _wait(lambda: len(_trials(srv, job)) >= 1, 600)
    (worker,) = [p for p in _children(srv.proc.pid) if "worker" in Path(f"/proc/{p}/cmdline").read_text()]
    before = _trials(srv, job)
    os.kill(worker, signal.SIGKILL)
    orphans_gone = _wait(lambda: not _group(worker), 15)
    replaced = _wait(
        lambda: any("worker" in Path(f"/proc/{p}/cmdline").read_text() for p in _children(srv.proc.pid)), 30
    )
    seen, ok = _outcome(srv, job, before, 900)
    observed = f"replaced={replaced}, old Ray reaped={orphans_gone}; {seen}"
    return (
        "worker kill",
        "replaced, Ray reaped, job finishes, nothing lost",
        observed,
        ok and replaced and orphans_gone,
    )


def drill_serve_kill(srv: Serve, ids: tuple[str, str], restart: Callable[[], Serve]) -> tuple[Row, Serve]:
    """SIGKILL serve mid-search; a new serve resumes the job (finished trials kept, none repeated)."""
    job = _submit(srv, ids).json()["id"]
    _wait(lambda: len(_trials(srv, job)) >= 1, 600)
    before = _trials(srv, job)
    workers = _children(srv.proc.pid)
    srv.proc.kill()
    srv.proc.wait()
    gone = _wait(lambda: not any(_group(w) for w in workers), 30)
    new = restart()
    seen, ok = _outcome(new, job, before, 900)
    return (
        "serve kill",
        "workers die with serve; restart resumes, nothing lost",
        f"workers gone={gone}; {seen}",
        ok and gone,
    ), new


def drill_node_kill(url: str, teacher: Path, home: Path) -> Row:
    cmd = [
        sys.executable,
        "-m",
        "bench.cluster_drill",
        "--database-url",
        url,
        "--teacher",
        str(teacher),
        "--home",
        str(home),
    ]
    out = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "AUTODISTILLER_PRIORS": "none"},
    )
    try:
        obs = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return "node kill", "job finishes on the head", f"drill crashed: {out.stderr[-300:]}", False
    ok = (
        obs["trials_on_both_nodes"]
        and obs["killed_node_mid_trial"]
        and not obs["lost"]
        and not obs["repeated"]
        and obs["job_state"] == "finished"
    )
    observed = (
        f"both nodes={obs['trials_on_both_nodes']}, killed mid-trial={obs['killed_node_mid_trial']}, "
        f"{obs['job_state']}, lost {obs['lost']}, repeated {obs['repeated']}"
    )
    return "node kill", "trials on 2 nodes; node 2 killed; job finishes, nothing lost", observed, ok


def drill_concurrent(srv: Serve, ids: tuple[str, str]) -> Row:
    """100 submissions at once: 90 distinct, 10 repeats of one Idempotency-Key: 91 jobs, no error."""

    def submit(i: int) -> int:
        key = "same-key" if i < 10 else f"key-{i}"
        body = {"dataset_id": ids[0], "teacher_id": ids[1], "budget": {"trials": 2}}
        with httpx.Client(base_url=srv.url, timeout=120) as c:
            return c.post("/v1/jobs", json=body, headers={**srv.a, "Idempotency-Key": key}).status_code

    before = srv.http.get("/v1/jobs", headers=srv.a).json()["total"]
    with cf.ThreadPoolExecutor(32) as pool:
        codes = list(pool.map(submit, range(100)))
    made = srv.http.get("/v1/jobs", headers=srv.a).json()["total"] - before
    ok = codes.count(202) == 100 and made == 91
    return "100 concurrent submissions", "100×202, 91 jobs", f"{sorted(set(codes))}, {made} jobs", ok


BAD = [
    ("POST", "/v1/datasets", {"source": "outside_teacher"}),
    ("POST", "/v1/datasets", {"source": "fx/../../../etc"}),
    ("POST", "/v1/datasets", {"source": "/etc/passwd"}),
    ("POST", "/v1/teachers", {"path": "fx/../../../tmp"}),
    ("POST", "/v1/teachers", {"path": "b" * 5000}),
    ("POST", "/v1/teachers", {"base": "\u0000"}),
    ("POST", "/v1/jobs", {"dataset_id": "x", "teacher_id": "y"}),
    ("POST", "/v1/jobs", {"budget": {"trials": 1e308}}),
    ("GET", "/v1/jobs/" + "0" * 32 + "/trials?limit=-1", None),
    ("GET", "/v1/jobs?offset=99999999999999999999", None),
    ("POST", "/v1/jobs/" + "0" * 32 + "/cancel", None),
]


def drill_bad_inputs(srv: Serve, ids: tuple[str, str]) -> Row:
    codes = [srv.http.request(m, p, json=b, headers=srv.a).status_code for m, p, b in BAD]
    for budget in ({"wall_seconds": 1e-9}, {"max_params": 1000}, {"epochs": []}, {"trials": "nan"}):
        codes.append(
            srv.http.post(
                "/v1/jobs", json={"dataset_id": ids[0], "teacher_id": ids[1], "budget": budget}, headers=srv.a
            ).status_code
        )
    csv = "text,label\n" + "".join(f"row {i},c{i}\n" for i in range(3000))
    codes.append(srv.http.post("/v1/datasets", files={"file": ("ids.csv", csv)}, headers=srv.a).status_code)
    codes.append(
        srv.http.post("/v1/jobs", content=b"{}", headers={**srv.a, "Content-Type": "text/plain"}).status_code
    )
    ok = all(400 <= c < 500 for c in codes) and srv.http.get("/v1/health").status_code == 200
    return "bad-input sweep", f"{len(codes)} requests, all 4xx", f"codes {sorted(set(codes))}", ok


def drill_authz(srv: Serve, ids: tuple[str, str], key_b: str) -> Row:
    job = _submit(srv, ids, trials=2).json()["id"]
    b = {"Authorization": f"Bearer {key_b}"}
    paths = [
        f"/v1/jobs/{job}",
        f"/v1/jobs/{job}/trials",
        f"/v1/jobs/{job}/student",
        f"/v1/jobs/{job}/recommendation",
        f"/v1/datasets/{ids[0]}",
        f"/v1/teachers/{ids[1]}",
    ]
    codes = [srv.http.get(p, headers=b).status_code for p in paths]
    codes.append(srv.http.post(f"/v1/jobs/{job}/cancel", headers=b).status_code)
    codes.append(
        srv.http.post("/v1/jobs", json={"dataset_id": ids[0], "teacher_id": ids[1]}, headers=b).status_code
    )
    lists = [srv.http.get(p, headers=b).json()["total"] for p in ("/v1/jobs", "/v1/datasets", "/v1/teachers")]
    ok = set(codes) == {404} and lists == [0, 0, 0] and _state(srv, job) != "cancelled"
    return (
        "authorization, two keys",
        "B gets 404 on A's things, sees none",
        f"{set(codes)}, B lists {lists}",
        ok,
    )


def drill_csrf(srv: Serve, ids: tuple[str, str]) -> Row:
    evil = {"Origin": "https://evil.example"}
    c = httpx.Client(base_url=srv.url, follow_redirects=False)
    login_evil = c.post("/ui/login", data={"key": srv.key}, headers=evil).status_code
    c.post("/ui/login", data={"key": srv.key}, headers={"Origin": srv.url})
    cookie = next(iter(c.cookies.values()), "")
    before = srv.http.get("/v1/jobs", headers=srv.a).json()["total"]
    form = {"dataset_id": ids[0], "teacher_id": ids[1], "trials": "2"}
    forged = [
        c.post("/ui/jobs", data=form, headers=evil).status_code,
        c.post("/ui/jobs", data=form).status_code,
    ]
    made = srv.http.get("/v1/jobs", headers=srv.a).json()["total"] - before
    c.close()
    ok = login_evil == 403 and forged == [403, 403] and made == 0 and srv.key not in cookie
    observed = f"login {login_evil}, form {forged}, jobs made {made}, key in cookie {srv.key in cookie}"
    return "CSRF", "foreign-origin login/form 403; cookie holds no key", observed, ok


def drill_schemathesis(srv: Serve, seconds: int) -> Row:
    cmd = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{srv.url}/openapi.json",
        "-c",
        "not_a_server_error",
        "-H",
        f"Authorization: Bearer {srv.key}",
        "-n",
        "15",
        "--request-timeout",
        "60",
    ]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds, cwd=REPO)
        text, finished = out.stdout + out.stderr, True
    except subprocess.TimeoutExpired as e:
        text, finished = (e.stdout or b"").decode(errors="replace"), False
    server_errors = "Server error" in text or " 500 " in text
    ok = not server_errors and (not finished or out.returncode == 0)
    seen = "completed" if finished else f"stopped at {seconds} s"
    return "schemathesis", "no 5xx", f"{seen}; server errors: {server_errors}", ok


# ---------------------------------------------------------------------------------------------- running them


def api_drills(home: Path, url: str, roots: Path, teacher: Path, fuzz_s: int) -> list[Row]:
    """The drills an API-only serve (no worker) answers: nothing it accepts is run."""
    from store import create_key, make_engine, session_factory

    with serving(home, url, 0, roots) as srv:
        ids = _register(srv, teacher)
        engine = make_engine(url)
        _, key_b = create_key(session_factory(engine), "drill-b")
        engine.dispose()
        rows = [
            drill_concurrent(srv, ids),
            drill_bad_inputs(srv, ids),
            drill_authz(srv, ids, key_b),
            drill_csrf(srv, ids),
        ]
        if fuzz_s:
            rows.append(drill_schemathesis(srv, fuzz_s))
    return rows


def kill_drills(home: Path, url: str, roots: Path, teacher: Path) -> list[Row]:
    port = _free_port()
    with serving(home, url, 1, roots, port) as srv:
        ids = _register(srv, teacher)
        rows = [drill_worker_kill(srv, ids)]
        holder: list[Serve] = []

        def restart() -> Serve:
            holder.append(_start(home, url, 1, port, roots))
            return holder[-1]

        row, _ = drill_serve_kill(srv, ids, restart)
        rows.append(row)
    for extra in holder:
        if extra.proc.poll() is None:
            extra.proc.send_signal(signal.SIGINT)
            extra.proc.wait(timeout=60)
    return rows


@contextmanager
def database(backend: str, folder: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'db.sqlite'}"
        return
    sys.path.insert(0, str(REPO / "tests"))
    from pg import find_pg_bin, throwaway_server

    bindir = find_pg_bin()
    assert bindir is not None, "PostgreSQL is not installed"
    with throwaway_server(bindir) as server:
        yield server.create_database()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--only", choices=["api", "kills", "node", "all"], default="all")
    parser.add_argument("--fuzz-seconds", type=int, default=120)
    args = parser.parse_args()
    from bench.tiny import make_tiny_teacher

    rows: list[tuple[str, Row]] = []
    with tempfile.TemporaryDirectory(prefix="drills-") as tmp:
        roots = Path(tmp) / "imports"
        teacher = make_tiny_teacher(roots / "teacher")
        for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
            with database(backend, Path(tmp)) as url:
                home = Path(tmp) / f"home-{backend}"
                if args.only in ("api", "all"):
                    rows += [
                        (backend, r) for r in api_drills(home / "api", url, roots, teacher, args.fuzz_seconds)
                    ]
                if args.only in ("kills", "all"):
                    rows += [(backend, r) for r in kill_drills(home / "kills", url, roots, teacher)]
                if args.only in ("node", "all") and backend == "postgresql":
                    rows.append((backend, drill_node_kill(url, teacher, home / "node")))
    print(f"| {'drill':28} | backend    | {'expected':52} | observed | pass |")
    print(f"|{'-' * 30}|------------|{'-' * 54}|----------|------|")
    for backend, (name, expected, observed, ok) in rows:
        print(f"| {name:28} | {backend:10} | {expected:52} | {observed} | {'yes' if ok else 'NO'} |")
    sys.exit(0 if all(r[3] for _, r in rows) else 1)


if __name__ == "__main__":
    main()
