"""``cosine``: cosine distance between projected student and teacher token states."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from distill.objectives.base import OBJECTIVES
from distill.objectives.hidden_mse import ProjectedObjective, masked_token_mean


@OBJECTIVES.register("cosine", "1 − cosine between projected student and teacher token states")
class CosineObjective(ProjectedObjective):
    """``L = Σ_{b,τ} m_bτ (1 − cos(W_l s_bτ + c_l, t_bτ)) / Σ m`` (mean over real tokens)."""

    supports: ClassVar[frozenset[str]] = frozenset({"hidden"})
    defaults: ClassVar[dict[str, float]] = {}

    def pair_loss(self, s: Tensor, t: Tensor, mask: Tensor, s_layer: int) -> Tensor:
        cos = F.cosine_similarity(self.proj(s, s_layer), t.float(), dim=-1, eps=1e-8)
        return masked_token_mean(1.0 - cos, mask)
