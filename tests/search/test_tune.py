"""The search on real Ray Tune + Optuna, with toy trainables (a deterministic function of the params, reported
over epochs with tiny sleeps) instead of training a model."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from ray import cloudpickle

from distill.pipeline import StudentArch, Training
from search import SearchCallbacks, SearchSpace, TuneBudget, ensure_ray, pareto_front, run_search

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
optuna.logging.set_verbosity(optuna.logging.WARNING)
# Ray workers cannot import this test module: ship its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

CANDIDATES = [StudentArch(layers=n, hidden=64, heads=4, ffn=128) for n in (1, 2, 4)]
QUALITY = {"ce_only": 0.5, "kl": 0.8, "mse": 0.1, "dkd": 0.85}
Report = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="module", autouse=True)
def ray_session() -> Iterator[None]:
    import ray

    ensure_ray(None, num_cpus=2)
    ensure_ray(None, num_cpus=2)  # idempotent
    yield
    ray.shutdown()


@pytest.fixture
def space() -> SearchSpace:
    return SearchSpace.small(CANDIDATES, epochs=[4], training=Training(epochs=4, batch_size=32))


def toy(params: dict[str, Any], shared: dict[str, Any], report: Report) -> dict[str, Any]:
    """Accuracy rises linearly to a level set by the loss and the student size; mse is clearly poor."""
    q = QUALITY[params["loss"]] + 0.05 * params["student"]
    for epoch in range(1, params["epochs"] + 1):
        time.sleep(0.01)
        report({"accuracy": q * epoch / params["epochs"], "params": 1000 * (params["student"] + 1)})
    return {"marker": shared["marker"], "data_sum": sum(shared["data"])}


def toy_failing_on_mse(params: dict[str, Any], shared: dict[str, Any], report: Report) -> dict[str, Any]:
    if params["loss"] == "mse":
        raise RuntimeError("boom: mse is not supported by this toy")
    return toy(params, shared, report)


class Recorder(SearchCallbacks):
    """Records every event; holds a lock, so it is not picklable (the driver must not need to pickle it)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple] = []

    def on_trial_start(self, trial_id: str, params: dict[str, Any]) -> None:
        self.events.append(("start", trial_id, params))

    def on_trial_result(self, trial_id: str, metrics: dict[str, Any]) -> None:
        self.events.append(("result", trial_id, metrics))

    def on_trial_complete(self, trial_id: str, params: dict, final_metrics: dict, status: str) -> None:
        self.events.append(("complete", trial_id, params, final_metrics, status))

    def on_trial_error(self, trial_id: str, params: dict[str, Any], error_text: str) -> None:
        self.events.append(("error", trial_id, params, error_text))

    def of(self, kind: str) -> list[tuple]:
        return [e for e in self.events if e[0] == kind]


SHARED = {"marker": "shared-ok", "data": list(range(1000))}


def test_search_reports_every_trial_references_first_and_asha_stops_poor_ones(
    space: SearchSpace, tmp_path: Path
) -> None:
    refs = space.reference_params()
    poor = {**refs["vanilla_kd"], "loss": "mse"}
    del poor["temperature"]
    rec = Recorder()
    result = run_search(
        toy,
        space,
        TuneBudget(trials=6, concurrency=1),
        shared=SHARED,
        enqueue=[refs["no_kd"], refs["vanilla_kd"], poor],
        callbacks=rec,
        storage_path=str(tmp_path),
        seed=0,
    )
    assert len(result.trials) == 6
    starts = rec.of("start")
    assert [e[2] for e in starts[:3]] == [refs["no_kd"], refs["vanilla_kd"], poor]
    completes = {e[1]: e for e in rec.of("complete")}
    assert set(completes) == {e[1] for e in starts} == {t.trial_id for t in result.trials}
    assert not rec.of("error")
    for t in result.trials:
        space.to_pipeline(t.params)  # every trial is a valid pipeline
        assert len([e for e in rec.of("result") if e[1] == t.trial_id]) == t.epochs
        assert completes[t.trial_id][3] == t.metrics
        assert completes[t.trial_id][4] == t.status
    # the poor config is below the rung-1 median: ASHA stops it after one epoch
    stopped = [t for t in result.trials if t.params == poor]
    assert stopped[0].status == "stopped" and stopped[0].epochs == 1 < space.max_epochs
    # trials that ran to the end carry the returned metrics: the shared object reached the trainable
    finished = [t for t in result.trials if t.status == "completed"]
    assert finished and all(t.epochs == 4 for t in finished)
    assert all(t.metrics["marker"] == "shared-ok" and t.metrics["data_sum"] == 499500 for t in finished)
    assert result.best is not None and result.best.metrics["accuracy"] == max(
        t.metrics["accuracy"] for t in result.trials
    )


