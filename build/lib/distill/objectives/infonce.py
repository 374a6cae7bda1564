"""``infonce``: −InfoNCE bound on [CLS] states with a learned separable critic (van den Oord et al. 2018).

Also home of the critic and batch helpers that ``nwj``, ``tuba`` and ``mi_alpha`` share.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from distill.objectives.base import OBJECTIVES, Objective, ObjectiveContext
from distill.objectives.hidden_mse import LayerProjections, cls_vector

if TYPE_CHECKING:
    from distill.pipeline import IntermediateSpec

CRITIC_DEFAULTS: dict[str, float] = {"dim": 64.0, "tau": 0.1}


def offdiag_mask(n: int, device: torch.device) -> Tensor:
    """``(n, n)`` bool mask, True off the diagonal."""
    return ~torch.eye(n, dtype=torch.bool, device=device)


def logmeanexp_offdiag(x: Tensor) -> Tensor:
    """``log( (1/(n(n−1))) Σ_{i≠j} exp(x_ij) )`` for a square ``x`` (n ≥ 2)."""
    n = x.shape[0]
    off = x.masked_fill(~offdiag_mask(n, x.device), -math.inf)
    return torch.logsumexp(off.flatten(), 0) - math.log(n * (n - 1))


def zero_like_graph(x: Tensor) -> Tensor:
    """A zero loss that stays connected to the autograd graph of ``x``."""
    return x.sum() * 0.0


class CriticObjective(Objective):
    """Objective with a separable critic per student layer ``l`` on the [CLS] vectors::

        f(s, t) = ⟨ g_l(s)/‖g_l(s)‖, h_l(t)/‖h_l(t)‖ ⟩ / τ,   g_l: R^Hs → R^dim,  h_l: R^Ht → R^dim (linear)

    The two embeddings are L2-normalised, so ``|f| ≤ 1/τ``: the exponentials in the NWJ / TUBA / MI-α
    bounds stay finite (also under fp16/bf16) and the bounds cannot diverge from an exploding critic.
    ``scores`` returns the ``B × B`` matrix ``F_ij = f(s_i, t_j)`` (row = student, column = teacher).
    """

    supports: ClassVar[frozenset[str]] = frozenset({"hidden"})
    defaults: ClassVar[dict[str, float]] = dict(CRITIC_DEFAULTS)

    def __init__(self, spec: IntermediateSpec, ctx: ObjectiveContext, kind: str) -> None:
        super().__init__(spec, ctx, kind)
        dim = round(self.p["dim"])
        if dim < 1 or self.p["tau"] <= 0:
            raise ValueError(f"{type(self).__name__} needs dim >= 1 and tau > 0, got {self.p}")
        self.g = LayerProjections(ctx.student_layers + 1, ctx.student_dim, dim)
        self.h = LayerProjections(ctx.student_layers + 1, ctx.teacher_dim, dim)

    def scores(self, s: Tensor, t: Tensor, s_layer: int) -> Tensor:
        zs = F.normalize(self.g(cls_vector(s), s_layer), dim=-1, eps=1e-8)
        zt = F.normalize(self.h(cls_vector(t), s_layer), dim=-1, eps=1e-8)
        return zs @ zt.T / self.p["tau"]


@OBJECTIVES.register("infonce", "−InfoNCE mutual-information bound between student and teacher [CLS]")
class InfoNCEObjective(CriticObjective):
    """With critic scores ``F_ij = f(s_i, t_j)`` (see ``CriticObjective``)::

        I_NCE = (1/B) Σ_i [ F_ii − log Σ_j exp(F_ij) ] + log B,     L = −I_NCE

    (each student [CLS] must pick out its own teacher [CLS] among the batch; ``I_NCE ≤ log B``).
    Defaults: ``dim = 64``, ``tau = 0.1``.
    """

    def pair_loss(self, s: Tensor, t: Tensor, mask: Tensor, s_layer: int) -> Tensor:
        f = self.scores(s, t, s_layer)
        nce = (f.diagonal() - torch.logsumexp(f, dim=1)).mean() + math.log(f.shape[0])
        return -nce
