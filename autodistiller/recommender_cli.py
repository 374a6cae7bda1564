"""``autodistiller recommender fit|evaluate --rows FILE``: the pipeline ranker on anyone's past trials
(format: ``search.meta_rows``), so users can check it on their own meta-data."""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from search.ranker import OBJECTIVES
from store.settings import Settings


def add_verbs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recommender", help="fit or evaluate the pipeline ranker on a file of past trials")
    verbs = p.add_subparsers(dest="verb", required=True)
    for name, text in (
        ("fit", "fit on every row; show the pipelines it ranks first for an average task"),
        ("evaluate", "leave one task out: one-shot and top-3 regret vs the best fixed pipeline and random"),
    ):
        v = verbs.add_parser(name, help=text)
        v.add_argument(
            "--rows", required=True, help="CSV or Parquet of past trials (see search/meta_rows.py)"
        )
        v.add_argument("--bags", type=int, default=10, help="models, each leaving a fold of the datasets out")
        v.add_argument(
            "--meta", choices=["auto", "use", "ignore"], default="use",
            help="the rows' meta-features (auto: only where leaving datasets out says they help)",
        )  # fmt: skip
        v.add_argument(
            "--objective", choices=OBJECTIVES, default=OBJECTIVES[0],
            help="lambdarank (LambdaMART, each task a query) or percentile (regression)",
        )  # fmt: skip
        v.add_argument("--seed", type=int, default=0, help="the first bag's seed")
        if name == "evaluate":
            v.add_argument("--by-dataset", action="store_true", help="leave out every `dataset/…` variant")
            v.add_argument(
                "--scale", type=float, default=None, help="regret multiplier (default: 100 for 0–1)"
            )
        else:
            v.add_argument("--top", type=int, default=5)
        v.set_defaults(fn=cmd_fit if name == "fit" else cmd_evaluate, command="recommender")


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from search.meta_rows import load_meta_rows
    from search.ranker_eval import evaluate, report

    rows = load_meta_rows(args.rows)
    scale = args.scale or (100.0 if all(0 <= r.score <= 1 for r in rows) else 1.0)
    tasks = {r.task for r in rows}
    print(f"{len(rows)} trials of {len(tasks)} tasks; regret in score units × {scale:g}\n")
    regrets = evaluate(
        rows,
        bags=args.bags,
        by_dataset=args.by_dataset,
        meta=args.meta,
        objective=args.objective,
        seed=args.seed,
    )
    print(report(regrets, scale))
    return 0


def cmd_fit(args: argparse.Namespace, settings: Settings) -> int:
    from search.meta_rows import load_meta_rows
    from search.ranker import Ranker

    rows = load_meta_rows(args.rows)
    ranker = Ranker.fit(rows, bags=args.bags, meta=args.meta, objective=args.objective, seed=args.seed)
    tasks = {r.task for r in rows}
    meta: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        for k, v in r.meta.items():
            meta[k].append(v)
    average = {k: float(np.nanmean(v)) if not np.isnan(v).all() else np.nan for k, v in meta.items()}
    # pipelines naming components this installation lacks taught the model; they are never recommended
    distinct = [p for p in {r.key: r.pipeline for r in rows}.values() if _known(p)]
    order, mean, spread = ranker.ranked(distinct, average)
    print(
        f"fitted on {len(rows)} trials of {len(tasks)} tasks: {len(ranker.columns)} features "
        f"({len(ranker.meta_columns)} meta-features), {len(ranker.models)} bags of {ranker.objective}"
    )
    print(f"\nthe {args.top} of {len(distinct)} distinct pipelines ranked first for an average task:")
    for i in order[: args.top]:
        print(f"  {mean[i]:.3f} ± {spread[i]:.3f}  {_describe(distinct[i])}")
    return 0


def _known(p: dict) -> bool:
    from distill.pipeline import Pipeline

    try:
        Pipeline.model_validate(p)
    except ValueError:
        return False
    return True


def _describe(p: dict) -> str:
    from distill.pipeline import Pipeline, describe

    return describe(Pipeline.model_validate(p))
