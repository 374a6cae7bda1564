"""Meta-features of a distillation task: what the recommender knows about a job before its first trial.

``meta_features`` reads the data, the teacher's predictions and pooled embeddings on (at most 256)
validation examples, and the student budget. Every value is a plain float, so a row of meta-features
goes to a CSV, a JSON column, or a model as is. ``META_KEYS`` lists them in a fixed order.
"""

from __future__ import annotations

import math

import torch

from distill.data import TextTask
from distill.encoding import encode_fixed
from distill.profile import text_stats
from distill.teacher import Teacher

#: Dimensions of the reduced embedding summary (``emb_0`` …).
EMBED_DIMS = 8
#: Validation examples the teacher reads for its confidence and embeddings.
SAMPLE = 256

META_KEYS: tuple[str, ...] = (
    "log10_train",  # log10 of the training examples
    "classes",
    "balance",  # smallest class / largest class
    "label_entropy",  # entropy of the class distribution / log(classes): 1 = balanced
    "words_mean",
    "words_p95",
    "pair",  # 1 for sentence-pair tasks
    "teacher_accuracy",  # on the validation split
    "teacher_confidence",  # mean max-probability
    "teacher_entropy",  # mean prediction entropy / log(classes)
    "log10_teacher_params",
    "teacher_layers",
    "teacher_hidden",
    "budget_ratio",  # max student params / teacher params (1 without a budget)
    *(f"emb_{i}" for i in range(EMBED_DIMS)),
)


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * p.clamp_min(1e-12).log()).sum(-1)


def reduce_embedding(mean: torch.Tensor, dims: int = EMBED_DIMS) -> list[float]:
    """A fixed, seeded Gaussian random projection of the L2-normalised mean embedding to ``dims`` values.

    The projection depends only on the embedding width, so two jobs with teachers of the same width get
    comparable summaries (Johnson–Lindenstrauss: distances are kept up to a small distortion).
    """
    width = mean.numel()
    gen = torch.Generator().manual_seed(width)
    proj = torch.randn(width, dims, generator=gen) / math.sqrt(dims)
    unit = mean.float() / mean.float().norm().clamp_min(1e-12)
    return [round(float(v), 6) for v in unit @ proj]


@torch.no_grad()
def teacher_view(teacher: Teacher, task: TextTask, max_length: int, sample: int = SAMPLE) -> dict[str, float]:
    """Confidence, entropy and the reduced mean pooled embedding of the teacher on validation examples."""
    step = max(1, len(task.validation) // sample)
    examples = task.validation[::step][:sample]
    identity = torch.arange(task.num_labels)  # the labels are not used here
    data = encode_fixed(examples, teacher.tokenizer, max_length, identity)
    model = teacher.model.eval()
    device = next(model.parameters()).device
    probs, pooled = [], []
    for start in range(0, len(examples), 64):
        sl = slice(start, start + 64)
        mask = data.attention_mask[sl].to(device)
        out = model(
            input_ids=data.input_ids[sl].to(device),
            attention_mask=mask,
            token_type_ids=data.token_type_ids[sl].to(device),
            output_hidden_states=True,
        )
        probs.append(out.logits.float().softmax(-1).cpu())
        m = mask.unsqueeze(-1).float()
        pooled.append(((out.hidden_states[-1].float() * m).sum(1) / m.sum(1).clamp_min(1)).cpu())
    p = torch.cat(probs)
    k = p.shape[1]
    emb = reduce_embedding(torch.cat(pooled).mean(0))
    return {
        "teacher_confidence": float(p.max(-1).values.mean()),
        "teacher_entropy": float(_entropy(p).mean() / math.log(k)) if k > 1 else 0.0,
        **{f"emb_{i}": v for i, v in enumerate(emb)},
    }


def data_features(task: TextTask) -> dict[str, float]:
    """Size, classes, balance and text lengths of the training split."""
    counts, words_mean, words_p95 = text_stats(task)
    n = len(task.train)
    freqs = torch.tensor([c / n for c in counts if c])
    k = task.num_labels
    return {
        "log10_train": math.log10(max(n, 1)),
        "classes": float(k),
        "balance": min(counts) / max(counts) if max(counts) else 0.0,
        "label_entropy": float(_entropy(freqs) / math.log(k)) if k > 1 else 0.0,
        "words_mean": words_mean,
        "words_p95": float(words_p95),
        "pair": float(task.is_pair),
    }


def meta_features(
    task: TextTask,
    teacher: Teacher,
    *,
    teacher_accuracy: float,
    max_length: int,
    max_params: int | None = None,
) -> dict[str, float]:
    """Every meta-feature of :data:`META_KEYS` for a job (``teacher_accuracy`` as profiled)."""
    cfg = teacher.model.config
    params = teacher.num_params
    out = {
        **data_features(task),
        "teacher_accuracy": float(teacher_accuracy),
        **teacher_view(teacher, task, max_length),
        "log10_teacher_params": math.log10(params),
        "teacher_layers": float(cfg.num_hidden_layers),
        "teacher_hidden": float(cfg.hidden_size),
        "budget_ratio": min(1.0, max_params / params) if max_params else 1.0,
    }
    return {k: round(float(out[k]), 6) for k in META_KEYS}
