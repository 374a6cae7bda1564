"""Teacher families: what the rest of the library needs to know of any Hugging Face encoder classifier
(BERT, RoBERTa / XLM-R, DistilBERT, DeBERTa-v2/v3, ELECTRA, ALBERT, ModernBERT, …), read from its config and
its forward signature instead of assuming BERT's attribute and module names.

Logits always come from the model's own forward and features from its ``hidden_states`` (and
``attentions``), so nothing depends on how a family names its pooler, dropout or classifier head.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any

from transformers import PretrainedConfig, PreTrainedModel

#: families whose position ids start after the padding index (a table row ``i`` is BERT's row ``i - offset``)
_OFFSET_POSITIONS = frozenset({"roberta", "xlm-roberta", "camembert", "xlm-roberta-xl"})


@dataclass(frozen=True)
class EncoderShape:
    """The sizes a student space is built around, whatever the family calls them."""

    layers: int
    hidden: int
    heads: int
    ffn: int
    embedding: int  # width of the word-embedding table (< hidden for ELECTRA / ALBERT-style factorisation)
    vocab: int
    max_positions: int
    type_vocab: int  # 0: the family has no token types


def shape_of(config: PretrainedConfig) -> EncoderShape:
    """``config``'s sizes: ``intermediate_size`` (DistilBERT: ``hidden_dim``; else 4 × hidden),
    ``embedding_size`` where the family factorises its embeddings (else hidden)."""
    hidden = int(config.hidden_size)
    ffn = getattr(config, "intermediate_size", None) or getattr(config, "hidden_dim", None) or 4 * hidden
    types = getattr(config, "type_vocab_size", None)
    return EncoderShape(
        layers=int(config.num_hidden_layers),
        hidden=hidden,
        heads=int(config.num_attention_heads),
        ffn=int(ffn),
        embedding=int(getattr(config, "embedding_size", None) or hidden),
        vocab=int(config.vocab_size),
        max_positions=int(getattr(config, "max_position_embeddings", None) or 512),
        type_vocab=int(types) if types is not None else 0,
    )


def position_offset(config: PretrainedConfig) -> int:
    """How many position-table rows precede position 0 (RoBERTa-style: ``pad_token_id + 1``)."""
    return int(config.pad_token_id or 0) + 1 if config.model_type in _OFFSET_POSITIONS else 0


@functools.lru_cache(maxsize=64)
def _accepts(cls: type, name: str) -> bool:
    return name in inspect.signature(cls.forward).parameters


def model_inputs(model: PreTrainedModel, batch: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``batch`` the model's forward accepts: ``token_type_ids`` only for families that have
    token types (DistilBERT and ModernBERT take none; DeBERTa-v2 with ``type_vocab_size`` 0 ignores them)."""
    out = {k: v for k, v in batch.items() if v is not None and _accepts(type(model), k)}
    if "token_type_ids" in out and not shape_of(model.config).type_vocab:
        del out["token_type_ids"]
    return out
