"""Jobs with more than one teacher and a masked LM: registering a masked LM, the refusals, and what a job
stores (fixtures: ``conftest.py`` beside this file; both backends)."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_checks import Api, folder_members, refused, unchanged, upload_teacher, zip_bytes
from pg import pg_server  # noqa: F401  (session fixture)

from distill.pipeline import Augmentation, Pipeline, StudentArch, TeacherMix, Training
from store import get_job


@pytest.fixture(scope="module")
def ids(api: Api, tiny_mlm: Path, tiny_teacher2: Path) -> dict[str, str]:
    r = upload_teacher(api, "mlm.zip", zip_bytes(folder_members(tiny_mlm)), masked_lm="true")
    assert r.status_code == 201, r.text
    assert r.json()["profile"]["masked_lm"] is True
    mlm = r.json()["id"]
    r = upload_teacher(api, "second.zip", zip_bytes(folder_members(tiny_teacher2)))
    assert r.status_code == 201, r.text
    return {"mlm": mlm, "second": r.json()["id"]}


def _job(api: Api, **extra: object) -> dict:
    return {"dataset_id": api.dataset_id, "teacher_id": api.teacher_id, "budget": {"trials": 4}, **extra}


def test_a_classifier_is_not_a_masked_lm(api: Api, tiny3_zip: bytes) -> None:
    with unchanged(api.app):
        r = upload_teacher(api, "tiny3.zip", tiny3_zip, masked_lm="true")
        refused(r, 422, "masked-LM head")


def test_roles_are_checked(api: Api, ids: dict[str, str]) -> None:
    post = api.client.post
    with unchanged(api.app):
        refused(post("/v1/jobs", json=_job(api, mlm_id=api.tiny3_id), headers=api.a), 422, "not a masked LM")
        body = {**_job(api), "teacher_id": ids["mlm"]}
        refused(post("/v1/jobs", json=body, headers=api.a), 422, "is a masked LM", "mlm_id")
        body = _job(api, extra_teacher_ids=[api.teacher_id])
        refused(post("/v1/jobs", json=body, headers=api.a), 422, "base encoder", "fine-tuned")
        body = _job(api, extra_teacher_ids=[api.tiny3_id])
        refused(post("/v1/jobs", json=body, headers=api.a), 422, "do not match", "3 labels")
        body = _job(api, extra_teacher_ids=[ids["second"], ids["second"]])
        refused(post("/v1/jobs", json=body, headers=api.a), 422, "given twice")
        body = _job(api, extra_teacher_ids=[ids["second"]], mlm_id=ids["mlm"])
        refused(post("/v1/jobs", json=body, headers=api.b), 404)  # B owns none of them


def test_warm_starts_must_agree_with_the_job(api: Api, ids: dict[str, str]) -> None:
    tr = Training(max_length=32, epochs=2)
    three = Pipeline(teachers=TeacherMix(weights=[1, 1, 1]), training=tr).model_dump(mode="json")
    ctx = Pipeline(
        augmentation=Augmentation(ops=("contextual",), copies=1, mlm="/elsewhere/mlm"), training=tr
    ).model_dump(mode="json")
    with unchanged(api.app):
        body = _job(api, extra_teacher_ids=[ids["second"]])
        body["budget"]["warm_start"] = [three]
        refused(api.client.post("/v1/jobs", json=body, headers=api.a), 422, "mixes 3 teachers", "has 2")
        body = _job(api, mlm_id=ids["mlm"])
        body["budget"]["warm_start"] = [ctx]
        refused(api.client.post("/v1/jobs", json=body, headers=api.a), 422, "not the job's mlm")


def test_a_job_stores_its_teachers_and_masked_lm(api: Api, ids: dict[str, str]) -> None:
    body = _job(api, extra_teacher_ids=[ids["second"]], mlm_id=ids["mlm"])
    mlm_path = api.client.get(f"/v1/teachers/{ids['mlm']}", headers=api.a).json()["ref"]["path"]
    body["budget"]["warm_start"] = [
        Pipeline(
            student=StudentArch(layers=1, hidden=32, heads=2, ffn=64),
            teachers=TeacherMix(weights=[1, 1], mode="confidence"),
            augmentation=Augmentation(ops=("contextual",), copies=1, mlm=mlm_path),
            training=Training(max_length=32, epochs=2),
        ).model_dump(mode="json")
    ]
    r = api.client.post("/v1/jobs", json=body, headers=api.a)
    assert r.status_code == 202, r.text
    out = r.json()
    assert out["extra_teacher_ids"] == [ids["second"]] and out["mlm_id"] == ids["mlm"]
    assert api.client.get(f"/v1/jobs/{out['id']}", headers=api.a).json()["mlm_id"] == ids["mlm"]
    job = get_job(api.db, out["id"])
    second = api.client.get(f"/v1/teachers/{ids['second']}", headers=api.a).json()["ref"]
    assert job.extras == {"extra_teachers": [second], "mlm": mlm_path}
