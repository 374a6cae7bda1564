"""``snip``: connection sensitivity (Lee et al. 2019) summed over the network."""

from __future__ import annotations

from typing import Any

from search.proxies.base import Proxy, ProxyBatch, ProxyModel, param_grads, register


@register("snip", "SNIP saliency Σ|θ ⊙ ∂CE/∂θ|")
class Snip(Proxy):
    """``Σ_θ Σ |θ ⊙ ∂L/∂θ|`` with ``L`` the mean cross-entropy on the batch labels."""

    def _measure(self, student: ProxyModel, batch: ProxyBatch, state: Any) -> float:
        return float(sum((p.detach() * g).abs().double().sum() for p, g in param_grads(student, batch)))
