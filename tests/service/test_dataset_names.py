"""Uploads keep the user's names (issue 13): the dataset is its file's name (or the one given) everywhere;
two different uploads of the same name are two tasks (name + content fingerprint); a refused CSV names the
user's file and line, never the server's path; separate validation / test files round-trip."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from store import create_key
from store.settings import Settings
from workers.recommend import task_name


@pytest.fixture
def client(tmp_path: Path) -> tuple[TestClient, dict[str, str], Settings]:
    settings = Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    app = create_app(settings)
    _, key = create_key(app.state.ctx.db, "alice")
    return TestClient(app, raise_server_exceptions=False), {"Authorization": f"Bearer {key}"}, settings


def _rows(n: int, offset: int = 0) -> bytes:
    labels = ("negative", "neutral", "positive")
    return ("text,label\n" + "".join(f"tweet {i + offset},{labels[i % 3]}\n" for i in range(n))).encode()


def test_upload_keeps_its_name_and_split_files(client):
    http, auth, _ = client
    files = {"file": ("tweets.csv", _rows(90)), "test_file": ("tweets-test.csv", _rows(30, 1000)),
             "validation_file": ("tweets-val.csv", _rows(15, 2000))}  # fmt: skip
    r = http.post("/v1/datasets", files=files, headers=auth)
    assert r.status_code == 201, r.text
    d = r.json()
    assert d["name"] == d["profile"]["name"] == d["ref"]["name"] == "tweets.csv"
    assert (d["profile"]["train"], d["profile"]["validation"], d["profile"]["test"]) == (90, 15, 30)
    assert d["profile"]["split"]["how"] == "given splits"
    folder = Path(d["ref"]["source"]).parent
    assert sorted(p.name for p in folder.iterdir()) == ["data.csv", "test.csv", "validation.csv"]
    r = http.post("/v1/datasets", files={"file": ("tweets.csv", _rows(90, 5))}, headers=auth)
    other = r.json()
    assert other["profile"]["test"] == 9 and other["profile"]["split"]["how"] == "seeded stratified fractions"
    assert other["profile"]["fingerprint"] != d["profile"]["fingerprint"]
    jobs = [SimpleNamespace(dataset=x["ref"], budget={}) for x in (d, other)]
    names = [task_name(j, x["profile"]["fingerprint"]) for j, x in zip(jobs, (d, other), strict=True)]
    assert names[0].startswith("tweets.csv#") and names[0] != names[1]  # two tasks, not `data.csv/all`


def test_a_bare_cr_names_the_users_file_and_line(client):
    http, auth, settings = client
    body = b"text,label\ngood,positive\nbad,negative\nso\rso,neutral\nok,neutral\n"
    r = http.post("/v1/datasets", files={"file": ("my tweets.csv", body)}, headers=auth)
    assert r.status_code == 422, r.text
    detail = str(r.json()["detail"])
    assert "my tweets.csv, line 4: a bare carriage return" in detail
    assert str(settings.home) not in detail and "data.csv" not in detail
    assert not any((settings.uploads / "datasets").glob("*/*"))  # nothing left behind


def test_a_split_file_outside_the_import_roots_is_refused(client):
    http, auth, _ = client
    body = {"source": "rotten_tomatoes", "test_source": "/etc/passwd"}
    r = http.post("/v1/datasets", json=body, headers=auth)
    assert r.status_code == 403 and "outside the allowed folders" in r.json()["detail"]
