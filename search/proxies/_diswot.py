"""DisWOT's two similarity terms (Dong, Li & Wei, CVPR 2023), shared by ``diswot_semantic``,
``diswot_relation``, ``diswot`` and the rank proxies. Gram arithmetic runs in float64; both networks are
scored in train mode (see ``base.scoring``), as in DisWOT's code.

**Semantic term** (paper eq. 3–4; code: ``semantic_similarity_metric``). One mean cross-entropy backward per
network gives the gradient of the classifier weight, ``g = ∂L/∂W ∈ ℝ^{K×C}`` (Grad-CAM-like channel
weights per class: DisWOT's code reads ``fc.weight.grad``). Per class ``k``, ``G_k = g_k g_kᵀ`` (``C × C``),
row-L2-normalised to ``Ĝ_k``, and ``D_sem = Σ_k ‖Ĝs_k − Ĝt_k‖²_F / (C · K)``; the term is ``−D_sem``.
Where we differ: DisWOT's code needs ``C_student = C_teacher``; when they differ we bilinearly resize the
student's Gram to the teacher's side before normalising (the paper resizes maps in the same way).
Memory is ``K · C²`` floats.

**Relation term** (paper eq. 5; code: ``relation_similarity_metric``). ``A`` = the pre-pooling feature map
flattened to ``B × (C·H·W)`` (transformers: ``B × (T·H)``, padding tokens zeroed); ``G = A Aᵀ`` (``B × B``),
row-normalised, and ``D_rel = ‖Ĝs − Ĝt‖²_F / B²``; the term is ``−D_rel``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from search.proxies.base import ce
from search.proxies.batch import ProxyBatch
from search.proxies.models import ProxyModel


def gram(m: Tensor) -> Tensor:
    """``G = M Mᵀ`` over the last two dims: ``(..., n, d) → (..., n, n)``."""
    return m @ m.transpose(-1, -2)


def row_normalise(g: Tensor, eps: float = 1e-12) -> Tensor:
    """Each row divided by its L2 norm (``max(‖g_i‖, eps)``; zero rows stay zero)."""
    return F.normalize(g, p=2.0, dim=-1, eps=eps)


def gram_distance(gs: Tensor, gt: Tensor) -> Tensor:
    """``Σ ‖Gs − Gt‖²_F / (n · m)`` for ``(m, n, n)`` Grams (``(n, n)``: ``m = n``, i.e. ``/ n²``)."""
    if gs.shape != gt.shape:
        raise ValueError(f"Gram shapes differ: {tuple(gs.shape)} vs {tuple(gt.shape)}")
    m = gs.shape[0] if gs.dim() == 3 else gs.shape[-1]
    return (gs - gt).pow(2).sum() / (gs.shape[-1] * m)


def resize_gram(g: Tensor, n: int) -> Tensor:
    """Bilinear resize of ``(m, c, c)`` Grams to ``(m, n, n)``."""
    if g.shape[-1] == n:
        return g
    return F.interpolate(g.unsqueeze(1), size=(n, n), mode="bilinear", align_corners=False).squeeze(1)


def semantic_grams(model: ProxyModel, batch: ProxyBatch) -> Tensor:
    """``(K, C, C)`` per-class Grams ``g_k g_kᵀ`` of the classifier-weight gradient (not normalised)."""
    weight = model.classifier(batch).weight
    _, logits = model.forward(batch)
    (g,) = torch.autograd.grad(ce(logits, batch.labels), weight)
    g = g.detach().double().unsqueeze(-1)
    return gram(g)


def semantic_score(student: Tensor, teacher: Tensor) -> Tensor:
    """``−D_sem``: the student's Grams resized to the teacher's side if needed, both row-normalised."""
    if student.shape[0] != teacher.shape[0]:
        raise ValueError(f"{student.shape[0]} vs {teacher.shape[0]} classes")
    student = resize_gram(student, teacher.shape[-1])
    return -gram_distance(row_normalise(student), row_normalise(teacher))


@torch.no_grad()
def relation_gram(model: ProxyModel, batch: ProxyBatch) -> Tensor:
    """Row-normalised ``B × B`` Gram of the flattened (masked) pre-pooling features."""
    feats, _ = model.forward(batch)
    a = model.mask(feats, batch).flatten(1).double()
    return row_normalise(gram(a))


def relation_score(student: Tensor, teacher: Tensor) -> Tensor:
    """``−D_rel = −‖Ĝs − Ĝt‖² / B²``."""
    return -gram_distance(student, teacher)
