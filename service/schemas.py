"""The HTTP contract: the request and response bodies of the API (the job itself, what it asks for, is
``store.spec``). Validated here once; routes and the client use these models and nothing else."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from distill.pipeline import Pipeline
from store.spec import DatasetRef, Id, JobBudget, Name, StrictModel, TeacherRef, TransferRef
from store.states import JobState, TrialStatus

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a listing; ``total`` counts every item the filter matches."""

    items: list[T]
    total: int
    limit: int
    offset: int


class DatasetIn(DatasetRef):
    """Register a built-in dataset, a Hub dataset, or a file/folder under the server's import roots."""

    name: Name | None = Field(None, description="Display name (default: from the source).")
    unlabeled: bool = Field(
        False,
        description="Unlabeled transfer text (a text column only, no labels): give it to a job as "
        "`transfer_id`; the teacher labels it once and it joins every student's transfer set.",
    )

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={"examples": [{"source": "rotten_tomatoes", "max_train": 1000, "max_val": 300}]},
    )


class DatasetOut(BaseModel):
    id: str
    name: str
    kind: Literal["upload", "path", "builtin", "hub"]
    ref: DatasetRef | TransferRef
    profile: dict[str, Any] = Field(
        description="Size, classes and their counts, balance, text lengths (transfer text: rows, lengths)."
    )
    size: int | None = Field(None, description="Bytes stored (uploads).")
    created_at: datetime


class TeacherIn(TeacherRef):
    """Register a fine-tuned teacher (``path``: folder under the import roots, or Hub id), or a base encoder
    that each job fine-tunes once on its dataset (``base``; ``minilm`` is shipped)."""

    name: Name | None = None
    masked_lm: bool = Field(
        False,
        description="Register a masked LM (`path`: folder or Hub id, with its MLM head) for jobs' `mlm_id` "
        "(contextual augmentation), not a teacher.",
    )

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={"examples": [{"base": "minilm", "finetune": {"epochs": 2}}]},
    )


class TeacherAccuracy(BaseModel):
    job_id: str
    dataset_id: str | None
    dataset: str | None
    accuracy: float


class TeacherOut(BaseModel):
    id: str
    name: str
    kind: Literal["upload", "path", "hub", "base"]
    ref: TeacherRef
    profile: dict[str, Any] = Field(description="Architecture, parameters, layers, labels.")
    accuracies: list[TeacherAccuracy] = Field(
        default_factory=list, description="Validation accuracy on each job's dataset that used it."
    )
    size: int | None = None
    created_at: datetime


class JobRequest(StrictModel):
    """A distillation job: a registered dataset and teacher (their ids), and the budget and constraints."""

    dataset_id: Id
    teacher_id: Id
    budget: JobBudget = Field(default_factory=JobBudget)
    extra_teacher_ids: list[Id] = Field(
        default_factory=list,
        max_length=7,
        description="More registered fine-tuned teachers: the search may mix their soft targets with the "
        "first's (`teacher_mix`: equal weights, fixed or per-example confidence).",
    )
    mlm_id: Id | None = Field(
        None,
        description="A registered masked LM (`masked_lm: true`): the search may use contextual augmentation.",
    )
    transfer_id: Id | None = Field(
        None,
        description="Registered unlabeled transfer text (`unlabeled: true`): the teacher labels it once "
        "(soft targets) and every distilled student also trains on it.",
    )

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [
                {
                    "dataset_id": "0123456789abcdef0123456789abcdef",
                    "teacher_id": "fedcba9876543210fedcba9876543210",
                    "budget": {"trials": 12, "wall_seconds": 3600, "max_params": 16_000_000},
                }
            ]
        },
    )


class Progress(BaseModel):
    trials_done: int
    trials_budget: int | None
    fraction: float = Field(description="0–1: trials done over the budget.")
    text: str


class JobOut(BaseModel):
    id: str
    state: JobState
    dataset_id: str | None
    teacher_id: str | None
    extra_teacher_ids: list[str] = Field(default_factory=list)
    mlm_id: str | None = None
    budget: JobBudget
    progress: Progress
    best_accuracy: float | None
    best_trial_id: int | None
    teacher_accuracy: float | None
    eta_seconds: float | None = Field(description="Estimated seconds left (from the pace so far).")
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    urls: dict[str, str]


class TrialOut(BaseModel):
    id: int
    job_id: str
    number: int
    status: TrialStatus
    is_reference: Literal["no_kd", "vanilla_kd"] | None
    pipeline: Pipeline
    accuracy: float | None
    macro_f1: float | None
    params: int | None
    latency_ms: float | None
    ratio_to_teacher: float | None
    gain_over_no_kd: float | None
    wall_seconds: float | None
    started_at: datetime
    finished_at: datetime | None
    epochs: list[dict[str, Any]] | None = Field(None, description="Per-epoch metrics (trial detail only).")
    error: str | None = Field(None, description="Why the trial failed (trial detail only).")


class TeacherSummary(BaseModel):
    accuracy: float | None
    params: int | None
    latency_ms: float | None


