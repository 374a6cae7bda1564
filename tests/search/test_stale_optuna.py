"""A resumed job fails the Optuna trials its dead attempt left RUNNING (issue 17, finding 10)."""

from __future__ import annotations

from pathlib import Path

import optuna

from search.cluster import fail_stale_trials


def test_running_trials_of_the_jobs_studies_are_failed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.sqlite'}"
    storage = optuna.storages.RDBStorage(url)
    dead = optuna.create_study(storage=storage, study_name="job-abc-1-search")
    dead.ask()
    dead.ask()
    done = dead.ask()
    dead.tell(done, 0.5)
    other = optuna.create_study(storage=storage, study_name="job-xyz-1-search")
    other.ask()
    assert fail_stale_trials(url, "job-abc-") == 2
    states = [t.state for t in optuna.load_study(study_name="job-abc-1-search", storage=url).trials]
    assert states.count(optuna.trial.TrialState.FAIL) == 2 and optuna.trial.TrialState.RUNNING not in states
    assert optuna.load_study(study_name="job-xyz-1-search", storage=url).trials[0].state.name == "RUNNING"
    storage.engine.dispose()
