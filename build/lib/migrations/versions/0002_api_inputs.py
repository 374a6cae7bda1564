"""API keys, registered datasets and teachers; jobs point at theirs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def _in(column: str, *values: str) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _input_table(name: str, kinds: tuple[str, ...]) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("owner", sa.String(64)),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ref", JSON, nullable=False),
        sa.Column("profile", JSON, nullable=False),
        sa.Column("size", sa.BigInteger),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{name}"),
        sa.CheckConstraint(_in("kind", *kinds), name=f"ck_{name}_kind"),
    )
    op.create_index(f"ix_{name}_owner_created_at", name, ["owner", "created_at"])


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    _input_table("datasets", ("upload", "path", "builtin", "hub"))
    _input_table("teachers", ("upload", "path", "hub", "base"))
    # Plain ADD COLUMN without a foreign key: SQLite cannot add one in place, and a batch rebuild of `jobs`
    # would lose its expression index. The API checks that the ids exist and belong to the job's owner.
    op.add_column("jobs", sa.Column("dataset_id", sa.String(32)))
    op.add_column("jobs", sa.Column("teacher_id", sa.String(32)))
    op.create_index("ix_jobs_teacher_id", "jobs", ["teacher_id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_teacher_id", table_name="jobs")
    if op.get_bind().dialect.name == "sqlite":  # SQLite ≥ 3.35 drops a plain column in place
        op.execute("ALTER TABLE jobs DROP COLUMN teacher_id")
        op.execute("ALTER TABLE jobs DROP COLUMN dataset_id")
    else:
        op.drop_column("jobs", "teacher_id")
        op.drop_column("jobs", "dataset_id")
    for table in ("teachers", "datasets", "api_keys"):
        op.drop_table(table)
