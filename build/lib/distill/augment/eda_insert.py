"""EDA random insertion (Wei & Zou 2019), with embedding neighbours standing in for WordNet synonyms."""

from __future__ import annotations

import random

from distill.augment.base import AUGMENTATIONS, AugmentContext, neighbour_of, uses_neighbours

_TRIES = 10


@AUGMENTATIONS.register(
    "eda_insert",
    "EDA random insertion: insert max(1, round(p·n)) embedding neighbours of random words at random places",
)
@uses_neighbours
def eda_insert(words: list[str], rng: random.Random, p: float, ctx: AugmentContext) -> list[str]:
    """Each insertion tries up to 10 random words for a neighbour, else inserts a random word of the input."""
    out = list(words)
    if p <= 0 or not out:
        return out
    for _ in range(max(1, round(p * len(words)))):
        new = None
        if ctx.has_neighbours:
            for _ in range(_TRIES):
                new = neighbour_of(rng.choice(out), rng, ctx)
                if new is not None:
                    break
        if new is None:
            new = rng.choice(out)
        out.insert(rng.randint(0, len(out)), new)
    return out
