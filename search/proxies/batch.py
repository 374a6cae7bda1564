"""One labelled batch a proxy sees: token ids (+ mask, token types) for transformers, or images for CNNs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True, eq=False)
class ProxyBatch:
    """``labels`` and either ``input_ids`` (text; ``attention_mask`` defaults to all ones) or ``images``."""

    labels: Tensor
    input_ids: Tensor | None = None
    attention_mask: Tensor | None = None
    token_type_ids: Tensor | None = None
    images: Tensor | None = None

    def __post_init__(self) -> None:
        if (self.input_ids is None) == (self.images is None):
            raise ValueError("a ProxyBatch holds either input_ids (text) or images, exactly one")
        if self.input_ids is not None and self.attention_mask is None:
            object.__setattr__(self, "attention_mask", torch.ones_like(self.input_ids))
        if self.labels.shape[0] != self.size:
            raise ValueError(f"{self.labels.shape[0]} labels for a batch of {self.size}")

    def to(self, device: torch.device | str) -> ProxyBatch:
        """The same batch on ``device`` (itself when already there)."""
        tensors = {k: getattr(self, k) for k in ("labels", "input_ids", "attention_mask", "token_type_ids")}
        tensors["images"] = self.images
        if all(t is None or t.device == torch.device(device) for t in tensors.values()):
            return self
        return ProxyBatch(**{k: None if t is None else t.to(device) for k, t in tensors.items()})

    @property
    def size(self) -> int:
        x = self.input_ids if self.input_ids is not None else self.images
        assert x is not None
        return int(x.shape[0])

    @property
    def seq_len(self) -> int:
        """Padded sequence length ``T`` (text batches only)."""
        if self.input_ids is None:
            raise ValueError("an image batch has no sequence length")
        return int(self.input_ids.shape[1])
