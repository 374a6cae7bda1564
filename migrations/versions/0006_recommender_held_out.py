"""The recommender's held-out check (leave one dataset out) beside each of its versions.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # mean regrets of the ranker's first pick, its top 3, the best fixed pipeline and a random pick on tasks
    # left out of training; NULL for the versions of the older ratio model (which recorded `cv_mae`)
    with op.batch_alter_table("recommender_models") as batch:
        batch.add_column(sa.Column("held_out", JSON))


def downgrade() -> None:
    with op.batch_alter_table("recommender_models") as batch:
        batch.drop_column("held_out")