def test_a_failing_trial_is_recorded_and_the_search_goes_on(space: SearchSpace, tmp_path: Path) -> None:
    refs = space.reference_params()
    poor = {**refs["vanilla_kd"], "loss": "mse"}
    del poor["temperature"]
    rec = Recorder()
    result = run_search(
        toy_failing_on_mse,
        space,
        TuneBudget(trials=4, early_stopping=False),
        shared=SHARED,
        enqueue=[poor, refs["vanilla_kd"]],
        callbacks=rec,
        storage_path=str(tmp_path),
        seed=1,
    )
    assert len(result.trials) == 4
    errors = [t for t in result.trials if t.status == "error"]
    assert [t.params for t in errors][:1] == [poor]
    assert "boom: mse is not supported" in errors[0].error
    assert "in toy_failing_on_mse" in errors[0].error and "\x1b[" not in errors[0].error  # traceback, plain
    assert rec.of("error")[0][1] == errors[0].trial_id and "boom" in rec.of("error")[0][3]
    others = [t for t in result.trials if t.params["loss"] != "mse"]
    assert others and all(t.status == "completed" for t in others)
    assert result.best is not None and result.best.status == "completed"


def test_done_trials_are_not_rerun_and_only_the_rest_of_the_budget_is_spent(
    space: SearchSpace, tmp_path: Path
) -> None:
    refs = space.reference_params()
    done = [(refs["no_kd"], {"accuracy": 0.5, "params": 1000}), (refs["vanilla_kd"], {"accuracy": 0.97})]
    done.append(({**refs["vanilla_kd"], "lr": 1e-3}, None))  # failed in the earlier run
    rec = Recorder()
    result = run_search(
        toy,
        space,
        TuneBudget(trials=6),
        shared=SHARED,
        done=done,
        enqueue=[refs["no_kd"], refs["vanilla_kd"]],  # both already done: skipped
        callbacks=rec,
        storage_path=str(tmp_path),
        seed=2,
    )
    assert len(rec.of("start")) == 3
    new = [t for t in result.trials if t.status not in ("done", "error")]
    assert len(new) == 3
    assert all(t.params not in (refs["no_kd"], refs["vanilla_kd"]) for t in new)
    assert [t.status for t in result.trials[:3]] == ["done", "done", "error"]
    assert result.best is not None and result.best.metrics["accuracy"] == 0.97  # the earlier best counts

    everything_done = run_search(toy, space, TuneBudget(trials=2), done=done[:2])
    assert len(everything_done.trials) == 2 and everything_done.best.params == refs["vanilla_kd"]


def toy_size_at_end(params: dict[str, Any], shared: dict[str, Any], report: Report) -> dict[str, Any]:
    """Like ``toy`` but, as the real trainable, reports the student size only with the final metrics."""
    q = QUALITY[params["loss"]] + 0.05 * params["student"]
    for epoch in range(1, params["epochs"] + 1):
        time.sleep(0.01)
        report({"accuracy": q * epoch / params["epochs"]})
    return {"params": 1000 * (params["student"] + 1)}


