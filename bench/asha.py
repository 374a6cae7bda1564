"""Ray Tune's ASHA, replayed on recorded learning curves: how many epochs each trial of a search would train.

The service's search stops trials with ``ray.tune.schedulers.ASHAScheduler`` (``search.tune``: one bracket,
``grace_period`` 1, ``reduction_factor`` 2, ``max_t`` the trials' epochs). The meta-dataset records every
trial's validation score after each epoch (its ``curve`` column), so a benchmark can replay that rule
instead of training: trials reach the rungs one after another (the service runs 1–2 at a time), and a trial
stops at a rung when its score there is below the cutoff of the scores recorded at that rung before it —
their (1 − 1/η) quantile, numpy's ``nanpercentile`` as in Ray. The first trial at a rung always goes on. A
trial that reaches ``max_t`` has trained to the end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from search.tune import TuneBudget

GRACE, ETA = TuneBudget.grace_period, TuneBudget.reduction_factor


class Asha:
    """One ASHA bracket (Ray's ``_Bracket``) fed whole curves in order; ``epochs`` says where each stops."""

    def __init__(self, max_t: int, grace: int = GRACE, eta: float = ETA) -> None:
        self.max_t, self.eta = max_t, eta
        n = int(math.log(max_t / grace) / math.log(eta) + 1)
        #: (milestone, the scores recorded there), highest milestone first, as Ray keeps them
        self.rungs: list[tuple[float, list[float]]] = [(grace * eta**k, []) for k in reversed(range(n))]

    def _stops(self, epoch: int, score: float, passed: set[float]) -> bool:
        """Ray's ``_Bracket.on_result`` for one report: the highest rung reached and not yet passed."""
        for milestone, recorded in self.rungs:
            if epoch < milestone or milestone in passed:
                continue
            stop = bool(recorded) and score < np.nanpercentile(recorded, (1 - 1 / self.eta) * 100)
            recorded.append(score)
            passed.add(milestone)
            return stop
        return False

    def epochs(self, curve: Sequence[float]) -> int:
        """How many epochs of ``curve`` (validation score after each epoch) this trial trains; its rung
        scores are recorded for the trials after it. ``len(curve)`` (or ``max_t``): trained to the end."""
        passed: set[float] = set()
        for epoch, score in enumerate(curve, start=1):
            if epoch >= self.max_t:
                self._stops(epoch, score, passed)  # recorded at the top rung; the trial is over anyway
                return epoch
            if self._stops(epoch, score, passed):
                return epoch
        return len(curve)
