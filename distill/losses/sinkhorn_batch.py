"""``sinkhorn_batch``: SinKD's batch-wise Sinkhorn distance (Cui et al., LREC-COLING 2024 / TNNLS)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from distill.losses.base import LOSSES, LogitInputs
from distill.losses.sinkhorn import SinkhornLoss, sinkhorn_plan


@LOSSES.register(
    "sinkhorn_batch",
    "SinKD batch-wise: Sinkhorn OT between the batch's student and teacher distributions (Cui et al. 2024)",
)
class SinkhornBatchLoss(SinkhornLoss):
    """The batch is one empirical measure per model: student points ``x_i = softmax(s_i/T)`` and teacher
    points ``y_j = softmax(t_j/T)``, each of mass ``1/B``. With the ground cost ``C_ij = ‖x_i − y_j‖₁``::

        L = ⟨P, C⟩,   P = argmin_{P 1 = 1/B, Pᵀ1 = 1/B} ⟨P, C⟩ − ε H(P)   (Sinkhorn, ``iters`` steps)

    unrolled so the gradient reaches the student through both ``C`` and ``P``. This is SinKD's batch-wise
    reformulation (its official code also takes the L1 ``cdist`` of softmaxed outputs as the cost); the
    paper scales the term by a small constant inside its total loss, which here is ``kd_weight``.
    A batch of one is the plain L1 distance. Not T²-scaled. Defaults ``epsilon = 0.1``, ``iters = 20``.
    """

    defaults: ClassVar[dict[str, float]] = {"epsilon": 0.1, "iters": 20.0}

    def forward(self, x: LogitInputs) -> Tensor:
        p_s = F.softmax(x.student_logits / self.temperature, dim=-1)
        p_t = F.softmax(x.teacher_logits / self.temperature, dim=-1)
        cost = (p_s.unsqueeze(1) - p_t.unsqueeze(0)).abs().sum(-1)  # (B, B)
        n = cost.shape[0]
        log_w = torch.full((n,), -math.log(n), dtype=cost.dtype, device=cost.device)
        plan = sinkhorn_plan(log_w, log_w, cost, self.epsilon, self.iters)
        return (plan * cost).sum()
