"""``diswot_relation``: DisWOT's sample-relation term; formulas in ``_diswot``."""

from __future__ import annotations

from torch import Tensor

from search.proxies._diswot import relation_gram, relation_score
from search.proxies.base import Proxy, register
from search.proxies.batch import ProxyBatch
from search.proxies.models import ProxyModel


@register(
    "diswot_relation",
    "DisWOT relation: −distance of row-normalised batch Grams of the flattened feature maps",
)
class DiswotRelation(Proxy):
    """``−‖Ĝs − Ĝt‖²_F / B²``, ``G = A Aᵀ`` of the ``B × (C·H·W)`` (or ``B × (T·H)``, padding zeroed)
    pre-pooling features; 0 for identical networks."""

    uses_teacher = True

    def _prepare(self, teacher: ProxyModel, batch: ProxyBatch) -> Tensor:
        return relation_gram(teacher, batch)

    def _measure(self, student: ProxyModel, batch: ProxyBatch, state: Tensor) -> float:
        return float(relation_score(relation_gram(student, batch), state))
