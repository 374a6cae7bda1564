"""``flops``: forward FLOPs of the student for one sample of the batch (a compute baseline).

FLOPs = 2 × multiply-accumulates of the matrix products; biases, norms, softmax, activations and
embedding lookups are not counted. BERT-style HF models are counted analytically for the batch's padded
length ``T`` (hidden ``H``, FFN ``F``, ``L`` layers, ``K`` labels)::

    L · (8·T·H²  +  4·T²·H  +  4·T·H·F)  +  2·H²  +  2·H·K
         QKV+out   QKᵀ, AV     FFN          pooler   classifier ([CLS] only)

Any other module (CNNs included) falls back to forward hooks counting ``nn.Linear``
(``2 · in_features · out.numel()``) and ``nn.Conv2d`` (``2 · (C_in/groups)·k_h·k_w · out.numel()``) on the
batch, divided by the batch size.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from distill.families import shape_of
from search.proxies.base import Proxy, register
from search.proxies.batch import ProxyBatch
from search.proxies.models import HFProxyModel, ProxyModel

_BERT_KEYS = ("hidden_size", "num_hidden_layers", "intermediate_size", "num_labels")


def bert_flops(config: Any, seq_len: int, *, pooler: bool = True) -> int:
    """Analytic forward FLOPs of one BERT-style sequence classification on ``seq_len`` tokens."""
    shape = shape_of(config)
    h, layers, f, k, t = shape.hidden, shape.layers, shape.ffn, config.num_labels, seq_len
    per_layer = 8 * t * h * h + 4 * t * t * h + 4 * t * h * f
    return layers * per_layer + (2 * h * h if pooler else 0) + 2 * h * k


@torch.no_grad()
def hooked_flops(model: ProxyModel, batch: ProxyBatch) -> int:
    """Per-sample FLOPs of the ``nn.Linear`` and ``nn.Conv2d`` layers run on ``batch``."""
    total = 0

    def hook(module: nn.Module, _: Any, out: Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Linear):
            total += 2 * module.in_features * out.numel()
        elif isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += 2 * (module.in_channels // module.groups) * kh * kw * out.numel()

    handles = [
        m.register_forward_hook(hook) for m in model.module.modules() if isinstance(m, nn.Linear | nn.Conv2d)
    ]
    try:
        model.forward(batch)
    finally:
        for handle in handles:
            handle.remove()
    return total // batch.size


def count_flops(model: ProxyModel, batch: ProxyBatch) -> int:
    """Analytic FLOPs for BERT-style HF models, hook-counted FLOPs otherwise (see module docstring)."""
    cfg = getattr(model.module, "config", None)
    if isinstance(model, HFProxyModel) and all(hasattr(cfg, key) for key in _BERT_KEYS):
        pooler = getattr(model.module.base_model, "pooler", None) is not None
        return bert_flops(cfg, batch.seq_len, pooler=pooler)
    return hooked_flops(model, batch)


@register("flops", "Forward FLOPs of the student per sample (analytic for BERT, hooks otherwise)")
class Flops(Proxy):
    """Forward FLOPs per sample at the batch's input size (bigger predicted better)."""

    def _measure(self, student: ProxyModel, batch: ProxyBatch, state: Any) -> float:
        return float(count_flops(student, batch))
