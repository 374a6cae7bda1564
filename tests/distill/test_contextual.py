"""Contextual (masked-LM) augmentation on a tiny random BERT MLM built from a config; loader refusals."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from transformers import BertConfig, BertForMaskedLM, BertModel, BertTokenizer

from distill.assets import minilm_dir
from distill.augment import AUGMENTATIONS, AugmentContext, augment_examples
from distill.augment.contextual import load_masked_lm
from distill.hf import ModelError
from distill.pipeline import Augmentation, StudentArch
from distill.tables import Example
from search.space import SearchSpace

VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "the",
    "movie",
    "was",
    "good",
    "great",
    "bad",
    ",",
    "##s",
]


def _save(model, folder: Path) -> Path:
    folder.mkdir()
    BertTokenizer(vocab={w: i for i, w in enumerate(VOCAB)}).save_pretrained(folder)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory) -> Path:
    """A 2-layer random MLM whose output bias makes the ranking "great" > "good" > "bad" > the rest."""
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
    )
    model = BertForMaskedLM(cfg)
    with torch.no_grad():
        bias = torch.zeros(len(VOCAB))
        bias[VOCAB.index("great")], bias[VOCAB.index("good")], bias[VOCAB.index("bad")] = 30.0, 20.0, 10.0
        model.cls.predictions.bias.copy_(bias)
        model.cls.predictions.decoder.bias.copy_(bias)
    return _save(model, tmp_path_factory.mktemp("mlm") / "tiny")


def ctx(mlm: Path, k: int = 1) -> AugmentContext:
    return AugmentContext(k=k, mlm=str(mlm))


def test_contextual_takes_the_masked_lm_prediction_keeping_case_and_punctuation(mlm_dir: Path) -> None:
    op = AUGMENTATIONS.get("contextual")
    out = op(["The", "movie,", "was", "great"], random.Random(0), 1.0, ctx(mlm_dir))
    # k = 1: the top whole word other than the word itself ("great" → "good")
    assert out == ["Great", "great,", "great", "good"]


def test_contextual_samples_from_the_top_k_and_p_zero_changes_nothing(mlm_dir: Path) -> None:
    op = AUGMENTATIONS.get("contextual")
    words = ["the", "movie", "was", "the", "movie"] * 4
    out = op(words, random.Random(1), 1.0, ctx(mlm_dir, k=3))
    assert set(out) <= {"great", "good", "bad"} and "great" in out  # bias gaps of 10: "great" wins mostly
    assert op(words, random.Random(1), 0.0, ctx(mlm_dir)) == words


def test_augment_examples_uses_the_spec_mlm_and_is_deterministic(mlm_dir: Path) -> None:
    spec = Augmentation(ops=["contextual"], copies=2, p=0.5, mlm=str(mlm_dir))
    examples = [Example("the movie was bad", 0), Example("good movie", 1)]
    first = augment_examples(examples, spec, AugmentContext(), seed=3)
    again = augment_examples(examples, spec, AugmentContext(), seed=3)
    assert first == again and len(first) == 2
    assert [e.label for e in first[0]] == [0, 1]
    assert any(a.text != b.text for copy in first for a, b in zip(copy, examples, strict=True))


def test_pipeline_needs_mlm_exactly_with_contextual(mlm_dir: Path) -> None:
    with pytest.raises(ValidationError, match="mlm"):
        Augmentation(ops=["contextual"], copies=1)
    with pytest.raises(ValidationError, match="mlm"):
        Augmentation(ops=["eda_swap"], copies=1, mlm=str(mlm_dir))
    assert "mlm" not in Augmentation().model_dump()  # unset: old pipelines keep their key


def test_loader_refuses_encoders_without_an_mlm_head_and_pickles(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="masked-LM head"):
        load_masked_lm(minilm_dir())  # the shipped all-MiniLM-L6-v2 is a sentence encoder: no MLM head
    cfg = BertConfig(vocab_size=len(VOCAB), hidden_size=8, num_hidden_layers=1, num_attention_heads=1)
    with pytest.raises(ModelError, match="masked-LM head"):
        load_masked_lm(_save(BertModel(cfg), tmp_path / "encoder"))
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text(cfg.to_json_string())
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelError, match="safetensors"):
        load_masked_lm(pickled)


def test_search_space_offers_contextual_only_with_an_mlm(mlm_dir: Path) -> None:
    student = [StudentArch(layers=2, hidden=64, heads=2, ffn=128)]
    assert ("contextual",) not in SearchSpace.default(student).augmentations
    with pytest.raises(ValueError, match="masked LM"):
        SearchSpace.default(student, augmentations=[(), ("contextual",)])
    space = SearchSpace.default(student, augmentations=[(), ("contextual",)], mlm=str(mlm_dir))
    params = space.reference_params()["vanilla_kd"] | {"aug": "contextual", "aug_p": 0.1, "aug_copies": 1}
    assert space.to_pipeline(params).augmentation.mlm == str(mlm_dir)
