"""Initial schema: jobs, job_trials, profiles, artifacts, recommendations.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Self-contained on purpose: a migration describes the schema as it was, not as the models are today.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def _in(column: str, *values: str) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("owner", sa.String(64)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("dataset", JSON, nullable=False),
        sa.Column("teacher", JSON, nullable=False),
        sa.Column("budget", JSON, nullable=False),
        sa.Column("trials_done", sa.Integer, nullable=False),
        sa.Column("trials_budget", sa.Integer),
        sa.Column("best_accuracy", sa.Float),
        sa.Column("best_trial_id", sa.Integer),
        sa.Column("teacher_accuracy", sa.Float),
        sa.Column("progress_text", sa.String(500), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("worker_id", sa.String(128)),
        sa.Column("heartbeat_at", TS),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
        sa.Column("idempotency_key", sa.String(128)),
        sa.Column("study_name", sa.String(128)),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.CheckConstraint(
            _in("state", "queued", "profiling", "searching", "finished", "failed", "cancelled"),
            name="ck_jobs_state",
        ),
    )
    op.create_index("ix_jobs_state_created_at", "jobs", ["state", "created_at"])
    op.create_index("ix_jobs_owner_created_at", "jobs", ["owner", "created_at"])
    op.create_index(
        "uq_jobs_owner_idempotency_key",
        "jobs",
        [sa.text("coalesce(owner, '')"), "idempotency_key"],
        unique=True,
    )

    op.create_table(
        "job_trials",  # not "trials": Optuna's own tables share the database
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("pipeline", JSON, nullable=False),
        sa.Column("pipeline_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("is_reference", sa.String(16)),
        sa.Column("epochs", JSON, nullable=False),
        sa.Column("accuracy", sa.Float),
        sa.Column("macro_f1", sa.Float),
        sa.Column("params", sa.BigInteger),
        sa.Column("latency_ms", sa.Float),
        sa.Column("ratio_to_teacher", sa.Float),
        sa.Column("gain_over_no_kd", sa.Float),
        sa.Column("wall_seconds", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_job_trials"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_job_trials_job_id_jobs", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("job_id", "number", name="uq_job_trials_job_id_number"),
        sa.CheckConstraint(
            _in("status", "running", "completed", "pruned", "failed"), name="ck_job_trials_status"
        ),
        sa.CheckConstraint(_in("is_reference", "no_kd", "vanilla_kd"), name="ck_job_trials_is_reference"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_job_trials_job_id_accuracy", "job_trials", ["job_id", "accuracy"])

    op.create_table(
        "profiles",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(32)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_profiles"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_profiles_job_id_jobs", ondelete="CASCADE"),
    )
    op.create_index("ix_profiles_job_id", "profiles", ["job_id"])

    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("trial_id", sa.Integer),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("size", sa.BigInteger),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_artifacts"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_artifacts_job_id_jobs", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["trial_id"], ["job_trials.id"], name="fk_artifacts_trial_id_job_trials", ondelete="SET NULL"
        ),
    )
    op.create_index("ix_artifacts_job_id", "artifacts", ["job_id"])

    op.create_table(
        "recommendations",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("pipeline", JSON, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("score", sa.Float),
        sa.Column("why", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_recommendations"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_recommendations_job_id_jobs", ondelete="CASCADE"
        ),
        sa.CheckConstraint(_in("source", "predicted", "measured"), name="ck_recommendations_source"),
    )
    op.create_index("ix_recommendations_job_id_created_at", "recommendations", ["job_id", "created_at"])


def downgrade() -> None:
    for table in ("recommendations", "artifacts", "profiles", "job_trials", "jobs"):
        op.drop_table(table)  # drops the table's indexes and constraints with it
