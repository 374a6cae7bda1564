"""The training loop every trial runs: AdamW with warm-up, the pipeline's losses, per-epoch validation.

``train_model`` trains any BERT-style sequence classifier (a student, or a base encoder being fine-tuned
into a teacher) on encoded data, reading teacher outputs from the cache rather than running the teacher.
After each epoch it calls ``report(metrics)``; a truthy return stops training (how the search prunes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from torch import Tensor, nn
from tqdm.auto import tqdm
from transformers import PreTrainedModel, get_linear_schedule_with_warmup

from distill.augment import draw_mixup, mix
from distill.device import AmpPolicy, amp_for, pinned, resolve_device, to_device
from distill.encoding import TrainData
from distill.intermediate import IntermediateLoss
from distill.losses import LogitInputs, LossContext, build_loss
from distill.objectives import ObjectiveContext
from distill.objectives.base import FittedObjective
from distill.pipeline import Pipeline, Stage
from distill.student import forward_features
from distill.teacher_outputs import TeacherOutputs

Reporter = Callable[[dict[str, float]], bool | None]


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False
    seconds: float = 0.0

    @property
    def final(self) -> dict[str, float]:
        return self.history[-1] if self.history else {}


#: Teacher outputs up to this size move to the GPU once per trial; larger ones are copied batch by batch
#: (several trials may share a GPU: each holds its own copy).
RESIDENT_TEACHER_BYTES = 1 << 30


@torch.no_grad()
def evaluate(model: PreTrainedModel, data: TrainData, batch_size: int = 128) -> dict[str, float]:
    """Accuracy and macro-F1 on ``data``."""
    model.eval()
    device = next(model.parameters()).device
    preds = []
    for start in range(0, len(data), batch_size):
        sl = slice(start, start + batch_size)
        length = int(data.attention_mask[sl].sum(1).max())
        logits = model(
            input_ids=data.input_ids[sl, :length].to(device),
            attention_mask=data.attention_mask[sl, :length].to(device),
            token_type_ids=data.token_type_ids[sl, :length].to(device),
        ).logits
        preds.append(logits.argmax(-1).cpu())
    pred = torch.cat(preds).numpy()
    gold = data.labels.numpy()
    return {
        "accuracy": float((pred == gold).mean()),
        "macro_f1": float(f1_score(gold, pred, average="macro", zero_division=0)),
    }


class DistillLoss(nn.Module):
    """hard_weight·CE + kd_weight·output loss + weight·intermediate objective, for one pipeline."""

    def __init__(self, pipeline: Pipeline, student: PreTrainedModel, teacher_cfg: object | None) -> None:
        super().__init__()
        self.spec = pipeline
        self.stage: Stage | None = None  # the current progressive-distillation stage (set per epoch)
        s = student.config
        self.kd = build_loss(pipeline.loss, LossContext(s.num_labels, s.hidden_size))
        self.inter: IntermediateLoss | None = None
        if pipeline.intermediate.name != "none":
            if teacher_cfg is None:
                raise ValueError("an intermediate objective needs a teacher")
            t = teacher_cfg
            ctx = ObjectiveContext(
                s.num_hidden_layers,
                t.num_hidden_layers,
                s.hidden_size,
                t.hidden_size,
                s.num_attention_heads,
                t.num_attention_heads,
                s.num_labels,
            )
            self.inter = IntermediateLoss(pipeline.intermediate, ctx)

    @property
    def uses_teacher(self) -> bool:
        return (self.kd.uses_teacher and self.spec.loss.kd_weight > 0) or self.inter is not None

    def prepare(self, train: TrainData) -> None:
        """Fit the objectives whose targets come from the whole training set (``FittedObjective``)."""
        obj = self.inter.objectives["hidden"] if self.inter and "hidden" in self.inter.objectives else None
        if isinstance(obj, FittedObjective) and train.teacher is not None:
            obj.fit(self.inter.hidden_pairs, train.teacher.hidden, train.labels)

    @property
    def needs_hidden(self) -> bool:
        return self.inter is not None and bool(self.inter.teacher_hidden_layers)

    @property
    def needs_attentions(self) -> bool:
        return self.inter is not None and bool(self.inter.teacher_attention_layers)

    def forward(
        self, out, targets: Tensor, labels: Tensor, teacher: TeacherOutputs | None, mask: Tensor
    ) -> Tensor:
        spec, st = self.spec, self.stage or Stage(epochs=1)
        loss = st.hard * spec.loss.hard_weight * hard_loss(out.logits, targets)
        if teacher is None:
            return loss
        if spec.loss.kd_weight * st.kd > 0 and self.kd.uses_teacher:
            x = LogitInputs(out.logits, teacher.logits, labels, out.pooled)
            loss = loss + st.kd * spec.loss.kd_weight * self.kd(x)
        if self.inter is not None and st.intermediate > 0:
            inter = self.inter(out.hidden_states, teacher.hidden, out.attentions, teacher.attentions, mask)
            loss = loss + st.intermediate * spec.intermediate.weight * inter
        return loss


def hard_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy with the (one-hot or mixed) ``targets``, averaged over the labelled rows: an unlabeled
    transfer row's target is all zeros, so it adds nothing and is not counted (0 for a batch of them)."""
    mass = targets.sum()
    return -(targets * F.log_softmax(logits, -1)).sum() / mass.clamp_min(1e-8)


