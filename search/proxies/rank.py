"""``rank(teacher, students, inputs, labels)``: the public entry point, one score per student.

Example (CNNs whose forward returns logits; Hugging Face classifiers work the same way with ``inputs`` a
dict of ``input_ids``/``attention_mask``/``token_type_ids``)::

    from search.proxies import rank
    scores = rank(teacher, [resnet8, resnet14, resnet20], images, labels)     # higher = better
    best = max(range(len(scores)), key=scores.__getitem__)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn
from transformers import PreTrainedModel

from search.proxies.base import build_proxy
from search.proxies.batch import ProxyBatch
from search.proxies.models import FeatureSpec, ProxyModel

#: The proxy ``rank`` and the student search use by default (see bench/RESULTS.md for the choice).
DEFAULT_PROXY = "size_then_diswot"


def as_proxy_model(model: nn.Module | ProxyModel, features: FeatureSpec = None) -> ProxyModel:
    """``model`` wrapped for the proxies: HF models by their hidden states, other modules by hooks."""
    if isinstance(model, ProxyModel):
        return model
    if isinstance(model, PreTrainedModel):
        return ProxyModel.from_hf(model)
    return ProxyModel.from_torch(model, features)


def as_batch(inputs: Tensor | Mapping[str, Tensor], labels: Tensor) -> ProxyBatch:
    """A :class:`ProxyBatch` from images ``(B, …)`` or a tokenizer's output (a mapping of tensors)."""
    if isinstance(inputs, Tensor):
        return ProxyBatch(labels=labels, images=inputs)
    keys = ("input_ids", "attention_mask", "token_type_ids")
    return ProxyBatch(labels=labels, **{k: inputs[k] for k in keys if k in inputs})


def rank(
    teacher: nn.Module | ProxyModel,
    students: Sequence[nn.Module | ProxyModel],
    inputs: Tensor | Mapping[str, Tensor],
    labels: Tensor,
    proxy: str = DEFAULT_PROXY,
    *,
    features: FeatureSpec = None,
    seed: int = 0,
    **options: Any,
) -> list[float]:
    """One score per student (higher = predicted better when distilled from ``teacher``), without training.

    ``inputs``/``labels``: one labelled batch (a few dozen examples; every class present helps).
    ``features``: for torch modules, the feature-map module (name, module, or ``module -> sub-module``;
    default: found by hooks, the last 4-D map before global pooling), used for teacher and students alike.
    Rank proxies (the default ``size_then_diswot``, ``diswot_size``) rank their terms within ``students``:
    compare scores of one call only (``diswot``, the paper's score, is absolute).
    Models are handed back unchanged (modes, weights, buffers, ``requires_grad``).
    """
    batch = as_batch(inputs, labels)
    scorer = build_proxy(proxy, seed, **options)
    return scorer.score_all(
        as_proxy_model(teacher, features), [as_proxy_model(s, features) for s in students], batch
    )
