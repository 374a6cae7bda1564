"""The one description of a KD pipeline, shared by the API, the search, the engine and the database.

A pipeline is student architecture × output loss × intermediate objective (+ layer mapping) ×
augmentation × training hyper-parameters (Distiller, He et al. 2021). Component names resolve through
registries (``distill.losses.LOSSES``, ``distill.objectives.OBJECTIVES``, ``distill.augment.AUGMENTATIONS``),
so a new method is one file plus its test. Combinations that make no sense are rejected here, with a message
that says what to change, so the search space can never produce them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def pipeline_key(doc: dict) -> str:
    """``Pipeline.key()`` of a pipeline's JSON document (``model_dump(mode="json")``), unvalidated."""
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def _is_none(value: object) -> bool:
    """``exclude_if`` of optional fields added later: left out of the JSON while unset, so existing
    pipelines keep their JSON and ``key()``."""
    return value is None


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class StudentArch(_Spec):
    """A student encoder: BERT, or ELECTRA-style with factorised embeddings (``embedding`` < ``hidden``: the
    embedding tables are that narrow and projected to ``hidden``); it shares the teacher's tokenizer."""

    layers: int = Field(2, ge=1, le=48, description="Transformer layers.")
    hidden: int = Field(384, ge=8, le=8192, description="Hidden size.")
    heads: int = Field(12, ge=1, le=128, description="Attention heads; must divide hidden.")
    ffn: int = Field(1536, ge=8, le=32768, description="Feed-forward (intermediate) size.")
    init: Literal["teacher-layers", "random"] = Field(
        "teacher-layers",
        description="Copy the teacher's embeddings and evenly spaced layers where shapes match (DistilBERT).",
    )
    vocab: Literal["full", "task"] = Field(
        "full",
        exclude_if=lambda v: v == "full",
        description="`task`: keep only the tokens of the task's training and validation text (WordPiece "
        "tokenizers; `distill.vocab`); `full`: the teacher's whole vocabulary.",
    )
    embedding: int | None = Field(
        None,
        ge=8,
        le=8192,
        exclude_if=_is_none,
        description="Factorised embeddings: tables of this width projected to `hidden` (absent: `hidden`).",
    )

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> StudentArch:
        if self.hidden % self.heads:
            raise ValueError(f"student hidden={self.hidden} is not divisible by heads={self.heads}")
        if self.embedding is not None and self.embedding >= self.hidden:
            raise ValueError(
                f"student embedding={self.embedding} must be below hidden={self.hidden} (omit it for none)"
            )
        return self


class LogitLossSpec(_Spec):
    """Output (logit-level) loss: total = hard_weight·CE(labels) + kd_weight·loss(student, teacher)."""

    name: str = Field("kl", description="A registered output loss (`autodistiller components`).")
    temperature: float = Field(4.0, gt=0, le=100)
    kd_weight: float = Field(1.0, ge=0, le=100)
    hard_weight: float = Field(1.0, ge=0, le=100)
    params: dict[str, float] = Field(default_factory=dict, description="Loss-specific parameters.")

    @model_validator(mode="after")
    def _known(self) -> LogitLossSpec:
        from distill.losses import LOSSES

        LOSSES.get(self.name).check_params(self.params)
        if self.name == "ce_only" and self.hard_weight == 0:
            raise ValueError("loss ce_only with hard_weight=0 trains nothing: set hard_weight > 0")
        return self


class IntermediateSpec(_Spec):
    """Intermediate-representation objective on mapped (student layer, teacher layer) pairs."""

    name: str = Field("none", description="A registered intermediate objective, or `none`.")
    features: Literal["hidden", "attention", "both"] = "hidden"
    mapping: str = Field("skip", description="A registered layer mapping (`autodistiller components`).")
    weight: float = Field(1.0, ge=0, le=1000)
    alpha: float | None = Field(None, ge=0, le=1, description="MI-α interpolation weight (mi_alpha only).")
    params: dict[str, float] = Field(default_factory=dict, description="Objective-specific parameters.")

    @field_validator("mapping")
    @classmethod
    def _known_mapping(cls, name: str) -> str:
        from distill.mapping import MAPPINGS

        MAPPINGS.get(name)  # an unknown name fails with the registry's error
        return name

    @model_validator(mode="after")
    def _consistent(self) -> IntermediateSpec:
        if self.name == "none":
            return self
        from distill.objectives import OBJECTIVES

        obj = OBJECTIVES.get(self.name)
        obj.check_params(self.params)
        wanted = {"hidden", "attention"} if self.features == "both" else {self.features}
        if not wanted <= obj.supports:
            raise ValueError(
                f"objective {self.name} works on {sorted(obj.supports)} features, not {self.features!r}"
            )
        if (self.alpha is not None) != (self.name == "mi_alpha"):
            raise ValueError(
                "alpha is the MI-α interpolation weight: set it for mi_alpha and only for mi_alpha"
            )
        return self


