"""ONNX and int8 copies of exported students (distill/onnx_export.py), checked with onnxruntime: logits
within 1e-4 of PyTorch, int8 agreeing on the predicted class and smaller, factorised students too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from distill.data import load_task
from distill.export import save_model
from distill.hf import load_classifier, load_tokenizer
from distill.holdout import paired_latency, speed_text
from distill.onnx_export import (
    ONNX_DIR,
    OnnxExportError,
    export_onnx,
    format_bytes,
    onnx_file,
    onnx_runner,
    session,
)
from distill.pipeline import StudentArch
from distill.student import build_student

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    task = load_task("rotten_tomatoes").subset(10, 60, seed=5)
    return [e.text for e in task.validation]


def _student(tiny_teacher: Path, folder: Path, **arch: int) -> Path:
    teacher = load_classifier(tiny_teacher)
    student, _ = build_student(StudentArch(layers=1, hidden=64, heads=2, ffn=128, **arch), teacher)
    return save_model(student, load_tokenizer(tiny_teacher), folder, card={"role": "test student"})


@pytest.fixture(scope="module")
def bert_student(tiny_teacher: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _student(tiny_teacher, tmp_path_factory.mktemp("onnx") / "bert")


def test_bert_student_exports_fp32_and_int8(bert_student: Path, texts: list[str]) -> None:
    report = export_onnx(bert_student, texts, max_length=64)
    fp32, int8 = onnx_file(bert_student, "onnx"), onnx_file(bert_student, "onnx-int8")
    assert fp32.parent == bert_student / ONNX_DIR and fp32.is_file() and int8.is_file()
    assert report["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert report["texts"] == 60 and report["onnx"]["max_abs_diff"] <= 1e-4
    assert report["onnx"]["argmax_agreement"] == 1.0
    assert report["onnx-int8"]["argmax_agreement"] >= 0.9
    sizes = report["bytes"]
    assert sizes == format_bytes(bert_student) and sizes["onnx-int8"] < 0.5 * sizes["onnx"]
    assert sizes["onnx"] == pytest.approx(sizes["safetensors"], rel=0.2)
    # the folder still loads with the Auto classes, the ONNX files beside it
    model = transformers.AutoModelForSequenceClassification.from_pretrained(bert_student).eval()
    tok = transformers.AutoTokenizer.from_pretrained(bert_student)
    # dynamic axes: another batch size and length than the export's example
    enc = tok([texts[0], texts[1] + " " + texts[2], "ok"], padding=True, return_tensors="np")
    assert enc["input_ids"].shape[1] > 10
    out = session(fp32).run(["logits"], {k: v.astype(np.int64) for k, v in enc.items()})[0]
    with torch.no_grad():
        ref = model(**{k: torch.from_numpy(v) for k, v in enc.items()}).logits.numpy()
    assert out.shape == (3, 2) and np.abs(out - ref).max() <= 1e-4


def test_onnx_latency_is_timed_beside_pytorch(bert_student: Path, tiny_teacher: Path) -> None:
    if not onnx_file(bert_student, "onnx-int8").is_file():
        export_onnx(bert_student)
    extra = {fmt: onnx_runner(bert_student, fmt) for fmt in ("onnx", "onnx-int8")}
    speed = paired_latency(
        load_classifier(tiny_teacher),
        load_classifier(bert_student),
        seq_len=32,
        runs=6,
        warmup=2,
        extra=extra,
    )
    assert speed["onnx_ms"] > 0 and speed["onnx_int8_ms"] > 0 and speed["student_ms"] > 0
    assert "ONNX" in speed_text(speed) and "int8" in speed_text(speed)


def test_factorised_student_exports(tiny_teacher: Path, tmp_path: Path, texts: list[str]) -> None:
    folder = _student(tiny_teacher, tmp_path / "electra", embedding=16)
    assert transformers.AutoConfig.from_pretrained(folder).model_type == "electra"
    report = export_onnx(folder, texts[:16], max_length=64)
    assert report["onnx"]["max_abs_diff"] <= 1e-4
    assert report["bytes"]["onnx-int8"] < report["bytes"]["onnx"]


def test_a_mismatch_is_refused_and_leaves_nothing(bert_student: Path, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    folder.mkdir()
    for f in bert_student.iterdir():
        if f.is_file():
            (folder / f.name).write_bytes(f.read_bytes())
    with pytest.raises(OnnxExportError, match="does not reproduce PyTorch"):
        export_onnx(folder, atol=-1.0)  # no difference can be below a negative tolerance
    assert not (folder / ONNX_DIR).exists()
    assert not [p for p in folder.iterdir() if p.name.startswith(".onnx-")]


def test_pruned_vocabulary_student_exports(tiny_teacher: Path, tmp_path: Path, texts: list[str]) -> None:
    """A ``vocab: task`` student: its renumbered tokenizer feeds the check, its smaller table the graph."""
    from distill.engine import student_vocab
    from distill.teacher import load_teacher
    from distill.vocab import pruned_tokenizer

    task = load_task("rotten_tomatoes").subset(120, 40, seed=0)
    teacher = load_teacher(tiny_teacher)
    vocab = student_vocab(task, teacher)
    arch = StudentArch(layers=1, hidden=64, heads=2, ffn=128, vocab="task")
    student, _ = build_student(arch, teacher.model, kept=vocab.kept)
    tok = pruned_tokenizer(teacher.tokenizer, vocab)
    folder = save_model(student, tok, tmp_path / "pruned", card={"role": "test student"})
    report = export_onnx(folder, texts[:16], max_length=64)
    assert report["onnx"]["max_abs_diff"] <= 1e-4 and report["onnx"]["argmax_agreement"] == 1.0
    assert (
        report["bytes"]["onnx"] < 0.5 * format_bytes(_student(tiny_teacher, tmp_path / "full"))["safetensors"]
    )
