"""Does the recommender pay? Leave-one-task-out on the meta-dataset, as a tabular benchmark.

    .venv/bin/python -m bench.recommend [--meta search/priors/meta.csv] [--budget 4] [--holdout task|dataset]

Every pipeline of the component grid (``search.grid``: output loss × intermediate objective × augmentation)
was trained once on every task variant by ``bench/build_meta.py``. For each held-out variant the recommender
is trained on the *other* variants (``--holdout dataset``: on the other dataset only), and each arm picks
pipelines of the held-out grid, paying for each pick with the trial's measured training time:

1. ``one-shot``: the recommender's top pipeline, one trial;
2. ``warm TPE``: the recommender's top 2 enqueued, then Optuna TPE (as the service), ``--budget`` trials;
3. ``TPE``: Optuna TPE from scratch, and ``random``: distinct random grid points, ``--budget`` trials each;
4. ``vanilla KD`` and ``no KD``: the two reference pipelines;
5. ``oracle``: the best of the whole grid (all its trials).

Search arms are averaged over seeds. Prints, per variant, the best validation accuracy each arm found, its
regret to the oracle in points, and a summary (mean regret, wins over vanilla KD, compute vs the oracle).

``--live rt250s`` instead runs the service's own search on that variant through the real worker (Ray Tune,
the small space, ASHA), warm-started by a recommender trained without the variant's rows, and compares its
best trial and its training time with the variant's grid (uses ``$AUTODISTILLER_HOME``'s teacher cache).
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
from collections import defaultdict
from pathlib import Path

import optuna

from distill.pipeline import Pipeline, describe
from search.grid import AXES
from search.metafeatures import META_KEYS
from search.recommender import Recommender, load_rows
from store.settings import SHIPPED_PRIORS

Point = tuple[str, str, str]


def grid_name(pipeline: Pipeline) -> Point:
    """The (loss, intermediate, augmentation) grid coordinates of a pipeline."""
    return pipeline.loss.name, pipeline.intermediate.name, "+".join(pipeline.augmentation.ops) or "none"


def tpe_search(
    table: dict[Point, tuple[float, float]], budget: int, seed: int, start: list[Point]
) -> list[Point]:
    """Optuna TPE over the grid's axes for ``budget`` trials, ``start`` enqueued first; the points tried."""
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(1, min(2, budget - len(start))))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for p in start:
        study.enqueue_trial(dict(zip(AXES, p, strict=True)))
    tried: list[Point] = []
    for _ in range(budget):
        trial = study.ask()
        point = tuple(trial.suggest_categorical(axis, names) for axis, names in AXES.items())
        tried.append(point)  # type: ignore[arg-type]
        study.tell(trial, table[point][0])  # type: ignore[index]
    return tried


def arms(
    table: dict[Point, tuple[float, float]], ranked: list[Point], budget: int, seeds: int
) -> dict[str, tuple[float, float]]:
    """Each arm's (best accuracy found, seconds of training spent), search arms averaged over seeds."""

    def score(points: list[Point]) -> tuple[float, float]:
        return max(table[p][0] for p in points), sum(table[p][1] for p in points)

    def mean(runs: list[tuple[float, float]]) -> tuple[float, float]:
        return statistics.fmean(r[0] for r in runs), statistics.fmean(r[1] for r in runs)

    points = list(table)
    return {
        "one-shot": score(ranked[:1]),
        "warm TPE": mean([score(tpe_search(table, budget, s, ranked[:2])) for s in range(seeds)]),
        "TPE": mean([score(tpe_search(table, budget, s, [])) for s in range(seeds)]),
        "random": mean([score(random.Random(s).sample(points, budget)) for s in range(seeds * 10)]),
        "vanilla KD": score([("kl", "none", "none")]),
        "no KD": score([("ce_only", "none", "none")]),
        "oracle": score(points),
    }


