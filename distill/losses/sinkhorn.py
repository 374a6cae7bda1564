"""``sinkhorn``: SinKD, Sinkhorn-distance knowledge distillation (Cui et al., LREC-COLING 2024 / TNNLS)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from distill.losses.base import LOSSES, LogitInputs, LogitLoss, LossContext

if TYPE_CHECKING:
    from distill.pipeline import LogitLossSpec


@LOSSES.register(
    "sinkhorn",
    "SinKD: entropic optimal-transport (Sinkhorn) distance between softened outputs (Cui et al. 2024)",
)
class SinkhornLoss(LogitLoss):
    """Entropic OT cost between ``a = softmax(t/T)`` and ``b = softmax(s/T)``, per sample, batch-averaged.

    ``L = 1/B Σ_b ⟨P_b, C⟩`` where ``P_b = argmin_{P 1 = a, Pᵀ1 = b} ⟨P, C⟩ − ε H(P)`` is found by ``iters``
    Sinkhorn iterations in log space (``u = log a − LSE_j(v_j − C_ij/ε)``,
    ``v = log b − LSE_i(u_i − C_ij/ε)``, ``log P = u_i + v_j − C_ij/ε``), unrolled so the gradient reaches
    the student.

    Ground cost ``C = 1 − I`` (0 to stay on a class, 1 to move mass to any other): classification labels
    are unordered, so no class is "nearer" than another; ``|i − j|`` would invent an order. With this cost
    the unregularised distance is the total variation ``1 − Σ_c min(a_c, b_c)``. Not T²-scaled.
    SinKD's main form is batch-wise (OT across the samples of a batch): that is ``sinkhorn_batch``; this
    loss is the per-sample distance between class distributions.
    """

    defaults: ClassVar[dict[str, float]] = {"epsilon": 0.1, "iters": 20.0}

    def __init__(self, spec: LogitLossSpec, ctx: LossContext) -> None:
        super().__init__(spec, ctx)
        self.epsilon = float(self.p["epsilon"])
        self.iters = int(self.p["iters"])
        if self.epsilon <= 0 or self.iters < 1 or self.iters != self.p["iters"]:
            raise ValueError(f"sinkhorn needs epsilon > 0 and a whole number iters >= 1, got {self.p}")

    def forward(self, x: LogitInputs) -> Tensor:
        log_a = F.log_softmax(x.teacher_logits / self.temperature, dim=-1)
        log_b = F.log_softmax(x.student_logits / self.temperature, dim=-1)
        n = log_a.shape[-1]
        cost = 1.0 - torch.eye(n, dtype=log_a.dtype, device=log_a.device)
        plan = sinkhorn_plan(log_a, log_b, cost, self.epsilon, self.iters)  # (B, C, C)
        return (plan * cost).sum(dim=(-2, -1)).mean()


def sinkhorn_plan(log_a: Tensor, log_b: Tensor, cost: Tensor, epsilon: float, iters: int) -> Tensor:
    """The entropic OT plan ``P`` between marginals ``a`` (``(..., n)``) and ``b`` (``(..., m)``) for ``cost``
    ``(n, m)``: ``iters`` log-space Sinkhorn iterations, unrolled (differentiable)."""
    m = -cost / epsilon  # log of the Gibbs kernel
    u = torch.zeros_like(log_a)
    v = torch.zeros_like(log_b)
    for _ in range(iters):
        u = log_a - torch.logsumexp(m + v.unsqueeze(-2), dim=-1)
        v = log_b - torch.logsumexp(m + u.unsqueeze(-1), dim=-2)
    return torch.exp(u.unsqueeze(-1) + v.unsqueeze(-2) + m)
