"""The API refuses bad input with the right 4xx, a ``detail`` that says what to fix, and no side effects.

Every refusal is checked against a snapshot of the whole service state: the row count of every table and every
path under the data folder (uploads included). The suite runs on SQLite and, when a server is available, on
PostgreSQL (``tests/pg.py``). Nothing here touches the network: the Hub is switched to offline mode.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import uuid
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

from distill.pipeline import Pipeline
from service.app import create_app
from store import Base, add_artifact, create_key, revoke_key, start_trial
from store.settings import Settings

UNKNOWN_ID = "0123456789abcdef0123456789abcdef"
BAD_IDS = ["abc", "0" * 31, "0" * 33, "A" * 32, "g" * 32, "0123456789abcdef0123456789abcde-"]
ROWS = "".join(f"review number {i} of the film,{i % 2}\n" for i in range(40))
GOOD_CSV = ("text,label\n" + ROWS).encode()
TABLES = tuple(Base.metadata.tables)  # every table of ours


# ----------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def offline(hub_offline: None) -> None:
    """Every test here runs with the Hub unreachable."""


@pytest.fixture(scope="module")
def tiny3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fine-tuned-looking 3-label classifier: 2-layer, 32-wide BERT, MiniLM's tokenizer, untrained."""
    import torch
    import transformers

    from distill.assets import minilm_dir
    from distill.hf import load_tokenizer

    folder = tmp_path_factory.mktemp("tiny3")
    tok = load_tokenizer(minilm_dir())
    cfg = transformers.BertConfig(
        vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, num_labels=3,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(cfg).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


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


@pytest.fixture(scope="module")
def tiny3_zip(tiny3_dir: Path) -> bytes:
    return zip_bytes(folder_members(tiny3_dir))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


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


@pytest.fixture(scope="module")
def api(
    request: pytest.FixtureRequest, backend: str, tmp_path_factory: pytest.TempPathFactory, tiny3_zip: bytes
) -> Iterator[Api]:
    app = make_app(request, backend, tmp_path_factory.mktemp(f"api-{backend}"))
    db = app.state.ctx.db
    (_, key_a), (_, key_b) = create_key(db, "a"), create_key(db, "b")
    a, b = bearer(key_a), bearer(key_b)
    client = TestClient(app, raise_server_exceptions=False)
    r = client.post(
        "/v1/datasets", json={"source": "rotten_tomatoes", "max_train": 100, "max_val": 50}, headers=a
    )
    assert r.status_code == 201, r.text
    dataset_id = r.json()["id"]
    r = client.post("/v1/teachers", json={"base": "minilm"}, headers=a)
    assert r.status_code == 201, r.text
    teacher_id = r.json()["id"]
    r = client.post("/v1/teachers", files={"file": ("tiny3.zip", tiny3_zip)}, headers=a)
    assert r.status_code == 201, r.text
    assert r.json()["profile"]["num_labels"] == 3
    tiny3_id = r.json()["id"]
    body = {"dataset_id": dataset_id, "teacher_id": teacher_id, "budget": {"trials": 2}}
    r = client.post("/v1/jobs", json=body, headers=a)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    trial_id = start_trial(db, job_id, 0, Pipeline()).id
    yield Api(
        app, client, app.state.ctx.settings, backend, a, b, dataset_id, teacher_id, tiny3_id, job_id, trial_id
    )
    client.close()
    dispose(app)


# ----------------------------------------------------------------------------------------------- helpers


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
        ("reviews.csv", b"text,label\na,0\nb,1\n", ["too few examples"]),
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
        refused(post("/v1/teachers", json={"path": "bert"}, headers=api.a), 422, "neither an existing folder")
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


# ----------------------------------------------------------------------------------------------- jobs


def test_label_mismatch(api: Api) -> None:
    body = {"dataset_id": api.dataset_id, "teacher_id": api.tiny3_id}
    with unchanged(api.app):
        r = api.client.post("/v1/jobs", json=body, headers=api.a)
        refused(r, 422, "do not match", "3 labels", "rotten_tomatoes")


@pytest.mark.parametrize(
    ("budget", "phrases"),
    [
        ({"trials": 1}, ["trials", "greater than or equal to 2"]),
        ({"trials": 10**6}, ["trials", "less than or equal to 10000"]),
        ({"concurrency": 0}, ["concurrency", "greater than or equal to 1"]),
        ({"wall_seconds": -5}, ["wall_seconds", "greater than 0"]),
        ({"objectives": ["params"]}, ["objectives start with `accuracy`"]),
        ({"objectives": ["accuracy", "accuracy"]}, ["each once"]),
        ({"objectives": ["accuracy", "size"]}, ["objectives", "latency_ms"]),
        ({"max_params": 10}, ["max_params", "1000"]),
        ({"cpus_per_trial": 0}, ["cpus_per_trial"]),
        ({"space": "huge"}, ["space", "'small'"]),
        ({"trials": "many"}, ["trials", "integer"]),
        ({"gpus": 1}, ["gpus", "extra"]),
    ],
)
def test_budget_out_of_range(api: Api, budget: dict[str, Any], phrases: list[str]) -> None:
    body = {"dataset_id": api.dataset_id, "teacher_id": api.teacher_id, "budget": budget}
    with unchanged(api.app):
        refused(api.client.post("/v1/jobs", json=body, headers=api.a), 422, *phrases)


def test_bad_job_request(api: Api) -> None:
    post, a = api.client.post, api.a
    with unchanged(api.app):
        refused(
            post("/v1/jobs", json={"teacher_id": api.teacher_id}, headers=a), 422, "dataset_id", "missing"
        )
        for bad in BAD_IDS:
            body = {"dataset_id": bad, "teacher_id": api.teacher_id}
            refused(post("/v1/jobs", json=body, headers=a), 422, "dataset_id", "pattern")
        body = {"dataset_id": UNKNOWN_ID, "teacher_id": api.teacher_id}
        refused(post("/v1/jobs", json=body, headers=a), 404, f"no dataset {UNKNOWN_ID}")
        body = {"dataset_id": api.dataset_id, "teacher_id": UNKNOWN_ID}
        refused(post("/v1/jobs", json=body, headers=a), 404, f"no teacher {UNKNOWN_ID}")
        body = {"dataset_id": api.teacher_id, "teacher_id": api.dataset_id}  # swapped: each is the other kind
        refused(post("/v1/jobs", json=body, headers=a), 404, "no dataset")
        refused(api.job({**a, "Idempotency-Key": "a b"}), 422, "idempotency-key", "pattern")
        refused(api.job({**a, "Idempotency-Key": "k" * 129}), 422, "idempotency-key")


def test_cancel_twice_is_409(api: Api) -> None:
    r = api.job()
    assert r.status_code == 202
    job_id = r.json()["id"]
    r = api.client.post(f"/v1/jobs/{job_id}/cancel", headers=api.a)
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    with unchanged(api.app):
        refused(
            api.client.post(f"/v1/jobs/{job_id}/cancel", headers=api.a), 409, "already ended", "cancelled"
        )
    assert api.client.get(f"/v1/jobs/{job_id}", headers=api.a).json()["state"] == "cancelled"


def test_student_of_unfinished_job_is_409(api: Api) -> None:
    with unchanged(api.app):
        r = api.client.get(f"/v1/jobs/{api.job_id}/student", headers=api.a)
        refused(r, 409, "no student yet", "queued")


def test_student_gone_is_410(api: Api) -> None:
    r = api.job()
    job_id = r.json()["id"]
    add_artifact(api.db, job_id, "student", f"artifacts/{job_id}/student")  # the folder is not there
    with unchanged(api.app):
        refused(api.client.get(f"/v1/jobs/{job_id}/student", headers=api.a), 410, "no longer on the server")


def test_idempotency_key(api: Api) -> None:
    key = f"retry-{uuid.uuid4().hex}"
    first = api.job({**api.a, "Idempotency-Key": key})
    assert first.status_code == 202, first.text
    counts, _ = state(api.app)
    again = api.job({**api.a, "Idempotency-Key": key})
    assert again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Location"] == f"/v1/jobs/{first.json()['id']}"
    assert state(api.app)[0] == counts  # no second row
    jobs = Base.metadata.tables["jobs"]
    with api.app.state.ctx.db.kw["bind"].connect() as conn:
        ids = conn.scalars(select(jobs.c.id).where(jobs.c.idempotency_key == key)).all()
    assert ids == [first.json()["id"]]
    # Another key using the same Idempotency-Key gets a job of its own, never A's.
    rt = {"source": "rotten_tomatoes", "max_train": 100, "max_val": 50}
    b_dataset = api.client.post("/v1/datasets", json=rt, headers=api.b).json()["id"]
    b_teacher = api.client.post("/v1/teachers", json={"base": "minilm"}, headers=api.b).json()["id"]
    body = {"dataset_id": b_dataset, "teacher_id": b_teacher}
    other = api.client.post("/v1/jobs", json=body, headers={**api.b, "Idempotency-Key": key})
    assert other.status_code == 202
    assert other.json()["id"] != first.json()["id"]


# ----------------------------------------------------------------------------------------------- ids


def job_urls(job_id: str) -> list[tuple[str, str]]:
    base = f"/v1/jobs/{job_id}"
    return [
        ("GET", base),
        ("GET", f"{base}/events"),
        ("GET", f"{base}/recommendation"),
        ("GET", f"{base}/trials"),
        ("GET", f"{base}/student"),
        ("POST", f"{base}/cancel"),
    ]


def id_urls(some_id: str) -> list[tuple[str, str]]:
    return [("GET", f"/v1/datasets/{some_id}"), ("GET", f"/v1/teachers/{some_id}"), *job_urls(some_id)]


def test_unknown_ids_are_404(api: Api) -> None:
    with unchanged(api.app):
        for method, url in id_urls(UNKNOWN_ID):
            refused(api.client.request(method, url, headers=api.a), 404, UNKNOWN_ID)
        refused(api.client.get("/v1/trials/987654321", headers=api.a), 404, "no trial 987654321")


def test_malformed_ids_are_422(api: Api) -> None:
    with unchanged(api.app):
        for bad in BAD_IDS:
            for method, url in id_urls(bad):
                refused(api.client.request(method, url, headers=api.a), 422, "pattern")
        for bad in ["abc", "0", "-1", "1.5", str(2**53 + 1)]:
            refused(api.client.get(f"/v1/trials/{bad}", headers=api.a), 422, "trial_id")


def test_bad_query_parameters_are_422(api: Api) -> None:
    get, a = api.client.get, api.a
    with unchanged(api.app):
        refused(get("/v1/jobs?limit=0", headers=a), 422, "limit")
        refused(get("/v1/jobs?limit=501", headers=a), 422, "limit")
        refused(get("/v1/datasets?offset=-1", headers=a), 422, "offset")
        refused(get("/v1/jobs?state=sleeping", headers=a), 422, "state", "queued")
        refused(get(f"/v1/jobs/{api.job_id}/trials?sort=colour", headers=a), 422, "sort", "accuracy")
        refused(get(f"/v1/jobs/{api.job_id}/trials?status=lost", headers=a), 422, "status", "running")
        refused(get(f"/v1/jobs/{api.job_id}/events?interval=0", headers=a), 422, "interval")


# ----------------------------------------------------------------------------------------------- keys


def test_missing_unknown_and_revoked_keys_are_401(api: Api) -> None:
    row, key = create_key(api.db, "soon revoked")
    assert api.client.get("/v1/jobs", headers=bearer(key)).status_code == 200
    assert revoke_key(api.db, row.id)
    urls = [("GET", "/v1/jobs"), ("GET", "/v1/datasets"), ("GET", "/v1/teachers"), *id_urls(api.job_id)]
    urls += [("GET", f"/v1/trials/{api.trial_id}")]
    with unchanged(api.app):
        for method, url in urls:
            for headers, phrase in [
                ({}, "missing API key"),
                ({"Authorization": "Bearer "}, "missing API key"),
                ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing API key"),
                (bearer("adk_not-a-real-key"), "unknown or revoked"),
                ({"X-API-Key": "adk_not-a-real-key"}, "unknown or revoked"),
                (bearer(key), "unknown or revoked"),
                ({"X-API-Key": key}, "unknown or revoked"),
            ]:
                r = api.client.request(method, url, headers=headers)
                refused(r, 401, phrase)
                assert r.headers["WWW-Authenticate"] == "Bearer"
        # a refused key uploads nothing, whatever the body
        refused(
            api.client.post("/v1/datasets", files={"file": ("d.csv", GOOD_CSV)}, headers=bearer(key)), 401
        )
        body = {"dataset_id": api.dataset_id, "teacher_id": api.teacher_id}
        refused(api.client.post("/v1/jobs", json=body), 401, "missing API key")
    assert api.client.get("/v1/health").status_code == 200  # the health check needs no key


@pytest.mark.parametrize("route", ["datasets", "teachers"])
@pytest.mark.parametrize(
    "ctype", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
)
def test_wrong_content_type_is_415(api: Api, route: str, ctype: str | None) -> None:
    headers = {**api.a, "Content-Type": ctype} if ctype else api.a
    with unchanged(api.app):
        r = api.client.post(f"/v1/{route}", content=b'{"source": "rotten_tomatoes"}', headers=headers)
        refused(r, 415, "application/json", "multipart/form-data")


def test_jobs_wrong_content_type_is_415(api: Api) -> None:
    body = json.dumps({"dataset_id": api.dataset_id, "teacher_id": api.teacher_id}).encode()
    with unchanged(api.app):
        r = api.client.post("/v1/jobs", content=body, headers={**api.a, "Content-Type": "text/plain"})
        refused(r, 415, "application/json")


# ----------------------------------------------------------------------------------------------- cross-key


def test_other_keys_resources_are_invisible(api: Api) -> None:
    b, job_id = api.b, api.job_id
    with unchanged(api.app):
        for method, url in [*job_urls(job_id), ("GET", f"/v1/datasets/{api.dataset_id}")]:
            refused(api.client.request(method, url, headers=b), 404, url.split("/")[3])
        refused(
            api.client.get(f"/v1/teachers/{api.teacher_id}", headers=b), 404, f"no teacher {api.teacher_id}"
        )
        refused(api.client.get(f"/v1/teachers/{api.tiny3_id}", headers=b), 404, "no teacher")
        refused(api.client.get(f"/v1/trials/{api.trial_id}", headers=b), 404)
        body = {"dataset_id": api.dataset_id, "teacher_id": api.teacher_id}
        refused(api.client.post("/v1/jobs", json=body, headers=b), 404, "no dataset")
        listed = [
            api.client.get(f"/v1/{what}", headers=b).json() for what in ("jobs", "datasets", "teachers")
        ]
        for page in listed:
            ids = {item["id"] for item in page["items"]}
            assert not ids & {job_id, api.dataset_id, api.teacher_id, api.tiny3_id}
    # with B's own dataset and teacher beside them, A's dataset and A's teacher are still unknown to B
    rt = {"source": "rotten_tomatoes", "max_train": 100, "max_val": 50}
    b_dataset = api.client.post("/v1/datasets", json=rt, headers=b).json()["id"]
    b_teacher = api.client.post("/v1/teachers", json={"base": "minilm"}, headers=b).json()["id"]
    with unchanged(api.app):
        body = {"dataset_id": api.dataset_id, "teacher_id": b_teacher}
        refused(api.client.post("/v1/jobs", json=body, headers=b), 404, f"no dataset {api.dataset_id}")
        for teacher in (api.teacher_id, api.tiny3_id):
            body = {"dataset_id": b_dataset, "teacher_id": teacher}
            refused(api.client.post("/v1/jobs", json=body, headers=b), 404, f"no teacher {teacher}")
    mine = api.client.get(f"/v1/jobs/{job_id}", headers=api.a)
    assert mine.status_code == 200 and mine.json()["state"] == "queued"
    assert api.client.get(f"/v1/trials/{api.trial_id}", headers=api.a).status_code == 200


def test_other_keys_trial_looks_unknown(api: Api) -> None:
    r = api.client.get(f"/v1/trials/{api.trial_id}", headers=api.b)
    assert r.status_code == 404
    assert r.json()["detail"] == f"no trial {api.trial_id}"


# ------------------------------------------------------------------------ inputs that once were a 5xx


def test_nul_byte_in_uploaded_text(api: Api) -> None:
    for data in [b"text,label\nnul \x00 inside,1\n" + ROWS.encode(), GOOD_CSV + b"text,\x00\n"]:
        with unchanged(api.app):
            refused(upload_dataset(api, "nul.csv", data), 422, "NUL")


def test_long_upload_filename(api: Api) -> None:
    r = upload_dataset(api, "n" * 300 + ".csv", GOOD_CSV)
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "n" * 200


def test_trial_id_past_int32(api: Api) -> None:
    with unchanged(api.app):
        refused(api.client.get(f"/v1/trials/{2**31}", headers=api.a), 422, "less than or equal")
        refused(api.client.get(f"/v1/trials/{2**31 - 1}", headers=api.a), 404, "no trial")


@pytest.mark.parametrize(
    ("route", "body"),
    [("datasets", {"source": "~nosuchuser/x.csv"}), ("teachers", {"base": "~nosuchuser"})],
)
def test_unknown_user_home_path(api: Api, route: str, body: dict[str, str]) -> None:
    with unchanged(api.app):
        r = api.client.post(f"/v1/{route}", json=body, headers=api.a)
        assert r.status_code in (403, 404, 422), r.text


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("datasets", {"source": "b" * 300}),
        ("teachers", {"path": "b" * 300}),
        ("teachers", {"base": "b" * 300}),
    ],
)
def test_overlong_name(api: Api, route: str, body: dict[str, str]) -> None:
    with unchanged(api.app):
        refused(api.client.post(f"/v1/{route}", json=body, headers=api.a), 422)


