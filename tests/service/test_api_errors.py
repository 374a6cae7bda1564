"""The API refuses bad input with the right 4xx, a ``detail`` that says what to fix, and no side effects:
datasets, teachers, server-side paths and oversize uploads (jobs, ids and keys: ``test_api_errors_jobs.py``).

Every refusal is checked against a snapshot of the whole service state: the row count of every table and every
path under the data folder (uploads included). The suite runs on SQLite and, when a server is available, on
PostgreSQL (``tests/pg.py``). Nothing here touches the network: the Hub is switched to offline mode.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_checks import (
    GOOD_CSV,
    ROWS,
    Api,
    bearer,
    dispose,
    folder_members,
    make_app,
    refused,
    tgz_bytes,
    unchanged,
    upload_dataset,
    upload_teacher,
    zip_bytes,
)
from fastapi.testclient import TestClient
from pg import pg_server  # noqa: F401  (session fixture)

from store import create_key


def test_unchanged_notices_rows_and_files(api: Api) -> None:
    """The snapshot check itself: an accepted upload adds a row and a file, and is caught."""
    with pytest.raises(AssertionError, match="changed the database"), unchanged(api.app):
        assert upload_dataset(api, "ok.csv", GOOD_CSV).status_code == 201
    stray = api.settings.uploads / "datasets" / "stray.txt"
    with pytest.raises(AssertionError, match="left files"), unchanged(api.app):
        stray.write_text("x")
    stray.unlink()


# ----------------------------------------------------------------------------------------------- datasets


@pytest.mark.parametrize(
    ("name", "data", "phrases"),
    [
        ("reviews.csv", b'text,label\n"an unclosed quote,1\nfine,0\n', ["could not parse", "CSV"]),
        ("reviews.csv", GOOD_CSV + "café,1\n".encode("latin-1"), ["not UTF-8", "save it as UTF-8"]),
        ("reviews.csv", ("text,sentiment\n" + ROWS).encode(), ["no label column `label`", "text, sentiment"]),
        ("reviews.csv", ("text,label\n" + "".join(f"r{i},pos\n" for i in range(30))).encode(), ["one class"]),
        ("reviews.csv", b"text,label\n", ["zero rows"]),
        ("reviews.csv", b"text,label\na,0\nb,1\n", ["too few"]),
        ("reviews.json", b"{not json", ["could not parse", "JSON"]),
        ("reviews.xlsx", GOOD_CSV, ["unsupported file type `.xlsx`", ".csv"]),
        ("reviews", GOOD_CSV, ["unsupported file type", ".parquet"]),
        ("reviews.csv", b"", ["the uploaded file is empty"]),
    ],
    ids=[
        "malformed",
        "latin1",
        "no-label",
        "one-class",
        "header-only",
        "two-rows",
        "bad-json",
        "xlsx",
        "no-suffix",
        "empty",
    ],
)
def test_bad_dataset_upload(api: Api, name: str, data: bytes, phrases: list[str]) -> None:
    with unchanged(api.app):
        refused(upload_dataset(api, name, data), 422, *phrases)


def test_dataset_upload_form_errors(api: Api) -> None:
    with unchanged(api.app):
        refused(upload_dataset(api, "d.csv", GOOD_CSV, max_train="many"), 422, "max_train", "integer")
        refused(upload_dataset(api, "d.csv", GOOD_CSV, max_train="5"), 422, "max_train", "greater than")
        refused(upload_dataset(api, "d.csv", GOOD_CSV, bogus="1"), 422, "bogus", "extra")
        refused(upload_dataset(api, "d.csv", GOOD_CSV, label_column="sentiment"), 422, "`sentiment`")
        r = api.client.post("/v1/datasets", files={"data": ("d.csv", GOOD_CSV)}, headers=api.a)
        refused(r, 422, "`file` field")


def test_bad_dataset_json(api: Api) -> None:
    post = api.client.post
    with unchanged(api.app):
        refused(post("/v1/datasets", json={}, headers=api.a), 422, "source", "missing")
        refused(
            post("/v1/datasets", json={"source": "rotten_tomatoes", "max_val": 1}, headers=api.a),
            422,
            "max_val",
        )
        refused(post("/v1/datasets", json={"source": "a\x00b"}, headers=api.a), 422, "source", "pattern")
        refused(post("/v1/datasets", json={"source": "nobody/nothing"}, headers=api.a), 422, "nobody/nothing")
        refused(post("/v1/datasets", json=[], headers=api.a), 422, "object")
        r = post("/v1/datasets", content=b"{", headers={**api.a, "Content-Type": "application/json"})
        refused(r, 422, "invalid json")


# ----------------------------------------------------------------------------------------------- teachers


def test_teacher_archive_zip_slip(api: Api, tiny3_dir: Path) -> None:
    members = folder_members(tiny3_dir, prefix="")
    escaped = api.settings.uploads / "teachers" / "evil"
    for maker, name in ((zip_bytes, "model.zip"), (tgz_bytes, "model.tar.gz")):
        with unchanged(api.app):
            r = upload_teacher(api, name, maker({**members, "../evil": b"pwned"}))
            refused(r, 422, "'../evil'", "outside the archive")
        assert not escaped.exists()


def test_teacher_archive_absolute_path(api: Api, tiny3_dir: Path) -> None:
    target = Path(f"/tmp/autodistiller-evil-{uuid.uuid4().hex}")
    members = folder_members(tiny3_dir, prefix="")
    for maker, name in ((zip_bytes, "model.zip"), (tgz_bytes, "model.tgz")):
        with unchanged(api.app):
            r = upload_teacher(api, name, maker({**members, str(target): b"pwned"}))
            refused(r, 422, "absolute path", "relative paths")
        assert not target.exists()


def test_teacher_archive_pickled_weights(api: Api, tiny3_dir: Path) -> None:
    import torch

    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buf)
    members = {
        "model/config.json": (tiny3_dir / "config.json").read_bytes(),
        "model/pytorch_model.bin": buf.getvalue(),
    }
    with unchanged(api.app):
        refused(upload_teacher(api, "model.zip", zip_bytes(members)), 422, "pickled weights", "safetensors")


def test_teacher_archive_remote_code(api: Api, tiny3_dir: Path) -> None:
    members = folder_members(tiny3_dir)
    config = json.loads(members["model/config.json"])
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_evil.EvilModel"}
    members["model/config.json"] = json.dumps(config).encode()
    members["model/modeling_evil.py"] = b"import os\nos.system('echo pwned')\n"
    with unchanged(api.app):
        refused(upload_teacher(api, "model.zip", zip_bytes(members)), 422, "auto_map", "remote code")


@pytest.mark.parametrize(
    ("name", "data", "phrases"),
    [
        ("model.zip", b"hello, this is not an archive\n" * 50, ["not a zip or tar archive"]),
        ("model.tar.gz", b"\x1f\x8b\x08\x00truncated gzip", ["not a zip or tar archive"]),
        ("model.rar", b"Rar!\x1a\x07\x00", ["upload the model folder as one of", ".zip"]),
        ("model.zip", b"", ["the uploaded file is empty"]),
        ("model.zip", zip_bytes({"model/weights.safetensors": b"w"}), ["no config.json"]),
        ("model.zip", zip_bytes({"config.json": b'{"model_type": "bert"}'}), ["no weights", "safetensors"]),
        ("model.zip", zip_bytes({"config.json": b"{not json"}), ["not valid JSON"]),
        ("model.zip", zip_bytes({"config.json": b'{"model_type": "nope"}'}), ["unknown model_type"]),
    ],
    ids=["junk-zip", "junk-tgz", "rar", "empty", "no-config", "no-weights", "bad-config", "bad-type"],
)
def test_bad_teacher_archive(api: Api, name: str, data: bytes, phrases: list[str]) -> None:
    with unchanged(api.app):
        refused(upload_teacher(api, name, data), 422, *phrases)


def test_bad_teacher_json(api: Api) -> None:
    post = api.client.post
    with unchanged(api.app):
        refused(post("/v1/teachers", json={}, headers=api.a), 422, "exactly one of `path`")
        refused(
            post("/v1/teachers", json={"path": "a/b", "base": "minilm"}, headers=api.a), 422, "exactly one"
        )
        refused(
            post("/v1/teachers", json={"base": "minilm", "finetune": {"epochs": 0}}, headers=api.a),
            422,
            "epochs",
        )
        refused(post("/v1/teachers", json={"path": "nobody/nothing"}, headers=api.a), 422, "nobody/nothing")
        refused(post("/v1/teachers", json={"path": "bert"}, headers=api.a), 422, "not a model", "hub")
        r = api.client.post(
            "/v1/teachers", files={"file": ("m.zip", b"x")}, data={"bogus": "1"}, headers=api.a
        )
        refused(r, 422, "bogus")


# ----------------------------------------------------------------------------------- server-side paths


@pytest.fixture(scope="module")
def imports(api: Api, tmp_path_factory: pytest.TempPathFactory, tiny3_dir: Path) -> Path:
    """The home's import folder with links pointing outside it."""
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.csv").write_bytes(GOOD_CSV)
    shutil.copytree(tiny3_dir, outside / "model")
    root = api.settings.allowed_roots[0]
    root.mkdir(parents=True, exist_ok=True)
    (root / "link.csv").symlink_to(outside / "secret.csv")
    (root / "model-link").symlink_to(outside / "model")
    (root / "dir-link").symlink_to(outside)
    return root


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("datasets", {"source": "/etc/passwd"}),
        ("datasets", {"source": "../../x.csv"}),
        ("datasets", {"source": "./../../etc/passwd"}),
        ("datasets", {"source": "link.csv"}),
        ("datasets", {"source": "./dir-link/secret.csv"}),
        ("teachers", {"path": "/etc/passwd"}),
        ("teachers", {"path": "../../x"}),
        ("teachers", {"path": "./model-link"}),
        ("teachers", {"base": "/etc"}),
        ("teachers", {"base": "./dir-link/model"}),
    ],
)
def test_server_path_outside_import_roots(api: Api, imports: Path, route: str, body: dict[str, str]) -> None:
    with unchanged(api.app):
        r = api.client.post(f"/v1/{route}", json=body, headers=api.a)
        refused(r, 403, "outside the allowed folders", str(imports.resolve()))


