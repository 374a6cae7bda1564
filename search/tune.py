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
import os
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna

from search.space import SearchSpace

log = logging.getLogger(__name__)

TrainableFn = Callable[
    [dict[str, Any], dict[str, Any], Callable[[dict[str, Any]], None]], "dict[str, Any] | None"
]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
FINISHED = "trial_finished"  # set in the last result of a trial whose trainable returned
_TUNE_KEYS = frozenset(
    {
        "training_iteration", "time_total_s", "time_this_iter_s", "time_since_restore", "timestamp", "date",
        "done", "trial_id", "experiment_tag", "hostname", "node_ip", "pid", "config", "should_checkpoint",
        "checkpoint_dir_name", "iterations_since_restore", "timesteps_total", "timesteps_since_restore",
        "timesteps_this_iter", "episodes_total", "episodes_this_iter", "experiment_id", "__duplicate__",
        FINISHED,
    }
)  # fmt: skip


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start Ray once: join the cluster at ``address`` (e.g. ``"ray://head:10001"`` or ``"auto"``), else
    start an in-process single-machine Ray with ``num_cpus`` CPUs, no dashboard, no usage stats and no
    token authentication (Ray 2.60 turns it on by default; a cluster keeps whatever its head uses).
    Does nothing if Ray is already initialised."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address:
        ray.init(address=address, log_to_driver=False)
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)


@dataclass
class Budget:
    """How much search a job may spend.

    ``trials`` counts every trial of the job, including ``done`` ones of an earlier run; ``wall_seconds``
    bounds this call. ``gpus_per_trial=None`` means 1 when the cluster has GPUs, else 0. ``max_epochs`` is
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


class SearchCallbacks:
    """Hooks called in the driver process as trials progress; override what you need.

    ``status`` of a complete trial is ``"completed"`` (its trainable returned) or ``"stopped"`` (ended
    early by ASHA or by the wall-clock budget).
    """

    def on_trial_start(self, trial_id: str, params: dict[str, Any]) -> None: ...

    def on_trial_result(self, trial_id: str, metrics: dict[str, Any]) -> None: ...

    def on_trial_complete(
        self, trial_id: str, params: dict[str, Any], final_metrics: dict[str, Any], status: str
    ) -> None: ...

    def on_trial_error(self, trial_id: str, params: dict[str, Any], error_text: str) -> None: ...


@dataclass
class TrialRecord:
    """One trial. ``status``: ``completed``, ``stopped``, ``error`` or ``done`` (finished in an earlier
    run); ``epochs``: the number of results it reported."""

    trial_id: str
    params: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    status: str = "running"
    epochs: int = 0
    error: str | None = None


@dataclass
class SearchResult:
    """Every trial (earlier ``done`` ones first), the best feasible one by the primary objective, and, for a
    multi-objective search, the Pareto front of the feasible trials."""

    trials: list[TrialRecord]
    best: TrialRecord | None
    objectives: list[tuple[str, str]]
    pareto: list[TrialRecord] = field(default_factory=list)

    @property
    def best_params(self) -> dict[str, Any] | None:
        return self.best.params if self.best else None

    @property
    def best_metrics(self) -> dict[str, Any] | None:
        return self.best.metrics if self.best else None


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


def _clean(result: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in _TUNE_KEYS}


def _error_text(trial: Any) -> str | None:
    """The traceback Tune wrote for a failed trial: the driver-local file first (written before
    ``on_trial_error``), then the copy in the experiment storage."""
    try:
        if trial.error_file and os.path.exists(trial.error_file):
            with open(trial.error_file, encoding="utf-8", errors="replace") as f:
                return _ANSI.sub("", f.read())
        text = trial.get_error()
        return _ANSI.sub("", str(text)) if text else None
    except Exception:
        log.debug("could not read the error of trial %s", trial.trial_id, exc_info=True)
        return None


def _bridge(callbacks: Any, records: dict[str, TrialRecord], objectives: Sequence[str]) -> Any:
    """A ``tune.Callback`` forwarding Tune's trial events to ``callbacks`` and filling ``records``."""
    from ray import tune

    def clean(result: Mapping[str, Any]) -> dict[str, Any]:
        out = _clean(result)
        for k in objectives:  # NaN placeholders of objectives not reported yet
            if isinstance(out.get(k), float) and math.isnan(out[k]):
                del out[k]
        return out

    def call(name: str, *args: Any) -> None:
        hook = getattr(callbacks, name, None)
        if hook is None:
            return
        try:
            hook(*args)
        except Exception:  # a failing hook must not end the search
            log.exception("search callback %s failed", name)

    class Bridge(tune.Callback):
        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            params = dict(trial.config)
            records[trial.trial_id] = TrialRecord(trial.trial_id, params)
            call("on_trial_start", trial.trial_id, params)

        def on_trial_result(
            self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
        ) -> None:
            rec = records.get(trial.trial_id)
            if rec is None:
                return
            rec.epochs = int(result.get("training_iteration", rec.epochs + 1))
            rec.metrics = clean(result)
            call("on_trial_result", trial.trial_id, dict(rec.metrics))

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            rec = records.get(trial.trial_id)
            if rec is None:  # stopped before it started (wall-clock budget): not a trial of the job
                return
            rec.status = "completed" if (trial.last_result or {}).get(FINISHED) else "stopped"
            call("on_trial_complete", trial.trial_id, dict(rec.params), dict(rec.metrics), rec.status)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            rec = records.setdefault(trial.trial_id, TrialRecord(trial.trial_id, dict(trial.config)))
            text = _error_text(trial)
            rec.status = "error"
            rec.error = text or "trial failed (no error text recorded)"
            call("on_trial_error", trial.trial_id, dict(rec.params), rec.error)

        def finish(self) -> None:
            """Close the trials Tune left running when the wall-clock budget ran out (it ends the
            experiment without ``on_trial_complete`` for them)."""
            for rec in records.values():
                if rec.status == "running":
                    rec.status = "stopped"
                    call("on_trial_complete", rec.trial_id, dict(rec.params), dict(rec.metrics), rec.status)

        def __reduce__(self) -> Any:
            # Tune pickles callbacks with its experiment state; the user's hooks (DB sessions...) need not
            # be picklable, and the saved copy is never used to drive this search.
            return (tune.Callback, ())

    return Bridge()


