"""Helpers of the API's bad-input tests: archives, the two backends, an ``Api`` client, a snapshot of the
whole service state (``unchanged``), and ``refused`` (the right status and a detail naming the problem)."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from pg import pg_server  # noqa: F401  (session fixture)
from sqlalchemy import func, select

from service.app import create_app
from store import Base
from store.settings import Settings

UNKNOWN_ID = "0123456789abcdef0123456789abcdef"


BAD_IDS = ["abc", "0" * 31, "0" * 33, "A" * 32, "g" * 32, "0123456789abcdef0123456789abcde-"]


ROWS = "".join(f"review number {i} of the film,{i % 2}\n" for i in range(40))


GOOD_CSV = ("text,label\n" + ROWS).encode()


TABLES = tuple(Base.metadata.tables)  # every table of ours


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tgz_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def folder_members(folder: Path, prefix: str = "model/") -> dict[str, bytes]:
    return {
        prefix + p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def database_url(request: pytest.FixtureRequest, backend: str, folder: Path) -> str:
    if backend == "sqlite":  # beside the home, so the home holds only what the API wrote
        return f"sqlite:///{folder / 'db.sqlite'}"
    return request.getfixturevalue("pg_server").create_database()


@dataclass
class Api:
    app: FastAPI
    client: TestClient
    settings: Settings
    backend: str
    a: dict[str, str]  # headers of key A (owns everything below)
    b: dict[str, str]  # headers of key B (owns nothing at first)
    dataset_id: str  # rotten_tomatoes 100/50
    teacher_id: str  # the shipped MiniLM as a base encoder
    tiny3_id: str  # a fine-tuned-looking 3-label teacher, uploaded
    job_id: str  # queued, with one running trial
    trial_id: int

    @property
    def db(self) -> Any:
        return self.app.state.ctx.db

    def job(self, headers: dict[str, str] | None = None) -> Response:
        """Submit a small job for the dataset and the base-encoder teacher (as A unless told)."""
        body = {"dataset_id": self.dataset_id, "teacher_id": self.teacher_id, "budget": {"trials": 2}}
        return self.client.post("/v1/jobs", json=body, headers=headers or self.a)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def make_app(request: pytest.FixtureRequest, backend: str, folder: Path, **settings: Any) -> FastAPI:
    home = folder / "home"
    home.mkdir()
    return create_app(Settings(home=home, database_url=database_url(request, backend, folder), **settings))


def dispose(app: FastAPI) -> None:
    app.state.ctx.db.kw["bind"].dispose()


def state(app: FastAPI) -> tuple[dict[str, int], set[str]]:
    """Rows per table, and every path under the home (but the two upload kinds' parent folders)."""
    engine = app.state.ctx.db.kw["bind"]
    with engine.connect() as conn:
        counts = {
            t.name: conn.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables
        }
    home: Path = app.state.ctx.settings.home
    parents = {home / "uploads", home / "uploads" / "datasets", home / "uploads" / "teachers"}
    paths = {p.relative_to(home).as_posix() for p in home.rglob("*") if p not in parents}
    return counts, paths


@contextmanager
def unchanged(app: FastAPI) -> Iterator[None]:
    """Assert that the block changes no table's row count and no path under the home."""
    counts, paths = state(app)
    assert set(TABLES) <= set(counts)
    yield
    after_counts, after_paths = state(app)
    changed = {t: (n, after_counts[t]) for t, n in counts.items() if after_counts[t] != n}
    assert not changed, f"a refused request changed the database (rows before, after): {changed}"
    assert after_paths == paths, f"a refused request left files: {sorted(after_paths ^ paths)}"


def refused(r: Response, status: int, *phrases: str) -> Any:
    """``r`` has ``status`` and a JSON ``detail`` naming every phrase (case-insensitive)."""
    assert r.status_code == status, f"{r.status_code} != {status}: {r.text[:500]}"
    detail = r.json()["detail"]
    text = (detail if isinstance(detail, str) else json.dumps(detail)).lower()
    for phrase in phrases:
        assert phrase.lower() in text, f"{phrase!r} not in detail {detail!r}"
    return detail


def upload_dataset(api: Api, name: str, data: bytes, **form: str) -> Response:
    return api.client.post("/v1/datasets", files={"file": (name, data)}, data=form, headers=api.a)


def upload_teacher(api: Api, name: str, data: bytes, **form: str) -> Response:
    return api.client.post("/v1/teachers", files={"file": (name, data)}, data=form, headers=api.a)
