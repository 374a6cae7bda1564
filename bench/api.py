"""API latency under load: ``POST /v1/jobs`` and the ``/trials`` leaderboard of a 10,000-trial job.

    .venv/bin/python -m bench.api [--trials 10000] [--clients 50] [--requests 40] [--think-ms 0]
                                  [--uvicorn-workers 1 [--nodelay-fix]] [--scenarios post trials]
                                  [--database-url postgresql+psycopg://...] [--json results.json]

Seeds a fresh database (SQLite in a temp home unless ``--database-url``): an API key, a dataset and a teacher
registered over HTTP, and one finished job whose ``--trials`` trials (realistic pipelines sampled from the
default search space; mostly completed, some pruned or failed) are bulk-inserted through SQLAlchemy.
Then starts a real ``uvicorn --factory service.app:create_app`` in a subprocess on 127.0.0.1 and drives it
from this process with ``--clients`` closed-loop clients (asyncio, one ``httpx.AsyncClient`` and keep-alive
connection each): every client sends ``--warmup`` untimed requests, waits for the others, then ``--requests``
timed ones, each as soon as its previous answer arrived (``--think-ms``: after an exponential pause of that
mean instead, like people reading the answers). Latency is measured client-side per request (send to last
body byte). Scenarios:

- ``post``: ``POST /v1/jobs`` (dataset + teacher ids, a budget), each with a unique ``Idempotency-Key``;
- ``trials``: ``GET /v1/jobs/{id}/trials`` on the big job, sorts ``-accuracy``, ``params``,
  ``-ratio_to_teacher``, ``latency_ms`` × offsets 0, 50, 5000 (limit 50), rotated per request.

Prints p50/p90/p99/max latency and throughput per scenario against the goals (p99 < 50 ms for POST, < 100 ms
for the leaderboard), and the leaderboard by sort × offset. With N closed-loop clients the latency is mostly
queueing: p50 ≈ N / throughput (Little's law). ``--clients 1 50`` also gives the unloaded service time. The
load generator shares the machine with the server; its CPU use is printed. ``--nodelay-fix``: see
``NODELAY_FIX`` (``uvicorn --workers N`` adds ~40 ms to every keep-alive request on Linux).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, update

from distill.pipeline import StudentArch, pipeline_key
from search.space import SearchSpace
from store import Job, Trial, create_job, create_key, make_engine, session_factory, upgrade, utcnow

GOALS_MS = {"post": 50.0, "trials": 100.0}
SORTS = ("-accuracy", "params", "-ratio_to_teacher", "latency_ms")
OFFSETS = (0, 50, 5000)
PAGE = 50
CANDIDATES = [
    StudentArch(layers=2, hidden=384, heads=12, ffn=1536),
    StudentArch(layers=4, hidden=224, heads=4, ffn=896),
    StudentArch(layers=3, hidden=288, heads=12, ffn=1152),
    StudentArch(layers=6, hidden=384, heads=12, ffn=1536),
]
TEACHER_ACCURACY = 0.786
NO_KD_ACCURACY = 0.718


# --------------------------------------------------------------------------------------------- seeding


class _RandomTrial:
    """Stands in for ``optuna.Trial``: ``SearchSpace.suggest`` samples one pipeline's params uniformly."""

    def __init__(self, rng: random.Random) -> None:
        self.rng, self.params = rng, {}

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        self.params[name] = self.rng.choice(list(choices))
        return self.params[name]

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False, **_: Any) -> float:
        if log:
            value = math.exp(self.rng.uniform(math.log(low), math.log(high)))
        else:
            value = self.rng.uniform(low, high)
        self.params[name] = value
        return value


def _student_params(arch: StudentArch) -> int:
    """BERT parameter count (30,522-token vocabulary, 512 positions, 2 labels)."""
    h, f = arch.hidden, arch.ffn
    embeddings = (30522 + 512 + 2) * h + 2 * h
    layer = 4 * (h * h + h) + 2 * h * f + f + h + 4 * h
    return embeddings + arch.layers * layer + h * h + h + 2 * h + 2


