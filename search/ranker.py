"""A pipeline ranker learned from anyone's past trials (:mod:`search.meta_rows`), and its honest check.

* Target: a trial's **percentile within its task** (0 = the task's worst trial, 1 = its best; ties share),
  so tasks with different scales, metrics (negative ones too) and teachers compare, and what is learned is
  which pipelines beat which — what a one-shot pick needs. Two objectives (``objective``):
  ``lambdarank`` (the default): LightGBM's LambdaMART, each task a query, the percentile cut into
  :data:`LEVELS` relevance grades (gain 2^grade − 1: the top of a task counts most), its scores mapped
  onto the percentile scale by a least-squares line per model (order kept) so they read as percentiles;
  ``percentile``: regression on the percentile. Measured side by side (``bench/ranker_objectives.py``,
  bench/RESULTS.md), LambdaMART's first pick and top 3 were the better on most bag seeds and datasets.
* Features: the pipeline JSON flattened generically (:func:`pipeline_vector`): numbers as they are (trees
  need no scaling), names one-hot (``loss.name=kl``), lists of names multi-hot (``augmentation.ops=eda_swap``:
  an op set, whatever its order), and a component's parameters *missing* (NaN) where the pipeline does not
  use them (seeds are no features: ``search.meta_rows.not_a_choice``); plus the rows' numeric meta-feature
  columns (NaN where missing). Names this installation lacks are features like any other.
* Model: gradient-boosted trees (native NaN handling, no row subsampling), bagged over folds of the
  *datasets* (:func:`folds`: ``bags`` models, each leaving one fold out; with no more datasets than
  ``bags``, one model without each dataset, the same for any seed): the mean is the prediction, the
  jackknife's standard error its uncertainty. Bootstrap resamples of the tasks made the first pick hang
  on the bag seed (one-shot regret 1.44 to 2.29 points over three seeds on ``bench/recommend.py``; 10
  folds: 1.63 to 1.69; 1.47 on every seed once the bench's arms picked among the grid's pipelines only).
  Deterministic for given rows and seed.
* Meta-features (``meta``): ``use`` them (the default), ``ignore`` them, or ``auto``: only where a
  leave-one-dataset-out check on the rows says they help (``search.ranker_eval.meta_helps``; ≥ 4 datasets,
  three bags per fit). With few datasets they can let the trees memorise tasks (with percentile regression
  on 7 of the shipped datasets: one-shot regret 1.70 points with them, 1.46 without); on all 12 they help
  (``recommender evaluate --by-dataset``, 716 rows: LambdaMART 1.17 with them, 2.45 without; percentile
  1.82 vs 2.75; the best fixed pipeline 2.67); ``auto``, deciding inside every fold, was worse than
  ``use`` (1.44): bench/RESULTS.md.
* Ranking: by predicted percentile; ties (within 1e-9) go to the lower uncertainty, then the cheaper
  pipeline (:func:`cost`).
* :func:`evaluate`: leave one task out; on the held-out task the pick is made among its measured pipelines;
  one-shot and top-3 regret (best score − picked) against the best fixed pipeline (the one with the best
  mean percentile over the other tasks) and a uniformly random pick.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from search.meta_rows import MetaRow, RowsError, not_a_choice

Vector = dict[str, float]
#: the ranker's training objectives (see the module docstring); the first is the default
OBJECTIVES = ("lambdarank", "percentile")
#: LambdaMART's relevance grades: a task's percentile cut into this many
LEVELS = 10


def pipeline_vector(pipeline: Mapping[str, Any], prefix: str = "") -> Vector:
    """The raw pipeline JSON as named numbers (see the module docstring); absent keys are missing."""
    out: Vector = {}
    for key, value in pipeline.items():
        name = f"{prefix}{key}"
        if not_a_choice(name):
            continue
        if isinstance(value, int | float):  # bool too
            out[name] = float(value)
        elif isinstance(value, str):
            out[f"{name}={value}"] = 1.0
        elif isinstance(value, Mapping):
            out.update(pipeline_vector(value, f"{name}."))
        elif isinstance(value, list | tuple):
            if all(isinstance(v, str) for v in value):
                out.update({f"{name}={v}": 1.0 for v in value})
                out[f"{name}.count"] = float(len(value))
            elif all(isinstance(v, Mapping) for v in value):  # e.g. training stages
                out[f"{name}.count"] = float(len(value))
            else:
                out.update(
                    {f"{name}.{i}": float(v) for i, v in enumerate(value) if isinstance(v, int | float)}
                )
    return out


def cost(pipeline: Mapping[str, Any]) -> float:
    """A relative training cost: student layers × hidden² × epochs × (1 + augmented copies)."""
    student, training = pipeline.get("student") or {}, pipeline.get("training") or {}
    copies = (pipeline.get("augmentation") or {}).get("copies") or 0
    return (
        float(student.get("layers", 1)) * float(student.get("hidden", 1)) ** 2
        * float(training.get("epochs", 1)) * (1 + float(copies))
    )  # fmt: skip


def dataset_of(task: str) -> str:
    """The dataset of a task name ``dataset/variant`` (the shipped rows' convention): checks leave a whole
    dataset out, never just one of its variants. A content fingerprint (``rotten_tomatoes#6b380f0b/250≤14M``:
    the job's sample of the data) is dropped, so samples of one corpus at several sizes are one dataset;
    two different files of one name are then one dataset too, which makes a check stricter, never leakier."""
    return bare_task(task).split("/", 1)[0]


def bare_task(task: str) -> str:
    """A task name without its data fingerprint: ``rotten_tomatoes#6b380f0b/250≤14M`` →
    ``rotten_tomatoes/250≤14M``."""
    return re.sub(r"#[^/]*", "", task, count=1)


def folds(tasks: Sequence[str], bags: int, seed: int = 0) -> list[list[int]]:
    """The tasks (indices into ``tasks``) each bagged model trains on: the datasets (:func:`dataset_of`)
    shuffled by ``seed`` and dealt to ``min(bags, datasets)`` folds, and every model leaves one fold out;
    with no more datasets than ``bags``, one model leaves out each dataset (the jackknife: the same for any
    seed). One bag, or one dataset: every task."""
    names = sorted({dataset_of(t) for t in tasks})
    k = min(bags, len(names))
    if k < 2:
        return [list(range(len(tasks)))]
    if len(names) > k:
        names = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    fold = {name: i % k for i, name in enumerate(names)}
    return [[i for i, t in enumerate(tasks) if fold[dataset_of(t)] != b] for b in range(k)]


def percentiles(rows: Sequence[MetaRow]) -> np.ndarray:
    """Each row's percentile within its task (0 worst … 1 best; a lone trial 0.5)."""
    from scipy.stats import rankdata  # loads here: the command line starts without it

    out = np.zeros(len(rows))
    by_task: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        by_task[r.task].append(i)
    for idx in by_task.values():
        scores = [rows[i].score for i in idx]
        ranks = rankdata(scores) - 1
        out[idx] = ranks / (len(idx) - 1) if len(idx) > 1 else 0.5
    return out


def relevance(pct: np.ndarray, levels: int = LEVELS) -> np.ndarray:
    """Percentiles as integer relevance grades 0 … ``levels`` − 1 (nearest grade, halves up)."""
    return np.floor(pct * (levels - 1) + 0.5).astype(int)


class _OnPercentiles:
    """A LambdaMART model whose scores are mapped onto the percentile scale: ``a + b × score`` fitted by
    least squares on its training rows (``b`` kept positive, so the model's order stands)."""

    def __init__(self, model: Any, x: np.ndarray, pct: np.ndarray) -> None:
        self.model = model
        raw = model.predict(x)
        var = float(np.var(raw))
        self.b = max(float(np.cov(raw, pct, bias=True)[0, 1]) / var, 1e-6) if var > 0 else 1.0
        self.a = float(np.mean(pct)) - self.b * float(np.mean(raw))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.a + self.b * self.model.predict(x)


def _model(objective: str, x: np.ndarray, pct: np.ndarray, sizes: Sequence[int], seed: int) -> Any:
    """One model fitted on rows ``x``, their tasks' percentiles ``pct``; the tasks are consecutive runs of
    ``sizes`` rows (LambdaMART's queries). The libraries load here, as scipy's in
    :func:`percentiles`."""
    if objective == "percentile":
        from sklearn.ensemble import HistGradientBoostingRegressor

        return HistGradientBoostingRegressor(
            max_iter=150, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=5,
            l2_regularization=1.0, early_stopping=False, random_state=seed,
        ).fit(x, pct)  # fmt: skip
    import lightgbm

    model = lightgbm.LGBMRanker(
        objective="lambdarank", n_estimators=150, learning_rate=0.05, num_leaves=15, min_child_samples=5,
        reg_lambda=1.0, label_gain=[2.0**g - 1 for g in range(LEVELS)], random_state=seed, n_jobs=1,
        deterministic=True, force_row_wise=True, verbose=-1,
    )  # fmt: skip
    return _OnPercentiles(model.fit(x, relevance(pct), group=sizes), x, pct)


@dataclass
class Ranker:
    """Bagged gradient boosting over (pipeline, meta-features) → within-task percentile."""

    columns: list[str]
    models: list[Any]  # each with .predict(x) on the percentile scale
    meta_columns: list[str]
    objective: str = OBJECTIVES[0]

    @property
    def uses_meta(self) -> bool:
        return bool(self.meta_columns)

    @classmethod
    def fit(
        cls,
        rows: Sequence[MetaRow],
        *,
        bags: int = 10,
        meta: str = "use",
        objective: str = OBJECTIVES[0],
        seed: int = 0,
    ) -> Ranker:
        """``meta``: ``use`` (default) or ``ignore`` the rows' meta-features, or ``auto``
        (``search.ranker_eval.meta_helps``); ``objective``: one of :data:`OBJECTIVES`; ``seed``: the first
        bag's."""
        tasks = sorted({r.task for r in rows})
        if len(tasks) < 2 or len(rows) < 8:
            raise RowsError(
                f"the ranker needs trials of at least 2 tasks (8 rows), got {len(rows)} of {len(tasks)}"
            )
        if meta not in ("auto", "use", "ignore"):
            raise ValueError(f"meta must be auto, use or ignore, not {meta!r}")
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
        if meta == "auto":
            from search.ranker_eval import meta_helps  # the check fits rankers itself

            use = meta_helps(rows)
        else:
            use = meta == "use"
        meta_columns = sorted({k for r in rows for k in r.meta}) if use else []
        vectors = [cls._vector(r.pipeline, r.meta, meta_columns) for r in rows]
        columns = sorted({k for v in vectors for k in v})
        x, y = _matrix(vectors, columns), percentiles(rows)
        by_task = defaultdict(list)
        for i, r in enumerate(rows):
            by_task[r.task].append(i)
        models = []
        for bag, picked in enumerate(folds(tasks, bags, seed), start=seed):
            idx = np.concatenate([by_task[tasks[t]] for t in picked])
            sizes = [len(by_task[tasks[t]]) for t in picked]
            models.append(_model(objective, x[idx], y[idx], sizes, bag))
        return cls(columns, models, meta_columns, objective)

    @staticmethod
    def _vector(
        pipeline: Mapping[str, Any], meta: Mapping[str, float], meta_columns: Sequence[str]
    ) -> Vector:
        return {**pipeline_vector(pipeline), **{f"meta.{k}": meta.get(k, math.nan) for k in meta_columns}}

    def predict(
        self, pipelines: Sequence[Mapping[str, Any]], meta: Mapping[str, float] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean and spread of the predicted percentile of each pipeline on a task: the spread is the
        delete-a-group jackknife's standard error over the bags (√(k − 1) × their std), 0 with one bag."""
        preds = self._bagged(self.matrix(pipelines, meta))
        return preds.mean(0), preds.std(0) * math.sqrt(len(preds) - 1)

    def matrix(
        self, pipelines: Sequence[Mapping[str, Any]], meta: Mapping[str, float] | None = None
    ) -> np.ndarray:
        """The model inputs of ``pipelines`` on a task with ``meta`` (one row each)."""
        return _matrix([self._vector(p, meta or {}, self.meta_columns) for p in pipelines], self.columns)

    def predict_matrix(self, x: np.ndarray) -> np.ndarray:
        """The bagged mean prediction for model inputs ``x`` (see :meth:`matrix`)."""
        return self._bagged(x).mean(0)

    def _bagged(self, x: np.ndarray) -> np.ndarray:
        return np.stack([m.predict(x) for m in self.models])

    def order(
        self, pipelines: Sequence[Mapping[str, Any]], meta: Mapping[str, float] | None = None
    ) -> list[int]:
        """Indices of ``pipelines``, best first (ties: lower uncertainty, then cheaper)."""
        return self.ranked(pipelines, meta)[0]

    def ranked(
        self, pipelines: Sequence[Mapping[str, Any]], meta: Mapping[str, float] | None = None
    ) -> tuple[list[int], np.ndarray, np.ndarray]:
        """:meth:`order` with the :meth:`predict` it came from (mean, spread), from one prediction."""
        mean, spread = self.predict(pipelines, meta)
        order = sorted(
            range(len(pipelines)),
            key=lambda i: (-round(float(mean[i]), 9), float(spread[i]), cost(pipelines[i])),
        )
        return order, mean, spread


def _matrix(vectors: Sequence[Vector], columns: Sequence[str]) -> np.ndarray:
    """Rows × columns; a one-hot name absent from a row is 0, any other absent value NaN (missing)."""
    onehot = {c for c in columns if "=" in c}
    x = np.full((len(vectors), len(columns)), np.nan)
    for j, c in enumerate(columns):
        fill = 0.0 if c in onehot else np.nan
        for i, v in enumerate(vectors):
            x[i, j] = v.get(c, fill)
    return x
