"""The references' learning-rate rule (issue 13): a tiny random-init student that lr 1e-4 leaves at the
majority class learns at the rate the probe picks."""

from __future__ import annotations

import random

import pytest

from distill.data import TextTask
from distill.engine import distill_student
from distill.lr_probe import probe_grid, probe_lr
from distill.pipeline import Pipeline, StudentArch, Training
from distill.tables import Example
from distill.teacher import load_teacher

pytestmark = pytest.mark.usefixtures("one_thread")

GOOD = ["great", "superb", "lovely", "moving", "witty", "brilliant", "charming"]
BAD = ["awful", "dull", "boring", "clumsy", "tedious", "bland", "messy"]


def _task(n_train: int = 1000, n_val: int = 100) -> TextTask:
    """Two classes told apart by their words, 65% `rotten` (the majority class)."""
    rng = random.Random(0)

    def ex(i: int) -> Example:
        label = 0 if i % 20 < 13 else 1
        words = rng.choices(BAD if label == 0 else GOOD, k=6)
        return Example(" ".join(words), label)

    return TextTask("words", ["rotten", "fresh"], [ex(i) for i in range(n_train)],
                    [ex(i) for i in range(n_val)])  # fmt: skip


def test_probe_grid_stays_inside_the_space():
    assert probe_grid(2e-5, 2e-3) == [1e-4, 3e-4, 1e-3]
    assert probe_grid(5e-6, 5e-5) == [5e-5]


def test_the_rule_makes_a_majority_class_reference_learn(tiny_teacher):
    teacher, task = load_teacher(str(tiny_teacher)), _task()
    student = StudentArch(layers=2, hidden=64, heads=2, ffn=128, init="random")
    ref = Pipeline.no_kd(student=student, training=Training(lr=1e-4, epochs=2, batch_size=32, max_length=16))
    majority = sum(e.label == 0 for e in task.validation) / len(task.validation)

    slow = distill_student(task, teacher, ref, progress=False, measure_latency=False).train.final
    assert slow["accuracy"] == pytest.approx(majority)  # lr 1e-4: the majority class only

    lr, rows = probe_lr(task, teacher, ref, [*probe_grid(2e-05, 0.002), 0.003])
    assert [r["lr"] for r in rows] == [1e-4, 3e-4, 1e-3, 3e-3] and lr > 1e-4
    fair = ref.model_copy(update={"training": ref.training.model_copy(update={"lr": lr})})
    learned = distill_student(task, teacher, fair, progress=False, measure_latency=False).train.final
    assert learned["accuracy"] >= majority + 0.2 and learned["macro_f1"] > 0.8
