"""The stages of one job before its search, each a function of the claimed job (``JobRun``): profile the
data and teacher, choose the student candidates, build the space, predict pipelines, share the teacher's
outputs with every trial."""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from distill.assets import minilm_dir
from distill.augment.contextual import load_masked_lm
from distill.data import TextTask, check_label_compatibility, load_subset
from distill.encoding import encode_fixed
from distill.engine import student_vocab
from distill.finetune import FinetuneConfig, finetune_teacher
from distill.lr_probe import PROBE_RULE, probe_grid, probe_lr
from distill.pipeline import Pipeline, StudentArch
from distill.profile import dataset_profile, teacher_profile
from distill.tables import DataError
from distill.teacher import Teacher, load_teacher
from distill.teacher_outputs import teacher_outputs
from distill.transfer import attach_transfer
from search.candidates import STUDENT_PROXY, feasible_candidates, search_students
from search.metafeatures import meta_features
from search.recommender import candidate_pipelines
from search.resources import trial_device
from search.space import SearchSpace
from search.trainable import TrialInputs
from store import results
from store.models import Job
from store.settings import Settings
from store.spec import JobSpec
from store.states import JobState
from workers import recommend

log = logging.getLogger(__name__)


@dataclass
class JobRun:
    """A claimed job as its stages see it: its spec, where to write, and how to report its state (``state``
    raises ``JobAborted`` when the job was cancelled or taken over)."""

    db: Any
    settings: Settings
    job: Job
    spec: JobSpec
    abort: threading.Event
    state: Callable[..., None]  # (JobState, progress_text=..., **columns)
    on_recommendation: Callable[[str], None] | None = None
    search_started: float | None = None  # time.time() of the search's start: the wall budget counts from it

    @property
    def artifacts(self) -> Path:
        return self.settings.artifacts / self.job.id


@dataclass
class Profiled:
    task: TextTask
    teacher: Teacher
    teacher_profile: dict[str, Any]
    meta: dict[str, float]
    extra_teachers: list[Teacher] = dataclasses.field(default_factory=list)


def load_job_task(spec: JobSpec) -> TextTask:
    """The job's dataset, with its unlabeled transfer text (``spec.transfer``) when it has some."""
    task = load_subset(**spec.dataset.model_dump())
    return attach_transfer(task, **spec.transfer.model_dump()) if spec.transfer else task


def resolve_teacher(
    spec: JobSpec, task: TextTask, settings: Settings, report: Callable[[dict], None] | None = None
) -> Teacher:
    """The job's teacher: loaded, or fine-tuned once from its base (``report`` hears every epoch)."""
    ref = spec.teacher
    if ref.path:
        return load_teacher(ref.path)
    base = minilm_dir() if ref.base == "minilm" else ref.base
    cfg = FinetuneConfig(epochs=ref.finetune.epochs, lr=ref.finetune.lr, max_length=ref.finetune.max_length)
    return finetune_teacher(base, task, settings.teachers, cfg, progress=False, log=log.info, report=report)


def finetune_progress(run: JobRun, epochs: int) -> Callable[[dict], None]:
    """Teacher fine-tuning as a stage of its own: each epoch's accuracy, the time so far and the ETA."""
    t0 = time.monotonic()
    run.state(JobState.PROFILING, progress_text=f"fine-tuning the teacher: epoch 1/{epochs} running")

    def report(m: dict) -> None:
        done, spent = int(m.get("epoch", 0)), time.monotonic() - t0
        eta = spent / max(1, done) * max(0, epochs - done)
        run.state(
            JobState.PROFILING,
            progress_text=f"fine-tuning the teacher: epoch {done}/{epochs} done (validation accuracy "
            f"{m.get('accuracy', float('nan')):.4f}), {spent:.0f} s so far, about {eta:.0f} s left",
        )

    return report


