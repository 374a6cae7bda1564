"""Run one job in this process with a live progress bar and leaderboard (``autodistiller search``/demo)."""

from __future__ import annotations

from tqdm.auto import tqdm

from distill.pipeline import Pipeline, describe
from store import jobs, results, trials
from store.keys import ensure_local_key, key_for
from store.models import Job
from store.settings import Settings
from store.spec import JobSpec
from workers.report import leaderboard_table
from workers.worker import Worker


def run_job_in_process(
    spec: JobSpec, settings: Settings, *, ray_address: str | None = None, top: int = 5
) -> Job:
    """Queue ``spec`` in the settings' database and run it with an in-process worker; print as it goes."""
    worker = Worker(settings, ray_address=ray_address)
    owner = local_owner(worker)
    job = jobs.create_job(worker.db, **spec.model_dump(mode="json"), owner=owner)
    claimed = jobs.claim_job(worker.db, worker.worker_id, worker.stale_after_s, job_id=job.id)
    assert claimed is not None, "a job just created is claimable"
    bar = tqdm(total=spec.budget.trials, desc="search", unit="trial")

    def on_trial(job_id: str) -> None:
        j = jobs.get_job(worker.db, job_id)
        bar.n = j.trials_done
        bar.set_postfix(best=f"{j.best_accuracy:.4f}" if j.best_accuracy is not None else "-")
        bar.refresh()
        bar.write(leaderboard_table(trials.leaderboard(worker.db, job_id, limit=top), j.teacher_accuracy))

    worker.on_trial = on_trial
    worker.on_recommendation = lambda job_id: bar.write(predicted_text(worker, job_id))
    db_url = worker.settings.database_url
    print(f"job {job.id}: {spec.budget.trials} trials on {spec.dataset.source} (database {db_url})")
    worker.process(claimed)
    bar.close()
    job = jobs.get_job(worker.db, job.id)
    print_summary(worker, job)
    return job


def local_owner(worker: Worker) -> str | None:
    """The embedded setup's local API key (created if no key exists yet): the job is then listed in the
    dashboard of ``autodistiller serve`` on the same data folder. ``None`` when other keys exist."""
    key, _ = ensure_local_key(worker.settings)
    row = key_for(worker.db, key) if key else None
    return row.id if row else None


def print_summary(worker: Worker, job: Job) -> None:
    print(f"\njob {job.id}: {job.state}" + (f" — {job.error}" if job.error else ""))
    board = trials.leaderboard(worker.db, job.id, sort="-accuracy", limit=1000)
    if not board:
        return
    print(leaderboard_table(board, job.teacher_accuracy))
    scored = results.get_profile(worker.db, "candidates", job_id=job.id)
    if scored is not None and scored.data.get("source") == "diswot":
        rows = scored.data["candidates"]
        picked = sorted({f"{r['arch']['layers']}×{r['arch']['hidden']}" for r in rows if r["picked"]})
        print(f"\nDisWOT student search: {len(rows)} candidates scored without training "
              f"({scored.data['per_second']:.1f}/s); picked {', '.join(picked)}")  # fmt: skip
    front = results.get_profile(worker.db, "pareto", job_id=job.id)
    if front is not None:
        print(f"\nPareto front ({' × '.join(front.data['objectives'])}): trials {front.data['trials']}")
    rec = results.latest_recommendation(worker.db, job.id)
    if rec is not None:
        print(f"\nrecommended pipeline: {describe(rec.pipeline)}\n  why: {rec.why}")
    if (verdict := prediction_verdict(worker, job.id)) is not None:
        print(f"  {verdict}")
    for art in results.list_artifacts(worker.db, job.id, kind="student"):
        print(f"  student: {worker.settings.home / art.path}")
    if job.owner is not None:
        print(f"  browse it: `autodistiller serve`, then http://127.0.0.1:8000/ui/jobs/{job.id} "
              f"(key in {worker.settings.key_file})")  # fmt: skip


def predicted_text(worker: Worker, job_id: str) -> str:
    """The recommender's prediction for the job, before its first trial."""
    rec = results.latest_recommendation(worker.db, job_id, source="predicted")
    if rec is None:
        return "no prediction"
    lines = [f"\npredicted before any trial: {describe(rec.pipeline)}", f"  why: {rec.why}"]
    for alt in (rec.details or {}).get("alternatives", [])[1:]:
        ratio = f" ({alt['ratio']:.1%} of the teacher)" if alt.get("ratio") is not None else ""
        lines.append(f"  runner-up: {alt['pipeline']}{ratio}")
    lines.append("  the search starts with these, after the no-KD and vanilla-KD references\n")
    return "\n".join(lines)


def prediction_verdict(worker: Worker, job_id: str) -> str | None:
    """Whether the search confirmed the predicted pipeline or beat it, in points of accuracy."""
    rec = results.latest_recommendation(worker.db, job_id, source="predicted")
    best = trials.leaderboard(worker.db, job_id, sort="-accuracy", status="completed", limit=1)
    if rec is None or not best:
        return None
    trial = results.trial_for_pipeline(worker.db, job_id, Pipeline.model_validate(rec.pipeline).key())
    if trial is None or trial.accuracy is None:
        return "the predicted pipeline was not trained to the end"
    gap = 100 * (best[0].accuracy - trial.accuracy)
    predicted = f" (predicted {rec.score:.4f})" if rec.score is not None else ""
    if trial.id == best[0].id or gap == 0:
        return f"the search confirmed the prediction: it measured {trial.accuracy:.4f}{predicted}, the best"
    runners_up = [a.get("pipeline") for a in (rec.details or {}).get("alternatives", [])[1:]]
    whose = ", a runner-up of the prediction" if describe(best[0].pipeline) in runners_up else ""
    return (
        f"the predicted pipeline measured {trial.accuracy:.4f}{predicted}; the search beat it by "
        f"{gap:.1f} points (trial {best[0].number}{whose})"
    )
