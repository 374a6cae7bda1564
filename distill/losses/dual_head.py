"""``dual_head``: Dual-Head Knowledge Distillation (Yang et al. 2024)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from distill.losses.base import LOSSES, LogitInputs, LogitLoss, LossContext

if TYPE_CHECKING:
    from distill.pipeline import LogitLossSpec


def binary_kl(teacher_logits: Tensor, student_logits: Tensor) -> Tensor:
    """``Σ_c KL(Bern(σ(t_c)) ‖ Bern(σ(s_c)))`` per row ``(B,)``: each logit read as its own yes/no
    probability, so the logits' scale and offset (lost by softmax) carry signal."""
    ls_t, ls_s = F.logsigmoid(teacher_logits), F.logsigmoid(student_logits)
    lns_t, lns_s = F.logsigmoid(-teacher_logits), F.logsigmoid(-student_logits)
    return (ls_t.exp() * (ls_t - ls_s) + lns_t.exp() * (lns_t - lns_s)).sum(-1)


@LOSSES.register(
    "dual_head",
    "Dual-Head KD: softmax KL on the main head, binary (logit) KL on an auxiliary head (Yang et al. 2024)",
)
class DualHeadLoss(LogitLoss):
    """With ``s`` the main head's logits, ``a = W h + c`` an auxiliary linear head on the student's pooled
    feature ``h``, ``t`` the teacher's logits and ``β = aux_weight``::

        L = T² · (1/B) Σ_b KL(softmax(t_b/T) ‖ softmax(s_b/T))
          + β · T² · (1/B) Σ_b Σ_c KL(Bern(σ(t_bc/T)) ‖ Bern(σ(a_bc/T)))

    and the trainer adds CE on the main head. As in the paper, the main head keeps CE + probability-level
    KD and the logit-level loss goes to a separate head, so the two losses, which conflict in one linear
    classifier, only share the backbone. The paper's logit-level loss is a binary (sigmoid) KL on each
    logit; we soften it with the same ``T`` and scale it by ``T²`` like the KL term (our choice). The aux
    head is trained with the student and dropped at export.
    """

    defaults: ClassVar[dict[str, float]] = {"aux_weight": 1.0}

    def __init__(self, spec: LogitLossSpec, ctx: LossContext) -> None:
        super().__init__(spec, ctx)
        if self.p["aux_weight"] < 0:
            raise ValueError(f"dual_head needs aux_weight >= 0, got {self.p['aux_weight']}")
        self.aux_head = nn.Linear(ctx.student_dim, ctx.num_labels)

    def forward(self, x: LogitInputs) -> Tensor:
        t = self.temperature
        log_ps = F.log_softmax(x.student_logits / t, dim=-1)
        log_pt = F.log_softmax(x.teacher_logits / t, dim=-1)
        kd = F.kl_div(log_ps, log_pt, reduction="batchmean", log_target=True)
        aux = binary_kl(x.teacher_logits / t, self.aux_head(x.student_pooled) / t).mean()
        return (kd + self.p["aux_weight"] * aux) * t * t
