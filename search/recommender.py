"""AutoDistiller's recommender: predict, from finished trials of other tasks, how well a pipeline will do on
a new one, and rank a job's candidate pipelines before any of them is trained.

A training row is one finished trial: the task's meta-features (:mod:`search.metafeatures`), the pipeline
(JSON), and its accuracy as a ratio to the teacher's. The model is scikit-learn gradient boosting over the
meta-features and a fixed flattening of the pipeline (:func:`pipeline_features`; the student is described
relative to the teacher, so students of different teachers compare). With too few rows, :func:`cold_start`
gives Distiller's findings as priors. Rows come from the shipped meta-dataset (``search/priors/meta.csv``,
built by ``bench/build_meta.py``) and from the trial database.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.feature_extraction import DictVectorizer
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import Pipeline as SkPipeline

from distill.pipeline import Pipeline, describe
from search.flat import flatten
from search.grid import grid
from search.metafeatures import META_KEYS
from search.space import SearchSpace

#: Fewer training rows than this, or rows from a single task: the priors of :func:`cold_start` instead.
MIN_ROWS = 16
#: Columns a meta-dataset file must have (besides the meta-features).
ROW_KEYS = ("task", "pipeline", "accuracy", "ratio")
#: Pipeline feature → the component it belongs to (for importances).
COMPONENTS = {
    "student": "student",
    "loss": "output loss",
    "temperature": "output loss",
    "kd_weight": "output loss",
    "hard_weight": "output loss",
    "inter": "intermediate objective",
    "mapping": "intermediate objective",
    "mi_alpha": "intermediate objective",
    "aug": "augmentation",
    "mixup": "augmentation",
    "lr": "training",
    "epochs": "training",
    "batch": "training",
}


def pipeline_features(pipeline: Pipeline, meta: Mapping[str, float]) -> dict[str, float | str]:
    """The pipeline's flattening (``search.flat``) as model inputs: numbers on log scales, names as
    categories (one-hot encoded), the student relative to the teacher; what does not apply gets a fixed
    out-of-range value."""
    f = flatten(pipeline)
    has_inter = f["inter"] != "none"
    return {
        "student_depth": f["student_layers"] / max(1.0, meta.get("teacher_layers", 1.0)),
        "student_width": f["student_hidden"] / max(1.0, meta.get("teacher_hidden", 1.0)),
        "student_init": f["student_init"],
        "loss": f["loss"],
        "temperature": math.log(f["temperature"]) if "temperature" in f else 0.0,
        "kd_weight": math.log10(f["kd_weight"]) if f.get("kd_weight", 0) > 0 else -3.0,
        "hard_weight": f.get("hard_weight", pipeline.loss.hard_weight),
        "inter": f["inter"],
        "inter_features": f["inter_features"] if has_inter else "none",
        "mapping": f["mapping"] if has_inter else "none",
        "inter_weight": math.log10(f["inter_weight"]) if has_inter and f["inter_weight"] > 0 else -3.0,
        "mi_alpha": f.get("mi_alpha", 0.0),
        "aug": f["aug"],
        "aug_p": f.get("aug_p", 0.0),
        "aug_copies": float(f.get("aug_copies", 0)),
        "mixup": f.get("mixup_alpha", 0.0),
        "lr": math.log10(f["lr"]),
        "epochs": float(f["epochs"]),
        "batch": math.log2(f["batch_size"]),
    }


def features(meta: Mapping[str, float], pipeline: Pipeline) -> dict[str, float | str]:
    """One model input: the meta-features followed by the pipeline's."""
    return {**{f"meta.{k}": float(meta[k]) for k in META_KEYS}, **pipeline_features(pipeline, meta)}


def signature(pipeline: Pipeline) -> tuple[str, str, str, str, bool]:
    """The pipeline's combination of components: loss, objective (and features), augmentation, mixup."""
    inter, aug = pipeline.intermediate, pipeline.augmentation
    return pipeline.loss.name, inter.name, inter.features, "+".join(aug.ops), aug.mixup > 0


def component(feature: str) -> str:
    """The component a (possibly one-hot ``name=value``) feature belongs to."""
    if feature.startswith("meta."):
        return "task"
    base = feature.split("=", 1)[0]
    return next((c for prefix, c in COMPONENTS.items() if base.startswith(prefix)), "other")


