"""Multi-teacher soft targets: several teachers' output distributions mixed into one target per example."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from distill.data import TextTask, check_label_compatibility
from distill.encoding import TrainData, encode_fixed
from distill.pipeline import Pipeline
from distill.tables import Example
from distill.teacher import Teacher
from distill.teacher_outputs import teacher_outputs


def teacher_weights(logits: Sequence[Tensor], labels: Tensor, weights: Sequence[float], mode: str) -> Tensor:
    """``(K, N)`` mixing weights, summing to 1 over the ``K`` teachers for every example.

    ``fixed``: ``w_k ∝ weights_k``. ``confidence`` (CA-MKD style, Zhang et al. 2022): per example,
    ``w_k ∝ weights_k · exp(−CE(softmax(z_k), y))``, i.e. teachers that give the label more probability count
    more (``CE = −log softmax(z_k)_y``); unlabeled rows get the fixed weights.
    """
    prior = torch.tensor(weights, dtype=logits[0].dtype).log()[:, None]  # (K, 1)
    n = logits[0].shape[0]
    if mode == "fixed":
        return torch.softmax(prior.expand(-1, n), dim=0)
    if mode != "confidence":
        raise ValueError(f"unknown teacher mixing mode {mode!r}")
    known = labels >= 0  # an unlabeled (transfer) row has no label to judge by: fixed weights
    y = labels.clamp_min(0)[:, None]
    log_py = torch.stack([F.log_softmax(z, -1).gather(1, y)[:, 0] * known for z in logits])  # −CE
    return torch.softmax(prior + log_py, dim=0)


def mix_teacher_logits(
    logits: Sequence[Tensor], labels: Tensor, weights: Sequence[float], mode: str, temperature: float
) -> Tensor:
    """``(N, C)`` logits whose temperature-``T`` softmax is the teachers' mixture::

        z = T · log Σ_k w_k softmax(z_k / T),   so   softmax(z / T) = Σ_k w_k softmax(z_k / T)

    Every output loss that reads ``softmax(t/T)`` then distils the mixture exactly; losses on raw logits
    (``mse``) see this log-mixture instead. Computed once per training set, before training.
    """
    if len(logits) != len(weights):
        raise ValueError(f"{len(logits)} teachers' logits but {len(weights)} weights")
    w = teacher_weights(logits, labels, weights, mode)  # (K, N)
    log_p = torch.stack([F.log_softmax(z / temperature, -1) for z in logits])  # (K, N, C)
    return temperature * torch.logsumexp(log_p + w.clamp_min(1e-30).log()[..., None], dim=0)


def apply_teacher_mix(
    parts: list[TrainData],
    texts: list[list[Example]],
    task: TextTask,
    teachers: Sequence[Teacher],
    pipeline: Pipeline,
    cache_dir: Path | None = None,
) -> None:
    """Replace each part's teacher logits (of ``teachers[0]``) by the mix of all ``teachers`` on the same
    texts (``texts[i]`` encoded gives ``parts[i]``). Each extra teacher encodes the texts with its own
    tokenizer; its label order is matched to the first teacher's through the dataset's label names."""
    mix = pipeline.teachers
    if mix is None and len(teachers) > 1:
        raise ValueError("extra teachers given, but the pipeline has no `teachers` mix (weights, mode)")
    if mix is None:
        return
    if len(teachers) != len(mix.weights):
        raise ValueError(f"pipeline.teachers has {len(mix.weights)} weights but {len(teachers)} teachers")
    n = task.num_labels
    first = check_label_compatibility(task, teachers[0].labels, len(teachers[0].labels))
    max_length = pipeline.training.max_length
    for part, examples in zip(parts, texts, strict=True):
        assert part.teacher is not None
        all_logits = [part.teacher.logits]
        for extra in teachers[1:]:
            perm = check_label_compatibility(task, extra.labels, len(extra.labels))
            data = encode_fixed(examples, extra.tokenizer, max_length, torch.tensor(perm))
            enc = {"input_ids": data.input_ids, "attention_mask": data.attention_mask}
            enc["token_type_ids"] = data.token_type_ids
            z = teacher_outputs(extra, enc, cache_dir=cache_dir, progress=False).logits
            order = torch.empty(n, dtype=torch.long)
            order[torch.tensor(first)] = torch.tensor(perm)  # first teacher's id → this teacher's id
            all_logits.append(z[:, order])
        mixed = mix_teacher_logits(all_logits, part.labels, mix.weights, mix.mode, pipeline.loss.temperature)
        part.teacher = replace(part.teacher, logits=mixed)
