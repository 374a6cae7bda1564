"""What a trial asks Ray for, decided on a CPU-only machine: fractions of a GPU packed, none without GPUs."""

from __future__ import annotations

import pytest
import torch

from search.proxies import ProxyBatch
from search.resources import TrialResources, trial_device, trial_resources
from search.tune import TuneBudget


@pytest.mark.parametrize(
    ("gpus_per_trial", "concurrency", "cluster_gpus", "expected"),
    [
        (0.25, 1, 0, TrialResources(1.0, 0.0, 1)),  # a CPU-only cluster: no GPU asked for
        (None, 2, 0, TrialResources(1.0, 0.0, 2)),
        (None, 1, 1, TrialResources(1.0, 1.0, 1)),  # default: a GPU a trial
        (0.25, 1, 1, TrialResources(1.0, 0.25, 4)),  # four small students share one GPU
        (0.5, 1, 2, TrialResources(1.0, 0.5, 4)),
        (0.3, 1, 1, TrialResources(1.0, 0.3, 3)),
        (0.25, 8, 1, TrialResources(1.0, 0.25, 8)),  # the user's concurrency when larger (Ray queues)
        (2, 1, 4, TrialResources(1.0, 2.0, 2)),
        (2, 1, 1, TrialResources(1.0, 2.0, 1)),  # never below one
        (0, 1, 4, TrialResources(1.0, 0.0, 1)),  # kept off the GPUs
    ],
)
def test_resource_request_for_a_budget(gpus_per_trial, concurrency, cluster_gpus, expected):
    got = trial_resources(
        cpus_per_trial=1.0, gpus_per_trial=gpus_per_trial, concurrency=concurrency, cluster_gpus=cluster_gpus
    )
    assert got == expected
    assert got.request == {"cpu": 1.0, "gpu": expected.gpu}


def test_trials_see_their_own_gpus():
    assert [trial_device(s) for s in ("auto", "cpu", "cuda", "cuda:3")] == ["auto", "cpu", "cuda", "cuda"]


def test_tune_budget_refuses_a_bad_gpu_share():
    assert TuneBudget(trials=2, gpus_per_trial=0.25).gpus_per_trial == 0.25
    with pytest.raises(ValueError, match="fraction"):
        TuneBudget(trials=2, gpus_per_trial=1.5)


def test_proxy_batch_moves_to_a_device():
    batch = ProxyBatch(labels=torch.tensor([0, 1]), input_ids=torch.ones(2, 3, dtype=torch.long))
    assert batch.to("cpu") is batch
    meta = batch.to("meta")
    assert meta.input_ids.device.type == "meta" and meta.attention_mask.device.type == "meta"
    assert meta.token_type_ids is None and meta.size == 2
