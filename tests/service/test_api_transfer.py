"""Unlabeled transfer text through the API (issue 16): upload it like a dataset with `unlabeled`, refusals
that name the user's file and line, the roles checked, and what a job stores (both backends)."""

from __future__ import annotations

import re

from api_checks import Api, refused, unchanged, upload_dataset
from pg import pg_server  # noqa: F401  (session fixture)

from store import get_job
from store.spec import JobSpec

GOOD = b'text\n"a quiet, moving film"\nloud and empty\nthe best hour of the year\n'


def _job(api: Api, **extra: object) -> dict:
    return {"dataset_id": api.dataset_id, "teacher_id": api.teacher_id, "budget": {"trials": 4}, **extra}


def test_transfer_text_is_uploaded_and_profiled(api: Api) -> None:
    r = upload_dataset(api, "pool.csv", GOOD, unlabeled="true")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["ref"]["unlabeled"] is True and body["name"] == "pool.csv"
    assert body["profile"]["rows"] == 3 and body["profile"]["unlabeled"] is True
    assert "labels" not in body["profile"]  # no label column is asked for


def test_a_bad_transfer_file_is_refused_naming_its_file_and_line(api: Api) -> None:
    with unchanged(api.app):
        bad = b"text,source\nfine,a\n  ,b\nalso fine,c\n"  # line 3's text is blank
        refused(upload_dataset(api, "my-pool.csv", bad, unlabeled="true"), 422, "my-pool.csv", "lines 3")
        r = upload_dataset(api, "my-pool.csv", b"review\nsomething\n", unlabeled="true")
        refused(r, 422, "my-pool.csv", "no text column `text`", "review")
        r = upload_dataset(api, "my-pool.csv", b"\xff\xfe\x00bad", unlabeled="true")
        refused(r, 422, "my-pool.csv", "utf-8")
        refused(upload_dataset(api, "pool.exe", GOOD, unlabeled="true"), 422, "unsupported file type")
    detail = refused(upload_dataset(api, "my-pool.csv", bad, unlabeled="true"), 422)
    assert str(api.settings.home) not in str(detail)


def test_roles_are_checked(api: Api) -> None:
    transfer = upload_dataset(api, "pool.csv", GOOD, unlabeled="true").json()["id"]
    post = api.client.post
    with unchanged(api.app):
        refused(
            post("/v1/jobs", json={**_job(api), "dataset_id": transfer}, headers=api.a), 422, "transfer_id"
        )
        r = post("/v1/jobs", json=_job(api, transfer_id=api.dataset_id), headers=api.a)
        refused(r, 422, "labelled dataset", "unlabeled")
        refused(post("/v1/jobs", json=_job(api, transfer_id=transfer), headers=api.b), 404)


def test_a_job_stores_its_transfer_text(api: Api) -> None:
    transfer = upload_dataset(api, "pool.csv", GOOD, unlabeled="true").json()["id"]
    r = api.client.post("/v1/jobs", json=_job(api, transfer_id=transfer), headers=api.a)
    assert r.status_code == 202, r.text
    job = get_job(api.app.state.ctx.db, r.json()["id"])
    assert job.extras["transfer"]["unlabeled"] is True and job.extra_ids["transfer_id"] == transfer
    spec = JobSpec.model_validate(
        {"dataset": job.dataset, "teacher": job.teacher, "budget": job.budget, **job.extras}
    )
    assert spec.transfer is not None and spec.transfer.shown_as
    assert list(spec.transfer.shown_as.values()) == ["pool.csv"]


def test_the_dashboard_form_offers_transfer_text_apart_from_datasets(api: Api) -> None:
    from test_dashboard_csrf import HERE, _login

    r = upload_dataset(api, "dash-pool.csv", GOOD, unlabeled="true")
    transfer = r.json()["id"]
    client = _login(api)
    page = client.get("/ui/jobs").text
    datasets = re.search(r'<select name="dataset_id".*?</select>', page, re.S).group(0)
    transfers = re.search(r'<select name="transfer_id".*?</select>', page, re.S).group(0)
    assert transfer not in datasets and transfer in transfers and "3 unlabeled rows" in transfers
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
    form = {"dataset_id": api.dataset_id, "teacher_id": api.teacher_id, "trials": "2", "csrf": csrf}
    r = client.post("/ui/jobs", data={**form, "transfer_id": transfer}, headers=HERE)
    assert r.status_code == 303, r.text
    job = get_job(api.app.state.ctx.db, r.headers["location"].rsplit("/", 1)[-1])
    assert job.extra_ids["transfer_id"] == transfer
