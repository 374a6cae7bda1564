"""Every query on the trial database, in one place (the API and the workers call these, nothing else).

Each function takes ``db``: a ``Session`` or a ``sessionmaker``. Write functions run one transaction and
commit it (a sessionmaker gets a fresh session per call, which is what concurrent workers should pass); read
functions only read. Returned objects stay readable after the session closes (``expire_on_commit=False``).

Claiming is safe with many workers in many processes: on PostgreSQL the candidate row is locked with
``SELECT … FOR UPDATE SKIP LOCKED``; on both backends the claim itself is a conditional ``UPDATE`` that
re-checks "still claimable" and counts the rows it changed, so of two racing workers exactly one wins (SQLite
serialises writers, PostgreSQL re-evaluates the WHERE clause on the locked row).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from datetime import timedelta
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from distill.pipeline import pipeline_key
from store.models import (
    ACTIVE_STATES,
    JOB_STATES,
    REC_SOURCES,
    TERMINAL_STATES,
    Artifact,
    Job,
    Profile,
    Recommendation,
    RecommenderModel,
    Trial,
    UTCDateTime,
    new_id,
    utcnow,
)

if TYPE_CHECKING:
    from distill.pipeline import Pipeline

Db = Session | sessionmaker[Session]
FINISHED_STATUSES = ("completed", "pruned", "failed")
SORT_KEYS = (
    "accuracy",
    "macro_f1",
    "params",
    "latency_ms",
    "ratio_to_teacher",
    "gain_over_no_kd",
    "wall_seconds",
    "number",
    "started_at",
    "finished_at",
)


#: SQLite has one writer at a time, and its busy handler is unfair (a waiting writer sleeps up to 100 ms
#: between tries while others take the lock): queue this process's write transactions here instead.
_SQLITE_WRITES = threading.RLock()  # re-entrant: a write function may call another


class TrialStateError(ValueError):
    """The trial is not in the state the call needs (finished already, or replaced by a re-run)."""


@contextmanager
def _tx(db: Db) -> Iterator[Session]:
    """One transaction: commit on success, roll back on error."""
    if isinstance(db, Session):
        try:
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise
    else:
        bind = db.kw.get("bind")
        lock = _SQLITE_WRITES if bind is not None and bind.dialect.name == "sqlite" else nullcontext()
        with lock, db() as s, s.begin():
            yield s


@contextmanager
def _read(db: Db) -> Iterator[Session]:
    if isinstance(db, Session):
        yield db
    else:
        with db() as s:
            yield s


def _pipeline_doc(pipeline: Pipeline | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """JSON document and key of a ``Pipeline`` (or of its ``model_dump(mode="json")``, same key)."""
    if not isinstance(pipeline, Mapping):
        return pipeline.model_dump(mode="json"), pipeline.key()
    doc = dict(pipeline)
    return doc, pipeline_key(doc)


# ---------------------------------------------------------------------------------------------------- jobs


def create_job(
    db: Db,
    *,
    dataset: Mapping[str, Any],
    teacher: Mapping[str, Any],
    budget: Mapping[str, Any] | None = None,
    owner: str | None = None,
    idempotency_key: str | None = None,
    study_name: str | None = None,
    dataset_id: str | None = None,
    teacher_id: str | None = None,
) -> Job:
    """Queue a job. With an ``idempotency_key`` already used by ``owner``, return that job instead."""
    budget = dict(budget or {})

    def existing(s: Session) -> Job | None:
        q = select(Job).where(Job.idempotency_key == idempotency_key)
        q = q.where(Job.owner.is_(None) if owner is None else Job.owner == owner)
        return s.scalars(q).first()

    try:
        with _tx(db) as s:
            if idempotency_key is not None and (job := existing(s)) is not None:
                return job
            job_id = new_id()
            job = Job(
                id=job_id,
                owner=owner,
                state="queued",
                dataset=dict(dataset),
                teacher=dict(teacher),
                dataset_id=dataset_id,
                teacher_id=teacher_id,
                budget=budget,
                trials_done=0,
                trials_budget=budget.get("trials"),
                progress_text="queued",
                attempts=0,
                created_at=utcnow(),
                idempotency_key=idempotency_key,
                study_name=study_name or f"autodistiller-{job_id}",
            )
            s.add(job)
        return job
    except IntegrityError:  # a concurrent request with the same key won the race
        if idempotency_key is None:
            raise
        with _read(db) as s:
            if (job := existing(s)) is None:
                raise
            return job


def get_job(db: Db, job_id: str) -> Job | None:
    with _read(db) as s:
        return s.get(Job, job_id, populate_existing=True)


def _job_filter(owner: str | None, state: str | None) -> list[ColumnElement[bool]]:
    where = [] if owner is None else [Job.owner == owner]
    return where if state is None else [*where, Job.state == state]


def list_jobs(
    db: Db, *, owner: str | None = None, state: str | None = None, limit: int = 50, offset: int = 0
) -> list[Job]:
    """Newest first; ``owner``/``state`` filter when given."""
    q = select(Job).where(*_job_filter(owner, state))
    q = q.order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)
    with _read(db) as s:
        return list(s.scalars(q))


def count_jobs(db: Db, *, owner: str | None = None, state: str | None = None) -> int:
    """How many jobs ``list_jobs`` pages through."""
    with _read(db) as s:
        return s.scalar(select(func.count()).select_from(Job).where(*_job_filter(owner, state))) or 0


def _claimable(cutoff: Any) -> ColumnElement[bool]:
    stale = or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff)
    return or_(Job.state == "queued", and_(Job.state.in_(ACTIVE_STATES), stale))


def claim_job(
    db: Db,
    worker_id: str,
    heartbeat_timeout_s: float = 60.0,
    *,
    max_attempts: int = 3,
    job_id: str | None = None,
) -> Job | None:
    """Take the oldest queued job, or a profiling/searching job whose worker stopped heart-beating for
    ``heartbeat_timeout_s`` (its state is kept, so the new worker resumes). Sets ``worker_id``,
    ``heartbeat_at``, ``attempts + 1``. A lost job already tried ``max_attempts`` times is failed instead.
    With ``job_id``, only that job is considered.
    Returns ``None`` when nothing is claimable."""
    while True:
        with _tx(db) as s:
            now = utcnow()
            cutoff = now - timedelta(seconds=heartbeat_timeout_s)
            q = select(Job.id, Job.state, Job.attempts).where(_claimable(cutoff))
            if job_id is not None:  # an in-process worker running the job it just created
                q = q.where(Job.id == job_id)
            q = q.order_by(Job.created_at, Job.id).limit(1)
            if s.get_bind().dialect.name == "postgresql":
                q = q.with_for_update(skip_locked=True)
            row = s.execute(q).first()
            if row is None:
                return None
            give_up = row.state != "queued" and row.attempts >= max_attempts
            if give_up:
                values: dict[str, Any] = {
                    "state": "failed",
                    "finished_at": now,
                    "error": f"its worker was lost {row.attempts} times (no heartbeat for "
                    f"{heartbeat_timeout_s:g} s); not retried",
                }
            else:
                values = {
                    "worker_id": worker_id,
                    "heartbeat_at": now,
                    "attempts": Job.attempts + 1,
                    "state": "profiling" if row.state == "queued" else row.state,
                    "started_at": func.coalesce(Job.started_at, literal(now, UTCDateTime())),
                }
            won = s.execute(
                update(Job)
                .where(Job.id == row.id, _claimable(cutoff))
                .values(**values)
                .execution_options(synchronize_session=False)
            ).rowcount
            if won and not give_up:
                q = select(Job).where(Job.id == row.id).execution_options(populate_existing=True)
                return s.scalars(q).one()
        # lost the race for this row (or failed it): look again


def heartbeat(db: Db, job_id: str, worker_id: str) -> bool:
    """Record that ``worker_id`` is alive on the job. ``False``: the job is no longer this worker's (another
    worker took it over, or it was cancelled or finished) — the worker should stop."""
    with _tx(db) as s:
        res = s.execute(
            update(Job)
            .where(Job.id == job_id, Job.worker_id == worker_id, Job.state.in_(ACTIVE_STATES))
            .values(heartbeat_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return res.rowcount == 1


def set_state(
    db: Db,
    job_id: str,
    state: str,
    *,
    error: str | None = None,
    progress_text: str | None = None,
    teacher_accuracy: float | None = None,
    worker_id: str | None = None,
) -> bool:
    """Move the job to ``state`` (terminal states stamp ``finished_at``). A job that is already finished,
    failed or cancelled is left alone; with ``worker_id``, so is a job another worker holds. Returns whether
    the row changed."""
    if state not in JOB_STATES:
        raise ValueError(f"unknown job state {state!r}; one of {JOB_STATES}")
    values: dict[str, Any] = {"state": state}
    if state in TERMINAL_STATES:
        values["finished_at"] = utcnow()
    if error is not None:
        values["error"] = error
    if progress_text is not None:
        values["progress_text"] = progress_text
    if teacher_accuracy is not None:
        values["teacher_accuracy"] = teacher_accuracy
    q = update(Job).where(Job.id == job_id, Job.state.not_in(TERMINAL_STATES))
    if worker_id is not None:
        q = q.where(Job.worker_id == worker_id)
    with _tx(db) as s:
        return s.execute(q.values(**values).execution_options(synchronize_session=False)).rowcount == 1


def cancel_job(db: Db, job_id: str) -> bool:
    """Cancel a job that has not ended; its running trials are marked failed. The worker notices at its
    next heartbeat. Returns ``False`` if the job does not exist or had already ended."""
    now = utcnow()
    with _tx(db) as s:
        done = s.execute(
            update(Job)
            .where(Job.id == job_id, Job.state.not_in(TERMINAL_STATES))
            .values(state="cancelled", finished_at=now, progress_text="cancelled")
            .execution_options(synchronize_session=False)
        ).rowcount
        if done:
            s.execute(
                update(Trial)
                .where(Trial.job_id == job_id, Trial.status == "running")
                .values(status="failed", error="job cancelled", finished_at=now)
                .execution_options(synchronize_session=False)
            )
        return done == 1


# -------------------------------------------------------------------------------------------------- trials


def start_trial(
    db: Db,
    job_id: str,
    number: int,
    pipeline: Pipeline | Mapping[str, Any],
    *,
    is_reference: str | None = None,
) -> Trial:
    """Record trial ``number`` of a job as running. A trial with that number still ``running`` (its worker
    died) is replaced by a new row with a new id; a finished one raises ``TrialStateError`` (finished trials
    are never lost or repeated: see ``finished_trials``)."""
    doc, key = _pipeline_doc(pipeline)
    with _tx(db) as s:
        old = s.scalars(select(Trial).where(Trial.job_id == job_id, Trial.number == number)).first()
        if old is not None:
            if old.status != "running":
                raise TrialStateError(f"trial {number} of job {job_id} already {old.status}")
            s.delete(old)
            s.flush()
        trial = Trial(
            job_id=job_id,
            number=number,
            pipeline=doc,
            pipeline_key=key,
            status="running",
            is_reference=is_reference,
            epochs=[],
            started_at=utcnow(),
        )
        s.add(trial)
        s.flush()
        return trial


def record_epoch(db: Db, trial_id: int, metrics: Mapping[str, Any]) -> None:
    """Append one epoch's metrics to a running trial (live curves while it trains)."""
    with _tx(db) as s:
        trial = s.get(Trial, trial_id, populate_existing=True)
        if trial is None or trial.status != "running":
            raise TrialStateError(f"trial {trial_id} is not running")
        trial.epochs = [*trial.epochs, dict(metrics)]


