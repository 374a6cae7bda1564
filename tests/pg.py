"""A PostgreSQL server for tests: the session fixture ``pg_server`` (import it into a test module).

- ``AUTODISTILLER_TEST_PG_URL`` set (e.g. ``postgresql://postgres@127.0.0.1:5432/postgres``, a role allowed to
  CREATE DATABASE): that server is used.
- Otherwise, if ``initdb``/``pg_ctl`` are found (on ``PATH``, or Debian's ``/usr/lib/postgresql/<ver>/bin``),
  a throwaway server is started in a temp folder (``initdb`` + ``pg_ctl -w start``, trust auth, listening on
  127.0.0.1 at a free port only, fsync off) and stopped and deleted at the end. As root, the server runs as
  the ``postgres`` user through ``runuser``.
- Otherwise the tests that need it are skipped, saying why (they fail instead when
  ``AUTODISTILLER_REQUIRE_PG`` is set, as ``.ci/run`` does).

Each test asks ``pg_server.create_database()`` for a fresh, empty database and gets its URL.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_URL_ENV = "AUTODISTILLER_TEST_PG_URL"


class PgServer:
    """A reachable PostgreSQL server; ``admin_url`` points at a database we may CREATE DATABASE from."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", admin_url)
        self.created: list[str] = []

    def _execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)

    def create_database(self) -> str:
        """Create an empty database and return its URL."""
        name = f"autodistiller_test_{uuid.uuid4().hex[:12]}"
        self._execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        base, _, _ = self.admin_url.partition("?")
        return base.rsplit("/", 1)[0] + "/" + name

    def drop_created(self) -> None:
        for name in self.created:
            with contextlib.suppress(Exception):
                self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()


def find_pg_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl`` (newest Debian-layout version if not on PATH)."""
    found = shutil.which("initdb")
    if found and (Path(found).resolve().parent / "pg_ctl").is_file():
        return Path(found).resolve().parent
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()),
        key=lambda p: int(p.parent.name),
    )
    for bindir in reversed(versions):
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def throwaway_server(bindir: Path) -> Iterator[PgServer]:
    """Start a private PostgreSQL server from ``bindir``; stop it and delete its files afterwards."""
    as_user: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="autodistiller-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(tmp)
            pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
        os.chown(tmp, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, log, port = tmp / "data", tmp / "server.log", _free_port()

    def run(*args: str | Path) -> None:
        cmd = [*as_user, *map(str, args)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}{tail}")

    try:
        run(bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "-N")
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{tmp}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 100\n"
            )
        run(bindir / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "start")
        server = PgServer(f"postgresql://postgres@127.0.0.1:{port}/postgres")
        try:
            yield server
        finally:
            run(bindir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server for the whole test session (see the module docstring)."""
    pytest.importorskip("psycopg", reason="psycopg 3 is not installed")
    if url := os.environ.get(PG_URL_ENV):
        server = PgServer(url)
        try:
            yield server
        finally:
            server.drop_created()
        return
    bindir = find_pg_bin()
    if bindir is None:
        why = f"no PostgreSQL: set {PG_URL_ENV} or install initdb/pg_ctl (apt-get install postgresql)"
        if os.environ.get("AUTODISTILLER_REQUIRE_PG"):  # CI: the PostgreSQL tests must run, not be skipped
            pytest.fail(why)
        pytest.skip(why)
    with throwaway_server(bindir) as server:
        yield server
