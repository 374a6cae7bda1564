"""``lelp``: Learning Embedding Linear Projections, pseudo-subclasses of the teacher's embedding (2024)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from distill.objectives.base import OBJECTIVES, FittedObjective, ObjectiveContext
from distill.objectives.hidden_mse import LayerProjections, cls_vector

if TYPE_CHECKING:
    from distill.pipeline import IntermediateSpec


def subclass_prototypes(x: Tensor, labels: Tensor, num_labels: int, k: int) -> Tensor:
    """``(C·2k, H)`` pseudo-subclass centroids: for each class ``c`` and each of the top-``k`` principal
    directions ``v`` of its centred features, the means of the two halves split by the sign of ``(x − μ_c)·v``
    (``μ_c + E[(x−μ_c)·v | >0] v`` and ``μ_c + E[(x−μ_c)·v | <0] v``). A class with < 2 rows gives ``μ_c``."""
    protos = []
    for c in range(num_labels):
        xc = x[labels == c]
        mu = xc.mean(0) if len(xc) else x.mean(0)
        if len(xc) < 2:
            protos += [mu] * (2 * k)
            continue
        centred = xc - mu
        vh = torch.linalg.svd(centred, full_matrices=False).Vh
        for j in range(k):
            v = vh[j] if j < len(vh) else torch.zeros_like(mu)
            proj = centred @ v
            for half in (proj > 0, proj < 0):
                protos.append(mu + (proj[half].mean() if half.any() else proj.new_zeros(())) * v)
    return torch.stack(protos)


@OBJECTIVES.register(
    "lelp", "LELP: match the teacher's pseudo-subclass distribution from its embedding's class subspaces"
)
class LELPObjective(FittedObjective):
    """Fitted once per training run on the teacher's cached [CLS] features ``h`` of the mapped layer (use
    ``mapping="last"`` for the final embedding, as the paper does): ``P`` = ``subclass_prototypes`` (2k
    pseudo-subclasses per class, k = ``directions``) and ``σ² = mean_n min_m ‖h_n − P_m‖²``. Then::

        q_b = softmax_m( −‖h_b − P_m‖² / (τ σ²) )            teacher pseudo-subclass distribution
        L   = (1/B) Σ_b KL(q_b ‖ softmax(W_l s_b,CLS + c_l))  W_l: R^Hs → R^{C·2k}, a student aux head

    LELP (2024) splits informative linear subspaces of each class's teacher embeddings into
    pseudo-subclasses and trains the student to reproduce them, so a 2-class task passes more than one bit
    of teacher knowledge per example. The paper's exact split and head are not in its abstract: ours are
    the principal directions with sign halves, soft nearest-centroid targets, and an auxiliary head (the
    student's own classifier keeps CE and the output loss). Clustering runs once, in ``fit``, before
    training (``DistillLoss.prepare``), on the full training set. Defaults ``directions = 2``, ``tau = 1``.
    """

    supports: ClassVar[frozenset[str]] = frozenset({"hidden"})
    defaults: ClassVar[dict[str, float]] = {"directions": 2.0, "tau": 1.0}

    def __init__(self, spec: IntermediateSpec, ctx: ObjectiveContext, kind: str) -> None:
        super().__init__(spec, ctx, kind)
        self.k = round(self.p["directions"])
        if self.k < 1 or self.p["tau"] <= 0 or ctx.num_labels < 1:
            raise ValueError(f"lelp needs directions >= 1, tau > 0 and num_labels >= 1; got {self.p}, {ctx}")
        self.head = LayerProjections(ctx.student_layers + 1, ctx.student_dim, ctx.num_labels * 2 * self.k)

    def fit_layer(self, s_layer: int, t_cls: Tensor, labels: Tensor) -> None:
        protos = subclass_prototypes(t_cls, labels, self.ctx.num_labels, self.k)
        scale = torch.cdist(t_cls, protos).pow(2).min(1).values.mean().clamp_min(1e-8)
        self.register_buffer(f"protos_{s_layer}", protos)
        self.register_buffer(f"scale_{s_layer}", scale)

    def teacher_logits(self, t_cls: Tensor, s_layer: int) -> Tensor:
        protos: Tensor = getattr(self, f"protos_{s_layer}", None)
        if protos is None:
            raise RuntimeError("lelp was not fitted: call DistillLoss.prepare(train) before training")
        d2 = torch.cdist(t_cls, protos.to(t_cls)).pow(2)
        return -d2 / (self.p["tau"] * getattr(self, f"scale_{s_layer}"))

    def pair_loss(self, s: Tensor, t: Tensor, mask: Tensor, s_layer: int) -> Tensor:
        log_q = F.log_softmax(self.teacher_logits(cls_vector(t), s_layer), dim=-1)
        log_p = F.log_softmax(self.head(cls_vector(s), s_layer), dim=-1)
        return F.kl_div(log_p, log_q, reduction="batchmean", log_target=True)
