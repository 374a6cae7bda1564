"""A trial that completes while its job is being cancelled keeps its result (issue 17, finding 6)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pg import pg_server  # noqa: F401  (session fixture)

import store as db
from distill.pipeline import LogitLossSpec, Pipeline
from store.states import CANCELLED_TRIAL_ERROR, TrialStatus
from store.trials import TrialStateError, finish_trial, start_trial


@pytest.fixture(params=["sqlite", "postgresql"])
def sf(request: pytest.FixtureRequest, tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}" if request.param == "sqlite" else None
    url = url or request.getfixturevalue("pg_server").create_database()
    db.upgrade(url)
    engine = db.make_engine(url)
    yield db.session_factory(engine)
    engine.dispose()


def test_a_result_reported_after_the_cancel_is_kept(sf) -> None:
    job = db.create_job(sf, dataset={"source": "x"}, teacher={"path": "y"}, budget={"trials": 4})
    done = start_trial(sf, job.id, 0, Pipeline())
    failing = start_trial(sf, job.id, 1, Pipeline(loss=LogitLossSpec(temperature=2.0)))
    assert db.cancel_job(sf, job.id)
    row = finish_trial(sf, done.id, TrialStatus.COMPLETED, accuracy=0.81)
    assert (row.status, row.accuracy, row.error) == (TrialStatus.COMPLETED, 0.81, None)
    row = finish_trial(sf, failing.id, TrialStatus.FAILED, error="stopped")  # the cancel already ended it
    assert (row.status, row.error) == (TrialStatus.FAILED, CANCELLED_TRIAL_ERROR)
    assert db.get_job(sf, job.id).trials_done == 2 and db.get_job(sf, job.id).best_accuracy == 0.81
    with pytest.raises(TrialStateError):  # a trial that really finished cannot finish twice
        finish_trial(sf, done.id, TrialStatus.COMPLETED, accuracy=0.5)
