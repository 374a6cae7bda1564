"""Holes found by trying to break the API (issue 17): names that slip past the import roots, teachers whose
weights do not fit their config, reused idempotency keys, nonsense budgets, and the OpenAPI contract."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from api_checks import Api, folder_members, refused, unchanged, upload_teacher, zip_bytes

from distill.hf import ModelError, load_classifier

# ----------------------------------------------------------------------------------- import-root bypass


@pytest.fixture()
def server_cwd(tmp_path: Path, tiny3_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The server's working directory holds a teacher folder, a dataset folder and a CSV, all outside the
    import roots; some lie deeper so that `fx/../..` names reach them."""
    cwd = tmp_path / "a" / "b" / "c"
    (cwd / "fx").mkdir(parents=True)
    shutil.copytree(tiny3_dir, cwd / "outside_teacher")
    shutil.copytree(tiny3_dir, tmp_path / "some" / "dir")
    (cwd / "outside_data").mkdir()
    (cwd / "outside_data" / "dataset_dict.json").write_text('{"splits": ["train"]}')
    monkeypatch.chdir(cwd)
    return cwd


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("teachers", {"path": "outside_teacher"}),
        ("teachers", {"base": "outside_teacher"}),
        ("datasets", {"source": "outside_data"}),
        ("teachers", {"path": "fx/../../../some/dir"}),
        ("datasets", {"source": "fx/../../../some/dir"}),
        ("teachers", {"path": "fx/../outside_teacher"}),
    ],
)
def test_bare_names_do_not_escape_the_import_roots(
    api: Api, server_cwd: Path, route: str, body: dict[str, str]
) -> None:
    with unchanged(api.app):
        r = api.client.post(f"/v1/{route}", json=body, headers=api.a)
    assert r.status_code in (403, 404, 422), r.text


@pytest.mark.parametrize(("route", "field"), [("teachers", "path"), ("datasets", "source")])
def test_errors_do_not_tell_whether_a_folder_exists(
    api: Api, server_cwd: Path, route: str, field: str
) -> None:
    """An existing folder of the server's and a missing name get the same answer, word for word."""
    exists = api.client.post(f"/v1/{route}", json={field: "outside_teacher"}, headers=api.a)
    missing = api.client.post(f"/v1/{route}", json={field: "nowhere_at_all"}, headers=api.a)
    assert exists.status_code == missing.status_code == 422
    detail = refused(exists, 422, "hugging face hub", "allowed folders")
    assert detail == missing.json()["detail"].replace("nowhere_at_all", "outside_teacher")
    for target in ("some", "none"):  # `..` names: outside, whether the target exists or not
        up = api.client.post(f"/v1/{route}", json={field: f"fx/../../../{target}/dir"}, headers=api.a)
        refused(up, 403, "outside the allowed folders")


def test_a_bare_name_under_the_import_root_is_a_path(api: Api, tiny3_dir: Path) -> None:
    root = api.settings.allowed_roots[0]
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(tiny3_dir, root / "in_root_teacher", dirs_exist_ok=True)
    r = api.client.post("/v1/teachers", json={"path": "in_root_teacher"}, headers=api.a)
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "path"


# ----------------------------------------------------------------------------------- weights vs config


