"""Shared pieces of the text augmentations: the op type, their registry and the context they run in.

An op maps a list of words to a new list of words, given a seeded ``random.Random``, a per-word
probability ``p`` and an :class:`AugmentContext` (the teacher's tokenizer and word embeddings).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from distill.registry import Registry

if TYPE_CHECKING:
    from distill.pipeline import Augmentation
    from distill.tables import Example

AugmentOp = Callable[[list[str], random.Random, float, "AugmentContext"], list[str]]
AUGMENTATIONS: Registry[AugmentOp] = Registry("augmentation")

_WORD = re.compile(r"^(\W*)(.*?)(\W*)$", re.DOTALL)


def uses_neighbours(op: AugmentOp) -> AugmentOp:
    """Mark an op that asks for embedding neighbours, so ``augment_examples`` precomputes them in bulk."""
    op.uses_neighbours = True  # type: ignore[attr-defined]
    return op


def split_punct(word: str) -> tuple[str, str, str]:
    """``"(good),"`` → ``("(", "good", "),")``."""
    m = _WORD.match(word)
    assert m is not None
    return m.group(1), m.group(2), m.group(3)


@dataclass(eq=False)
class AugmentContext:
    """What ops may use: the teacher's tokenizer and its word-embedding matrix ``(V, H)``.

    Neighbours are top-``k`` by cosine among whole-word vocabulary tokens (not ``##`` pieces, not
    special or ``[unused]`` tokens, with a non-zero embedding). They are computed lazily, in chunks,
    only for the tokens asked for, and cached.
    """

    tokenizer: Any = None
    embeddings: torch.Tensor | None = None
    k: int = 5
    chunk: int = 512
    mlm: str | None = None  # masked LM (folder or Hub id) for ops marked ``uses_mlm``; loaded on first use
    device: str = "cpu"  # where the masked LM runs (the engine passes the teacher's device)
    _word_ids: dict[str, int | None] = field(default_factory=dict, init=False, repr=False)
    _neighbours: dict[int, list[str]] = field(default_factory=dict, init=False, repr=False)
    _cand_ids: torch.Tensor | None = field(default=None, init=False, repr=False)
    _cand_unit: torch.Tensor | None = field(default=None, init=False, repr=False)
    _cand_set: set[int] = field(default_factory=set, init=False, repr=False)
    _emb: torch.Tensor | None = field(default=None, init=False, repr=False)
    _id_to_token: dict[int, str] = field(default_factory=dict, init=False, repr=False)
    _mlm: tuple[Any, Any, torch.Tensor] | None = field(default=None, init=False, repr=False)

    def masked_lm(self) -> tuple[Any, Any]:
        """The masked LM named by ``mlm`` and its tokenizer (loaded once, with the safe loader)."""
        if self._mlm is None:
            if not self.mlm:
                raise ValueError(
                    "this augmentation needs a masked LM: set augmentation.mlm (folder or Hub id)"
                )
            from distill.augment.contextual import _candidates, load_masked_lm

            model, tok = load_masked_lm(self.mlm)
            self._mlm = (model.to(self.device), tok, _candidates(tok))
        return self._mlm[0], self._mlm[1]

    def mlm_candidates(self) -> torch.Tensor:
        """``(V,)`` bool mask of the masked LM's whole-word tokens a substitution may produce."""
        self.masked_lm()
        assert self._mlm is not None
        return self._mlm[2]

    @property
    def has_neighbours(self) -> bool:
        return self.tokenizer is not None and self.embeddings is not None

    def _candidates(self) -> None:
        if self._cand_ids is not None:
            return
        assert self.tokenizer is not None and self.embeddings is not None
        emb = self._emb = self.embeddings.detach().float().cpu()
        special = set(self.tokenizer.all_special_tokens)
        vocab = self.tokenizer.get_vocab()
        self._id_to_token = {i: t for t, i in vocab.items()}
        norms = emb.norm(dim=1)
        ids = sorted(
            i
            for t, i in vocab.items()
            if i < emb.shape[0]
            and not t.startswith("##")
            and t not in special
            and not (t.startswith("[") and t.endswith("]"))
            and any(c.isalnum() for c in t)
            and norms[i] > 0
        )
        self._cand_ids = torch.tensor(ids, dtype=torch.long)
        self._cand_set = set(ids)
        self._cand_unit = emb[self._cand_ids] / norms[self._cand_ids, None]

    def word_id(self, word: str) -> int | None:
        """Token id of ``word`` if it is one whole-word vocabulary token with an embedding, else ``None``."""
        if word not in self._word_ids:
            token_id = None
            if self.has_neighbours and word:
                self._candidates()
                pieces = self.tokenizer.tokenize(word)
                if len(pieces) == 1:
                    tid = self.tokenizer.convert_tokens_to_ids(pieces[0])
                    token_id = tid if tid in self._cand_set else None
            self._word_ids[word] = token_id
        return self._word_ids[word]

    def prefetch(self, words: Iterable[str]) -> None:
        """Compute (in chunks) the neighbours of every eligible word not yet cached."""
        if not self.has_neighbours:
            return
        ids = {self.word_id(split_punct(w)[1]) for w in words}
        todo = sorted(i for i in ids if i is not None and i not in self._neighbours)
        if not todo:
            return
        assert self._cand_unit is not None and self._cand_ids is not None and self._emb is not None
        emb = self._emb
        k = min(self.k + 1, len(self._cand_ids))
        for start in range(0, len(todo), self.chunk):
            batch = todo[start : start + self.chunk]
            query = emb[batch]
            query = query / query.norm(dim=1, keepdim=True)
            sims, idx = (query @ self._cand_unit.T).topk(k, dim=1)
            for tid, row_sims, row in zip(batch, sims.tolist(), self._cand_ids[idx].tolist(), strict=True):
                self._neighbours[tid] = [
                    self._id_to_token[j] for j, s in zip(row, row_sims, strict=True) if j != tid and s > 0
                ][: self.k]

    def neighbours(self, word: str) -> list[str]:
        """Up to ``k`` nearest whole-word tokens of ``word`` (most similar first); ``[]`` if not eligible."""
        tid = self.word_id(word)
        if tid is None:
            return []
        if tid not in self._neighbours:
            self.prefetch([word])
        return self._neighbours[tid]