# ----------------------------------------------------------------------------------- uploads too large


@pytest.fixture(scope="module")
def small(
    request: pytest.FixtureRequest, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    """An API that takes uploads of at most 0.01 MB (~10 KB)."""
    app = make_app(request, backend, tmp_path_factory.mktemp(f"small-{backend}"), max_upload_mb=0.01)
    _, key = create_key(app.state.ctx.db, "a")
    client = TestClient(app, raise_server_exceptions=False)
    yield Api(app, client, app.state.ctx.settings, backend, bearer(key), {}, "", "", "", "", 0)
    client.close()
    dispose(app)


def test_oversize_uploads(small: Api, tiny3_dir: Path) -> None:
    big_csv = ("text,label\n" + ROWS * 40).encode()
    assert 40_000 < len(big_csv) < 60_000
    big_zip = zip_bytes({"config.json": b"{}", "noise.safetensors": os.urandom(50_000)})
    assert len(big_zip) > 40_000
    with unchanged(small.app):
        refused(upload_dataset(small, "big.csv", big_csv), 413, "larger than", "AUTODISTILLER_MAX_UPLOAD_MB")
        refused(upload_teacher(small, "big.zip", big_zip), 413, "larger than", "AUTODISTILLER_MAX_UPLOAD_MB")
        r = small.client.post(
            "/v1/datasets", content=b"x" * (1 << 21), headers={**small.a, "Content-Type": "text/csv"}
        )
        refused(r, 413, "request body is larger", "AUTODISTILLER_MAX_UPLOAD_MB")
        files = {"file": ("huge.csv", io.BytesIO(b"x" * (3 << 20)))}
        refused(
            small.client.post("/v1/datasets", files=files, headers=small.a),
            413,
            "AUTODISTILLER_MAX_UPLOAD_MB",
        )
    assert upload_dataset(small, "ok.csv", GOOD_CSV).status_code == 201  # under the limit: fine
