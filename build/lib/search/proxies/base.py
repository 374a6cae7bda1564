"""Zero-cost proxies: the model adapter, the batch, the proxy interface and its registry.

A proxy predicts, without training, how good a student will be (distilled from a teacher); higher is
better. It sees both networks through :class:`ProxyModel`, which fixes what the words mean:

* **features** — the feature map the classifier head reads before pooling.
  Transformers (HF BERT-style): the last encoder hidden states ``(B, T, H)``; *channels* are the ``H``
  hidden units, *positions* are the ``T`` tokens, padding tokens (``attention_mask == 0``) are masked out.
  CNNs: the last feature map ``(B, C, Hh, Ww)``; *channels* are the ``C`` maps, *positions* the
  ``Hh·Ww`` pixels (none masked).
* **pooled features** ``(B, C)`` — transformers: the [CLS] vector ``h[:, 0]``, the input of BERT's pooler
  (``pooling="cls"``, default), or the masked token mean (``pooling="mean"``); CNNs: global average pooling.
* **classifier weight** ``(K, C)`` — the linear map from pooled features to the ``K`` logits. CNNs: the
  final ``nn.Linear``'s weight. BERT puts ``pooler.dense`` + tanh between [CLS] and the classifier, so the
  effective per-channel class weight is the head linearised at tanh's centre (``tanh'(0) = 1``):
  ``W = W_classifier @ W_pooler`` (``W_classifier`` alone when the model has no pooler). Gradients are
  always taken through the exact head; only the CAM weighting (``weighting="cam"``) uses ``W``.

All proxies run under :meth:`Proxy.measure`, which forks and seeds the RNG, puts the modules in eval mode
(no dropout, BatchNorm on running statistics), enables gradients on every parameter, and afterwards
restores each sub-module's mode and each parameter's ``requires_grad``. Gradients are taken with
``torch.autograd.grad``, so no ``.grad`` is ever written; proxies that alter weights work on a copy.
"""

from __future__ import annotations

import contextlib
import copy
import statistics
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import PreTrainedModel

from distill.registry import Registry
from distill.student import forward_features

Pooling = Literal["cls", "mean"]
Family = Literal["transformer", "cnn"]
Terms = dict[str, float]

_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.GELU, nn.LeakyReLU, nn.SiLU, nn.ELU)


@dataclass(frozen=True, eq=False)
class ProxyBatch:
    """One labelled batch: token ids (+ mask, token types) for transformers, or ``images`` for CNNs."""

    labels: Tensor
    input_ids: Tensor | None = None
    attention_mask: Tensor | None = None
    token_type_ids: Tensor | None = None
    images: Tensor | None = None

    def __post_init__(self) -> None:
        if (self.input_ids is None) == (self.images is None):
            raise ValueError("a ProxyBatch holds either input_ids (text) or images, exactly one")
        if self.input_ids is not None and self.attention_mask is None:
            object.__setattr__(self, "attention_mask", torch.ones_like(self.input_ids))
        if self.labels.shape[0] != self.size:
            raise ValueError(f"{self.labels.shape[0]} labels for a batch of {self.size}")

    @property
    def size(self) -> int:
        x = self.input_ids if self.input_ids is not None else self.images
        assert x is not None
        return int(x.shape[0])

    @property
    def seq_len(self) -> int:
        """Padded sequence length ``T`` (text batches only)."""
        if self.input_ids is None:
            raise ValueError("an image batch has no sequence length")
        return int(self.input_ids.shape[1])


class ProxyModel(ABC):
    """A classifier seen as ``features → pool → linear head``; see the module docstring for the terms."""

    family: ClassVar[Family]
    module: nn.Module

    @abstractmethod
    def forward(self, batch: ProxyBatch) -> tuple[Tensor, Tensor]:
        """``(features, logits)`` from one pass, so gradients of the logits reach the features."""

    def features(self, batch: ProxyBatch) -> Tensor:
        return self.forward(batch)[0]

    def logits(self, batch: ProxyBatch) -> Tensor:
        return self.forward(batch)[1]

    @abstractmethod
    def pooled(self, feats: Tensor, batch: ProxyBatch) -> Tensor:
        """``(B, C)`` pooled features."""

    @abstractmethod
    def classifier_weight(self) -> Tensor:
        """``(K, C)`` per-channel class weight of the (effective) linear head."""

    @abstractmethod
    def positions(self, feats: Tensor, batch: ProxyBatch) -> tuple[Tensor, Tensor]:
        """``feats`` as ``(B, S, C)`` positions × channels, and the ``(B, S)`` float mask of real ones."""

    @abstractmethod
    def ones_logits(self, batch: ProxyBatch) -> Tensor:
        """Logits for one all-ones input shaped like a sample of ``batch`` (SynFlow), module dtype."""

    @abstractmethod
    def activation_modules(self) -> list[nn.Module]:
        """Modules whose outputs are post-ReLU/GELU activations (``> 0`` ⇔ unit active), for NASWOT."""

    @staticmethod
    def from_hf(model: PreTrainedModel, *, pooling: Pooling = "cls") -> HFProxyModel:
        """Adapter for an HF BERT-style sequence classifier (``base_model`` + ``classifier``)."""
        return HFProxyModel(model, pooling=pooling)

    @staticmethod
    def from_cnn(features: nn.Module, classifier: nn.Linear) -> CNNProxyModel:
        """Adapter for ``logits = classifier(GAP(features(images)))``."""
        return CNNProxyModel(features, classifier)