def test_multi_objective_returns_a_pareto_front(space: SearchSpace, tmp_path: Path) -> None:
    refs = space.reference_params()
    poor = {**refs["no_kd"], "loss": "mse", "kd_weight": 1.0, "hard_weight": 1.0}
    rec = Recorder()
    result = run_search(
        toy_size_at_end,
        space,
        TuneBudget(trials=8),
        multi_objective=[("accuracy", "max"), ("params", "min")],
        enqueue=[refs["no_kd"], refs["vanilla_kd"], poor],
        callbacks=rec,
        storage_path=str(tmp_path),
        seed=3,
    )
    assert len(result.trials) == 8 and not rec.of("error")
    # ASHA (on accuracy) stopped the poor trial before it returned its size: no placeholder leaks out
    stopped = next(t for t in result.trials if t.params == poor)
    assert stopped.status == "stopped" and "params" not in stopped.metrics
    assert all("params" not in e[2] for e in rec.of("result") if e[1] == stopped.trial_id)
    scored = [t for t in result.trials if "params" in t.metrics]
    assert all(t.status == "completed" for t in scored) and len(scored) >= 3
    front = result.pareto
    assert front and stopped not in front

    def dominates(a: dict, b: dict) -> bool:
        ge = a["accuracy"] >= b["accuracy"] and a["params"] <= b["params"]
        return ge and (a["accuracy"] > b["accuracy"] or a["params"] < b["params"])

    for p in front:
        assert not any(dominates(t.metrics, p.metrics) for t in scored)
    for t in scored:
        if t not in front:
            assert any(dominates(p.metrics, t.metrics) for p in front)
    assert result.best in front


def test_constraints_limit_the_best(space: SearchSpace, tmp_path: Path) -> None:
    refs = space.reference_params()
    big = {**refs["vanilla_kd"], "student": 2}  # best loss, but 3000 params
    result = run_search(
        toy,
        space,
        TuneBudget(trials=3, early_stopping=False),
        shared=SHARED,
        constraints={"params": 2500},
        enqueue=[big, refs["no_kd"], refs["vanilla_kd"]],
        storage_path=str(tmp_path),
        seed=4,
    )
    assert result.best is not None and result.best.params == refs["vanilla_kd"]
    by_student = {t.params["student"]: t for t in result.trials if t.params["loss"] == "kl"}
    assert by_student[2].metrics["accuracy"] > result.best.metrics["accuracy"]  # better, but too big


def test_wall_clock_budget_ends_the_search(space: SearchSpace, tmp_path: Path) -> None:
    def slow(params: dict[str, Any], shared: dict[str, Any], report: Report) -> None:
        for _ in range(params["epochs"]):
            time.sleep(0.5)
            report({"accuracy": 0.5})

    start = time.monotonic()
    # 8 s: a trial's actor takes 2-4 s to start on two busy cores, and with 3 s none had started in time
    result = run_search(
        slow, space, TuneBudget(trials=100, wall_seconds=8, early_stopping=False), storage_path=str(tmp_path)
    )
    assert time.monotonic() - start < 30
    assert 1 <= len(result.trials) < 100
    assert any(t.status == "stopped" for t in result.trials)


def test_should_stop_cancels_the_search(space: SearchSpace, tmp_path: Path) -> None:
    cancel = threading.Event()

    class CancelAfterFirstResult(Recorder):
        def on_trial_result(self, trial_id: str, metrics: dict[str, Any]) -> None:
            super().on_trial_result(trial_id, metrics)
            cancel.set()

    def slow(params: dict[str, Any], shared: dict[str, Any], report: Report) -> None:
        for _ in range(params["epochs"]):
            report({"accuracy": 0.5})
            time.sleep(0.5)

    rec = CancelAfterFirstResult()
    start = time.monotonic()
    result = run_search(
        slow,
        space,
        TuneBudget(trials=50, early_stopping=False),
        callbacks=rec,
        storage_path=str(tmp_path),
        should_stop=cancel.is_set,
    )
    assert time.monotonic() - start < 15
    assert len(result.trials) == 1 and result.trials[0].status == "stopped"
    assert rec.of("complete")[0][4] == "stopped"


def test_pareto_front_helper() -> None:
    from search.tune_events import TrialRecord

    recs = [
        TrialRecord(str(i), {}, {"a": a, "b": b}) for i, (a, b) in enumerate([(1, 1), (2, 2), (2, 1), (0, 0)])
    ]
    front = pareto_front(recs, [("a", "max"), ("b", "min")])
    assert [r.trial_id for r in front] == ["2", "3"]