def _abort_stopper(should_stop: Callable[[], bool]) -> Any:
    """A Tune ``Stopper`` ending the whole search once ``should_stop()`` is true."""
    from ray.tune.stopper import NoopStopper, Stopper

    class AbortStopper(Stopper):
        def __call__(self, trial_id: str, result: dict) -> bool:
            return False

        def stop_all(self) -> bool:
            return bool(should_stop())

        def __reduce__(self) -> Any:  # pickled with the experiment state; `should_stop` need not be
            return (NoopStopper, ())

    return AbortStopper()


def _feasible(metrics: Mapping[str, Any], constraints: Mapping[str, float]) -> bool:
    return all(
        isinstance(metrics.get(k), int | float) and metrics[k] <= bound for k, bound in constraints.items()
    )


def _has(metrics: Mapping[str, Any], names: Sequence[str]) -> bool:
    return all(isinstance(metrics.get(k), int | float) and not math.isnan(metrics[k]) for k in names)


def pareto_front(records: Sequence[TrialRecord], objectives: Sequence[tuple[str, str]]) -> list[TrialRecord]:
    """The records no other record dominates (at least as good on every objective, better on one)."""
    sign = [1.0 if mode == "max" else -1.0 for _, mode in objectives]
    vecs = [[s * float(r.metrics[k]) for s, (k, _) in zip(sign, objectives, strict=True)] for r in records]

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x >= y for x, y in zip(a, b, strict=True)) and any(
            x > y for x, y in zip(a, b, strict=True)
        )

    return [r for r, v in zip(records, vecs, strict=True) if not any(dominates(w, v) for w in vecs)]


