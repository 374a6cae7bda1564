"""The job's answer (issue 13): ``target_ratio`` picks the smallest qualifying trial, not the most accurate;
without one reaching it the closest is shown and said so; the kept students are the answer, the Pareto
front and the references."""

from __future__ import annotations

from types import SimpleNamespace

from workers.evaluate import choose, keep, summary


def _t(number: int, acc: float, params: int, latency: float, ref: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(number=number, accuracy=acc, params=params, latency_ms=latency, is_reference=ref)


TRIALS = [
    _t(0, 0.42, 4_000_000, 2.0, "no_kd"),  # an untrained reference: the majority class
    _t(1, 0.42, 4_000_000, 2.0, "vanilla_kd"),
    _t(2, 0.83, 4_000_000, 2.0),
    _t(3, 0.84, 9_000_000, 3.0),  # the most accurate
    _t(4, 0.80, 3_000_000, 1.5),
    _t(5, 0.70, 1_000_000, 0.7),
    _t(6, 0.79, 5_000_000, 2.5),  # dominated by 4: larger, slower, less accurate
]


def test_target_ratio_picks_the_smallest_trial_that_reaches_it():
    chosen, target = choose(TRIALS, teacher_accuracy=0.85, budget={"target_ratio": 0.94})  # bar 0.799
    assert chosen.number == 4 and target["met"] and target["trial"] == 4 and target["by"] == "params"
    assert "smallest student reaching 94%" in target["text"]
    best, none = choose(TRIALS, teacher_accuracy=0.85, budget={})
    assert best.number == 3 and none == {}


def test_no_trial_reaches_the_target_the_closest_is_said_so():
    chosen, target = choose(TRIALS, teacher_accuracy=0.85, budget={"target_ratio": 0.999})
    assert chosen.number == 3 and not target["met"]
    assert target["text"].startswith("no student reached 100% of the teacher's") and "98.8%" in target["text"]


def test_kept_students_are_the_answer_front_and_references():
    chosen, _ = choose(TRIALS, teacher_accuracy=0.85, budget={"target_ratio": 0.94})
    roles = keep(TRIALS, chosen)
    assert roles[4] == ["recommended", "pareto"] and "most_accurate" in roles[3]
    assert roles[0] == ["no_kd"] and roles[1] == ["vanilla_kd"] and "pareto" in roles[5]
    assert roles[2] == ["pareto"] and 6 not in roles


def test_summary_puts_test_beside_validation_and_references():
    chosen = TRIALS[4]
    refs = {"no_kd": TRIALS[0], "vanilla_kd": TRIALS[1]}
    m = {"accuracy": 0.8, "low": 0.75, "high": 0.84, "n": 240}
    doc = {"teacher": {**m, "accuracy": 0.85}, "trials": {"4": m, "0": {**m, "accuracy": 0.7}}}
    text = summary(chosen, refs, doc, {"text": "the smallest student reaching 94%"})
    assert text.startswith("trial 4: validation 0.8000; test 0.8000 (95% CI 0.75–0.84, n=240)")
    assert "one test example = 0.42 points" in text and "+0.1000 over no kd on test (0.7000)" in text
    assert text.endswith("the smallest student reaching 94%")
    assert "no test split" in summary(chosen, refs, {"test": None}, {})
