"""``nd``: feature Norm and Direction loss (Wang et al. 2023, "ND loss") on [CLS] states."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from distill.objectives.base import OBJECTIVES, FittedObjective
from distill.objectives.hidden_mse import ProjectedObjective, cls_vector


@OBJECTIVES.register("nd", "Norm & direction: 1 − cos to the teacher [CLS] or class mean + norm hinge")
class NDObjective(ProjectedObjective, FittedObjective):
    """Direction plus norm regulariser, with ``p_b = W_l s_b,CLS + c_l`` and ``t_b = t_b,CLS``::

        L = (1/B) Σ_b [ (1 − cos(p_b, d_b)) + λ · max(0, ‖t_b‖ − ‖p_b‖) / ‖t_b‖ ],   λ = norm_weight

    Target direction ``d_b``: with ``class_means = 0`` (default) the example's own teacher [CLS] ``t_b``;
    with ``class_means = 1`` the paper's form, the teacher's class mean ``μ_c`` (fitted once on the cached
    training features), taking for ``c`` the class whose mean is nearest in cosine to ``t_b`` (the teacher's
    class-mean prediction; objectives see no labels, so where the teacher is wrong this differs from the
    paper's ground-truth class). Wang et al. reward large norms through the projection on the class-mean
    direction divided by the teacher's norm; our norm term only lifts the projected student norm up to
    the teacher's.
    """

    supports: ClassVar[frozenset[str]] = frozenset({"hidden"})
    defaults: ClassVar[dict[str, float]] = {"norm_weight": 1.0, "class_means": 0.0}

    def fit_layer(self, s_layer: int, t_cls: Tensor, labels: Tensor) -> None:
        if self.p["class_means"] and self.ctx.num_labels:
            means = torch.stack([t_cls[labels == c].mean(0) for c in range(self.ctx.num_labels)])
            self.register_buffer(f"means_{s_layer}", torch.nan_to_num(means))

    def direction(self, q: Tensor, s_layer: int) -> Tensor:
        """The target direction per row: ``q`` itself, or the class mean nearest to it in cosine."""
        if not self.p["class_means"]:
            return q
        means: Tensor | None = getattr(self, f"means_{s_layer}", None)
        if means is None:
            raise RuntimeError("nd with class_means was not fitted: call DistillLoss.prepare(train)")
        means = means.to(q)
        cos = F.normalize(q, dim=-1, eps=1e-8) @ F.normalize(means, dim=-1, eps=1e-8).T
        return means[cos.argmax(-1)]

    def pair_loss(self, s: Tensor, t: Tensor, mask: Tensor, s_layer: int) -> Tensor:
        p = self.proj(cls_vector(s), s_layer)
        q = cls_vector(t)
        direction = 1.0 - F.cosine_similarity(p, self.direction(q, s_layer), dim=-1, eps=1e-8)
        t_norm = q.norm(dim=-1)
        norm = torch.relu(t_norm - p.norm(dim=-1)) / t_norm.clamp_min(1e-8)
        return (direction + self.p["norm_weight"] * norm).mean()
