"""The output-loss interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from torch import Tensor

from distill.plugin import PluginModule
from distill.registry import Registry

if TYPE_CHECKING:
    from distill.pipeline import LogitLossSpec


@dataclass(frozen=True)
class LossContext:
    """What a loss may need to build itself."""

    num_labels: int
    student_dim: int  # size of the pooled feature the student's classifier reads


@dataclass
class LogitInputs:
    """One batch as a logit-level loss sees it."""

    student_logits: Tensor  # (B, C)
    teacher_logits: Tensor  # (B, C)
    labels: Tensor  # (B,) int64 class ids (for mixup: the dominant class)
    student_pooled: Tensor  # (B, H) the feature the student's classifier reads


class LogitLoss(PluginModule):
    """KD term between student and teacher outputs. The trainer adds ``hard_weight · CE`` itself.

    ``forward`` returns a scalar; ``kd_weight`` is applied by the trainer. A loss may own parameters
    (e.g. an auxiliary head); they are trained with the student and dropped at export.
    """

    #: False for losses that do not use the teacher (so the trainer can skip teacher outputs).
    uses_teacher: ClassVar[bool] = True
    #: False for losses whose value does not depend on ``temperature`` (the space then never samples it).
    uses_temperature: ClassVar[bool] = True

    def __init__(self, spec: LogitLossSpec, ctx: LossContext) -> None:
        super().__init__()
        self.spec = spec
        self.ctx = ctx
        self.p = self.resolve(spec.params)
        self.temperature = spec.temperature

    def forward(self, x: LogitInputs) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError


LOSSES: Registry[type[LogitLoss]] = Registry("output loss")
