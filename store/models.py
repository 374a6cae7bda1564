"""The trial database: API keys, datasets, teachers, jobs, trials, profiles, artifacts, recommendations.

Portable column types only: JSON (JSONB on PostgreSQL), timezone-aware UTC datetimes (stored as naive UTC text
on SQLite), short strings with CHECK constraints for the state machines. The schema is created by Alembic
(``migrations/``), never by ``create_all``; keep this file and the migrations in step.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from store.states import JOB_STATES, TRIAL_STATUSES, JobState

REFERENCES = ("no_kd", "vanilla_kd")
REC_SOURCES = ("predicted", "measured")
#: Leaderboard sort keys with a (job_id, key, number) index (accuracy has its own; number is the unique key).
LEADERBOARD_INDEXED = (
    "macro_f1", "params", "latency_ms", "ratio_to_teacher", "gain_over_no_kd", "wall_seconds"
)  # fmt: skip
DATASET_KINDS = ("upload", "path", "builtin", "hub")
TEACHER_KINDS = ("upload", "path", "hub", "base")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """A datetime that always comes back timezone-aware UTC (naive values going in are taken as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        # SQLite stores the wall-clock digits only: store them in UTC so text comparison is time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
        list[Any]: JSONType,
    }


class ApiKey(Base):
    """A client of the API. Only the SHA-256 of the key is stored; ``prefix`` identifies it in listings."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()


class _Registered:
    """Columns shared by what a client registers: owner (API key id), display name, kind, the ``ref`` a job
    stores (a ``DatasetRef``/``TeacherRef``), the profile measured at registration, bytes stored."""

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    ref: Mapped[dict[str, Any]] = mapped_column()
    profile: Mapped[dict[str, Any]] = mapped_column(default=dict)
    size: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Dataset(_Registered, Base):
    """A dataset registered through the API."""

    __tablename__ = "datasets"
    __table_args__ = (
        CheckConstraint(_in("kind", DATASET_KINDS), name="kind"),
        Index("ix_datasets_owner_created_at", "owner", "created_at"),
    )


class TeacherEntry(_Registered, Base):
    """A teacher registered through the API."""

    __tablename__ = "teachers"
    __table_args__ = (
        CheckConstraint(_in("kind", TEACHER_KINDS), name="kind"),
        Index("ix_teachers_owner_created_at", "owner", "created_at"),
    )


class Job(Base):
    """One search: dataset + teacher + budget. Progress lives in the row, so polling is one cheap query."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_in("state", JOB_STATES), name="state"),
        Index("ix_jobs_state_created_at", "state", "created_at"),
        Index("ix_jobs_owner_created_at", "owner", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED)
    dataset: Mapped[dict[str, Any]] = mapped_column(default=dict)
    teacher: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dataset_id: Mapped[str | None] = mapped_column(String(32))  # no FK (see migration 0002)
    teacher_id: Mapped[str | None] = mapped_column(String(32), index=True)
    budget: Mapped[dict[str, Any]] = mapped_column(default=dict)
    extras: Mapped[dict[str, Any] | None] = mapped_column()  # extra_teachers / mlm / transfer, when given
    extra_ids: Mapped[dict[str, Any] | None] = mapped_column()  # their registered ids (API jobs)
    trials_done: Mapped[int] = mapped_column(default=0)
    trials_budget: Mapped[int | None] = mapped_column()
    best_accuracy: Mapped[float | None] = mapped_column(Float)
    best_trial_id: Mapped[int | None] = mapped_column()  # no FK: trials reference jobs, not the other way
    teacher_accuracy: Mapped[float | None] = mapped_column(Float)
    progress_text: Mapped[str] = mapped_column(String(500), default="")
    error: Mapped[str | None] = mapped_column(Text)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    study_name: Mapped[str | None] = mapped_column(String(128))


# Unique per owner; COALESCE so the key is enforced for owner-less (embedded) jobs too. SQLite cannot reflect
# expression indexes: a batch migration that rebuilds `jobs` must create this index again itself.
Index("uq_jobs_owner_idempotency_key", func.coalesce(Job.owner, ""), Job.idempotency_key, unique=True)


class Trial(Base):
    """One pipeline trained and evaluated for a job; ``number`` is the trial's place in the search."""

    __tablename__ = "job_trials"
    __table_args__ = (
        CheckConstraint(_in("status", TRIAL_STATUSES), name="status"),
        CheckConstraint(_in("is_reference", REFERENCES), name="is_reference"),
        UniqueConstraint("job_id", "number"),  # also the index on job_id
        Index("ix_job_trials_job_id_accuracy", "job_id", "accuracy"),
        *(Index(f"ix_job_trials_job_id_{c}_number", "job_id", c, "number") for c in LEADERBOARD_INDEXED),
        {"sqlite_autoincrement": True},  # ids are never reused: a re-run trial gets a new id
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column()
    pipeline: Mapped[dict[str, Any]] = mapped_column()
    pipeline_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="running")
    is_reference: Mapped[str | None] = mapped_column(String(16))
    epochs: Mapped[list[Any]] = mapped_column(default=list)
    accuracy: Mapped[float | None] = mapped_column(Float)
    macro_f1: Mapped[float | None] = mapped_column(Float)
    params: Mapped[int | None] = mapped_column(BigInteger)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    ratio_to_teacher: Mapped[float | None] = mapped_column(Float)
    gain_over_no_kd: Mapped[float | None] = mapped_column(Float)
    wall_seconds: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


class Profile(Base):
    """A teacher or dataset profile, or the candidate pipelines scored for a job."""

    __tablename__ = "profiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # teacher | dataset | candidates
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Artifact(Base):
    """A file a job produced (the exported student, ...), at ``path`` relative to the data folder."""

    __tablename__ = "artifacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    trial_id: Mapped[int | None] = mapped_column(ForeignKey("job_trials.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(32))  # student | ...
    path: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Recommendation(Base):
    """The pipeline the service would use now, and why (predicted before trials, measured after)."""

    __tablename__ = "recommendations"
    __table_args__ = (
        CheckConstraint(_in("source", REC_SOURCES), name="source"),
        Index("ix_recommendations_job_id_created_at", "job_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    pipeline: Mapped[dict[str, Any]] = mapped_column()
    source: Mapped[str] = mapped_column(String(16))
    score: Mapped[float | None] = mapped_column(Float)
    why: Mapped[str] = mapped_column(Text, default="")
    # predicted: the ratio, the model version, the nearest past tasks, the runners-up (see workers.recommend)
    details: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RecommenderModel(Base):
    """A version of the recommender: what it was trained on and how well it predicts unseen tasks."""

    __tablename__ = "recommender_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)  # the version
    fingerprint: Mapped[str] = mapped_column(String(32), unique=True)  # of the training rows
    rows: Mapped[int] = mapped_column()
    tasks: Mapped[int] = mapped_column()
    prior_rows: Mapped[int] = mapped_column()  # rows from the shipped meta-dataset
    cv_mae: Mapped[float | None] = mapped_column(Float)  # the older ratio model's held-out error (now unused)
    held_out: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # search.recommender.HeldOut, or None
    importance: Mapped[dict[str, Any]] = mapped_column(default=dict)  # component → share
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
