"""DisWOT's two similarity terms (Dong et al., CVPR 2023), shared by ``diswot_semantic``, ``diswot_relation``
and ``diswot``. Gram arithmetic runs in float64.

Semantic term. One cross-entropy backward (sum over the batch, on its labels) per network gives Grad-CAM
channel weights ``α_bc = mean over positions s of ∂L/∂F_bsc`` (the channel-wise mean feature gradient, as
in DisWOT's code; for BERT with [CLS] pooling only the [CLS] position has a gradient, so ``α`` is it over
the number of real tokens). The class-activation map is ``M_b = F_b ⊙ α_b`` (``S × C``, masked positions
zeroed); ``weighting="cam"`` uses the true class's classifier weight row instead (CAM, no backward).
The Gram is taken over

* tokens for transformers (``over="positions"``): ``G_b = M_b M_bᵀ`` (``T × T``), independent of the
  channel counts; ``n_b`` = the sample's real-token count (padding rows/columns are zero);
* channels for CNNs (``over="channels"``): ``G_b = M_bᵀ M_b`` (``C × C``); a student Gram whose side differs
  from the teacher's is bilinearly resized to the teacher's side (DisWOT resizes), ``n_b = C_teacher``.

Both Grams are row-L2-normalised (``Ĝ``), and ``score = −Σ_b ‖Ĝs_b − Ĝt_b‖²_F / (n_b · B)``.

Relation term. ``Z`` = pooled features ``(B, C)``; ``G = Z Zᵀ`` (``B × B``), row-normalised;
``score = −‖Ĝs − Ĝt‖²_F / B²``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from search.proxies.base import ProxyBatch, ProxyModel, ce

GramOver = Literal["auto", "positions", "channels"]
Weighting = Literal["grad", "cam"]
SemanticState = tuple[Tensor, Tensor | None]  # (B, n, n) Grams, (B,) sizes n_b or None (= n)


def gram(m: Tensor) -> Tensor:
    """``G = M Mᵀ`` over the last two dims: ``(..., n, d) → (..., n, n)``."""
    return m @ m.transpose(-1, -2)


def row_normalise(g: Tensor, eps: float = 1e-12) -> Tensor:
    """Each row divided by its L2 norm (``max(‖g_i‖, eps)``; zero rows stay zero)."""
    return F.normalize(g, p=2.0, dim=-1, eps=eps)


def gram_distance(gs: Tensor, gt: Tensor, sizes: Tensor | None = None) -> Tensor:
    """Size-normalised squared Frobenius distance between Grams.

    ``(n, n)`` (one Gram over a batch of ``n`` samples): ``‖Gs − Gt‖² / n²``.
    ``(B, n, n)`` (one Gram per sample): ``Σ_b ‖Gs_b − Gt_b‖² / (n_b · B)``, ``n_b = sizes[b]`` or ``n``.
    """
    if gs.shape != gt.shape:
        raise ValueError(f"Gram shapes differ: {tuple(gs.shape)} vs {tuple(gt.shape)}")
    sq = (gs - gt).pow(2).sum((-1, -2))
    n = gs.shape[-1]
    if gs.dim() == 2:
        return sq / (n * n)
    denom = sizes.to(sq.dtype).clamp_min(1) if sizes is not None else torch.full_like(sq, n)
    return (sq / denom).mean()


def resize_gram(g: Tensor, n: int) -> Tensor:
    """Bilinear resize of ``(B, m, m)`` Grams to ``(B, n, n)``."""
    if g.shape[-1] == n:
        return g
    return F.interpolate(g.unsqueeze(1), size=(n, n), mode="bilinear", align_corners=False).squeeze(1)


def resolve_over(over: GramOver, model: ProxyModel) -> Literal["positions", "channels"]:
    if over == "auto":
        return "positions" if model.family == "transformer" else "channels"
    if over not in ("positions", "channels"):
        raise ValueError(f"over must be 'auto', 'positions' or 'channels', not {over!r}")
    return over


def cam_maps(model: ProxyModel, batch: ProxyBatch, weighting: Weighting = "grad") -> tuple[Tensor, Tensor]:
    """Class-activation maps ``M`` ``(B, S, C)`` (masked positions zero) and the ``(B, S)`` mask."""
    feats, logits = model.forward(batch)
    pos, mask = model.positions(feats, batch)
    if weighting == "grad":
        (g,) = torch.autograd.grad(ce(logits, batch.labels, "sum"), feats)
        g_pos, _ = model.positions(g, batch)
        alpha = (g_pos * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
    elif weighting == "cam":
        alpha = model.classifier_weight().to(pos.dtype)[batch.labels.to(pos.device)]
    else:
        raise ValueError(f"weighting must be 'grad' or 'cam', not {weighting!r}")
    maps = pos * alpha.unsqueeze(1) * mask.unsqueeze(-1)
    return maps.detach().double(), mask.detach()


def semantic_grams(
    model: ProxyModel, batch: ProxyBatch, over: GramOver = "auto", weighting: Weighting = "grad"
) -> SemanticState:
    """Per-sample CAM Grams (unnormalised) and their sizes ``n_b`` (``None`` = the Gram side)."""
    maps, mask = cam_maps(model, batch, weighting)
    if resolve_over(over, model) == "positions":
        return gram(maps), mask.sum(1)
    return gram(maps.transpose(1, 2)), None


def semantic_score(student: SemanticState, teacher: SemanticState) -> Tensor:
    """``−Σ_b ‖Ĝs_b − Ĝt_b‖² / (n_b · B)``, the student's Grams resized to the teacher's side if needed."""
    gs, _ = student
    gt, sizes = teacher
    if gs.shape[0] != gt.shape[0]:
        raise ValueError("teacher and student Grams come from different batches")
    if gs.shape[-1] != gt.shape[-1]:
        gs = resize_gram(gs, gt.shape[-1])
    return -gram_distance(row_normalise(gs), row_normalise(gt), sizes)


@torch.no_grad()
def relation_gram(model: ProxyModel, batch: ProxyBatch) -> Tensor:
    """Row-normalised ``B × B`` Gram of the pooled features."""
    feats, _ = model.forward(batch)
    z = model.pooled(feats, batch).double()
    return row_normalise(gram(z))


def relation_score(student: Tensor, teacher: Tensor) -> Tensor:
    """``−‖Ĝs − Ĝt‖² / B²``."""
    return -gram_distance(student, teacher)
