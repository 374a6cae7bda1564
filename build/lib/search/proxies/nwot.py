"""``nwot``: NASWOT (Mellor et al. 2021), the log-determinant of the activation-pattern kernel."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from search.proxies.base import Proxy, ProxyBatch, ProxyModel, register


@register("nwot", "NASWOT log|det K| of the binary ReLU/GELU activation-code kernel of the batch")
class Nwot(Proxy):
    """Per sample ``b``, ``c_b`` is the binary code ``[a > 0]`` of every unit of the activation modules
    (transformers: the FFN intermediate outputs ``GELU(x W₁)`` of all layers and real tokens; CNNs: the
    outputs of every ReLU/GELU-like module of the features), ``m_b`` its mask (padding tokens 0);
    ``K = (m⊙c)(m⊙c)ᵀ + (m⊙(1−c))(m⊙(1−c))ᵀ`` counts the units on which two samples agree, and
    ``score = log|det K|`` (``slogdet``, float64). Identical samples in a batch make ``K`` singular (−∞)."""

    @torch.no_grad()
    def _measure(self, student: ProxyModel, batch: ProxyBatch, state: Any) -> float:
        codes: list[Tensor] = []
        mask = batch.attention_mask

        def hook(_: nn.Module, __: Any, out: Tensor) -> None:
            c = (out > 0).double()
            m = torch.ones_like(c)
            if mask is not None and c.dim() == 3 and c.shape[:2] == mask.shape:
                m = m * mask.to(c).unsqueeze(-1)
            codes.append(torch.stack([c * m, (1 - c) * m]).flatten(2))

        modules = student.activation_modules()
        if not modules:
            raise ValueError("nwot needs ReLU/GELU activation modules; the model exposes none")
        handles = [m.register_forward_hook(hook) for m in modules]
        try:
            student.forward(batch)
        finally:
            for h in handles:
                h.remove()
        on, off = torch.cat(codes, dim=-1)
        k = on @ on.T + off @ off.T
        return float(torch.linalg.slogdet(k).logabsdet)
