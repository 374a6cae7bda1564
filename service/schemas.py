"""What a job asks for: dataset, teacher and budget. Validated here once; stored as JSON in the job row."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from distill.pipeline import Pipeline, StudentArch


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetRef(_Model):
    """A text-classification dataset: built-in name, server-side path, or Hub name (see ``distill.data``)."""

    source: str = Field(..., examples=["rotten_tomatoes"])
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    max_train: int | None = Field(None, ge=10, description="Stratified subset of the training split.")
    max_val: int | None = Field(None, ge=10, description="Stratified subset of the validation split.")
    seed: int = Field(0, ge=0)


class FinetuneRef(_Model):
    epochs: int = Field(2, ge=1, le=20)
    lr: float = Field(1e-4, gt=0, le=1e-2)
    max_length: int = Field(64, ge=8, le=512)


class TeacherRef(_Model):
    """A fine-tuned teacher (``path``: HF folder or Hub id), or a base encoder fine-tuned once (``base``)."""

    path: str | None = None
    base: str | None = Field(None, description="Base encoder folder/Hub id, or `minilm` for the shipped one.")
    finetune: FinetuneRef = Field(default_factory=FinetuneRef)

    @model_validator(mode="after")
    def _one_of(self) -> TeacherRef:
        if (self.path is None) == (self.base is None):
            raise ValueError(
                "give the teacher as exactly one of `path` (fine-tuned) or `base` (to fine-tune)"
            )
        return self


class JobBudget(_Model):
    """How much to search, and what every student must respect."""

    trials: int = Field(
        12, ge=2, le=10_000, description="Trials in all, the no-KD and vanilla-KD references included."
    )
    wall_seconds: float | None = Field(None, gt=0, le=7 * 24 * 3600)
    concurrency: int = Field(1, ge=1, le=256)
    cpus_per_trial: float = Field(1.0, gt=0, le=256)
    space: Literal["default", "small"] = "default"
    max_length: int = Field(64, ge=8, le=512)
    epochs: list[int] | None = Field(
        None, description="Epoch counts the search may pick (default: preset's)."
    )
    early_stopping: bool = Field(True, description="ASHA stops poor trials early on validation accuracy.")
    objectives: list[Literal["accuracy", "params", "latency_ms"]] = Field(
        default_factory=lambda: ["accuracy"]
    )
    max_params: int | None = Field(
        None, ge=1000, description="Every student has at most this many parameters."
    )
    max_latency_ms: float | None = Field(
        None, gt=0, description="Every student's CPU latency (1×max_length)."
    )
    target_ratio: float | None = Field(None, gt=0, le=1.5, description="Wanted accuracy / teacher accuracy.")
    candidates: list[StudentArch] | None = Field(
        None, description="Student architectures (default: built-in)."
    )
    student_top_k: int = Field(
        3, ge=1, le=32, description="Students the DisWOT search hands to the pipeline search."
    )
    student_evaluations: int = Field(50, ge=2, le=5000, description="Candidates the DisWOT search scores.")
    warm_start: list[Pipeline] = Field(
        default_factory=list, description="Pipelines to evaluate first, after the two references."
    )
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _objectives(self) -> JobBudget:
        if (
            not self.objectives
            or self.objectives[0] != "accuracy"
            or len(set(self.objectives)) != len(self.objectives)
        ):
            raise ValueError(
                "objectives start with `accuracy`, then optionally `params` or `latency_ms`, each once"
            )
        return self


class JobSpec(_Model):
    dataset: DatasetRef
    teacher: TeacherRef
    budget: JobBudget = Field(default_factory=JobBudget)
