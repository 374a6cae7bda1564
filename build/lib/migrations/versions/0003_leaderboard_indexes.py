"""Indexes for the leaderboard's sort keys: a page of a 10,000-trial job without sorting every row.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("macro_f1", "params", "latency_ms", "ratio_to_teacher", "gain_over_no_kd", "wall_seconds")


def upgrade() -> None:
    for c in COLUMNS:
        op.create_index(f"ix_job_trials_job_id_{c}_number", "job_trials", ["job_id", c, "number"])


def downgrade() -> None:
    for c in COLUMNS:
        op.drop_index(f"ix_job_trials_job_id_{c}_number", "job_trials")
