"""``grad_norm``: summed per-tensor gradient norms of the cross-entropy (Abdelfattah et al. 2021)."""

from __future__ import annotations

from typing import Any

from search.proxies.base import Proxy, ProxyBatch, ProxyModel, param_grads, register


@register("grad_norm", "Σ over parameter tensors of ‖∂CE/∂θ‖₂ at initialisation")
class GradNorm(Proxy):
    """``Σ_θ ‖∂L/∂θ‖₂`` with ``L`` the mean cross-entropy on the batch labels."""

    def _measure(self, student: ProxyModel, batch: ProxyBatch, state: Any) -> float:
        return float(sum(g.double().norm() for _, g in param_grads(student, batch)))
