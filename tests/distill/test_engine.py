"""End-to-end: a real teacher, real data, real students; export reloads with transformers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers

from distill.assets import minilm_dir
from distill.engine import distill_student
from distill.export import export_student
from distill.finetune import finetune_teacher
from distill.pipeline import IntermediateSpec, LogitLossSpec, Pipeline, StudentArch, Training
from distill.teacher_outputs import clear_memory_cache

SMALL = StudentArch(layers=2, hidden=384, heads=12, ffn=1536)
TRAIN = Training(lr=1e-4, epochs=2, batch_size=16, max_length=32, seed=0)

pytestmark = pytest.mark.slow


def test_teacher_is_cached_and_better_than_chance(teacher, rt_small, home, teacher_cfg):
    msgs: list[str] = []
    again = finetune_teacher(
        minilm_dir(), rt_small, home / "teachers", teacher_cfg, progress=False, log=msgs.append
    )
    assert any("reusing" in m for m in msgs) and again.fingerprint == teacher.fingerprint
    card = json.loads((Path(teacher.source) / "autodistiller.json").read_text())
    assert card["metrics"]["accuracy"] > 0.6


def test_kd_beats_or_matches_no_kd_and_exports(teacher, rt_small, home, tmp_path):
    no_kd = distill_student(rt_small, teacher, Pipeline.no_kd(student=SMALL, training=TRAIN), progress=False)
    kd_pipe = Pipeline(
        student=SMALL,
        training=TRAIN,
        loss=LogitLossSpec(name="kl", temperature=4.0),
        intermediate=IntermediateSpec(name="hidden_mse", mapping="skip", weight=1.0),
    )
    reports: list[dict] = []
    kd = distill_student(
        rt_small, teacher, kd_pipe, report=reports.append, cache_dir=home / "outs", progress=False
    )
    assert [r["epoch"] for r in reports] == [1, 2]
    for res in (no_kd, kd):
        m = res.metrics
        assert 0.5 <= m["accuracy"] <= 1.0 and 0 < m["macro_f1"] <= 1
        assert m["params"] < teacher.num_params and m["latency_ms"] > 0
    assert kd.metrics["accuracy"] >= no_kd.metrics["accuracy"] - 0.02

    folder = export_student(kd, teacher, rt_small, tmp_path / "student")
    clf = transformers.pipeline("text-classification", model=str(folder), device="cpu")
    out = clf(["a wonderful, moving film", "a dull and tedious mess"])
    assert {o["label"] for o in out} <= set(rt_small.labels)
    card = (folder / "README.md").read_text()
    assert "hidden_mse" in card and "accuracy" in card


def test_report_can_stop_training(teacher, rt_small):
    pipe = Pipeline.vanilla_kd(student=SMALL, training=TRAIN.model_copy(update={"epochs": 3}))
    res = distill_student(
        rt_small, teacher, pipe, report=lambda m: m["epoch"] >= 1, progress=False, measure_latency=False
    )
    assert len(res.train.history) == 1 and res.train.stopped_early


def test_teacher_outputs_computed_once_per_dataset(teacher, rt_small, home, monkeypatch):
    from distill import teacher_outputs as to

    calls: list[list[str]] = []
    real = to._compute
    monkeypatch.setattr(to, "_compute", lambda t, e, names, *a: calls.append(names) or real(t, e, names, *a))
    clear_memory_cache()
    cache = home / "outs-once"
    pipe = Pipeline(
        student=SMALL.model_copy(update={"layers": 1}),
        training=TRAIN.model_copy(update={"epochs": 1}),
        intermediate=IntermediateSpec(name="pkd", mapping="last"),
    )
    for _ in range(2):
        distill_student(rt_small, teacher, pipe, cache_dir=cache, progress=False, measure_latency=False)
    clear_memory_cache()  # a new process: the disk cache serves it
    distill_student(rt_small, teacher, pipe, cache_dir=cache, progress=False, measure_latency=False)
    assert calls == [["logits", "hidden_6"]]


def test_augmented_copies_get_their_own_teacher_outputs(teacher, rt_small):
    from distill.pipeline import Augmentation

    pipe = Pipeline(
        student=SMALL.model_copy(update={"layers": 1}),
        training=TRAIN.model_copy(update={"epochs": 1}),
        augmentation=Augmentation(ops=["eda_swap", "embed_neighbour"], p=0.2, copies=1, mixup=0.4),
    )
    res = distill_student(rt_small, teacher, pipe, progress=False, measure_latency=False)
    assert res.metrics["accuracy"] > 0.4
    assert torch.isfinite(torch.tensor(res.metrics["train_loss"]))


def test_shared_outputs_are_used_not_recomputed(teacher, rt_small, monkeypatch):
    from distill import teacher_outputs as to
    from distill.encoding import encode_fixed

    data = encode_fixed(rt_small.train, teacher.tokenizer, TRAIN.max_length, torch.arange(2))
    enc = {
        "input_ids": data.input_ids,
        "attention_mask": data.attention_mask,
        "token_type_ids": data.token_type_ids,
    }
    shared = to.teacher_outputs(teacher, enc, hidden_layers=range(7), progress=False)
    clear_memory_cache()
    monkeypatch.setattr(to, "_compute", lambda *a: pytest.fail("teacher ran although outputs were shared"))
    one_epoch = TRAIN.model_copy(update={"epochs": 1})
    pipe = Pipeline(
        student=SMALL, training=one_epoch, intermediate=IntermediateSpec(name="cosine", mapping="emd")
    )
    res = distill_student(rt_small, teacher, pipe, outputs=shared, progress=False, measure_latency=False)
    assert res.metrics["accuracy"] > 0.4
    attn = Pipeline(
        student=SMALL,
        training=one_epoch,
        intermediate=IntermediateSpec(name="attention", features="attention"),
    )
    with pytest.raises(ValueError, match="lack attention"):
        distill_student(rt_small, teacher, attn, outputs=shared, progress=False, measure_latency=False)