def match_case(template: str, word: str) -> str:
    """``word`` with the capitalisation of ``template`` (uncased vocabularies are lower case)."""
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def neighbour_of(word: str, rng: random.Random, ctx: AugmentContext) -> str | None:
    """A random one of the ``k`` embedding neighbours of ``word`` (punctuation and case kept), or ``None``."""
    pre, core, post = split_punct(word)
    options = ctx.neighbours(core) if core else []
    if not options:
        return None
    return pre + match_case(core, rng.choice(options)) + post


def augment_examples(
    examples: list[Example], spec: Augmentation, ctx: AugmentContext, seed: int
) -> list[list[Example]]:
    """``spec.copies`` augmented copies of ``examples`` (labels kept, both sides of pairs augmented).

    Words are whitespace-separated; the ops of ``spec.ops`` run in order with probability ``spec.p``.
    Copy ``c`` uses ``random.Random(seed + c)``, so the result is deterministic given the seed.
    """
    from distill.tables import Example

    ops = [AUGMENTATIONS.get(name) for name in spec.ops]
    if spec.mlm and ctx.mlm != spec.mlm:
        ctx.mlm, ctx._mlm = spec.mlm, None
    if any(getattr(op, "uses_neighbours", False) for op in ops) and ctx.has_neighbours:
        ctx.prefetch(w for ex in examples for t in (ex.text, ex.text_pair) if t for w in t.split())

    def run(text: str, rng: random.Random) -> str:
        words = text.split()
        for op in ops:
            words = op(words, rng, spec.p, ctx)
        return " ".join(words)

    copies: list[list[Example]] = []
    for c in range(spec.copies):
        rng = random.Random(seed + c)
        copies.append(
            [
                Example(run(ex.text, rng), ex.label, None if ex.text_pair is None else run(ex.text_pair, rng))
                for ex in examples
            ]
        )
    return copies
