"""``params`` and ``body_params``: the student's size (baselines, and the size term of the rank proxies)."""

from __future__ import annotations

from typing import Any

from torch import nn

from distill.student import count_params
from search.proxies.base import Proxy, register
from search.proxies.batch import ProxyBatch
from search.proxies.models import ProxyModel


def body_param_count(model: nn.Module) -> int:
    """Parameters outside embedding tables: ``Σ numel(θ) − Σ numel(E)`` over ``nn.Embedding`` weights.

    A transformer's token/position/type tables add parameters but almost no capacity (the non-embedding
    count is the one that predicts quality in scaling studies); a pruned or factorised vocabulary changes
    the total, not the body. For a CNN it is the parameter count.
    """
    tables = {id(m.weight): m.weight.numel() for m in model.modules() if isinstance(m, nn.Embedding)}
    return count_params(model) - sum(tables.values())


@register("params", "Parameter count of the student (bigger predicted better)")
class Params(Proxy):
    """``Σ_θ numel(θ)`` over the student's parameters."""

    def _measure(self, student: ProxyModel, batch: ProxyBatch, state: Any) -> float:
        return float(count_params(student.module))


@register("body_params", "Parameters outside embedding tables (= params for CNNs; bigger predicted better)")
class BodyParams(Proxy):
    """``Σ_θ numel(θ) − Σ_E numel(E)``: embedding tables (``nn.Embedding``) left out."""

    def _measure(self, student: ProxyModel, batch: ProxyBatch, state: Any) -> float:
        return float(body_param_count(student.module))
