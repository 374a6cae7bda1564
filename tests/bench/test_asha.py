"""bench/asha.py replays Ray Tune's ASHA: the same stops as Ray's own bracket, and a hand-worked case."""

import random
from types import SimpleNamespace

from ray.tune.schedulers import TrialScheduler
from ray.tune.schedulers.async_hyperband import _Bracket

from bench.asha import Asha


def test_a_hand_worked_sequence():
    asha = Asha(max_t=4)  # rungs at epochs 4, 2, 1; a trial goes on if ≥ the median recorded before it
    assert [m for m, _ in asha.rungs] == [4, 2, 1]
    assert asha.epochs([0.5, 0.6, 0.7, 0.8]) == 4  # the first trial: nothing recorded, trains to the end
    assert asha.epochs([0.4, 0.9, 0.9, 0.9]) == 1  # 0.4 < 0.5 at epoch 1
    assert asha.epochs([0.6, 0.55, 0.9, 0.9]) == 2  # epoch 1: 0.6 ≥ median(0.5, 0.4); epoch 2: 0.55 < 0.6
    assert asha.epochs([0.45, 0.9, 0.9, 0.9]) == 1  # 0.45 < median(0.5, 0.4, 0.6) = 0.5
    # epoch 1: 0.55 ≥ median(0.5, 0.4, 0.6, 0.45) = 0.475; epoch 2: 0.65 ≥ median(0.6, 0.55) = 0.575; at
    # epoch 4 (max_t) the trial is over whatever the cutoff says
    assert asha.epochs([0.55, 0.65, 0.7, 0.7]) == 4
    assert asha.rungs[0][1] == [0.8, 0.7]


def test_the_same_stops_as_rays_bracket():
    rng = random.Random(0)
    for _ in range(20):
        curves = [[rng.random() for _ in range(4)] for _ in range(rng.randint(2, 12))]
        ours = Asha(max_t=4)
        ray = _Bracket(min_t=1, max_t=4, reduction_factor=2, s=0, stop_last_trials=False)
        for i, curve in enumerate(curves):
            trial = SimpleNamespace(trial_id=str(i))
            expect = len(curve)
            for epoch, score in enumerate(curve, start=1):
                if ray.on_result(trial, epoch, score) == TrialScheduler.STOP and epoch < 4:
                    expect = epoch
                    break
            assert ours.epochs(curve) == expect
