"""Writes each trial of a search to the database as Ray Tune reports it; keeps the best student's folder."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.space import SearchSpace
from search.tune_events import SearchCallbacks
from store import trials
from store.states import TrialStatus

EPOCH_KEYS = ("epoch", "accuracy", "macro_f1", "train_loss", "seconds")


@dataclass
class TrialRecorder(SearchCallbacks):
    """Writes each trial to the database as the search reports it, and keeps the best student's folder."""

    db: Any
    job_id: str
    space: SearchSpace
    references: dict[str, str]  # pipeline key → reference name
    next_number: int
    teacher_accuracy: float | None
    no_kd_accuracy: float | None
    best_accuracy: float | None
    best_dir: Path | None
    abort: threading.Event
    on_trial: Callable[[], None] | None = None
    rows: dict[str, int] = field(default_factory=dict)
    last_epoch: dict[str, int] = field(default_factory=dict)

    def on_trial_start(self, trial_id: str, params: dict[str, Any]) -> None:
        pipeline = self.space.to_pipeline(params)
        ref = self.references.get(pipeline.key())
        row = trials.start_trial(self.db, self.job_id, self.next_number, pipeline, is_reference=ref)
        self.rows[trial_id] = row.id
        self.next_number += 1

    def on_trial_result(self, trial_id: str, metrics: dict[str, Any]) -> None:
        epoch = int(metrics.get("epoch", 0))
        if trial_id in self.rows and epoch > self.last_epoch.get(trial_id, 0):
            self.last_epoch[trial_id] = epoch
            trials.record_epoch(
                self.db, self.rows[trial_id], {k: metrics[k] for k in EPOCH_KEYS if k in metrics}
            )

    def on_trial_complete(
        self, trial_id: str, params: dict[str, Any], final: dict[str, Any], status: str
    ) -> None:
        if trial_id not in self.rows:
            return
        pipeline = self.space.to_pipeline(params)
        acc = final.get("accuracy")
        if self.references.get(pipeline.key()) == "no_kd" and acc is not None:
            self.no_kd_accuracy = acc
        trials.finish_trial(
            self.db,
            self.rows[trial_id],
            TrialStatus.COMPLETED if status == TrialStatus.COMPLETED else TrialStatus.PRUNED,
            accuracy=acc,
            macro_f1=final.get("macro_f1"),
            params=final.get("params"),
            latency_ms=final.get("latency_ms"),
            ratio_to_teacher=acc / self.teacher_accuracy
            if acc is not None and self.teacher_accuracy
            else None,
            gain_over_no_kd=acc - self.no_kd_accuracy if acc is not None and self.no_kd_accuracy else None,
            wall_seconds=final.get("wall_seconds"),
        )
        self._keep_best(final, acc)
        self._tick()

    def on_trial_error(self, trial_id: str, params: dict[str, Any], error_text: str) -> None:
        if trial_id in self.rows:
            trials.finish_trial(self.db, self.rows[trial_id], TrialStatus.FAILED, error=error_text[-20000:])
        self._tick()

    def _keep_best(self, final: dict[str, Any], acc: float | None) -> None:
        folder = Path(final["student_dir"]) if final.get("student_dir") else None
        if folder is None or acc is None:
            return
        if self.best_accuracy is None or acc > self.best_accuracy:
            if self.best_dir is not None and self.best_dir != folder:
                shutil.rmtree(self.best_dir, ignore_errors=True)
            self.best_accuracy, self.best_dir = acc, folder
        elif folder != self.best_dir:
            shutil.rmtree(folder, ignore_errors=True)

    def _tick(self) -> None:
        if self.on_trial is not None:
            self.on_trial()