class HFProxyModel(ProxyModel):
    family: ClassVar[Family] = "transformer"

    def __init__(self, model: PreTrainedModel, *, pooling: Pooling = "cls") -> None:
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', not {pooling!r}")
        self.module: PreTrainedModel = model
        self.pooling: Pooling = pooling

    def forward(self, batch: ProxyBatch) -> tuple[Tensor, Tensor]:
        assert batch.attention_mask is not None
        out = forward_features(
            self.module,
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            token_type_ids=batch.token_type_ids,
            hidden=True,
        )
        assert out.hidden_states is not None
        return out.hidden_states[-1], out.logits

    def pooled(self, feats: Tensor, batch: ProxyBatch) -> Tensor:
        if self.pooling == "cls":
            return feats[:, 0]
        assert batch.attention_mask is not None
        m = batch.attention_mask.to(feats.dtype).unsqueeze(-1)
        return (feats * m).sum(1) / m.sum(1).clamp_min(1)

    def classifier_weight(self) -> Tensor:
        w = self.module.classifier.weight.detach()
        pooler = getattr(self.module.base_model, "pooler", None)
        return w @ pooler.dense.weight.detach() if pooler is not None else w

    def positions(self, feats: Tensor, batch: ProxyBatch) -> tuple[Tensor, Tensor]:
        assert batch.attention_mask is not None
        return feats, batch.attention_mask.to(feats.dtype)

    def ones_logits(self, batch: ProxyBatch) -> Tensor:
        p = next(self.module.parameters())
        cfg = self.module.config
        shape = (1, batch.seq_len)
        return forward_features(
            self.module,
            inputs_embeds=torch.ones(*shape, cfg.hidden_size, dtype=p.dtype, device=p.device),
            attention_mask=torch.ones(shape, dtype=torch.long, device=p.device),
            token_type_ids=torch.zeros(shape, dtype=torch.long, device=p.device),
        ).logits

    def activation_modules(self) -> list[nn.Module]:
        encoder = getattr(self.module.base_model, "encoder", None)
        layers = getattr(encoder, "layer", None)
        if layers is not None and all(hasattr(layer, "intermediate") for layer in layers):
            return [layer.intermediate for layer in layers]  # output = GELU(dense(x))
        return [m for m in self.module.modules() if isinstance(m, _ACTIVATIONS)]


class _CNN(nn.Module):
    def __init__(self, features: nn.Module, classifier: nn.Linear) -> None:
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, images: Tensor) -> Tensor:
        return self.classifier(self.features(images).mean((2, 3)))


class CNNProxyModel(ProxyModel):
    family: ClassVar[Family] = "cnn"

    def __init__(self, features: nn.Module, classifier: nn.Linear) -> None:
        self.module = _CNN(features, classifier)

    def forward(self, batch: ProxyBatch) -> tuple[Tensor, Tensor]:
        feats = self.module.features(batch.images)
        return feats, self.module.classifier(feats.mean((2, 3)))

    def pooled(self, feats: Tensor, batch: ProxyBatch) -> Tensor:
        return feats.mean((2, 3))

    def classifier_weight(self) -> Tensor:
        return self.module.classifier.weight.detach()

    def positions(self, feats: Tensor, batch: ProxyBatch) -> tuple[Tensor, Tensor]:
        pos = feats.flatten(2).transpose(1, 2)
        return pos, pos.new_ones(pos.shape[:2])

    def ones_logits(self, batch: ProxyBatch) -> Tensor:
        assert batch.images is not None
        p = next(self.module.parameters())
        return self.module(torch.ones(1, *batch.images.shape[1:], dtype=p.dtype, device=p.device))

    def activation_modules(self) -> list[nn.Module]:
        return [m for m in self.module.features.modules() if isinstance(m, _ACTIVATIONS)]


def random_like(model: PreTrainedModel, seed: int = 0) -> PreTrainedModel:
    """A randomly initialised copy of an HF ``model`` (same class and config), seeded, in eval mode.

    The global RNG state is left as it was.
    """
    p = next(model.parameters())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        clone = type(model)(copy.deepcopy(model.config))
    return clone.to(device=p.device, dtype=p.dtype).eval()


