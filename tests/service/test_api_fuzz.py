"""Property-based run over the OpenAPI spec (schemathesis): no operation answers a 5xx, whatever it is sent.

Requests carry a valid API key, and the store holds real things for the generated ids to hit: a dataset, a
base-encoder teacher, a queued job (with a predicted recommendation and a running trial) and a finished job
(completed trials, a measured recommendation, a downloadable student). In the fuzzing phase every case draws
whether its ids are generated or taken from those, so both the "unknown id" and the "real resource" paths are
exercised. Nothing is excluded.
A second, plain Hypothesis test feeds the upload parsers, which the generated nameless `file` never reaches.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from distill.pipeline import Pipeline
from service.app import create_app
from store import (
    add_artifact,
    add_profile,
    add_recommendation,
    create_key,
    finish_trial,
    set_state,
    start_trial,
)
from store.settings import Settings

MAX_EXAMPLES = 25
EVENTS_TIMEOUT = 1.0  # an event stream of a job that is still queued never ends by itself: cut it after this
ROUTES = {
    ("post", "/v1/datasets"),
    ("get", "/v1/datasets"),
    ("get", "/v1/datasets/{dataset_id}"),
    ("post", "/v1/teachers"),
    ("get", "/v1/teachers"),
    ("get", "/v1/teachers/{teacher_id}"),
    ("post", "/v1/jobs"),
    ("get", "/v1/jobs"),
    ("get", "/v1/jobs/{job_id}"),
    ("get", "/v1/jobs/{job_id}/events"),
    ("get", "/v1/jobs/{job_id}/recommendation"),
    ("get", "/v1/jobs/{job_id}/trials"),
    ("post", "/v1/jobs/{job_id}/cancel"),
    ("get", "/v1/jobs/{job_id}/student"),
    ("get", "/v1/trials/{trial_id}"),
    ("get", "/v1/health"),
}


@pytest.fixture(scope="module", autouse=True)
def offline(hub_offline: None) -> None:
    """Every test here runs with the Hub unreachable."""


def _finished_job(
    app: Any, client: TestClient, auth: dict[str, str], body: dict[str, Any]
) -> tuple[str, list[int]]:
    """A job the workers would have finished: two completed trials, a failed one, a student on disk."""
    db, home = app.state.ctx.db, app.state.ctx.settings.home
    r = client.post("/v1/jobs", json=body, headers=auth)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    add_profile(db, "teacher", {"accuracy": 0.8, "params": 22_000_000, "latency_ms": 9.0}, job_id=job_id)
    trials = []
    for number, (status, acc) in enumerate([("completed", 0.7), ("completed", 0.75), ("failed", None)]):
        pipeline = Pipeline.no_kd() if number == 0 else Pipeline()
        trial = start_trial(db, job_id, number, pipeline, is_reference="no_kd" if number == 0 else None)
        trials.append(trial.id)
        if acc is None:
            finish_trial(db, trial.id, status, wall_seconds=1.0, error="CUDA out of memory")
            continue
        finish_trial(
            db, trial.id, status, accuracy=acc, params=4_000_000, latency_ms=2.0, ratio_to_teacher=acc / 0.8,
            wall_seconds=3.0, epochs=[{"epoch": 1, "val_accuracy": acc}],
        )  # fmt: skip
    add_recommendation(db, job_id, Pipeline(), "measured", score=0.75, why="best of 3")
    student = home / "artifacts" / job_id / "student"
    student.mkdir(parents=True)
    (student / "config.json").write_text('{"model_type": "bert"}')
    (student / "model.safetensors").write_bytes(b"\0" * 64)
    add_artifact(db, job_id, "student", f"artifacts/{job_id}/student", size=64, trial_id=trials[1])
    assert set_state(db, job_id, "finished", teacher_accuracy=0.8, progress_text="done")
    return job_id, trials


# The schema is loaded at import (schemathesis 4.32's `pytest.from_fixture` breaks on pytest 9.2: it sets
# `Function._nodeid`, gone from pytest), so the app is made at import too, in a folder removed at exit.
_TMP = tempfile.TemporaryDirectory(prefix="autodistiller-fuzz-")
APP = create_app(
    Settings(home=Path(_TMP.name) / "home", database_url=f"sqlite:///{Path(_TMP.name) / 'db.sqlite'}")
)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
Strategy = st.SearchStrategy[Any]
IDS: dict[str, list[Any]] = {}  # real ids by parameter name, filled by `world`


@pytest.fixture(scope="module")
def world() -> Iterator[dict[str, Any]]:
    """A key, and the real ids a case may use (stored once, on first use)."""
    app, tmp = APP, Path(_TMP.name)
    db = app.state.ctx.db
    _, key = create_key(db, "fuzz")
    auth = {"Authorization": f"Bearer {key}"}
    (tmp / "home" / "imports").mkdir(parents=True)
    with TestClient(app) as client:
        rt = {"source": "rotten_tomatoes", "max_train": 100, "max_val": 50}
        r = client.post("/v1/datasets", json=rt, headers=auth)
        assert r.status_code == 201, r.text
        dataset_id = r.json()["id"]
        r = client.post("/v1/teachers", json={"base": "minilm"}, headers=auth)
        assert r.status_code == 201, r.text
        teacher_id = r.json()["id"]
        body = {"dataset_id": dataset_id, "teacher_id": teacher_id, "budget": {"trials": 4}}
        r = client.post("/v1/jobs", json=body, headers=auth)
        assert r.status_code == 202, r.text
        queued = r.json()["id"]
        add_recommendation(db, queued, Pipeline(), "predicted", score=0.7, why="similar past jobs")
        running = start_trial(db, queued, 0, Pipeline.no_kd(), is_reference="no_kd").id
        finished, trials = _finished_job(app, client, auth, body)
    IDS.update(dataset_id=[dataset_id], teacher_id=[teacher_id], job_id=[queued, finished])
    IDS["trial_id"] = [running, *trials]
    yield {"app": app, "auth": auth}
    IDS.clear()
    app.state.ctx.db.kw["bind"].dispose()


@schema.hook
def flatmap_path_parameters(ctx: schemathesis.HookContext, params: dict[str, Any] | None) -> Strategy:
    """Keep the generated ids, or swap in real ones (drawn by Hypothesis, so failures shrink and replay)."""
    real = {name: IDS[name] for name in params or {} if IDS.get(name)}
    if not real:
        return st.just(params)
    swapped = st.fixed_dictionaries({name: st.sampled_from(ids) for name, ids in real.items()})
    return st.one_of(st.just(params), swapped.map(lambda ids: {**params, **ids}))


@schema.hook
def flatmap_body(ctx: schemathesis.HookContext, body: Any) -> Strategy:
    """The same for the ids in a POST /v1/jobs body."""
    if not isinstance(body, dict) or not ({"dataset_id", "teacher_id"} & set(body)):
        return st.just(body)
    names = [name for name in ("dataset_id", "teacher_id") if name in body and IDS.get(name)]
    swapped = st.fixed_dictionaries(
        {name: st.one_of(st.just(body[name]), st.sampled_from(IDS[name])) for name in names}
    )
    return swapped.map(lambda ids: {**body, **ids})


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,  # no .hypothesis/ folder in the working tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
def test_no_server_errors(case: schemathesis.Case, world: dict[str, Any]) -> None:
    kwargs: dict[str, Any] = {}
    if case.operation.path.endswith("/events"):
        kwargs["timeout"] = EVENTS_TIMEOUT
    case.call_and_validate(headers=world["auth"], checks=[not_a_server_error], **kwargs)


# ------------------------------------------------------------------------------ uploaded dataset contents
# The generated `file` above has no filename, so it never reaches the parsers: here, files of every supported
# text format with odd headers, cells and JSON values, and the form fields that pick columns and splits.

CELL = st.one_of(
    st.text(max_size=12),
    st.integers(-3, 3).map(str),
    st.sampled_from(["", " ", '"', "a,b", "NA", "null", "\n", "1.0", "nan", "inf", "-0", "\t"]),
)
VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)  # fmt: skip
HEADERS = [
    ["text", "label"],
    ["label", "text"],
    ["text", "label", "extra"],
    ["text"],
    ["text", "label", "split"],
]
FORM = st.fixed_dictionaries(
    {},
    optional={
        "split_column": st.just("split"),
        "text_pair_column": st.sampled_from(["extra", "label"]),
        "label_column": st.sampled_from(["extra", "text"]),
        "max_train": st.sampled_from(["10", "12"]),
        "max_val": st.sampled_from(["10", "11"]),
    },
)


@st.composite
def dataset_files(draw: st.DrawFn) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from([".csv", ".tsv", ".jsonl", ".json"]))
    header = draw(st.sampled_from(HEADERS))
    if suffix in (".csv", ".tsv"):
        rows = draw(st.lists(st.lists(CELL, min_size=1, max_size=4), max_size=30))
        sep = "," if suffix == ".csv" else "\t"
        return suffix, "\n".join(sep.join(r) for r in [header, *rows]).encode()
    records = draw(st.lists(st.dictionaries(st.sampled_from([*header, "x"]), VALUE, max_size=4), max_size=30))
    if suffix == ".jsonl":
        return suffix, "\n".join(json.dumps(r) for r in records).encode()
    return suffix, json.dumps(records if draw(st.booleans()) else {"data": records}).encode()


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(file=dataset_files(), form=FORM)
def test_uploaded_dataset_contents(
    world: dict[str, Any], file: tuple[str, bytes], form: dict[str, Any]
) -> None:
    """Any file is stored and profiled (201) or refused with a reason (422) and leaves nothing behind."""
    suffix, data = file
    uploads = Path(_TMP.name) / "home" / "uploads" / "datasets"

    def listing() -> set[Path]:
        return set(uploads.iterdir()) if uploads.exists() else set()

    before = listing()
    with TestClient(APP) as client:
        files = {"file": ("data" + suffix, data)}
        r = client.post("/v1/datasets", files=files, data=form, headers=world["auth"])
        assert r.status_code in (201, 422), r.text
        added = listing() - before
        if r.status_code == 422:
            assert r.json()["detail"]
            assert not added, "a refused upload left files"
            return
        doc = r.json()
        assert added == {uploads / doc["id"]}
        assert len(doc["profile"]["labels"]) >= 2
        assert client.get(f"/v1/datasets/{doc['id']}", headers=world["auth"]).json()["id"] == doc["id"]


def test_openapi_lists_every_route(world: dict[str, Any]) -> None:
    client = TestClient(world["app"])
    spec = client.get("/openapi.json").json()
    listed = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert listed >= ROUTES, f"missing from the spec: {sorted(ROUTES - listed)}"
    post_jobs = spec["paths"]["/v1/jobs"]["post"]
    body = post_jobs["requestBody"]["content"]["application/json"]
    schema_ref = body["schema"]["$ref"].rsplit("/", 1)[-1]
    examples = spec["components"]["schemas"][schema_ref].get("examples") or list(
        body.get("examples", {}).values()
    )
    assert examples, "POST /v1/jobs has no example"
    example = examples[0]
    assert {"dataset_id", "teacher_id", "budget"} <= set(example)
    for path in ("/v1/datasets", "/v1/teachers"):  # both ways in: JSON or an upload
        assert set(spec["paths"][path]["post"]["requestBody"]["content"]) == {
            "application/json",
            "multipart/form-data",
        }
    security = spec["components"]["securitySchemes"]
    assert {s["type"] for s in security.values()} >= {"http", "apiKey"}
