"""Engines, sessions and schema migrations for the trial database (SQLite or PostgreSQL, same code).

``upgrade(url)`` is what the API and the workers call on start: it brings an empty (or older) database to the
newest schema, and is safe when several processes start at once.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

#: Our Alembic version table. Not Alembic's default ``alembic_version``: Optuna's own tables (its studies live
#: in the same database) keep their schema version there.
VERSION_TABLE = "autodistiller_alembic_version"
_PG_MIGRATION_LOCK = 0x6B64_6973  # pg_advisory_xact_lock key serialising concurrent upgrades
SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``; ``postgresql://`` and ``postgres://`` mean psycopg 3 (``postgresql+psycopg://``)."""
    url = make_url(url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine for ``url``. SQLite: WAL, foreign keys on, a busy timeout, usable from any thread, and the
    file's folder created. PostgreSQL: psycopg 3 with pre-ping. ``kwargs`` go to ``create_engine``."""
    url = normalize_url(url)
    if url.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(url, **kwargs)

    memory = url.database in (None, "", ":memory:")
    kwargs["connect_args"] = {
        "check_same_thread": False,
        "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
        **kwargs.get("connect_args", {}),
    }
    if memory:
        kwargs.setdefault("poolclass", StaticPool)  # one shared connection, or each would see its own DB
    else:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        if not memory:
            _wal(cur)
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    return engine


def _wal(cur: Any) -> None:
    """Switch the file to WAL (persistent). The switch needs the file to itself and SQLite does not wait for
    that (no busy handler), so retry while another connection of a brand-new database holds it."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if cur.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (handy once they leave the query functions)."""
    return sessionmaker(engine, expire_on_commit=False)


def migrations_dir() -> Path:
    """The Alembic scripts folder: the installed ``migrations`` package (editable or not), located without
    importing it (its ``env.py`` imports this package)."""
    spec = importlib.util.find_spec("migrations")
    if spec is None or spec.origin is None:
        raise RuntimeError("the `migrations` package is not installed beside `store`: reinstall the project")
    return Path(spec.origin).resolve().parent


def alembic_config(url: str | URL | None = None, connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` built in code (no alembic.ini), for ``url`` or an open ``connection``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if url is not None:
        rendered = normalize_url(url).render_as_string(hide_password=False)
        cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))  # ConfigParser interpolation
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _migrate(url: str | URL, fn: Any, rev: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            elif engine.dialect.name == "sqlite":
                # Batch migrations rebuild tables (copy, drop, rename): with foreign keys on, dropping `jobs`
                # would cascade-delete every trial. The pragma only takes effect outside a transaction.
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                conn.exec_driver_sql("BEGIN IMMEDIATE")  # one migrator at a time; DDL all-or-nothing
            fn(alembic_config(connection=conn), rev)
            if engine.dialect.name == "sqlite" and conn.exec_driver_sql("PRAGMA foreign_key_check").first():
                raise RuntimeError(f"migrating to {rev} broke foreign keys; rolled back")
    finally:
        engine.dispose()


def upgrade(url: str | URL, rev: str = "head") -> None:
    """Migrate the database at ``url`` up to ``rev`` (an empty database gets the whole schema)."""
    _migrate(url, command.upgrade, rev)


def downgrade(url: str | URL, rev: str = "base") -> None:
    """Migrate the database at ``url`` down to ``rev`` (``base``: no application tables left)."""
    _migrate(url, command.downgrade, rev)


def current_revision(url: str | URL) -> str | None:
    """The schema revision the database is at (``None``: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(
                conn, opts={"version_table": VERSION_TABLE}
            ).get_current_revision()
    finally:
        engine.dispose()