@pytest.fixture(scope="module")
def five_on_two(tiny3_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose config says 5 labels while its classifier weights are 3-way."""
    import json

    folder = tmp_path_factory.mktemp("five-on-two")
    shutil.copytree(tiny3_dir, folder, dirs_exist_ok=True)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["id2label"] = {str(i): f"L{i}" for i in range(5)}
    cfg["label2id"] = {f"L{i}": i for i in range(5)}
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def test_classifier_of_the_wrong_size_is_a_model_error(five_on_two: Path) -> None:
    with pytest.raises(ModelError, match="do not match its config"):
        load_classifier(five_on_two, complete=True)


def test_classifier_of_the_wrong_size_is_422_and_the_connection_lives(api: Api, five_on_two: Path) -> None:
    with unchanged(api.app):
        refused(upload_teacher(api, "m.zip", zip_bytes(folder_members(five_on_two))), 422, "config.json")
    assert api.client.get("/v1/health").status_code == 200


# ----------------------------------------------------------------------------------- idempotency


def test_idempotency_key_with_another_body_is_422(api: Api) -> None:
    headers = {**api.a, "Idempotency-Key": "harden-1"}
    body: dict[str, Any] = {"dataset_id": api.dataset_id, "teacher_id": api.teacher_id}
    body["budget"] = {"trials": 2}
    first = api.client.post("/v1/jobs", json=body, headers=headers)
    assert first.status_code == 202, first.text
    again = api.client.post("/v1/jobs", json=body, headers=headers)
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
    with unchanged(api.app):
        other = api.client.post("/v1/jobs", json={**body, "budget": {"trials": 3}}, headers=headers)
        refused(other, 422, "idempotency-key", "different")


# ----------------------------------------------------------------------------------- nonsense accepted


@pytest.mark.parametrize(
    ("budget", "phrases"),
    [
        ({"wall_seconds": 1e-9}, ["wall_seconds"]),
        ({"max_params": 1000}, ["max_params"]),
        ({"epochs": []}, ["epochs"]),
        ({"max_latency_ms": 1e-6}, ["max_latency_ms"]),
    ],
)
def test_budgets_no_job_can_meet(api: Api, budget: dict[str, Any], phrases: list[str]) -> None:
    body = {"dataset_id": api.dataset_id, "teacher_id": api.teacher_id, "budget": {"trials": 2, **budget}}
    with unchanged(api.app):
        refused(api.client.post("/v1/jobs", json=body, headers=api.a), 422, *phrases)


def test_one_example_per_class_is_refused(api: Api) -> None:
    rows = "".join(f"text number {i},class{i}\n" for i in range(2000))
    with unchanged(api.app):
        r = api.client.post("/v1/datasets", files={"file": ("many.csv", ("text,label\n" + rows).encode())},
                            headers=api.a)  # fmt: skip
        refused(r, 422, "classes")


def test_trust_remote_code_in_config_is_refused(api: Api, tiny3_dir: Path) -> None:
    import json

    members = folder_members(tiny3_dir)
    cfg = json.loads(members["model/config.json"])
    members["model/config.json"] = json.dumps({**cfg, "trust_remote_code": True}).encode()
    with unchanged(api.app):
        refused(upload_teacher(api, "m.zip", zip_bytes(members)), 422, "remote code")


def test_small_archive_that_expands_hugely_is_refused_before_writing(api: Api, tiny3_dir: Path) -> None:
    """~100 KB of zip that claims 100 MB (under the old 4× upload limit): refused from its headers."""
    config = (tiny3_dir / "config.json").read_bytes()
    members = {"model/config.json": config, "model/pad.txt": bytes(100 << 20)}
    archive = zip_bytes(members)
    assert len(archive) < 1 << 20 and 4 * api.settings.max_upload_bytes > 100 << 20
    with unchanged(api.app):
        refused(upload_teacher(api, "bomb.zip", archive), 413, "archive")


# ----------------------------------------------------------------------------------- the OpenAPI contract


@pytest.mark.parametrize("route", ["/v1/jobs", "/v1/teachers", "/v1/datasets"])
def test_options_lists_every_method(api: Api, route: str) -> None:
    r = api.client.options(route, headers=api.a)
    assert r.status_code in (200, 204), r.text
    assert {"GET", "POST"} <= {m.strip() for m in r.headers["allow"].split(",")}
    assert api.client.options("/v1/nowhere").status_code == 404


def test_every_status_the_job_routes_answer_is_documented(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    post = spec["paths"]["/v1/jobs"]["post"]["responses"]
    assert {"202", "401", "404", "415", "422"} <= set(post), sorted(post)
