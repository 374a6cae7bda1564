"""``synflow``: synaptic flow (Tanaka et al. 2020), data-free."""

from __future__ import annotations

import copy
from typing import Any

import torch

from search.proxies.base import Proxy, register
from search.proxies.batch import ProxyBatch
from search.proxies.models import ProxyModel


@register("synflow", "SynFlow Σ θ ⊙ ∂R/∂θ with |θ| weights and an all-ones input, in float64")
class Synflow(Proxy):
    """On a float64 copy of the student in **eval** mode (BatchNorm on its initial running statistics, i.e.
    the identity, as the reference removes BN; train-mode BN on one constant input would zero everything)
    with every parameter replaced by ``|θ|``, feed one all-ones input shaped like a sample of the batch
    (transformers: all-ones ``inputs_embeds``) and take ``R = Σ logits``; ``score = Σ_θ Σ θ ⊙ ∂R/∂θ``."""

    def _measure(self, student: ProxyModel, batch: ProxyBatch, state: Any) -> float:
        clone = copy.deepcopy(student)
        clone.module.double().eval()
        params = list(clone.module.parameters())
        with torch.no_grad():
            for p in params:
                p.abs_()
        r = clone.ones_logits(batch).sum()
        grads = torch.autograd.grad(r, params, allow_unused=True)
        return float(sum((p.detach() * g).sum() for p, g in zip(params, grads, strict=True) if g is not None))
