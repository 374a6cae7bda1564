"""Pipeline search: the conditional Optuna space over ``Pipeline`` and its execution on Ray Tune."""

from search.space import FEATURES, Range, SearchSpace
from search.tune import (
    Budget,
    SearchCallbacks,
    SearchResult,
    TrialRecord,
    ensure_ray,
    pareto_front,
    run_search,
)

__all__ = [
    "FEATURES",
    "Budget",
    "Range",
    "SearchCallbacks",
    "SearchResult",
    "SearchSpace",
    "TrialRecord",
    "ensure_ray",
    "pareto_front",
    "run_search",
]
