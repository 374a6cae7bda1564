"""What each trial asks Ray for, and how many run at once: fractional GPUs let several small students share
one GPU, and the worker packs as many trials as the cluster's GPUs hold."""

from __future__ import annotations

import math
from dataclasses import dataclass

from distill.device import check_gpu_share


@dataclass(frozen=True)
class TrialResources:
    """Ray's resource request for one trial, and the trials run at once."""

    cpu: float
    gpu: float
    concurrency: int

    @property
    def request(self) -> dict[str, float]:
        return {"cpu": self.cpu, "gpu": self.gpu}


def trial_device(setting: str) -> str:
    """The ``device`` setting as a trial sees it: Ray shows a trial only the GPUs it was given, as
    ``cuda:0``…, so ``cuda:N`` (the worker's own GPU) becomes ``cuda``; ``auto`` and ``cpu`` stay."""
    return "cuda" if setting.startswith("cuda") else setting


def trial_resources(
    *, cpus_per_trial: float, gpus_per_trial: float | None, concurrency: int, cluster_gpus: float
) -> TrialResources:
    """The request for a trial on a cluster with ``cluster_gpus`` GPUs.

    No GPUs: no GPU asked for and ``concurrency`` as given. Otherwise each trial asks for ``gpus_per_trial``
    (None: one GPU) and the trials run at once are at least as many as the GPUs hold (4 at 0.25 a GPU on one
    GPU), so a fraction packs several small students onto a GPU without the user counting them.
    ``gpus_per_trial=0`` keeps trials off the GPUs.
    """
    check_gpu_share(gpus_per_trial)
    gpu = 1.0 if gpus_per_trial is None else float(gpus_per_trial)
    if cluster_gpus <= 0 or gpu == 0:
        return TrialResources(cpus_per_trial, 0.0, concurrency)
    held = math.floor(cluster_gpus / gpu + 1e-9)
    return TrialResources(cpus_per_trial, gpu, max(concurrency, held, 1))
