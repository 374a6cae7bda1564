"""``grad_norm``: summed per-layer gradient norms of the cross-entropy (Abdelfattah et al. 2021)."""

from __future__ import annotations

from typing import Any

from search.proxies.base import Proxy, layer_weight_grads, register
from search.proxies.batch import ProxyBatch
from search.proxies.models import ProxyModel


@register("grad_norm", "Σ over conv/linear weights of ‖∂CE/∂W‖₂ at initialisation")
class GradNorm(Proxy):
    """``Σ_W ‖∂L/∂W‖₂`` over conv and linear weights (no biases or norms), ``L`` the mean cross-entropy."""

    def _measure(self, student: ProxyModel, batch: ProxyBatch, state: Any) -> float:
        return float(sum(g.double().norm() for _, g in layer_weight_grads(student, batch)))
