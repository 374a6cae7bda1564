"""The recommender: its versions, and the details of a predicted recommendation.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("recommendations", sa.Column("details", JSON))
    op.create_table(
        "recommender_models",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("tasks", sa.Integer, nullable=False),
        sa.Column("prior_rows", sa.Integer, nullable=False),
        sa.Column("cv_mae", sa.Float),
        sa.Column("importance", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_recommender_models"),
        sa.UniqueConstraint("fingerprint", name="uq_recommender_models_fingerprint"),
    )


def downgrade() -> None:
    op.drop_table("recommender_models")
    with op.batch_alter_table("recommendations") as batch:
        batch.drop_column("details")