def finish_trial(
    db: Db,
    trial_id: int,
    status: str,
    *,
    accuracy: float | None = None,
    macro_f1: float | None = None,
    params: int | None = None,
    latency_ms: float | None = None,
    ratio_to_teacher: float | None = None,
    gain_over_no_kd: float | None = None,
    wall_seconds: float | None = None,
    epochs: list[dict[str, Any]] | None = None,
    error: str | None = None,
) -> Trial:
    """End a running trial as completed, pruned or failed, and in the same transaction refresh the job's
    progress: ``trials_done`` (finished trials, references included: the budget counts them) and
    ``best_accuracy``/``best_trial_id``
    (the most accurate completed trial within the budget's ``max_params``/``max_latency_ms``).
    Raises ``TrialStateError`` if the trial is gone (replaced by a re-run) or not running."""
    if status not in FINISHED_STATUSES:
        raise ValueError(f"a trial finishes as one of {FINISHED_STATUSES}, not {status!r}")
    with _tx(db) as s:
        trial = s.get(Trial, trial_id, populate_existing=True)
        if trial is None:
            raise TrialStateError(f"trial {trial_id} does not exist (replaced by a re-run?)")
        # PostgreSQL: lock the job row so concurrent finishes of one job count each other.
        job = s.get(Job, trial.job_id, with_for_update=True, populate_existing=True)
        assert job is not None  # foreign key
        if trial.status != "running":
            raise TrialStateError(f"trial {trial_id} already {trial.status}")
        trial.status = status
        trial.finished_at = utcnow()
        trial.error = error
        for name, value in {
            "accuracy": accuracy,
            "macro_f1": macro_f1,
            "params": params,
            "latency_ms": latency_ms,
            "ratio_to_teacher": ratio_to_teacher,
            "gain_over_no_kd": gain_over_no_kd,
            "wall_seconds": wall_seconds,
            "epochs": epochs,
        }.items():
            if value is not None:
                setattr(trial, name, value)
        s.flush()  # SQLite: the write lock is held from here, so the counts below see every finished trial

        of_job = Trial.job_id == job.id
        done = s.scalar(select(func.count()).select_from(Trial).where(of_job, Trial.status != "running"))
        best = select(Trial.id, Trial.accuracy).where(
            of_job, Trial.status == "completed", Trial.accuracy.is_not(None)
        )
        if (max_params := job.budget.get("max_params")) is not None:
            best = best.where(Trial.params <= max_params)
        if (max_latency := job.budget.get("max_latency_ms")) is not None:
            best = best.where(Trial.latency_ms <= max_latency)
        top = s.execute(best.order_by(Trial.accuracy.desc(), Trial.number).limit(1)).first()
        s.execute(
            update(Job)
            .where(Job.id == job.id)
            .values(
                trials_done=done,
                best_accuracy=top.accuracy if top else None,
                best_trial_id=top.id if top else None,
            )
            .execution_options(synchronize_session=False)
        )
        return trial