def train_model(
    model: PreTrainedModel,
    train: TrainData,
    val: TrainData,
    pipeline: Pipeline,
    *,
    teacher_cfg: object | None = None,
    criterion: DistillLoss | None = None,
    report: Reporter | None = None,
    progress: bool = True,
    desc: str = "train",
    device: str | None = None,
    amp: AmpPolicy | None = None,
) -> TrainResult:
    """Train ``model`` with ``pipeline`` on ``train``; validate each epoch on ``val``.

    ``device``: the ``device`` setting (default ``auto``); ``amp``: the mixed-precision policy (default: the
    device's, ``distill.device.amp_policy``: bf16 or fp16 + ``GradScaler`` on CUDA, none on the CPU)."""
    tr = pipeline.training
    torch.manual_seed(tr.seed)
    gen = torch.Generator().manual_seed(tr.seed)
    dev = resolve_device(device)
    amp = amp or amp_for(dev)
    scaler = amp.grad_scaler()
    model.to(dev)
    criterion = criterion or DistillLoss(pipeline, model, teacher_cfg)
    if criterion.uses_teacher and train.teacher is None:
        raise ValueError(f"pipeline loss {pipeline.loss.name} needs teacher outputs")
    criterion.prepare(train)
    criterion.to(dev)
    train = _on_device(train, dev)
    params = [p for p in [*model.parameters(), *criterion.parameters()] if p.requires_grad]
    steps_per_epoch = -(-len(train) // tr.batch_size)
    opt, sched = _optimizer(params, pipeline, steps_per_epoch * tr.epochs)
    result = TrainResult()
    t_start = time.perf_counter()
    bar = tqdm(total=steps_per_epoch * tr.epochs, desc=desc, disable=not progress, leave=False)
    for epoch in range(1, tr.epochs + 1):
        criterion.stage = tr.stage(epoch)
        model.train()
        t_epoch = time.perf_counter()
        order = torch.randperm(len(train), generator=gen)
        running = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * tr.batch_size : (step + 1) * tr.batch_size]
            with amp.autocast():
                loss = _loss(model, criterion, train, idx, pipeline.augmentation.mixup, gen, dev)
            opt.zero_grad(set_to_none=True)
            _step(loss, params, opt, scaler)
            sched.step()
            running += loss.item()
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{running / (step + 1):.4f}")
        metrics = {
            "epoch": epoch,
            **evaluate(model, val),
            "train_loss": running / steps_per_epoch,
            "seconds": time.perf_counter() - t_epoch,
        }
        result.history.append(metrics)
        bar.set_postfix(epoch=epoch, acc=f"{metrics['accuracy']:.4f}")
        if report is not None and report(metrics):
            result.stopped_early = epoch < tr.epochs
            break
    bar.close()
    result.seconds = time.perf_counter() - t_start
    model.eval()
    return result


