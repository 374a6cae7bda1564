"""Mixup on input embeddings (Zhang et al. 2018; Guo et al. 2019 for text), teacher logits mixed alike."""

from __future__ import annotations

import random

import torch
from torch import Tensor


def mixup(
    embeds: Tensor,
    mask: Tensor,
    teacher_logits: Tensor,
    labels_onehot: Tensor,
    alpha: float,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor, Tensor, Tensor, float]:
    """Mix each example with a random partner: ``x' = λ·x + (1-λ)·x[perm]``, λ ~ Beta(α, α).

    Draw order (for reproduction): ``perm = torch.randperm(B, generator=generator)``, then one
    ``torch.randint`` seeds a ``random.Random`` whose ``betavariate(α, α)`` is λ. The attention mask
    is the union (max) of both masks; teacher logits and one-hot targets are mixed with the same λ.
    Returns ``(mixed_embeds, mixed_mask, mixed_teacher_logits, mixed_targets, lam)``.
    """
    perm, lam = draw_mixup(embeds.shape[0], alpha, generator)
    perm = perm.to(embeds.device)
    return (
        mix(embeds, perm, lam),
        torch.maximum(mask, mask[perm]),
        mix(teacher_logits, perm, lam),
        mix(labels_onehot, perm, lam),
        lam,
    )


def draw_mixup(batch: int, alpha: float, generator: torch.Generator) -> tuple[Tensor, float]:
    """A partner permutation and λ ~ Beta(α, α), drawn from ``generator`` (see ``mixup``)."""
    if alpha <= 0:
        raise ValueError(f"mixup alpha must be > 0, got {alpha}")
    perm = torch.randperm(batch, generator=generator, device=generator.device)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
    return perm, random.Random(seed).betavariate(alpha, alpha)


def mix(x: Tensor, perm: Tensor, lam: float) -> Tensor:
    """``λ·x + (1-λ)·x[perm]`` along the batch dimension."""
    return lam * x + (1 - lam) * x[perm]
