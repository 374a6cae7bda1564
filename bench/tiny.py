"""A tiny real teacher (2 layers, 64 wide, MiniLM's vocabulary, one epoch on Rotten Tomatoes): the tests'
session teacher, and the drills' (bench/drills.py, bench/cluster_drill.py)."""

from __future__ import annotations

from pathlib import Path

import torch


def make_tiny_teacher(folder: Path, seed: int = 0) -> Path:
    """Train the tiny teacher into ``folder`` (about 10 s on 2 CPU cores) and return the model folder
    (another ``seed``: another teacher, e.g. the second of a multi-teacher job)."""
    import transformers

    from distill.assets import minilm_dir
    from distill.data import load_task
    from distill.encoding import encode_fixed
    from distill.export import save_model
    from distill.hf import load_tokenizer
    from distill.pipeline import LogitLossSpec, Pipeline, Training
    from distill.trainer import train_model

    task = load_task("rotten_tomatoes").subset(400, 100, seed=1)
    tok = load_tokenizer(minilm_dir())
    cfg = transformers.BertConfig(
        vocab_size=tok.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128, max_position_embeddings=64, num_labels=2,
        id2label={0: "rotten", 1: "fresh"}, label2id={"rotten": 0, "fresh": 1},
    )  # fmt: skip
    torch.manual_seed(seed)
    model = transformers.BertForSequenceClassification(cfg)
    ident = torch.arange(2)
    train, val = (encode_fixed(x, tok, 32, ident) for x in (task.train, task.validation))
    recipe = Pipeline(
        loss=LogitLossSpec(name="ce_only", kd_weight=0.0),
        training=Training(lr=1e-3, epochs=1, max_length=32, seed=seed),
    )
    train_model(model, train, val, recipe, progress=False)
    return save_model(model, tok, folder, card={"role": "teacher"})


def make_tiny_mlm(folder: Path) -> Path:
    """A random 1-layer, 32-wide BERT masked LM with MiniLM's vocabulary (its head included): a stand-in for
    a real masked LM in tests of contextual augmentation through a job."""
    import transformers

    from distill.assets import minilm_dir
    from distill.hf import load_tokenizer

    tok = load_tokenizer(minilm_dir())
    cfg = transformers.BertConfig(
        vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    transformers.BertForMaskedLM(cfg).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder
