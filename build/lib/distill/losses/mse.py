"""``mse``: logit matching (Ba & Caruana 2014; Kim et al. 2021)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from distill.losses.base import LOSSES, LogitInputs, LogitLoss


@LOSSES.register(
    "mse", "Mean squared error between raw student and teacher logits (Ba & Caruana 2014; Kim et al. 2021)"
)
class MSELoss(LogitLoss):
    """``1/(B·C) Σ_{b,c} (s_bc − t_bc)²``; the temperature is not used."""

    uses_temperature = False

    def forward(self, x: LogitInputs) -> Tensor:
        return F.mse_loss(x.student_logits, x.teacher_logits, reduction="mean")
