"""Jobs: created, listed, claimed by a worker (kept alive by its heartbeat), moved through their states,
cancelled.

Claiming is safe with many workers in many processes: on PostgreSQL the candidate row is locked with
``SELECT … FOR UPDATE SKIP LOCKED``; on both backends the claim itself is a conditional ``UPDATE`` that
re-checks "still claimable" and counts the rows it changed, so of two racing workers exactly one wins (SQLite
serialises writers, PostgreSQL re-evaluates the WHERE clause on the locked row).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.models import (
    Job,
    Trial,
    UTCDateTime,
    new_id,
    utcnow,
)
from store.states import (
    ACTIVE_STATES,
    CANCELLED_TRIAL_ERROR,
    JOB_STATES,
    TERMINAL_STATES,
    JobState,
)
from store.tx import Db, read, tx

if TYPE_CHECKING:
    pass


class IdempotencyConflict(ValueError):
    """An ``Idempotency-Key`` already used by the owner for a different request."""


def _same_request(
    job: Job,
    dataset_id: str | None,
    teacher_id: str | None,
    budget: Mapping[str, Any],
    extras: Mapping[str, Any] | None,
) -> bool:
    asked = (dataset_id, teacher_id, dict(budget), extras or None)
    return (job.dataset_id, job.teacher_id, dict(job.budget or {}), job.extras or None) == asked


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
    extra_teachers: Sequence[Mapping[str, Any]] = (),
    mlm: str | None = None,
    extra_ids: Mapping[str, Any] | None = None,
    transfer: Mapping[str, Any] | None = None,
) -> Job:
    """Queue a job. With an ``idempotency_key`` already used by ``owner`` for the same request (dataset,
    teacher, budget), return that job instead; for another request, raise ``IdempotencyConflict``."""
    budget = dict(budget or {})
    extras: dict[str, Any] = {}
    if extra_teachers:
        extras["extra_teachers"] = [dict(t) for t in extra_teachers]
    if mlm:
        extras["mlm"] = mlm
    if transfer:
        extras["transfer"] = dict(transfer)

    def existing(s: Session) -> Job | None:
        q = select(Job).where(Job.idempotency_key == idempotency_key)
        q = q.where(Job.owner.is_(None) if owner is None else Job.owner == owner)
        job = s.scalars(q).first()
        if job is not None and not _same_request(job, dataset_id, teacher_id, budget, extras):
            raise IdempotencyConflict(
                f"this Idempotency-Key was used for job {job.id} with a different request body; "
                "use a new key for a different job"
            )
        return job

    try:
        with tx(db) as s:
            if idempotency_key is not None and (job := existing(s)) is not None:
                return job
            job_id = new_id()
            job = Job(
                id=job_id,
                owner=owner,
                state=JobState.QUEUED,
                dataset=dict(dataset),
                teacher=dict(teacher),
                dataset_id=dataset_id,
                teacher_id=teacher_id,
                budget=budget,
                extras=extras or None,
                extra_ids=dict(extra_ids) if extra_ids else None,
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
        with read(db) as s:
            if (job := existing(s)) is None:
                raise
            return job


def get_job(db: Db, job_id: str) -> Job | None:
    with read(db) as s:
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
    with read(db) as s:
        return list(s.scalars(q))


def count_jobs(db: Db, *, owner: str | None = None, state: str | None = None) -> int:
    """How many jobs ``list_jobs`` pages through."""
    with read(db) as s:
        return s.scalar(select(func.count()).select_from(Job).where(*_job_filter(owner, state))) or 0


def _claimable(cutoff: Any) -> ColumnElement[bool]:
    stale = or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff)
    return or_(Job.state == JobState.QUEUED, and_(Job.state.in_(ACTIVE_STATES), stale))


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
        with tx(db) as s:
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
            give_up = row.state != JobState.QUEUED and row.attempts >= max_attempts
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
                    "state": JobState.PROFILING if row.state == JobState.QUEUED else row.state,
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
    with tx(db) as s:
        res = s.execute(
            update(Job)
            .where(Job.id == job_id, Job.worker_id == worker_id, Job.state.in_(ACTIVE_STATES))
            .values(heartbeat_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return res.rowcount == 1


def release_jobs(db: Db, worker_id: str) -> int:
    """Make the active jobs of a worker known to be dead claimable at once (their heartbeat is set long
    past), instead of after the stale limit; returns how many. Their state and finished trials are kept."""
    q = update(Job).where(Job.worker_id == worker_id, Job.state.in_(ACTIVE_STATES))
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)
    with tx(db) as s:
        q = q.values(heartbeat_at=long_ago).execution_options(synchronize_session=False)
        return s.execute(q).rowcount


def still_held(db: Db, job_id: str, worker_id: str) -> bool:
    """Whether ``worker_id`` still holds the job (active, not cancelled, not taken over): a read, cheap
    enough to poll twice a second so that a cancel stops the search within a second."""
    q = select(Job.id).where(Job.id == job_id, Job.worker_id == worker_id, Job.state.in_(ACTIVE_STATES))
    with read(db) as s:
        return s.scalar(q) is not None


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
    with tx(db) as s:
        return s.execute(q.values(**values).execution_options(synchronize_session=False)).rowcount == 1


def cancel_job(db: Db, job_id: str) -> bool:
    """Cancel a job that has not ended; its running trials are marked failed (a result they report later is
    still kept: ``finish_trial``). The worker notices within a second (``still_held``). Returns ``False`` if
    the job does not exist or had already ended."""
    now = utcnow()
    with tx(db) as s:
        done = s.execute(
            update(Job)
            .where(Job.id == job_id, Job.state.not_in(TERMINAL_STATES))
            .values(state=JobState.CANCELLED, finished_at=now, progress_text="cancelled")
            .execution_options(synchronize_session=False)
        ).rowcount
        if done:
            s.execute(
                update(Trial)
                .where(Trial.job_id == job_id, Trial.status == "running")
                .values(status="failed", error=CANCELLED_TRIAL_ERROR, finished_at=now)
                .execution_options(synchronize_session=False)
            )
        return done == 1
