"""``diswot_semantic``: DisWOT's semantic-similarity term; formulas in ``_diswot``."""

from __future__ import annotations

from torch import Tensor

from search.proxies._diswot import semantic_grams, semantic_score
from search.proxies.base import Proxy, register
from search.proxies.batch import ProxyBatch
from search.proxies.models import ProxyModel


@register(
    "diswot_semantic", "DisWOT semantic: −distance of row-normalised Grams of the classifier-weight gradient"
)
class DiswotSemantic(Proxy):
    """``−Σ_k ‖Ĝs_k − Ĝt_k‖²_F / (C · K)``, ``G_k = g_k g_kᵀ``, ``g = ∂CE/∂W_classifier`` (``K × C``)."""

    uses_teacher = True

    def _prepare(self, teacher: ProxyModel, batch: ProxyBatch) -> Tensor:
        return semantic_grams(teacher, batch)

    def _measure(self, student: ProxyModel, batch: ProxyBatch, state: Tensor) -> float:
        return float(semantic_score(semantic_grams(student, batch), state))
