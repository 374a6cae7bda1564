"""``dkd``: Decoupled Knowledge Distillation (Zhao et al., CVPR 2022)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from distill.losses.base import LOSSES, LogitInputs, LogitLoss

#: Subtracted from the target logit (after ``/T``) so it drops out of the non-target distributions.
_MASK = 1000.0


@LOSSES.register(
    "dkd", "Decoupled KD: α·target-class KD + β·non-target-class KD, T²-scaled (Zhao et al. CVPR 2022)"
)
class DKDLoss(LogitLoss):
    """``α · TCKD + β · NCKD`` with the target class ``g`` = the label, ``p = softmax(·/T)``:

    * TCKD = ``T² · 1/B Σ_b KL([p_t,g, 1 − p_t,g] ‖ [p_s,g, 1 − p_s,g])`` (binary target-vs-rest),
    * NCKD = ``T² · 1/B Σ_b KL(p̂_t ‖ p̂_s)``, ``p̂ = softmax(z/T − 1000·onehot(g))`` (non-target classes only).

    Defaults ``alpha=1, beta=8`` follow the paper. The binary log-probabilities are taken in log space
    (``log(1 − p_g) = logsumexp_{c≠g} log p_c``) so a confident student never gives ``log 0``.
    """

    defaults: ClassVar[dict[str, float]] = {"alpha": 1.0, "beta": 8.0}

    def forward(self, x: LogitInputs) -> Tensor:
        t = self.temperature
        zs, zt = x.student_logits / t, x.teacher_logits / t
        gt = F.one_hot(x.labels, zs.shape[-1]).bool()

        tckd = F.kl_div(_binary_log_probs(zs, gt), _binary_log_probs(zt, gt).exp(), reduction="batchmean")
        nckd = F.kl_div(
            F.log_softmax(zs - _MASK * gt, dim=-1), F.softmax(zt - _MASK * gt, dim=-1), reduction="batchmean"
        )
        return (self.p["alpha"] * tckd + self.p["beta"] * nckd) * t * t


def _binary_log_probs(z: Tensor, gt: Tensor) -> Tensor:
    """``[log p_g, log(1 − p_g)]`` per row, shape (B, 2), for ``p = softmax(z)``."""
    log_p = F.log_softmax(z, dim=-1)
    log_target = log_p.masked_select(gt).unsqueeze(-1)
    log_rest = torch.logsumexp(log_p.masked_fill(gt, float("-inf")), dim=-1, keepdim=True)
    return torch.cat([log_target, log_rest], dim=-1)
