"""The trial: search parameters → ``Pipeline`` → a distilled student, measured.

This is how ``search/`` calls ``distill/``. Everything a trial needs that is read-only comes in one
``TrialInputs``, put in Ray's object store once per job and read by every trial. The teacher's outputs in
it are references to float16 files in the cache folder (``distill.feature_store``), not the tensors: each
trial reads from disk only the rows of its batches and the layers its pipeline uses, and the cache folder
must be reachable from every node, like the teacher's folder.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.data import TextTask
from distill.device import resolve_device
from distill.engine import distill_student
from distill.export import export_student
from distill.plugin import load_plugins
from distill.settings import DistillSettings
from distill.teacher import Teacher, load_teacher
from distill.teacher_outputs import TeacherOutputs
from search.space import SearchSpace


@dataclass(frozen=True)
class TrialInputs:
    task: TextTask
    teacher_dir: str
    #: for task.train at space.max_length, every layer the space may need (files: pickles as their paths)
    outputs: TeacherOutputs
    space: SearchSpace
    teacher_accuracy: float | None = None
    artifacts: str | None = None  # each trial exports its student to <artifacts>/<pipeline key>/
    #: the job's other teachers (fine-tuned folders), mixed in by pipelines with ``teachers``
    extra_teacher_dirs: tuple[str, ...] = ()
    cache_dir: str | None = None  # teacher outputs of augmented copies and extra teachers, shared by trials
    #: the user's plug-ins as the driver sees them; each trial loads them (its Ray worker may predate them)
    plugins: tuple[str, ...] = field(default_factory=lambda: DistillSettings.from_env().plugins)
    #: where the trial trains its student and runs its teachers (augmented copies, extra teachers): the
    #: ``device`` setting as a trial sees it (``search.resources.trial_device``), resolved in the trial
    device: str = "auto"


@functools.lru_cache(maxsize=9)
def _teacher(folder: str) -> Teacher:
    return load_teacher(folder)


def run_trial(
    params: dict[str, Any], shared: dict[str, Any], report: Callable[[dict], None]
) -> dict[str, Any]:
    """Train the pipeline ``params`` describe; per-epoch metrics go to ``report``; returns final metrics."""
    inputs: TrialInputs = shared["inputs"]
    load_plugins(DistillSettings(plugins=inputs.plugins))
    pipeline = inputs.space.to_pipeline(params)
    device = resolve_device(inputs.device)
    teacher = _teacher(inputs.teacher_dir).to(str(device))
    extra = [_teacher(d).to(str(device)) for d in inputs.extra_teacher_dirs] if pipeline.teachers else []
    t0 = time.perf_counter()
    result = distill_student(
        inputs.task,
        teacher,
        pipeline,
        report=lambda m: report(dict(m)),
        outputs=inputs.outputs,
        progress=False,
        extra_teachers=extra,
        cache_dir=Path(inputs.cache_dir) if inputs.cache_dir else None,
        device=str(device),
    )
    metrics: dict[str, Any] = {**result.metrics, "wall_seconds": time.perf_counter() - t0}
    metrics["pipeline_key"] = pipeline.key()
    if inputs.teacher_accuracy:
        metrics["ratio_to_teacher"] = metrics["accuracy"] / inputs.teacher_accuracy
    if inputs.artifacts:
        folder = export_student(result, teacher, inputs.task, Path(inputs.artifacts) / pipeline.key())
        metrics["student_dir"] = str(folder)
    return metrics
