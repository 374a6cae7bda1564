"""Examples → fixed-length tensors (``TrainData``): the one encoding trainers, profiles and proxies read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from distill.data import encode
from distill.tables import Example

if TYPE_CHECKING:
    from distill.teacher_outputs import TeacherOutputs


@dataclass
class TrainData:
    """Encoded, padded tensors (right padding) plus the teacher's outputs for the same rows."""

    input_ids: Tensor
    attention_mask: Tensor
    token_type_ids: Tensor
    labels: Tensor
    teacher: TeacherOutputs | None = None

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def encode_fixed(examples: list[Example], tokenizer, max_length: int, label_map: Tensor) -> TrainData:
    """Encode and right-pad to exactly ``max_length`` so cached teacher features line up across copies."""
    enc = encode(examples, tokenizer, max_length)
    pad = max_length - enc["input_ids"].shape[1]
    if pad > 0:
        enc = {
            k: torch.nn.functional.pad(v, (0, pad), value=tokenizer.pad_token_id if k == "input_ids" else 0)
            if k != "labels"
            else v
            for k, v in enc.items()
        }
    labels = enc["labels"]  # unlabeled rows (< 0) stay unlabeled
    labels = torch.where(labels >= 0, label_map[labels.clamp_min(0)], labels)
    return TrainData(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"], labels)
