"""Text augmentation ops, augment_examples and embedding mixup."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch
from transformers import AutoTokenizer

from distill.assets import minilm_dir
from distill.augment import AUGMENTATIONS, AugmentContext, augment_examples, mixup
from distill.pipeline import Augmentation
from distill.tables import Example

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog"]
OPS = ["eda_swap", "eda_delete", "eda_insert", "embed_neighbour"]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(minilm_dir())


@pytest.fixture(scope="module")
def hand_ctx(tokenizer) -> AugmentContext:
    """A (V, 4) embedding: good~great, bad~awful; everything else zero (so never a neighbour)."""
    emb = torch.zeros(len(tokenizer.get_vocab()), 4)
    vec = {
        "good": [1.0, 0.0, 0.0, 0.0],
        "great": [0.9, 0.1, 0.0, 0.0],
        "##ing": [1.0, 0.0, 0.0, 0.0],  # a word piece: never a candidate
        "[CLS]": [1.0, 0.0, 0.0, 0.0],  # special: never a candidate
        "bad": [0.0, 0.0, 1.0, 0.0],
        "awful": [0.0, -0.1, 0.9, 0.0],
        "movie": [0.0, 0.0, 0.0, 1.0],
    }
    for token, v in vec.items():
        emb[tokenizer.convert_tokens_to_ids(token)] = torch.tensor(v)
    return AugmentContext(tokenizer, emb, k=3)


def op(name: str):
    return AUGMENTATIONS.get(name)


def test_registered_with_descriptions():
    assert set(OPS) <= set(AUGMENTATIONS.names())
    assert all(e.description for e in AUGMENTATIONS.entries())
    assert Augmentation(ops=OPS, copies=1).ops == OPS
    with pytest.raises(ValueError, match="nope"):
        Augmentation(ops=["nope"], copies=1)


@pytest.mark.parametrize("name", ["eda_swap", "eda_delete", "eda_insert"])
def test_p_zero_is_identity_and_empty_stays_empty(name):
    ctx = AugmentContext()
    assert op(name)(WORDS, random.Random(0), 0.0, ctx) == WORDS
    assert op(name)([], random.Random(0), 0.5, ctx) == []


def test_eda_swap_exact_and_multiset():
    out = op("eda_swap")(WORDS, random.Random(0), 0.2, AugmentContext())
    assert out == ["jumps", "quick", "brown", "fox", "the", "over", "dog", "lazy", "the"]
    for seed in range(20):
        assert Counter(op("eda_swap")(WORDS, random.Random(seed), 0.5, AugmentContext())) == Counter(WORDS)
    assert op("eda_swap")(["one"], random.Random(0), 1.0, AugmentContext()) == ["one"]


def test_eda_delete_exact_and_never_empty():
    out = op("eda_delete")(WORDS, random.Random(0), 0.5, AugmentContext())
    assert out == ["the", "quick", "jumps", "the"]
    for seed in range(50):
        kept = op("eda_delete")(WORDS, random.Random(seed), 1.0, AugmentContext())
        assert len(kept) == 1 and kept[0] in WORDS
        assert op("eda_delete")(["solo"], random.Random(seed), 0.9, AugmentContext()) == ["solo"]


def test_eda_insert_without_embeddings_inserts_sentence_words():
    out = op("eda_insert")(WORDS, random.Random(0), 0.2, AugmentContext())
    assert out == ["the", "quick", "brown", "fox", "the", "jumps", "over", "the", "the", "lazy", "dog"]
    assert len(out) == len(WORDS) + round(0.2 * len(WORDS))
    assert set(out) == set(WORDS)


def test_eda_insert_with_embeddings_inserts_a_neighbour(hand_ctx):
    out = op("eda_insert")(["good", "good", "good"], random.Random(3), 0.3, hand_ctx)
    assert sorted(out) == ["good", "good", "good", "great"]


def test_neighbours_are_whole_word_candidates_only(hand_ctx):
    assert hand_ctx.neighbours("good") == ["great"]
    assert hand_ctx.neighbours("awful") == ["bad"]
    assert hand_ctx.neighbours("movie") == []  # nothing with positive similarity
    assert hand_ctx.neighbours("unbelievably") == []  # several word pieces
    assert hand_ctx.neighbours("acting") == []  # zero embedding


def test_embed_neighbour_picks_hand_known_neighbour(hand_ctx):
    words = ["Good", "movie,", "bad", "acting!", "(great)"]
    out = op("embed_neighbour")(words, random.Random(0), 1.0, hand_ctx)
    assert out == ["Great", "movie,", "awful", "acting!", "(good)"]
    assert op("embed_neighbour")(words, random.Random(0), 0.0, hand_ctx) == words


def test_embed_neighbour_real_embeddings_and_lazy_cache(tokenizer):
    from safetensors import safe_open

    with safe_open(str(minilm_dir() / "model.safetensors"), "pt") as f:
        emb = f.get_tensor("embeddings.word_embeddings.weight")
    ctx = AugmentContext(tokenizer, emb, k=5)
    assert "horrible" in ctx.neighbours("terrible")
    assert len(ctx._neighbours) == 1  # only what was asked for
    out = op("embed_neighbour")(["terrible", "movie"], random.Random(0), 1.0, ctx)
    assert out[0] in ctx.neighbours("terrible") and out[1] in ctx.neighbours("movie")


def test_embed_neighbour_needs_embeddings():
    with pytest.raises(ValueError, match="embeddings"):
        op("embed_neighbour")(WORDS, random.Random(0), 0.5, AugmentContext())


def test_augment_examples_deterministic_copies_and_pairs(hand_ctx):
    examples = [
        Example("good movie , really good", 1, "a great film"),
        Example("bad acting and awful plot", 0, "not good at all"),
    ]
    spec = Augmentation(ops=["embed_neighbour", "eda_swap"], p=0.5, copies=3)
    out = augment_examples(examples, spec, hand_ctx, seed=7)
    assert len(out) == 3 and all(len(c) == 2 for c in out)
    assert [e.label for c in out for e in c] == [1, 0] * 3
    assert all(e.text_pair is not None for c in out for e in c)
    assert out == augment_examples(examples, spec, hand_ctx, seed=7)
    one = Augmentation(ops=["embed_neighbour", "eda_swap"], p=0.5, copies=1)
    assert out[1] == augment_examples(examples, one, hand_ctx, seed=8)[0]  # copy c uses seed + c
    assert any(c != examples for c in out)
    assert any(e.text_pair != x.text_pair for c in out for e, x in zip(c, examples, strict=True))


def test_augment_examples_zero_copies():
    assert augment_examples([Example("a b", 0)], Augmentation(), AugmentContext(), seed=0) == []


def test_mixup_matches_formula():
    g = torch.Generator().manual_seed(123)
    embeds = torch.randn(4, 3, 2)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 0]])
    logits = torch.randn(4, 3)
    onehot = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 1]), 3).float()
    me, mm, ml, mt, lam = mixup(embeds, mask, logits, onehot, 0.4, g)
    perm = torch.randperm(4, generator=torch.Generator().manual_seed(123))  # documented draw order
    assert 0.0 <= lam <= 1.0
    torch.testing.assert_close(me, lam * embeds + (1 - lam) * embeds[perm])
    torch.testing.assert_close(ml, lam * logits + (1 - lam) * logits[perm])
    torch.testing.assert_close(mt, lam * onehot + (1 - lam) * onehot[perm])
    assert torch.equal(mm, torch.maximum(mask, mask[perm]))
    torch.testing.assert_close(mt.sum(1), torch.ones(4))
    again = mixup(embeds, mask, logits, onehot, 0.4, torch.Generator().manual_seed(123))
    assert again[4] == lam and torch.equal(again[0], me)


def test_mixup_degenerate_alpha_gives_near_pure_examples():
    embeds = torch.randn(3, 2, 2)
    mask = torch.ones(3, 2, dtype=torch.long)
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        *_, lam = mixup(embeds, mask, torch.zeros(3, 2), torch.eye(2)[[0, 1, 0]], 1e-3, g)
        assert min(lam, 1 - lam) < 1e-3
    with pytest.raises(ValueError, match="alpha"):
        mixup(embeds, mask, torch.zeros(3, 2), torch.eye(2)[[0, 1, 0]], 0.0, torch.Generator())