class Augmentation(_Spec):
    """Data augmentation: `copies` augmented copies of the training set, each op applied with prob. `p`."""

    ops: list[str] = Field(
        default_factory=list, description="Registered text augmentations, applied in order."
    )
    p: float = Field(0.1, ge=0, le=1, description="Per-word probability of each op.")
    copies: int = Field(0, ge=0, le=16, description="Augmented copies of the training set (0 = none).")
    mixup: float = Field(0.0, ge=0, le=10, description="Beta(α, α) mixup on embeddings; 0 = off.")
    mlm: str | None = Field(
        None,
        max_length=500,
        exclude_if=_is_none,
        description="Masked LM (folder or Hub id) for ops that need one (`contextual`).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Augmentation:
        from distill.augment import AUGMENTATIONS

        needs_mlm = [op for op in self.ops if getattr(AUGMENTATIONS.get(op), "uses_mlm", False)]
        if bool(self.ops) != bool(self.copies):
            raise ValueError("augmentation needs both ops and copies > 0 (or neither)")
        if bool(needs_mlm) != bool(self.mlm):
            raise ValueError("set augmentation.mlm (a masked LM) exactly when an op needs one (contextual)")
        return self


class Stage(_Spec):
    """One stage of progressive distillation: its epochs and a multiplier on each loss weight."""

    epochs: int = Field(ge=1, le=100)
    hard: float = Field(1.0, ge=0, le=1, description="Multiplier of loss.hard_weight (labels).")
    kd: float = Field(1.0, ge=0, le=1, description="Multiplier of loss.kd_weight (output distribution).")
    intermediate: float = Field(1.0, ge=0, le=1, description="Multiplier of intermediate.weight.")

    @model_validator(mode="after")
    def _trains_something(self) -> Stage:
        if self.hard == self.kd == self.intermediate == 0:
            raise ValueError("a stage with every multiplier 0 trains nothing")
        return self


def progressive_stages(inter: int, kd: int, hard: int) -> list[Stage]:
    """TinyBERT / ERNIE-Tiny order: intermediate representations only, then the teacher's output
    distribution only, then the labels (with the output loss kept)."""
    return [
        Stage(epochs=inter, hard=0, kd=0, intermediate=1),
        Stage(epochs=kd, hard=0, kd=1, intermediate=0),
        Stage(epochs=hard, hard=1, kd=1, intermediate=0),
    ]


def progressive_split(epochs: int, kd: bool = True) -> list[Stage]:
    """The search space's progressive schedule of ``epochs`` ≥ 2 epochs: the intermediate objective alone
    for the first third (half without KD), the output distribution alone for the next third (with KD and
    ≥ 3 epochs), then labels + output distribution for the rest."""
    if epochs < 2:
        raise ValueError(f"a progressive schedule needs at least 2 epochs, got {epochs}")
    if kd and epochs >= 3:
        third = epochs // 3
        return progressive_stages(third, third, epochs - 2 * third)
    first = epochs // 2
    return [
        Stage(epochs=first, hard=0, kd=0, intermediate=1),
        Stage(epochs=epochs - first, hard=1, kd=1, intermediate=0),
    ]


class Training(_Spec):
    lr: float = Field(1e-4, gt=0, le=1)
    epochs: int = Field(3, ge=1, le=100)
    batch_size: int = Field(32, ge=1, le=4096)
    max_length: int = Field(64, ge=8, le=512)
    warmup: float = Field(0.1, ge=0, le=0.5, description="Fraction of steps with linear warm-up.")
    weight_decay: float = Field(0.01, ge=0, le=1)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    stages: list[Stage] | None = Field(
        None,
        max_length=10,
        exclude_if=_is_none,
        description="Progressive distillation: stages run in order (epochs add up).",
    )

    @model_validator(mode="after")
    def _stages_cover_epochs(self) -> Training:
        if self.stages is not None and sum(st.epochs for st in self.stages) != self.epochs:
            raise ValueError(
                f"the stages' epochs add up to {sum(s.epochs for s in self.stages)}, not {self.epochs}"
            )
        return self

    def stage(self, epoch: int) -> Stage | None:
        """The stage of 1-based ``epoch`` (``None`` without stages)."""
        end = 0
        for st in self.stages or ():
            end += st.epochs
            if epoch <= end:
                return st
        return None


class TeacherMix(_Spec):
    """Several teachers: the job's teacher first, then the extra teachers given to ``distill_student``.
    Their soft targets are mixed (``distill.multi_teacher``); intermediate objectives use the first."""

    weights: list[float] = Field(min_length=2, max_length=8, description="One weight ≥ 0 per teacher.")
    mode: Literal["fixed", "confidence"] = Field(
        "fixed", description="`confidence`: per example, weights × softmax over teachers of −CE(label)."
    )

    @model_validator(mode="after")
    def _positive(self) -> TeacherMix:
        if any(w < 0 for w in self.weights) or not sum(self.weights) > 0:
            raise ValueError(f"teacher weights must be ≥ 0 with a positive sum, got {self.weights}")
        return self


class Pipeline(_Spec):
    """A complete KD pipeline. JSON round-trips exactly; ``key()`` identifies it."""

    student: StudentArch = Field(default_factory=StudentArch)
    loss: LogitLossSpec = Field(default_factory=LogitLossSpec)
    intermediate: IntermediateSpec = Field(default_factory=IntermediateSpec)
    augmentation: Augmentation = Field(default_factory=Augmentation)
    training: Training = Field(default_factory=Training)
    teachers: TeacherMix | None = Field(
        None, exclude_if=_is_none, description="Multi-teacher soft targets (absent: one teacher)."
    )

    @model_validator(mode="after")
    def _stages_have_work(self) -> Pipeline:
        for st in self.training.stages or ():
            if st.hard == st.kd == 0 and self.intermediate.name == "none":
                raise ValueError("a stage trains only the intermediate objective, but the pipeline has none")
        return self

    def key(self) -> str:
        """Stable short hash of the pipeline (same pipeline → same key)."""
        return pipeline_key(self.model_dump(mode="json"))

    @classmethod
    def no_kd(cls, **kw: object) -> Pipeline:
        """The reference student trained on labels only."""
        return cls(loss=LogitLossSpec(name="ce_only", kd_weight=0.0), **kw)

    @classmethod
    def vanilla_kd(cls, **kw: object) -> Pipeline:
        """Hinton KD: KL at T=4, equal weights, no intermediate objective."""
        return cls(loss=LogitLossSpec(name="kl", temperature=4.0, kd_weight=1.0, hard_weight=1.0), **kw)


def describe(pipeline: dict[str, Any] | BaseModel) -> str:
    """``kl(T=4) + mi_alpha/skip, eda_swap×1, 2×384`` — a pipeline in one short line."""
    if isinstance(pipeline, BaseModel):
        pipeline = pipeline.model_dump(mode="json")
    loss, inter, aug, st = (
        pipeline["loss"],
        pipeline["intermediate"],
        pipeline["augmentation"],
        pipeline["student"],
    )
    from distill.losses import uses_temperature

    text = loss["name"] + (f"(T={loss['temperature']:.3g})" if uses_temperature(loss["name"]) else "")
    if inter["name"] != "none":
        text += f" + {inter['name']}/{inter['mapping']}" + ("/attn" if inter["features"] != "hidden" else "")
    if aug["ops"]:
        text += f", {'+'.join(aug['ops'])}×{aug['copies']}"
    if aug["mixup"]:
        text += ", mixup"
    return f"{text}, {st['layers']}×{st['hidden']}"
