"""Which trials count: constraints on reported metrics (feasible, Optuna's violation values) and the Pareto
front of several objectives."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from search.tune_events import TrialRecord


def feasible(metrics: Mapping[str, Any], constraints: Mapping[str, float]) -> bool:
    return all(
        isinstance(metrics.get(k), int | float) and metrics[k] <= bound for k, bound in constraints.items()
    )


def has_metrics(metrics: Mapping[str, Any], names: Sequence[str]) -> bool:
    return all(isinstance(metrics.get(k), int | float) and not math.isnan(metrics[k]) for k in names)


def pareto_front(records: Sequence[TrialRecord], objectives: Sequence[tuple[str, str]]) -> list[TrialRecord]:
    """The records no other record dominates (at least as good on every objective, better on one)."""
    sign = [1.0 if mode == "max" else -1.0 for _, mode in objectives]
    vecs = [[s * float(r.metrics[k]) for s, (k, _) in zip(sign, objectives, strict=True)] for r in records]

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x >= y for x, y in zip(a, b, strict=True)) and any(
            x > y for x, y in zip(a, b, strict=True)
        )

    return [r for r, v in zip(records, vecs, strict=True) if not any(dominates(w, v) for w in vecs)]


def violations(metrics: Mapping[str, Any], constraints: Mapping[str, float]) -> dict[str, float]:
    """Optuna's constraint values (``Trial.set_constraint``): ≤ 0 is feasible; a metric never reported
    counts as violated."""
    return {
        k: float(metrics[k]) - bound if isinstance(metrics.get(k), int | float) else 1.0
        for k, bound in constraints.items()
    }
