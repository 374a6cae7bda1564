"""Build the meta-dataset the recommender ships with: the component grid trained on task variants.

    .venv/bin/python -m bench.build_meta [--variants sms_spam/s,trec_questions/m,...] [--out FILE.csv]
        [--keep-old] [--export-only]            # default: every shipped variant, written on its own

Each task variant (a dataset × training-set size × student budget) runs as an ordinary job through the real
worker (Ray Tune, Optuna, the trial database at ``$AUTODISTILLER_HOME/meta.db``): its fine-tuned teacher,
its meta-features, and every pipeline of ``search.grid`` (24: output loss × intermediate objective ×
augmentation, the no-KD and vanilla-KD references among them; 12 on the small tasks, ``SMALL_GRID``)
trained to the end, then every trial's
student measured on the task's test split (the budget's ``test_every``). Finished variants are kept, so an
interrupted build resumes. The completed trials of every finished job in that database are then written to
``--out`` in the rows format of ``search.meta_rows`` — ``score`` is the trial's test accuracy and
``teacher_score`` the teacher's (``score_split`` says ``test``); with ``--keep-old``, after the rows already
in ``--out`` that another database made (this database's own rows are written afresh from its jobs as the
variants are defined now, so a variant rebuilt under a new definition replaces its old rows; an old row of
a task rebuilt here is dropped unless it is test-scored too, :func:`merged`). Each row also carries the
trial's learning curve (``curve``: validation accuracy and seconds an epoch), which ``bench/recommend.py``
replays early stopping on. Another database's build of the same variants adds its trials as repeats of
the same pipelines on the same tasks (another run: the ranker learns from both, the benchmark judges a
point by its mean test score). That file is the prior knowledge the service loads
(``AUTODISTILLER_PRIORS``); ``bench/recommend.py`` replays it as a tabular benchmark.

The small tasks (``bench/meta_data.py``: install ``bench/meta-assets.txt`` first) are sized for 2
shared CPU cores: 500 training and 300 validation examples, 500 test, 64 tokens, tiny students (``s``: 1
layer × 128, ``m``: 2 layers × 256) trained 4 epochs (batch 16, lr 1e-3), a MiniLM teacher fine-tuned for 8
epochs at 64 tokens (lr 1e-4). Two of them can also run as the built-in datasets do (``Variant.whole_grid``:
``--variants vader_amazon/minilm,trec_questions/minilm``; a student of the teacher's first layer, all 24
points, 4 epochs; 11–20 min each). Built and measured, they are not shipped: with their 52 rows the
leave-one-dataset-out checks got worse on every bag seed (bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.meta_data import TASKS, task_csv
from distill.pipeline import StudentArch, Training
from search.grid import grid
from search.ranker import bare_task
from store import jobs, results, trials
from store.settings import Settings
from store.spec import DatasetRef, FinetuneRef, JobBudget, JobSpec, TeacherRef
from workers.recommend import db_rows
from workers.worker import Worker

OUT = Path(__file__).resolve().parent.parent / "search" / "priors" / "meta.csv"
#: The small tasks' grid, (loss, intermediate) × augmentation: 12 of the 24 points (no logit MSE, no
#: attention transfer), both references and the three axes kept.
SMALL_GRID = {(loss, inter) for loss in ("ce_only", "kl") for inter in ("none", "hidden_mse", "mi_alpha")}


#: the shipped MiniLM teacher's attention head size (384 wide, 12 heads)
TEACHER_HEAD = 32


@dataclass(frozen=True)
class Variant:
    name: str
    dataset: str  # a built-in name, or a task of bench/meta_data.py
    n_train: int
    n_val: int
    layers: int  # the student: this many layers, initialised from the teacher's
    max_params: int  # the student budget (the student above fits it)
    hidden: int = 384
    teacher_epochs: int | None = None  # the teacher's fine-tuning (default: 8 below 500 examples, else 3)
    teacher_length: int = 64  # the teacher's fine-tuning sequence length
    #: a small task's CSV trained as the built-in datasets are: a student of the teacher's layers, the 24
    #: points (a third dataset with the whole grid, so a held-out one is not learned from one other alone)
    whole_grid: bool = False

    @property
    def csv(self) -> bool:
        """A task of bench/meta_data.py (a CSV with its own test split)."""
        return self.dataset in TASKS

    @property
    def small(self) -> bool:
        """One of the small tasks' tiny-student variants (12 of the grid's points)."""
        return self.csv and not self.whole_grid

    @property
    def epochs(self) -> int:
        """Student epochs: more on small data, so every variant trains for a similar number of steps."""
        return 4 if self.csv else 5 if self.n_train < 500 else 2

    def spec(self, home: Path) -> JobSpec:
        # a student made of the teacher's layers keeps its heads (the MiniLM's 12 × 32), as the service's
        # candidates do (search.candidates); the tiny students' new layers keep the first build's 64 a head
        heads = self.hidden // (64 if self.small else TEACHER_HEAD)
        student = StudentArch(layers=self.layers, hidden=self.hidden, heads=heads, ffn=4 * self.hidden)
        # the tiny students' layers are new, not the teacher's: a higher rate, more steps
        lr, batch = (1e-3, 16) if self.small else (1e-4, 32)
        training = Training(lr=lr, epochs=self.epochs, batch_size=batch, max_length=64, seed=0)
        pipelines = [p for k, p in grid(student, training).items() if not self.small or k[:2] in SMALL_GRID]
        if self.csv:
            pair = "text_pair" if self.dataset == "topic_pairs" else None
            dataset = DatasetRef(
                source=str(task_csv(self.dataset, home)), name=self.dataset, split_column="split",
                text_pair_column=pair, max_train=self.n_train, max_val=self.n_val,
            )  # fmt: skip
        else:
            dataset = DatasetRef(source=self.dataset, max_train=self.n_train, max_val=self.n_val)
        teacher_epochs = self.teacher_epochs or (8 if self.n_train < 500 else 3)
        return JobSpec(
            dataset=dataset,
            teacher=TeacherRef(
                base="minilm", finetune=FinetuneRef(epochs=teacher_epochs, max_length=self.teacher_length)
            ),
            budget=JobBudget(
                # + 2: the references re-run at the probed learning rate take two trials of their own
                trials=len(pipelines) + 2, space="small", epochs=[self.epochs], early_stopping=False,
                candidates=[student], max_params=self.max_params, warm_start=pipelines,
                concurrency=2, cpus_per_trial=1, seed=0, test_every=True,
            ),
        )  # fmt: skip


VARIANTS = (
    [
        Variant(f"{short}{n}{size}", dataset, n, n_val, layers, budget)
        for n in (250, 1000)
        for short, dataset, n_val in (("rt", "rotten_tomatoes", 500), ("bbc", "bbc_news", 400))
        for size, layers, budget in (("s", 1, 14_000_000), ("l", 3, 18_000_000))
    ]
    + [
        # the teacher: 8 epochs at 64 tokens (2 at 32 left TREC's at 0.53 validation, below its students)
        Variant(f"{task}/{size}", task, 500, 300, layers, budget, hidden, teacher_epochs=8)
        for task in TASKS
        for size, layers, hidden, budget in (("s", 1, 128, 5_000_000), ("m", 2, 256, 10_000_000))
    ]
    + [
        # the MiniLM's first layer (12 heads × 32), the whole grid, on small tasks with headroom: a sentiment
        # task beside Rotten Tomatoes and a question-type one
        Variant(f"{task}/minilm", task, 500, 300, 1, 14_000_000, teacher_epochs=8, whole_grid=True)
        for task in ("vader_amazon", "trec_questions")
    ]
)


#: The Rotten Tomatoes / BBC News variants of the shipped ``search/priors/meta.csv`` (10–20 min each on the 2
#: cores; the 1,000-example 3-layer ones take ~25 min and are not shipped).
SHIPPED = ["rt250s", "rt250l", "bbc250s", "bbc1000s", "rt1000s", "bbc250l"]
#: The small tasks, every dataset's 1×128 variant first (then 2×256).
SMALL = sorted(
    (v.name for v in VARIANTS if v.small),
    key=lambda n: (not n.endswith("/s"), list(TASKS).index(n.split("/")[0])),
)


def _same(job: Any, spec: dict[str, Any]) -> bool:
    return job.dataset == spec["dataset"] and job.teacher == spec["teacher"] and job.budget == spec["budget"]


def current_jobs(db: Any, home: Path) -> set[str]:
    """The finished jobs of the variants as defined now (an earlier definition's jobs are not exported)."""
    specs = [v.spec(home).model_dump(mode="json") for v in VARIANTS]
    done = [j for j in jobs.list_jobs(db, limit=1000) if j.state == "finished"]
    return {j.id for j in done if any(_same(j, s) for s in specs)}


def run_variant(worker: Worker, variant: Variant) -> None:
    spec = variant.spec(worker.settings.home).model_dump(mode="json")
    for job in jobs.list_jobs(worker.db, limit=1000):
        if _same(job, spec) and job.state == "finished":
            print(f"{variant.name}: done earlier (job {job.id})", flush=True)
            return
    job = jobs.create_job(worker.db, **spec)
    claimed = jobs.claim_job(worker.db, worker.worker_id, job_id=job.id)
    t0 = time.perf_counter()
    worker.process(claimed)
    job = jobs.get_job(worker.db, job.id)
    print(f"{variant.name}: {job.state} in {time.perf_counter() - t0:.0f} s, teacher "
          f"{job.teacher_accuracy}, best {job.best_accuracy} {job.error or ''}", flush=True)  # fmt: skip


def tested_rows(db: Any, keep: set[str] | None = None) -> list[dict[str, Any]]:
    """The database's meta-dataset rows (of the jobs in ``keep``, default all) with each trial's test
    accuracy (``score``) and the teacher's (``teacher_score``), from the jobs' evaluations (``every_trial``);
    rows without one are left out."""
    out, tests = [], {}
    for row in db_rows(db):
        job_id = row["job_id"]
        if keep is not None and job_id not in keep:
            continue
        if job_id not in tests:
            ev = results.get_profile(db, "evaluation", job_id=job_id)
            data = ev.data if ev is not None else {}
            done = trials.finished_trials(db, job_id)
            numbers = {json.dumps(t.pipeline, sort_keys=True): t.number for t in done}
            every = data.get("every_trial") or {}
            teacher = (data.get("teacher") or {}).get("accuracy")
            tests[job_id] = ({k: every.get(str(n), {}).get("accuracy") for k, n in numbers.items()}, teacher)
        by_pipeline, teacher = tests[job_id]
        score = by_pipeline.get(row["pipeline"])
        if score is not None and teacher is not None:
            out.append({**row, "score": score, "teacher_score": teacher, "score_split": "test"})
    return out


def old_rows(out: Path, ours: set[str]) -> list[dict[str, Any]]:
    """The rows already in ``out`` that no job in ``ours`` made (other databases' builds; this database
    writes its current jobs' rows afresh), with their ``score`` (a row without one: its validation
    accuracy)."""
    if not out.is_file():
        return []
    with out.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get("job_id") not in ours]
    return [{**r, "score": r.get("score") or r["accuracy"],
             "teacher_score": r.get("teacher_score") or r["teacher_accuracy"],
             "score_split": r.get("score_split") or "validation"} for r in rows]  # fmt: skip


