"""``fisher``: Fisher-information channel saliency (Theis et al. 2018) of every conv/linear output."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from search.proxies.base import LAYERS, Proxy, ce, register
from search.proxies.batch import ProxyBatch
from search.proxies.models import ProxyModel


def _saliency(a: Tensor, g: Tensor, mask: Tensor | None) -> Tensor:
    """``½ Σ_c mean_b (Σ_s a·g)²`` of one layer's output ``a`` and its gradient ``g``."""
    prod = (a * g).double()
    if prod.dim() == 3 and mask is not None and prod.shape[:2] == mask.shape:
        prod = prod * mask.to(prod).unsqueeze(-1)  # (B, T, F): tokens are positions, padding masked
        per_channel = prod.sum(1)
    elif prod.dim() > 2:
        per_channel = prod.flatten(2).sum(-1) if prod.dim() == 4 else prod.sum(1)
    else:
        per_channel = prod
    return 0.5 * per_channel.pow(2).mean(0).sum()


@register("fisher", "Fisher channel saliency ½ Σ_layers Σ_c mean_b (Σ_s a·∂CE/∂a)² of conv/linear outputs")
class Fisher(Proxy):
    """With ``a`` each conv or linear layer's output (as the reference code hooks each layer; we do not
    insert its identity modules) and ``L`` the mean cross-entropy:
    ``score = Σ_layers ½ Σ_c mean_b (Σ_s a_bsc · ∂L/∂a_bsc)²``, ``s`` over spatial positions (CNNs) or real
    tokens (transformers, padding masked)."""

    def _measure(self, student: ProxyModel, batch: ProxyBatch, state: Any) -> float:
        outs: list[Tensor] = []

        def hook(_: nn.Module, __: Any, out: Tensor) -> None:
            if out.requires_grad:
                outs.append(out)

        handles = [m.register_forward_hook(hook) for m in student.module.modules() if isinstance(m, LAYERS)]
        try:
            _, logits = student.forward(batch)
        finally:
            for h in handles:
                h.remove()
        grads = torch.autograd.grad(ce(logits, batch.labels), outs, allow_unused=True)
        mask = batch.attention_mask
        return float(
            sum(_saliency(a.detach(), g, mask) for a, g in zip(outs, grads, strict=True) if g is not None)
        )
