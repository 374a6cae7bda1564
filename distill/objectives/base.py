"""The intermediate-objective interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor

from distill.plugin import PluginModule
from distill.registry import Registry

if TYPE_CHECKING:
    from distill.pipeline import IntermediateSpec


@dataclass(frozen=True)
class ObjectiveContext:
    """Shapes of the two encoders; what an objective needs to build its projections."""

    student_layers: int
    teacher_layers: int
    student_dim: int
    teacher_dim: int
    student_heads: int
    teacher_heads: int
    num_labels: int = 0  # classes of the task (objectives with class-level targets, e.g. lelp)


class Objective(PluginModule):
    """Loss between one student feature and one teacher feature of a mapped layer pair.

    ``kind`` is ``"hidden"`` (features are hidden states ``(B, T, H)``; ``H`` differs between student and
    teacher, so objectives own a learned projection per student layer) or ``"attention"`` (features are
    attention probabilities ``(B, heads, T, T)``; head counts may differ). ``mask`` is the ``(B, T)``
    attention mask (1 = real token). ``s_layer`` is the student hidden-state index (0 = embeddings,
    HF convention) so an objective can keep one projection per student layer.
    """

    supports: ClassVar[frozenset[str]] = frozenset({"hidden"})

    def __init__(self, spec: IntermediateSpec, ctx: ObjectiveContext, kind: str) -> None:
        super().__init__()
        if kind not in self.supports:
            raise ValueError(f"{type(self).__name__} does not support {kind} features")
        self.spec = spec
        self.ctx = ctx
        self.kind = kind
        self.p = self.resolve(spec.params)

    def pair_loss(self, s: Tensor, t: Tensor, mask: Tensor, s_layer: int) -> Tensor:  # pragma: no cover
        raise NotImplementedError


class FittedObjective(Objective):
    """An objective with targets fitted once per training run on the teacher's cached features of the
    whole training set (class means, principal directions, ...), before the optimizer is built.

    ``fit`` gets the mapped ``(student index, teacher index)`` pairs, the teacher's cached hidden states
    (index → ``(N, T, Ht)``) and the ``(N,)`` labels, and calls ``fit_layer`` once per student index with
    the teacher [CLS] rows of its paired layer; where a mapping pairs one student index with several
    teacher layers (``emd``) it gets the rows of all of them, stacked.
    """

    def fit(self, pairs: list[tuple[int, int]], hidden: dict[int, Tensor], labels: Tensor) -> None:
        for i in sorted({i for i, _ in pairs}):
            layers = [j for k, j in pairs if k == i]
            rows = torch.cat([hidden[j][:, 0] for j in layers])
            rows = rows.to(torch.promote_types(rows.dtype, torch.float32))
            self.fit_layer(i, rows, labels.repeat(len(layers)))

    def fit_layer(self, s_layer: int, t_cls: Tensor, labels: Tensor) -> None:  # pragma: no cover
        raise NotImplementedError


OBJECTIVES: Registry[type[Objective]] = Registry("intermediate objective")
