"""EDA random swap (Wei & Zou 2019)."""

from __future__ import annotations

import random

from distill.augment.base import AUGMENTATIONS, AugmentContext


@AUGMENTATIONS.register("eda_swap", "EDA random swap: swap max(1, round(p·n)) random word pairs")
def eda_swap(words: list[str], rng: random.Random, p: float, ctx: AugmentContext) -> list[str]:
    out = list(words)
    if p <= 0 or len(out) < 2:
        return out
    for _ in range(max(1, round(p * len(out)))):
        i, j = rng.sample(range(len(out)), 2)
        out[i], out[j] = out[j], out[i]
    return out
