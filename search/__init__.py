"""Pipeline search: the conditional Optuna space over ``Pipeline`` and its execution on Ray Tune."""

from search.space import FEATURES, NO_TEMPERATURE, Range, SearchSpace
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
    "NO_TEMPERATURE",
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
