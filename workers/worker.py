"""The worker: claim a queued job, profile it, run its search, record every trial, export the best student.

This is the only place that joins the trial database with ``search/`` and ``distill/``. Several workers may
share one database: claiming is atomic, a heartbeat thread keeps the claim alive, and a job whose worker
died (no heartbeat for ``stale_after_s``) is claimed again and resumed — its finished trials are kept and
only the remaining budget is spent.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from distill.assets import minilm_dir
from distill.data import TextTask, load_subset
from distill.encoding import encode_fixed
from distill.engine import distill_student
from distill.export import export_student
from distill.finetune import FinetuneConfig, finetune_teacher
from distill.pipeline import Pipeline
from distill.profile import dataset_profile, teacher_profile
from distill.teacher import Teacher, load_teacher
from distill.teacher_outputs import teacher_outputs
from search.candidates import STUDENT_PROXY, feasible_candidates, search_students
from search.metafeatures import meta_features
from search.recommender import candidate_pipelines
from search.space import SearchSpace
from search.trainable import TrialInputs, run_trial
from search.tune import Budget, SearchCallbacks, TrialRecord, ensure_ray, pareto_front, run_search
from store import jobs, results, trials
from store.models import Job
from store.session import make_engine, normalize_url, session_factory, upgrade
from store.settings import Settings
from store.spec import JobBudget, JobSpec
from store.states import FINISHED_STATUSES, JobState, TrialStatus
from workers import recommend

log = logging.getLogger(__name__)

EPOCH_KEYS = ("epoch", "accuracy", "macro_f1", "train_loss", "seconds")


class JobAborted(Exception):
    """The job was cancelled, or another worker took it over: stop without touching its state."""


def load_job_task(spec: JobSpec) -> TextTask:
    return load_subset(**spec.dataset.model_dump())


def resolve_teacher(spec: JobSpec, task: TextTask, settings: Settings) -> Teacher:
    ref = spec.teacher
    if ref.path:
        return load_teacher(ref.path)
    base = minilm_dir() if ref.base == "minilm" else ref.base
    cfg = FinetuneConfig(epochs=ref.finetune.epochs, lr=ref.finetune.lr, max_length=ref.finetune.max_length)
    return finetune_teacher(base, task, settings.teachers, cfg, progress=False, log=log.info)


@dataclass
class _Recorder(SearchCallbacks):
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
            trials.finish_trial(self.db, self.rows[trial_id], "failed", error=error_text[-20000:])
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


class Worker:
    """Claims jobs from the database at ``settings.database_url`` and runs them."""

    def __init__(
        self,
        settings: Settings,
        *,
        worker_id: str | None = None,
        heartbeat_s: float = 5.0,
        stale_after_s: float = 30.0,
        ray_address: str | None = None,
        num_cpus: int | None = None,
        on_trial: Callable[[str], None] | None = None,
        on_recommendation: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.worker_id = worker_id or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        # beat well within the stale limit, or a live worker's job could look abandoned
        self.heartbeat_s, self.stale_after_s = min(heartbeat_s, stale_after_s / 3), stale_after_s
        self.ray_address, self.num_cpus = ray_address, num_cpus
        self.on_trial, self.on_recommendation = on_trial, on_recommendation
        upgrade(self.settings.database_url)
        self.db = session_factory(make_engine(self.settings.database_url))

    # ------------------------------------------------------------------ loop
    def run(self, *, once: bool = False, poll_s: float = 2.0, stop: threading.Event | None = None) -> int:
        """Process jobs until ``stop`` is set (with ``once``: until none is claimable); returns how many."""
        done = 0
        stop = stop or threading.Event()
        while not stop.is_set():
            job = jobs.claim_job(self.db, self.worker_id, self.stale_after_s)
            if job is None:
                if once:
                    break
                stop.wait(poll_s)
                continue
            self.process(job)
            done += 1
        return done

    def process(self, job: Job) -> None:
        """Run one claimed job to its end (finished or failed), unless it is cancelled or taken over."""
        abort = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job.id, abort), daemon=True)
        beat.start()
        try:
            self._run_job(job, abort)
        except JobAborted:
            log.info("job %s: stopped (cancelled or taken over)", job.id)
        except Exception as e:
            log.exception("job %s failed", job.id)
            reason = f"{type(e).__name__}: {e}"
            jobs.set_state(self.db, job.id, "failed", error=reason, worker_id=self.worker_id)
        finally:
            abort.set()
            beat.join()

    def _heartbeat(self, job_id: str, abort: threading.Event) -> None:
        while not abort.wait(self.heartbeat_s):
            if not jobs.heartbeat(self.db, job_id, self.worker_id):
                abort.set()

    def _state(self, job_id: str, state: str, abort: threading.Event, **kw: Any) -> None:
        if abort.is_set() or not jobs.set_state(self.db, job_id, state, worker_id=self.worker_id, **kw):
            raise JobAborted

    # ------------------------------------------------------------------ one job
    def _run_job(self, job: Job, abort: threading.Event) -> None:
        spec = JobSpec.model_validate({"dataset": job.dataset, "teacher": job.teacher, "budget": job.budget})
        b = spec.budget
        self._state(job.id, JobState.PROFILING, abort, progress_text="loading data and teacher")
        task = load_job_task(spec)
        teacher = resolve_teacher(spec, task, self.settings)
        t_prof = teacher_profile(teacher, task, b.max_length)
        results.add_profile(self.db, "dataset", dataset_profile(task), job_id=job.id)
        results.add_profile(self.db, "teacher", t_prof, job_id=job.id)
        meta = meta_features(
            task, teacher, teacher_accuracy=t_prof["accuracy"], max_length=b.max_length,
            max_params=b.max_params,
        )  # fmt: skip
        results.add_profile(self.db, "meta", meta, job_id=job.id)

        if b.candidates:
            candidates, rows = feasible_candidates(
                b.candidates, teacher.model, max_params=b.max_params, max_latency_ms=b.max_latency_ms,
                seq_len=b.max_length,
            )  # fmt: skip
            results.add_profile(self.db, "candidates", {"source": "given", "candidates": rows}, job_id=job.id)
        else:
            self._state(
                job.id, JobState.PROFILING, abort, progress_text="DisWOT student search (training-free)"
            )
            candidates, rows, rate = search_students(
                teacher, task, max_params=b.max_params, max_latency_ms=b.max_latency_ms, seq_len=b.max_length,
                top_k=b.student_top_k, evaluations=b.student_evaluations, seed=b.seed,
            )  # fmt: skip
            doc = {"source": "diswot", "proxy": STUDENT_PROXY, "per_second": rate, "candidates": rows}
            results.add_profile(self.db, "candidates", doc, job_id=job.id)
        # a warm-start pipeline must be in the space: its student joins the candidates
        candidates += [p.student for p in b.warm_start if p.student not in candidates]
        if not candidates:
            smallest = min((r["params"] for r in rows), default=0)
            raise ValueError(
                f"no student candidate meets the budget (max_params={b.max_params}, "
                f"max_latency_ms={b.max_latency_ms}); the smallest has {smallest:,} params"
            )
        preset = SearchSpace.small if b.space == "small" else SearchSpace.default
        space = preset(candidates)
        fixed: dict[str, Any] = {"max_length": b.max_length, "seed": b.seed}
        overrides: dict[str, Any] = {}
        if b.epochs:  # the references train for the longest
            overrides["epochs"], fixed["epochs"] = sorted(set(b.epochs)), max(b.epochs)
        space = dataclasses.replace(space, training=space.training.model_copy(update=fixed), **overrides)
        predicted = self._recommend(job, b, meta, space, abort)

        self._state(
            job.id,
            JobState.PROFILING,
            abort,
            progress_text="computing the teacher's outputs once for all trials",
            teacher_accuracy=t_prof["accuracy"],
        )
        hidden, attention = space.teacher_layers_needed(teacher.num_layers)
        train = encode_fixed(task.train, teacher.tokenizer, b.max_length, torch.arange(task.num_labels))
        enc = {
            "input_ids": train.input_ids,
            "attention_mask": train.attention_mask,
            "token_type_ids": train.token_type_ids,
        }
        outputs = teacher_outputs(
            teacher,
            enc,
            hidden_layers=hidden,
            attention_layers=attention,
            cache_dir=self.settings.teacher_outputs,
            progress=False,
        )
        artifacts = self.settings.artifacts / job.id
        inputs = TrialInputs(
            task,
            str(teacher.model.name_or_path),
            outputs,
            space,
            t_prof["accuracy"],
            str(artifacts / "trials"),
        )

        finished = trials.finished_trials(self.db, job.id)
        best = max((t for t in finished if t.accuracy is not None), key=lambda t: t.accuracy, default=None)
        recorder = _Recorder(
            self.db,
            job.id,
            space,
            {p.key(): name for name, p in space.reference_pipelines().items()},
            next_number=max((t.number for t in finished), default=-1) + 1,
            teacher_accuracy=t_prof["accuracy"],
            no_kd_accuracy=next((t.accuracy for t in finished if t.is_reference == "no_kd"), None),
            best_accuracy=best.accuracy if best else None,
            best_dir=(artifacts / "trials" / best.pipeline_key) if best else None,
            abort=abort,
            on_trial=lambda: self._progress(job.id, b.trials),
        )
        self._state(job.id, JobState.SEARCHING, abort, progress_text=f"{len(finished)}/{b.trials} trials")
        objectives = [(o, "max" if o == "accuracy" else "min") for o in b.objectives]
        ensure_ray(self.ray_address, self.num_cpus)

        def search(budget: Budget, enqueue: list[dict[str, Any]], stage: str) -> None:
            run_search(
                run_trial,
                space,
                budget,
                shared={"inputs": inputs},
                multi_objective=objectives if len(objectives) > 1 else None,
                done=self._done(job.id, space),
                enqueue=enqueue,
                callbacks=recorder,
                storage_path=str(self.settings.home / "ray"),
                name=f"job-{job.id}-{job.attempts}-{stage}",
                seed=b.seed,
                should_stop=abort.is_set,
                optuna_storage=normalize_url(self.settings.database_url).render_as_string(
                    hide_password=False
                ),
            )
            if abort.is_set():
                raise JobAborted

        # 1. the reference trials (no KD, vanilla KD), the user's warm starts, then the recommender's
        # predicted pipelines, run to the end: every result is shown against the references, and ASHA must
        # not judge a prediction by its first epoch (augmented pipelines start slower)
        done_keys = {t.pipeline_key for t in finished}
        first = [*space.reference_pipelines().values(), *b.warm_start, *predicted[: b.warm_start_k]]
        first = [p for p in {p.key(): p for p in first}.values() if p.key() not in done_keys]
        first = first[: max(0, b.trials - len(finished))]
        common = {"concurrency": b.concurrency, "cpus_per_trial": b.cpus_per_trial}
        if first:
            wall = self._wall_left(job, b.wall_seconds)
            search(
                Budget(trials=len(finished) + len(first), wall_seconds=wall, early_stopping=False, **common),
                [space.to_params(p) for p in first],
                "references",
            )
        # 2. the search proper: TPE, ASHA stopping poor trials early
        search(
            Budget(
                trials=b.trials,
                wall_seconds=self._wall_left(job, b.wall_seconds),
                early_stopping=b.early_stopping,
                **common,
            ),
            [],
            "search",
        )
        self._finish(job, task, teacher, recorder, artifacts, abort)

    def _recommend(
        self, job: Job, b: JobBudget, meta: dict[str, float], space: SearchSpace, abort: threading.Event
    ) -> list[Pipeline]:
        """Predict the best pipelines for the job before its first trial (recorded as the job's predicted
        recommendation), best first: the search's warm starts."""
        self._state(job.id, JobState.PROFILING, abort, progress_text="recommending pipelines from past jobs")
        prediction = recommend.predict(
            self.db, self.settings, job.id, meta, space, candidate_pipelines(space, seed=b.seed),
            k=max(3, b.warm_start_k),
        )  # fmt: skip
        top = prediction.pipelines[0] if prediction.pipelines else space.reference_pipelines()["vanilla_kd"]
        if results.latest_recommendation(self.db, job.id, source="predicted") is None:
            results.add_recommendation(
                self.db, job.id, top, "predicted", score=prediction.score, why=prediction.why,
                details=prediction.details,
            )  # fmt: skip
        if self.on_recommendation is not None:
            self.on_recommendation(job.id)
        return prediction.pipelines

    def _done(self, job_id: str, space: SearchSpace) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        """Finished trials as the search's ``done``: (params, metrics or None if it failed)."""
        return [
            (
                space.to_params(Pipeline.model_validate(t.pipeline)),
                {"accuracy": t.accuracy, "params": t.params, "latency_ms": t.latency_ms}
                if t.status != "failed" and t.accuracy is not None
                else None,
            )
            for t in trials.finished_trials(self.db, job_id)
        ]

    def _finish(
        self,
        job: Job,
        task: TextTask,
        teacher: Teacher,
        recorder: _Recorder,
        artifacts: Path,
        abort: threading.Event,
    ) -> None:
        trials.backfill_gain(self.db, job.id)
        best = trials.leaderboard(self.db, job.id, sort="-accuracy", status="completed", limit=1)
        if not best:
            raise RuntimeError("no trial completed; see the failed trials' errors")
        top = best[0]
        student_dir = artifacts / "student"
        shutil.rmtree(student_dir, ignore_errors=True)
        kept = recorder.best_dir if recorder.best_dir and recorder.best_dir.name == top.pipeline_key else None
        if kept and kept.is_dir():
            kept.rename(student_dir)
        else:  # the best trial's folder is gone (e.g. an earlier worker died): train it once more
            self._state(
                job.id, JobState.SEARCHING, abort, progress_text="re-training the best pipeline for export"
            )
            res = distill_student(task, teacher, Pipeline.model_validate(top.pipeline), progress=False)
            export_student(res, teacher, task, student_dir)
        shutil.rmtree(artifacts / "trials", ignore_errors=True)
        size = sum(f.stat().st_size for f in student_dir.rglob("*") if f.is_file())
        results.add_artifact(
            self.db,
            job.id,
            "student",
            student_dir.relative_to(self.settings.home).as_posix(),
            size=size,
            trial_id=top.id,
        )
        refs = {t.is_reference: t for t in trials.finished_trials(self.db, job.id) if t.is_reference}
        n_trials = trials.count_trials(self.db, job.id, status=FINISHED_STATUSES)
        why = [f"best of {n_trials} trials by validation accuracy ({top.accuracy:.4f})"]
        for name in ("vanilla_kd", "no_kd"):
            if name in refs and refs[name].accuracy is not None:
                why.append(f"{top.accuracy - refs[name].accuracy:+.4f} over {name.replace('_', ' ')}")
        if top.ratio_to_teacher:
            why.append(f"{top.ratio_to_teacher:.1%} of the teacher's accuracy")
        results.add_recommendation(
            self.db, job.id, top.pipeline, "measured", score=top.accuracy, why="; ".join(why)
        )
        objectives = job.budget.get("objectives") or ["accuracy"]
        if len(objectives) > 1:  # multi-objective: keep the Pareto front of the completed trials
            done = [t for t in trials.finished_trials(self.db, job.id) if t.status == "completed"]
            records = [
                TrialRecord(str(t.number), {}, {o: getattr(t, o) for o in objectives})
                for t in done
                if all(getattr(t, o) is not None for o in objectives)
            ]
            modes = [(o, "max" if o == "accuracy" else "min") for o in objectives]
            front = sorted(int(r.trial_id) for r in pareto_front(records, modes))
            results.add_profile(self.db, "pareto", {"objectives": objectives, "trials": front}, job_id=job.id)
        self._state(job.id, "finished", abort, progress_text="; ".join(why))
        try:  # learn from this job for the next ones; the job itself is done either way
            recommend.refresh(self.db, self.settings)
        except Exception:
            log.exception("job %s: could not retrain the recommender", job.id)

    def _progress(self, job_id: str, budget: int) -> None:
        job = jobs.get_job(self.db, job_id)
        if job is None:
            return
        best = f", best {job.best_accuracy:.4f}" if job.best_accuracy is not None else ""
        jobs.set_state(
            self.db,
            job_id,
            JobState.SEARCHING,
            progress_text=f"{job.trials_done}/{budget} trials{best}",
            worker_id=self.worker_id,
        )
        if self.on_trial is not None:
            self.on_trial(job_id)

    @staticmethod
    def _wall_left(job: Job, wall: float | None) -> float | None:
        if wall is None:
            return None
        started = job.started_at.timestamp() if job.started_at else time.time()
        return max(1.0, wall - (time.time() - started))
