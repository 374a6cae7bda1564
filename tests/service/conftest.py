"""Fixtures of the API's bad-input tests (test_api_errors*.py): a tiny teacher and its archive, the two
backends, and one ``Api`` per module; the helpers are ``api_checks``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_checks import (
    Api,
    bearer,
    dispose,
    folder_members,
    make_app,
    zip_bytes,
)
from fastapi.testclient import TestClient
from pg import pg_server  # noqa: F401  (session fixture)

from distill.pipeline import Pipeline
from store import create_key, start_trial


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


@pytest.fixture(scope="module")
def tiny3_zip(tiny3_dir: Path) -> bytes:
    return zip_bytes(folder_members(tiny3_dir))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


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