def backfill_gain(db: Db, job_id: str) -> None:
    """Set ``gain_over_no_kd`` on trials that finished before the no-KD reference did."""
    with _tx(db) as s:
        q = select(Trial.accuracy).where(
            Trial.job_id == job_id, Trial.is_reference == "no_kd", Trial.status == "completed"
        )
        base = s.scalar(q)
        if base is None:
            return
        s.execute(
            update(Trial)
            .where(Trial.job_id == job_id, Trial.accuracy.is_not(None), Trial.gain_over_no_kd.is_(None))
            .values(gain_over_no_kd=Trial.accuracy - base)
            .execution_options(synchronize_session=False)
        )


def finished_trials(db: Db, job_id: str) -> list[Trial]:
    """The job's completed, pruned and failed trials by number (what a resumed search must not redo)."""
    q = select(Trial).where(Trial.job_id == job_id, Trial.status != "running").order_by(Trial.number)
    with _read(db) as s:
        return list(s.scalars(q))


def _status_filter(status: str | Iterable[str] | None) -> list[ColumnElement[bool]]:
    if status is None:
        return []
    return [Trial.status.in_([status] if isinstance(status, str) else list(status))]


def leaderboard(
    db: Db,
    job_id: str,
    *,
    sort: str = "-accuracy",
    status: str | Iterable[str] | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Trial]:
    """A page of the job's trials. ``sort``: one of ``SORT_KEYS``, ``-`` first for descending; missing
    values sort last, ties by trial number. ``status``: keep only these statuses."""
    name = sort.removeprefix("-")
    if name not in SORT_KEYS:
        raise ValueError(f"cannot sort trials by {sort!r}; use one of {SORT_KEYS} (prefix - for descending)")
    if limit < 0 or offset < 0:
        raise ValueError("limit and offset must be >= 0")
    column = getattr(Trial, name)
    order = (column.desc() if sort.startswith("-") else column.asc()).nulls_last()
    # Sort and skip the narrow (key, number, id) rows only, from the (job_id, key, number) index, then load
    # the page's full rows: sorting whole rows (pipeline, curve JSON) made deep pages of a big job slow.
    page = select(Trial.id).where(Trial.job_id == job_id, *_status_filter(status))
    page = page.order_by(order, Trial.number).limit(limit).offset(offset).subquery()
    q = select(Trial).join(page, Trial.id == page.c.id).order_by(order, Trial.number)
    with _read(db) as s:
        return list(s.scalars(q))


