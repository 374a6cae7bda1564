"""The recommender's side of a job: its training rows (shipped priors + the trial database), its versions
in the database, the predicted recommendation before the first trial, and the warm starts it gives the
search. Training is deterministic, so a version is identified by the fingerprint of its rows and a fitted
model is kept in memory per fingerprint (nothing is pickled); its held-out check and importances are
computed once per version, when it is recorded."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from distill.pipeline import Pipeline, describe
from search.meta_rows import MetaRow, RowsError, load_meta_rows
from search.metafeatures import META_KEYS
from search.recommender import PRIOR_NOTES, Recommender, cold_start, rows_fingerprint
from search.space import SearchSpace
from store import results
from store.settings import Settings

log = logging.getLogger(__name__)
_FITTED: dict[str, Recommender] = {}


def task_name(job: Any, fingerprint: str | None = None) -> str:
    """A readable name of a job's task variant, e.g. ``rotten_tomatoes/1000≤14M``: the dataset's name (else
    its file name) and, when known, its content fingerprint (``tweets.csv#3f2a9c1d/all``), so two uploads of
    different data are two tasks even when both are called ``data.csv``."""
    d, limit = job.dataset, job.budget.get("max_params")
    base = d.get("name") or d.get("source", "?").rsplit("/", 1)[-1]
    name = f"{base}{'#' + fingerprint[:8] if fingerprint else ''}/{d.get('max_train') or 'all'}"
    return f"{name}≤{limit / 1e6:.0f}M" if limit else name


def _fingerprint(db: Any, job_id: str, seen: dict[str, str | None]) -> str | None:
    """The job's dataset content fingerprint (its ``dataset`` profile), looked up once per job."""
    if job_id not in seen:
        prof = results.get_profile(db, "dataset", job_id=job_id)
        seen[job_id] = prof.data.get("fingerprint") if prof else None
    return seen[job_id]


def db_rows(db: Any, *, exclude_job: str | None = None) -> list[dict[str, Any]]:
    """One row per completed trial of every finished job with meta-features (the meta-dataset format:
    ``task``, ``job_id``, the meta-features, ``pipeline`` as JSON, ``accuracy``, ``ratio``, ``params``,
    ``wall_seconds``, ``curve``: the validation accuracy and seconds of each epoch, as JSON)."""
    rows, seen = [], {}
    for job, meta, trial in results.meta_trials(db, exclude_job=exclude_job):
        teacher_acc = meta.get("teacher_accuracy") or job.teacher_accuracy
        if not teacher_acc:
            continue
        rows.append(
            {
                "task": task_name(job, _fingerprint(db, job.id, seen)),
                "job_id": job.id,
                **meta,
                "pipeline": json.dumps(trial.pipeline, sort_keys=True),
                "accuracy": trial.accuracy,
                "ratio": trial.accuracy / teacher_acc,
                "params": trial.params,
                "wall_seconds": trial.wall_seconds,
                "curve": json.dumps(
                    [[e.get("accuracy"), round(e.get("seconds", 0.0), 2)] for e in trial.epochs]
                ),
            }
        )
    return rows


def as_meta_rows(rows: list[dict[str, Any]]) -> list[MetaRow]:
    """:func:`db_rows` in the ranker's row format (score: accuracy; the teacher's accuracy beside it)."""
    out = []
    for r in rows:
        meta = {k: float(r[k]) for k in META_KEYS if r.get(k) is not None}
        pipeline = json.loads(r["pipeline"])
        out.append(MetaRow(r["task"], pipeline, float(r["accuracy"]), meta, float(r["teacher_accuracy"])))
    return out


def training_rows(
    db: Any, settings: Settings, *, exclude_job: str | None = None
) -> tuple[list[MetaRow], int]:
    """The shipped priors (if any) followed by the database's rows; and how many came from the priors."""
    prior = load_meta_rows(settings.priors) if settings.priors else []
    return prior + as_meta_rows(db_rows(db, exclude_job=exclude_job)), len(prior)


def trained(db: Any, rows: list[MetaRow], prior_rows: int) -> tuple[Recommender, Any]:
    """The recommender fitted on ``rows`` and its version row (recorded the first time those rows are
    seen, with its held-out check). Raises ``RowsError`` when there is too little to learn from."""
    fp = rows_fingerprint(rows)
    model = _FITTED.get(fp) or Recommender.fit(rows)
    _FITTED[fp] = model
    version = results.model_version(db, fp)
    if version is None:
        held = model.held_out()
        version = results.record_model(
            db, fp, rows=len(rows), tasks=len(model.tasks), prior_rows=prior_rows,
            held_out=held.__dict__ if held else None, importance=model.importance(),
        )  # fmt: skip
        log.info("recommender version %s: %d trials of %d tasks", version.id, len(rows), len(model.tasks))
    return model, version


def refresh(db: Any, settings: Settings) -> int | None:
    """Retrain on everything finished so far (called when a job finishes); the version id, if any."""
    rows, n_prior = training_rows(db, settings)
    try:
        return trained(db, rows, n_prior)[1].id
    except RowsError:
        return None


@dataclass
class Prediction:
    """What the recommender proposes for a job: pipelines best first, and the recommendation's record."""

    pipelines: list[Pipeline]
    why: str
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
    try:
        model, version = trained(db, rows, n_prior)
    except RowsError as e:
        pipelines = cold_start(space, round(10 ** meta["log10_train"]), k=max(k, 1))
        details = {
            "method": "priors",
            "reason": str(e),
            "alternatives": [{"pipeline": describe(p), "percentile": None} for p in pipelines],
        }
        return Prediction(pipelines, PRIOR_NOTES, details)
    ranked = model.rank(meta, candidates, k=max(k, 1))
    nearest = model.nearest(meta)
    best, held = ranked[0], version.held_out
    near = ", ".join(n.task for n in nearest)
    why = (
        f"ranked first of {len(candidates)} candidate pipelines by recommender v{version.id} ({len(rows)} "
        f"trials of {len(model.tasks)} tasks): predicted to beat {best.percentile:.0%} of a task's pipelines "
        f"(±{best.spread:.0%}); nearest tasks: {near}"
    )
    if held:
        pts = {k: f"{100 * held[k]:.1f}" for k in ("one_shot", "fixed", "random")}
        why += (
            f"; on {held['tasks']} held-out tasks its first pick (one model a fit) was {pts['one_shot']} "
            f"points below the best (best fixed pipeline: {pts['fixed']}, random: {pts['random']})"
        )
    if not best.seen:
        beyond = ", ".join(model.outside(best.pipeline))
        why += f"; no candidate lies wholly within the past trials ({beyond} beyond them): this extrapolates"
    details = {
        "method": "model",
        "percentile": round(best.percentile, 4),
        "model_version": version.id,
        "trained_on": {"trials": len(rows), "tasks": len(model.tasks), "prior_trials": n_prior},
        "held_out": held,
        "nearest": [n.__dict__ for n in nearest],
        "alternatives": [
            {"pipeline": describe(s.pipeline), "percentile": round(s.percentile, 4)} for s in ranked
        ],
        "importance": version.importance,
        "scored": len(candidates),
        "seen": best.seen,
    }
    return Prediction([s.pipeline for s in ranked], why, details)
