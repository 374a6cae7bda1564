"""``dac_kl``: distribution-adaptive clipping KL (after Liu et al. 2024, semantic revision for LLM KD)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill.losses.base import LOSSES, LogitInputs, LogitLoss, LossContext

if TYPE_CHECKING:
    from distill.pipeline import LogitLossSpec


@LOSSES.register(
    "dac_kl", "DAC-KL: KL on the teacher's dense region, clipped by a learned sub-network (Liu et al. 2024)"
)
class DACKLLoss(LogitLoss):
    """A sub-network ``g`` (2-layer MLP on the descending-sorted teacher probabilities ``sort(p^t)``) predicts
    a lower and an upper bound ``0 < l < u < 1`` (``l = σ(g_1)·σ(g_2)``, ``u = σ(g_2)``). Class ``c`` is kept
    with the soft mask ``m_c = σ((p^t_c − l)/κ) · σ((u − p^t_c)/κ)``, and always when ``c`` is the label::

        q_c ∝ m_c p^t_c,   r_c ∝ m_c p^s_c          (teacher and student renormalised on the kept classes)
        L   = T² · (1/B) Σ_b KL(q_b ‖ r_b) + λ · (1/B) Σ_b (1 − Σ_c m_bc p^t_bc)

    with ``p = softmax(z/T)``. The second term (λ = ``coverage``) charges for teacher mass the clip throws
    away; without it ``g`` could minimise the KL by keeping only the label. The paper (for LLM vocabularies)
    learns the clip bounds with a sub-network and keeps the ground truth; its abstract does not give the
    sub-network's input or training signal: the MLP input, the soft mask (sharpness κ = ``sharpness``)
    and the coverage term are ours. With few classes the clip mostly drops the teacher's low-mass tail.
    """

    defaults: ClassVar[dict[str, float]] = {"hidden": 32.0, "sharpness": 0.02, "coverage": 1.0}

    def __init__(self, spec: LogitLossSpec, ctx: LossContext) -> None:
        super().__init__(spec, ctx)
        if self.p["sharpness"] <= 0 or self.p["hidden"] < 1 or self.p["coverage"] < 0:
            raise ValueError(f"dac_kl needs sharpness > 0, hidden >= 1, coverage >= 0; got {self.p}")
        h = round(self.p["hidden"])
        self.bounds = nn.Sequential(nn.Linear(ctx.num_labels, h), nn.ReLU(), nn.Linear(h, 2))

    def clip_mask(self, p_t: Tensor, labels: Tensor) -> Tensor:
        """The soft mask ``m`` ``(B, C)``: 1 at the label, ~1 inside ``[l, u]``, ~0 outside."""
        g = torch.sigmoid(self.bounds(p_t.sort(dim=-1, descending=True).values))
        upper = g[:, 1:2]
        lower = g[:, 0:1] * upper
        k = self.p["sharpness"]
        m = torch.sigmoid((p_t - lower) / k) * torch.sigmoid((upper - p_t) / k)
        return torch.where(F.one_hot(labels, p_t.shape[-1]).bool(), torch.ones_like(m), m)

    def forward(self, x: LogitInputs) -> Tensor:
        t = self.temperature
        log_pt = F.log_softmax(x.teacher_logits / t, dim=-1)
        log_ps = F.log_softmax(x.student_logits / t, dim=-1)
        m = self.clip_mask(log_pt.exp(), x.labels)
        log_m = m.clamp_min(1e-12).log()
        log_q = F.log_softmax(log_pt + log_m, dim=-1)
        log_r = F.log_softmax(log_ps + log_m, dim=-1)
        kl = (log_q.exp() * (log_q - log_r)).sum(-1).mean() * t * t
        coverage = (m * log_pt.exp()).sum(-1).mean()
        return kl + self.p["coverage"] * (1.0 - coverage)
