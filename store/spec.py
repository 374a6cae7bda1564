"""The job contract: what a job asks for (dataset, teacher, budget). The API validates it, the job row stores
it as JSON, and the worker reads it back; nothing here knows HTTP."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from distill.device import check_gpu_share
from distill.pipeline import Pipeline, StudentArch


class StrictModel(BaseModel):
    """Unknown fields and NaN/inf are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# Printable text: no control characters (PostgreSQL refuses NUL; nothing legitimate needs them).
Text = Annotated[str, StringConstraints(min_length=1, max_length=1000, pattern=r"^[^\x00-\x1f\x7f]+$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
Id = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]


class DatasetRef(StrictModel):
    """A text-classification dataset: built-in name, server-side path, or Hub name (see ``distill.data``).
    Held-out splits: a validation / test file, else a split column, else seeded stratified fractions."""

    source: Text = Field(..., examples=["rotten_tomatoes"])
    name: Name | None = Field(None, description="The dataset's name (default: its file name).")
    validation_source: Text | None = Field(None, description="A separate validation file (same columns).")
    test_source: Text | None = Field(None, description="A separate test file (same columns).")
    split_column: Text | None = Field(None, description="A column of train / validation / test per row.")
    validation_fraction: float = Field(0.1, gt=0, lt=1, description="Held out for selection when not given.")
    test_fraction: float = Field(
        0.1, ge=0, lt=1, description="Held out for the final test when not given (0: no test split)."
    )
    shown_as: dict[Text, Name] | None = Field(
        None, description="File → the name errors show (an upload's own file name, not the server path)."
    )
    text_column: Text = "text"
    text_pair_column: Text | None = None
    label_column: Text = "label"
    max_train: int | None = Field(None, ge=10, description="Stratified subset of the training split.")
    max_val: int | None = Field(None, ge=10, description="Stratified subset of the validation split.")
    seed: int = Field(0, ge=0, le=2**32 - 1)


class TransferRef(StrictModel):
    """Unlabeled transfer text: a file (the dataset formats) with a text column (and a pair column for
    sentence-pair tasks); the teacher labels it once and it joins every student's transfer set."""

    unlabeled: Literal[True] = True
    source: Text
    name: Name | None = None
    shown_as: dict[Text, Name] | None = Field(None, description="File → the name errors show.")
    text_column: Text = "text"
    text_pair_column: Text | None = None


class FinetuneRef(StrictModel):
    epochs: int = Field(2, ge=1, le=20)
    lr: float = Field(1e-4, gt=0, le=1e-2)
    max_length: int = Field(64, ge=8, le=512)


class TeacherRef(StrictModel):
    """A fine-tuned teacher (``path``: HF folder or Hub id), or a base encoder fine-tuned once (``base``)."""

    path: Text | None = None
    base: Text | None = Field(
        None, description="Base encoder folder/Hub id, or `minilm` for the shipped one."
    )
    finetune: FinetuneRef = Field(default_factory=FinetuneRef)

    @model_validator(mode="after")
    def _one_of(self) -> TeacherRef:
        if (self.path is None) == (self.base is None):
            raise ValueError(
                "give the teacher as exactly one of `path` (fine-tuned) or `base` (to fine-tune)"
            )
        return self


class JobBudget(StrictModel):
    """How much to search, and what every student must respect."""

    trials: int = Field(
        12, ge=2, le=10_000, description="Trials in all, the no-KD and vanilla-KD references included."
    )
    wall_seconds: float | None = Field(
        None,
        ge=30,
        le=7 * 24 * 3600,
        description="Seconds for the search (its trials), counted from its first trial, at least 30: teacher "
        "fine-tuning (bounded by its epochs) and the final test are outside it.",
    )
    concurrency: int = Field(1, ge=1, le=256)
    cpus_per_trial: float = Field(1.0, gt=0, le=256)
    gpus_per_trial: float | None = Field(
        None,
        gt=0,
        le=64,
        description="GPUs each trial asks for where the cluster has GPUs: a fraction (0 < x ≤ 1) lets "
        "several small students share one GPU (0.25: four a GPU, and the worker runs as many at once as the "
        "GPUs hold), or a whole number ≥ 1. Default: one GPU a trial. Ignored on a CPU-only cluster.",
    )
    space: Literal["default", "small"] = "default"
    max_length: int = Field(64, ge=8, le=512)
    epochs: list[Annotated[int, Field(ge=1, le=100)]] | None = Field(
        None, min_length=1, max_length=20, description="Epoch counts the search may pick (default: preset's)."
    )
    early_stopping: bool = Field(True, description="ASHA stops poor trials early on validation accuracy.")
    objectives: list[Literal["accuracy", "params", "latency_ms"]] = Field(
        default_factory=lambda: ["accuracy"]
    )
    max_params: int | None = Field(
        None,
        ge=100_000,
        description="Every student has at most this many parameters (the DisWOT search also offers "
        "students with a pruned vocabulary and factorised embeddings, which reach far smaller sizes).",
    )
    max_latency_ms: float | None = Field(
        None, ge=0.1, le=600_000, description="Every student's CPU latency (1×max_length)."
    )
    target_ratio: float | None = Field(
        None,
        gt=0,
        le=1.5,
        description="Wanted accuracy / teacher accuracy: the answer is the smallest (or "
        "`target_by`: fastest) student that reaches it; the search then also minimises that measure.",
    )
    target_by: Literal["params", "latency_ms"] = "params"
    candidates: list[StudentArch] | None = Field(
        None, description="Student architectures (default: built-in)."
    )
    student_top_k: int = Field(
        3, ge=1, le=32, description="Students the DisWOT search hands to the pipeline search."
    )
    student_evaluations: int = Field(50, ge=2, le=5000, description="Candidates the DisWOT search scores.")
    warm_start: list[Pipeline] = Field(
        default_factory=list,
        description="Pipelines to train first and to the end, after the two references.",
    )
    warm_start_k: int = Field(
        3,
        ge=0,
        le=32,
        description="Pipelines the recommender predicts best (from past jobs, or priors) that the search "
        "trains to the end right after the references and `warm_start`; 0: none.",
    )
    test_every: bool = Field(
        False,
        description="Also measure every completed trial's student on the test split (the evaluation's "
        "`every_trial`), not only the kept ones: test scores for a meta-dataset; one test pass per trial.",
    )
    seed: int = Field(0, ge=0, le=2**32 - 1)

    @model_validator(mode="after")
    def _gpus(self) -> JobBudget:
        check_gpu_share(self.gpus_per_trial)
        return self

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


class JobSpec(StrictModel):
    """What a job searches: the dataset, the teacher, the budget; optionally more teachers whose soft targets
    the search may mix in (``teacher_mix``), and a masked LM that offers contextual augmentation."""

    dataset: DatasetRef
    teacher: TeacherRef
    budget: JobBudget = Field(default_factory=JobBudget)
    extra_teachers: list[TeacherRef] = Field(
        default_factory=list, max_length=7, description="Fine-tuned teachers (`path`) to mix with the first."
    )
    mlm: Text | None = Field(None, description="A masked LM (folder or Hub id) for `contextual` augmentation")
    transfer: TransferRef | None = Field(
        None, description="Unlabeled text the teacher labels (soft targets) for every student's transfer set."
    )

    @model_validator(mode="after")
    def _consistent(self) -> JobSpec:
        if any(t.path is None for t in self.extra_teachers):
            raise ValueError("an extra teacher must be fine-tuned (given by `path`), not a base to fine-tune")
        for p in self.budget.warm_start:
            if p.augmentation.mlm is not None and p.augmentation.mlm != self.mlm:
                raise ValueError("a warm-start pipeline's masked LM (augmentation.mlm) is not the job's mlm")
            if p.teachers is not None and len(p.teachers.weights) != 1 + len(self.extra_teachers):
                raise ValueError(
                    f"a warm-start pipeline mixes {len(p.teachers.weights)} teachers; the job has "
                    f"{1 + len(self.extra_teachers)}"
                )
        return self