def _violations(metrics: Mapping[str, Any], constraints: Mapping[str, float]) -> dict[str, float]:
    """Optuna's constraint values (``Trial.set_constraint``): ≤ 0 is feasible; a metric never reported
    counts as violated."""
    return {
        k: float(metrics[k]) - bound if isinstance(metrics.get(k), int | float) else 1.0
        for k, bound in constraints.items()
    }


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
                for key, value in _violations(result, self._constraints).items():
                    ot_trial.set_constraint(key, value)
            if result and isinstance(self.metric, list) and not _has(result, self.metric):
                result = None  # stopped before its final metrics: Optuna files it as pruned
            super().on_trial_complete(trial_id, result=result, error=error)

    return ConstrainedOptunaSearch


def run_search(
    trainable_fn: TrainableFn,
    space: SearchSpace,
    budget: Budget,
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
        and _has(r.metrics, [k for k, _ in objectives])
        and _feasible(r.metrics, constraints)
    ]
    pareto = pareto_front(scored, objectives) if multi_objective else []
    best = max(pareto or scored, key=lambda r: sign * float(r.metrics[metric]), default=None)
    return SearchResult(trials=trials, best=best, objectives=objectives, pareto=pareto)


def _tune(
    trainable_fn: TrainableFn,
    space: SearchSpace,
    budget: Budget,
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
    from ray.tune.schedulers import ASHAScheduler

    ensure_ray()
    metric, mode = objectives[0]
    multi = len(objectives) > 1
    if multi:
        sampler: optuna.samplers.BaseSampler = optuna.samplers.NSGAIISampler(
            population_size=max(2, min(50, budget.trials // 2)), seed=seed
        )
    else:
        sampler = optuna.samplers.TPESampler(n_startup_trials=max(1, min(10, budget.trials // 3)), seed=seed)

    # One study shared with OptunaSearch (it loads it by name): earlier trials are filed here with their
    # distributions, since OptunaSearch's own `evaluated_rewards` rejects a define-by-run space.
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
        ok = rec.status == "done" and _has(rec.metrics, [k for k, _ in objectives])
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.COMPLETE if ok else optuna.trial.TrialState.FAIL,
                values=[float(rec.metrics[k]) for k, _ in objectives] if ok else None,
                params=rec.params,
                distributions=dists,
                constraints=_violations(rec.metrics, constraints) if constraints and ok else None,
            )
        )
    for params in enqueue:
        study.enqueue_trial(params)

    searcher = _searcher_class()(
        space.suggest,
        metric=[k for k, _ in objectives] if multi else metric,
        mode=[m for _, m in objectives] if multi else mode,
        sampler=sampler,
        storage=storage,
        study_name=name,
        constraints=constraints,
    )
    scheduler = None
    if budget.early_stopping:
        max_t = budget.max_epochs or space.max_epochs
        scheduler = ASHAScheduler(
            time_attr="training_iteration",
            metric=metric,
            mode=mode,
            max_t=max(max_t, budget.grace_period),
            grace_period=budget.grace_period,
            reduction_factor=budget.reduction_factor,
            stop_last_trials=False,  # a trial ends when its trainable returns, with its final metrics
        )

    gpus = budget.gpus_per_trial
    if gpus is None:
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    required = tuple(k for k, _ in objectives)
    trainable = tune.with_parameters(
        _run_trial, trainable_fn=trainable_fn, shared=shared, objectives=required
    )
    trainable = tune.with_resources(trainable, {"cpu": budget.cpus_per_trial, "gpu": gpus})

    bridge = _bridge(callbacks, records, required)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=num_samples,
            max_concurrent_trials=budget.concurrency,
            time_budget_s=budget.wall_seconds,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage_path,
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            callbacks=[bridge],
            stop=_abort_stopper(should_stop) if should_stop else None,
            verbose=0,
        ),
    )
    tuner.fit()  # trial errors are recorded, not raised (Tuner runs with raise_on_failed_trial=False)
    bridge.finish()
