"""``diswot`` (the paper's score) and ``diswot_size`` (DisWOT and the student's body size, by rank)."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from search.proxies._diswot import relation_gram, relation_score, semantic_grams, semantic_score
from search.proxies.base import Proxy, RankProxy, Terms, register
from search.proxies.batch import ProxyBatch
from search.proxies.models import ProxyModel
from search.proxies.params import body_param_count

SEMANTIC, RELATION, DISWOT, SIZE = "diswot_semantic", "diswot_relation", "diswot", "body_params"


@register("diswot", "DisWOT as published: −(D_sem + D_rel), semantic and relation Gram distances")
class Diswot(Proxy):
    """``score = −(D_sem + D_rel)`` (paper eq. 6; code: the sum of the two metrics), an absolute score.

    Both distances are in ``[0, 4]``, but ``D_sem`` is larger than ``D_rel`` by orders of magnitude on
    every space we measured, so the sum ranks like the semantic term; on DisWOT's own published ground
    truth that is what ranks best (bench/RESULTS.md: τ +0.69 vs +0.51 for a mean of the two terms' ranks).
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

    def total(self, terms: Terms) -> float:
        return terms[SEMANTIC] + terms[RELATION]


@register("diswot_size", "DisWOT + size: mean of the DisWOT rank and the body-parameter rank (default)")
class DiswotSize(RankProxy, Diswot):
    """Over a population, ``score_i = ½ rank(−(D_sem + D_rel))_i + ½ rank(body_params)_i`` (ranks in
    ``[0, 1]``; exact ties broken by the DisWOT score, see :class:`RankProxy`). ``body_params`` leaves
    embedding tables out (:func:`body_param_count`): a pruned or factorised vocabulary is not capacity.

    Why: across sizes, size predicts distilled accuracy better than DisWOT's terms (DisWOT's published
    CIFAR-100 space: τ +0.87 for parameter count, +0.69 for DisWOT); between students of equal size, size
    says nothing and the order is DisWOT's. One candidate alone scores its DisWOT score.
    """

    terms: ClassVar[tuple[str, ...]] = (DISWOT, SIZE)

    def _measure(self, student: ProxyModel, batch: ProxyBatch, state: Any) -> Terms:
        out = super()._measure(student, batch, state)
        return {**out, DISWOT: Diswot.total(self, out), SIZE: float(body_param_count(student.module))}

    def total(self, terms: Terms) -> float:
        return terms[DISWOT]
