"""``rkl``: reverse KL (mode-seeking) distillation."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from distill.losses.base import LOSSES, LogitInputs, LogitLoss


@LOSSES.register(
    "rkl", "Reverse KL(student ‖ teacher) at temperature T, T²-scaled (mode-seeking KD, e.g. MiniLLM)"
)
class ReverseKLLoss(LogitLoss):
    """``T² · 1/B Σ_b Σ_c p_s (log p_s − log p_t)`` with ``p = softmax(·/T)``."""

    def forward(self, x: LogitInputs) -> Tensor:
        t = self.temperature
        log_ps = F.log_softmax(x.student_logits / t, dim=-1)
        log_pt = F.log_softmax(x.teacher_logits / t, dim=-1)
        return (log_ps.exp() * (log_ps - log_pt)).sum(dim=-1).mean() * t * t
