"""Transactions on the trial database: ``Db`` (a ``Session`` or a ``sessionmaker``), one write transaction
(``tx``), a read (``read``). Write functions run one transaction and commit it (a sessionmaker gets a fresh
session per call, which is what concurrent workers should pass); read functions only read. Returned objects
stay readable after the session closes (``expire_on_commit=False``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from distill.pipeline import pipeline_key

if TYPE_CHECKING:
    from distill.pipeline import Pipeline

Db = Session | sessionmaker[Session]


#: SQLite has one writer at a time, and its busy handler is unfair (a waiting writer sleeps up to 100 ms
#: between tries while others take the lock): queue this process's write transactions here instead.
_SQLITE_WRITES = threading.RLock()  # re-entrant: a write function may call another


@contextmanager
def tx(db: Db) -> Iterator[Session]:
    """One transaction: commit on success, roll back on error."""
    if isinstance(db, Session):
        try:
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise
    else:
        bind = db.kw.get("bind")
        lock = _SQLITE_WRITES if bind is not None and bind.dialect.name == "sqlite" else nullcontext()
        with lock, db() as s, s.begin():
            yield s


@contextmanager
def read(db: Db) -> Iterator[Session]:
    if isinstance(db, Session):
        yield db
    else:
        with db() as s:
            yield s


def pipeline_doc(pipeline: Pipeline | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """JSON document and key of a ``Pipeline`` (or of its ``model_dump(mode="json")``, same key)."""
    if not isinstance(pipeline, Mapping):
        return pipeline.model_dump(mode="json"), pipeline.key()
    doc = dict(pipeline)
    return doc, pipeline_key(doc)
