"""Does the recommender pay? Leave one DATASET out on the meta-dataset, as a tabular benchmark.

    .venv/bin/python -m bench.recommend [--rows search/priors/meta.csv] [--share 0.2] [--warm 3] [--seeds 10]
        [--meta auto|use|ignore] [--objective lambdarank|percentile] [--bag-seed 0] [--curves-only]

Every pipeline of the component grid (``search.grid``: output loss × intermediate objective × augmentation,
24; 12 on the small tasks) was trained on every task variant by ``bench/build_meta.py``, with its validation
accuracy (``accuracy``), its test score (``score``), its training time and its learning curve.
For each held-out dataset, all its variants (training sizes, student budgets) are held out together: the
ranker (``search.ranker``) is fitted on the other datasets' rows only, and each arm picks among the
held-out variant's grid, a replay of the measured scores:

1. ``one-shot``: the ranker's first pipeline; ``fixed``: the best fixed pipeline — the grid point with the
   best mean within-task percentile on the other datasets; ``random 1``: a uniform pick (its expectation);
2. search arms at equal compute (``--share`` of the variant's grid in trials each: 4 of 24, 2 of 12):
   ``warm``: the ranker's top ``--warm`` trained first, then Optuna TPE; ``TPE`` from scratch; ``random``:
   distinct random grid points. A search sees validation accuracy, keeps the trial best on validation,
   and is judged by that trial's test score;
3. ``grid``: the whole grid, best on validation — what the search would find at 100% compute;
4. on variants whose rows carry learning curves (the ``curve`` column; ``--curves-only`` keeps only
   those), the service's own search at ``--share`` of the grid's training *seconds*, early stopping
   replayed (``bench.asha``: Ray's ASHA rule on the recorded validation curves) and the trial in flight cut
   when the budget runs out: ``warm ASHA``: the ranker's top ``--warm`` trained to the end, then TPE's
   proposals under ASHA (what a job does: ``warm_start_k`` predictions, then the search); ``TPE ASHA``:
   TPE under ASHA from scratch.

Regret = the variant's best test score − the arm's, in points; search arms averaged over ``--seeds``
(random over 10×). Prints per variant and the means over held-out datasets (each dataset's variants
averaged first), each arm's compute as a share of the grid's training time, and the verdicts on the goals
(with a 95% bootstrap interval over the held-out datasets of each difference):
one-shot regret below the best fixed pipeline's; warm-started search within 0.5 points of the grid's best
at ≤ 20% of its compute.

``--live rt250s`` instead runs the service's own search on that variant through the real worker (Ray Tune,
the small space, ASHA), warm-started by a recommender trained without the variant's rows, and compares its
best trial and its training time with the variant's grid (uses ``$AUTODISTILLER_HOME``'s teacher cache).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import optuna

from bench.asha import Asha
from search.grid import AXES
from search.meta_rows import MetaRow, load_meta_rows, pipeline_key
from search.ranker import OBJECTIVES, Ranker, bare_task, dataset_of, percentiles
from search.ranker_eval import interval as bootstrap
from store.settings import SHIPPED_PRIORS
from store.spec import JobBudget

Point = tuple[str, str, str]
#: (task, pipeline key) → (validation accuracy, training seconds, learning curve or None)
Extra = dict[tuple[str, str], tuple[float, float, list[tuple[float, float]] | None]]
ARMS = ("one-shot", "fixed", "random 1", "warm", "TPE", "random", "grid")
#: arms at ``share`` of the grid's training seconds, early stopping replayed on the rows' learning curves
ASHA_ARMS = ("warm ASHA", "TPE ASHA")
#: the predictions a job trains first (the service's default ``warm_start_k``)
WARM = JobBudget.model_fields["warm_start_k"].default


def grid_point(pipeline: dict[str, Any]) -> Point:
    """The (loss, intermediate, augmentation) grid coordinates of a pipeline JSON."""
    ops = (pipeline.get("augmentation") or {}).get("ops") or []
    return pipeline["loss"]["name"], pipeline["intermediate"]["name"], "+".join(ops) or "none"


def _training(pipeline: dict[str, Any]) -> str:
    return json.dumps(pipeline.get("training") or {}, sort_keys=True)


class Variant:
    """One held-out task variant's grid: point → (validation, test, seconds). The grid was trained with one
    recipe (the rows' most common ``training``); the job's two references ran again with the probed learning
    rate and the default batch size and are not grid points: the arms pick among the grid's pipelines
    (``grid_rows``), while the ranker learns from the references' rows of the other datasets."""

    def __init__(self, rows: list[MetaRow], extra: Extra) -> None:
        self.rows = rows
        self.table: dict[Point, tuple[float, float, float]] = {}
        #: point → its learning curve, [(validation score, seconds)] an epoch (rows with a ``curve``)
        self.curves: dict[Point, list[tuple[float, float]]] = {}
        recipe = Counter(_training(r.pipeline) for r in rows).most_common(1)[0][0]
        #: the grid's rows (the references re-run at the probed rate left out): what every arm picks among
        self.grid_rows = [r for r in rows if _training(r.pipeline) == recipe]
        tests: dict[Point, list[float]] = defaultdict(list)
        for r in self.grid_rows:
            # a repeated run of a point (another build): the search sees the last run's validation score
            # and curve; the point's test score, the truth it is judged by, is the mean over the runs
            point = grid_point(r.pipeline)
            val, secs, curve = extra.get((r.task, r.key), (r.score, 0.0, None))
            tests[point].append(r.score)
            self.table[point] = (val, statistics.fmean(tests[point]), secs)
            if curve:
                self.curves[point] = curve
        self.best = max(t for _, t, _ in self.table.values())
        #: the axes this variant's grid spans (the small tasks' grid is 12 of the 24 points)
        self.axes = {a: sorted({p[i] for p in self.table}) for i, a in enumerate(AXES)}

    def found(self, points: list[Point]) -> tuple[float, float]:
        """The test score of the trial best on validation among ``points`` (ties: the first); seconds."""
        ok = [p for p in points if p in self.table]  # a point not in the table failed when it was built
        if not ok:
            return min(t for _, t, _ in self.table.values()), 0.0
        pick = max(ok, key=lambda p: (self.table[p][0], -ok.index(p)))
        return self.table[pick][1], sum(self.table[p][2] for p in ok)

    def search(self, seconds: float, seed: int, start: list[Point]) -> tuple[float, float]:
        """The service's search at a compute budget, replayed on the curves: ``start`` (the recommender's top
        pipelines) trained to the end, then Optuna TPE's proposals under ASHA (``bench.asha``), until
        ``seconds`` of training are spent — the trial then in flight is cut, as by a job's wall-clock
        budget. The most accurate completed trial on validation, judged on test: (test score, seconds)."""
        asha = Asha(max_t=max(len(c) for c in self.curves.values()))
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=2)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for p in start:
            study.enqueue_trial(dict(zip(AXES, p, strict=True)))
        spent, done = 0.0, []
        for n in range(10 * len(self.table)):  # a bound: TPE may propose points the grid lacks
            trial = study.ask()
            point: Point = tuple(trial.suggest_categorical(a, c) for a, c in self.axes.items())  # type: ignore[assignment]
            if point not in self.curves:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                continue
            scores, secs = zip(*self.curves[point], strict=True)
            epochs = len(scores) if n < len(start) else asha.epochs(scores)
            cut = next((e for e in range(epochs) if spent + sum(secs[: e + 1]) > seconds), None)
            epochs = epochs if cut is None else cut
            spent += sum(secs[:epochs])
            if epochs == 0:
                break
            study.tell(trial, scores[epochs - 1])  # Ray's OptunaSearch: the last reported score
            if cut is not None:
                break
            if epochs == len(scores):
                done.append(point)
        if not done:
            return min(t for _, t, _ in self.table.values()), spent
        return self.table[max(done, key=lambda p: (self.table[p][0], -done.index(p)))][1], spent

    def tpe(self, budget: int, seed: int, start: list[Point]) -> list[Point]:
        """Optuna TPE over the grid's axes, told validation accuracy, ``start`` enqueued first."""
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(1, min(2, budget - len(start))))
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for p in start:
            study.enqueue_trial(dict(zip(AXES, p, strict=True)))
        tried: list[Point] = []
        for _ in range(budget):
            trial = study.ask()
            point: Point = tuple(trial.suggest_categorical(a, n) for a, n in self.axes.items())  # type: ignore[assignment]
            tried.append(point)
            if point in self.table:
                study.tell(trial, self.table[point][0])
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return tried


