"""Drills against a real ``autodistiller serve`` (SQLite and PostgreSQL), as an operator and an attacker would
run them; prints drill / expected / observed / pass and exits non-zero if any drill fails.

    python -m bench.drills                       # every drill, both backends (~10 min on 2 cores)
    python -m bench.drills --only api --backend sqlite

Drills: worker kill, serve kill, node kill (bench/cluster_drill.py), 100 concurrent submissions, a bad-input
sweep, authorization across two keys, CSRF, and schemathesis for a bounded time (no 5xx).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.drills_api import api_drills
from bench.serving import (
    REPO,
    Row,
    Serve,
    _children,
    _free_port,
    _group,
    _outcome,
    _register,
    _start,
    _submit,
    _trials,
    _wait,
    serving,
)


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
    new.key = srv.key  # the job is the first key's
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
def databases(backend: str, folder: Path) -> Iterator[Callable[[str], str]]:
    """A maker of empty databases, one per drill group (the API drills queue ~90 jobs no worker may see)."""
    if backend == "sqlite":
        yield lambda name: f"sqlite:///{folder / f'{name}.sqlite'}"
        return
    sys.path.insert(0, str(REPO / "tests"))
    from pg import find_pg_bin, throwaway_server

    bindir = find_pg_bin()
    assert bindir is not None, "PostgreSQL is not installed"
    with throwaway_server(bindir) as server:
        yield lambda _name: server.create_database()


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
            with databases(backend, Path(tmp)) as new_db:
                home = Path(tmp) / f"home-{backend}"
                if args.only in ("api", "all"):
                    rows += [
                        (backend, r)
                        for r in api_drills(home / "api", new_db("api"), roots, teacher, args.fuzz_seconds)
                    ]
                if args.only in ("kills", "all"):
                    rows += [
                        (backend, r) for r in kill_drills(home / "kills", new_db("kills"), roots, teacher)
                    ]
                if args.only in ("node", "all") and backend == "postgresql":
                    rows.append((backend, drill_node_kill(new_db("node"), teacher, home / "node")))
    print(f"| {'drill':28} | backend    | {'expected':52} | observed | pass |")
    print(f"|{'-' * 30}|------------|{'-' * 54}|----------|------|")
    for backend, (name, expected, observed, ok) in rows:
        print(f"| {name:28} | {backend:10} | {expected:52} | {observed} | {'yes' if ok else 'NO'} |")
    sys.exit(0 if all(r[3] for _, r in rows) else 1)


if __name__ == "__main__":
    main()
