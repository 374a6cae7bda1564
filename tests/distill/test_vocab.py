"""Vocabulary pruning: the kept ids and the renumbered tokenizer by hand, a pruned student that predicts
exactly as the unpruned one on text inside its vocabulary, its size, and the DisWOT search offering it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers
from transformers import BertTokenizer

from distill.data import TextTask, load_task
from distill.encoding import encode_fixed
from distill.engine import distill_student, student_vocab
from distill.export import export_student
from distill.families import shape_of
from distill.pipeline import LogitLossSpec, Pipeline, StudentArch, Training
from distill.student import build_student, count_params, estimate_params
from distill.tables import Example
from distill.teacher import load_teacher
from distill.vocab import PruningError, can_prune, pruned_tokenizer, task_vocab
from search.candidates import search_students

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "movie", "was", "good", "bad", "great", "##s"]


def test_kept_ids_and_renumbered_tokenizer_by_hand() -> None:
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(VOCAB)})
    assert can_prune(tok)
    vocab = task_vocab(tok, ["the movie was good", "good movies"])
    # kept: the five specials, the, movie, was, good, ##s (teacher order); dropped: bad, great
    assert vocab.kept.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 11]
    assert vocab.old_to_new.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 1, 1, 9]
    small = pruned_tokenizer(tok, vocab)
    assert len(small) == 10 and small.unk_token_id == 1 and small.cls_token_id == 2
    assert small("good movies")["input_ids"] == [2, 8, 6, 9, 3]  # [CLS] good movie ##s [SEP]
    assert small("the movie was great")["input_ids"] == [2, 5, 6, 7, 1, 3]  # great → [UNK]
    teacher_ids = torch.tensor(tok("the movie was great")["input_ids"])
    assert vocab.remap(teacher_ids).tolist() == small("the movie was great")["input_ids"]


def test_only_wordpiece_vocabularies_are_pruned(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models

    bpe = transformers.PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.BPE(vocab={"a": 0, "<unk>": 1}, merges=[], unk_token="<unk>")),
        unk_token="<unk>",
    )
    assert not can_prune(bpe)
    with pytest.raises(PruningError, match="WordPiece"):
        pruned_tokenizer(bpe, task_vocab(bpe, ["a"]))


@pytest.fixture(scope="module")
def task() -> TextTask:
    return load_task("rotten_tomatoes").subset(120, 40, seed=0)


def test_a_pruned_student_predicts_as_the_unpruned_one(tiny_teacher: Path, task: TextTask, tmp_path) -> None:
    teacher = load_teacher(tiny_teacher)
    t = shape_of(teacher.model.config)
    # the teacher's own shape, every tensor copied: the unpruned student is the teacher, the pruned one its
    # rows of the kept tokens
    arch = StudentArch(layers=t.layers, hidden=t.hidden, heads=t.heads, ffn=t.ffn)
    vocab = student_vocab(task, teacher)
    full, _ = build_student(arch, teacher.model)
    pruned, _ = build_student(arch.model_copy(update={"vocab": "task"}), teacher.model, kept=vocab.kept)
    assert count_params(full) - count_params(pruned) == (t.vocab - vocab.size) * t.hidden
    assert estimate_params(
        arch.model_copy(update={"vocab": "task"}), teacher.model, vocab.size
    ) == count_params(pruned)
    small = pruned_tokenizer(teacher.tokenizer, vocab)
    data_t = encode_fixed(task.validation, teacher.tokenizer, 32, torch.arange(2))
    data_s = encode_fixed(task.validation, small, 32, torch.arange(2))
    known = (vocab.remap(data_t.input_ids) != small.unk_token_id).all(1)  # every token kept
    assert known.sum() >= 5
    assert torch.equal(vocab.remap(data_t.input_ids)[known], data_s.input_ids[known])
    with torch.no_grad():
        a = full.eval()(input_ids=data_t.input_ids, attention_mask=data_t.attention_mask).logits
        b = pruned.eval()(input_ids=data_s.input_ids, attention_mask=data_s.attention_mask).logits
    torch.testing.assert_close(a[known], b[known], rtol=0, atol=1e-5)

    pipe = Pipeline(
        student=StudentArch(layers=1, hidden=32, heads=2, ffn=64, vocab="task"),
        loss=LogitLossSpec(name="kl"),
        training=Training(epochs=1, max_length=32, batch_size=16),
    )
    result = distill_student(task, teacher, pipe, progress=False, measure_latency=False)
    assert result.student.config.vocab_size == vocab.size
    folder = export_student(result, teacher, task, tmp_path / "student")
    again = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    again_tok = transformers.AutoTokenizer.from_pretrained(folder)
    assert len(again_tok) == vocab.size
    data = encode_fixed(task.validation, again_tok, 32, torch.arange(2))
    with torch.no_grad():
        mine = result.student.eval()(input_ids=data_s.input_ids, attention_mask=data_s.attention_mask).logits
        theirs = again(input_ids=data.input_ids, attention_mask=data.attention_mask).logits
    torch.testing.assert_close(theirs, mine, rtol=0, atol=1e-5)
    out_of_vocab = again_tok("qwxzv")["input_ids"]  # no kept piece spells it: [UNK], or kept characters
    assert all(i < vocab.size for i in out_of_vocab)


def test_the_student_search_offers_pruned_students(tiny_teacher: Path, task: TextTask) -> None:
    teacher = load_teacher(tiny_teacher)
    vocab = student_vocab(task, teacher)
    _, rows, _ = search_students(
        teacher, task, max_params=None, max_latency_ms=None, seq_len=32, top_k=3, evaluations=24, seed=0
    )
    pruned = [r for r in rows if r["arch"].get("vocab") == "task"]
    assert pruned and len(pruned) < len(rows)
    for r in pruned[:3]:
        arch = StudentArch.model_validate(r["arch"])
        assert r["params"] == estimate_params(arch, teacher.model, vocab.size)


def test_the_test_split_never_shapes_the_vocabulary(tiny_teacher: Path) -> None:
    teacher = load_teacher(tiny_teacher)
    rows = [Example("a fine film", 1), Example("a dull film", 0)]
    task = TextTask("t", ["rotten", "fresh"], rows, rows, test=[Example("zebra", 1)])
    zebra = teacher.tokenizer.convert_tokens_to_ids("zebra")
    assert zebra != teacher.tokenizer.unk_token_id
    assert zebra not in student_vocab(task, teacher).kept.tolist()
    assert teacher.tokenizer.convert_tokens_to_ids("dull") in student_vocab(task, teacher).kept.tolist()