def merged(old: list[dict[str, Any]], fresh: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``old`` rows then ``fresh`` (test-scored) ones; an old row of a task ``fresh`` has rows of is kept
    only if it is test-scored too: repeats of a task compare on one split. Tasks match by name without the
    data fingerprint (the first build's names had none: ``rotten_tomatoes/250≤14M``)."""
    tested = {bare_task(r["task"]) for r in fresh}
    return [r for r in old if bare_task(r["task"]) not in tested or r["score_split"] == "test"] + fresh


def export(db: Any, out: Path, keep_old: bool = False, keep: set[str] | None = None) -> int:
    """Write the meta-dataset of the finished jobs in ``keep`` (default all in ``db``) to ``out``; with
    ``keep_old``, after the rows already there that another database made (:func:`old_rows`,
    :func:`merged`); returns the number of rows."""
    ours = {j.id for j in jobs.list_jobs(db, limit=100_000)}
    rows = merged(old_rows(out, ours) if keep_old else [], tested_rows(db, keep))
    names = list(dict.fromkeys(k for r in rows for k in r)) or ["task"]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default=",".join(SHIPPED + SMALL),
                    help=f"comma-separated, from: {', '.join(v.name for v in VARIANTS)}")  # fmt: skip
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--export-only", action="store_true", help="only write --out from the database")
    ap.add_argument("--keep-old", action="store_true", help="keep the rows of --out another database made")
    args = ap.parse_args()
    settings = Settings.from_env()
    worker = Worker(Settings(home=settings.home, database_url=f"sqlite:///{settings.home / 'meta.db'}"))
    known = {v.name: v for v in VARIANTS}
    if not args.export_only:
        for name in args.variants.split(","):
            if name not in known:
                raise SystemExit(f"unknown variant {name!r}; known: {', '.join(known)}")
            run_variant(worker, known[name])
    keep = current_jobs(worker.db, settings.home)
    print(f"{export(worker.db, args.out, args.keep_old, keep)} trials written to {args.out}")


if __name__ == "__main__":
    main()
