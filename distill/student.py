"""Students built from a ``StudentArch``: BERT encoders, or ELECTRA encoders with factorised embeddings
(narrow tables projected to the hidden size); both share the teacher's tokenizer and load with Auto
classes."""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    ElectraConfig,
    PretrainedConfig,
    PreTrainedModel,
)

from distill.families import position_offset, shape_of
from distill.pipeline import StudentArch

_LAYER = re.compile(r"\.layer\.(\d+)\.")


def student_config(
    arch: StudentArch, teacher: PreTrainedModel, *, eager: bool = False, vocab_size: int | None = None
) -> PretrainedConfig:
    """A BERT config for ``arch`` (ELECTRA with ``embedding_size`` when ``arch.embedding`` is set) with the
    teacher's vocabulary (``vocab_size`` rows when pruned), positions and labels."""
    t = teacher.config
    shape = shape_of(t)
    family = BertConfig if arch.embedding is None else ElectraConfig
    extra = {} if arch.embedding is None else {"embedding_size": arch.embedding}
    cfg = family(
        **extra,
        vocab_size=vocab_size or shape.vocab,
        hidden_size=arch.hidden,
        num_hidden_layers=arch.layers,
        num_attention_heads=arch.heads,
        intermediate_size=arch.ffn,
        max_position_embeddings=shape.max_positions - position_offset(t),
        # the teacher's tokenizer may emit token types (0/1 for pairs) even where the family ignores them
        type_vocab_size=max(2, shape.type_vocab),
        pad_token_id=t.pad_token_id if t.pad_token_id is not None else 0,
        num_labels=t.num_labels,
        id2label=dict(t.id2label),
        label2id=dict(t.label2id),
    )
    cfg._attn_implementation = "eager" if eager else "sdpa"
    return cfg


def teacher_layer_for(student_layer: int, n_student: int, n_teacher: int) -> int:
    """Evenly spaced teacher layer a student layer copies (DistilBERT takes every other layer)."""
    if n_student >= n_teacher:
        return min(student_layer, n_teacher - 1)
    step = n_teacher / n_student
    return min(n_teacher - 1, round((student_layer + 1) * step) - 1)


@dataclass(frozen=True)
class InitReport:
    copied: int  # parameter tensors copied from the teacher
    total: int
    projected: int = 0  # embedding tables projected onto the teacher's principal directions

    def __str__(self) -> str:
        return f"{self.copied}/{self.total} tensors copied, {self.projected} projected from the teacher"


def principal_directions(embeddings: Tensor, k: int) -> Tensor:
    """``(H, k)``: the top-``k`` principal directions of the rows of ``embeddings`` ``(V, H)``."""
    centered = embeddings - embeddings.mean(0)
    _, _, vh = torch.linalg.svd(centered, full_matrices=False)
    return vh[:k].T


def init_from_teacher(
    student: PreTrainedModel, teacher: PreTrainedModel, kept: Tensor | None = None
) -> InitReport:
    """Copy every teacher tensor whose (layer-remapped) name and shape match; leave the rest random.

    Names match across BERT-layout families (BERT, RoBERTa / XLM-R, ELECTRA: ``<prefix>.encoder.layer.i``);
    others (DistilBERT, DeBERTa, ALBERT, ModernBERT) give at least their word embeddings. A RoBERTa-style
    position table is read from its position 0 on. A narrower student's embedding tables (word, position,
    token type) are the teacher's projected onto the top principal directions of its word embeddings, so
    even a narrow student starts with a lexicon. ``kept``: the teacher ids of a pruned vocabulary's rows.
    """
    n_s, n_t = student.config.num_hidden_layers, teacher.config.num_hidden_layers
    s_prefix, t_prefix = f"{student.base_model_prefix}.", f"{teacher.base_model_prefix}."
    t_state = {
        (f"{s_prefix}{k[len(t_prefix) :]}" if k.startswith(t_prefix) else k): v
        for k, v in teacher.named_parameters()
    }
    if (offset := position_offset(teacher.config)) and (key := _position_key(t_state)):
        t_state[key] = t_state[key][offset:]
    if kept is not None:
        key = next(k for k, v in t_state.items() if v is teacher.get_input_embeddings().weight)
        t_state[key] = t_state[key][kept]
    copied, projected, total = 0, 0, 0
    bases: dict[int, Tensor] = {}  # width → the teacher's top principal directions of its word embeddings

    def basis(k: int) -> Tensor:
        if k not in bases:
            bases[k] = principal_directions(teacher.get_input_embeddings().weight.detach().float(), k)
        return bases[k]

    with torch.no_grad():
        for name, param in student.named_parameters():
            total += 1
            src = _LAYER.sub(lambda m: f".layer.{teacher_layer_for(int(m[1]), n_s, n_t)}.", name)
            tensor = t_state.get(src)
            if name.endswith("embeddings_project.weight") and _teacher_width(teacher) == param.shape[0]:
                # factorised tables hold the teacher's rows in its top directions: projecting back maps them
                # onto the same rows' components in the teacher's space
                param.copy_(basis(param.shape[1]))
                projected += 1
                continue
            if tensor is None:
                continue
            if tensor.shape == param.shape:
                param.copy_(tensor)
                copied += 1
            elif (
                _is_embedding_table(name)
                and tensor.shape[0] == param.shape[0]
                and param.shape[1] < tensor.shape[1]
            ):
                param.copy_(tensor.float() @ basis(param.shape[1]))
                projected += 1
    return InitReport(copied, total, projected)


