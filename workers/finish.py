"""The last stage of a job: export the best student, store the measured recommendation (and the Pareto
front of a multi-objective job), mark the job finished, and retrain the recommender with what it learned."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from distill.engine import distill_student
from distill.export import export_student
from distill.pipeline import Pipeline
from search.pareto import pareto_front
from search.tune_events import TrialRecord
from store import results, trials
from store.models import Trial
from store.states import JobState, TrialStatus
from workers import recommend
from workers.recorder import TrialRecorder
from workers.stages import JobRun, Profiled

log = logging.getLogger(__name__)


def finish(run: JobRun, prof: Profiled, recorder: TrialRecorder) -> None:
    trials.backfill_gain(run.db, run.job.id)
    best = trials.leaderboard(run.db, run.job.id, sort="-accuracy", status=TrialStatus.COMPLETED, limit=1)
    if not best:
        raise RuntimeError("no trial completed; see the failed trials' errors")
    top = best[0]
    export_best(run, prof, recorder, top)
    why = results.measured_why(run.db, run.job.id, top)
    results.add_recommendation(run.db, run.job.id, top.pipeline, "measured", score=top.accuracy, why=why)
    objectives = run.job.budget.get("objectives") or ["accuracy"]
    if len(objectives) > 1:
        store_pareto_front(run, objectives)
    run.state(JobState.FINISHED, progress_text=why)
    try:  # learn from this job for the next ones; the job itself is done either way
        recommend.refresh(run.db, run.settings)
    except Exception:
        log.exception("job %s: could not retrain the recommender", run.job.id)


def export_best(run: JobRun, prof: Profiled, recorder: TrialRecorder, top: Trial) -> None:
    """The best trial's student as the job's download: its kept folder, or trained once more if it is gone
    (e.g. an earlier worker died)."""
    student_dir = run.artifacts / "student"
    shutil.rmtree(student_dir, ignore_errors=True)
    kept = recorder.best_dir if recorder.best_dir and recorder.best_dir.name == top.pipeline_key else None
    if kept and kept.is_dir():
        kept.rename(student_dir)
    else:
        run.state(JobState.SEARCHING, progress_text="re-training the best pipeline for export")
        res = distill_student(prof.task, prof.teacher, Pipeline.model_validate(top.pipeline), progress=False)
        export_student(res, prof.teacher, prof.task, student_dir)
    shutil.rmtree(run.artifacts / "trials", ignore_errors=True)
    size = sum(f.stat().st_size for f in Path(student_dir).rglob("*") if f.is_file())
    rel = student_dir.relative_to(run.settings.home).as_posix()
    results.add_artifact(run.db, run.job.id, "student", rel, size=size, trial_id=top.id)


def store_pareto_front(run: JobRun, objectives: list[str]) -> None:
    """Multi-objective jobs keep the Pareto front of their completed trials."""
    done = [t for t in trials.finished_trials(run.db, run.job.id) if t.status == TrialStatus.COMPLETED]
    records = [
        TrialRecord(str(t.number), {}, {o: getattr(t, o) for o in objectives})
        for t in done
        if all(getattr(t, o) is not None for o in objectives)
    ]
    modes = [(o, "max" if o == "accuracy" else "min") for o in objectives]
    front = sorted(int(r.trial_id) for r in pareto_front(records, modes))
    results.add_profile(run.db, "pareto", {"objectives": objectives, "trials": front}, job_id=run.job.id)
