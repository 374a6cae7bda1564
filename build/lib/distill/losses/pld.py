"""``pld``: Plackett-Luce Distillation (Bassam, Zhu & Bian 2025, "PLD: A Choice-Theoretic List-Wise KD")."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from distill.losses.base import LOSSES, LogitInputs, LogitLoss


@LOSSES.register(
    "pld", "Plackett-Luce list-wise KD: teacher-confidence-weighted ranking likelihood (Bassam et al. 2025)"
)
class PLDLoss(LogitLoss):
    """Weighted Plackett-Luce negative log-likelihood of the teacher's class ranking π under the student.

    ``L = 1/B Σ_b −Σ_{k=1..C} w_k [ s_{π_k} − logsumexp_{j≥k} s_{π_j} ]``, ``w_k = softmax(t/T)_{π_k}``.

    ``s`` are the raw student logits (the temperature only softens the teacher weights), and π is the
    "teacher-optimal" permutation: with ``label_first=1`` (default, as in the paper) the true label comes
    first, then the other classes by descending teacher logit; with ``label_first=0`` π is simply
    ``argsort(t, descending)``. The two agree whenever the teacher is right. Ties keep class order.
    """

    defaults: ClassVar[dict[str, float]] = {"label_first": 1.0}

    def forward(self, x: LogitInputs) -> Tensor:
        s, t = x.student_logits, x.teacher_logits
        keys = t
        if self.p["label_first"]:
            keys = t.masked_fill(F.one_hot(x.labels, t.shape[-1]).bool(), float("inf"))
        perm = torch.argsort(keys, dim=-1, descending=True, stable=True)
        s_perm = s.gather(-1, perm)
        w = F.softmax(t / self.temperature, dim=-1).gather(-1, perm)
        # logsumexp over the suffix j ≥ k: a reversed cumulative logsumexp
        suffix_lse = torch.logcumsumexp(s_perm.flip(-1), dim=-1).flip(-1)
        return -(w * (s_perm - suffix_lse)).sum(dim=-1).mean()
