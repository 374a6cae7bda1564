"""``synflow``: synaptic flow (Tanaka et al. 2020), data-free."""

from __future__ import annotations

import copy
from typing import Any

import torch

from search.proxies.base import Proxy, ProxyBatch, ProxyModel, register


@register("synflow", "SynFlow Σ θ ⊙ ∂R/∂θ with |θ| weights and an all-ones input, in float64")
class Synflow(Proxy):
    """On a float64 copy of the student with every parameter replaced by ``|θ|`` (buffers untouched, eval
    mode), feed one all-ones input shaped like a sample of the batch — for transformers all-ones
    ``inputs_embeds`` (position and token-type embeddings are still added; the word embeddings get no
    gradient) — and take ``R = Σ logits``; ``score = Σ_θ Σ θ ⊙ ∂R/∂θ``. The student's own weights are
    never touched (the copy is discarded)."""

    def _measure(self, student: ProxyModel, batch: ProxyBatch, state: Any) -> float:
        clone = copy.deepcopy(student)
        clone.module.double()
        params = list(clone.module.parameters())
        with torch.no_grad():
            for p in params:
                p.abs_()
        r = clone.ones_logits(batch).sum()
        grads = torch.autograd.grad(r, params, allow_unused=True)
        return float(sum((p.detach() * g).sum() for p, g in zip(params, grads, strict=True) if g is not None))
