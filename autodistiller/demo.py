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
from distill.data import load_task
from distill.finetune import FinetuneConfig, finetune_teacher
from store import make_engine, results, session_factory
from store.settings import Settings
from store.spec import DatasetRef, FinetuneRef, JobBudget, JobSpec, TeacherRef
from store.states import JobState
from workers.run import run_job_in_process


def run_demo(
    settings: Settings, n_train: int = 1500, n_val: int = 500, max_length: int = 64, trials: int = 6
) -> None:
    t0 = time.perf_counter()
    task = load_task("rotten_tomatoes").subset(n_train, n_val, seed=0)
    print(
        f"data: Rotten Tomatoes, a stratified subset of {len(task.train)} train / {len(task.validation)} "
        f"validation reviews (of 12,752), {max_length}-token sequences; caches in {settings.home}"
    )
    finetune_teacher(minilm_dir(), task, settings.teachers, FinetuneConfig(max_length=max_length))
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
    job = run_job_in_process(spec, settings, top=3)
    if job.state != JobState.FINISHED:
        raise SystemExit(f"demo search {job.state}: {job.error}")

    db = session_factory(make_engine(settings.database_url))
    teacher = results.get_profile(db, "teacher", job_id=job.id).data
    best = trials.leaderboard(db, job.id, sort="-accuracy", status="completed", limit=1)[0]
    t_acc, t_params, t_lat = teacher["accuracy"], teacher["params"], teacher["latency_ms"]
    print(f"\n{'model':<10}{'val accuracy':>14}{'params':>10}{f'CPU latency (1×{max_length})':>26}")
    print(f"{'teacher':<10}{t_acc:>14.4f}{t_params / 1e6:>9.1f}M{t_lat:>23.1f} ms")
    print(f"{'student':<10}{best.accuracy:>14.4f}{best.params / 1e6:>9.1f}M{best.latency_ms:>23.1f} ms")
    print(
        f"the best student keeps {best.accuracy / t_acc:.1%} of the teacher's accuracy with "
        f"{best.params / t_params:.0%} of its parameters, {t_lat / best.latency_ms:.1f}× faster "
        f"({time.perf_counter() - t0:.0f} s in all)"
    )
