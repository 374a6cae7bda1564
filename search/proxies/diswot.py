"""``diswot`` (the paper's score); ``size_then_diswot`` (the default: body size, DisWOT between equal sizes)
and ``diswot_size`` (the mean of the two ranks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from torch import Tensor

from search.proxies._diswot import relation_gram, relation_score, semantic_grams, semantic_score
from search.proxies.base import Proxy, RankProxy, Terms, ranks, register
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


@register("diswot_size", "DisWOT + size: mean of the DisWOT rank and the body-parameter rank")
class DiswotSize(RankProxy, Diswot):
    """Over a population, ``score_i = ½ rank(−(D_sem + D_rel))_i + ½ rank(body_params)_i`` (ranks in
    ``[0, 1]``; exact ties broken by the DisWOT score, see :class:`RankProxy`). ``body_params`` leaves
    embedding tables out (:func:`body_param_count`): a pruned or factorised vocabulary is not capacity.

    On DisWOT's published CIFAR-100 space it ranks at τ +0.80 (parameter count +0.87, DisWOT +0.69); any
    weight on DisWOT's rank lowered τ on every ground truth measured (bench/RESULTS.md), so the default is
    :class:`SizeThenDiswot`. One candidate alone scores its DisWOT score.
    """

    terms: ClassVar[tuple[str, ...]] = (DISWOT, SIZE)

    def _measure(self, student: ProxyModel, batch: ProxyBatch, state: Any) -> Terms:
        out = super()._measure(student, batch, state)
        return {**out, DISWOT: Diswot.total(self, out), SIZE: float(body_param_count(student.module))}

    def total(self, terms: Terms) -> float:
        return terms[DISWOT]


@register("size_then_diswot", "Body size, DisWOT between students of equal size (default)")
class SizeThenDiswot(DiswotSize):
    """Over a population, the rank of ``(body_params, −(D_sem + D_rel))`` in lexicographic order, scaled to
    ``[0, 1]``: the bigger body ranks higher; students of exactly the same body size (head count or
    a pruned vocabulary differ) are ordered by DisWOT. One candidate alone scores its DisWOT score.

    Why: size predicted distilled accuracy better than DisWOT on every ground truth measured, within
    near-equal sizes as well, and each step of weight moved from size to DisWOT lowered Kendall τ
    (bench/RESULTS.md: DisWOT's published CIFAR-100 space, τ +0.87 vs +0.69 for DisWOT alone; our text
    space, +0.66 vs −0.02). DisWOT keeps the one decision size cannot make.
    """

    def combine(self, terms: Sequence[Terms]) -> list[float]:
        # each term's rank keeps its order (NaN lowest, see ``ranks``); the pairs sort lexicographically
        keys = list(zip(ranks([t[SIZE] for t in terms]), ranks([t[DISWOT] for t in terms]), strict=True))
        position = {k: i for i, k in enumerate(sorted(set(keys)))}
        return ranks([float(position[k]) for k in keys])
