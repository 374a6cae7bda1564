"""``autodistiller demo``: a real teacher, a recommendation, a real search and a real student, in minutes.

Fine-tunes the shipped MiniLM encoder into a Rotten Tomatoes teacher (once; cached), then runs a small job
with an in-process worker: the DisWOT student search (training-free) picks student candidates under a
16M-parameter budget; the recommender, trained on the shipped meta-dataset and past jobs, predicts the best
pipelines before any training (printed first); then the two reference trials, the predicted pipelines and
sampled ones are trained; it prints the leaderboard, whether the search confirmed or beat the prediction,
and the best student against the teacher.
"""

from __future__ import annotations

import time

from distill.assets import minilm_dir
from distill.data import load_subset
from distill.finetune import FinetuneConfig, finetune_teacher
from distill.holdout import interval_text, speed_text
from store import make_engine, results, session_factory
from store.settings import Settings
from store.spec import DatasetRef, FinetuneRef, JobBudget, JobSpec, TeacherRef
from store.states import JobState
from workers.run import run_job_in_process


def run_demo(
    settings: Settings, n_train: int = 1500, n_val: int = 500, max_length: int = 64, trials: int = 6
) -> None:
    t0 = time.perf_counter()
    spec = JobSpec(
        dataset=DatasetRef(source="rotten_tomatoes", max_train=n_train, max_val=n_val),
        teacher=TeacherRef(base="minilm", finetune=FinetuneRef(max_length=max_length)),
        budget=JobBudget(
            trials=trials,
            space="small",
            max_length=max_length,
            cpus_per_trial=2,
            max_params=16_000_000,  # every student under 16M parameters (the teacher has 22.7M)
            student_top_k=2,
            student_evaluations=30,
        ),
    )
    task = load_subset(**spec.dataset.model_dump())  # the job's own splits: its teacher is cached
    print(
        f"data: Rotten Tomatoes, a stratified subset of {len(task.train)} train / {len(task.validation)} "
        f"validation reviews, and {len(task.test)} held-out test reviews (of 12,752), {max_length}-token "
        f"sequences; caches in {settings.home}"
    )
    finetune_teacher(minilm_dir(), task, settings.teachers, FinetuneConfig(max_length=max_length))
    job = run_job_in_process(spec, settings, top=3)
    if job.state != JobState.FINISHED:
        raise SystemExit(f"demo search {job.state}: {job.error}")

    db = session_factory(make_engine(settings.database_url))
    _print_answer(db, job.id)
    print(f"({time.perf_counter() - t0:.0f} s in all)")


def _print_answer(db: object, job_id: str) -> None:
    """The teacher and the recommended student side by side: validation, test with its 95% interval,
    size, and the speed measured side by side (its settings printed with it)."""
    teacher = results.get_profile(db, "teacher", job_id=job_id).data
    ev = results.get_profile(db, "evaluation", job_id=job_id).data
    rec = results.latest_recommendation(db, job_id, source="measured")
    chosen = next(t for t in results.trial_rows(db, job_id) if t.number == ev["recommended"])
    print(f"\n{'model':<10}{'validation':>12}{'test (95% CI)':>36}{'params':>10}")
    for name, val, test, params in (
        ("teacher", teacher["accuracy"], ev.get("teacher"), teacher["params"]),
        ("student", chosen.accuracy, (ev.get("trials") or {}).get(str(chosen.number)), chosen.params),
    ):
        shown = interval_text(test) if test else "-"
        print(f"{name:<10}{val:>12.4f}{shown:>36}{params / 1e6:>9.1f}M")
    if ev.get("speed"):
        print(speed_text(ev["speed"]))
    print(f"why: {rec.why}" if rec else "")
