"""``fisher``: Fisher-information channel saliency (Theis et al. 2018) on the feature map."""

from __future__ import annotations

from typing import Any

import torch

from search.proxies.base import Proxy, ProxyBatch, ProxyModel, ce, register


@register("fisher", "Fisher channel saliency ½ Σ_c mean_b (Σ_s a·∂CE/∂a)² on the feature map")
class Fisher(Proxy):
    """With ``a`` the features (see ``base``: token states for transformers, the last map for CNNs) and
    ``L`` the mean cross-entropy: ``score = ½ Σ_c mean_b (Σ_s m_bs · a_bsc · ∂L/∂a_bsc)²``, ``s`` over the
    positions, ``m`` the position mask."""

    def _measure(self, student: ProxyModel, batch: ProxyBatch, state: Any) -> float:
        feats, logits = student.forward(batch)
        (g,) = torch.autograd.grad(ce(logits, batch.labels), feats)
        a, mask = student.positions(feats.detach(), batch)
        g_pos, _ = student.positions(g, batch)
        per_channel = (a * g_pos * mask.unsqueeze(-1)).double().sum(1)  # (B, C)
        return float(0.5 * per_channel.pow(2).mean(0).sum())
