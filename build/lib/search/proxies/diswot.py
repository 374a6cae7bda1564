"""``diswot``: DisWOT = z(semantic) + z(relation), each term standardised over the candidate set."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from search.proxies._diswot import (
    GramOver,
    SemanticState,
    Weighting,
    relation_gram,
    relation_score,
    semantic_grams,
    semantic_score,
)
from search.proxies.base import Proxy, ProxyBatch, ProxyModel, Terms, register, zscore

SEMANTIC, RELATION = "diswot_semantic", "diswot_relation"


@register("diswot", "DisWOT: z-scored semantic + z-scored relation similarity over the candidate set")
class Diswot(Proxy):
    """Over candidates ``i``: ``score_i = z(sem)_i + z(rel)_i``, ``z(x)_i = (x_i − mean x) / std x``
    (population std; a constant term contributes 0). :meth:`score` on one student returns the raw
    ``sem + rel``; :meth:`combine` with ``reference`` standardises with a fixed set's statistics."""

    uses_teacher = True

    def __init__(self, seed: int = 0, *, over: GramOver = "auto", weighting: Weighting = "grad") -> None:
        super().__init__(seed)
        self.over: GramOver = over
        self.weighting: Weighting = weighting

    def _prepare(self, teacher: ProxyModel, batch: ProxyBatch) -> tuple[SemanticState, Tensor]:
        return semantic_grams(teacher, batch, self.over, self.weighting), relation_gram(teacher, batch)

    def _measure(self, student: ProxyModel, batch: ProxyBatch, state: Any) -> Terms:
        sem_t, rel_t = state
        sem = semantic_score(semantic_grams(student, batch, self.over, self.weighting), sem_t)
        return {SEMANTIC: float(sem), RELATION: float(relation_score(relation_gram(student, batch), rel_t))}

    def total(self, terms: Terms) -> float:
        return terms[SEMANTIC] + terms[RELATION]

    def combine(self, terms: Sequence[Terms], reference: Sequence[Terms] | None = None) -> list[float]:
        ref = terms if reference is None else reference
        parts = [zscore([t[k] for t in terms], [r[k] for r in ref]) for k in (SEMANTIC, RELATION)]
        return [s + r for s, r in zip(*parts, strict=True)]