def trial_rows(job_id: str, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` finished trials as a search leaves them: ~80% completed, ~15% pruned, ~5% failed."""
    rng = random.Random(seed)
    space = SearchSpace.default(CANDIDATES)
    refs = list(space.reference_pipelines().items())
    t = utcnow() - timedelta(days=3)
    rows = []
    for number in range(n):
        if number < len(refs):
            is_reference, pipeline = refs[number]
        else:
            sample = _RandomTrial(rng)
            space.suggest(sample)  # type: ignore[arg-type]
            is_reference, pipeline = None, space.to_pipeline(sample.params)
        doc = pipeline.model_dump(mode="json")
        u = rng.random()
        status = "completed" if number < len(refs) or u < 0.80 else "pruned" if u < 0.95 else "failed"
        max_epochs = pipeline.training.epochs
        epochs_run = max_epochs if status == "completed" else rng.randint(1, max_epochs)
        params = _student_params(pipeline.student)
        latency = 0.6 + 0.35 * pipeline.student.layers * (pipeline.student.hidden / 384) ** 2
        latency *= rng.uniform(0.9, 1.2)
        wall = epochs_run * rng.uniform(15, 40) * pipeline.student.layers / 2
        curve, acc = [], rng.uniform(0.5, 0.6)
        for e in range(1, epochs_run + 1):
            acc = min(0.8, acc + rng.uniform(0.0, 0.12) / e)
            f1 = acc - rng.uniform(0, 0.01)
            loss = rng.uniform(0.2, 1.5)
            curve.append({"epoch": e, "accuracy": round(acc, 4), "macro_f1": round(f1, 4),
                          "train_loss": round(loss, 4), "seconds": round(wall / epochs_run, 2)})  # fmt: skip
        start = t + timedelta(seconds=number * 25)
        row: dict[str, Any] = {
            "job_id": job_id, "number": number, "pipeline": doc, "pipeline_key": pipeline_key(doc),
            "status": status, "is_reference": is_reference, "epochs": curve, "started_at": start,
            "finished_at": start + timedelta(seconds=wall),
            "accuracy": None, "macro_f1": None, "params": None, "latency_ms": None, "ratio_to_teacher": None,
            "gain_over_no_kd": None, "wall_seconds": round(wall, 2), "error": None,
        }  # fmt: skip
        if status == "failed":
            row["error"] = "RuntimeError: CUDA out of memory. Tried to allocate 96.00 MiB (trial restarted)"
        else:
            row.update(accuracy=acc, macro_f1=curve[-1]["macro_f1"], params=params,
                       latency_ms=round(latency, 3), ratio_to_teacher=acc / TEACHER_ACCURACY,
                       gain_over_no_kd=acc - NO_KD_ACCURACY)  # fmt: skip
        rows.append(row)
    return rows


def seed_job(db: Any, owner: str, dataset: dict[str, Any], teacher: dict[str, Any], n: int) -> str:
    """A finished job of ``owner`` with ``n`` trials, bulk-inserted; returns its id."""
    job = create_job(
        db, dataset=dataset["ref"], teacher=teacher["ref"], budget={"trials": min(n, 10_000)}, owner=owner,
        dataset_id=dataset["id"], teacher_id=teacher["id"],
    )  # fmt: skip
    rows = trial_rows(job.id, n)
    with db() as s, s.begin():
        for i in range(0, n, 1000):
            s.execute(insert(Trial), rows[i : i + 1000])
        best = max((r for r in rows if r["status"] == "completed"), key=lambda r: r["accuracy"])
        s.execute(
            update(Job)
            .where(Job.id == job.id)
            .values(state="finished", trials_done=n, best_accuracy=best["accuracy"], best_trial_id=None,
                    teacher_accuracy=TEACHER_ACCURACY, progress_text="finished",
                    started_at=rows[0]["started_at"], finished_at=rows[-1]["finished_at"])
        )  # fmt: skip
    return job.id


# ---------------------------------------------------------------------------------------------- server


# `uvicorn --workers N` binds the listening socket itself with proto 0, so asyncio never sets TCP_NODELAY on
# the accepted connections: Nagle holds each response's body until the client's delayed ACK, ~40 ms a request
# on Linux (https://github.com/Kludex/uvicorn/issues/3149, open in uvicorn 0.54). `--nodelay-fix` runs uvicorn
# through this launcher, which re-wraps that socket as IPPROTO_TCP; the service itself is unchanged.
NODELAY_FIX = """
import socket, sys
import uvicorn.config, uvicorn.main
bind = uvicorn.config.Config.bind_socket
def bind_tcp(self):
    sock = bind(self)
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto == 0:
        sock = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
    return sock
uvicorn.config.Config.bind_socket = bind_tcp
sys.argv[0] = "uvicorn"
uvicorn.main.main()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server(home: Path, url: str, workers: int, log: Path, nodelay_fix: bool = False) -> Iterator[str]:
    """``uvicorn --factory service.app:create_app`` on a free port; yields its base URL once healthy."""
    port = free_port()
    env = {**os.environ, "AUTODISTILLER_HOME": str(home), "AUTODISTILLER_DATABASE_URL": url}
    launcher = ["-c", NODELAY_FIX] if nodelay_fix else ["-m", "uvicorn"]
    cmd = [sys.executable, *launcher, "--factory", "service.app:create_app", "--host", "127.0.0.1",
           "--port", str(port), "--workers", str(workers), "--no-access-log",
           "--log-level", "warning"]  # fmt: skip
    root = Path(__file__).resolve().parents[1]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/v1/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn not healthy after 120 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------------------------------------ load


@dataclass(frozen=True)
class Load:
    clients: int
    requests: int  # timed, per client
    warmup: int  # untimed, per client, first
    think_ms: float = 0.0  # mean pause between a client's requests (0: closed loop, back to back)


@dataclass
class Result:
    scenario: str
    clients: int
    requests: int
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    throughput: float
    goal_p99_ms: float
    met: bool
    client_cpu: float = field(metadata={"help": "load generator CPU seconds / wall seconds"})
    by_variant: dict[str, dict[str, float]] = field(default_factory=dict)


def percentile(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return sorted_ms[max(0, math.ceil(q / 100 * len(sorted_ms)) - 1)]


def make_request(scenario: str, ctx: dict[str, Any], client: int, i: int) -> tuple[str, str, dict, str]:
    """(method, path, kwargs, variant) of request ``i`` of ``client``."""
    if scenario == "post":
        body = {"dataset_id": ctx["dataset_id"], "teacher_id": ctx["teacher_id"],
                "budget": {"trials": 12, "wall_seconds": 3600, "max_params": 16_000_000}}  # fmt: skip
        return "POST", "/v1/jobs", {"json": body, "headers": {"Idempotency-Key": uuid.uuid4().hex}}, "post"
    k = client + i
    sort, offset = SORTS[k % len(SORTS)], OFFSETS[(k // len(SORTS)) % len(OFFSETS)]
    params = {"sort": sort, "limit": PAGE, "offset": offset}
    return "GET", f"/v1/jobs/{ctx['job_id']}/trials", {"params": params}, f"{sort} @{offset}"


async def _load(
    base: str, key: str, scenario: str, ctx: dict[str, Any], load: Load
) -> tuple[list[tuple[str, float, bool]], float, float]:
    """(variant, ms, ok) per timed request, the timed phase's wall seconds and this process's CPU seconds."""
    expect = 202 if scenario == "post" else 200
    ready = asyncio.Barrier(load.clients + 1)
    go = asyncio.Event()

    async def one(c: int) -> list[tuple[str, float, bool]]:
        rng = random.Random(c)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as http:
            for i in range(load.warmup):
                method, path, kw, _ = make_request(scenario, ctx, c, load.requests + i)
                (await http.request(method, path, **kw)).raise_for_status()
            await ready.wait()
            await go.wait()
            if load.think_ms:  # start staggered too, not as one burst of `clients` requests
                await asyncio.sleep(rng.uniform(0, 2 * load.think_ms / 1000))
            out = []
            for i in range(load.requests):
                method, path, kw, variant = make_request(scenario, ctx, c, i)
                t0 = time.perf_counter()
                r = await http.request(method, path, **kw)
                ms = (time.perf_counter() - t0) * 1000
                ok = r.status_code == expect
                if ok and scenario == "trials":  # a full page, or what is left of the job's trials
                    page = r.json()
                    ok = len(page["items"]) == max(0, min(PAGE, page["total"] - kw["params"]["offset"]))
                out.append((variant, ms, ok))
                if load.think_ms:  # a user reading the answer: exponential pause, mean think_ms
                    await asyncio.sleep(rng.expovariate(1000 / load.think_ms))
            return out

    tasks = [asyncio.create_task(one(c)) for c in range(load.clients)]
    await ready.wait()
    t0, cpu0 = time.perf_counter(), time.process_time()
    go.set()
    samples = [s for batch in await asyncio.gather(*tasks) for s in batch]
    return samples, time.perf_counter() - t0, time.process_time() - cpu0


def run_scenario(base: str, key: str, scenario: str, ctx: dict[str, Any], load: Load) -> Result:
    # This process imported torch & co. through the search space (~240k objects): a full collection here would
    # stall every client for ~100 ms and be measured as server latency. Keep them out of the cyclic GC.
    gc.collect()
    gc.freeze()
    samples, wall, cpu = asyncio.run(_load(base, key, scenario, ctx, load))
    ms = sorted(m for _, m, _ in samples)
    variants: dict[str, list[float]] = {}
    for v, m, _ in samples:
        variants.setdefault(v, []).append(m)
    by_variant = {
        v: {"n": len(xs), "p50_ms": percentile(sorted(xs), 50), "p99_ms": percentile(sorted(xs), 99)}
        for v, xs in sorted(variants.items())
    }
    p99 = percentile(ms, 99)
    return Result(
        scenario=scenario, clients=load.clients, requests=len(ms), errors=sum(not ok for _, _, ok in samples),
        p50_ms=percentile(ms, 50), p90_ms=percentile(ms, 90), p99_ms=p99, max_ms=ms[-1],
        mean_ms=sum(ms) / len(ms), throughput=len(ms) / wall, goal_p99_ms=GOALS_MS[scenario],
        met=p99 < GOALS_MS[scenario] and not any(not ok for _, _, ok in samples), client_cpu=cpu / wall,
        by_variant=by_variant if scenario == "trials" else {},
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------ main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=10_000, help="trials of the leaderboard job")
    ap.add_argument("--clients", type=int, nargs="+", default=[50], help="concurrent clients (one run each)")
    ap.add_argument("--requests", type=int, default=40, help="timed requests per client")
    ap.add_argument("--warmup", type=int, default=3, help="untimed requests per client first")
    ap.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="mean pause between a client's requests (default 0: back to back)",
    )
    ap.add_argument("--uvicorn-workers", type=int, default=1)
    ap.add_argument("--nodelay-fix", action="store_true", help="undo uvicorn's --workers N Nagle delay")
    ap.add_argument("--scenarios", nargs="+", choices=sorted(GOALS_MS), default=["post", "trials"])
    ap.add_argument("--database-url", help="default: SQLite in the temp home")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        home = Path(tmp) / "home"
        url = args.database_url or f"sqlite:///{home / 'autodistiller.db'}"
        upgrade(url)
        engine = make_engine(url)
        db = session_factory(engine)
        key_row, key = create_key(db, "bench-api")
        with server(home, url, args.uvicorn_workers, Path(tmp) / "uvicorn.log", args.nodelay_fix) as base:
            auth = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=base, headers=auth, timeout=300) as http:
                t0 = time.perf_counter()
                dataset = {"source": "rotten_tomatoes", "max_train": 200, "max_val": 100}
                ds = http.post("/v1/datasets", json=dataset)
                teacher = http.post("/v1/teachers", json={"base": "minilm"})
                for r in (ds, teacher):
                    assert r.status_code == 201, r.text
                t1 = time.perf_counter()
                job_id = seed_job(db, key_row.id, ds.json(), teacher.json(), args.trials)
                t2 = time.perf_counter()
            print(f"registered dataset + teacher over HTTP in {t1 - t0:.1f} s; seeded {args.trials} "
                  f"trials in {t2 - t1:.1f} s ({engine.dialect.name})", file=sys.stderr)  # fmt: skip
            ctx = {"dataset_id": ds.json()["id"], "teacher_id": teacher.json()["id"], "job_id": job_id}
            loads = [Load(n, args.requests, args.warmup, args.think_ms) for n in args.clients]
            results = [
                run_scenario(base, key, scenario, ctx, load) for load in loads for scenario in args.scenarios
            ]
        engine.dispose()

    names = {"post": "POST /v1/jobs", "trials": f"GET /v1/jobs/{{id}}/trials ({args.trials:,} trials)"}
    fix = " (TCP_NODELAY fix)" if args.nodelay_fix else ""
    print(f"\nuvicorn --workers {args.uvicorn_workers}{fix}, {engine.dialect.name}, {os.cpu_count()} CPU "
          f"cores shared with the load generator; {args.requests} timed requests per client after "
          f"{args.warmup} warm-up" + (f", {args.think_ms:g} ms mean think time" if args.think_ms else "")
          + "\n")  # fmt: skip
    print("| scenario | clients | requests | p50 ms | p90 ms | p99 ms | max ms | req/s | goal (p99) | met | "
          "client CPU |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        errors = f" ({r.errors} errors)" if r.errors else ""
        print(f"| {names[r.scenario]} | {r.clients} | {r.requests}{errors} | {r.p50_ms:.1f} | "
              f"{r.p90_ms:.1f} | {r.p99_ms:.1f} | {r.max_ms:.1f} | {r.throughput:.0f} | "
              f"< {r.goal_p99_ms:.0f} ms | {'yes' if r.met else 'no'} | {r.client_cpu:.0%} |")  # fmt: skip
    for r in results:
        if r.by_variant:
            print(f"\nleaderboard by sort @ offset, {r.clients} clients (limit {PAGE}):\n")
            print("| sort @ offset | requests | p50 ms | p99 ms |")
            print("|---|---|---|---|")
            for v, s in r.by_variant.items():
                print(f"| `{v}` | {s['n']:.0f} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} |")
    if args.json:
        doc = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
               "cpu_count": os.cpu_count(), "results": [asdict(r) for r in results]}  # fmt: skip
        args.json.write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
