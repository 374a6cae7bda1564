"""``params``: the student's parameter count (a size baseline)."""

from __future__ import annotations

from typing import Any

from distill.student import count_params
from search.proxies.base import Proxy, ProxyBatch, ProxyModel, register


@register("params", "Parameter count of the student (bigger predicted better)")
class Params(Proxy):
    """``Σ_θ numel(θ)`` over the student's parameters."""

    def _measure(self, student: ProxyModel, batch: ProxyBatch, state: Any) -> float:
        return float(count_params(student.module))
