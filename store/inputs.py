"""Queries on what clients bring: datasets and teachers (API keys are ``keys``, the rest ``jobs``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy import func, select

from store.models import Dataset, Job, Profile, TeacherEntry, new_id, utcnow
from store.tx import Db, read, tx

Entry = TypeVar("Entry", Dataset, TeacherEntry)


# ---------------------------------------------------------------------------------- datasets and teachers


def add_entry(
    db: Db,
    model: type[Entry],
    *,
    owner: str | None,
    name: str,
    kind: str,
    ref: Mapping[str, Any],
    profile: Mapping[str, Any],
    size: int | None = None,
    entry_id: str | None = None,
) -> Entry:
    """Register a ``Dataset`` or ``TeacherEntry`` (``entry_id``: when files were stored under it already)."""
    with tx(db) as s:
        row = model(
            id=entry_id or new_id(),
            owner=owner,
            name=name,
            kind=kind,
            ref=dict(ref),
            profile=dict(profile),
            size=size,
            created_at=utcnow(),
        )
        s.add(row)
        return row


def get_entry(db: Db, model: type[Entry], entry_id: str) -> Entry | None:
    with read(db) as s:
        return s.get(model, entry_id)


def list_entries(
    db: Db, model: type[Entry], *, owner: str | None, limit: int = 50, offset: int = 0
) -> tuple[list[Entry], int]:
    """A page of ``owner``'s entries, newest first, and how many there are in all."""
    where = model.owner.is_(None) if owner is None else model.owner == owner
    q = select(model).where(where).order_by(model.created_at.desc(), model.id).limit(limit).offset(offset)
    with read(db) as s:
        return list(s.scalars(q)), s.scalar(select(func.count()).select_from(model).where(where)) or 0


def teacher_accuracies(db: Db, teacher_id: str) -> list[dict[str, Any]]:
    """The teacher's measured validation accuracy on each job's dataset that used it."""
    q = (
        select(Job.id, Job.dataset_id, Job.teacher_accuracy, Profile.data)
        .join(Profile, (Profile.job_id == Job.id) & (Profile.kind == "dataset"), isouter=True)
        .where(Job.teacher_id == teacher_id, Job.teacher_accuracy.is_not(None))
        .order_by(Job.created_at)
    )
    with read(db) as s:
        return [
            {
                "job_id": job_id,
                "dataset_id": dataset_id,
                "dataset": (data or {}).get("name"),
                "accuracy": acc,
            }
            for job_id, dataset_id, acc, data in s.execute(q)
        ]
