"""What a user can trust at the end of a job: accuracy on the held-out test split with a 95% interval, and
the teacher and a student timed side by side (same process, threads, input; interleaved, after warm-up)."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from transformers import PreTrainedModel

from distill.encoding import TrainData
from distill.trainer import evaluate


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of an accuracy of ``correct`` / ``n`` (``(0, 1)`` for ``n = 0``)."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def held_out_metrics(model: PreTrainedModel, data: TrainData) -> dict[str, Any]:
    """Accuracy, macro-F1, the number of examples and the accuracy's 95% interval on ``data``; ``point``:
    what one example is worth (1 / n)."""
    n = len(data)
    m = evaluate(model, data)
    low, high = wilson_interval(round(m["accuracy"] * n), n)
    return {**m, "n": n, "low": low, "high": high, "point": 1 / n if n else None}


def interval_text(m: dict[str, Any]) -> str:
    """``0.8125 (95% CI 0.78–0.84, n=600)``."""
    return f"{m['accuracy']:.4f} (95% CI {m['low']:.2f}–{m['high']:.2f}, n={m['n']})"


def _torch_runner(model: PreTrainedModel) -> Callable[[torch.Tensor, torch.Tensor], Any]:
    return lambda ids, mask: model(input_ids=ids, attention_mask=mask)


@torch.no_grad()
def paired_latency(
    teacher: PreTrainedModel,
    student: PreTrainedModel,
    *,
    seq_len: int = 64,
    batch: int = 1,
    threads: int = 1,
    runs: int = 30,
    warmup: int = 5,
    extra: dict[str, Callable[[torch.Tensor, torch.Tensor], Any]] | None = None,
) -> dict[str, Any]:
    """Median CPU latency (ms) of the teacher and the student, timed in this process on the same
    ``batch × seq_len`` input with ``threads`` torch threads, interleaved (the order reversed every
    round) after ``warmup`` passes each; the settings travel with the figures. ``extra``: more runners
    ``(input_ids, attention_mask) → …`` (e.g. the student's ONNX sessions, built with the same thread count)
    timed in the same rounds, reported as ``<name>_ms``."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    models = {"teacher": teacher, "student": student}
    runners = {k: _torch_runner(m) for k, m in models.items()} | (extra or {})
    states = {k: (next(m.parameters()).device, m.training) for k, m in models.items()}
    for m in models.values():
        m.to("cpu").eval()
    ids = torch.randint(1000, 2000, (batch, seq_len)) % min(m.config.vocab_size for m in models.values())
    mask = torch.ones_like(ids)
    times: dict[str, list[float]] = {k: [] for k in runners}
    order = list(runners)
    try:
        for _ in range(warmup):
            for run in runners.values():
                run(ids, mask)
        for r in range(runs):
            for k in order if r % 2 == 0 else order[::-1]:
                t0 = time.perf_counter()
                runners[k](ids, mask)
                times[k].append((time.perf_counter() - t0) * 1000)
    finally:
        torch.set_num_threads(before)
        for k, m in models.items():
            m.to(states[k][0]).train(states[k][1])
    t_ms, s_ms = statistics.median(times["teacher"]), statistics.median(times["student"])
    more = {f"{k.replace('-', '_')}_ms": statistics.median(times[k]) for k in extra or {}}
    return {
        "teacher_ms": t_ms, "student_ms": s_ms, **more, "speedup": t_ms / s_ms if s_ms else None,
        "threads": threads, "batch": batch, "seq_len": seq_len, "runs": runs, "warmup": warmup,
        "method": "same process, same input, interleaved, median after warm-up",
    }  # fmt: skip


def speed_text(p: dict[str, Any]) -> str:
    """``19.0× faster (12.1 vs 0.64 ms; 1 thread, batch 1×64 tokens, median of 30 interleaved runs)``, then
    the ONNX and int8 figures when they were timed: ``; ONNX 0.41 ms, int8 0.35 ms``."""
    threads = f"{p['threads']} thread{'s' if p['threads'] != 1 else ''}"
    text = (
        f"{p['speedup']:.1f}× faster ({p['teacher_ms']:.2f} vs {p['student_ms']:.2f} ms; {threads}, batch "
        f"{p['batch']}×{p['seq_len']} tokens, median of {p['runs']} interleaved runs, same process)"
    )
    onnx = [f"{name} {p[key]:.2f} ms" for key, name in (("onnx_ms", "ONNX"), ("onnx_int8_ms", "int8"))
            if p.get(key) is not None]  # fmt: skip
    return f"{text}; {', '.join(onnx)} (onnxruntime, same rounds)" if onnx else text
