"""The component grid: one pipeline for each (output loss, intermediate objective, augmentation).

Distiller's study varies one component at a time around fixed hyper-parameters; this grid is its small
analogue, inside the ``small`` search space. ``bench/build_meta.py`` trains all of it on each task variant
(the meta-dataset and the oracle of ``bench/recommend.py``), and the recommender scores it for every
candidate student of a new job beside sampled pipelines.
"""

from __future__ import annotations

import itertools

from distill.pipeline import (
    Augmentation,
    IntermediateSpec,
    LogitLossSpec,
    Pipeline,
    StudentArch,
    Training,
)

LOSSES: dict[str, LogitLossSpec] = {
    "ce_only": LogitLossSpec(name="ce_only", kd_weight=0.0),  # no KD
    "kl": LogitLossSpec(name="kl", temperature=4.0),  # Hinton KD
    "mse": LogitLossSpec(name="mse"),  # logit matching
}
INTERMEDIATES: dict[str, IntermediateSpec] = {
    "none": IntermediateSpec(),
    "hidden_mse": IntermediateSpec(name="hidden_mse", features="hidden", mapping="skip"),
    "attention": IntermediateSpec(name="attention", features="attention", mapping="skip"),
    "mi_alpha": IntermediateSpec(name="mi_alpha", features="hidden", mapping="skip", weight=0.1, alpha=0.5),
}
AUGMENTATIONS: dict[str, Augmentation] = {
    "none": Augmentation(),
    "eda_swap": Augmentation(ops=["eda_swap"], p=0.1, copies=1),
}
#: The grid's axes, in order: a grid point is one name from each.
AXES: dict[str, list[str]] = {
    "loss": list(LOSSES),
    "inter": list(INTERMEDIATES),
    "aug": list(AUGMENTATIONS),
}


def grid_point(student: StudentArch, training: Training, loss: str, inter: str, aug: str) -> Pipeline:
    """The pipeline of one grid point for ``student`` trained with ``training``."""
    return Pipeline(
        student=student,
        loss=LOSSES[loss],
        intermediate=INTERMEDIATES[inter],
        augmentation=AUGMENTATIONS[aug],
        training=training,
    )


def grid(student: StudentArch, training: Training) -> dict[tuple[str, str, str], Pipeline]:
    """Every grid point: (loss, intermediate, augmentation) → pipeline. Includes no-KD and vanilla KD."""
    return {names: grid_point(student, training, *names) for names in itertools.product(*AXES.values())}