# --------------------------------------------------------------------------- rows


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    """Read a meta-dataset CSV (as written by ``bench/build_meta.py``); a clear error if it is malformed."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [k for k in (*ROW_KEYS, *META_KEYS) if k not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path} is not a meta-dataset: it lacks the column(s) {missing}")
        rows = []
        for i, raw in enumerate(reader, start=2):
            try:
                row: dict[str, Any] = {k: float(raw[k]) for k in META_KEYS}
                row.update(task=raw["task"], pipeline=raw["pipeline"], accuracy=float(raw["accuracy"]))
                row["ratio"] = float(raw["ratio"])
                row["wall_seconds"] = float(raw["wall_seconds"]) if raw.get("wall_seconds") else None
                Pipeline.model_validate_json(row["pipeline"])
            except (TypeError, ValueError) as e:
                raise ValueError(f"{path}, line {i}: {str(e).splitlines()[0]}") from None
            rows.append(row)
    return rows


def rows_fingerprint(rows: Iterable[Mapping[str, Any]]) -> str:
    """A short hash of what a model is trained on (same rows → same model)."""
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps([r["task"], r["pipeline"], round(float(r["ratio"]), 6)]).encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- the model


def make_model(seed: int = 0) -> SkPipeline:
    """The unfitted model: one-hot encoding of the named choices, then gradient-boosted trees."""
    gbr = GradientBoostingRegressor(
        n_estimators=300, learning_rate=0.05, max_depth=3, subsample=0.8, min_samples_leaf=3,
        random_state=seed,
    )  # fmt: skip
    return SkPipeline([("onehot", DictVectorizer(sparse=False)), ("gbr", gbr)])


def design(rows: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, float | str]], np.ndarray]:
    """Model inputs and targets (accuracy ratio to the teacher) of meta-dataset rows."""
    x = [features(r, Pipeline.model_validate_json(r["pipeline"])) for r in rows]
    return x, np.array([float(r["ratio"]) for r in rows])


def task_cv_mae(rows: Sequence[Mapping[str, Any]], folds: int = 8, seed: int = 0) -> float | None:
    """Mean absolute error of the predicted ratio on tasks held out of training (grouped k-fold, at most
    ``folds`` folds); ``None`` with fewer than two tasks."""
    groups = [r["task"] for r in rows]
    n = min(folds, len(set(groups)))
    if n < 2:
        return None
    x, y = design(rows)
    scores = cross_val_score(
        make_model(seed), x, y, groups=groups, cv=GroupKFold(n), scoring="neg_mean_absolute_error"
    )
    return round(float(-scores.mean()), 5)


@dataclass(frozen=True)
class Scored:
    """A pipeline and its predicted accuracy ratio to the teacher; ``seen``: its every component value lies
    within what the training trials covered (otherwise the prediction extrapolates)."""

    pipeline: Pipeline
    ratio: float
    seen: bool = True


def support(x: Sequence[Mapping[str, float | str]]) -> dict[str, set[str] | tuple[float, float]]:
    """The pipeline feature values the training rows cover: names seen, numeric ranges."""
    out: dict[str, Any] = {}
    for row in x:
        for k, v in row.items():
            if k.startswith("meta."):
                continue
            if isinstance(v, str):
                out.setdefault(k, set()).add(v)
            else:
                lo, hi = out.get(k, (v, v))
                out[k] = (min(lo, v), max(hi, v))
    return out


@dataclass(frozen=True)
class Neighbour:
    """A past task near the new one in standardised meta-feature space, and its best measured pipeline."""

    task: str
    distance: float
    best_ratio: float
    best_pipeline: str  # one line (``distill.pipeline.describe``)


@dataclass
class Recommender:
    """Gradient boosting over (meta-features, pipeline) → accuracy ratio to the teacher."""

    rows: list[dict[str, Any]]
    model: SkPipeline
    fingerprint: str
    tasks: list[str] = field(default_factory=list)
    covered: dict[str, Any] = field(default_factory=dict)  # see :func:`support`

    @classmethod
    def fit(cls, rows: Sequence[Mapping[str, Any]], *, seed: int = 0) -> Recommender:
        """Train on meta-dataset rows (see :func:`load_rows`); at least :data:`MIN_ROWS` from two tasks."""
        rows = [dict(r) for r in rows]
        tasks = sorted({r["task"] for r in rows})
        if len(rows) < MIN_ROWS or len(tasks) < 2:
            raise ValueError(
                f"the recommender needs at least {MIN_ROWS} finished trials from 2 tasks, "
                f"got {len(rows)} from {len(tasks)}"
            )
        x, y = design(rows)
        return cls(rows, make_model(seed).fit(x, y), rows_fingerprint(rows), tasks, support(x))

    def seen(self, meta: Mapping[str, float], pipeline: Pipeline) -> bool:
        """Whether every pipeline feature of ``pipeline`` lies within what the training trials covered (a
        new task's meta-features are not checked: a new task is new)."""
        for k, v in pipeline_features(pipeline, meta).items():
            have = self.covered.get(k)
            if have is None:
                return False
            if isinstance(v, str):
                if v not in have:
                    return False
            elif not have[0] - 1e-9 <= v <= have[1] + 1e-9:
                return False
        return True

    def predict(self, meta: Mapping[str, float], pipelines: Sequence[Pipeline]) -> np.ndarray:
        """Predicted accuracy ratio to the teacher of each pipeline on a task with ``meta``."""
        if not pipelines:
            return np.zeros(0)
        return self.model.predict([features(meta, p) for p in pipelines])

    def rank(
        self, meta: Mapping[str, float], pipelines: Sequence[Pipeline], k: int = 3, *, distinct: bool = True
    ) -> list[Scored]:
        """The ``k`` pipelines with the highest predicted ratio, best first (ties: earlier first), among those
        within what the training trials covered (:meth:`seen`; all of them if none is). With ``distinct``,
        one per combination of components (:func:`signature`): warm starts that differ in what they try,
        rather than one recipe on several students or learning rates."""
        unique = list({p.key(): p for p in pipelines}.values())
        known = [p for p in unique if self.seen(meta, p)]
        unique = known or unique
        scores = self.predict(meta, unique)
        out: list[Scored] = []
        seen: set[tuple] = set()
        for i in sorted(range(len(unique)), key=lambda i: -scores[i]):
            sig = signature(unique[i]) if distinct else (i,)
            if sig not in seen:
                seen.add(sig)
                out.append(Scored(unique[i], float(scores[i]), seen=bool(known)))
            if len(out) == k:
                break
        return out

    def nearest(self, meta: Mapping[str, float], k: int = 3) -> list[Neighbour]:
        """The ``k`` training tasks nearest to ``meta`` (meta-features standardised over the tasks)."""
        by_task: dict[str, list[dict[str, Any]]] = {}
        for r in self.rows:
            by_task.setdefault(r["task"], []).append(r)
        names = list(by_task)
        table = np.array([[float(by_task[t][0][key]) for key in META_KEYS] for t in names])
        mean, std = table.mean(0), table.std(0)
        std[std == 0] = 1.0
        query = (np.array([float(meta[key]) for key in META_KEYS]) - mean) / std
        dist = np.linalg.norm((table - mean) / std - query, axis=1)
        out = []
        for i in np.argsort(dist)[:k]:
            best = max(by_task[names[i]], key=lambda r: float(r["ratio"]))
            pipeline = Pipeline.model_validate_json(best["pipeline"])
            ratio = float(best["ratio"])
            out.append(Neighbour(names[i], round(float(dist[i]), 3), ratio, describe(pipeline)))
        return out

    def importance(self) -> dict[str, float]:
        """Share of the model's impurity decrease per component (``task``: the meta-features); sums to 1."""
        names = self.model.named_steps["onehot"].get_feature_names_out()
        weights = self.model.named_steps["gbr"].feature_importances_
        out: dict[str, float] = {}
        for name, w in zip(names, weights, strict=True):
            out[component(str(name))] = out.get(component(str(name)), 0.0) + float(w)
        total = sum(out.values()) or 1.0
        return {k: round(v / total, 4) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}


# --------------------------------------------------------------------------- candidates and priors


def candidate_pipelines(space: SearchSpace, *, samples: int = 256, seed: int = 0) -> list[Pipeline]:
    """What the recommender scores for a job: the component grid for every candidate student (at the
    space's training settings), then ``samples`` pipelines drawn at random from the space."""
    out = [p for s in space.candidates for p in grid(s, space.training).values() if space.contains(p)]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(samples):
        trial = study.ask()
        space.suggest(trial)
        out.append(space.to_pipeline(trial.params))
    return list({p.key(): p for p in out}.values())


#: Distiller's findings, the priors used with no past jobs (documented in the README).
PRIOR_NOTES = (
    "no past jobs to learn from yet: Distiller's priors — an MI-α intermediate objective (the best "
    "objective in its study) with KL at T=4 on the reference student"
)


def cold_start(space: SearchSpace, n_train: int, k: int = 3) -> list[Pipeline]:
    """Prior pipelines for a job with no past data, best first, those of ``space`` only: KL (T=4) +
    MI-α (α=0.5, hidden states, skip mapping); with EDA augmentation first when the data is small
    (< 2,000 examples: augmentation helps small data); then hidden-state MSE; then vanilla KD."""
    student, training = space.candidates[0], space.training
    points = [("kl", "mi_alpha", "none"), ("kl", "hidden_mse", "none"), ("kl", "none", "none")]
    if n_train < 2000:
        points.insert(0, ("kl", "mi_alpha", "eda_swap"))
    table = grid(student, training)
    return [table[p] for p in points if space.contains(table[p])][:k]
