"""EDA random deletion (Wei & Zou 2019)."""

from __future__ import annotations

import random

from distill.augment.base import AUGMENTATIONS, AugmentContext


@AUGMENTATIONS.register("eda_delete", "EDA random deletion: drop each word with probability p (never all)")
def eda_delete(words: list[str], rng: random.Random, p: float, ctx: AugmentContext) -> list[str]:
    if p <= 0 or not words:
        return list(words)
    kept = [w for w in words if rng.random() >= p]
    return kept or [rng.choice(words)]
