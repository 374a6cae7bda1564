"""``jsd``: Jensen–Shannon divergence distillation."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from distill.losses.base import LOSSES, LogitInputs, LogitLoss


@LOSSES.register("jsd", "Jensen–Shannon divergence between teacher and student at temperature T, T²-scaled")
class JSDLoss(LogitLoss):
    """``T² · 1/B Σ_b [½ KL(p_t ‖ m) + ½ KL(p_s ‖ m)]``, ``m = (p_t + p_s)/2``, ``p = softmax(·/T)``.

    ``log m`` is computed as ``logsumexp(log p_t, log p_s) − log 2`` so it never takes ``log 0``.
    """

    def forward(self, x: LogitInputs) -> Tensor:
        t = self.temperature
        log_ps = F.log_softmax(x.student_logits / t, dim=-1)
        log_pt = F.log_softmax(x.teacher_logits / t, dim=-1)
        log_m = torch.logsumexp(torch.stack([log_ps, log_pt]), dim=0) - math.log(2.0)
        kl_t = (log_pt.exp() * (log_pt - log_m)).sum(dim=-1)
        kl_s = (log_ps.exp() * (log_ps - log_m)).sum(dim=-1)
        return 0.5 * (kl_t + kl_s).mean() * t * t
