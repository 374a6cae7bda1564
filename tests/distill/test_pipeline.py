"""The Pipeline model: defaults, JSON round-trip, and every impossible combination rejected clearly."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from distill.pipeline import (
    Augmentation,
    IntermediateSpec,
    LogitLossSpec,
    Pipeline,
    StudentArch,
    progressive_split,
)
from distill.registry import Registry, UnknownComponentError


def test_json_round_trip_and_key():
    p = Pipeline(
        intermediate=IntermediateSpec(name="mi_alpha", alpha=0.3),
        augmentation=Augmentation(ops=["eda_swap"], p=0.2, copies=2),
    )
    again = Pipeline.model_validate_json(p.model_dump_json())
    assert again == p and again.key() == p.key()
    assert Pipeline().key() != p.key()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: StudentArch(hidden=100, heads=12), "not divisible"),
        (lambda: LogitLossSpec(name="nope"), "No output loss `nope`"),
        (lambda: LogitLossSpec(name="kl", params={"bogus": 1.0}), "bogus"),
        (lambda: LogitLossSpec(name="ce_only", hard_weight=0.0), "trains nothing"),
        (lambda: IntermediateSpec(name="pkd", alpha=0.5), "only for mi_alpha"),
        (lambda: IntermediateSpec(name="mi_alpha"), "alpha"),
        (lambda: IntermediateSpec(name="pkd", features="attention"), "not 'attention'"),
        (lambda: IntermediateSpec(name="nope"), "No intermediate objective `nope`"),
        (lambda: Augmentation(ops=["eda_swap"], copies=0), "both ops and copies"),
        (lambda: Augmentation(ops=["nope"], copies=1), "No augmentation `nope`"),
        (lambda: Pipeline.model_validate({"student": {"layers": 2, "colour": "red"}}), "colour"),
    ],
)
def test_bad_combinations_are_rejected_with_a_message(build, message):
    with pytest.raises(ValidationError, match=message):
        build()


def test_registry_lists_itself_and_names_unknowns():
    reg: Registry[int] = Registry("thing")
    reg.register("b", "second")(2)
    reg.register("a", "first")(1)
    assert reg.names() == ["a", "b"] and [e.description for e in reg.entries()] == ["first", "second"]
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", "again")(3)
    with pytest.raises(UnknownComponentError, match=r"No thing `c` registered \(known: a, b\)"):
        reg.get("c")


def test_progressive_split_by_hand() -> None:
    def shape(stages):
        return [(st.epochs, st.intermediate, st.kd, st.hard) for st in stages]

    assert shape(progressive_split(3)) == [(1, 1, 0, 0), (1, 0, 1, 0), (1, 0, 1, 1)]
    assert shape(progressive_split(4)) == [(1, 1, 0, 0), (1, 0, 1, 0), (2, 0, 1, 1)]
    assert shape(progressive_split(6)) == [(2, 1, 0, 0), (2, 0, 1, 0), (2, 0, 1, 1)]
    assert shape(progressive_split(2)) == [(1, 1, 0, 0), (1, 0, 1, 1)]
    assert shape(progressive_split(5, kd=False)) == [(2, 1, 0, 0), (3, 0, 1, 1)]
    with pytest.raises(ValueError, match="at least 2 epochs"):
        progressive_split(1)
