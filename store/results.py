"""What a job produces besides trials: artifacts (the exported students), recommendations, profiles, and the
recommender's versions and training rows."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from store.models import (
    REC_SOURCES,
    Artifact,
    Job,
    Profile,
    Recommendation,
    RecommenderModel,
    Trial,
    utcnow,
)
from store.states import (
    FINISHED_STATUSES,
    JobState,
    TrialStatus,
)
from store.trials import count_trials, reference_trials
from store.tx import Db, pipeline_doc, read, tx

if TYPE_CHECKING:
    from distill.pipeline import Pipeline


def add_artifact(
    db: Db, job_id: str, kind: str, path: str, *, size: int | None = None, trial_id: int | None = None
) -> Artifact:
    """Record a file under the data folder; ``path`` must be relative to it (no ``..``)."""
    rel = PurePosixPath(str(path).replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ValueError(f"artifact path must be relative to the data folder, got {path!r}")
    with tx(db) as s:
        artifact = Artifact(
            job_id=job_id, trial_id=trial_id, kind=kind, path=rel.as_posix(), size=size, created_at=utcnow()
        )
        s.add(artifact)
        s.flush()
        return artifact


def list_artifacts(db: Db, job_id: str, *, kind: str | None = None) -> list[Artifact]:
    q = select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.id)
    if kind is not None:
        q = q.where(Artifact.kind == kind)
    with read(db) as s:
        return list(s.scalars(q))


def add_recommendation(
    db: Db,
    job_id: str,
    pipeline: Pipeline | Mapping[str, Any],
    source: str,
    *,
    score: float | None = None,
    why: str = "",
    details: Mapping[str, Any] | None = None,
) -> Recommendation:
    """Record the pipeline the service would use now: ``predicted`` (before trials) or ``measured``."""
    if source not in REC_SOURCES:
        raise ValueError(f"recommendation source must be one of {REC_SOURCES}, not {source!r}")
    with tx(db) as s:
        rec = Recommendation(
            job_id=job_id,
            pipeline=pipeline_doc(pipeline)[0],
            source=source,
            score=score,
            why=why,
            details=dict(details) if details is not None else None,
            created_at=utcnow(),
        )
        s.add(rec)
        s.flush()
        return rec


def latest_recommendation(db: Db, job_id: str, *, source: str | None = None) -> Recommendation | None:
    q = select(Recommendation).where(Recommendation.job_id == job_id)
    if source is not None:
        q = q.where(Recommendation.source == source)
    q = q.order_by(Recommendation.created_at.desc(), Recommendation.id.desc()).limit(1)
    with read(db) as s:
        return s.scalars(q).first()


def add_profile(db: Db, kind: str, data: Mapping[str, Any], *, job_id: str | None = None) -> Profile:
    """Store a ``teacher``/``dataset`` profile or the scored ``candidates`` (``job_id`` optional)."""
    with tx(db) as s:
        profile = Profile(job_id=job_id, kind=kind, data=dict(data), created_at=utcnow())
        s.add(profile)
        s.flush()
        return profile


def get_profile(db: Db, kind: str, *, job_id: str | None = None) -> Profile | None:
    """The newest profile of ``kind`` for ``job_id`` (``None``: job-less profiles)."""
    q = select(Profile).where(Profile.kind == kind)
    q = q.where(Profile.job_id.is_(None) if job_id is None else Profile.job_id == job_id)
    q = q.order_by(Profile.created_at.desc(), Profile.id.desc()).limit(1)
    with read(db) as s:
        return s.scalars(q).first()


def meta_trials(db: Db, *, exclude_job: str | None = None) -> list[tuple[Job, dict[str, Any], Trial]]:
    """What the recommender learns from: (job, its ``meta`` profile, trial) for every completed trial with
    an accuracy of every finished job that has meta-features, oldest job first."""
    metas = select(Profile.job_id, func.max(Profile.id).label("pid")).where(Profile.kind == "meta")
    metas = metas.group_by(Profile.job_id).subquery()
    q = (
        select(Job, Profile.data, Trial)
        .join(metas, metas.c.job_id == Job.id)
        .join(Profile, Profile.id == metas.c.pid)
        .join(Trial, Trial.job_id == Job.id)
        .where(
            Job.state == JobState.FINISHED, Trial.status == TrialStatus.COMPLETED, Trial.accuracy.is_not(None)
        )
        .order_by(Job.created_at, Job.id, Trial.number)
    )
    if exclude_job is not None:
        q = q.where(Job.id != exclude_job)
    with read(db) as s:
        return [(job, dict(data), trial) for job, data, trial in s.execute(q)]


def record_model(db: Db, fingerprint: str, **fields: Any) -> RecommenderModel:
    """The recommender version trained on rows with ``fingerprint``: the existing one, else a new one
    (two workers recording the same rows at once get the same version)."""
    if (found := model_version(db, fingerprint)) is not None:
        return found
    try:
        with tx(db) as s:
            model = RecommenderModel(fingerprint=fingerprint, created_at=utcnow(), **fields)
            s.add(model)
            s.flush()
            return model
    except IntegrityError:  # another worker recorded it first
        found = model_version(db, fingerprint)
        assert found is not None
        return found


def model_version(db: Db, fingerprint: str) -> RecommenderModel | None:
    with read(db) as s:
        return s.scalars(select(RecommenderModel).where(RecommenderModel.fingerprint == fingerprint)).first()


def latest_model(db: Db) -> RecommenderModel | None:
    """The newest recommender version."""
    with read(db) as s:
        return s.scalars(select(RecommenderModel).order_by(RecommenderModel.id.desc()).limit(1)).first()


def trial_for_pipeline(db: Db, job_id: str, key: str) -> Trial | None:
    """The job's finished trial of the pipeline with ``key`` (a completed one first), if it ran."""
    q = select(Trial).where(
        Trial.job_id == job_id, Trial.pipeline_key == key, Trial.status != TrialStatus.RUNNING
    )
    q = q.order_by((Trial.status == TrialStatus.COMPLETED).desc(), Trial.number).limit(1)
    with read(db) as s:
        return s.scalars(q).first()


def measured_why(db: Db, job_id: str, top: Trial) -> str:
    """Why ``top`` is the best measured pipeline: how many trials it beat, its gain over the references, its
    share of the teacher's accuracy (the worker stores it at the end; the API shows it during the search)."""
    refs = reference_trials(db, job_id)
    n = count_trials(db, job_id, status=FINISHED_STATUSES)
    why = [f"best of {n} trials by validation accuracy ({top.accuracy:.4f})"]
    for name in ("vanilla_kd", "no_kd"):
        if name in refs and refs[name].accuracy is not None and top.accuracy is not None:
            why.append(f"{top.accuracy - refs[name].accuracy:+.4f} over {name.replace('_', ' ')}")
    if top.ratio_to_teacher:
        why.append(f"{top.ratio_to_teacher:.1%} of the teacher's accuracy")
    return "; ".join(why)


def trial_rows(db: Db, job_id: str) -> list[Trial]:
    """Every trial row of the job by number."""
    with read(db) as s:
        return list(s.scalars(select(Trial).where(Trial.job_id == job_id).order_by(Trial.number)))
