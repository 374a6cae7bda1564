"""How a proxy sees a network: :class:`ProxyModel`, one pass giving ``(features, logits)``.

* **features** — the map the classifier head reads before global pooling.
  CNNs (any ``nn.Module`` whose forward returns logits, or a tuple or mapping holding them, see
  :func:`as_logits`): the output ``(B, C, H, W)`` of the last module before global pooling, found by a
  forward hook (the last module, in completion order, whose output is 4-D with ``H·W > 1``), or the
  module named / returned by ``features=``. *Channels* are the ``C`` maps.
  Hugging Face sequence classifiers (BERT, RoBERTa, DistilBERT, DeBERTa, ELECTRA, ALBERT, …): the last
  hidden states ``(B, T, H)`` from ``output_hidden_states=True`` of the model's own forward (the head is
  never re-implemented); *channels* are the ``H`` hidden units, *positions* the ``T`` tokens, and
  padding tokens (``attention_mask == 0``) are masked out (:meth:`ProxyModel.mask`).
* **classifier** — the final ``nn.Linear`` producing the ``K`` logits (found by the hooks: the last one run
  with ``out_features == K``); DisWOT's semantic term reads the gradient of its weight.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel

from distill.families import model_inputs
from search.proxies.batch import ProxyBatch

Family = Literal["transformer", "cnn"]
FeatureSpec = str | nn.Module | Callable[[nn.Module], nn.Module] | None
_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.MaxPool2d, nn.Flatten)


class ProxyModel(ABC):
    """A classifier seen as ``features → (pool) → linear head``; see the module docstring."""

    family: ClassVar[Family]
    module: nn.Module

    @abstractmethod
    def forward(self, batch: ProxyBatch) -> tuple[Tensor, Tensor]:
        """``(features, logits)`` from one pass, so gradients of the logits reach the features."""

    @abstractmethod
    def classifier(self, batch: ProxyBatch) -> nn.Linear:
        """The final linear layer producing the logits."""

    @abstractmethod
    def ones_logits(self, batch: ProxyBatch) -> Tensor:
        """Logits for one all-ones input shaped like a sample of ``batch`` (SynFlow), module dtype."""

    def mask(self, feats: Tensor, batch: ProxyBatch) -> Tensor:
        """``feats`` with masked positions (padding tokens) zeroed; CNN maps are returned as they are."""
        return feats

    @staticmethod
    def from_hf(model: PreTrainedModel, id_map: Tensor | None = None) -> HFProxyModel:
        """Adapter for a Hugging Face sequence classifier (``id_map``: teacher ids → its own)."""
        return HFProxyModel(model, id_map)

    @staticmethod
    def from_torch(module: nn.Module, features: FeatureSpec = None) -> TorchProxyModel:
        """Adapter for a torch classifier ``logits = module(images)``; see ``TorchProxyModel``."""
        return TorchProxyModel(module, features)

    @staticmethod
    def from_cnn(features: nn.Module, classifier: nn.Linear) -> TorchProxyModel:
        """Adapter for ``logits = classifier(GAP(features(images)))``."""
        return TorchProxyModel(_CNN(features, classifier), "features")


class _CNN(nn.Module):
    def __init__(self, features: nn.Module, classifier: nn.Linear) -> None:
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, images: Tensor) -> Tensor:
        return self.classifier(self.features(images).mean((2, 3)))


def as_logits(out: Any) -> Tensor:
    """The logits in a forward's output: the tensor itself, a ``.logits`` / ``["logits"]`` entry (HF-style
    outputs, dicts), or the last 2-D tensor of a tuple/list (``(features, logits)``, as NAS-Bench-201's and
    DisWOT's own models return)."""
    if isinstance(out, Tensor):
        return out
    found = getattr(out, "logits", None)
    if found is None and isinstance(out, dict):
        found = out.get("logits")
    if found is None and isinstance(out, tuple | list):
        found = next((o for o in reversed(out) if isinstance(o, Tensor) and o.dim() == 2), None)
    if not isinstance(found, Tensor):
        raise ValueError(f"cannot find the logits in a forward output of type {type(out).__name__}")
    return found


def _run_hooked(module: nn.Module, images: Tensor) -> tuple[list[tuple[nn.Module, Tensor]], Tensor]:
    """Every sub-module's tensor output in completion order, and the logits."""
    seen: list[tuple[nn.Module, Tensor]] = []

    def hook(m: nn.Module, _: Any, out: Any) -> None:
        if isinstance(out, Tensor):
            seen.append((m, out))

    handles = [m.register_forward_hook(hook) for m in module.modules() if m is not module]
    try:
        with torch.no_grad():
            logits = as_logits(module(images))
    finally:
        for h in handles:
            h.remove()
    return seen, logits


def find_feature_module(module: nn.Module, images: Tensor) -> nn.Module:
    """The last module (completion order) whose output is a 4-D map with ``H·W > 1`` and is no pooling."""
    seen, _ = _run_hooked(module, images)
    maps = [m for m, out in seen if out.dim() == 4 and out.shape[2] * out.shape[3] > 1]
    maps = [m for m in maps if not isinstance(m, _POOLS)]
    if not maps:
        raise ValueError("no 4-D feature map found before global pooling; pass features=")
    return maps[-1]


def find_classifier(module: nn.Module, run: Callable[[], Tensor]) -> nn.Linear:
    """The last ``nn.Linear`` run by ``run()`` whose ``out_features`` equals the number of logits."""
    order: list[nn.Linear] = []
    handles = [
        m.register_forward_hook(lambda m, _i, _o: order.append(m))
        for m in module.modules()
        if isinstance(m, nn.Linear)
    ]
    try:
        with torch.no_grad():
            k = run().shape[-1]
    finally:
        for h in handles:
            h.remove()
    heads = [m for m in order if m.out_features == k]
    if not heads:
        raise ValueError(f"no nn.Linear producing the {k} logits")
    return heads[-1]


class TorchProxyModel(ProxyModel):
    """A torch classifier whose forward maps images to logits. ``features``: the feature-map module, by
    name (``"layer3"``), as a module, or as a callable ``module -> sub-module``; ``None`` finds it by hooks
    (:func:`find_feature_module`)."""

    family: ClassVar[Family] = "cnn"

    def __init__(self, module: nn.Module, features: FeatureSpec = None) -> None:
        self.module = module
        self._spec = features
        self._features: nn.Module | None = None
        self._classifier: nn.Linear | None = None

    def feature_module(self, batch: ProxyBatch) -> nn.Module:
        if self._features is None:
            spec = self._spec
            if spec is None:
                self._features = find_feature_module(self.module, batch.images)
            elif isinstance(spec, str):
                self._features = self.module.get_submodule(spec)
            elif isinstance(spec, nn.Module):
                self._features = spec
            else:
                self._features = spec(self.module)
        return self._features

    def forward(self, batch: ProxyBatch) -> tuple[Tensor, Tensor]:
        out: list[Tensor] = []
        handle = self.feature_module(batch).register_forward_hook(lambda _m, _i, o: out.append(o))
        try:
            logits = as_logits(self.module(batch.images))
        finally:
            handle.remove()
        return out[-1], logits

    def classifier(self, batch: ProxyBatch) -> nn.Linear:
        if self._classifier is None:
            self._classifier = find_classifier(self.module, lambda: as_logits(self.module(batch.images)))
        return self._classifier

    def ones_logits(self, batch: ProxyBatch) -> Tensor:
        assert batch.images is not None
        p = next(self.module.parameters())
        return as_logits(self.module(torch.ones(1, *batch.images.shape[1:], dtype=p.dtype, device=p.device)))


class HFProxyModel(ProxyModel):
    """A Hugging Face sequence classifier, run through its own forward with ``output_hidden_states``."""

    family: ClassVar[Family] = "transformer"

    def __init__(self, model: PreTrainedModel, id_map: Tensor | None = None) -> None:
        self.module: PreTrainedModel = model
        self._classifier: nn.Linear | None = None
        self.id_map = id_map  # teacher ids → this model's (a pruned vocabulary's, ``distill.vocab``)

    def _kwargs(self, batch: ProxyBatch) -> dict[str, Tensor]:
        ids = batch.input_ids
        if self.id_map is not None and ids is not None:
            ids = self.id_map.to(ids.device)[ids]
        raw = {
            "input_ids": ids,
            "attention_mask": batch.attention_mask,
            "token_type_ids": batch.token_type_ids,
        }
        return model_inputs(self.module, raw)

    def forward(self, batch: ProxyBatch) -> tuple[Tensor, Tensor]:
        out = self.module(**self._kwargs(batch), output_hidden_states=True)
        return out.hidden_states[-1], out.logits

    def mask(self, feats: Tensor, batch: ProxyBatch) -> Tensor:
        assert batch.attention_mask is not None
        return feats * batch.attention_mask.to(feats).unsqueeze(-1)

    def classifier(self, batch: ProxyBatch) -> nn.Linear:
        if self._classifier is None:
            self._classifier = find_classifier(self.module, lambda: self.module(**self._kwargs(batch)).logits)
        return self._classifier

    def ones_logits(self, batch: ProxyBatch) -> Tensor:
        p = next(self.module.parameters())
        dim = self.module.get_input_embeddings().embedding_dim
        shape = (1, batch.seq_len)
        embeds = torch.ones(*shape, dim, dtype=p.dtype, device=p.device)
        mask = torch.ones(shape, dtype=torch.long, device=p.device)
        return self.module(inputs_embeds=embeds, attention_mask=mask).logits