def trial_points(db: Db, job_id: str) -> list[Any]:
    """Every trial's plot data (id, number, status, reference, accuracy, params, latency), by number — the
    narrow columns only, so a 10,000-trial job stays cheap (no pipeline or curve JSON)."""
    cols = (Trial.id, Trial.number, Trial.status, Trial.is_reference, Trial.accuracy, Trial.params)
    q = select(*cols, Trial.latency_ms).where(Trial.job_id == job_id)
    with _read(db) as s:
        return list(s.execute(q.order_by(Trial.number)))


def trial_pipelines(db: Db, job_id: str, *, limit: int = 500) -> list[tuple[dict[str, Any], float]]:
    """The latest ``limit`` finished trials' (pipeline, accuracy), for parameter importance."""
    q = select(Trial.pipeline, Trial.accuracy).where(
        Trial.job_id == job_id, Trial.status.in_(("completed", "pruned")), Trial.accuracy.is_not(None)
    )
    with _read(db) as s:
        rows = s.execute(q.order_by(Trial.number.desc()).limit(limit))
        return [(p, a) for p, a in rows][::-1]


def reference_trials(db: Db, job_id: str) -> dict[str, Trial]:
    """The job's finished reference trials by name (``no_kd``, ``vanilla_kd``)."""
    q = select(Trial).where(Trial.job_id == job_id, Trial.is_reference.is_not(None))
    q = q.where(Trial.status != "running")
    with _read(db) as s:
        return {t.is_reference: t for t in s.scalars(q.order_by(Trial.number))}


