"""The worker: claim a queued job, profile it, run its search, record every trial, export the best student.

This is the only place that joins the trial database with ``search/`` and ``distill/``. Several workers may
share one database: claiming is atomic, a heartbeat thread keeps the claim alive, and a job whose worker
died (no heartbeat for ``stale_after_s``) is claimed again and resumed — its finished trials are kept and
only the remaining budget is spent.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from distill.pipeline import Pipeline
from search.cluster import ensure_ray, fail_stale_trials
from search.space import SearchSpace
from search.trainable import TrialInputs, run_trial
from search.tune import TuneBudget, run_search
from store import jobs, trials
from store.models import Job, Trial
from store.session import make_engine, normalize_url, session_factory, upgrade
from store.settings import Settings
from store.spec import JobBudget, JobSpec
from store.states import JobState, TrialStatus
from workers import stages
from workers.finish import finish
from workers.recorder import TrialRecorder
from workers.stages import JobRun

log = logging.getLogger(__name__)
CANCEL_POLL_S = 0.5


class JobAborted(Exception):
    """The job was cancelled, or another worker took it over: stop without touching its state."""


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
            jobs.set_state(self.db, job.id, JobState.FAILED, error=reason, worker_id=self.worker_id)
        finally:
            abort.set()
            beat.join()

    def _heartbeat(self, job_id: str, abort: threading.Event) -> None:
        """Beat every ``heartbeat_s``; in between, look every ``CANCEL_POLL_S`` whether the job is still
        ours, so a cancel (or a takeover) aborts the search within a second."""
        next_beat = time.monotonic() + self.heartbeat_s
        while not abort.wait(min(CANCEL_POLL_S, self.heartbeat_s)):
            try:
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self.heartbeat_s
                    held = jobs.heartbeat(self.db, job_id, self.worker_id)
                else:
                    held = jobs.still_held(self.db, job_id, self.worker_id)
            except Exception:  # the database is briefly unreachable: try again at the next tick
                log.warning("job %s: heartbeat failed", job_id, exc_info=True)
                continue
            if not held:
                abort.set()

    def _state(self, job_id: str, state: str, abort: threading.Event, **kw: Any) -> None:
        if abort.is_set() or not jobs.set_state(self.db, job_id, state, worker_id=self.worker_id, **kw):
            raise JobAborted

    # ------------------------------------------------------------------ one job
    def _run_job(self, job: Job, abort: threading.Event) -> None:
        """The job's stages in order: profile, students, space, prediction, shared teacher outputs, the
        references and predicted pipelines, the search proper, then export and recommendation."""
        spec = JobSpec.model_validate(
            {"dataset": job.dataset, "teacher": job.teacher, "budget": job.budget, **(job.extras or {})}
        )
        run = JobRun(
            self.db, self.settings, job, spec, abort,
            state=lambda state, **kw: self._state(job.id, state, abort, **kw),
            on_recommendation=self.on_recommendation,
        )  # fmt: skip
        prof = stages.profile(run)
        space = stages.reference_lr(run, prof, stages.build_space(run, stages.students(run, prof)))
        predicted = stages.predict(run, prof.meta, space)
        inputs = stages.trial_inputs(run, prof, space)
        finished = trials.finished_trials(self.db, job.id)
        recorder = self._recorder(run, space, prof, finished)
        run.state(JobState.SEARCHING, progress_text=f"{len(finished)}/{spec.budget.trials} trials")
        ensure_ray(self.ray_address, self.num_cpus)
        run.search_started = time.time()  # the wall budget is the search's: fine-tuning is outside it
        if job.attempts > 1:  # an earlier attempt died: its Optuna trials in flight will never end
            fail_stale_trials(self._optuna_url(), f"job-{job.id}-")
        self._search_first(run, space, inputs, recorder, finished, predicted)
        self._search(run, space, inputs, recorder, "search", [], early_stopping=spec.budget.early_stopping)
        finish(run, prof, recorder)

    def _recorder(
        self, run: JobRun, space: SearchSpace, prof: stages.Profiled, finished: list[Trial]
    ) -> TrialRecorder:
        """Records the search's trials after the ``finished`` ones (a resumed job keeps them)."""
        best = max((t for t in finished if t.accuracy is not None), key=lambda t: t.accuracy, default=None)
        return TrialRecorder(
            self.db,
            run.job.id,
            space,
            {p.key(): name for name, p in space.reference_pipelines().items()},
            next_number=max((t.number for t in finished), default=-1) + 1,
            teacher_accuracy=prof.teacher_profile["accuracy"],
            no_kd_accuracy=next((t.accuracy for t in finished if t.is_reference == "no_kd"), None),
            best_accuracy=best.accuracy if best else None,
            best_dir=(run.artifacts / "trials" / best.pipeline_key) if best else None,
            abort=run.abort,
            on_trial=lambda: self._progress(run.job.id, run.spec.budget.trials),
        )

    def _search_first(
        self,
        run: JobRun,
        space: SearchSpace,
        inputs: TrialInputs,
        recorder: TrialRecorder,
        finished: list[Trial],
        predicted: list[Pipeline],
    ) -> None:
        """The reference trials (no KD, vanilla KD), the user's warm starts, then the recommender's predicted
        pipelines, run to the end: every result is shown against the references, and ASHA must not judge a
        prediction by its first epoch (augmented pipelines start slower)."""
        b = run.spec.budget
        done_keys = {t.pipeline_key for t in finished}
        first = [*space.reference_pipelines().values(), *b.warm_start, *predicted[: b.warm_start_k]]
        first = [p for p in {p.key(): p for p in first}.values() if p.key() not in done_keys]
        first = first[: max(0, b.trials - len(finished))]
        if first:
            enqueue = [space.to_params(p) for p in first]
            self._search(
                run, space, inputs, recorder, "references", enqueue, up_to=len(finished) + len(first)
            )

    def _search(
        self,
        run: JobRun,
        space: SearchSpace,
        inputs: TrialInputs,
        recorder: TrialRecorder,
        stage: str,
        enqueue: list[dict[str, Any]],
        *,
        up_to: int | None = None,
        early_stopping: bool = False,
    ) -> None:
        """One Ray Tune run of the job's search, up to ``up_to`` trials in all (default: the budget)."""
        b, job = run.spec.budget, run.job
        budget = tune_budget(
            b, self.settings.device, trials=up_to or b.trials,
            wall_seconds=self._wall_left(run.search_started, b.wall_seconds), early_stopping=early_stopping,
        )  # fmt: skip
        objectives = [(o, "max" if o == "accuracy" else "min") for o in b.objectives]
        if b.target_ratio is not None and b.target_by not in b.objectives:  # steer toward small / fast
            objectives.append((b.target_by, "min"))
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
            should_stop=run.abort.is_set,
            optuna_storage=self._optuna_url(),
        )
        if run.abort.is_set():
            raise JobAborted

    def _optuna_url(self) -> str:
        return normalize_url(self.settings.database_url).render_as_string(hide_password=False)

    def _done(self, job_id: str, space: SearchSpace) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        """Finished trials as the search's ``done``: (params, metrics or None if it failed)."""
        return [
            (
                space.to_params(Pipeline.model_validate(t.pipeline)),
                {"accuracy": t.accuracy, "params": t.params, "latency_ms": t.latency_ms}
                if t.status != TrialStatus.FAILED and t.accuracy is not None
                else None,
            )
            for t in trials.finished_trials(self.db, job_id)
        ]

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
    def _wall_left(started: float | None, wall: float | None) -> float | None:
        """Seconds left of the search's ``wall`` budget, counted from its first trial."""
        if wall is None:
            return None
        return max(1.0, wall - (time.time() - (started or time.time())))


def tune_budget(
    b: JobBudget, device: str, *, trials: int, wall_seconds: float | None, early_stopping: bool
) -> TuneBudget:
    """One Tune run's budget from the job's: with the ``device`` setting ``cpu`` no trial asks for a GPU;
    otherwise each asks for the job's ``gpus_per_trial`` (Tune packs fractions, ``search.resources``)."""
    return TuneBudget(
        trials=trials, wall_seconds=wall_seconds, early_stopping=early_stopping, concurrency=b.concurrency,
        cpus_per_trial=b.cpus_per_trial, gpus_per_trial=0.0 if device == "cpu" else b.gpus_per_trial,
    )  # fmt: skip
