"""A job's extra teachers and masked LM (multi-teacher distillation, contextual augmentation).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # the job contract's optional parts (`JobSpec.extra_teachers`, `JobSpec.mlm`), and the registered ids
    # they came from; NULL for a job with one teacher and no masked LM
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("extras", JSON))
        batch.add_column(sa.Column("extra_ids", JSON))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("extra_ids")
        batch.drop_column("extras")