@pytest.mark.parametrize("field", ["wall_seconds", "cpus_per_trial", "max_latency_ms", "target_ratio"])
def test_nan_in_budget(api: Api, field: str) -> None:
    raw = '{"dataset_id": "%s", "teacher_id": "%s", "budget": {"%s": NaN}}'
    body = (raw % (api.dataset_id, api.teacher_id, field)).encode()
    with unchanged(api.app):
        r = api.client.post("/v1/jobs", content=body, headers={**api.a, "Content-Type": "application/json"})
        refused(r, 422, field)


def test_infinite_latency_in_budget(api: Api) -> None:
    raw = '{"dataset_id": "%s", "teacher_id": "%s", "budget": {"max_latency_ms": Infinity}}'
    body = (raw % (api.dataset_id, api.teacher_id)).encode()
    with unchanged(api.app):
        r = api.client.post("/v1/jobs", content=body, headers={**api.a, "Content-Type": "application/json"})
        refused(r, 422, "max_latency_ms")


@pytest.mark.parametrize(
    "budget", [{"epochs": [0]}, {"epochs": [-1, 2]}, {"epochs": [10**9]}, {"seed": 2**32}]
)
def test_budget_the_worker_cannot_run(api: Api, budget: dict[str, Any]) -> None:
    body = {"dataset_id": api.dataset_id, "teacher_id": api.teacher_id, "budget": budget}
    with unchanged(api.app):
        refused(api.client.post("/v1/jobs", json=body, headers=api.a), 422, next(iter(budget)))


def test_teacher_weights_must_match_config(api: Api, tiny3_dir: Path) -> None:
    import torch
    from safetensors.torch import save

    members = folder_members(tiny3_dir, prefix="")
    members["model.safetensors"] = save({"unrelated": torch.zeros(4)})
    with unchanged(api.app):
        refused(upload_teacher(api, "model.zip", zip_bytes(members)), 422, "weights")