def fixed_order(train: list[MetaRow]) -> list[Point]:
    """Grid points by their mean within-task percentile over ``train``, best first: the best fixed pipeline
    of a held-out variant is the first of these it measured (its grid may be smaller than the others')."""
    by_point: dict[Point, list[float]] = defaultdict(list)
    for r, p in zip(train, percentiles(train), strict=True):
        by_point[grid_point(r.pipeline)].append(float(p))
    return sorted(sorted(by_point), key=lambda k: -statistics.fmean(by_point[k]))


def _mean(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The mean (regret, seconds) of an arm's runs (seeds)."""
    return statistics.fmean(r[0] for r in runs), statistics.fmean(r[1] for r in runs)


def arms(
    v: Variant, ranker: Ranker, fixed_points: list[Point], share: float, warm: int, seeds: int
) -> dict[str, tuple]:
    """Each arm's (regret in points, seconds spent); search arms get ``share`` of the grid's trials."""
    budget = max(1, int(share * len(v.table)))
    # the ranker orders the grid's pipelines, the ones the table scores: a reference re-run at the probed
    # rate is another pipeline (another learning rate), and its grid point's score is not its own
    pipelines = [r.pipeline for r in v.grid_rows]
    ranked = list(dict.fromkeys(grid_point(pipelines[i]) for i in ranker.order(pipelines, v.rows[0].meta)))
    points = list(v.table)

    def regret(found: tuple[float, float]) -> tuple[float, float]:
        return 100 * (v.best - found[0]), found[1]

    one = {p: regret(v.found([p])) for p in points}
    fixed = next((p for p in fixed_points if p in one), None)
    return {
        "one-shot": one[ranked[0]],
        "fixed": one[fixed] if fixed is not None else (float("nan"), 0.0),
        "random 1": _mean(list(one.values())),
        "warm": _mean([regret(v.found(v.tpe(budget, s, ranked[:warm]))) for s in range(seeds)]),
        "TPE": _mean([regret(v.found(v.tpe(budget, s, []))) for s in range(seeds)]),
        "random": _mean(
            [regret(v.found(random.Random(s).sample(points, budget))) for s in range(10 * seeds)]
        ),
        "grid": regret(v.found(points)),
    } | (asha_arms(v, ranked, share, warm, seeds) if len(v.curves) == len(v.table) else {})


def asha_arms(v: Variant, ranked: list[Point], share: float, warm: int, seeds: int) -> dict[str, tuple]:
    """The service's search (``Variant.search``) at ``share`` of the grid's training seconds: the ranker's
    top ``warm`` then TPE, and TPE alone; seconds on the scale of the grid's wall time."""
    total = sum(s for c in v.curves.values() for _, s in c)
    grid_s = sum(s for _, _, s in v.table.values())

    def run(start: list[Point], seed: int) -> tuple[float, float]:
        test, spent = v.search(share * total, seed, start)
        return 100 * (v.best - test), spent / total * grid_s

    return {
        "warm ASHA": _mean([run(ranked[:warm], s) for s in range(seeds)]),
        "TPE ASHA": _mean([run([], s) for s in range(seeds)]),
    }


def extras(path: Path) -> Extra:
    """(task, pipeline key) → (validation accuracy, training seconds, learning curve or None) from the
    meta-dataset CSV."""
    out: Extra = {}
    with path.open(newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f):
            key = pipeline_key(json.loads(rec["pipeline"]))
            acc = rec.get("accuracy") or rec.get("score")
            curve = [(float(a), float(s)) for a, s in json.loads(rec["curve"])] if rec.get("curve") else None
            out[(rec["task"], key)] = (float(acc), float(rec.get("wall_seconds") or 0.0), curve)
    return out


def live(variant_name: str, meta_path: Path, n_trials: int) -> None:
    """The real warm-started search on one variant, against that variant's grid in the meta-dataset."""
    import tempfile

    from bench.build_meta import VARIANTS
    from distill.pipeline import describe
    from store import jobs, results, trials
    from store.settings import Settings
    from workers.recommend import task_name
    from workers.worker import Worker

    variant = {v.name: v for v in VARIANTS}[variant_name]
    spec = variant.spec(Settings.from_env().home)
    spec.budget = spec.budget.model_copy(
        update={"trials": n_trials, "warm_start": [], "early_stopping": True}
    )
    with meta_path.open(newline="", encoding="utf-8") as f:  # the raw records: written back as they are
        rows = [{**r, "accuracy": float(r["accuracy"]), "wall_seconds": float(r["wall_seconds"] or 0)}
                for r in csv.DictReader(f)]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        probe = jobs.Job(
            dataset=spec.dataset.model_dump(mode="json"), budget=spec.budget.model_dump(mode="json")
        )
        # the variant's rows (any data fingerprint) are the grid; the priors leave its whole dataset out
        name = task_name(probe)
        held = [r for r in rows if bare_task(r["task"]) == name]
        priors = Path(tmp) / "priors.csv"
        with priors.open("w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(r for r in rows if dataset_of(r["task"]) != dataset_of(name))
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
    print(f"\n{name}: {job.state}; predicted {describe(rec.pipeline)} (≈{rec.score:.4f})")
    for t in done:
        ref = f" [{t.is_reference}]" if t.is_reference else ""
        secs = t.wall_seconds or sum(e.get("seconds", 0) for e in t.epochs)
        print(f"  trial {t.number} {t.status:<9} {t.accuracy or 0:.4f}  {secs:5.0f} s  "
              f"{describe(t.pipeline)}{ref}")  # fmt: skip
    print(f"best {best:.4f} vs the grid's oracle {oracle:.4f} (regret {100 * (oracle - best):.1f} points); "
          f"training {spent:.0f} s = {spent / grid_s:.0%} of the grid's {grid_s:.0f} s")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=Path, default=SHIPPED_PRIORS, help="the meta-dataset CSV")
    ap.add_argument("--share", type=float, default=0.2, help="a search arm's trials: this share of the grid")
    ap.add_argument("--warm", type=int, default=WARM, help="the ranker's top pipelines trained first")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--bags", type=int, default=10, help="the ranker's models (folds of the datasets)")
    ap.add_argument("--meta", choices=["auto", "use", "ignore"], default="use", help="meta-features")
    ap.add_argument("--objective", choices=OBJECTIVES, default=OBJECTIVES[0], help="the ranker's objective")
    ap.add_argument("--bag-seed", type=int, default=0, help="the ranker's first bag seed")
    ap.add_argument("--curves-only", action="store_true", help="only the variants with learning curves")
    ap.add_argument("--live", metavar="VARIANT", help="run the real warm-started search on this variant")
    ap.add_argument("--live-trials", type=int, default=6, help="trials of --live, the 2 references included")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.live:
        live(args.live, args.rows, args.live_trials)
        return
    rows, extra = load_meta_rows(args.rows), extras(args.rows)
    by_task: dict[str, list[MetaRow]] = defaultdict(list)
    for r in rows:
        by_task[r.task].append(r)
    results: dict[str, dict[str, dict[str, tuple]]] = defaultdict(dict)  # dataset → task → arm → result
    best: dict[str, float] = {}
    for ds in sorted({dataset_of(t) for t in by_task}):
        train = [r for r in rows if dataset_of(r.task) != ds]
        ranker = Ranker.fit(
            train, bags=args.bags, meta=args.meta, objective=args.objective, seed=args.bag_seed
        )
        fixed = fixed_order(train)
        for task in sorted(t for t in by_task if dataset_of(t) == ds):
            v = Variant(by_task[task], extra)
            if len(v.table) < 4 or (args.curves_only and len(v.curves) < len(v.table)):
                print(f"skipping {task}: {len(v.table)} grid points, {len(v.curves)} learning curves")
                continue
            results[ds][task], best[task] = arms(v, ranker, fixed, args.share, args.warm, args.seeds), v.best
    names = [a for a in (*ARMS, *ASHA_ARMS) if all(a in r for t in results.values() for r in t.values())]
    print(f"\nleave one dataset out: {len(results)} datasets, {sum(map(len, results.values()))} variants; "
          f"regret in points (best test − the arm's test); search arms ⌊{args.share:g} × the grid⌋ trials "
          f"(warm: the ranker's top {args.warm} first), ASHA arms {args.share:g} × its training seconds; "
          f"{args.seeds} seeds\n")  # fmt: skip
    print("| held-out variant | best test | " + " | ".join(names) + " |\n|---|---|" + "---|" * len(names))
    for task, res in ((t, r) for d in results.values() for t, r in d.items()):
        print(f"| {task} | {100 * best[task]:.2f} | " + " | ".join(f"{res[a][0]:.2f}" for a in names) + " |")
    per_ds = {a: [statistics.fmean(r[a][0] for r in t.values()) for t in results.values()] for a in names}
    spent = {a: sum(r[a][1] for t in results.values() for r in t.values()) for a in names}
    print("\n| arm | mean regret over datasets | median | max | within 0.5 pt of grid | compute vs grid |")
    print("|---|---|---|---|---|---|")
    for a in names:
        close = sum(x - g <= 0.5 for x, g in zip(per_ds[a], per_ds["grid"], strict=True))
        mean, median, worst = statistics.fmean(per_ds[a]), statistics.median(per_ds[a]), max(per_ds[a])
        print(f"| {a} | {mean:.2f} | {median:.2f} | {worst:.2f} | {close}/{len(per_ds[a])} "
              f"| {spent[a] / spent['grid']:.0%} |")  # fmt: skip
    one, fix = statistics.fmean(per_ds["one-shot"]), statistics.fmean(per_ds["fixed"])
    print(
        f"\ngoal 1, one-shot regret below the best fixed pipeline's: {one:.2f} vs {fix:.2f} "
        f"(difference {one - fix:+.2f} {interval(per_ds['one-shot'], per_ds['fixed'])}) → "
        f"{'met' if one < fix else 'not met'}"
    )
    for arm in (a for a in names if a.startswith("warm")):
        gap = statistics.fmean(per_ds[arm]) - statistics.fmean(per_ds["grid"])
        share = spent[arm] / spent["grid"]
        print(
            f"goal 2, {arm} within 0.5 points of the grid's best at ≤ 20% of its compute: {gap:+.2f} points "
            f"{interval(per_ds[arm], per_ds['grid'])} at {share:.0%} → "
            f"{'met' if gap <= 0.5 and share <= 0.2 else 'not met'}"
        )


def interval(a: list[float], b: list[float]) -> str:
    """A 95% bootstrap interval, over the held-out datasets, of mean(a) − mean(b) (paired by dataset)."""
    lo, hi = bootstrap([x - y for x, y in zip(a, b, strict=True)])
    return f"[95% over datasets: {lo:+.2f} to {hi:+.2f}]"


if __name__ == "__main__":
    main()
