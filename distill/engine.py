"""Distil one student: task + teacher + ``Pipeline`` → trained student with its metrics.

This is the unit of work of every search trial. It knows nothing of HTTP, databases, Optuna or Ray.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from distill.augment import AugmentContext, augment_examples
from distill.data import TextTask, check_label_compatibility
from distill.encoding import TrainData, encode_fixed
from distill.multi_teacher import apply_teacher_mix
from distill.pipeline import Pipeline
from distill.student import InitReport, build_student, count_params, cpu_latency_ms
from distill.teacher import Teacher
from distill.teacher_outputs import TeacherOutputs, teacher_outputs
from distill.trainer import DistillLoss, Reporter, TrainResult, train_model
from distill.vocab import TaskVocab, pruned_tokenizer, task_vocab


@dataclass
class DistillResult:
    student: PreTrainedModel
    pipeline: Pipeline
    train: TrainResult
    params: int
    latency_ms: float
    init: InitReport
    tokenizer: PreTrainedTokenizerBase  # the student's: the teacher's, or its pruned copy
    vocab: TaskVocab | None = None  # the pruned vocabulary (``pipeline.student.vocab == "task"``)

    @property
    def metrics(self) -> dict[str, float]:
        return {**self.train.final, "params": self.params, "latency_ms": self.latency_ms}


def _with_teacher(
    data: TrainData,
    teacher: Teacher,
    criterion: DistillLoss,
    cache_dir: Path | None,
    progress: bool,
    desc: str,
    shared: TeacherOutputs | None = None,
) -> TrainData:
    inter = criterion.inter
    hidden = inter.teacher_hidden_layers if inter else ()
    attention = inter.teacher_attention_layers if inter else ()
    if shared is not None:
        data.teacher = shared.only(hidden, attention)
        return data
    enc = {
        "input_ids": data.input_ids,
        "attention_mask": data.attention_mask,
        "token_type_ids": data.token_type_ids,
    }
    data.teacher = teacher_outputs(
        teacher,
        enc,
        hidden_layers=hidden,
        attention_layers=attention,
        cache_dir=cache_dir,
        progress=progress,
        desc=desc,
    )
    return data


def _concat(parts: list[TrainData]) -> TrainData:
    if len(parts) == 1:
        return parts[0]
    t = [p.teacher for p in parts]
    teacher = TeacherOutputs.concat(t) if all(x is not None for x in t) else None  # type: ignore[arg-type]
    return TrainData(
        *(
            torch.cat([getattr(p, f) for p in parts])
            for f in ("input_ids", "attention_mask", "token_type_ids", "labels")
        ),
        teacher=teacher,
    )


def distill_student(
    task: TextTask,
    teacher: Teacher,
    pipeline: Pipeline,
    *,
    report: Reporter | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
    device: str | None = None,
    measure_latency: bool = True,
    outputs: TeacherOutputs | None = None,
    extra_teachers: Sequence[Teacher] = (),
) -> DistillResult:
    """Build the pipeline's student, train it against the (cached) teacher outputs, measure it.

    ``outputs``: teacher outputs already computed for ``task.transfer_set`` at this ``max_length`` (a search
    computes them once per job and shares them with every trial); they must hold the layers it needs.
    ``extra_teachers``: the other teachers of a multi-teacher pipeline (``pipeline.teachers``).
    """
    tr = pipeline.training
    label_map = torch.tensor(check_label_compatibility(task, teacher.labels, len(teacher.labels)))
    wants_attn = pipeline.intermediate.name != "none" and pipeline.intermediate.features != "hidden"
    vocab = student_vocab(task, teacher) if pipeline.student.vocab == "task" else None
    student, init = build_student(
        pipeline.student, teacher.model, eager=wants_attn, seed=tr.seed, kept=vocab.kept if vocab else None
    )
    criterion = DistillLoss(pipeline, student, teacher.model.config)

    tok = teacher.tokenizer
    train = training_data(task, teacher, pipeline, criterion, cache_dir, progress, outputs, extra_teachers)
    val = encode_fixed(task.validation, tok, tr.max_length, label_map)
    if vocab is not None:  # the teacher read its own ids; the student reads its pruned vocabulary's
        train.input_ids, val.input_ids = vocab.remap(train.input_ids), vocab.remap(val.input_ids)

    result = train_model(
        student,
        train,
        val,
        pipeline,
        criterion=criterion,
        report=report,
        progress=progress,
        device=device,
        desc=f"student {pipeline.student.layers}x{pipeline.student.hidden}",
    )
    latency = cpu_latency_ms(student, seq_len=tr.max_length) if measure_latency else float("nan")
    student_tok = pruned_tokenizer(tok, vocab) if vocab is not None else tok
    return DistillResult(student, pipeline, result, count_params(student), latency, init, student_tok, vocab)


def training_data(
    task: TextTask,
    teacher: Teacher,
    pipeline: Pipeline,
    criterion: DistillLoss,
    cache_dir: Path | None = None,
    progress: bool = False,
    outputs: TeacherOutputs | None = None,
    extra_teachers: Sequence[Teacher] = (),
) -> TrainData:
    """The rows a student trains on, encoded with the teacher's tokenizer, with the teacher's outputs when the
    pipeline reads them: the training split, then the unlabeled transfer text (label ``UNLABELED``: soft
    targets only, so a student without KD never sees it), then the augmented copies of the training split."""
    tr, aug = pipeline.training, pipeline.augmentation
    label_map = torch.tensor(check_label_compatibility(task, teacher.labels, len(teacher.labels)))
    texts = [task.transfer_set if criterion.uses_teacher else task.train]
    if aug.copies:
        emb = teacher.model.get_input_embeddings().weight.detach()
        ctx = AugmentContext(tokenizer=teacher.tokenizer, embeddings=emb, device=str(emb.device))
        texts += augment_examples(task.train, aug, ctx, seed=tr.seed)
    parts = [encode_fixed(examples, teacher.tokenizer, tr.max_length, label_map) for examples in texts]
    if criterion.uses_teacher:
        parts = [
            _with_teacher(
                p, teacher, criterion, cache_dir, progress, "teacher outputs" + (f" (copy {i})" if i else ""),
                shared=outputs if i == 0 else None,
            )
            for i, p in enumerate(parts)
        ]  # fmt: skip
        apply_teacher_mix(parts, texts, task, [teacher, *extra_teachers], pipeline, cache_dir)
    return _concat(parts)


def student_vocab(task: TextTask, teacher: Teacher) -> TaskVocab:
    """The pruned vocabulary of a ``vocab: task`` student: the tokens of the task's training, transfer and
    validation text (never the test split's) and the special tokens."""
    texts = [t for ex in [*task.transfer_set, *task.validation] for t in (ex.text, ex.text_pair) if t]
    return task_vocab(
        teacher.tokenizer, texts, vocab_size=teacher.model.get_input_embeddings().weight.shape[0]
    )