def get_trial(db: Db, trial_id: int) -> Trial | None:
    with _read(db) as s:
        return s.get(Trial, trial_id, populate_existing=True)


def count_trials(db: Db, job_id: str, *, status: str | Iterable[str] | None = None) -> int:
    """How many trials ``leaderboard`` pages through."""
    q = select(func.count()).select_from(Trial).where(Trial.job_id == job_id, *_status_filter(status))
    with _read(db) as s:
        return s.scalar(q) or 0


# ------------------------------------------------------------------ artifacts, recommendations, profiles


def add_artifact(
    db: Db, job_id: str, kind: str, path: str, *, size: int | None = None, trial_id: int | None = None
) -> Artifact:
    """Record a file under the data folder; ``path`` must be relative to it (no ``..``)."""
    rel = PurePosixPath(str(path).replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ValueError(f"artifact path must be relative to the data folder, got {path!r}")
    with _tx(db) as s:
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
    with _read(db) as s:
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
    with _tx(db) as s:
        rec = Recommendation(
            job_id=job_id,
            pipeline=_pipeline_doc(pipeline)[0],
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
    with _read(db) as s:
        return s.scalars(q).first()


def add_profile(db: Db, kind: str, data: Mapping[str, Any], *, job_id: str | None = None) -> Profile:
    """Store a ``teacher``/``dataset`` profile or the scored ``candidates`` (``job_id`` optional)."""
    with _tx(db) as s:
        profile = Profile(job_id=job_id, kind=kind, data=dict(data), created_at=utcnow())
        s.add(profile)
        s.flush()
        return profile


def get_profile(db: Db, kind: str, *, job_id: str | None = None) -> Profile | None:
    """The newest profile of ``kind`` for ``job_id`` (``None``: job-less profiles)."""
    q = select(Profile).where(Profile.kind == kind)
    q = q.where(Profile.job_id.is_(None) if job_id is None else Profile.job_id == job_id)
    q = q.order_by(Profile.created_at.desc(), Profile.id.desc()).limit(1)
    with _read(db) as s:
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
        .where(Job.state == "finished", Trial.status == "completed", Trial.accuracy.is_not(None))
        .order_by(Job.created_at, Job.id, Trial.number)
    )
    if exclude_job is not None:
        q = q.where(Job.id != exclude_job)
    with _read(db) as s:
        return [(job, dict(data), trial) for job, data, trial in s.execute(q)]


def record_model(db: Db, fingerprint: str, **fields: Any) -> RecommenderModel:
    """The recommender version trained on rows with ``fingerprint``: the existing one, else a new one
    (two workers recording the same rows at once get the same version)."""
    if (found := model_version(db, fingerprint)) is not None:
        return found
    try:
        with _tx(db) as s:
            model = RecommenderModel(fingerprint=fingerprint, created_at=utcnow(), **fields)
            s.add(model)
            s.flush()
            return model
    except IntegrityError:  # another worker recorded it first
        found = model_version(db, fingerprint)
        assert found is not None
        return found


def model_version(db: Db, fingerprint: str) -> RecommenderModel | None:
    with _read(db) as s:
        return s.scalars(select(RecommenderModel).where(RecommenderModel.fingerprint == fingerprint)).first()


def latest_model(db: Db) -> RecommenderModel | None:
    """The newest recommender version."""
    with _read(db) as s:
        return s.scalars(select(RecommenderModel).order_by(RecommenderModel.id.desc()).limit(1)).first()


def trial_for_pipeline(db: Db, job_id: str, key: str) -> Trial | None:
    """The job's finished trial of the pipeline with ``key`` (a completed one first), if it ran."""
    q = select(Trial).where(Trial.job_id == job_id, Trial.pipeline_key == key, Trial.status != "running")
    q = q.order_by((Trial.status == "completed").desc(), Trial.number).limit(1)
    with _read(db) as s:
        return s.scalars(q).first()
