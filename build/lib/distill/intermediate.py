"""The intermediate-representation term of the KD loss: one objective over the mapped layer pairs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from distill.mapping import attention_pairs, emd_weights, layer_pairs
from distill.objectives import OBJECTIVES, Objective, ObjectiveContext

if TYPE_CHECKING:
    from distill.pipeline import IntermediateSpec


class IntermediateLoss(nn.Module):
    """``spec.name`` applied to the layer pairs of ``spec.mapping``, on hidden states and/or attentions.

    For each feature kind ``k`` with pairs ``P_k`` and per-pair losses ``ℓ_ij``::

        fixed mappings:  L_k = (1/|P_k|) Σ_{(i,j)∈P_k} ℓ_ij
        emd:             L_k = Σ_ij W_ij ℓ_ij,   W = emd_weights(stop_grad(ℓ))   (n_student × n_teacher)

    and ``forward`` returns ``Σ_k L_k`` (hidden + attention for ``features="both"``), *unweighted*: the
    trainer multiplies by ``spec.weight``. ``teacher_hidden_layers`` / ``teacher_attention_layers`` are the
    teacher indices ``forward`` reads, so the trainer needs to cache only those.
    """

    def __init__(self, spec: IntermediateSpec, ctx: ObjectiveContext) -> None:
        super().__init__()
        if spec.name == "none":
            raise ValueError("intermediate objective `none` has no loss: do not build an IntermediateLoss")
        cls = OBJECTIVES.get(spec.name)
        kinds = ["hidden", "attention"] if spec.features == "both" else [spec.features]
        self.spec = spec
        self.ctx = ctx
        self.objectives = nn.ModuleDict({kind: cls(spec, ctx, kind) for kind in kinds})
        pairs = layer_pairs(spec.mapping, ctx.student_layers, ctx.teacher_layers)
        self.hidden_pairs: list[tuple[int, int]] = pairs if "hidden" in kinds else []
        self.attention_pairs: list[tuple[int, int]] = attention_pairs(pairs) if "attention" in kinds else []
        self.teacher_hidden_layers: list[int] = sorted({j for _, j in self.hidden_pairs})
        self.teacher_attention_layers: list[int] = sorted({j for _, j in self.attention_pairs})

    def _combine(self, losses: list[Tensor]) -> Tensor:
        stacked = torch.stack(losses)
        if self.spec.mapping != "emd":
            return stacked.mean()
        costs = stacked.view(self.ctx.student_layers, self.ctx.teacher_layers)
        weights = emd_weights(costs.detach())
        return (weights * costs).sum()

    def forward(
        self,
        s_hidden: tuple[Tensor, ...],
        t_hidden: dict[int, Tensor],
        s_attn: tuple[Tensor, ...] | None,
        t_attn: dict[int, Tensor] | None,
        mask: Tensor,
    ) -> Tensor:
        """The unweighted intermediate loss of one batch.

        ``s_hidden``: HF ``hidden_states`` (0 = embeddings); ``t_hidden``: teacher index → ``(B, T, Ht)``;
        ``s_attn``: HF ``attentions`` (0-based layers); ``t_attn``: teacher layer → ``(B, h, T, T)``;
        ``mask``: ``(B, T)`` attention mask. Teacher tensors are cast to the student's dtype and device.
        """
        total: Tensor | None = None
        if self.hidden_pairs:
            obj: Objective = self.objectives["hidden"]
            losses = [
                obj.pair_loss(s_hidden[i], _like(t_hidden[j], s_hidden[i]), mask, i)
                for i, j in self.hidden_pairs
            ]
            total = self._combine(losses)
        if self.attention_pairs:
            if s_attn is None or t_attn is None:
                raise ValueError(
                    f"intermediate objective {self.spec.name} on attention features needs student and "
                    "teacher attentions (run both models with output_attentions=True)"
                )
            obj = self.objectives["attention"]
            losses = [
                obj.pair_loss(s_attn[i], _like(t_attn[j], s_attn[i]), mask, i + 1)
                for i, j in self.attention_pairs
            ]
            term = self._combine(losses)
            total = term if total is None else total + term
        assert total is not None  # at least one feature kind always has pairs
        return total


def _like(t: Tensor, s: Tensor) -> Tensor:
    return t.to(device=s.device, dtype=s.dtype)
