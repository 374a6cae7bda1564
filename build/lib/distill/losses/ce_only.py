"""``ce_only``: no distillation term (the trainer's ``hard_weight · CE(labels)`` is the whole loss)."""

from __future__ import annotations

from torch import Tensor

from distill.losses.base import LOSSES, LogitInputs, LogitLoss


@LOSSES.register("ce_only", "No KD: cross-entropy on the labels only (the no-distillation reference student)")
class CEOnlyLoss(LogitLoss):
    """KD term ``0``, returned as ``0 · Σ s`` so it stays in the autograd graph (and on the right device)."""

    uses_teacher = False
    uses_temperature = False

    def forward(self, x: LogitInputs) -> Tensor:
        return x.student_logits.sum() * 0.0
