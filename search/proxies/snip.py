"""``snip``: connection sensitivity (Lee et al. 2019) summed over the network."""

from __future__ import annotations

from typing import Any

from search.proxies.base import Proxy, layer_weight_grads, register
from search.proxies.batch import ProxyBatch
from search.proxies.models import ProxyModel


@register("snip", "SNIP saliency Σ|W ⊙ ∂CE/∂W| over conv/linear weights")
class Snip(Proxy):
    """``Σ_W Σ |W ⊙ ∂L/∂W|`` over conv and linear weights (no biases or norms), ``L`` the mean CE."""

    def _measure(self, student: ProxyModel, batch: ProxyBatch, state: Any) -> float:
        return float(
            sum((w.detach() * g).abs().double().sum() for w, g in layer_weight_grads(student, batch))
        )
