"""AutoDistiller's recommender: rank a job's candidate pipelines before any of them is trained, from the
finished trials of other tasks.

The model is :class:`search.ranker.Ranker` (a trial's percentile within its task, learned from the
pipeline JSON and the task's meta-features by bagged gradient boosting): what is learned is which pipelines
beat which, so tasks with different teachers, metrics and scales teach together. Its rows
(:class:`search.meta_rows.MetaRow`) come from the shipped meta-dataset (``search/priors/meta.csv``, the
documented rows format, built by ``bench/build_meta.py``) and from the trial database. It gives an order, not
an accuracy: the first pick's predicted percentile and, measured on the rows themselves, how far a first
pick falls from a held-out task's best (:func:`search.ranker_eval.evaluate`). With too few rows,
:func:`cold_start` gives Distiller's findings.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna

from distill.pipeline import Pipeline, describe
from search.grid import grid
from search.meta_rows import MetaRow, RowsError
from search.ranker import Ranker, percentiles, pipeline_vector
from search.ranker_eval import evaluate
from search.space import SearchSpace

#: Fewer training rows than this, or rows from a single task: the priors of :func:`cold_start` instead.
MIN_ROWS = 16
#: Pipeline JSON section → the component it belongs to (for importances); ``meta.*`` is the task.
COMPONENTS = {
    "student": "student",
    "loss": "output loss",
    "intermediate": "intermediate objective",
    "augmentation": "augmentation",
    "training": "training",
    "teachers": "teachers",
}


def component(feature: str) -> str:
    """The component a ranker feature (``loss.name=kl``, ``meta.classes``) belongs to."""
    head = feature.split(".", 1)[0]
    return "task" if head == "meta" else COMPONENTS.get(head, "other")


def signature(pipeline: Pipeline) -> tuple[Any, ...]:
    """The pipeline's combination of components: loss, objective with its features, mapping and α,
    augmentation ops (as a set) and mixup. Warm starts differ in it."""
    inter, aug = pipeline.intermediate, pipeline.augmentation
    alpha = inter.alpha if inter.name == "mi_alpha" else None
    mapping = inter.mapping if inter.name != "none" else None
    return pipeline.loss.name, inter.name, inter.features, mapping, alpha, frozenset(aug.ops), aug.mixup > 0


def as_json(pipeline: Pipeline) -> dict[str, Any]:
    """The pipeline as the rows store it (its JSON object)."""
    return pipeline.model_dump(mode="json")


def rows_fingerprint(rows: Iterable[MetaRow]) -> str:
    """A short hash of what a model is trained on (same rows → same model)."""
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps([r.task, r.key, round(r.score, 6)]).encode())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Scored:
    """A pipeline, its predicted percentile within a task (1 = beats every other pipeline) and the spread of
    that prediction over the bagged models; ``seen``: every component value lies within what the training
    trials covered (otherwise the order extrapolates)."""

    pipeline: Pipeline
    percentile: float
    spread: float
    seen: bool = True


@dataclass(frozen=True)
class Neighbour:
    """A past task near the new one in standardised meta-feature space, and its best measured pipeline."""

    task: str
    distance: float
    best_ratio: float | None  # its best score / its teacher's (None: teacher's score unknown)
    best_pipeline: str  # one line (``distill.pipeline.describe``), or the raw JSON's components


@dataclass(frozen=True)
class HeldOut:
    """Leave one dataset out on the training rows: mean regret (best − picked, in score units) of the
    ranker's first pick, of the best fixed pipeline, and of a random pick, over ``tasks`` held-out tasks."""

    one_shot: float
    top3: float
    fixed: float
    random: float
    tasks: int