def live(variant_name: str, meta_path: Path, n_trials: int) -> None:
    """The real warm-started search on one variant, against that variant's grid in the meta-dataset."""
    import csv
    import tempfile

    from bench.build_meta import VARIANTS
    from store import jobs, results, trials
    from store.settings import Settings
    from workers.recommend import task_name
    from workers.worker import Worker

    variant = {v.name: v for v in VARIANTS}[variant_name]
    spec = variant.spec()
    spec.budget = spec.budget.model_copy(
        update={"trials": n_trials, "warm_start": [], "early_stopping": True}
    )
    rows = load_rows(meta_path)
    with tempfile.TemporaryDirectory() as tmp:
        probe = jobs.Job(
            dataset=spec.dataset.model_dump(mode="json"), budget=spec.budget.model_dump(mode="json")
        )
        held = [r for r in rows if r["task"] == task_name(probe)]
        priors = Path(tmp) / "priors.csv"
        with priors.open("w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(r for r in rows if r["task"] != task_name(probe))
        home = Settings.from_env().home
        worker = Worker(Settings(home=home, database_url=f"sqlite:///{tmp}/live.db", priors=priors))
        job = jobs.create_job(worker.db, **spec.model_dump(mode="json"))
        worker.process(jobs.claim_job(worker.db, worker.worker_id, job_id=job.id))
        job = jobs.get_job(worker.db, job.id)
        done = trials.finished_trials(worker.db, job.id)
        rec = results.latest_recommendation(worker.db, job.id, source="predicted")
    oracle = max(r["accuracy"] for r in held)
    grid_s = sum(r["wall_seconds"] or 0 for r in held)
    # a pruned trial has no wall time of its own: count its epochs' training time
    spent = sum(t.wall_seconds or sum(e.get("seconds", 0) for e in t.epochs) for t in done)
    best = max((t.accuracy or 0) for t in done if t.status == "completed")
    print(f"\n{task_name(probe)}: {job.state}; predicted {describe(rec.pipeline)} (≈{rec.score:.4f})")
    for t in done:
        ref = f" [{t.is_reference}]" if t.is_reference else ""
        secs = t.wall_seconds or sum(e.get("seconds", 0) for e in t.epochs)
        print(f"  trial {t.number} {t.status:<9} {t.accuracy or 0:.4f}  {secs:5.0f} s  "
              f"{describe(t.pipeline)}{ref}")  # fmt: skip
    print(f"best {best:.4f} vs the grid's oracle {oracle:.4f} (regret {100 * (oracle - best):.1f} points); "
          f"training {spent:.0f} s = {spent / grid_s:.0%} of the grid's {grid_s:.0f} s")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--meta", type=Path, default=SHIPPED_PRIORS)
    ap.add_argument("--budget", type=int, default=4, help="trials per search arm (the grid has 24)")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--holdout", choices=["task", "dataset"], default="task")
    ap.add_argument("--live", metavar="VARIANT", help="run the real warm-started search on this variant")
    ap.add_argument("--live-trials", type=int, default=6, help="trials of --live, the 2 references included")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.live:
        live(args.live, args.meta, args.live_trials)
        return
    rows = load_rows(args.meta)
    by_task: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_task[r["task"]].append(r)
    n_grid = math.prod(len(v) for v in AXES.values())

    results: dict[str, dict[str, tuple[float, float]]] = {}
    teacher: dict[str, float] = {}
    for task, held in sorted(by_task.items()):
        dataset = task.split("/")[0]
        train = [
            r
            for r in rows
            if (r["task"] != task if args.holdout == "task" else r["task"].split("/")[0] != dataset)
        ]
        model = Recommender.fit(train)
        pipelines = [Pipeline.model_validate_json(r["pipeline"]) for r in held]
        table = {
            grid_name(p): (r["accuracy"], r["wall_seconds"] or 0.0)
            for p, r in zip(pipelines, held, strict=True)
        }
        if len(table) != n_grid:
            print(f"skipping {task}: {len(table)} of {n_grid} grid points")
            continue
        meta = {k: held[0][k] for k in META_KEYS}
        ranked = [
            grid_name(s.pipeline) for s in model.rank(meta, pipelines, k=len(pipelines), distinct=False)
        ]
        results[task] = arms(table, ranked, args.budget, args.seeds)
        teacher[task] = held[0]["teacher_accuracy"]

    names = list(next(iter(results.values())))
    print(
        f"\nheld out: one {args.holdout} at a time; search arms: {args.budget} trials of {n_grid} "
        f"({args.seeds} seeds, random {args.seeds * 10}); accuracy (regret to the oracle, points)\n"
    )
    print("| task | teacher | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for task, res in results.items():
        best = res["oracle"][0]
        cells = [f"{acc:.4f} ({100 * (best - acc):.1f})" for acc, _ in res.values()]
        print(f"| {task} | {teacher[task]:.4f} | " + " | ".join(cells) + " |")

    print("\n| arm | mean accuracy | mean ratio to teacher | mean regret (points) | max regret | "
          "compute vs oracle | within 0.5 pt of oracle | beats vanilla KD |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        acc = [res[name][0] for res in results.values()]
        ratio = [res[name][0] / teacher[t] for t, res in results.items()]
        regret = [100 * (res["oracle"][0] - res[name][0]) for res in results.values()]
        compute = sum(res[name][1] for res in results.values()) / sum(
            res["oracle"][1] for res in results.values()
        )
        close = sum(r <= 0.5 for r in regret)
        wins = sum(res[name][0] > res["vanilla KD"][0] for res in results.values())
        print(f"| {name} | {statistics.fmean(acc):.4f} | {statistics.fmean(ratio):.1%} | "
              f"{statistics.fmean(regret):.2f} | {max(regret):.1f} | {compute:.1%} | "
              f"{close}/{len(results)} | {wins}/{len(results)} |")  # fmt: skip


if __name__ == "__main__":
    main()
