"""The life cycles, spelled once: a job's states and a trial's statuses (``StrEnum``: equal to their text,
stored as it, and listed by the API's schema)."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """queued → profiling → searching → finished | failed | cancelled."""

    QUEUED = "queued"
    PROFILING = "profiling"
    SEARCHING = "searching"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TrialStatus(StrEnum):
    """running → completed | pruned (stopped early by ASHA) | failed."""

    RUNNING = "running"
    COMPLETED = "completed"
    PRUNED = "pruned"
    FAILED = "failed"


JOB_STATES = tuple(JobState)
ACTIVE_STATES = (JobState.PROFILING, JobState.SEARCHING)  # a worker holds the job
TERMINAL_STATES = (JobState.FINISHED, JobState.FAILED, JobState.CANCELLED)
TRIAL_STATUSES = tuple(TrialStatus)
FINISHED_STATUSES = (TrialStatus.COMPLETED, TrialStatus.PRUNED, TrialStatus.FAILED)
SCORED_STATUSES = (TrialStatus.COMPLETED, TrialStatus.PRUNED)  # trials with a measured accuracy
CANCELLED_TRIAL_ERROR = "job cancelled"  # the error of a trial that was running when its job was cancelled