class NeighbourOut(BaseModel):
    task: str = Field(description="A past task variant (dataset/size≤student budget).")
    distance: float = Field(description="Distance in standardised meta-feature space.")
    best_ratio: float | None = Field(None, description="Its best measured score / its teacher's (if known).")
    best_pipeline: str


class AlternativeOut(BaseModel):
    pipeline: str
    percentile: float | None = Field(
        None, description="Predicted share of a task's pipelines it beats (none for priors)."
    )


class HeldOutRegretOut(BaseModel):
    """The recommender checked on its own rows, one dataset held out at a time: mean points (score units)
    between a held-out task's best pipeline and the one picked."""

    one_shot: float = Field(description="The recommender's first pick (one model a fit, not its ensemble).")
    top3: float = Field(description="The best of its first three.")
    fixed: float = Field(description="The pipeline that did best on the other tasks, used everywhere.")
    random: float = Field(description="A uniformly random pick (its mean).")
    tasks: int


class PredictedOut(BaseModel):
    """What the recommender predicted before the job's first trial, and how the search judged it since."""

    method: Literal["model", "priors"] = Field(
        description="`model`: learned from past trials; `priors`: too few past trials, Distiller's findings."
    )
    pipeline: Pipeline
    percentile: float | None = Field(
        None, description="Predicted share of a task's pipelines the pick beats (1 = all; none for priors)."
    )
    model_version: int | None = None
    trained_on: dict[str, int] | None = Field(None, description="Trials, tasks, and trials from the priors.")
    held_out: HeldOutRegretOut | None = Field(
        None, description="How the recommender's picks did on tasks left out of its training."
    )
    nearest: list[NeighbourOut] = Field(default_factory=list, description="Nearest past tasks.")
    alternatives: list[AlternativeOut] = Field(default_factory=list, description="The runners-up.")
    measured_accuracy: float | None = Field(None, description="Its accuracy once the search trained it.")
    why: str = ""


class ImportanceOut(BaseModel):
    """Which pipeline components matter: for this job (fANOVA over its trials) and across jobs (the
    recommender's share of each component; `task` = the dataset's meta-features)."""

    job_id: str
    this_job: dict[str, float]
    trials_used: int = Field(0, description="Finished trials `this_job` was computed from.")
    caveat: str | None = Field(None, description="Why `this_job` is empty (too few trials), if it is.")
    across_jobs: dict[str, float]
    model_version: int | None = None


class HeldOut(BaseModel):
    """Accuracy on a held-out split with its 95% Wilson interval; ``point``: what one example is worth."""

    accuracy: float
    macro_f1: float | None = None
    n: int
    low: float
    high: float
    point: float | None = None


class StudentLink(BaseModel):
    trial_number: int
    roles: list[str] = Field(description="recommended, most_accurate, pareto, no_kd, vanilla_kd")
    accuracy: float | None = None
    test_accuracy: float | None = None
    params: int | None = None
    latency_ms: float | None = None
    url: str
    formats: list[str] = Field(
        default_factory=lambda: ["safetensors"],
        description="download formats of this student: `safetensors`, and `onnx`, `onnx-int8` when its ONNX "
        "export succeeded (`url` + `&format=…`)",
    )
    sizes: dict[str, int] | None = Field(None, description="size on disk of each format, bytes")


class RecommendationOut(BaseModel):
    """The pipeline the service recommends now, with its score, its cost against the teacher, and why."""

    job_id: str
    available: bool
    source: Literal["predicted", "measured"] | None = Field(
        None, description="`predicted` before trials (from past jobs), `measured` from this job's trials."
    )
    final: bool = Field(False, description="True once the job has finished: this is the exported student.")
    pipeline: Pipeline | None = None
    trial_id: int | None = None
    accuracy: float | None = None
    ratio_to_teacher: float | None = None
    params: int | None = None
    latency_ms: float | None = None
    teacher: TeacherSummary | None = None
    size_ratio: float | None = Field(None, description="Student parameters / teacher parameters.")
    speedup: float | None = Field(
        None,
        description="Teacher CPU latency / student CPU latency: timed side by side once the job has "
        "finished (settings in `speed`), else from separate measurements.",
    )
    speed: dict[str, Any] | None = Field(
        None, description="The side-by-side timing: teacher_ms, student_ms, threads, batch, seq_len, runs."
    )
    trial_number: int | None = None
    test: HeldOut | None = Field(None, description="This student on the held-out test split (after the job).")
    teacher_test: HeldOut | None = Field(None, description="The teacher on the same test split.")
    references_test: dict[str, HeldOut] = Field(
        default_factory=dict, description="The no-KD and vanilla-KD references on the test split."
    )
    target: dict[str, Any] | None = Field(
        None, description="`target_ratio`'s verdict: ratio, by, bar, met, trial, text."
    )
    students: list[StudentLink] = Field(
        default_factory=list, description="Every downloadable student (the answer, the Pareto front, refs)."
    )
    why: str = ""
    predicted: PredictedOut | None = Field(
        None, description="The recommender's prediction from before the first trial, kept for comparison."
    )


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    database: str
