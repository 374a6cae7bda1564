"""Which pipeline component mattered: Optuna parameter importances over flattened pipelines (read-only
analysis of finished trials; the API and the dashboard show it)."""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.importance import (
    BaseImportanceEvaluator,
    FanovaImportanceEvaluator,
    MeanDecreaseImpurityImportanceEvaluator,
    PedAnovaImportanceEvaluator,
)

from distill.pipeline import Pipeline
from search.flat import aug_ops, flatten

CATEGORICAL = ("student", "loss", "intermediate", "mapping", "augmentation")
NUMERIC = ("lr", "temperature", "kd_weight", "epochs")
_LOG = {"lr", "temperature", "kd_weight"}  # log scale when the seen range is positive
_INT = {"epochs"}
# fANOVA enumerates every combination of split one-hot columns of a feature within a tree: keep the trees
# shallow and the categories few, so 500 trials take well under a second.
_MAX_DEPTH = 5
_N_TREES = 32
_MAX_CHOICES = 12
_OTHER = "other"
_verbosity_lock = threading.Lock()


def features(doc: Mapping[str, Any]) -> dict[str, object] | None:
    """A pipeline JSON document as the fixed feature set, through the one flattening (``search.flat``);
    ``None`` for a document that is no longer a valid pipeline (e.g. it names a plug-in not loaded here)."""
    try:
        pipeline = Pipeline.model_validate(doc)
    except ValueError:
        return None
    f = flatten(pipeline)
    inter = f["inter"]
    parts = aug_ops(f["aug"]) + (["mixup"] if f["mixup"] else [])
    return {
        "student": f"{f['student_layers']}×{f['student_hidden']}",
        "loss": f["loss"],
        "intermediate": inter,
        "mapping": "-" if inter == "none" else f["mapping"],
        "augmentation": "+".join(parts) or "none",
        "lr": float(f["lr"]),
        "temperature": float(f.get("temperature", pipeline.loss.temperature)),
        "kd_weight": float(f.get("kd_weight", pipeline.loss.kd_weight)),
        "epochs": int(f["epochs"]),
    }


def _encode(rows: list[dict[str, object]]) -> tuple[list[dict[str, object]], dict[str, BaseDistribution]]:
    """Optuna params and distributions for the features that vary; rare categories fold into ``other``."""
    dists: dict[str, BaseDistribution] = {}
    params: list[dict[str, object]] = [{} for _ in rows]
    for name in CATEGORICAL:
        counts = Counter(str(r[name]) for r in rows)
        if len(counts) < 2:
            continue
        keep = (
            {c for c, _ in counts.most_common(_MAX_CHOICES - 1)}
            if len(counts) > _MAX_CHOICES
            else set(counts)
        )
        for p, r in zip(params, rows, strict=True):
            p[name] = str(r[name]) if str(r[name]) in keep else _OTHER
        dists[name] = CategoricalDistribution(sorted({p[name] for p in params}))  # type: ignore[misc]
    for name in NUMERIC:
        values = [r[name] for r in rows]
        lo, hi = min(values), max(values)  # type: ignore[type-var]
        if lo == hi:
            continue
        if name in _INT:
            dists[name] = IntDistribution(int(lo), int(hi))  # type: ignore[call-overload]
        else:
            dists[name] = FloatDistribution(float(lo), float(hi), log=name in _LOG and float(lo) > 0)  # type: ignore[arg-type]
        for p, v in zip(params, values, strict=True):
            p[name] = v
    return params, dists


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Silence Optuna's INFO log line on study creation for the duration of the block."""
    with _verbosity_lock:
        level = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            yield
        finally:
            optuna.logging.set_verbosity(level)


def pipeline_importance(
    trials: list[tuple[dict, float]], *, max_trials: int = 500, seed: int = 0
) -> dict[str, float]:
    """Importance of each varying pipeline feature for accuracy: normalised to sum 1, sorted descending.

    ``trials`` are (pipeline document, accuracy) pairs; the most recent ``max_trials`` are used. fANOVA
    first, then PED-ANOVA, then mean decrease in impurity if an evaluator fails. ``{}`` when fewer than 4
    usable trials remain or neither the features nor the accuracy vary.
    """
    rows = [
        (f, float(acc))
        for doc, acc in trials[-max_trials:]
        if acc is not None and math.isfinite(acc) and (f := features(doc)) is not None
    ]
    if len(rows) < 4 or len({acc for _, acc in rows}) < 2:
        return {}
    params, dists = _encode([f for f, _ in rows])
    if not dists:
        return {}
    with _quiet_optuna():
        study = optuna.create_study(direction="maximize")
    study.add_trials(
        [
            optuna.trial.create_trial(params=p, distributions=dists, value=acc)
            for p, (_, acc) in zip(params, rows, strict=True)
        ]
    )
    evaluators: list[BaseImportanceEvaluator] = [
        FanovaImportanceEvaluator(n_trees=_N_TREES, max_depth=_MAX_DEPTH, seed=seed),
        PedAnovaImportanceEvaluator(),
        MeanDecreaseImpurityImportanceEvaluator(n_trees=_N_TREES, max_depth=_MAX_DEPTH, seed=seed),
    ]
    for evaluator in evaluators:
        try:
            raw = {k: float(v) for k, v in evaluator.evaluate(study).items()}
        except Exception:
            continue
        raw = {k: v if math.isfinite(v) and v > 0 else 0.0 for k, v in raw.items()}
        total = sum(raw.values())
        if total > 0:
            return dict(sorted(((k, v / total) for k, v in raw.items()), key=lambda kv: -kv[1]))
    return {}
