"""The proxy interface, the scoring context, population ranks and the registry.

A proxy predicts, without training, how good a student will be (distilled from a teacher); higher is
better. It sees both networks through :class:`~search.proxies.models.ProxyModel`.

Every proxy runs under :func:`scoring`, with BatchNorm in **train mode** as DisWOT's and the zero-cost-NAS
reference code score (BN normalises with the batch's statistics; at random initialisation eval-mode BN is
the identity, features blow up and softmax saturates). Every other module is in eval mode, so dropout (also
HF attention dropout, which reads its attention module's mode) is off and scores are deterministic; the
references run the whole network in train mode, dropout included. BatchNorm's running
statistics, every other buffer, each module's mode and each parameter's ``requires_grad`` are restored on
exit, and the RNG is forked and seeded. Gradients are taken with ``torch.autograd.grad``: no ``.grad`` is
ever written.
"""

from __future__ import annotations

import contextlib
import copy
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from scipy.stats import rankdata
from torch import Tensor, nn
from transformers import PreTrainedModel

from distill.registry import Registry
from search.proxies.batch import ProxyBatch
from search.proxies.models import ProxyModel

Terms = dict[str, float]
LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


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


def layer_weight_grads(model: ProxyModel, batch: ProxyBatch) -> list[tuple[Tensor, Tensor]]:
    """``(W, ∂L/∂W)`` for the weight of every conv and linear layer (no biases, no norms, no embeddings, as
    in the zero-cost-NAS reference code), ``L`` = mean CE on the batch labels (zeros where unused)."""
    weights = [m.weight for m in model.module.modules() if isinstance(m, LAYERS)]
    loss = ce(model.forward(batch)[1], batch.labels)
    grads = torch.autograd.grad(loss, weights, allow_unused=True)
    return [(w, torch.zeros_like(w) if g is None else g) for w, g in zip(weights, grads, strict=True)]


@contextlib.contextmanager
def scoring(*modules: nn.Module, seed: int = 0) -> Iterator[None]:
    """Seeded RNG fork, eval mode but BatchNorm in train mode, gradients on; restores all it changed."""
    modes = [(m, m.training) for root in modules for m in root.modules()]
    flags = [(p, p.requires_grad) for root in modules for p in root.parameters()]
    buffers = [(b, b.detach().clone()) for root in modules for b in root.buffers()]
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(seed)
        try:
            for root in modules:
                root.eval()
                root.requires_grad_(True)
                for m in root.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.train()
            yield
        finally:
            with torch.no_grad():
                for b, saved in buffers:
                    b.copy_(saved)
            for m, training in modes:
                m.training = training
            for p, flag in flags:
                p.requires_grad_(flag)


def ranks(values: Sequence[float]) -> list[float]:
    """Rank of each value within ``values`` scaled to ``[0, 1]`` (ties share their mean rank; ``0.5`` alone).

    NaN ranks lowest.
    """
    n = len(values)
    if n <= 1:
        return [0.5] * n
    clean = [v if v == v else -float("inf") for v in values]
    return [(r - 1) / (n - 1) for r in rankdata(clean)]


class Proxy(ABC):
    """A zero-cost proxy; calling it scores one student: ``proxy(teacher, student, batch) -> float``.

    Higher is better. A proxy computes named raw *terms* per student (:meth:`measure`, after teacher-side
    state from :meth:`prepare`); :meth:`combine` turns the terms of a population into scores. For most
    proxies the single term is the score; rank proxies (``size_then_diswot``, ``diswot_size``) rank their
    terms within the population, so their scores compare students scored together.
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
        """Scores of a population (teacher-side work done once)."""
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

    def combine(self, terms: Sequence[Terms]) -> list[float]:
        """Scores of a population from its terms (higher = better)."""
        return [self.total(t) for t in terms]

    def _prepare(self, teacher: ProxyModel, batch: ProxyBatch) -> Any:
        return None

    @abstractmethod
    def _measure(self, student: ProxyModel, batch: ProxyBatch, state: Any) -> float | Tensor | Terms: ...


class RankProxy(Proxy):
    """A proxy of several terms, each higher-is-better: a population's score is the mean of the terms'
    ranks within it (:func:`ranks`); one candidate alone gets the sum of its raw terms. Equal mean ranks
    (terms that disagree exactly, e.g. three candidates in opposite orders) are broken by the raw
    :meth:`total`, at a weight (``TIE_BREAK``) too small to reorder unequal means:
    ``score = (1 − δ) · mean rank + δ · rank(total)``."""

    terms: ClassVar[tuple[str, ...]]
    TIE_BREAK: ClassVar[float] = 1e-6

    def total(self, terms: Terms) -> float:
        return sum(terms[k] for k in self.terms)

    def combine(self, terms: Sequence[Terms]) -> list[float]:
        per_term = [ranks([t[k] for t in terms]) for k in self.terms]
        tie = ranks([self.total(t) for t in terms])
        keep = 1 - self.TIE_BREAK  # scores stay in [0, 1]
        return [
            keep * sum(r) / len(per_term) + self.TIE_BREAK * b
            for r, b in zip(zip(*per_term, strict=True), tie, strict=True)
        ]


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
