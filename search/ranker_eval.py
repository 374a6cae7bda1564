"""Leave one task out: does the ranker's one-shot pick beat the best fixed pipeline and a random pick?

For each task T: fit on every other task's rows; among T's measured pipelines, pick the ranker's first
(one-shot) and its first three (top-3: the best of them counts); regret = T's best score − the picked
score. The best fixed pipeline: the pipeline (same JSON) with the highest mean percentile over the other
tasks among those measured on T (ties: the cheaper); if none of T's pipelines was measured elsewhere, the
cheapest. Random: the mean regret of a uniform pick. A pipeline measured several times on T (seeds) counts
by its mean score. Spearman: the rank correlation of the predicted and the measured scores of T's pipelines.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from search.meta_rows import MetaRow, RowsError
from search.ranker import OBJECTIVES, Ranker, cost, dataset_of, percentiles


@dataclass(frozen=True)
class TaskRegret:
    task: str
    configs: int
    best: float
    one_shot: float
    top3: float
    fixed: float
    random: float
    spearman: float  # predicted vs measured order of the task's pipelines (NaN: a constant side)


def _by_pipeline(rows: Sequence[MetaRow]) -> tuple[list[MetaRow], np.ndarray]:
    """One row per distinct pipeline of a task (the first), with its mean score."""
    groups: dict[str, list[MetaRow]] = defaultdict(list)
    for r in rows:
        groups[r.key].append(r)
    firsts = [g[0] for g in groups.values()]
    return firsts, np.array([np.mean([r.score for r in g]) for g in groups.values()])


def evaluate(
    rows: Sequence[MetaRow],
    *,
    bags: int = 10,
    by_dataset: bool = False,
    meta: str = "use",
    objective: str = OBJECTIVES[0],
    seed: int = 0,
) -> list[TaskRegret]:
    """Leave-one-task-out regrets (see the module docstring), one entry per task; ``by_dataset``: the
    training side also leaves out the held-out task's other variants (:func:`dataset_of`). ``meta``,
    ``objective``, ``seed``: as :meth:`Ranker.fit` (``auto`` decides inside each fold, on that fold's
    training rows only)."""
    tasks = sorted({r.task for r in rows})
    group = dataset_of if by_dataset else (lambda t: t)
    if len({group(t) for t in tasks}) < 3:
        raise RowsError(
            f"leaving one out needs at least 3 tasks (datasets), got {len({group(t) for t in tasks})}"
        )
    out, fitted = [], {}
    for task in tasks:
        train = [r for r in rows if group(r.task) != group(task)]
        held, scores = _by_pipeline([r for r in rows if r.task == task])
        best = float(scores.max())
        if group(task) not in fitted:  # one fit per held-out group
            fitted[group(task)] = Ranker.fit(train, bags=bags, meta=meta, objective=objective, seed=seed)
        ranker, pipelines = fitted[group(task)], [r.pipeline for r in held]
        order, predicted, _ = ranker.ranked(pipelines, held[0].meta)
        pct = percentiles(train)
        mean_pct: dict[str, list[float]] = defaultdict(list)
        for r, p in zip(train, pct, strict=True):
            mean_pct[r.key].append(float(p))
        fixed = max(
            range(len(held)),
            key=lambda i: (
                np.mean(mean_pct[held[i].key]) if held[i].key in mean_pct else -1.0,
                -cost(held[i].pipeline),
            ),
        )
        out.append(
            TaskRegret(
                task,
                len(held),
                best,
                best - float(scores[order[0]]),
                best - float(scores[order[:3]].max()),
                best - float(scores[fixed]),
                best - float(scores.mean()),
                spearman(predicted, scores),
            )
        )
    return out


def meta_helps(rows: Sequence[MetaRow], bags: int = 3) -> bool:
    """Whether the rows' meta-features improve the first pick on datasets left out: :func:`evaluate` by
    dataset on within-task percentiles (scale-free), ``bags`` per fit (one alone misses task interactions
    that folds of the datasets find); needs ≥ 4 datasets and a strictly lower mean one-shot regret with
    them."""
    if not any(r.meta for r in rows) or len({dataset_of(r.task) for r in rows}) < 4:
        return False
    ranked = [replace(r, score=float(p)) for r, p in zip(rows, percentiles(rows), strict=True)]

    def regret(meta: str) -> float:
        return float(np.mean([r.one_shot for r in evaluate(ranked, bags=bags, by_dataset=True, meta=meta)]))

    return regret("use") < regret("ignore")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (ties: mean ranks); NaN with < 2 items or a constant side."""
    from scipy.stats import spearmanr

    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(spearmanr(a, b).statistic)


def interval(diffs: Sequence[float], n: int = 10_000) -> tuple[float, float]:
    """A 95% bootstrap interval of the mean of ``diffs`` (e.g. paired differences, one per held-out task)."""
    rng = np.random.default_rng(0)
    means = np.sort(rng.choice(np.asarray(diffs, dtype=float), size=(n, len(diffs))).mean(1))
    return float(means[int(0.025 * n)]), float(means[int(0.975 * n)])


def report(regrets: Sequence[TaskRegret], scale: float = 1.0) -> str:
    """A Markdown table of the regrets (× ``scale``, e.g. 100 for accuracy points) with the mean row, and
    the one-shot pick's mean difference from the best fixed pipeline with its 95% interval over the tasks."""
    lines = [
        "| task | pipelines | best | one-shot regret | top-3 regret | best fixed | random | Spearman |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in regrets:
        lines.append(
            f"| {r.task} | {r.configs} | {r.best * scale:.2f} | {r.one_shot * scale:.2f} "
            f"| {r.top3 * scale:.2f} | {r.fixed * scale:.2f} | {r.random * scale:.2f} | {r.spearman:.2f} |"
        )
    mean = {
        k: np.mean([getattr(r, k) for r in regrets]) * scale for k in ("one_shot", "top3", "fixed", "random")
    }
    rho = [r.spearman for r in regrets if not math.isnan(r.spearman)]
    lines.append(
        f"| **mean** | | | **{mean['one_shot']:.2f}** | {mean['top3']:.2f} | {mean['fixed']:.2f} "
        f"| {mean['random']:.2f} | {np.mean(rho) if rho else math.nan:.2f} |"
    )
    diffs = [(r.one_shot - r.fixed) * scale for r in regrets]
    lo, hi = interval(diffs)
    lines.append(
        f"\none-shot − best fixed: {np.mean(diffs):+.2f} [95% bootstrap interval over the {len(diffs)} "
        f"tasks: {lo:+.2f} to {hi:+.2f}]"
    )
    return "\n".join(lines)
