"""``trg``: token relationship graph distillation (token–token cosine-similarity graphs)."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from distill.objectives.base import OBJECTIVES, Objective
from distill.objectives.hidden_mse import pair_mask


@OBJECTIVES.register("trg", "Token relationship graph: match per-example token cosine-similarity graphs")
class TRGObjective(Objective):
    """Token relationship graph. Per example ``b`` the graph is ``G_b[p, q] = cos(x_bp, x_bq)`` over its
    tokens; student and teacher graphs are ``T × T`` whatever the widths, so no projection is needed::

        L = Σ_{b,p,q} m_bp m_bq (G^s_b[p,q] − G^t_b[p,q])² / Σ_{b,p,q} m_bp m_bq

    (mean squared difference over all real token pairs of the batch).

    Paper vs ours: TRG (Knowledge Distillation via Token-level Relationship Graph, 2024, vision
    transformers) builds a graph whose nodes are the tokens of the batch's instances, distils its edges with
    a graph-level relational loss, and adds a token-wise "contextual loss" for each instance's inner context
    (its exact sampling and losses are not in the abstract). We keep only the per-example dense token
    cosine graph matched by MSE: no cross-instance edges, no separate contextual term (combine with
    ``hidden_mse`` for a node-level term).
    """

    supports: ClassVar[frozenset[str]] = frozenset({"hidden"})
    defaults: ClassVar[dict[str, float]] = {}

    def pair_loss(self, s: Tensor, t: Tensor, mask: Tensor, s_layer: int) -> Tensor:
        s_hat = F.normalize(s.float(), dim=-1, eps=1e-8)
        t_hat = F.normalize(t.float(), dim=-1, eps=1e-8)
        g_s = s_hat @ s_hat.transpose(1, 2)
        g_t = t_hat @ t_hat.transpose(1, 2)
        pm = pair_mask(mask)[:, 0]
        return ((g_s - g_t).pow(2) * pm).sum() / pm.sum().clamp_min(1.0)
