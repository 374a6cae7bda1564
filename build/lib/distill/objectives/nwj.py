"""``nwj``: −NWJ mutual-information bound (Nguyen, Wainwright & Jordan 2010; Poole et al. 2019)."""

from __future__ import annotations

from torch import Tensor

from distill.objectives.base import OBJECTIVES
from distill.objectives.infonce import CriticObjective, logmeanexp_offdiag, zero_like_graph


@OBJECTIVES.register("nwj", "−NWJ (f-divergence) mutual-information bound between student and teacher [CLS]")
class NWJObjective(CriticObjective):
    """With critic scores ``F_ij = f(s_i, t_j)`` (see ``CriticObjective``); joint pairs are ``i = j``, the
    product of marginals is approximated by the off-diagonal pairs::

        I_NWJ = (1/B) Σ_i F_ii − e^{−1} · (1/(B(B−1))) Σ_{i≠j} exp(F_ij),     L = −I_NWJ

    (Poole et al.'s ``nwj_lower_bound = tuba_lower_bound(scores − 1)``). A batch of one has no negative
    pair; the loss is then 0. Defaults: ``dim = 64``, ``tau = 0.1``.
    """

    def pair_loss(self, s: Tensor, t: Tensor, mask: Tensor, s_layer: int) -> Tensor:
        f = self.scores(s, t, s_layer)
        if f.shape[0] < 2:
            return zero_like_graph(f)
        nwj = f.diagonal().mean() - (logmeanexp_offdiag(f) - 1.0).exp()
        return -nwj