def _teacher_width(teacher: PreTrainedModel) -> int:
    return int(teacher.get_input_embeddings().weight.shape[1])


def _position_key(state: dict[str, Tensor]) -> str | None:
    return next((k for k in state if k.endswith("embeddings.position_embeddings.weight")), None)


def _is_embedding_table(name: str) -> bool:
    return name.endswith("_embeddings.weight")


def build_student(
    arch: StudentArch,
    teacher: PreTrainedModel,
    *,
    eager: bool = False,
    seed: int = 0,
    kept: Tensor | None = None,
) -> tuple[PreTrainedModel, InitReport]:
    """A fresh student for ``arch``, copying teacher tensors where ``arch.init`` asks and shapes allow;
    ``kept``: the teacher ids its pruned vocabulary keeps (``distill.vocab``)."""
    torch.manual_seed(seed)
    vocab_size = len(kept) if kept is not None else None
    cfg = student_config(arch, teacher, eager=eager, vocab_size=vocab_size)
    student = AutoModelForSequenceClassification.from_config(cfg)
    report = init_from_teacher(student, teacher, kept) if arch.init == "teacher-layers" else InitReport(0, 0)
    return student, report


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def estimate_params(arch: StudentArch, teacher: PreTrainedModel, vocab_size: int | None = None) -> int:
    """Parameters of the student ``arch`` would build, without allocating it (``vocab_size``: the rows of a
    pruned vocabulary, used when ``arch.vocab`` is ``task``)."""
    rows = vocab_size if arch.vocab == "task" else None
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(student_config(arch, teacher, vocab_size=rows))
        return count_params(model)


@torch.no_grad()
def cpu_latency_ms(model: PreTrainedModel, seq_len: int = 64, batch: int = 1, runs: int = 20) -> float:
    """Median CPU latency (ms) of one forward pass on a ``batch × seq_len`` input, after warm-up."""
    device = next(model.parameters()).device
    was_training = model.training
    model.to("cpu").eval()
    ids = torch.randint(1000, 2000, (batch, seq_len)) % model.config.vocab_size  # a pruned vocab may be small
    mask = torch.ones_like(ids)
    for _ in range(3):
        model(input_ids=ids, attention_mask=mask)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        model(input_ids=ids, attention_mask=mask)
        times.append((time.perf_counter() - t0) * 1000)
    model.to(device).train(was_training)
    return statistics.median(times)


@dataclass
class ForwardOut:
    logits: Tensor
    pooled: Tensor
    hidden_states: tuple[Tensor, ...] | None
    attentions: tuple[Tensor, ...] | None


def forward_features(
    model: PreTrainedModel,
    *,
    attention_mask: Tensor,
    input_ids: Tensor | None = None,
    inputs_embeds: Tensor | None = None,
    token_type_ids: Tensor | None = None,
    hidden: bool = False,
    attentions: bool = False,
) -> ForwardOut:
    """Run a student, returning logits plus the pooled feature its classifier reads (BERT: the pooler's
    output; ELECTRA: the first token's last hidden state, which its head reads from the sequence)."""
    out = model.base_model(
        input_ids=input_ids,
        inputs_embeds=inputs_embeds,
        attention_mask=attention_mask,
        token_type_ids=token_type_ids,
        output_hidden_states=hidden,
        output_attentions=attentions,
    )
    if getattr(out, "pooler_output", None) is not None:
        pooled = out.pooler_output
        logits = model.classifier(model.dropout(pooled))
    else:
        pooled = out.last_hidden_state[:, 0]
        logits = model.classifier(out.last_hidden_state)
    return ForwardOut(logits, pooled, out.hidden_states, out.attentions)
