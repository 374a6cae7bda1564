"""One flattening of a ``Pipeline``: the names the search space samples, the recommender learns from and the
importance analysis compares. A value that does not apply to the pipeline is absent (no ``temperature`` for
a loss that ignores it, no ``mapping`` without an intermediate objective, no ``mixup_alpha`` without mixup).
``progressive`` says whether training is staged, ``teacher_mix`` how several teachers mix (``single``: one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from distill.losses import LOSSES, uses_temperature
from distill.objectives import OBJECTIVES
from distill.pipeline import Pipeline


def aug_name(ops: Sequence[str]) -> str:
    """An augmentation op list as one categorical value (``none`` when empty)."""
    return "+".join(ops) if ops else "none"


def aug_ops(name: str) -> list[str]:
    return [] if name == "none" else name.split("+")


def param_name(component: str, key: str) -> str:
    """The flat name of a component's own parameter, e.g. ``dkd_beta``."""
    return f"{component}_{key}"


def flatten(pipeline: Pipeline) -> dict[str, Any]:
    """``pipeline`` as one flat dict (see the module docstring); the student by its fields."""
    st, loss, inter, aug, tr = (
        pipeline.student, pipeline.loss, pipeline.intermediate, pipeline.augmentation, pipeline.training,
    )  # fmt: skip
    flat: dict[str, Any] = {
        "student_layers": st.layers, "student_hidden": st.hidden, "student_heads": st.heads,
        "student_ffn": st.ffn, "student_init": st.init, "student_embedding": st.embedding or st.hidden,
        "student_vocab": st.vocab,
        "loss": loss.name,
    }  # fmt: skip
    if loss.name != "ce_only":
        flat.update(kd_weight=loss.kd_weight, hard_weight=loss.hard_weight)
    if uses_temperature(loss.name):
        flat["temperature"] = loss.temperature
    for key, value in LOSSES.get(loss.name).resolve(loss.params).items():
        flat[param_name(loss.name, key)] = value
    flat["inter"] = inter.name
    if inter.name != "none":
        flat.update(inter_features=inter.features, mapping=inter.mapping, inter_weight=inter.weight)
        if inter.name == "mi_alpha":
            flat["mi_alpha"] = inter.alpha
        for key, value in OBJECTIVES.get(inter.name).resolve(inter.params).items():
            flat[param_name(inter.name, key)] = value
    flat["aug"] = aug_name(aug.ops)
    if aug.ops:
        flat.update(aug_p=aug.p, aug_copies=aug.copies)
    flat["mixup"] = aug.mixup > 0
    if aug.mixup > 0:
        flat["mixup_alpha"] = aug.mixup
    flat.update(lr=tr.lr, epochs=tr.epochs, batch_size=tr.batch_size)
    flat["progressive"] = tr.stages is not None
    flat["teacher_mix"] = pipeline.teachers.mode if pipeline.teachers is not None else "single"
    return flat
