"""Replaying fixed parameters through a define-by-run space: which distributions a known point uses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution


class Replay:
    """A stand-in for ``optuna.Trial`` that answers each ``suggest_*`` from fixed params.

    It checks that every value asked for is present and inside its distribution, and records the
    distributions, which ``optuna.trial.create_trial`` needs to file an already-evaluated point.
    """

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = dict(params)
        self.distributions: dict[str, BaseDistribution] = {}

    def _take(self, name: str, dist: BaseDistribution, ok: bool) -> None:
        if not ok:
            raise ValueError(f"parameter {name}={self.params[name]!r} is outside its distribution {dist}")
        self.distributions[name] = dist

    def _value(self, name: str) -> Any:
        if name not in self.params:
            raise ValueError(f"parameter {name!r} is missing")
        return self.params[name]

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        value = self._value(name)
        # `True in [0, 1]` holds in Python: compare types too.
        ok = any(type(value) is type(c) and value == c for c in choices)
        self._take(name, CategoricalDistribution(tuple(choices)), ok)
        return value

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        value = self._value(name)
        ok = isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high
        self._take(name, FloatDistribution(low, high, step=step, log=log), ok)
        return float(value)
