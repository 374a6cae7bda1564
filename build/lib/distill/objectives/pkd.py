"""``pkd``: Patient KD (Sun et al. 2019), distance between L2-normalised [CLS] states."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from distill.objectives.base import OBJECTIVES
from distill.objectives.hidden_mse import ProjectedObjective, cls_vector


@OBJECTIVES.register("pkd", "Patient KD: squared distance of L2-normalised projected [CLS] states")
class PKDObjective(ProjectedObjective):
    """Patient-KD's ``L_PT`` for one layer pair, averaged over the batch::

        L = (1/B) Σ_b ‖ p_b/‖p_b‖₂ − t_b/‖t_b‖₂ ‖²₂,   p_b = W_l s_b,CLS + c_l,   t_b = t_b,CLS

    (the paper's squared Euclidean distance summed over dimensions, = 2 − 2·cos ∈ [0, 4]; a plain
    per-element mean would just divide it by Ht). PKD has no projection because its student and
    teacher widths match; here ``W_l`` maps Hs → Ht (identity-initialised when they are equal).
    """

    supports: ClassVar[frozenset[str]] = frozenset({"hidden"})
    defaults: ClassVar[dict[str, float]] = {}

    def pair_loss(self, s: Tensor, t: Tensor, mask: Tensor, s_layer: int) -> Tensor:
        p = F.normalize(self.proj(cls_vector(s), s_layer), dim=-1, eps=1e-8)
        q = F.normalize(cls_vector(t), dim=-1, eps=1e-8)
        return (p - q).pow(2).sum(-1).mean()
