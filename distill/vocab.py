"""Vocabulary pruning: a student keeps only the tokens its task's text uses, plus the special tokens.

A 30k-token vocabulary is most of a small student (MiniLM's word embeddings are 52% of its parameters; a
1 × 128 BERT student is 93% embeddings). The tokens a task's training and validation text actually produce
are usually a few thousand, so a student that keeps only those (Kolesnikova et al., 2022) is several times
smaller at the same accuracy.

* :func:`task_vocab` — the kept ids: every id the teacher's tokenizer gives the texts, and its special
  tokens, in the teacher's order; ``old_to_new`` maps the teacher's ids to the student's (dropped ones to
  ``[UNK]``).
* :func:`pruned_tokenizer` — the student's own tokenizer: the teacher's WordPiece tokenizer with the kept
  vocabulary renumbered, so ``AutoTokenizer.from_pretrained(student)`` gives the student's ids directly.
  WordPiece matches longest-first, so a word whose pieces are all kept tokenises exactly as before (same
  pieces, renumbered); a word needing a dropped piece splits into kept pieces where it can (single
  characters usually are), else becomes ``[UNK]``.

Only WordPiece tokenizers (BERT, DistilBERT, ELECTRA, MiniLM, …) can be pruned this way: a byte-level BPE or
SentencePiece vocabulary has merges and scores that refer to the dropped pieces (:func:`can_prune`).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from transformers import AutoTokenizer, PreTrainedTokenizerBase


class PruningError(ValueError):
    """The tokenizer's vocabulary cannot be pruned (not WordPiece)."""


@dataclass(frozen=True)
class TaskVocab:
    """The student's vocabulary as teacher ids (ascending) and the teacher → student id map."""

    kept: Tensor  # (V',) teacher ids kept
    old_to_new: Tensor  # (V,) student id of each teacher id; ``[UNK]``'s for dropped ones

    @property
    def size(self) -> int:
        return len(self.kept)

    def remap(self, ids: Tensor) -> Tensor:
        """Teacher ids → student ids (same shape)."""
        return self.old_to_new.to(ids.device)[ids]


def _model(tokenizer: PreTrainedTokenizerBase) -> dict:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise PruningError(f"{type(tokenizer).__name__} has no fast (tokenizers) backend")
    return json.loads(backend.to_str())


def can_prune(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether :func:`pruned_tokenizer` can prune ``tokenizer`` (a WordPiece vocabulary)."""
    try:
        return _model(tokenizer)["model"]["type"] == "WordPiece"
    except (PruningError, KeyError, ValueError):
        return False


def task_vocab(
    tokenizer: PreTrainedTokenizerBase, texts: Iterable[str], *, vocab_size: int | None = None
) -> TaskVocab:
    """The ids ``tokenizer`` gives ``texts`` (no truncation), plus every special token's id.
    ``vocab_size``: the teacher model's embedding rows (default: the tokenizer's length)."""
    n = vocab_size or len(tokenizer)
    seen = torch.zeros(n, dtype=torch.bool)
    seen[[i for i in tokenizer.all_special_ids if i < n]] = True
    texts = list(texts)
    for start in range(0, len(texts), 1024):
        for ids in tokenizer(texts[start : start + 1024], add_special_tokens=False)["input_ids"]:
            seen[ids] = True
    kept = seen.nonzero().squeeze(1)
    unk = tokenizer.unk_token_id
    if unk is None or not seen[unk]:
        raise PruningError("the tokenizer has no [UNK] token to stand for dropped tokens")
    old_to_new = torch.full((n,), int((kept < unk).sum()), dtype=torch.long)
    old_to_new[kept] = torch.arange(len(kept))
    return TaskVocab(kept, old_to_new)


def pruned_tokenizer(tokenizer: PreTrainedTokenizerBase, vocab: TaskVocab) -> PreTrainedTokenizerBase:
    """``tokenizer`` with only ``vocab.kept``, renumbered ``0 … V'−1`` (see the module docstring)."""
    doc = _model(tokenizer)
    if doc["model"]["type"] != "WordPiece":
        raise PruningError(f"only WordPiece vocabularies can be pruned, not {doc['model']['type']}")
    old = doc["model"]["vocab"]
    by_id = {i: t for t, i in old.items()}
    new = {by_id[int(i)]: j for j, i in enumerate(vocab.kept.tolist())}
    doc["model"]["vocab"] = new
    for added in doc.get("added_tokens", []):
        added["id"] = int(vocab.old_to_new[added["id"]])
    if doc.get("padding") and "pad_id" in doc["padding"]:
        doc["padding"]["pad_id"] = int(vocab.old_to_new[doc["padding"]["pad_id"]])
    for special in (doc.get("post_processor") or {}).get("special_tokens", {}).values():
        special["ids"] = [new[t] for t in special["tokens"]]
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        (Path(tmp) / "tokenizer.json").write_text(json.dumps(doc, ensure_ascii=False))
        for stale in ("vocab.txt",):  # a slow tokenizer's file would disagree with tokenizer.json
            (Path(tmp) / stale).unlink(missing_ok=True)
        return AutoTokenizer.from_pretrained(tmp, trust_remote_code=False)
