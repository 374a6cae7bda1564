"""Build the meta-dataset the recommender ships with: the component grid trained on task variants.

    .venv/bin/python -m bench.build_meta [--variants rt250s,bbc250l,...] [--out search/priors/meta.csv]

Each task variant (Rotten Tomatoes / BBC News × training-set size × student budget) runs as an ordinary
job through the real worker (Ray Tune, Optuna, the trial database at ``$AUTODISTILLER_HOME/meta.db``):
its fine-tuned teacher, its meta-features, and every pipeline of ``search.grid`` (24: output loss ×
intermediate objective × augmentation, the no-KD and vanilla-KD references among them) trained to the end.
Finished variants are kept, so an interrupted build resumes. The completed trials of every finished job
in that database are then written to ``--out`` (CSV), the prior knowledge the service loads
(``AUTODISTILLER_PRIORS``). ``bench/recommend.py`` replays the same file as a tabular benchmark.
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import dataclass
from pathlib import Path

from distill.pipeline import StudentArch, Training
from search.grid import grid
from store import jobs
from store.settings import Settings
from store.spec import DatasetRef, FinetuneRef, JobBudget, JobSpec, TeacherRef
from workers.recommend import db_rows
from workers.worker import Worker

OUT = Path(__file__).resolve().parent.parent / "search" / "priors" / "meta.csv"


@dataclass(frozen=True)
class Variant:
    name: str
    dataset: str
    n_train: int
    n_val: int
    layers: int  # the student: this many 384-wide layers, initialised from the teacher's
    max_params: int  # the student budget (the student above fits it)

    @property
    def epochs(self) -> int:
        """Student epochs: more on small data, so every variant trains for a similar number of steps."""
        return 5 if self.n_train < 500 else 2

    def spec(self) -> JobSpec:
        student = StudentArch(layers=self.layers, hidden=384, heads=12, ffn=1536)
        training = Training(lr=1e-4, epochs=self.epochs, batch_size=32, max_length=64, seed=0)
        pipelines = list(grid(student, training).values())
        return JobSpec(
            dataset=DatasetRef(source=self.dataset, max_train=self.n_train, max_val=self.n_val),
            teacher=TeacherRef(base="minilm", finetune=FinetuneRef(epochs=8 if self.n_train < 500 else 3)),
            budget=JobBudget(
                trials=len(pipelines), space="small", epochs=[self.epochs], early_stopping=False,
                candidates=[student], max_params=self.max_params, warm_start=pipelines,
                concurrency=2, cpus_per_trial=1, seed=0,
            ),
        )  # fmt: skip


VARIANTS = [
    Variant(f"{short}{n}{size}", dataset, n, n_val, layers, budget)
    for n in (250, 1000)
    for short, dataset, n_val in (("rt", "rotten_tomatoes", 500), ("bbc", "bbc_news", 400))
    for size, layers, budget in (("s", 1, 14_000_000), ("l", 3, 18_000_000))
]


#: The variants of the shipped ``search/priors/meta.csv`` (the 1,000-example 3-layer ones take ~25 min each).
SHIPPED = ["rt250s", "rt250l", "bbc250s", "bbc1000s", "rt1000s", "bbc250l"]


def run_variant(worker: Worker, variant: Variant) -> None:
    spec = variant.spec().model_dump(mode="json")
    for job in jobs.list_jobs(worker.db, limit=1000):
        if job.dataset == spec["dataset"] and job.budget == spec["budget"] and job.state == "finished":
            print(f"{variant.name}: done earlier (job {job.id})", flush=True)
            return
    job = jobs.create_job(worker.db, **spec)
    claimed = jobs.claim_job(worker.db, worker.worker_id, job_id=job.id)
    t0 = time.perf_counter()
    worker.process(claimed)
    job = jobs.get_job(worker.db, job.id)
    print(f"{variant.name}: {job.state} in {time.perf_counter() - t0:.0f} s, teacher "
          f"{job.teacher_accuracy}, best {job.best_accuracy} {job.error or ''}", flush=True)  # fmt: skip


def export(db: object, out: Path) -> int:
    """Write the meta-dataset of every finished job in ``db`` to ``out``; returns the number of rows."""
    rows = db_rows(db)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["task"])
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default=",".join(SHIPPED),
                    help=f"comma-separated, from: {', '.join(v.name for v in VARIANTS)}")  # fmt: skip
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--export-only", action="store_true", help="only write --out from the database")
    args = ap.parse_args()
    settings = Settings.from_env()
    worker = Worker(Settings(home=settings.home, database_url=f"sqlite:///{settings.home / 'meta.db'}"))
    known = {v.name: v for v in VARIANTS}
    if not args.export_only:
        for name in args.variants.split(","):
            if name not in known:
                raise SystemExit(f"unknown variant {name!r}; known: {', '.join(known)}")
            run_variant(worker, known[name])
    print(f"{export(worker.db, args.out)} trials written to {args.out}")


if __name__ == "__main__":
    main()
