"""``target_ratio`` (issue 13): the smallest (or fastest) trial that reaches the ratio, else the closest."""

from __future__ import annotations

from search.pareto import reaching_target

ROWS = [
    {"number": 0, "accuracy": 0.60, "params": 1_000, "latency_ms": 0.5},
    {"number": 1, "accuracy": 0.83, "params": 9_000, "latency_ms": 1.9},
    {"number": 2, "accuracy": 0.80, "params": 4_000, "latency_ms": 2.5},
    {"number": 3, "accuracy": 0.81, "params": 4_000, "latency_ms": 1.2},
    {"number": 4, "accuracy": 0.90, "params": 50_000, "latency_ms": 6.0},
    {"number": 5, "accuracy": None, "params": 10, "latency_ms": 0.1},
]


def test_smallest_qualifying_trial_not_the_most_accurate():
    pick, closest = reaching_target(ROWS, teacher_accuracy=0.85, ratio=0.94)  # bar 0.799
    assert pick["number"] == 3 and closest is None  # 4,000 params; the more accurate of the two smallest
    fastest, _ = reaching_target(ROWS, teacher_accuracy=0.85, ratio=0.94, by="latency_ms")
    assert fastest["number"] == 3
    fastest, _ = reaching_target(ROWS, teacher_accuracy=0.85, ratio=0.97, by="latency_ms")  # bar 0.8245
    assert fastest["number"] == 1


def test_none_reaches_the_target_the_closest_is_shown():
    pick, closest = reaching_target(ROWS, teacher_accuracy=0.95, ratio=0.98)
    assert pick is None and closest["number"] == 4
    assert reaching_target([], 0.9, 0.9) == (None, None)
