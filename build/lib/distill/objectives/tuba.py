"""``tuba``: −TUBA mutual-information bound with a learned baseline (Poole et al. 2019)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

from distill.objectives.base import OBJECTIVES, ObjectiveContext
from distill.objectives.hidden_mse import LayerProjections, cls_vector
from distill.objectives.infonce import CriticObjective, logmeanexp_offdiag, zero_like_graph

if TYPE_CHECKING:
    from distill.pipeline import IntermediateSpec


class BaselineCriticObjective(CriticObjective):
    """A critic plus a learned log-baseline ``b_l(t) = w_l·t_CLS + c_l`` per student layer ``l``.

    ``b`` starts at 0 (baseline ``a(t) = e^{b(t)} = 1``). ``tables`` returns ``S`` with
    ``S_ij = f(s_j, t_i)`` (row = teacher, column = student: the baseline conditions on the teacher, which is
    Poole et al.'s ``y``, and their code indexes rows by ``y``) and ``b_i = b(t_i)``.
    """

    def __init__(self, spec: IntermediateSpec, ctx: ObjectiveContext, kind: str) -> None:
        super().__init__(spec, ctx, kind)
        self.baseline = LayerProjections(ctx.student_layers + 1, ctx.teacher_dim, 1)
        for lin in self.baseline.layers:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def tables(self, s: Tensor, t: Tensor, s_layer: int) -> tuple[Tensor, Tensor]:
        scores = self.scores(s, t, s_layer).T
        log_baseline = self.baseline(cls_vector(t), s_layer).squeeze(-1)
        return scores, log_baseline


@OBJECTIVES.register("tuba", "−TUBA mutual-information bound with a learned baseline on the teacher [CLS]")
class TUBAObjective(BaselineCriticObjective):
    """Poole et al.'s tractable unnormalised Barber–Agakov bound, ``a(t) = exp(b(t))``::

        I_TUBA = 1 + E_p(s,t)[f(s,t) − b(t)] − E_p(s)p(t)[exp(f(s,t) − b(t))]
               = 1 + (1/B) Σ_i (S_ii − b_i) − (1/(B(B−1))) Σ_{i≠j} exp(S_ij − b_i),     L = −I_TUBA

    with ``S_ij = f(s_j, t_i)``, ``b_i = b(t_i)`` (``tuba_lower_bound(scores, log_baseline)`` in their
    code). ``b ≡ 1`` gives NWJ. A batch of one has no negative pair; the loss is then 0.
    Defaults: ``dim = 64``, ``tau = 0.1``.
    """

    def pair_loss(self, s: Tensor, t: Tensor, mask: Tensor, s_layer: int) -> Tensor:
        scores, b = self.tables(s, t, s_layer)
        if scores.shape[0] < 2:
            return zero_like_graph(scores) + zero_like_graph(b)
        joint = (scores.diagonal() - b).mean()
        marg = logmeanexp_offdiag(scores - b[:, None]).exp()
        return -(1.0 + joint - marg)
