"""Profiling a job before its search: the data, the teacher, and the student candidates under the budget."""

from __future__ import annotations

import statistics
from typing import Any

import torch
from transformers import PreTrainedModel

from distill.data import TextTask
from distill.engine import encode_fixed
from distill.pipeline import StudentArch
from distill.student import build_student, cpu_latency_ms, estimate_params
from distill.teacher import Teacher
from distill.trainer import evaluate


def dataset_profile(task: TextTask) -> dict[str, Any]:
    counts = [0] * task.num_labels
    for ex in task.train:
        counts[ex.label] += 1
    words = [len(ex.text.split()) + len((ex.text_pair or "").split()) for ex in task.train]
    return {
        "name": task.name,
        "train": len(task.train),
        "validation": len(task.validation),
        "labels": task.labels,
        "class_counts": dict(zip(task.labels, counts, strict=True)),
        "balance": min(counts) / max(counts),
        "pair": task.is_pair,
        "words_mean": statistics.fmean(words),
        "words_p95": sorted(words)[int(0.95 * (len(words) - 1))],
        "fingerprint": task.fingerprint(),
    }


def teacher_profile(teacher: Teacher, task: TextTask, max_length: int) -> dict[str, Any]:
    """The teacher's shape, size, CPU latency, and accuracy on the job's validation split."""
    val = encode_fixed(task.validation, teacher.tokenizer, max_length, torch.arange(task.num_labels))
    return {
        **teacher.describe(),
        "accuracy": evaluate(teacher.model, val)["accuracy"],
        "latency_ms": cpu_latency_ms(teacher.model, seq_len=max_length),
    }


def default_candidates(teacher: PreTrainedModel) -> list[StudentArch]:
    """Students shallower and narrower than the teacher: depth 1–4 at its width, and narrower widths.

    The first is the reference students' architecture: a third of the teacher's depth (at least 1) at its
    width, initialised from its layers (DistilBERT-style), the usual first thing one would try.
    """
    cfg = teacher.config
    width, heads, ffn, depth = (
        cfg.hidden_size,
        cfg.num_attention_heads,
        cfg.intermediate_size,
        cfg.num_hidden_layers,
    )
    head_dim = width // heads
    first = max(1, depth // 3)
    out = [StudentArch(layers=first, hidden=width, heads=heads, ffn=ffn)]
    for layers in range(1, min(4, depth - 1) + 1):
        if layers != first:
            out.append(StudentArch(layers=layers, hidden=width, heads=heads, ffn=ffn))
    for frac in (2 / 3, 1 / 2):
        h_heads = max(1, round(heads * frac))
        hidden = h_heads * head_dim
        for layers in (2, 4):
            if layers < depth:
                out.append(StudentArch(layers=layers, hidden=hidden, heads=h_heads, ffn=4 * hidden))
    return out


def feasible_candidates(
    candidates: list[StudentArch],
    teacher: PreTrainedModel,
    *,
    max_params: int | None,
    max_latency_ms: float | None,
    seq_len: int,
) -> tuple[list[StudentArch], list[dict[str, Any]]]:
    """Candidates that meet the budget (checked before any training), and a row per candidate for the DB."""
    rows, keep = [], []
    for arch in candidates:
        row: dict[str, Any] = {"arch": arch.model_dump(), "params": estimate_params(arch, teacher)}
        ok = max_params is None or row["params"] <= max_params
        if ok and max_latency_ms is not None:
            student, _ = build_student(arch, teacher, seed=0)
            row["latency_ms"] = cpu_latency_ms(student, seq_len=seq_len)
            ok = row["latency_ms"] <= max_latency_ms
        row["feasible"] = ok
        rows.append(row)
        if ok:
            keep.append(arch)
    return keep, rows
