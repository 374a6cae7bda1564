"""The references' learning rate: a short probe per reference student, so that "gain over no KD / vanilla
KD" measures KD rather than a learning rate that leaves the student at the majority class.

The rule: train the no-KD pipeline for one epoch (on at most ``max_train`` training examples) at each
probed rate; keep the rate with the best validation macro-F1 (then accuracy; ties: the larger rate,
as a tie is mostly every rate still at the majority class after one epoch). Both
references train at that rate, for their full epochs."""

from __future__ import annotations

from typing import Any

from distill.data import TextTask
from distill.engine import distill_student
from distill.pipeline import Pipeline
from distill.teacher import Teacher

PROBE_LRS = (1e-4, 3e-4, 1e-3, 3e-3)
PROBE_RULE = (
    "no-KD student, one epoch per probed rate inside the search's lr range; best validation macro-F1, then "
    "accuracy, ties to the larger rate; both references train at it"
)


def probe_grid(low: float, high: float, lrs: tuple[float, ...] = PROBE_LRS) -> list[float]:
    """The probed rates inside ``[low, high]`` (a search space's lr range), ``high`` added when none is."""
    inside = [lr for lr in lrs if low <= lr <= high]
    return inside if inside else [high]


def probe_lr(
    task: TextTask,
    teacher: Teacher,
    reference: Pipeline,
    lrs: list[float],
    *,
    max_train: int = 2000,
    device: str | None = None,
) -> tuple[float, list[dict[str, Any]]]:
    """The rate the rule picks for ``reference``'s student, and one row per probed rate (lr, accuracy,
    macro_f1 on validation); the probes train on ``device`` (the ``device`` setting)."""
    small = task.subset(max_train, None, seed=reference.training.seed)
    rows: list[dict[str, Any]] = []
    for lr in lrs:
        training = reference.training.model_copy(update={"lr": lr, "epochs": 1})
        probe = Pipeline.no_kd(student=reference.student, training=training)
        res = distill_student(small, teacher, probe, progress=False, measure_latency=False, device=device)
        final = res.train.final
        rows.append({"lr": lr, "accuracy": final["accuracy"], "macro_f1": final["macro_f1"]})
    best = max(rows, key=lambda r: (round(r["macro_f1"], 6), round(r["accuracy"], 6), r["lr"]))
    return best["lr"], rows
