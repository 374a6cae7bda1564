"""Placement by setting: the job's GPU share reaches Tune, the ``cpu`` setting keeps trials off GPUs, and the
worker places the teacher (and every trial) where the ``device`` setting says."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from autodistiller.cli import build_parser
from autodistiller.local import budget
from store.settings import Settings, SettingsError
from store.spec import JobBudget
from workers.worker import tune_budget


@pytest.mark.parametrize(
    ("device", "share", "expected"),
    [("auto", 0.25, 0.25), ("cuda", None, None), ("cuda:0", 1, 1), ("cpu", 0.25, 0.0)],
)
def test_the_job_gpu_share_reaches_tune(device, share, expected):
    b = JobBudget(trials=4, gpus_per_trial=share, concurrency=2, cpus_per_trial=2)
    tb = tune_budget(b, device, trials=4, wall_seconds=None, early_stopping=True)
    assert tb.gpus_per_trial == expected
    assert (tb.concurrency, tb.cpus_per_trial, tb.trials) == (2, 2, 4)


@pytest.mark.parametrize("share", [0, -0.5, 1.5, 100])
def test_a_bad_gpu_share_is_refused(share):
    with pytest.raises(ValidationError, match="gpus_per_trial"):
        JobBudget(gpus_per_trial=share)


def test_the_device_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTODISTILLER_HOME", str(tmp_path))
    monkeypatch.delenv("AUTODISTILLER_DEVICE", raising=False)
    assert Settings.from_env().device == "auto"
    monkeypatch.setenv("AUTODISTILLER_DEVICE", "CUDA:1")
    assert Settings.from_env().device == "cuda:1"
    monkeypatch.setenv("AUTODISTILLER_DEVICE", "gpu")
    with pytest.raises(SettingsError, match="AUTODISTILLER_DEVICE: device must be one of"):
        Settings.from_env()


def test_submit_and_search_take_a_gpu_share():
    for verb in (["search", "--dataset", "rotten_tomatoes"], ["submit", "--dataset", "d.csv"]):
        args = build_parser().parse_args([*verb, "--gpus-per-trial", "0.25"])
        assert budget(args).gpus_per_trial == 0.25
