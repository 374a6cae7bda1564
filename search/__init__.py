"""Pipeline search: the conditional Optuna space over ``Pipeline`` and its execution on Ray Tune."""

from search.pareto import pareto_front
from search.space import FEATURES, Range, SearchSpace
from search.tune import TuneBudget, ensure_ray, run_search
from search.tune_events import SearchCallbacks, SearchResult, TrialRecord

__all__ = [
    "FEATURES",
    "Range",
    "SearchCallbacks",
    "SearchResult",
    "SearchSpace",
    "TrialRecord",
    "TuneBudget",
    "ensure_ray",
    "pareto_front",
    "run_search",
]
