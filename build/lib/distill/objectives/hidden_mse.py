"""``hidden_mse``: MSE between projected hidden states or between attention maps (TinyBERT, Jiao et al. 2020).

This module also holds the few helpers the other objectives share (per-layer projections, masked means,
[CLS] pooling, head averaging); it is the base every projected objective imports from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from torch import Tensor, nn

from distill.objectives.base import OBJECTIVES, Objective, ObjectiveContext

if TYPE_CHECKING:
    from distill.pipeline import IntermediateSpec


# ----------------------------------------------------------------------------------------------- helpers


def cls_vector(x: Tensor) -> Tensor:
    """The [CLS] (first-token) vector ``(B, H)`` of hidden states ``(B, T, H)``, in float32."""
    return x[:, 0].float()


def masked_token_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of per-token ``values (B, T)`` over real tokens: ``Σ m·v / Σ m``."""
    m = mask.to(values.dtype)
    return (values * m).sum() / m.sum().clamp_min(1.0)


def pair_mask(mask: Tensor) -> Tensor:
    """``(B, 1, T, T)`` mask of (query, key) pairs where both tokens are real."""
    m = mask.float()
    return m[:, None, :, None] * m[:, None, None, :]


def head_average(s: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Attention maps ``(B, h, T, T)`` in float32; averaged over heads when the head counts differ."""
    s, t = s.float(), t.float()
    if s.shape[1] != t.shape[1]:
        s, t = s.mean(1, keepdim=True), t.mean(1, keepdim=True)
    return s, t


class LayerProjections(nn.Module):
    """One ``nn.Linear(in_dim, out_dim)`` per student hidden-state index ``0..n_layers-1``.

    Square projections start as the identity (a student copied from teacher layers starts from a
    meaningful loss); the others keep PyTorch's default initialisation.
    """

    def __init__(self, n_layers: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(in_dim, out_dim) for _ in range(n_layers))
        if in_dim == out_dim:
            for lin in self.layers:
                nn.init.eye_(lin.weight)
                nn.init.zeros_(lin.bias)

    def forward(self, x: Tensor, layer: int) -> Tensor:
        lin = self.layers[layer]
        return lin(x.to(lin.weight.dtype)).float()


class ProjectedObjective(Objective):
    """An objective that, for hidden features, owns ``proj[l]: R^Hs → R^Ht`` for every student index ``l``.

    All ``student_layers + 1`` projections are built up front (so the optimizer sees them); the ones
    a mapping never uses simply get no gradient.
    """

    def __init__(self, spec: IntermediateSpec, ctx: ObjectiveContext, kind: str) -> None:
        super().__init__(spec, ctx, kind)
        if kind == "hidden":
            self.proj = LayerProjections(ctx.student_layers + 1, ctx.student_dim, ctx.teacher_dim)


# ------------------------------------------------------------------------------------------- objective


@OBJECTIVES.register("hidden_mse", "MSE of projected hidden states / of attention maps (TinyBERT)")
class HiddenMSE(ProjectedObjective):
    """TinyBERT's layer losses.

    hidden:    ``L = Σ_{b,τ} m_bτ ‖W_l s_bτ + c_l − t_bτ‖² / (Ht · Σ m)`` (mean over real tokens and dims).
    attention: ``L = Σ_{b,h,q,k} m_bq m_bk (A^s_bhqk − A^t_bhqk)² / (h · Σ_{b,q,k} m_bq m_bk)``, i.e. the
    MSE of attention probabilities over real (query, key) pairs; heads are averaged first when the
    student and teacher head counts differ. (TinyBERT uses pre-softmax scores; HF exposes probabilities.)
    """

    supports: ClassVar[frozenset[str]] = frozenset({"hidden", "attention"})
    defaults: ClassVar[dict[str, float]] = {}

    def pair_loss(self, s: Tensor, t: Tensor, mask: Tensor, s_layer: int) -> Tensor:
        if self.kind == "attention":
            s, t = head_average(s, t)
            pm = pair_mask(mask)
            sq = (s - t).pow(2) * pm
            return sq.sum() / (pm.sum().clamp_min(1.0) * s.shape[1])
        diff = self.proj(s, s_layer) - t.float()
        return masked_token_mean(diff.pow(2).mean(-1), mask)


__all__ = [
    "HiddenMSE",
    "LayerProjections",
    "ProjectedObjective",
    "cls_vector",
    "head_average",
    "masked_token_mean",
    "pair_mask",
]
