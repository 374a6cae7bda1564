"""The API refuses bad jobs, ids, keys, content types and cross-key access with the right 4xx and no side
effects (fixtures and helpers: ``conftest.py`` beside this file)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from api_checks import (
    BAD_IDS,
    GOOD_CSV,
    ROWS,
    UNKNOWN_ID,
    Api,
    bearer,
    folder_members,
    refused,
    state,
    unchanged,
    upload_dataset,
    upload_teacher,
    zip_bytes,
)
from pg import pg_server  # noqa: F401  (session fixture)
from sqlalchemy import select

from store import Base, add_artifact, create_key, revoke_key

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
        ({"wall_seconds": -5}, ["wall_seconds", "greater than or equal to 30"]),
        ({"objectives": ["params"]}, ["objectives start with `accuracy`"]),
        ({"objectives": ["accuracy", "accuracy"]}, ["each once"]),
        ({"objectives": ["accuracy", "size"]}, ["objectives", "latency_ms"]),
        ({"max_params": 10}, ["max_params", "1000"]),
        ({"cpus_per_trial": 0}, ["cpus_per_trial"]),
        ({"gpus_per_trial": 0}, ["gpus_per_trial", "greater than 0"]),
        ({"gpus_per_trial": 1.5}, ["gpus_per_trial is a fraction", "whole number"]),
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


def test_student_formats(api: Api, tiny3_dir: Path, tmp_path: Path) -> None:
    """``?format=onnx`` / ``onnx-int8``: a zip of the ONNX file, config.json and the tokenizer that
    onnxruntime runs; 404 while a student has no ONNX export; 422 for an unknown format; the default zip
    stays the Hugging Face folder without the ``onnx/`` subfolder."""
    import io
    import shutil
    import zipfile

    import numpy as np
    import torch
    import transformers

    from distill.onnx_export import export_onnx, session

    job_id = api.job().json()["id"]
    folder = api.settings.home / "artifacts" / job_id / "students" / "0"
    shutil.copytree(tiny3_dir, folder)
    add_artifact(api.db, job_id, "student", folder.relative_to(api.settings.home).as_posix())
    url = f"/v1/jobs/{job_id}/student"
    with unchanged(api.app):
        refused(
            api.client.get(url, params={"format": "bogus"}, headers=api.a), 422, "safetensors", "onnx-int8"
        )
        refused(api.client.get(url, params={"format": "onnx"}, headers=api.a), 404, "no onnx file")
    export_onnx(folder)
    names = {}
    for fmt in ("safetensors", "onnx", "onnx-int8"):
        r = api.client.get(url, params={} if fmt == "safetensors" else {"format": fmt}, headers=api.a)
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip", r.text[:300]
        names[fmt] = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
        if fmt == "onnx":
            archive = zipfile.ZipFile(io.BytesIO(r.content))
    root = f"student-{job_id}"
    assert f"{root}/model.safetensors" in names["safetensors"]
    assert not any("/onnx/" in n or n.endswith(".onnx") for n in names["safetensors"])
    assert set(names["onnx"]) >= {f"{root}/model.onnx", f"{root}/config.json", f"{root}/tokenizer.json"}
    assert f"{root}/model-int8.onnx" in names["onnx-int8"] and f"{root}/model.onnx" not in names["onnx-int8"]
    assert not any(n.endswith(".safetensors") for n in names["onnx"] + names["onnx-int8"])
    archive.extractall(tmp_path)
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / root)
    enc = tok(["a moving film", "dull"], padding=True, return_tensors="np")
    feed = {k: v.astype(np.int64) for k, v in enc.items()}
    logits = session(tmp_path / root / "model.onnx").run(["logits"], feed)[0]
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        ref = model(**{k: torch.from_numpy(v) for k, v in enc.items()}).logits.numpy()
    assert logits.shape == (2, 3) and np.abs(logits - ref).max() <= 1e-4
