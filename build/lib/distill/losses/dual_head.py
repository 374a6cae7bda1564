"""``dual_head``: Dual-Head Knowledge Distillation (Yang et al. 2024)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch.nn.functional as F
from torch import Tensor, nn

from distill.losses.base import LOSSES, LogitInputs, LogitLoss, LossContext

if TYPE_CHECKING:
    from distill.pipeline import LogitLossSpec


@LOSSES.register(
    "dual_head",
    "Dual-Head KD: KD on an auxiliary linear head so CE and KD don't share one classifier (Yang et al. 2024)",
)
class DualHeadLoss(LogitLoss):
    """``T² · 1/B Σ_b KL(softmax(t_b/T) ‖ softmax(a_b/T))`` with ``a = W h + c`` an auxiliary head on the
    student's pooled feature ``h``.

    The main head gets only the trainer's CE; the KD signal reaches the encoder through the aux head, so
    the two objectives do not pull one linear classifier in different directions. The aux head is a
    parameter of this module: trained with the student, dropped at export (``student_logits`` gets no
    gradient from this term).
    """

    def __init__(self, spec: LogitLossSpec, ctx: LossContext) -> None:
        super().__init__(spec, ctx)
        self.aux_head = nn.Linear(ctx.student_dim, ctx.num_labels)

    def forward(self, x: LogitInputs) -> Tensor:
        t = self.temperature
        aux_logits = self.aux_head(x.student_pooled)
        log_pa = F.log_softmax(aux_logits / t, dim=-1)
        log_pt = F.log_softmax(x.teacher_logits / t, dim=-1)
        return F.kl_div(log_pa, log_pt, reduction="batchmean", log_target=True) * t * t
