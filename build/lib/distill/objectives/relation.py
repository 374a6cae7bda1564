"""``relation``: similarity-preserving KD (Tung & Mori 2019) on [CLS] batch similarity matrices."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from distill.objectives.base import OBJECTIVES, Objective
from distill.objectives.hidden_mse import cls_vector


@OBJECTIVES.register("relation", "Similarity-preserving KD: match row-normalised [CLS] batch Gram matrices")
class RelationObjective(Objective):
    """Similarity-preserving KD. With ``A`` the ``(B, H)`` [CLS] vectors of one side, ``G = A Aᵀ`` and
    ``G̃`` its rows L2-normalised::

        L = ‖G̃_s − G̃_t‖²_F / B²

    Gram matrices are ``B × B`` on both sides, so no projection is needed.
    """

    supports: ClassVar[frozenset[str]] = frozenset({"hidden"})
    defaults: ClassVar[dict[str, float]] = {}

    def pair_loss(self, s: Tensor, t: Tensor, mask: Tensor, s_layer: int) -> Tensor:
        a_s, a_t = cls_vector(s), cls_vector(t)
        g_s = F.normalize(a_s @ a_s.T, dim=1, eps=1e-8)
        g_t = F.normalize(a_t @ a_t.T, dim=1, eps=1e-8)
        return (g_s - g_t).pow(2).sum() / a_s.shape[0] ** 2
