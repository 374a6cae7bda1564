"""Unlabeled transfer text (issue 16): rows with label ``UNLABELED`` get the teacher's targets, the hard loss
ignores them, every output loss and objective trains on them, and a student without KD never sees them."""

from __future__ import annotations

import math
import random

import pytest
import torch

from distill.data import TextTask
from distill.encoding import encode_fixed
from distill.engine import distill_student, student_vocab, training_data
from distill.losses import LOSSES
from distill.multi_teacher import teacher_weights
from distill.objectives import OBJECTIVES
from distill.pipeline import Augmentation, IntermediateSpec, LogitLossSpec, Pipeline, StudentArch, Training
from distill.student import build_student
from distill.tables import UNLABELED, Example
from distill.teacher import load_teacher
from distill.trainer import DistillLoss, hard_loss

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = StudentArch(layers=1, hidden=64, heads=2, ffn=128)
TRAIN = Training(lr=1e-3, epochs=1, batch_size=8, max_length=16, seed=0)
GOOD = ["great", "superb", "lovely", "moving", "witty"]
BAD = ["awful", "dull", "boring", "clumsy", "tedious"]


def _task(n_train: int = 24, n_transfer: int = 16) -> TextTask:
    rng = random.Random(0)

    def ex(i: int, label: int) -> Example:
        return Example(" ".join(rng.choices(BAD if i % 2 == 0 else GOOD, k=5)), label)

    transfer = [ex(i, UNLABELED) for i in range(n_transfer)]
    transfer.append(Example("zeppelin xylophone quixotic", UNLABELED))  # words only the transfer text has
    return TextTask(
        "words", ["rotten", "fresh"], [ex(i, i % 2) for i in range(n_train)],
        [ex(i, i % 2) for i in range(8)], transfer=transfer,
    )  # fmt: skip


def _ce(logits: list[float], y: int) -> float:
    return -(logits[y] - math.log(sum(math.exp(z) for z in logits)))


def test_hard_loss_is_the_mean_over_labelled_rows_only():
    logits = [[2.0, 0.5, -1.0], [0.0, 1.0, 3.0], [1.0, 1.0, 1.0], [-2.0, 4.0, 0.5]]
    labels = torch.tensor([0, UNLABELED, 2, UNLABELED])
    targets = torch.nn.functional.one_hot(labels.clamp_min(0), 3).double() * (labels >= 0)[:, None]
    got = hard_loss(torch.tensor(logits, dtype=torch.float64), targets)
    assert got.item() == pytest.approx((_ce(logits[0], 0) + _ce(logits[2], 2)) / 2, rel=1e-12)
    none = hard_loss(torch.tensor(logits, dtype=torch.float64), torch.zeros(4, 3, dtype=torch.float64))
    assert none.item() == 0.0  # a batch of transfer rows only: no hard term


def test_encoding_keeps_unlabeled_rows_unlabeled(tiny_teacher):
    tok = load_teacher(str(tiny_teacher)).tokenizer
    rows = [Example("a fine film", 0), Example("no label", UNLABELED), Example("a bad one", 1)]
    data = encode_fixed(rows, tok, 16, torch.tensor([1, 0]))  # the teacher's order is reversed
    assert data.labels.tolist() == [1, UNLABELED, 0]


def test_transfer_rows_get_the_teachers_targets_and_no_kd_ignores_them(tiny_teacher):
    teacher, task = load_teacher(str(tiny_teacher)), _task()
    kd = Pipeline.vanilla_kd(student=TINY, training=TRAIN)
    student, _ = build_student(TINY, teacher.model, seed=0)
    data = training_data(task, teacher, kd, DistillLoss(kd, student, teacher.model.config))
    n, m = len(task.train), len(task.transfer)
    assert len(data) == n + m and data.labels[n:].eq(UNLABELED).all() and data.labels[:n].ge(0).all()
    with torch.no_grad():  # the cached targets are the teacher's own logits on the transfer text
        own = teacher.model(
            input_ids=data.input_ids[n:], attention_mask=data.attention_mask[n:],
            token_type_ids=data.token_type_ids[n:],
        ).logits  # fmt: skip
    assert torch.allclose(data.teacher.logits[n:].float(), own, atol=1e-2)

    no_kd = Pipeline.no_kd(student=TINY, training=TRAIN)
    plain = training_data(task, teacher, no_kd, DistillLoss(no_kd, student, teacher.model.config))
    assert len(plain) == n and plain.teacher is None

    aug = kd.model_copy(update={"augmentation": Augmentation(ops=["eda_swap"], p=0.2, copies=1)})
    more = training_data(task, teacher, aug, DistillLoss(aug, student, teacher.model.config))
    assert len(more) == 2 * n + m  # copies of the labelled rows only; the transfer rows once
    assert more.labels[n + m :].ge(0).all()


def test_the_pruned_vocabulary_counts_the_transfer_text(tiny_teacher):
    teacher, task = load_teacher(str(tiny_teacher)), _task()
    without = student_vocab(TextTask(task.name, task.labels, task.train, task.validation), teacher)
    with_transfer = student_vocab(task, teacher)
    ids = teacher.tokenizer("zeppelin xylophone quixotic", add_special_tokens=False)["input_ids"]
    kept = set(with_transfer.kept.tolist())
    assert set(ids) <= kept and not set(ids) <= set(without.kept.tolist())


@pytest.mark.parametrize("name", [n for n in LOSSES.names() if n != "ce_only"])
def test_every_output_loss_trains_with_transfer_rows(tiny_teacher, name):
    teacher = load_teacher(str(tiny_teacher))
    pipe = Pipeline(student=TINY, training=TRAIN, loss=LogitLossSpec(name=name, temperature=2.0))
    res = distill_student(_task(), teacher, pipe, progress=False, measure_latency=False)
    assert math.isfinite(res.train.final["train_loss"])


@pytest.mark.parametrize("name", [n for n in OBJECTIVES.names() if n != "none"])
def test_every_objective_trains_with_transfer_rows_and_mixup(tiny_teacher, name):
    teacher = load_teacher(str(tiny_teacher))
    features = "hidden" if "hidden" in OBJECTIVES.get(name).supports else "attention"
    pipe = Pipeline(
        student=TINY, training=TRAIN, loss=LogitLossSpec(name="kl", temperature=2.0),
        intermediate=IntermediateSpec(
            name=name, features=features, mapping="last", weight=0.1,
            alpha=0.5 if name == "mi_alpha" else None,
        ),
        augmentation=Augmentation(mixup=0.4),
    )  # fmt: skip
    res = distill_student(_task(), teacher, pipe, progress=False, measure_latency=False)
    assert math.isfinite(res.train.final["train_loss"])


def test_confidence_mixing_gives_unlabeled_rows_the_fixed_weights():
    logits = [torch.tensor([[3.0, 0.0], [0.0, 3.0]]), torch.tensor([[0.0, 3.0], [3.0, 0.0]])]
    w = teacher_weights(logits, torch.tensor([0, UNLABELED]), [1.0, 3.0], "confidence")
    assert w[:, 1].tolist() == pytest.approx([0.25, 0.75])  # no label: the prior weights
    assert w[0, 0] > 0.25  # labelled: the teacher that is right counts more
