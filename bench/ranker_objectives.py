"""Which objective should the ranker learn? Each of ``search.ranker.OBJECTIVES`` over several bag seeds,
leaving one dataset out (``search.ranker_eval.evaluate(by_dataset=True)``: every variant of the held-out
dataset is left out of training; the pick is made among each held-out variant's measured pipelines).

    .venv/bin/python -m bench.ranker_objectives [--rows search/priors/meta.csv] [--seeds 0,100,200,300,400]

Prints, per objective and bag seed, the mean one-shot and top-3 regret (points; each dataset's variants
averaged first) with the best fixed pipeline's and a random pick's; then each objective's mean over the
seeds, and the paired difference of the first objective minus each other one, with a 95% bootstrap
interval over the held-out datasets (seeds averaged within a dataset first).
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

from search.meta_rows import load_meta_rows
from search.ranker import OBJECTIVES, dataset_of
from search.ranker_eval import evaluate
from search.ranker_eval import interval as bootstrap
from store.settings import SHIPPED_PRIORS

KEYS = ("one_shot", "top3", "fixed", "random")


def per_dataset(rows: list, objective: str, seed: int, bags: int) -> dict[str, dict[str, float]]:
    """Held-out dataset → the mean over its variants of each regret in :data:`KEYS` (points)."""
    by_ds: dict[str, list] = defaultdict(list)
    for r in evaluate(rows, bags=bags, by_dataset=True, objective=objective, seed=seed):
        by_ds[dataset_of(r.task)].append(r)
    return {d: {k: 100 * statistics.fmean(getattr(r, k) for r in v) for k in KEYS} for d, v in by_ds.items()}


def interval(diffs: list[float]) -> str:
    """The mean of ``diffs`` with a 95% bootstrap interval over them."""
    lo, hi = bootstrap(diffs)
    return f"{statistics.fmean(diffs):+.2f} [95%: {lo:+.2f} to {hi:+.2f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=Path, default=SHIPPED_PRIORS, help="the meta-dataset (CSV or Parquet)")
    ap.add_argument("--seeds", default="0,100,200,300,400", help="the first bag seeds, comma-separated")
    ap.add_argument("--bags", type=int, default=10)
    args = ap.parse_args()
    rows, seeds = load_meta_rows(args.rows), [int(s) for s in args.seeds.split(",")]
    runs = {(o, s): per_dataset(rows, o, s, args.bags) for o in OBJECTIVES for s in seeds}
    datasets = sorted(next(iter(runs.values())))
    print(f"\n{len(rows)} trials, {len(datasets)} datasets left out in turn; {args.bags} bags; points\n")
    print("| objective | bag seed | one-shot | top-3 | best fixed | random |\n|---|---|---|---|---|---|")
    for (o, s), res in runs.items():
        m = {k: statistics.fmean(res[d][k] for d in datasets) for k in KEYS}
        print(f"| {o} | {s} | {m['one_shot']:.2f} | {m['top3']:.2f} | {m['fixed']:.2f} | {m['random']:.2f} |")
    # each dataset's regret averaged over the seeds, per objective
    avg = {
        o: {d: {k: statistics.fmean(runs[o, s][d][k] for s in seeds) for k in KEYS} for d in datasets}
        for o in OBJECTIVES
    }
    print("\n| objective | one-shot (mean over seeds) | top-3 | one-shot − best fixed |\n|---|---|---|---|")
    for o in OBJECTIVES:
        one = statistics.fmean(avg[o][d]["one_shot"] for d in datasets)
        top = statistics.fmean(avg[o][d]["top3"] for d in datasets)
        vs_fixed = interval([avg[o][d]["one_shot"] - avg[o][d]["fixed"] for d in datasets])
        print(f"| {o} | {one:.2f} | {top:.2f} | {vs_fixed} |")
    first = OBJECTIVES[0]
    for o in OBJECTIVES[1:]:
        for k in ("one_shot", "top3"):
            diffs = [avg[first][d][k] - avg[o][d][k] for d in datasets]
            print(f"\n{first} − {o}, {k.replace('_', '-')} regret: {interval(diffs)}")


if __name__ == "__main__":
    main()
