"""``crd``: contrastive representation distillation (Tian et al. 2020), in-batch negatives."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from distill.objectives.base import OBJECTIVES, Objective, ObjectiveContext
from distill.objectives.hidden_mse import LayerProjections, cls_vector

if TYPE_CHECKING:
    from distill.pipeline import IntermediateSpec


@OBJECTIVES.register("crd", "Contrastive representation distillation on [CLS] with in-batch negatives")
class CRDObjective(Objective):
    """CRD simplified to in-batch negatives. With ``z^s_i = normalise(E^s_l s_i,CLS)``,
    ``z^t_i = normalise(E^t_l t_i,CLS)`` (linear embeddings to ``dim``) and ``Z_ij = z^s_i·z^t_j / τ``::

        L = ½ [ CE(Z, diag) + CE(Zᵀ, diag) ],   CE(Z, diag) = −(1/B) Σ_i log softmax_j(Z_ij)|_{j=i}

    Paper vs ours: CRD (Tian et al. 2020) draws 16,384 negatives per example from a momentum-updated
    memory bank over the whole training set and trains a critic with an NCE (binary) estimator on the
    penultimate features. Here the other examples of the batch are the negatives (B − 1 of them), with a
    softmax (InfoNCE) loss in both directions and no memory bank, on the [CLS] of each mapped layer pair;
    with batches of 16–64 the bound is much looser than CRD's. Defaults follow CRD: ``dim = 128``,
    ``tau = 0.07``.
    """

    supports: ClassVar[frozenset[str]] = frozenset({"hidden"})
    defaults: ClassVar[dict[str, float]] = {"dim": 128.0, "tau": 0.07}

    def __init__(self, spec: IntermediateSpec, ctx: ObjectiveContext, kind: str) -> None:
        super().__init__(spec, ctx, kind)
        dim = round(self.p["dim"])
        if dim < 1 or self.p["tau"] <= 0:
            raise ValueError(f"crd needs dim >= 1 and tau > 0, got {self.p}")
        self.embed_s = LayerProjections(ctx.student_layers + 1, ctx.student_dim, dim)
        self.embed_t = LayerProjections(ctx.student_layers + 1, ctx.teacher_dim, dim)

    def pair_loss(self, s: Tensor, t: Tensor, mask: Tensor, s_layer: int) -> Tensor:
        zs = F.normalize(self.embed_s(cls_vector(s), s_layer), dim=-1, eps=1e-8)
        zt = F.normalize(self.embed_t(cls_vector(t), s_layer), dim=-1, eps=1e-8)
        logits = zs @ zt.T / self.p["tau"]
        target = torch.arange(logits.shape[0], device=logits.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
