"""Alembic environment: migrates the trial database (store.models) on SQLite or PostgreSQL.

The URL comes from, in order: an open connection handed over in ``config.attributes["connection"]``
(``store.upgrade``), the ``sqlalchemy.url`` main option, or the settings (``AUTODISTILLER_DATABASE_URL``,
else SQLite in ``AUTODISTILLER_HOME``) — so ``alembic upgrade head`` at the repository root just works.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from store.models import Base
from store.session import VERSION_TABLE, make_engine

config = context.config
if config.config_file_name:  # the alembic CLI with alembic.ini; the service configures its own logging
    fileConfig(config.config_file_name, disable_existing_loggers=False)
target_metadata = Base.metadata


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite can only ALTER by copying the table: let autogenerate use batch mode
        compare_type=True,
        version_table=VERSION_TABLE,
        **kwargs,
    )


def _run(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("AUTODISTILLER_DATABASE_URL")
    if url is None and config.attributes.get("connection") is None:
        raise SystemExit("no database: set AUTODISTILLER_DATABASE_URL, or run `autodistiller migrate`")
    if context.is_offline_mode():
        _configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"})
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":  # table rebuilds must not cascade (see store.session)
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                conn.commit()
            _run(conn)
    finally:
        engine.dispose()


main()