def profile(run: JobRun) -> Profiled:
    """Load the data and the teacher (fine-tuning it, a stage with progress, when it is a base); store the
    dataset, teacher and meta-feature profiles."""
    b = run.spec.budget
    run.state(JobState.PROFILING, progress_text="loading the data")
    task = load_job_task(run.spec)
    report = None
    if run.spec.teacher.base:
        report = finetune_progress(run, run.spec.teacher.finetune.epochs)
    else:
        run.state(JobState.PROFILING, progress_text="loading the teacher")
    teacher = resolve_teacher(run.spec, task, run.settings, report).to(run.settings.device)
    run.state(JobState.PROFILING, progress_text="measuring the teacher on the validation split")
    t_prof = teacher_profile(teacher, task, b.max_length)
    results.add_profile(run.db, "dataset", dataset_profile(task), job_id=run.job.id)
    results.add_profile(run.db, "teacher", t_prof, job_id=run.job.id)
    meta = meta_features(
        task, teacher, teacher_accuracy=t_prof["accuracy"], max_length=b.max_length, max_params=b.max_params
    )
    results.add_profile(run.db, "meta", meta, job_id=run.job.id)
    return Profiled(task, teacher, t_prof, meta, extra_models(run, task))


def extra_models(run: JobRun, task: TextTask) -> list[Teacher]:
    """The job's extra teachers (each must serve the dataset's labels) and a check that its masked LM loads
    with its head; both fail the job with a clear error before any trial."""
    extra = []
    for i, ref in enumerate(run.spec.extra_teachers, 1):
        run.state(JobState.PROFILING, progress_text=f"loading extra teacher {i}")
        teacher = load_teacher(ref.path or "").to(run.settings.device)
        try:
            check_label_compatibility(task, teacher.labels, len(teacher.labels))
        except DataError as e:
            raise DataError(f"extra teacher {i} does not serve the dataset: {e}") from None
        extra.append(teacher)
    if run.spec.mlm:
        run.state(JobState.PROFILING, progress_text="loading the masked LM (contextual augmentation)")
        load_masked_lm(run.spec.mlm)
    return extra


def students(run: JobRun, prof: Profiled) -> list[StudentArch]:
    """The job's given candidates within the budget, or the DisWOT student search's picks (every scored
    candidate is stored), plus the students of the user's warm starts."""
    b = run.spec.budget
    if b.candidates:
        pruned = any(a.vocab == "task" for a in b.candidates)
        candidates, rows = feasible_candidates(
            b.candidates, prof.teacher.model, max_params=b.max_params, max_latency_ms=b.max_latency_ms,
            seq_len=b.max_length, vocab=student_vocab(prof.task, prof.teacher) if pruned else None,
        )  # fmt: skip
        doc: dict[str, Any] = {"source": "given", "candidates": rows}
    else:
        run.state(JobState.PROFILING, progress_text="DisWOT student search (training-free)")
        candidates, rows, rate = search_students(
            prof.teacher, prof.task, max_params=b.max_params, max_latency_ms=b.max_latency_ms,
            seq_len=b.max_length, top_k=b.student_top_k, evaluations=b.student_evaluations, seed=b.seed,
        )  # fmt: skip
        doc = {"source": "diswot", "proxy": STUDENT_PROXY, "per_second": rate, "candidates": rows}
    results.add_profile(run.db, "candidates", doc, job_id=run.job.id)
    # a warm-start pipeline must be in the space: its student joins the candidates
    candidates += [p.student for p in b.warm_start if p.student not in candidates]
    if not candidates:
        smallest = min((r["params"] for r in rows), default=0)
        raise ValueError(
            f"no student candidate meets the budget (max_params={b.max_params}, "
            f"max_latency_ms={b.max_latency_ms}); the smallest has {smallest:,} params"
        )
    return candidates


def build_space(run: JobRun, candidates: list[StudentArch]) -> SearchSpace:
    """The preset space over the candidates, with the job's sequence length, seed and epoch choices."""
    b = run.spec.budget
    space = (SearchSpace.small if b.space == "small" else SearchSpace.default)(candidates)
    fixed: dict[str, Any] = {"max_length": b.max_length, "seed": b.seed}
    overrides: dict[str, Any] = {}
    if b.epochs:  # the references train for the longest
        overrides["epochs"], fixed["epochs"] = sorted(set(b.epochs)), max(b.epochs)
    if run.spec.extra_teachers:
        overrides["extra_teachers"] = len(run.spec.extra_teachers)
    if run.spec.mlm:
        overrides.update(mlm=run.spec.mlm, augmentations=[*space.augmentations, ("contextual",)])
    return dataclasses.replace(space, training=space.training.model_copy(update=fixed), **overrides)


