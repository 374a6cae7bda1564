"""Held-out figures (issue 13): the accuracy interval, and teacher and student timed side by side."""

from __future__ import annotations

import pytest
import torch
import transformers

from distill.holdout import interval_text, paired_latency, speed_text, wilson_interval


def _bert(layers: int, hidden: int) -> transformers.BertForSequenceClassification:
    cfg = transformers.BertConfig(
        vocab_size=3000, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=64, num_labels=3,
    )  # fmt: skip
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(cfg)


def test_wilson_interval_shows_what_one_point_means():
    low, high = wilson_interval(204, 240)  # 85% of 240: one example is 0.42 points
    assert low == pytest.approx(0.7999, abs=1e-3) and high == pytest.approx(0.8897, abs=1e-3)
    narrow = wilson_interval(2040, 2400)
    assert narrow[1] - narrow[0] < (high - low) / 3
    assert wilson_interval(0, 0) == (0.0, 1.0) and wilson_interval(10, 10)[1] == 1.0
    m = {"accuracy": 0.85, "low": low, "high": high, "n": 240}
    assert interval_text(m) == "0.8500 (95% CI 0.80–0.89, n=240)"


def test_latency_pair_same_process_same_threads_interleaved():
    teacher, student = _bert(4, 128), _bert(1, 32)
    student.train(), teacher.eval()
    threads = torch.get_num_threads()
    pair = paired_latency(teacher, student, seq_len=32, threads=1, runs=10, warmup=2)
    assert pair["teacher_ms"] > pair["student_ms"] > 0
    assert pair["speedup"] == pytest.approx(pair["teacher_ms"] / pair["student_ms"]) and pair["speedup"] > 1.5
    assert {k: pair[k] for k in ("threads", "batch", "seq_len", "runs", "warmup")} == {
        "threads": 1, "batch": 1, "seq_len": 32, "runs": 10, "warmup": 2,
    }  # fmt: skip
    assert torch.get_num_threads() == threads and student.training and not teacher.training
    text = speed_text(pair)
    assert "× faster" in text and "1 thread," in text and "batch 1×32 tokens" in text
