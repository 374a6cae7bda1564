"""What a job knows before it trains: the data's profile (size, classes, lengths) and the teacher's (shape,
size, latency, accuracy on the validation split)."""

from __future__ import annotations

import statistics
from typing import Any

import torch

from distill.data import TextTask, check_label_compatibility
from distill.encoding import encode_fixed
from distill.student import cpu_latency_ms
from distill.teacher import Teacher
from distill.trainer import evaluate


def text_stats(task: TextTask) -> tuple[list[int], float, int]:
    """Examples per class, and the mean and 95th percentile of words per example (text + pair), of the
    training split (the dataset profile shows them; the meta-features derive from them)."""
    counts = [0] * task.num_labels
    for ex in task.train:
        counts[ex.label] += 1
    words = sorted(len(ex.text.split()) + len((ex.text_pair or "").split()) for ex in task.train)
    if not words:
        return counts, 0.0, 0
    return counts, statistics.fmean(words), words[int(0.95 * (len(words) - 1))]


def dataset_profile(task: TextTask) -> dict[str, Any]:
    counts, words_mean, words_p95 = text_stats(task)
    return {
        "name": task.name,
        "train": len(task.train),
        "validation": len(task.validation),
        "test": len(task.test),
        "transfer": len(task.transfer),  # unlabeled rows the teacher labels
        "split": task.meta.get("split"),
        "labels": task.labels,
        "class_counts": dict(zip(task.labels, counts, strict=True)),
        "balance": min(counts) / max(counts),
        "pair": task.is_pair,
        "words_mean": words_mean,
        "words_p95": words_p95,
        "fingerprint": task.fingerprint(),
    }


def teacher_label_map(teacher: Teacher, task: TextTask) -> torch.Tensor:
    """Dataset label id → the teacher's (a user's CSV may order the classes differently)."""
    return torch.tensor(check_label_compatibility(task, teacher.labels, len(teacher.labels)))


def teacher_profile(teacher: Teacher, task: TextTask, max_length: int) -> dict[str, Any]:
    """The teacher's shape, size, CPU latency, and accuracy on the job's validation split."""
    val = encode_fixed(task.validation, teacher.tokenizer, max_length, teacher_label_map(teacher, task))
    return {
        **teacher.describe(),
        "accuracy": evaluate(teacher.model, val)["accuracy"],
        "latency_ms": cpu_latency_ms(teacher.model, seq_len=max_length),
    }
