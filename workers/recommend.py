"""The recommender's side of a job: its training rows (shipped priors + the trial database), its versions
in the database, the predicted recommendation before the first trial, and the warm starts it gives the
search. Training is deterministic, so a version is identified by the fingerprint of its rows and a fitted
model is kept in memory per fingerprint (nothing is pickled)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from distill.pipeline import Pipeline, describe
from search.recommender import (
    PRIOR_NOTES,
    Recommender,
    cold_start,
    load_rows,
    rows_fingerprint,
    task_cv_mae,
)
from search.space import SearchSpace
from store import results
from store.settings import Settings

log = logging.getLogger(__name__)
_FITTED: dict[str, Recommender] = {}


def task_name(job: Any) -> str:
    """A readable name of a job's task variant, e.g. ``rotten_tomatoes/1000≤14M``."""
    d, limit = job.dataset, job.budget.get("max_params")
    name = f"{d.get('source', '?').rsplit('/', 1)[-1]}/{d.get('max_train') or 'all'}"
    return f"{name}≤{limit / 1e6:.0f}M" if limit else name


def db_rows(db: Any, *, exclude_job: str | None = None) -> list[dict[str, Any]]:
    """One row per completed trial of every finished job with meta-features (the meta-dataset format:
    ``task``, ``job_id``, the meta-features, ``pipeline`` as JSON, ``accuracy``, ``ratio``, ``params``,
    ``wall_seconds``)."""
    rows = []
    for job, meta, trial in results.meta_trials(db, exclude_job=exclude_job):
        teacher_acc = meta.get("teacher_accuracy") or job.teacher_accuracy
        if not teacher_acc:
            continue
        rows.append(
            {
                "task": task_name(job),
                "job_id": job.id,
                **meta,
                "pipeline": json.dumps(trial.pipeline, sort_keys=True),
                "accuracy": trial.accuracy,
                "ratio": trial.accuracy / teacher_acc,
                "params": trial.params,
                "wall_seconds": trial.wall_seconds,
            }
        )
    return rows


def training_rows(db: Any, settings: Settings, *, exclude_job: str | None = None) -> tuple[list[dict], int]:
    """The shipped priors (if any) followed by the database's rows; and how many came from the priors."""
    prior = load_rows(settings.priors) if settings.priors else []
    return prior + db_rows(db, exclude_job=exclude_job), len(prior)


def trained(db: Any, rows: list[dict[str, Any]], prior_rows: int) -> tuple[Recommender, Any]:
    """The recommender fitted on ``rows`` and its version row (recorded the first time those rows are
    seen). Raises ``ValueError`` when there is too little to learn from."""
    fp = rows_fingerprint(rows)
    model = _FITTED.get(fp) or Recommender.fit(rows)
    _FITTED[fp] = model
    version = results.model_version(db, fp)
    if version is None:
        version = results.record_model(
            db, fp, rows=len(rows), tasks=len(model.tasks), prior_rows=prior_rows, cv_mae=task_cv_mae(rows),
            importance=model.importance(),
        )  # fmt: skip
        log.info("recommender version %s: %d trials of %d tasks", version.id, len(rows), len(model.tasks))
    return model, version


def refresh(db: Any, settings: Settings) -> int | None:
    """Retrain on everything finished so far (called when a job finishes); the version id, if any."""
    rows, n_prior = training_rows(db, settings)
    try:
        return trained(db, rows, n_prior)[1].id
    except ValueError:
        return None


@dataclass
class Prediction:
    """What the recommender proposes for a job: pipelines best first, and the recommendation's record."""

    pipelines: list[Pipeline]
    why: str
    score: float | None = None  # predicted accuracy of the first
    details: dict[str, Any] = field(default_factory=dict)


def predict(
    db: Any,
    settings: Settings,
    job_id: str,
    meta: dict[str, float],
    space: SearchSpace,
    candidates: list[Pipeline],
    *,
    k: int = 3,
) -> Prediction:
    """Rank ``candidates`` for the job with ``meta`` by a model of every other finished trial; with too
    little data, the cold-start priors (Distiller's findings)."""
    rows, n_prior = training_rows(db, settings, exclude_job=job_id)
    teacher_acc = meta["teacher_accuracy"]
    try:
        model, version = trained(db, rows, n_prior)
    except ValueError as e:
        pipelines = cold_start(space, round(10 ** meta["log10_train"]), k=max(k, 1))
        details = {
            "method": "priors",
            "reason": str(e),
            "alternatives": [{"pipeline": describe(p), "ratio": None} for p in pipelines],
        }
        return Prediction(pipelines, PRIOR_NOTES, None, details)
    ranked = model.rank(meta, candidates, k=max(k, 1))
    nearest = model.nearest(meta)
    best = ranked[0]
    near = ", ".join(f"{n.task} (best {n.best_ratio:.1%})" for n in nearest)
    why = (
        f"predicted {best.ratio:.1%} of the teacher's accuracy (≈{best.ratio * teacher_acc:.4f}) by "
        f"recommender v{version.id} ({len(rows)} trials of {len(model.tasks)} tasks); nearest: {near}"
    )
    if not best.seen:
        why += "; no candidate is like the past trials (students, components), so this extrapolates"
    details = {
        "method": "model",
        "ratio": round(best.ratio, 5),
        "model_version": version.id,
        "trained_on": {"trials": len(rows), "tasks": len(model.tasks), "prior_trials": n_prior},
        "cv_mae": version.cv_mae,
        "nearest": [n.__dict__ for n in nearest],
        "alternatives": [{"pipeline": describe(s.pipeline), "ratio": round(s.ratio, 5)} for s in ranked],
        "importance": model.importance(),
        "scored": len(candidates),
        "seen": best.seen,
    }
    return Prediction([s.pipeline for s in ranked], why, best.ratio * teacher_acc, details)
