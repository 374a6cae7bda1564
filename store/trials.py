"""Trials: started, their epochs recorded, finished (once), and read back: the leaderboard, the points of
the plots, the references."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, func, select, update

from store.models import (
    Job,
    Trial,
    utcnow,
)
from store.states import (
    CANCELLED_TRIAL_ERROR,
    FINISHED_STATUSES,
    SCORED_STATUSES,
    TrialStatus,
)
from store.tx import Db, pipeline_doc, read, tx

if TYPE_CHECKING:
    from distill.pipeline import Pipeline


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


class TrialStateError(ValueError):
    """The trial is not in the state the call needs (finished already, or replaced by a re-run)."""


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
    doc, key = pipeline_doc(pipeline)
    with tx(db) as s:
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
    with tx(db) as s:
        trial = s.get(Trial, trial_id, populate_existing=True)
        if trial is None or trial.status != "running":
            raise TrialStateError(f"trial {trial_id} is not running")
        trial.epochs = [*trial.epochs, dict(metrics)]


def _cancelled(trial: Trial) -> bool:
    return trial.status == TrialStatus.FAILED and trial.error == CANCELLED_TRIAL_ERROR


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
    with tx(db) as s:
        trial = s.get(Trial, trial_id, populate_existing=True)
        if trial is None:
            raise TrialStateError(f"trial {trial_id} does not exist (replaced by a re-run?)")
        # PostgreSQL: lock the job row so concurrent finishes of one job count each other.
        job = s.get(Job, trial.job_id, with_for_update=True, populate_existing=True)
        assert job is not None  # foreign key
        if trial.status != "running" and not _cancelled(trial):
            raise TrialStateError(f"trial {trial_id} already {trial.status}")
        if _cancelled(trial) and status == TrialStatus.FAILED:
            return trial  # the cancel already ended it
        # (a result reported after its job was cancelled is real: it replaces the cancel's `failed`)
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
        done = s.scalar(
            select(func.count()).select_from(Trial).where(of_job, Trial.status != TrialStatus.RUNNING)
        )
        best = select(Trial.id, Trial.accuracy).where(
            of_job, Trial.status == TrialStatus.COMPLETED, Trial.accuracy.is_not(None)
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
    with tx(db) as s:
        q = select(Trial.accuracy).where(
            Trial.job_id == job_id, Trial.is_reference == "no_kd", Trial.status == TrialStatus.COMPLETED
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
    q = (
        select(Trial)
        .where(Trial.job_id == job_id, Trial.status != TrialStatus.RUNNING)
        .order_by(Trial.number)
    )
    with read(db) as s:
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
    with read(db) as s:
        return list(s.scalars(q))


def trial_points(db: Db, job_id: str) -> list[Any]:
    """Every trial's plot data (id, number, status, reference, accuracy, params, latency), by number — the
    narrow columns only, so a 10,000-trial job stays cheap (no pipeline or curve JSON)."""
    cols = (Trial.id, Trial.number, Trial.status, Trial.is_reference, Trial.accuracy, Trial.params)
    q = select(*cols, Trial.latency_ms).where(Trial.job_id == job_id)
    with read(db) as s:
        return list(s.execute(q.order_by(Trial.number)))


def trial_pipelines(db: Db, job_id: str, *, limit: int = 500) -> list[tuple[dict[str, Any], float]]:
    """The latest ``limit`` finished trials' (pipeline, accuracy), for parameter importance."""
    q = select(Trial.pipeline, Trial.accuracy).where(
        Trial.job_id == job_id, Trial.status.in_(SCORED_STATUSES), Trial.accuracy.is_not(None)
    )
    with read(db) as s:
        rows = s.execute(q.order_by(Trial.number.desc()).limit(limit))
        return [(p, a) for p, a in rows][::-1]


def reference_trials(db: Db, job_id: str) -> dict[str, Trial]:
    """The job's finished reference trials by name (``no_kd``, ``vanilla_kd``)."""
    q = select(Trial).where(Trial.job_id == job_id, Trial.is_reference.is_not(None))
    q = q.where(Trial.status != TrialStatus.RUNNING)
    with read(db) as s:
        return {t.is_reference: t for t in s.scalars(q.order_by(Trial.number))}


def get_trial(db: Db, trial_id: int) -> Trial | None:
    with read(db) as s:
        return s.get(Trial, trial_id, populate_existing=True)


def count_trials(db: Db, job_id: str, *, status: str | Iterable[str] | None = None) -> int:
    """How many trials ``leaderboard`` pages through."""
    q = select(func.count()).select_from(Trial).where(Trial.job_id == job_id, *_status_filter(status))
    with read(db) as s:
        return s.scalar(q) or 0
