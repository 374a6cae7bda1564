"""Teachers: a Hugging Face sequence-classification folder (local or Hub), loaded safely and fingerprinted."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from distill.device import resolve_device
from distill.hf import load_classifier, load_tokenizer
from distill.student import count_params


@dataclass
class Teacher:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    source: str
    fingerprint: str

    @property
    def labels(self) -> list[str]:
        cfg = self.model.config
        return [cfg.id2label[i] for i in range(cfg.num_labels)]

    @property
    def num_layers(self) -> int:
        return self.model.config.num_hidden_layers

    @property
    def num_params(self) -> int:
        return count_params(self.model)

    def to(self, device: str | None) -> Teacher:
        """The teacher's model on the ``device`` setting (``auto``: CUDA where available), in place: its
        forward passes (outputs, profile, DisWOT, meta-features) run where its weights are."""
        self.model.to(resolve_device(device))
        return self

    def describe(self) -> dict[str, object]:
        cfg = self.model.config
        return {
            "source": self.source,
            "model_type": cfg.model_type,
            "layers": cfg.num_hidden_layers,
            "hidden": cfg.hidden_size,
            "heads": cfg.num_attention_heads,
            "params": self.num_params,
            "labels": self.labels,
        }


def folder_fingerprint(folder: Path) -> str:
    """Cheap content fingerprint of a model folder: config plus size and edges of each weight file."""
    h = hashlib.sha256((folder / "config.json").read_bytes())
    for f in sorted(folder.glob("*.safetensors")):
        size = f.stat().st_size
        h.update(f"{f.name}:{size}".encode())
        with f.open("rb") as fh:
            h.update(fh.read(1 << 20))
            fh.seek(max(0, size - (1 << 20)))
            h.update(fh.read(1 << 20))
    return h.hexdigest()[:16]


def load_teacher(source: str | Path, *, eager: bool = True) -> Teacher:
    """Load a fine-tuned teacher (local folder or Hub id). Refuses pickled weights and remote code.

    ``eager`` attention is needed for attention maps; it is what the cache of teacher outputs uses.
    """
    attn = "eager" if eager else "sdpa"
    model = load_classifier(source, complete=True, attn_implementation=attn)
    model.eval()
    path = Path(source)
    fp = folder_fingerprint(path) if path.is_dir() else hashlib.sha256(str(source).encode()).hexdigest()[:16]
    return Teacher(model, load_tokenizer(source), str(source), fp)
