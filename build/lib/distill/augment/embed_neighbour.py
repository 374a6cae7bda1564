"""Substitution by nearest neighbours in the teacher's word-embedding space (no download needed)."""

from __future__ import annotations

import random

from distill.augment.base import AUGMENTATIONS, AugmentContext, neighbour_of, uses_neighbours


@AUGMENTATIONS.register(
    "embed_neighbour", "replace each word with prob. p by one of its k nearest teacher-embedding neighbours"
)
@uses_neighbours
def embed_neighbour(words: list[str], rng: random.Random, p: float, ctx: AugmentContext) -> list[str]:
    """Only words that are one whole-word token of the tokenizer are replaced (punctuation, case kept)."""
    if p <= 0:
        return list(words)
    if not ctx.has_neighbours:
        raise ValueError("embed_neighbour needs the teacher's tokenizer and word embeddings (AugmentContext)")
    out = []
    for w in words:
        new = neighbour_of(w, rng, ctx) if rng.random() < p else None
        out.append(w if new is None else new)
    return out
