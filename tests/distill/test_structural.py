"""Multi-teacher soft targets and progressive (staged) distillation, against hand computations."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from pydantic import ValidationError
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

from distill.data import TextTask
from distill.encoding import encode_fixed
from distill.engine import distill_student
from distill.multi_teacher import apply_teacher_mix, mix_teacher_logits, teacher_weights
from distill.pipeline import IntermediateSpec, Pipeline, StudentArch, TeacherMix, Training, progressive_stages
from distill.tables import Example
from distill.teacher import Teacher
from distill.teacher_outputs import TeacherOutputs, teacher_outputs
from distill.trainer import DistillLoss

Z1 = [[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]]
Z2 = [[0.0, 1.0, 1.0], [4.0, -2.0, 0.0]]
Y = [0, 2]


def softmax(z: list[float], temp: float = 1.0) -> list[float]:
    e = [math.exp(v / temp) for v in z]
    return [v / sum(e) for v in e]


def test_fixed_mix_is_the_weighted_mixture_at_temperature() -> None:
    mixed = mix_teacher_logits(
        [torch.tensor(Z1), torch.tensor(Z2)], torch.tensor(Y), [3.0, 1.0], "fixed", 2.0
    )
    for n in range(2):
        want = [0.75 * a + 0.25 * b for a, b in zip(softmax(Z1[n], 2.0), softmax(Z2[n], 2.0), strict=True)]
        assert (mixed[n] / 2.0).softmax(-1).tolist() == pytest.approx(want, rel=1e-5)


def test_confidence_weights_by_hand() -> None:
    w = teacher_weights([torch.tensor(Z1), torch.tensor(Z2)], torch.tensor(Y), [1.0, 2.0], "confidence")
    for n, y in enumerate(Y):
        a, b = 1.0 * softmax(Z1[n])[y], 2.0 * softmax(Z2[n])[y]  # weight · exp(−CE) = weight · p(y)
        assert w[:, n].tolist() == pytest.approx([a / (a + b), b / (a + b)], rel=1e-5)


def test_teacher_mix_validates() -> None:
    with pytest.raises(ValidationError):
        TeacherMix(weights=[1.0])
    with pytest.raises(ValidationError, match="positive sum"):
        TeacherMix(weights=[0.0, 0.0])
    assert "teachers" not in Pipeline().model_dump()  # unset: old pipelines keep their key


# ---- two tiny teachers whose label orders differ ---------------------------------------------------------

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film", "plot"]


def tiny_teacher(labels: list[str], seed: int) -> Teacher:
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(VOCAB), hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16
    )
    cfg.num_labels, cfg.id2label = 2, dict(enumerate(labels))
    cfg.label2id = {n: i for i, n in enumerate(labels)}
    model = BertForSequenceClassification(cfg).eval()
    return Teacher(model, BertTokenizer(vocab={w: i for i, w in enumerate(VOCAB)}), f"t{seed}", f"fp{seed}")


TASK = TextTask(
    "tiny",
    ["neg", "pos"],
    [Example("good film", 1), Example("bad plot", 0), Example("good plot", 1), Example("bad film", 0)],
    [Example("good", 1), Example("bad", 0)],
)


def test_apply_teacher_mix_matches_label_orders_by_name() -> None:
    a, b = tiny_teacher(["neg", "pos"], 0), tiny_teacher(["pos", "neg"], 1)
    part = encode_fixed(TASK.train, a.tokenizer, 16, torch.tensor([0, 1]))
    enc = {k: getattr(part, k) for k in ("input_ids", "attention_mask", "token_type_ids")}
    za = teacher_outputs(a, enc, progress=False).logits
    zb = teacher_outputs(b, enc, progress=False).logits
    part.teacher = TeacherOutputs(za)
    pipe = Pipeline(teachers=TeacherMix(weights=[1.0, 1.0]))
    apply_teacher_mix([part], [TASK.train], TASK, [a, b], pipe)
    t = pipe.loss.temperature
    want = 0.5 * (za / t).softmax(-1) + 0.5 * (zb.flip(-1) / t).softmax(-1)  # b's "pos" is its id 0
    assert torch.allclose((part.teacher.logits / t).softmax(-1), want, atol=1e-6)


def test_distill_student_with_two_teachers_and_stages_runs() -> None:
    a, b = tiny_teacher(["neg", "pos"], 0), tiny_teacher(["pos", "neg"], 1)
    pipe = Pipeline(
        student=StudentArch(layers=1, hidden=8, heads=2, ffn=16, init="random"),
        intermediate=IntermediateSpec(name="hidden_mse", mapping="last"),
        training=Training(epochs=3, batch_size=2, max_length=16, stages=progressive_stages(1, 1, 1)),
        teachers=TeacherMix(weights=[1.0, 2.0], mode="confidence"),
    )
    result = distill_student(TASK, a, pipe, extra_teachers=[b], progress=False, measure_latency=False)
    assert len(result.train.history) == 3
    with pytest.raises(ValueError, match="2 weights but 1 teachers"):
        distill_student(TASK, a, pipe, progress=False, measure_latency=False)


# ---- stages ----------------------------------------------------------------------------------------------


def test_stages_must_cover_the_epochs_and_have_work() -> None:
    with pytest.raises(ValidationError, match="add up to 3, not 4"):
        Training(epochs=4, stages=progressive_stages(1, 1, 1))
    with pytest.raises(ValidationError, match="intermediate objective"):
        Pipeline(training=Training(epochs=3, stages=progressive_stages(1, 1, 1)))
    tr = Training(epochs=4, stages=progressive_stages(2, 1, 1))
    assert [tr.stage(e).kd for e in (1, 2, 3, 4)] == [0.0, 0.0, 1.0, 1.0]
    assert "stages" not in Training().model_dump()


def test_distill_loss_applies_the_stage_multipliers() -> None:
    cfg = BertConfig(hidden_size=4, num_hidden_layers=1, num_attention_heads=1, num_labels=3)
    crit = DistillLoss(Pipeline(), SimpleNamespace(config=cfg), None)
    s = torch.tensor([[1.0, 2.0, 0.5]])
    out = SimpleNamespace(logits=s, pooled=torch.zeros(1, 4))
    teacher = TeacherOutputs(torch.tensor([[2.0, 0.5, 1.0]]))
    targets = torch.tensor([[0.0, 0.0, 1.0]])
    ce = -math.log(softmax(s[0].tolist())[2])
    pt, ps = softmax([2.0, 0.5, 1.0], 4.0), softmax(s[0].tolist(), 4.0)
    kd = 16 * sum(p * math.log(p / q) for p, q in zip(pt, ps, strict=True))
    for stage, want in [
        (None, ce + kd),
        (progressive_stages(1, 1, 1)[1], kd),
        (progressive_stages(1, 1, 1)[0], 0.0),
    ]:
        crit.stage = stage
        got = crit(out, targets, torch.tensor([2]), teacher, torch.ones(1, 3)).item()
        assert got == pytest.approx(want, rel=1e-5, abs=1e-7)