def ce(logits: Tensor, labels: Tensor, reduction: Literal["mean", "sum"] = "mean") -> Tensor:
    """Cross-entropy of ``logits`` (in float32 at least) against integer ``labels``."""
    return F.cross_entropy(logits.float(), labels.to(logits.device), reduction=reduction)


def param_grads(model: ProxyModel, batch: ProxyBatch) -> list[tuple[Tensor, Tensor]]:
    """``(θ, ∂L/∂θ)`` for every parameter, ``L`` = mean CE on the batch labels (zeros where unused)."""
    params = list(model.module.parameters())
    loss = ce(model.logits(batch), batch.labels)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [(p, torch.zeros_like(p) if g is None else g) for p, g in zip(params, grads, strict=True)]


@contextlib.contextmanager
def scoring(*modules: nn.Module, seed: int = 0) -> Iterator[None]:
    """Seeded RNG fork, eval mode, gradients on; restores modes and ``requires_grad`` flags on exit."""
    modes = [(m, m.training) for root in modules for m in root.modules()]
    flags = [(p, p.requires_grad) for root in modules for p in root.parameters()]
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(seed)
        try:
            for root in modules:
                root.eval()
                root.requires_grad_(True)
            yield
        finally:
            for m, training in modes:
                m.training = training
            for p, flag in flags:
                p.requires_grad_(flag)


class Proxy(ABC):
    """A zero-cost proxy; calling it scores one student: ``proxy(teacher, student, batch) -> float``.

    Higher is better. A proxy computes named raw *terms* per student (:meth:`measure`, after teacher-side
    state from :meth:`prepare`); :meth:`combine` turns the terms of a candidate set into scores. For most
    proxies the single term is the score; ``diswot`` standardises its two terms over the set.
    """

    name: ClassVar[str]
    uses_teacher: ClassVar[bool] = False

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def __call__(self, teacher: ProxyModel, student: ProxyModel, batch: ProxyBatch) -> float:
        return self.score(teacher, student, batch)

    def score(self, teacher: ProxyModel, student: ProxyModel, batch: ProxyBatch) -> float:
        """The raw score of one student."""
        return self.total(self.measure(teacher, student, batch))

    def score_all(
        self, teacher: ProxyModel, students: Sequence[ProxyModel], batch: ProxyBatch
    ) -> list[float]:
        """Scores of a candidate set (teacher-side work done once)."""
        state = self.prepare(teacher, batch)
        return self.combine([self.measure(teacher, s, batch, state) for s in students])

    def prepare(self, teacher: ProxyModel, batch: ProxyBatch) -> Any:
        """Teacher-side state shared by all candidates (``None`` for student-only proxies)."""
        if not self.uses_teacher:
            return None
        with scoring(teacher.module, seed=self.seed):
            return self._prepare(teacher, batch)

    def measure(
        self, teacher: ProxyModel, student: ProxyModel, batch: ProxyBatch, state: Any = None
    ) -> Terms:
        """Raw terms of one student, ``{name: value}``."""
        if state is None and self.uses_teacher:
            state = self.prepare(teacher, batch)
        with scoring(student.module, seed=self.seed):
            out = self._measure(student, batch, state)
        return {k: float(v) for k, v in out.items()} if isinstance(out, dict) else {self.name: float(out)}

    def total(self, terms: Terms) -> float:
        """One candidate's raw score from its terms."""
        return terms[self.name]

    def combine(self, terms: Sequence[Terms], reference: Sequence[Terms] | None = None) -> list[float]:
        """Scores of a set from its terms; ``reference`` (set-level proxies) supplies the statistics."""
        return [self.total(t) for t in terms]

    def _prepare(self, teacher: ProxyModel, batch: ProxyBatch) -> Any:
        return None

    @abstractmethod
    def _measure(self, student: ProxyModel, batch: ProxyBatch, state: Any) -> float | Tensor | Terms: ...


def zscore(values: Sequence[float], reference: Sequence[float] | None = None) -> list[float]:
    """``(x − μ) / σ`` with ``μ, σ`` (population) of ``reference`` (default: ``values``); 0 if ``σ = 0``."""
    ref = list(values if reference is None else reference)
    if not ref:
        return [0.0] * len(values)
    mu = statistics.fmean(ref)
    sd = statistics.pstdev(ref, mu)
    if not sd > 1e-12 * max(1.0, abs(mu)):
        return [0.0] * len(values)
    return [(v - mu) / sd for v in values]


PROXIES: Registry[type[Proxy]] = Registry("proxy")


def build_proxy(name: str, seed: int = 0, **options: Any) -> Proxy:
    """An instance of the proxy registered as ``name``."""
    return PROXIES.get(name)(seed, **options)


def register(name: str, description: str) -> Any:
    """Class decorator: file a :class:`Proxy` subclass in ``PROXIES`` and set its ``name``."""

    def deco(cls: type[Proxy]) -> type[Proxy]:
        cls.name = name
        return PROXIES.register(name, description)(cls)

    return deco