def reference_lr(run: JobRun, prof: Profiled, space: SearchSpace) -> SearchSpace:
    """The references' learning rate by the probe's rule (``distill.lr_probe``), stored as the ``lr_probe``
    profile; a resumed job re-uses the stored rate, so its references keep their pipeline keys."""
    stored = results.get_profile(run.db, "lr_probe", job_id=run.job.id)
    if stored is None:
        run.state(JobState.PROFILING, progress_text="probing the references' learning rate")
        ref = space.reference_pipelines()["no_kd"]
        lrs = probe_grid(space.lr.low, space.lr.high)
        lr, rows = probe_lr(prof.task, prof.teacher, ref, lrs, device=run.settings.device)
        doc = {"lr": lr, "rows": rows, "student": ref.student.model_dump(), "rule": PROBE_RULE}
        stored = results.add_profile(run.db, "lr_probe", doc, job_id=run.job.id)
    training = space.training.model_copy(update={"lr": float(stored.data["lr"])})
    return dataclasses.replace(space, training=training)


def predict(run: JobRun, meta: dict[str, float], space: SearchSpace) -> list[Pipeline]:
    """Predict the best pipelines for the job before its first trial (recorded as the job's predicted
    recommendation), best first: the search's warm starts."""
    b = run.spec.budget
    run.state(JobState.PROFILING, progress_text="recommending pipelines from past jobs")
    prediction = recommend.predict(
        run.db, run.settings, run.job.id, meta, space, candidate_pipelines(space, seed=b.seed),
        k=max(3, b.warm_start_k),
    )  # fmt: skip
    top = prediction.pipelines[0] if prediction.pipelines else space.reference_pipelines()["vanilla_kd"]
    if results.latest_recommendation(run.db, run.job.id, source="predicted") is None:
        results.add_recommendation(
            run.db, run.job.id, top, "predicted", why=prediction.why,
            details=prediction.details,
        )  # fmt: skip
    if run.on_recommendation is not None:
        run.on_recommendation(run.job.id)
    return prediction.pipelines


def outputs_progress(run: JobRun, hidden: set[int], attention: set[int]) -> Callable[[int, int], None]:
    """The teacher's outputs as a stage with progress: examples done, at most every 2 seconds."""
    t0 = last = time.monotonic()
    what = f"logits, {len(hidden)} hidden-state and {len(attention)} attention layers"

    def report(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < 2 and done < total:
            return
        last = now
        eta = (now - t0) / done * (total - done)
        run.state(
            JobState.PROFILING,
            progress_text=f"computing the teacher's outputs ({what}): {done:,}/{total:,} examples, "
            f"about {eta:.0f} s left",
        )

    return report


def trial_inputs(run: JobRun, prof: Profiled, space: SearchSpace) -> TrialInputs:
    """The teacher's outputs on the training split and the transfer text, once, for every layer the space may
    read: what every trial shares."""
    b = run.spec.budget
    run.state(
        JobState.PROFILING,
        progress_text="computing the teacher's outputs once for all trials",
        teacher_accuracy=prof.teacher_profile["accuracy"],
    )
    task, teacher = prof.task, prof.teacher
    hidden, attention = space.teacher_layers_needed(teacher.num_layers)
    train = encode_fixed(task.transfer_set, teacher.tokenizer, b.max_length, torch.arange(task.num_labels))
    enc = {k: getattr(train, k) for k in ("input_ids", "attention_mask", "token_type_ids")}
    outputs = teacher_outputs(
        teacher, enc, hidden_layers=hidden, attention_layers=attention,
        cache_dir=run.settings.teacher_outputs, progress=sys.stderr.isatty(),  # a bar in a terminal
        on_batch=outputs_progress(run, hidden, attention),
    )  # fmt: skip
    return TrialInputs(
        task, str(teacher.model.name_or_path), outputs, space, prof.teacher_profile["accuracy"],
        str(run.artifacts / "trials"), cache_dir=str(run.settings.teacher_outputs),
        extra_teacher_dirs=tuple(str(t.model.name_or_path) for t in prof.extra_teachers),
        device=trial_device(run.settings.device),
    )  # fmt: skip
