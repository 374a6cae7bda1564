"""``mi_alpha``: −I_α, the InfoNCE/TUBA interpolated MI bound (Poole et al. 2019) used by Distiller."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from distill.objectives.base import OBJECTIVES, ObjectiveContext
from distill.objectives.infonce import logmeanexp_offdiag, offdiag_mask, zero_like_graph
from distill.objectives.tuba import BaselineCriticObjective

if TYPE_CHECKING:
    from distill.pipeline import IntermediateSpec


def log_loo_mean(scores: Tensor) -> Tensor:
    """``out[i, j] = log( (1/(n−1)) Σ_{k≠j} exp(scores[i, k]) )`` for a square ``scores`` (n ≥ 2).

    Stable in O(n²): ``log Σ_{k≠j} e^{x_k} = lse(x) + log1p(−softmax(x)_j)`` is exact for every entry but
    a row's arg-max (there ``softmax ≤ 1/2`` fails and ``log1p`` can hit ``−inf``); the arg-max entry is the
    log-sum-exp of the row with that entry removed.
    """
    n = scores.shape[0]
    lse = torch.logsumexp(scores, dim=1, keepdim=True)
    amax = scores.argmax(dim=1, keepdim=True)
    is_max = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, amax, True)
    prob = torch.where(is_max, torch.zeros_like(scores), (scores - lse).exp())
    loo = lse + torch.log1p(-prob)
    without_max = scores.masked_fill(is_max, -math.inf)
    loo_at_max = torch.logsumexp(without_max, dim=1, keepdim=True).expand_as(scores)
    return torch.where(is_max, loo_at_max, loo) - math.log(n - 1)


@OBJECTIVES.register("mi_alpha", "−I_α: InfoNCE/TUBA interpolated mutual-information bound (Distiller)")
class MIAlphaObjective(BaselineCriticObjective):
    """Poole et al.'s ``interpolated_lower_bound``, with ``α = spec.alpha ∈ [0, 1]`` the interpolation weight
    of the InfoNCE baseline (their ``alpha_logit`` is ``logit(α)``). With ``S_ij = f(s_j, t_i)`` (row =
    teacher) and the learned ``b_i = b(t_i)``::

        m_ij = (1/(B−1)) Σ_{k≠j} exp(S_ik)                  leave-one-out InfoNCE baseline
        a_ij = log( α·m_ij + (1−α)·exp(b_i) )               interpolated log-baseline (in log space)
        I_α  = 1 + (1/(B(B−1))) Σ_{i≠j} (S_ii − a_ij) − (1/(B(B−1))) Σ_{i≠j} exp(S_ij − a_ii)
        L    = −I_α

    ``α = 0`` is exactly TUBA (``a_ij = b_i``); ``α = 1`` gives the leave-one-out InfoNCE form
    ``I_1 = (1/(B(B−1))) Σ_{i≠j} (S_ii − log m_ij)`` (its marginal term is exactly 1). Distiller (He et al.
    2021) uses this bound as its intermediate objective. A batch of one has no negative pair: loss 0.
    Defaults: ``dim = 64``, ``tau = 0.1``.
    """

    def __init__(self, spec: IntermediateSpec, ctx: ObjectiveContext, kind: str) -> None:
        super().__init__(spec, ctx, kind)
        if spec.alpha is None or not 0.0 <= spec.alpha <= 1.0:
            raise ValueError(f"mi_alpha needs alpha in [0, 1] (the InfoNCE weight), got {spec.alpha}")
        self.alpha = float(spec.alpha)

    def pair_loss(self, s: Tensor, t: Tensor, mask: Tensor, s_layer: int) -> Tensor:
        scores, b = self.tables(s, t, s_layer)
        n = scores.shape[0]
        if n < 2:
            return zero_like_graph(scores) + zero_like_graph(b)
        log_a = math.log(self.alpha) if self.alpha > 0 else -math.inf
        log_1ma = math.log1p(-self.alpha) if self.alpha < 1 else -math.inf
        base = torch.logaddexp(log_a + log_loo_mean(scores), log_1ma + b[:, None].expand_as(scores))
        off = offdiag_mask(n, scores.device)
        joint = (scores.diagonal()[:, None] - base)[off].mean()
        marg = logmeanexp_offdiag(scores - base.diagonal()[:, None]).exp()
        return -(1.0 + joint - marg)
