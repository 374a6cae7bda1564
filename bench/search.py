"""Search measurements: scheduler overhead per trial, and the compute ASHA saves for the same best accuracy.

    .venv/bin/python -m bench.search [--trials 8] [--n-train 1000] [--n-val 300] [--epochs 3]

Runs the same job twice through the real worker (Ray Tune + OptunaSearch, SQLite), once with ASHA early
stopping and once running every trial to its full epoch budget, and prints a table (recorded in
bench/RESULTS.md). Uses the cached Rotten Tomatoes teacher of `autodistiller demo` (same subset).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from store import jobs, trials
from store.settings import Settings
from store.spec import DatasetRef, FinetuneRef, JobBudget, JobSpec, TeacherRef
from workers.worker import Worker


def run_arm(home: Path, db_path: Path, spec: JobSpec) -> dict[str, float]:
    worker = Worker(Settings(home=home, database_url=f"sqlite:///{db_path}"))
    job = jobs.create_job(worker.db, **spec.model_dump(mode="json"))
    claimed = jobs.claim_job(worker.db, worker.worker_id, job_id=job.id)
    t0 = time.perf_counter()
    worker.process(claimed)
    wall = time.perf_counter() - t0
    job = jobs.get_job(worker.db, job.id)
    assert job.state == "finished", job.error
    done = trials.finished_trials(worker.db, job.id)
    train_s = sum(e["seconds"] for t in done for e in t.epochs)
    search_s = (max(t.finished_at for t in done) - min(t.started_at for t in done)).total_seconds()
    return {
        "trials": len(done),
        "pruned": sum(t.status == "pruned" for t in done),
        "epochs": sum(len(t.epochs) for t in done),
        "best": max(t.accuracy for t in done if t.status == "completed"),
        "wall": wall,
        "search": search_s,
        "train": train_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--n-val", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    home = Settings.from_env().home

    def spec(early_stopping: bool) -> JobSpec:
        return JobSpec(
            dataset=DatasetRef(source="rotten_tomatoes", max_train=args.n_train, max_val=args.n_val),
            teacher=TeacherRef(base="minilm", finetune=FinetuneRef(max_length=64)),
            budget=JobBudget(trials=args.trials, space="small", epochs=[args.epochs], cpus_per_trial=2,
                             early_stopping=early_stopping, seed=0),
        )  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        arms = {name: run_arm(home, Path(tmp) / f"{name}.db", spec(es)) for name, es in
                (("ASHA", True), ("every trial to the end", False))}  # fmt: skip
    print(f"\nRotten Tomatoes {args.n_train}/{args.n_val}, {args.trials} trials (2 references), small space, "
          f"{args.epochs} epochs per trial, 1 trial at a time on 2 CPU threads\n")  # fmt: skip
    print(
        "| arm | trials (pruned) | epochs trained | best accuracy | job wall s | search wall s | "
        "Σ trial training s | job wall / Σ training | overhead per trial s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, a in arms.items():
        per_trial = (a["search"] - a["train"]) / a["trials"]
        print(f"| {name} | {a['trials']} ({a['pruned']}) | {a['epochs']} | {a['best']:.4f} | "
              f"{a['wall']:.0f} | {a['search']:.0f} | {a['train']:.0f} | {a['wall'] / a['train']:.2f} | "
              f"{per_trial:.1f} |")  # fmt: skip
    asha, full = arms["ASHA"], arms["every trial to the end"]
    saved_epochs, saved_time = 1 - asha["epochs"] / full["epochs"], 1 - asha["train"] / full["train"]
    print(f"\nASHA trained {asha['epochs']} epochs instead of {full['epochs']} ({saved_epochs:.0%} less "
          f"compute, {saved_time:.0%} less training time); best accuracy {asha['best']:.4f} vs "
          f"{full['best']:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
