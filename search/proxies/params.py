"""``params``: the student's parameter count (a size baseline)."""

from __future__ import annotations

from typing import Any

from distill.student import count_params
from search.proxies.base import Proxy, register
from search.proxies.batch import ProxyBatch
from search.proxies.models import ProxyModel


@register("params", "Parameter count of the student (bigger predicted better)")
class Params(Proxy):
    """``Σ_θ numel(θ)`` over the student's parameters."""

    def _measure(self, student: ProxyModel, batch: ProxyBatch, state: Any) -> float:
        return float(count_params(student.module))
