"""The cluster mode on one machine: a Ray head and a second Ray node joined by address on loopback, with
Ray's token authentication and PostgreSQL; a job whose trials run on both nodes; the second node killed
mid-trial. Prints (and returns) what happened; ``tests/workers/test_cluster.py`` and ``bench/drills.py`` check
on it: no finished trial lost or repeated, the job finishes.

    python -m bench.cluster_drill --database-url postgresql+psycopg://... --teacher FOLDER --home DIR
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from distill.pipeline import StudentArch

TINY = [StudentArch(layers=1, hidden=32, heads=2, ffn=64), StudentArch(layers=2, hidden=32, heads=2, ffn=64)]
FINISHED = ["completed", "pruned", "failed"]


def _busy_nodes(seen: set[str]) -> None:
    """Add to ``seen`` every node with a CPU in use now."""
    import ray
    from ray._private import state

    if not ray.is_initialized():  # the worker has not joined the cluster yet
        return
    total = state.total_resources_per_node()
    for node, free in state.available_resources_per_node().items():
        if free.get("CPU", 0.0) < total.get(node, {}).get("CPU", 0.0):
            seen.add(node)


def _snapshot(db: Any, job_id: str) -> dict[int, tuple[int, str, float | None]]:
    from store import trials

    return {t.number: (t.id, t.status, t.accuracy) for t in trials.finished_trials(db, job_id)}


def run_drill(url: str, teacher: Path, home: Path, trials: int = 6, timeout_s: float = 900) -> dict[str, Any]:
    """The drill (see the module's docstring); returns its observations."""
    token = secrets.token_hex(16)
    os.environ.update(
        {
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": token,
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        }
    )  # fmt: skip  (both nodes on 127.0.0.1)
    from ray.cluster_utils import Cluster

    from store import jobs
    from store import trials as trial_queries
    from store.settings import Settings
    from store.spec import DatasetRef, JobBudget, JobSpec, TeacherRef
    from workers.worker import Worker

    args = {"num_cpus": 1, "include_dashboard": False, "node_ip_address": "127.0.0.1"}
    cluster = Cluster(initialize_head=True, head_node_args=args)
    second = cluster.add_node(**args)
    obs: dict[str, Any] = {"nodes": 2, "auth": os.environ["RAY_AUTH_MODE"]}
    try:
        worker = Worker(Settings(home=home, database_url=url), ray_address=cluster.address, stale_after_s=30)
        spec = JobSpec(
            dataset=DatasetRef(source="rotten_tomatoes", max_train=200, max_val=100),
            teacher=TeacherRef(path=str(teacher)),
            budget=JobBudget(trials=trials, concurrency=2, space="small", max_length=32, candidates=TINY,
                             early_stopping=False, warm_start_k=0),
        )  # fmt: skip
        job = jobs.create_job(worker.db, **spec.model_dump(mode="json"))
        thread = threading.Thread(target=worker.run, kwargs={"once": True}, daemon=True)
        thread.start()
        busy: set[str] = set()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and thread.is_alive():
            if jobs.get_job(worker.db, job.id).state == "searching":
                _busy_nodes(busy)
            done = trial_queries.count_trials(worker.db, job.id, status=FINISHED)
            if second.node_id in busy and done >= 1:
                break
            time.sleep(0.2)
        obs["trials_on_both_nodes"] = len(busy) == 2
        # kill mid-trial: between two trials nothing runs, so wait (briefly) for the next one to start
        settle = time.monotonic() + 60
        while (
            trial_queries.count_trials(worker.db, job.id, status=["running"]) == 0
            and thread.is_alive()
            and time.monotonic() < settle
        ):
            time.sleep(0.1)
        before = _snapshot(worker.db, job.id)
        running = trial_queries.count_trials(worker.db, job.id, status=["running"])
        cluster.remove_node(second, allow_graceful=False)  # the second node dies mid-trial
        obs.update(killed_node_mid_trial=running > 0, finished_before_kill=len(before))
        thread.join(timeout=max(1.0, deadline - time.monotonic()))
        final = jobs.get_job(worker.db, job.id)
        after = _snapshot(worker.db, job.id)
        numbers = [t.number for t in trial_queries.finished_trials(worker.db, job.id)]
        obs.update(
            job_state=final.state,
            job_error=final.error,
            trials_done=final.trials_done,
            budget=trials,
            lost=[n for n, row in before.items() if after.get(n) != row],
            repeated=len(numbers) - len(set(numbers)),
            failed_after_kill=sum(1 for n, r in after.items() if n not in before and r[1] == "failed"),
        )
    finally:
        import ray

        ray.shutdown()
        cluster.shutdown()
    return obs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--trials", type=int, default=6)
    a = parser.parse_args()
    print(json.dumps(run_drill(a.database_url, a.teacher, a.home, a.trials)), flush=True)


if __name__ == "__main__":
    main()
