"""``diswot_relation``: DisWOT's sample-relation term (batch Gram of pooled features); see ``_diswot``."""

from __future__ import annotations

from torch import Tensor

from search.proxies._diswot import relation_gram, relation_score
from search.proxies.base import Proxy, ProxyBatch, ProxyModel, register


@register(
    "diswot_relation", "DisWOT sample relation: −distance of row-normalised batch Grams of pooled features"
)
class DiswotRelation(Proxy):
    """``−‖Ĝs − Ĝt‖²_F / B²`` with ``G = Z Zᵀ`` of the ``(B, C)`` pooled features; 0 for identical nets."""

    uses_teacher = True

    def _prepare(self, teacher: ProxyModel, batch: ProxyBatch) -> Tensor:
        return relation_gram(teacher, batch)

    def _measure(self, student: ProxyModel, batch: ProxyBatch, state: Tensor) -> float:
        return float(relation_score(relation_gram(student, batch), state))
