"""``diswot_semantic``: DisWOT's semantic-similarity term (CAM Gram matrices); formulas in ``_diswot``."""

from __future__ import annotations

from search.proxies._diswot import (
    GramOver,
    SemanticState,
    Weighting,
    semantic_grams,
    semantic_score,
)
from search.proxies.base import Proxy, ProxyBatch, ProxyModel, register


@register("diswot_semantic", "DisWOT semantic similarity: −distance of row-normalised Grad-CAM Gram matrices")
class DiswotSemantic(Proxy):
    """``−Σ_b ‖Ĝs_b − Ĝt_b‖²_F / (n_b · B)`` of per-sample class-activation-map Grams (tokens × tokens for
    transformers, channels × channels for CNNs by default; ``over`` and ``weighting`` override)."""

    uses_teacher = True

    def __init__(self, seed: int = 0, *, over: GramOver = "auto", weighting: Weighting = "grad") -> None:
        super().__init__(seed)
        self.over: GramOver = over
        self.weighting: Weighting = weighting

    def _prepare(self, teacher: ProxyModel, batch: ProxyBatch) -> SemanticState:
        return semantic_grams(teacher, batch, self.over, self.weighting)

    def _measure(self, student: ProxyModel, batch: ProxyBatch, state: SemanticState) -> float:
        return float(semantic_score(semantic_grams(student, batch, self.over, self.weighting), state))
