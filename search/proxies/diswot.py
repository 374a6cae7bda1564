"""``diswot`` and ``diswot_size``: DisWOT's two terms (and the student's size) combined by rank."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from distill.student import count_params
from search.proxies._diswot import relation_gram, relation_score, semantic_grams, semantic_score
from search.proxies.base import RankProxy, Terms, register
from search.proxies.batch import ProxyBatch
from search.proxies.models import ProxyModel

SEMANTIC, RELATION, PARAMS = "diswot_semantic", "diswot_relation", "params"


@register("diswot", "DisWOT: mean rank of the semantic and relation terms within the population scored")
class Diswot(RankProxy):
    """Over a population, ``score_i = ½ (rank(−D_sem)_i + rank(−D_rel)_i)`` with ranks scaled to ``[0, 1]``.

    Where we differ from the paper: it adds the raw terms (``−(D_sem + D_rel)``, what :meth:`score` returns
    for one student), but their scales differ by orders of magnitude, so the sum is the semantic term alone;
    ranking each term within the population weighs them equally and needs no reference architecture.
    """

    uses_teacher = True
    terms: ClassVar[tuple[str, ...]] = (SEMANTIC, RELATION)

    def _prepare(self, teacher: ProxyModel, batch: ProxyBatch) -> tuple[Tensor, Tensor]:
        return semantic_grams(teacher, batch), relation_gram(teacher, batch)

    def _measure(self, student: ProxyModel, batch: ProxyBatch, state: Any) -> Terms:
        sem_t, rel_t = state
        sem = semantic_score(semantic_grams(student, batch), sem_t)
        rel = relation_score(relation_gram(student, batch), rel_t)
        return {SEMANTIC: float(sem), RELATION: float(rel)}


@register("diswot_size", "DisWOT + size: mean of the DisWOT rank and the parameter-count rank")
class DiswotSize(Diswot):
    """``score_i = ½ diswot_i + ½ rank(params)_i`` = ``¼ rank(−D_sem) + ¼ rank(−D_rel) + ½ rank(params)``."""

    terms: ClassVar[tuple[str, ...]] = (SEMANTIC, RELATION, PARAMS, PARAMS)

    def _measure(self, student: ProxyModel, batch: ProxyBatch, state: Any) -> Terms:
        return {**super()._measure(student, batch, state), PARAMS: float(count_params(student.module))}

    def total(self, terms: Terms) -> float:
        return terms[SEMANTIC] + terms[RELATION]
