"""Safe model loading, students built from the teacher, latency."""

from __future__ import annotations

import json

import pytest
import torch

from distill.assets import minilm_dir
from distill.hf import ModelError, check_model_folder, load_classifier
from distill.pipeline import StudentArch
from distill.student import (
    build_student,
    count_params,
    cpu_latency_ms,
    principal_directions,
    teacher_layer_for,
)


@pytest.fixture(scope="module")
def base():
    return load_classifier(minilm_dir(), num_labels=2)


def _copy_model(tmp_path, base):
    folder = tmp_path / "model"
    base.save_pretrained(folder)
    return folder


def test_pickled_weights_are_refused(tmp_path, base):
    folder = _copy_model(tmp_path, base)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not even a pickle")
    with pytest.raises(ModelError, match=r"pickled weights \(pytorch_model.bin\)"):
        check_model_folder(folder)


def test_remote_code_is_refused(tmp_path, base):
    folder = _copy_model(tmp_path, base)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForSequenceClassification": "evil.Model"}
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="remote code is never run"):
        load_classifier(folder)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda f: (f / "config.json").unlink(), "no config.json"),
        (lambda f: (f / "config.json").write_text("{not json"), "not valid JSON"),
        (lambda f: (f / "config.json").write_text('{"model_type": "nope"}'), "unknown model_type"),
    ],
)
def test_broken_folders_get_clear_errors(tmp_path, base, setup, message):
    folder = _copy_model(tmp_path, base)
    setup(folder)
    with pytest.raises(ModelError, match=message):
        load_classifier(folder)


def test_not_a_folder_nor_hub_id():
    with pytest.raises(ModelError, match="neither an existing folder nor a Hub id"):
        load_classifier("./missing-teacher")


def test_teacher_layers_are_evenly_spaced():
    assert [teacher_layer_for(i, 2, 6) for i in range(2)] == [2, 5]
    assert [teacher_layer_for(i, 3, 6) for i in range(3)] == [1, 3, 5]
    assert [teacher_layer_for(i, 6, 6) for i in range(6)] == list(range(6))


def test_student_copies_teacher_tensors_where_shapes_match(base):
    student, report = build_student(StudentArch(layers=2, hidden=384, heads=12, ffn=1536), base)
    t, s = base.state_dict(), student.state_dict()
    words = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(s[words], t[words])
    assert torch.equal(
        s["bert.encoder.layer.1.output.dense.weight"], t["bert.encoder.layer.5.output.dense.weight"]
    )
    assert report.copied == report.total  # same width: every tensor, the classifier too

    # narrower: only the classifier bias (one value per label) still matches; embeddings are projected
    narrow, report = build_student(StudentArch(layers=2, hidden=128, heads=4, ffn=512), base)
    assert report.projected == 3
    basis = principal_directions(t[words], 128)
    assert torch.allclose(narrow.state_dict()[words], t[words] @ basis, atol=1e-5)
    assert torch.allclose(basis.T @ basis, torch.eye(128), atol=1e-4)  # orthonormal directions
    assert report.copied == 1 and count_params(narrow) < count_params(student) < count_params(base)
    rand, report = build_student(StudentArch(layers=2, init="random"), base)
    assert report.copied == 0 and not torch.equal(
        rand.state_dict()["bert.embeddings.word_embeddings.weight"],
        t["bert.embeddings.word_embeddings.weight"],
    )


def test_latency_grows_with_depth(base):
    small, _ = build_student(StudentArch(layers=1, hidden=128, heads=4, ffn=512), base)
    assert 0 < cpu_latency_ms(small, seq_len=32, runs=5) < cpu_latency_ms(base, seq_len=32, runs=5)
