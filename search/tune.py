"""Run a pipeline search on Ray Tune: Optuna (TPE, or NSGA-II for several objectives) proposes, ASHA stops
poor trials early on the per-epoch metric, and every trial is reported to the caller as it happens.

The trainable contract is ``trainable_fn(params, shared, report) -> final metrics``: ``params`` is the flat
dict of :class:`search.space.SearchSpace` (turn it into a pipeline with ``space.to_pipeline``), ``shared``
holds the large read-only objects of the job (put in the object store once), and ``report(metrics)`` is called
once per epoch with at least the primary metric. Metrics accumulate: a key reported once stays in every later
result, and the returned dict is merged into the last one, so other objectives (``params``, ``latency_ms``)
may come with the returned final metrics only.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from distill.device import check_gpu_share
from search.cluster import ensure_ray, fail_stale_trials, local_only_ray_env  # noqa: F401  (re-exported)
from search.pareto import feasible, has_metrics, pareto_front, violations
from search.resources import trial_resources
from search.space import SearchSpace
from search.tune_events import FINISHED, SearchCallbacks, SearchResult, TrialRecord, abort_stopper, bridge

log = logging.getLogger(__name__)

TrainableFn = Callable[
    [dict[str, Any], dict[str, Any], Callable[[dict[str, Any]], None]], "dict[str, Any] | None"
]


@dataclass
class TuneBudget:
    """How much one Tune run of a job may spend (the user's budget is ``store.spec.JobBudget``).

    ``trials`` counts every trial of the job, including ``done`` ones of an earlier run; ``wall_seconds``
    bounds this call. ``gpus_per_trial``: each trial's GPU share (None: 1 when the cluster has GPUs, else 0;
    a fraction packs several trials a GPU: ``search.resources.trial_resources``). ``max_epochs`` is
    ASHA's ``max_t`` (default: the space's largest epoch count); ``early_stopping=False`` turns ASHA off.
    """

    trials: int
    wall_seconds: float | None = None
    concurrency: int = 1
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None
    max_epochs: int | None = None
    grace_period: int = 1
    reduction_factor: float = 2.0
    early_stopping: bool = True

    def __post_init__(self) -> None:
        if self.trials < 1 or self.concurrency < 1:
            raise ValueError(f"budget needs trials ≥ 1 and concurrency ≥ 1, got {self}")
        if self.wall_seconds is not None and self.wall_seconds <= 0:
            raise ValueError(f"wall_seconds must be positive, got {self.wall_seconds}")
        check_gpu_share(self.gpus_per_trial)


# --------------------------------------------------------------------------- trial side


def _run_trial(
    config: dict[str, Any],
    trainable_fn: TrainableFn,
    shared: dict[str, Any],
    objectives: tuple[str, ...],
) -> None:
    """Ray function trainable: runs ``trainable_fn`` and forwards each epoch's metrics to Tune.

    The report of the trial's last epoch (``config["epochs"]``) is held back and sent merged with the
    returned final metrics, so the final result is one Tune iteration per epoch, and ASHA stopping a trial at
    ``max_t`` cannot lose the final metrics. Every report needs the primary objective; the others (e.g.
    ``params``, ``latency_ms``) may come only with the final metrics: until then they are sent as NaN
    placeholders (Tune insists on every objective in every result), which the driver drops again.
    """
    from ray import tune

    params = dict(config)
    expected = int(params.get("epochs", 0))
    acc: dict[str, Any] = {}
    held: dict[str, Any] | None = None
    count = 0

    def send(metrics: dict[str, Any], final: bool = False) -> None:
        needed = objectives if final else objectives[:1]
        if missing := [k for k in needed if k not in metrics]:
            raise ValueError(f"trial result lacks the objective metric(s) {missing}: got {sorted(metrics)}")
        tune.report({**dict.fromkeys(objectives, math.nan), **metrics})

    def report(metrics: dict[str, Any]) -> None:
        nonlocal held, count
        if held is not None:
            send(held)
            held = None
        acc.update(metrics)
        count += 1
        if count == expected:
            held = dict(acc)
        else:
            send(dict(acc))

    acc.update(trainable_fn(params, shared, report) or {})
    acc[FINISHED] = True
    send(
        acc, final=True
    )  # the held last epoch, merged; an extra iteration only if the epoch count was not as expected


# --------------------------------------------------------------------------- driver side


def _searcher_class() -> type:
    from ray.tune.search.optuna import OptunaSearch

    class ConstrainedOptunaSearch(OptunaSearch):
        """``OptunaSearch`` that sets the trial's Optuna constraints (``Trial.set_constraint``, which the
        TPE and NSGA-II samplers read) from the reported metrics before telling Optuna the result, and
        files a multi-objective trial stopped before its final metrics as pruned."""

        def __init__(self, *args: Any, constraints: Mapping[str, float] | None = None, **kwargs: Any) -> None:
            self._constraints = dict(constraints or {})
            super().__init__(*args, **kwargs)

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            ot_trial = self._ot_trials.get(trial_id)
            if (
                ot_trial is not None
                and result
                and self._constraints
                and trial_id not in self._completed_trials
            ):
                for key, value in violations(result, self._constraints).items():
                    ot_trial.set_constraint(key, value)
            if result and isinstance(self.metric, list) and not has_metrics(result, self.metric):
                result = None  # stopped before its final metrics: Optuna files it as pruned
            super().on_trial_complete(trial_id, result=result, error=error)

    return ConstrainedOptunaSearch


def run_search(
    trainable_fn: TrainableFn,
    space: SearchSpace,
    budget: TuneBudget,
    *,
    shared: Mapping[str, Any] | None = None,
    metric: str = "accuracy",
    mode: str = "max",
    multi_objective: Sequence[tuple[str, str]] | None = None,
    constraints: Mapping[str, float] | None = None,
    done: Sequence[tuple[Mapping[str, Any], Mapping[str, Any] | None]] = (),
    enqueue: Sequence[Mapping[str, Any]] = (),
    callbacks: SearchCallbacks | Any | None = None,
    storage_path: str | None = None,
    name: str | None = None,
    seed: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    optuna_storage: str | None = None,
) -> SearchResult:
    """Search ``space`` with ``trainable_fn`` until ``budget`` is spent; return every trial and the best.

    - ``multi_objective`` (e.g. ``[("accuracy", "max"), ("params", "min")]``) switches Optuna to NSGA-II
      and fills ``SearchResult.pareto``; its first objective replaces ``metric``/``mode`` (ASHA, ``best``).
    - ``constraints`` are upper bounds on reported metrics (e.g. ``{"params": 5e6}``): the sampler learns
      them, and ``best``/``pareto`` consider only trials that meet them.
    - ``done``: ``(params, final metrics, or None if it failed)`` of trials finished in an earlier run.
      They are told to Optuna (the sampler learns from them), never re-run, and count in ``budget.trials``.
    - ``enqueue``: parameters to evaluate first, in order (references, warm starts); ones already ``done``
      are skipped.
    - ``callbacks``: an object with any of ``on_trial_start/result/complete/error`` (see
      :class:`SearchCallbacks`), called in this process.
    - ``should_stop``: polled about every 0.1 s in this process; when it returns True the search ends
      (running trials are stopped and reported ``stopped``), e.g. ``threading.Event().is_set`` to cancel.
    - ``optuna_storage``: a SQLAlchemy URL where the Optuna study (named ``name``) is kept, in Optuna's own
      tables (e.g. the trial database); default: in memory.

    A trainable that raises is recorded as an error trial and the search goes on.
    """
    objectives = list(multi_objective) if multi_objective else [(metric, mode)]
    for key, m in objectives:
        if m not in ("min", "max"):
            raise ValueError(f"mode of {key} must be 'min' or 'max', got {m!r}")
    metric, mode = objectives[0]
    constraints = dict(constraints or {})
    name = name or f"search-{uuid.uuid4().hex[:8]}"

    records: dict[str, TrialRecord] = {}
    done_records = []
    for i, (params, result) in enumerate(done):
        metrics = dict(result or {})
        status, error = ("done", None) if result is not None else ("error", "failed in an earlier run")
        done_records.append(TrialRecord(f"done-{i}", dict(params), metrics, status, 0, error))
    remaining = budget.trials - len(done_records)
    enqueue = [dict(p) for p in enqueue if all(dict(p) != r.params for r in done_records)]
    for params in enqueue:
        space.distributions(params)  # fail fast, before any trial, on a point outside the space

    if remaining > 0:
        _tune(
            trainable_fn, space, budget, remaining, objectives, constraints, done_records, enqueue,
            dict(shared or {}), callbacks, records, storage_path, name, seed, should_stop, optuna_storage,
        )  # fmt: skip

    trials = done_records + list(records.values())
    sign = 1.0 if mode == "max" else -1.0
    scored = [
        r
        for r in trials
        if r.status != "error"
        and has_metrics(r.metrics, [k for k, _ in objectives])
        and feasible(r.metrics, constraints)
    ]
    pareto = pareto_front(scored, objectives) if multi_objective else []
    best = max(pareto or scored, key=lambda r: sign * float(r.metrics[metric]), default=None)
    return SearchResult(trials=trials, best=best, objectives=objectives, pareto=pareto)


def _tune(
    trainable_fn: TrainableFn,
    space: SearchSpace,
    budget: TuneBudget,
    num_samples: int,
    objectives: list[tuple[str, str]],
    constraints: dict[str, float],
    done_records: list[TrialRecord],
    enqueue: list[dict[str, Any]],
    shared: dict[str, Any],
    callbacks: Any,
    records: dict[str, TrialRecord],
    storage_path: str | None,
    name: str,
    seed: int | None,
    should_stop: Callable[[], bool] | None,
    optuna_storage: str | None,
) -> None:
    import ray
    from ray import tune

    ensure_ray()
    metric, mode = objectives[0]
    multi = len(objectives) > 1
    study, storage = _study(
        space, budget, objectives, constraints, done_records, enqueue, name, seed, optuna_storage
    )
    searcher = _searcher_class()(
        space.suggest,
        metric=[k for k, _ in objectives] if multi else metric,
        mode=[m for _, m in objectives] if multi else mode,
        sampler=study.sampler,
        storage=storage,
        study_name=name,
        constraints=constraints,
    )
    scheduler = _asha(budget, space, metric, mode) if budget.early_stopping else None

    resources = trial_resources(
        cpus_per_trial=budget.cpus_per_trial, gpus_per_trial=budget.gpus_per_trial,
        concurrency=budget.concurrency, cluster_gpus=float(ray.cluster_resources().get("GPU", 0)),
    )  # fmt: skip
    required = tuple(k for k, _ in objectives)
    trainable = tune.with_parameters(
        _run_trial, trainable_fn=trainable_fn, shared=shared, objectives=required
    )
    trainable = tune.with_resources(trainable, resources.request)

    events = bridge(callbacks, records, required)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=num_samples,
            max_concurrent_trials=resources.concurrency,
            time_budget_s=budget.wall_seconds,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage_path,
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            callbacks=[events],
            stop=abort_stopper(should_stop) if should_stop else None,
            verbose=0,
        ),
    )
    tuner.fit()  # trial errors are recorded, not raised (Tuner runs with raise_on_failed_trial=False)
    events.finish()


def _study(
    space: SearchSpace,
    budget: TuneBudget,
    objectives: list[tuple[str, str]],
    constraints: dict[str, float],
    done_records: list[TrialRecord],
    enqueue: list[dict[str, Any]],
    name: str,
    seed: int | None,
    optuna_storage: str | None,
) -> tuple[optuna.Study, optuna.storages.BaseStorage]:
    """The Optuna study the search samples from, and its storage: TPE (NSGA-II for several objectives),
    earlier trials filed with their distributions (OptunaSearch's own ``evaluated_rewards`` rejects a
    define-by-run space), then the enqueued points. OptunaSearch loads it by name from the storage."""
    if len(objectives) > 1:
        sampler: optuna.samplers.BaseSampler = optuna.samplers.NSGAIISampler(
            population_size=max(2, min(50, budget.trials // 2)), seed=seed
        )
    else:
        sampler = optuna.samplers.TPESampler(n_startup_trials=max(1, min(10, budget.trials // 3)), seed=seed)
    storage: optuna.storages.BaseStorage = (
        optuna.storages.RDBStorage(optuna_storage) if optuna_storage else optuna.storages.InMemoryStorage()
    )
    directions = ["maximize" if m == "max" else "minimize" for _, m in objectives]
    study = optuna.create_study(storage=storage, study_name=name, sampler=sampler, directions=directions)
    for rec in done_records:
        try:
            dists = space.distributions(rec.params)
        except ValueError as e:
            log.warning(
                "earlier trial %s is outside the search space, not told to Optuna: %s", rec.trial_id, e
            )
            continue
        ok = rec.status == "done" and has_metrics(rec.metrics, [k for k, _ in objectives])
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.COMPLETE if ok else optuna.trial.TrialState.FAIL,
                values=[float(rec.metrics[k]) for k, _ in objectives] if ok else None,
                params=rec.params,
                distributions=dists,
                constraints=violations(rec.metrics, constraints) if constraints and ok else None,
            )
        )
    for params in enqueue:
        study.enqueue_trial(params)
    return study, storage


def _asha(budget: TuneBudget, space: SearchSpace, metric: str, mode: str) -> Any:
    """ASHA on the per-epoch metric; a trial ends when its trainable returns, with its final metrics."""
    from ray.tune.schedulers import ASHAScheduler

    max_t = budget.max_epochs or space.max_epochs
    return ASHAScheduler(
        time_attr="training_iteration", metric=metric, mode=mode, max_t=max(max_t, budget.grace_period),
        grace_period=budget.grace_period, reduction_factor=budget.reduction_factor, stop_last_trials=False,
    )  # fmt: skip
