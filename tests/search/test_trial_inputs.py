"""What a job computes of its teacher before the trials: only the layers its space can read, and what the
trials receive through Ray's object store: file references, not the tensors."""

from __future__ import annotations

import pickle

import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

from distill.data import TextTask
from distill.pipeline import StudentArch
from distill.tables import Example
from distill.teacher import Teacher
from distill.teacher_outputs import clear_memory_cache, teacher_outputs
from search.space import SearchSpace
from search.trainable import TrialInputs

STUDENT = StudentArch(layers=2, hidden=32, heads=2, ffn=64)


def _teacher() -> Teacher:
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=20, hidden_size=32, num_hidden_layers=6, num_attention_heads=4, intermediate_size=64
    )
    cfg._attn_implementation = "eager"
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *"abcdefghijklmnop"])}
    return Teacher(BertForSequenceClassification(cfg).eval(), BertTokenizer(vocab=vocab), "t6", "t6-fp")


def _files(space: SearchSpace, tmp_path, teacher: Teacher, enc) -> list[str]:
    hidden, attention = space.teacher_layers_needed(teacher.num_layers)
    clear_memory_cache()
    teacher_outputs(
        teacher, enc, hidden_layers=hidden, attention_layers=attention, cache_dir=tmp_path, progress=False
    )
    return sorted(p.name for p in next(tmp_path.iterdir()).iterdir())


def test_only_the_layers_the_space_can_read_are_computed(tmp_path):
    teacher = _teacher()
    ids = torch.randint(4, 20, (8, 10))
    enc = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    logits_only = SearchSpace.small([STUDENT], objectives=["none"])
    assert _files(logits_only, tmp_path / "a", teacher, enc) == ["logits.npy"]
    last = SearchSpace.small([STUDENT], objectives=["none", "pkd"], mappings=["last"])
    assert _files(last, tmp_path / "b", teacher, enc) == ["hidden_5.npy", "hidden_6.npy", "logits.npy"]
    hidden_only = SearchSpace.small(
        [STUDENT], objectives=["none", "hidden_mse"], mappings=["last"], features=["hidden"]
    )
    assert _files(hidden_only, tmp_path / "d", teacher, enc) == ["hidden_5.npy", "hidden_6.npy", "logits.npy"]
    attn = SearchSpace.small([STUDENT], objectives=["none", "attention"], mappings=["skip"])
    assert _files(attn, tmp_path / "c", teacher, enc) == ["attn_2.npy", "attn_5.npy", "logits.npy"]


def test_trials_receive_file_references_not_tensors(tmp_path):
    teacher = _teacher()
    ids = torch.randint(4, 20, (300, 32))
    enc = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    space = SearchSpace.small([STUDENT])
    hidden, attention = space.teacher_layers_needed(teacher.num_layers)
    outputs = teacher_outputs(
        teacher, enc, hidden_layers=hidden, attention_layers=attention, cache_dir=tmp_path, progress=False
    )
    task = TextTask("t", ["a", "b"], [Example("a b", 0)] * 300, [Example("a", 1)])
    shipped = pickle.dumps(TrialInputs(task, "teacher", outputs, space))  # what ray.put stores
    on_disk = sum(p.stat().st_size for p in next(tmp_path.iterdir()).iterdir())
    assert on_disk > 5_000_000 and len(shipped) < 40_000
    back: TrialInputs = pickle.loads(shipped)
    idx = torch.tensor([299, 3])
    got, want = back.outputs.select(idx, 7), outputs.select(idx, 7)
    assert got.hidden.keys() == want.hidden.keys() and got.attentions.keys() == want.attentions.keys()
    assert all(torch.equal(got.attentions[k], want.attentions[k]) for k in want.attentions)
