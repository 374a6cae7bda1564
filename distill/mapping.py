"""Which student layer learns from which teacher layer, and the EMD weights of the all-pairs mapping.

Indices are HF ``hidden_states`` indices: 0 = embeddings output, 1..L = transformer layers. A hidden pair
``(i, j)`` with ``i, j ≥ 1`` corresponds to the attention pair ``(i − 1, j − 1)`` (HF ``attentions`` are
0-based per layer); the embedding pair has no attention counterpart (``attention_pairs``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from distill.registry import Registry

#: A mapping: (student layers, teacher layers) → (student index, teacher index) pairs, before clamping.
PairFn = Callable[[int, int], list[tuple[int, int]]]
MAPPINGS: Registry[PairFn] = Registry("layer mapping")


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def layer_pairs(mapping: str, n_student: int, n_teacher: int) -> list[tuple[int, int]]:
    """(student index, teacher index) pairs of hidden states for ``mapping``.

    - ``skip`` (PKD-skip): ``i ↔ i·k`` with ``k = n_teacher // n_student``, ``i = 1..n_student``.
    - ``last`` (PKD-last): ``i ↔ n_teacher − n_student + i`` (top student layer ↔ top teacher layer).
    - ``uniform``: ``0 ↔ 0`` (embeddings) plus ``i ↔ round(i·n_teacher/n_student)``, rounding halves up.
    - ``emd`` (BERT-EMD): every ``(i, j)``, ``i = 1..n_student``, ``j = 1..n_teacher``, weighted later by
      ``emd_weights``.

    A student deeper than its teacher (``n_student > n_teacher``) still gets one teacher layer per student
    layer: ``skip`` uses ``k = max(1, n_teacher // n_student)``, and every teacher index is clamped to
    ``1..n_teacher`` (so several student layers share the teacher's top or bottom layer).
    """
    if n_student < 1 or n_teacher < 1:
        raise ValueError(
            f"need at least one layer on each side, got student={n_student}, teacher={n_teacher}"
        )

    pairs = MAPPINGS.get(mapping)(n_student, n_teacher)
    return [(i, j if i == 0 else min(max(j, 1), n_teacher)) for i, j in pairs]


@MAPPINGS.register("skip", "student layer i ↔ teacher layer i·k (PKD-skip)")
def _skip(n_student: int, n_teacher: int) -> list[tuple[int, int]]:
    k = max(1, n_teacher // n_student)
    return [(i, i * k) for i in range(1, n_student + 1)]


@MAPPINGS.register("last", "student layers ↔ the teacher's last layers (PKD-last)")
def _last(n_student: int, n_teacher: int) -> list[tuple[int, int]]:
    return [(i, n_teacher - n_student + i) for i in range(1, n_student + 1)]


@MAPPINGS.register("uniform", "embeddings ↔ embeddings, then evenly spaced teacher layers")
def _uniform(n_student: int, n_teacher: int) -> list[tuple[int, int]]:
    return [(0, 0)] + [(i, _round_half_up(i * n_teacher / n_student)) for i in range(1, n_student + 1)]


@MAPPINGS.register("emd", "all layer pairs weighted by an earth-mover transport plan (BERT-EMD)")
def _emd(n_student: int, n_teacher: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(1, n_student + 1) for j in range(1, n_teacher + 1)]


def attention_pairs(hidden_pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The attention-layer pairs ``(i − 1, j − 1)`` of hidden pairs ``(i, j)``; pairs touching index 0 are
    dropped (embeddings have no attention)."""
    return [(i - 1, j - 1) for i, j in hidden_pairs if i > 0 and j > 0]


def emd_weights(costs: Tensor, iters: int = 50, eps: float = 0.05) -> Tensor:
    """Earth mover's transport plan between student and teacher layers (BERT-EMD, Li et al. 2020).

    Solves ``min_W Σ_ij W_ij C_ij`` s.t. ``W 1 = 1/n_s``, ``Wᵀ 1 = 1/n_t``, ``W ≥ 0`` (uniform layer masses,
    total mass 1, so ``Σ W_ij C_ij`` is the EMD) by entropic optimal transport: log-domain Sinkhorn on the
    costs rescaled to ``[0, 1]`` (``(C − min C)/(max C − min C)``; a plan does not change when costs shift
    or scale), regularisation ``eps`` (smaller = closer to the exact LP, slower to converge), ``iters``
    iterations, then the rounding of Altschuler et al. (2017) so both marginals hold exactly.
    ``costs`` should be detached: the plan is a constant weighting of the per-pair losses.

    BERT-EMD also learns per-layer masses with a cost-attention update; here masses are uniform.
    """
    c = costs.detach().double()
    n_s, n_t = c.shape
    a = torch.full((n_s,), 1.0 / n_s, dtype=c.dtype, device=c.device)
    b = torch.full((n_t,), 1.0 / n_t, dtype=c.dtype, device=c.device)
    span = c.max() - c.min()
    if not torch.isfinite(span) or span <= 0:
        return (a[:, None] * b[None, :]).to(costs.dtype)
    log_k = -(c - c.min()) / span / eps
    log_a, log_b = a.log(), b.log()
    f = torch.zeros_like(a)
    g = torch.zeros_like(b)
    for _ in range(iters):
        f = log_a - torch.logsumexp(log_k + g[None, :], dim=1)
        g = log_b - torch.logsumexp(log_k + f[:, None], dim=0)
    plan = (f[:, None] + log_k + g[None, :]).exp()
    # Altschuler et al. rounding onto {W ≥ 0 : W1 = a, Wᵀ1 = b}.
    plan = plan * (a / plan.sum(1).clamp_min(1e-300)).clamp(max=1.0)[:, None]
    plan = plan * (b / plan.sum(0).clamp_min(1e-300)).clamp(max=1.0)[None, :]
    err_a = a - plan.sum(1)
    err_b = b - plan.sum(0)
    if err_b.abs().sum() > 0:
        plan = plan + err_a[:, None] * err_b[None, :] / err_b.abs().sum()
    return plan.to(costs.dtype)