@dataclass
class Recommender:
    """The :class:`Ranker` fitted on ``rows``, and what the service says about it."""

    rows: list[MetaRow]
    ranker: Ranker
    fingerprint: str
    tasks: list[str] = field(default_factory=list)
    covered: dict[str, tuple[float, float]] = field(default_factory=dict)  # numeric feature → range

    @classmethod
    def fit(cls, rows: Sequence[MetaRow], *, bags: int = 10) -> Recommender:
        """Train on past trials; at least :data:`MIN_ROWS` of 2 tasks (else :class:`RowsError`)."""
        rows = list(rows)
        tasks = sorted({r.task for r in rows})
        if len(rows) < MIN_ROWS or len(tasks) < 2:
            raise RowsError(
                f"the recommender needs at least {MIN_ROWS} finished trials from 2 tasks, "
                f"got {len(rows)} from {len(tasks)}"
            )
        covered: dict[str, tuple[float, float]] = {}
        for r in rows:
            for k, v in pipeline_vector(r.pipeline).items():
                lo, hi = covered.get(k, (v, v))
                covered[k] = (min(lo, v), max(hi, v))
        return cls(rows, Ranker.fit(rows, bags=bags), rows_fingerprint(rows), tasks, covered)

    def outside(self, pipeline: Pipeline) -> list[str]:
        """The features of ``pipeline`` (``loss.name=kl``, ``student.heads=12``) outside what the rows
        covered: a name no row has, a number beyond the rows' range."""
        out = []
        for k, v in pipeline_vector(as_json(pipeline)).items():
            have = self.covered.get(k)
            if have is None or not have[0] - 1e-9 <= v <= have[1] + 1e-9:
                out.append(k if "=" in k else f"{k}={v:g}")
        return out

    def misses(self, pipeline: Pipeline) -> int:
        """How many features of ``pipeline`` lie outside what the rows covered (:meth:`outside`)."""
        return len(self.outside(pipeline))

    def seen(self, pipeline: Pipeline) -> bool:
        """Whether every feature of ``pipeline`` lies within what the rows covered."""
        return self.misses(pipeline) == 0

    def rank(
        self, meta: Mapping[str, float], pipelines: Sequence[Pipeline], k: int = 3, *, distinct: bool = True
    ) -> list[Scored]:
        """The ``k`` best pipelines by predicted percentile (ties: lower spread, then cheaper), among those
        most like the training trials (fewest :meth:`misses`: a tree model cannot tell what a choice it
        never saw does, so a student with more heads than any row beats a never-seen mixup). With
        ``distinct``, one per combination of components (:func:`signature`): warm starts that differ in
        what they try."""
        unique = list({p.key(): p for p in pipelines}.values())
        misses = {p.key(): self.misses(p) for p in unique}
        fewest = min(misses.values(), default=0)
        unique = [p for p in unique if misses[p.key()] == fewest]
        known = fewest == 0
        if not unique:
            return []
        dumps = [as_json(p) for p in unique]
        order, mean, spread = self.ranker.ranked(dumps, meta)
        out: list[Scored] = []
        signatures: set[tuple] = set()
        for i in order:
            sig = signature(unique[i]) if distinct else (i,)
            if sig not in signatures:
                signatures.add(sig)
                pct = min(1.0, max(0.0, float(mean[i])))  # LambdaMART's mapped scores may overshoot
                out.append(Scored(unique[i], pct, float(spread[i]), seen=known))
            if len(out) == k:
                break
        return out

    def nearest(self, meta: Mapping[str, float], k: int = 3) -> list[Neighbour]:
        """The ``k`` training tasks nearest to ``meta`` over the meta-features both have (standardised over
        the tasks; a feature a task lacks is skipped for it)."""
        by_task: dict[str, list[MetaRow]] = {}
        for r in self.rows:
            by_task.setdefault(r.task, []).append(r)
        keys = sorted({c for r in self.rows for c in r.meta} & set(meta))
        names = list(by_task)
        table = np.array([[by_task[t][0].meta.get(c, math.nan) for c in keys] for t in names], dtype=float)
        query = np.array([float(meta[c]) for c in keys], dtype=float)
        with np.errstate(all="ignore"):
            mean, std = np.nanmean(table, 0), np.nanstd(table, 0)
        std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        diff = ((table - np.nan_to_num(mean)) / std - (query - np.nan_to_num(mean)) / std) ** 2
        dist = np.sqrt(np.nansum(diff, axis=1)) if keys else np.zeros(len(names))
        out = []
        for i in np.argsort(dist, kind="stable")[:k]:
            best = max(by_task[names[i]], key=lambda r: r.score)
            ratio = best.score / best.teacher_score if best.teacher_score else None
            out.append(Neighbour(names[i], round(float(dist[i]), 3), ratio, _describe(best.pipeline)))
        return out

    def importance(self) -> dict[str, float]:
        """Each component's share of what the ranker uses: the rise in its training error when that
        component's features are all made missing (``task``: the meta-features); sums to 1."""
        x = np.concatenate([self.ranker.matrix([r.pipeline], r.meta) for r in self.rows])
        y = percentiles(self.rows)
        base = _mse(self.ranker.predict_matrix(x), y)
        groups: dict[str, list[int]] = {}
        for j, name in enumerate(self.ranker.columns):
            groups.setdefault(component(name), []).append(j)
        out = {}
        for name, cols in groups.items():
            blank = x.copy()
            blank[:, cols] = np.nan
            out[name] = max(0.0, _mse(self.ranker.predict_matrix(blank), y) - base)
        total = sum(out.values()) or 1.0
        return {k: round(v / total, 4) for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v > 0}

    def held_out(self) -> HeldOut | None:
        """Leave one dataset out on the rows (one bag per fit, to stay quick); None with < 3 datasets."""
        try:
            meta = "use" if self.ranker.uses_meta else "ignore"  # this version's choice, not re-made per fold
            regrets = evaluate(self.rows, bags=1, by_dataset=True, meta=meta)
        except RowsError:
            return None
        keys = ("one_shot", "top3", "fixed", "random")
        mean = {k: round(float(np.mean([getattr(r, k) for r in regrets])), 5) for k in keys}
        return HeldOut(**mean, tasks=len(regrets))


def _mse(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((pred - y) ** 2))


def _describe(pipeline: Mapping[str, Any]) -> str:
    """One line for a row's pipeline: ``describe`` when this installation can read it, else its names."""
    try:
        return describe(Pipeline.model_validate(pipeline))
    except ValueError:
        names = [f"{k}={v}" for k, v in pipeline_vector(pipeline).items() if ".name=" in k or "=" in k]
        return ", ".join(n.split("=", 1)[1] for n in names[:4]) or "?"


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
