"""Which pipeline component mattered: Optuna parameter importances over flattened pipeline documents."""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.importance import (
    BaseImportanceEvaluator,
    FanovaImportanceEvaluator,
    MeanDecreaseImpurityImportanceEvaluator,
    PedAnovaImportanceEvaluator,
)

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


def features(pipeline: dict) -> dict[str, object]:
    """Flatten a pipeline JSON document (``Pipeline.model_dump(mode="json")``) into the fixed feature set."""
    student = pipeline.get("student") or {}
    loss = pipeline.get("loss") or {}
    inter = pipeline.get("intermediate") or {}
    aug = pipeline.get("augmentation") or {}
    training = pipeline.get("training") or {}
    inter_name = str(inter.get("name", "none"))
    parts = [str(op) for op in aug.get("ops") or []]
    if float(aug.get("mixup") or 0.0) > 0:
        parts.append("mixup")
    return {
        "student": f"{student.get('layers', 2)}×{student.get('hidden', 384)}",
        "loss": str(loss.get("name", "kl")),
        "intermediate": inter_name,
        "mapping": "-" if inter_name == "none" else str(inter.get("mapping", "skip")),
        "augmentation": "+".join(parts) or "none",
        "lr": float(training.get("lr", 1e-4)),
        "temperature": float(loss.get("temperature", 4.0)),
        "kd_weight": float(loss.get("kd_weight", 1.0)),
        "epochs": int(training.get("epochs", 3)),
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
    pairs = [(doc, float(acc)) for doc, acc in trials[-max_trials:] if acc is not None and math.isfinite(acc)]
    if len(pairs) < 4 or len({acc for _, acc in pairs}) < 2:
        return {}
    params, dists = _encode([features(doc) for doc, _ in pairs])
    if not dists:
        return {}
    with _quiet_optuna():
        study = optuna.create_study(direction="maximize")
    study.add_trials(
        [
            optuna.trial.create_trial(params=p, distributions=dists, value=acc)
            for p, (_, acc) in zip(params, pairs, strict=True)
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
