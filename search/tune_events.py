"""Ray Tune's trial events as the search reports them: the hooks a caller overrides (``SearchCallbacks``),
the record of each trial, the result of a search, and the ``tune.Callback`` bridging the two."""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

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


def clean_result(result: Mapping[str, Any]) -> dict[str, Any]:
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


def bridge(callbacks: Any, records: dict[str, TrialRecord], objectives: Sequence[str]) -> Any:
    """A ``tune.Callback`` forwarding Tune's trial events to ``callbacks`` and filling ``records``."""
    from ray import tune

    def clean(result: Mapping[str, Any]) -> dict[str, Any]:
        out = clean_result(result)
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


def abort_stopper(should_stop: Callable[[], bool]) -> Any:
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
