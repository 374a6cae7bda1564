"""``kl``: Hinton et al. (2015) knowledge distillation."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from distill.losses.base import LOSSES, LogitInputs, LogitLoss


@LOSSES.register(
    "kl", "KL(teacher ‖ student) between temperature-softened distributions, T²-scaled (Hinton et al. 2015)"
)
class KLLoss(LogitLoss):
    """``T² · 1/B Σ_b KL(softmax(t_b/T) ‖ softmax(s_b/T))`` (``batchmean``)."""

    def forward(self, x: LogitInputs) -> Tensor:
        t = self.temperature
        log_ps = F.log_softmax(x.student_logits / t, dim=-1)
        log_pt = F.log_softmax(x.teacher_logits / t, dim=-1)
        return F.kl_div(log_ps, log_pt, reduction="batchmean", log_target=True) * t * t
