"""``hidden_ce``: soft cross-entropy between projected hidden states (Distiller's "CE" objective)."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from distill.objectives.base import OBJECTIVES
from distill.objectives.hidden_mse import ProjectedObjective, masked_token_mean


@OBJECTIVES.register(
    "hidden_ce", "Soft cross-entropy of softmax-normalised projected hidden states (Distiller's 'ce')"
)
class HiddenCE(ProjectedObjective):
    """Each token's hidden vector is read as a distribution over hidden dimensions. With
    ``p_bτ = W_l s_bτ + c_l`` (projection to the teacher width) and ``t_bτ`` the teacher state::

        L = Σ_{b,τ} m_bτ · ( −Σ_h softmax(t_bτ/τ)_h · log softmax(p_bτ/τ)_h ) / Σ m

    Distiller (He et al. 2021) applies TinyBERT's ``soft_cross_entropy`` (``τ = 1``) to the mapped hidden
    states and averages over all positions; we average over real tokens only (``m`` = attention mask)
    and expose ``tau`` (default 1, the paper's setting).
    """

    supports: ClassVar[frozenset[str]] = frozenset({"hidden"})
    defaults: ClassVar[dict[str, float]] = {"tau": 1.0}

    def pair_loss(self, s: Tensor, t: Tensor, mask: Tensor, s_layer: int) -> Tensor:
        tau = self.p["tau"]
        if tau <= 0:
            raise ValueError(f"hidden_ce needs tau > 0, got {tau}")
        log_p = F.log_softmax(self.proj(s, s_layer) / tau, dim=-1)
        target = F.softmax(t.float() / tau, dim=-1)
        return masked_token_mean(-(target * log_p).sum(-1), mask)
