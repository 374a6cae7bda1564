"""``nd``: feature Norm and Direction loss (after Wang et al. 2023, "ND loss") on [CLS] states."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from distill.objectives.base import OBJECTIVES
from distill.objectives.hidden_mse import ProjectedObjective, cls_vector


@OBJECTIVES.register("nd", "Norm & direction: 1 − cos to the teacher [CLS] + hinge on a too-small norm")
class NDObjective(ProjectedObjective):
    """Direction plus norm regulariser, with ``p_b = W_l s_b,CLS + c_l`` and ``t_b = t_b,CLS``::

        L = (1/B) Σ_b [ (1 − cos(p_b, t_b)) + λ · max(0, ‖t_b‖ − ‖p_b‖) / ‖t_b‖ ],   λ = norm_weight

    Simplification of Wang et al.: the paper aligns the student feature with the teacher's *class-mean*
    direction and rewards large norms; without labels here each example's own teacher [CLS] is the target
    direction, and the norm term only pushes the (projected) student norm up to the teacher's.
    """

    supports: ClassVar[frozenset[str]] = frozenset({"hidden"})
    defaults: ClassVar[dict[str, float]] = {"norm_weight": 1.0}

    def pair_loss(self, s: Tensor, t: Tensor, mask: Tensor, s_layer: int) -> Tensor:
        p = self.proj(cls_vector(s), s_layer)
        q = cls_vector(t)
        direction = 1.0 - F.cosine_similarity(p, q, dim=-1, eps=1e-8)
        t_norm = q.norm(dim=-1)
        norm = torch.relu(t_norm - p.norm(dim=-1)) / t_norm.clamp_min(1e-8)
        return (direction + self.p["norm_weight"] * norm).mean()