def _optimizer(params: list[Tensor], pipeline: Pipeline, total_steps: int) -> tuple[Any, Any]:
    """AdamW (no weight decay on biases and norms) and a linear schedule with warm-up."""
    tr = pipeline.training
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": tr.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=tr.lr,
    )
    return opt, get_linear_schedule_with_warmup(opt, int(tr.warmup * total_steps), total_steps)


def _step(loss: Tensor, params: list[Tensor], opt: Any, scaler: torch.amp.GradScaler | None) -> None:
    """Backward, clip to norm 1, step: through the ``GradScaler`` for fp16 (unscaled before clipping)."""
    if scaler is None:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    scaler.step(opt)
    scaler.update()


def _on_device(train: TrainData, dev: torch.device) -> TrainData:
    """The training data on a CUDA ``dev`` once (inputs, and teacher outputs held in memory up to
    ``RESIDENT_TEACHER_BYTES``; larger ones, and those read from disk, stay on the host, copied batch by
    batch); ``train`` itself on the CPU."""
    if dev.type == "cpu":
        return train

    def move(t: Tensor) -> Tensor:
        return to_device(pinned(t, dev), dev)

    teacher = train.teacher
    if teacher is not None:
        tensors = [teacher.logits, *teacher.hidden.values(), *teacher.attentions.values()]
        in_memory = all(isinstance(t, Tensor) for t in tensors)  # features on disk stay there (Rows)
        if in_memory and sum(t.numel() * t.element_size() for t in tensors) <= RESIDENT_TEACHER_BYTES:
            teacher = teacher.map(move)
    fields = (train.input_ids, train.attention_mask, train.token_type_ids, train.labels)
    return TrainData(*(move(t) for t in fields), teacher=teacher)


def _loss(
    model: PreTrainedModel,
    criterion: DistillLoss,
    train: TrainData,
    idx: Tensor,
    alpha: float,
    gen: torch.Generator,
    dev: torch.device,
) -> Tensor:
    """The pipeline's loss on the rows ``idx``, trimmed to their longest real sequence (mixup when
    ``alpha > 0`` and the loss has the teacher's outputs). Unlabeled rows (label < 0) have zero targets."""
    mask = train.attention_mask[idx]
    length = int(mask.sum(1).max())
    mask = mask[:, :length].to(dev)
    ids = train.input_ids[idx, :length].to(dev)
    tti = train.token_type_ids[idx, :length].to(dev)
    labels = train.labels[idx].to(dev)
    targets = F.one_hot(labels.clamp_min(0), model.config.num_labels).float() * (labels >= 0)[:, None]
    teacher = train.teacher.select(idx, length) if criterion.uses_teacher else None
    if teacher is not None:
        teacher = _to(teacher, dev)
    fwd = {"input_ids": ids}
    if alpha > 0 and teacher is not None:
        embeds = model.base_model.embeddings.word_embeddings(ids)
        perm, lam = draw_mixup(len(idx), alpha, gen)
        perm = perm.to(dev)
        fwd = {"inputs_embeds": mix(embeds, perm, lam)}
        mask = torch.maximum(mask, mask[perm])
        tti = torch.maximum(tti, tti[perm])
        teacher = teacher.mixed(perm, lam)
        targets = mix(targets, perm, lam)
        labels = targets.argmax(-1)
    if teacher is not None:  # an unlabeled row's class, for losses that read one (dkd, pld, …): the teacher's
        labels = torch.where(targets.sum(-1) > 0, labels, teacher.logits.argmax(-1))
    out = forward_features(
        model, **fwd, attention_mask=mask, token_type_ids=tti,
        hidden=criterion.needs_hidden, attentions=criterion.needs_attentions,
    )  # fmt: skip
    return criterion(out, targets, labels, teacher, mask)


def _to(t: TeacherOutputs, dev: torch.device) -> TeacherOutputs:
    return t if dev.type == "cpu" else t.map(lambda v: to_device(v, dev))
