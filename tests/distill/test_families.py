"""Teachers of every common encoder family, and factorised (ELECTRA-style) students.

Each family is a tiny random classifier built from its config (no download) with MiniLM's tokenizer, taken
through the whole path: loaded as a teacher, profiled, scored by the DisWOT student search, distilled with
an intermediate objective, exported, and reloaded with Auto classes to the same logits.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers

from distill.assets import minilm_dir
from distill.data import TextTask, load_task
from distill.encoding import encode_fixed
from distill.engine import distill_student
from distill.export import export_student
from distill.families import model_inputs, shape_of
from distill.hf import load_tokenizer
from distill.pipeline import IntermediateSpec, Pipeline, StudentArch, Training
from distill.profile import teacher_profile
from distill.student import build_student, count_params, estimate_params
from distill.teacher import load_teacher
from search.candidates import search_students

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
LABELS = {"id2label": {0: "rotten", 1: "fresh"}, "label2id": {"rotten": 0, "fresh": 1}, "num_labels": 2}


def _config(family: str, vocab: int, pad: int) -> transformers.PretrainedConfig:
    small = {
        "vocab_size": vocab, "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 80,
        "pad_token_id": pad, **LABELS,
    }  # fmt: skip
    bert = {**small, "hidden_size": 32, "intermediate_size": 64}
    factorised = {**small, "hidden_size": 64, "intermediate_size": 256, "embedding_size": 32}
    return {
        "bert": lambda: transformers.BertConfig(**bert),
        "roberta": lambda: transformers.RobertaConfig(**bert, type_vocab_size=1),
        "xlm-roberta": lambda: transformers.XLMRobertaConfig(**bert, type_vocab_size=1),
        "distilbert": lambda: transformers.DistilBertConfig(
            vocab_size=vocab,
            dim=32,
            n_layers=2,
            n_heads=2,
            hidden_dim=64,
            max_position_embeddings=80,
            pad_token_id=pad,
            **LABELS,
        ),
        "deberta-v2": lambda: transformers.DebertaV2Config(**bert, type_vocab_size=0),
        "electra": lambda: transformers.ElectraConfig(**factorised),
        "albert": lambda: transformers.AlbertConfig(**factorised),
        "modernbert": lambda: transformers.ModernBertConfig(**bert),
    }[family]()


@pytest.fixture(scope="module")
def task() -> TextTask:
    return load_task("rotten_tomatoes").subset(80, 40, seed=0)


@pytest.mark.parametrize(
    "family",
    ["bert", "roberta", "xlm-roberta", "distilbert", "deberta-v2", "electra", "albert", "modernbert"],
)
def test_every_family_is_a_teacher(family: str, task: TextTask, tmp_path: Path) -> None:
    tok = load_tokenizer(minilm_dir())
    torch.manual_seed(0)
    model = transformers.AutoModelForSequenceClassification.from_config(
        _config(family, tok.vocab_size, tok.pad_token_id)
    )
    model.save_pretrained(tmp_path / "teacher", safe_serialization=True)
    tok.save_pretrained(tmp_path / "teacher")

    teacher = load_teacher(tmp_path / "teacher")
    assert teacher.model.config.model_type == family
    prof = teacher_profile(teacher, task, 32)
    assert 0 <= prof["accuracy"] <= 1 and prof["layers"] == 2
    picks, rows, _ = search_students(
        teacher, task, max_params=None, max_latency_ms=None, seq_len=32, top_k=2, evaluations=6, seed=0
    )
    assert picks and len({r["score"] for r in rows}) > 1  # DisWOT ranks, never all equal
    assert all(r["params"] <= 0.75 * count_params(teacher.model) for r in rows)
    pipe = Pipeline(
        student=picks[0],
        intermediate=IntermediateSpec(name="hidden_mse", mapping="skip"),
        training=Training(epochs=1, max_length=32, batch_size=16),
    )
    result = distill_student(task, teacher, pipe, progress=False, measure_latency=False)
    assert 0 <= result.metrics["accuracy"] <= 1
    folder = export_student(result, teacher, task, tmp_path / "student")
    again = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    again_tok = transformers.AutoTokenizer.from_pretrained(folder)
    data = encode_fixed(task.validation[:8], again_tok, 32, torch.arange(2))
    batch = {
        "input_ids": data.input_ids,
        "attention_mask": data.attention_mask,
        "token_type_ids": data.token_type_ids,
    }
    with torch.no_grad():
        reloaded = again(**model_inputs(again, batch)).logits
        original = result.student.eval()(**model_inputs(result.student, batch)).logits
    torch.testing.assert_close(reloaded, original, rtol=0, atol=1e-5)


def test_factorised_student_by_hand(tiny_teacher: Path) -> None:
    """ELECTRA-style student: its size, by hand, and its tables = the teacher's rows in the top-E principal
    directions, which the projection maps back (the teacher's word embeddings, rank-E approximated)."""
    teacher = load_teacher(tiny_teacher).model
    t = shape_of(teacher.config)
    h, e, v, p = t.hidden, 16, t.vocab, t.max_positions
    arch = StudentArch(layers=1, hidden=h, heads=2, ffn=64)
    narrow = arch.model_copy(update={"embedding": e})
    student, report = build_student(narrow, teacher)
    assert type(student).__name__ == "ElectraForSequenceClassification"
    # tables (word, position, 2 token types) and LayerNorm shrink from h to e wide, a projection e → h
    # appears; ELECTRA's head (dense h×h, out h×2) is as big as BERT's pooler h×h + classifier h×2
    saved = (v + p + 2) * (h - e) + 2 * (h - e) - (e * h + h)
    assert estimate_params(arch, teacher) - estimate_params(narrow, teacher) == saved
    assert count_params(student) == estimate_params(narrow, teacher)
    words = teacher.get_input_embeddings().weight.detach()
    centered = words - words.mean(0)
    basis = torch.linalg.svd(centered, full_matrices=False)[2][:e].T  # (h, e)
    table = student.get_input_embeddings().weight.detach()
    torch.testing.assert_close(table, words @ basis)
    proj = student.electra.embeddings_project.weight.detach()  # (h, e)
    torch.testing.assert_close(proj, basis)
    torch.testing.assert_close(table @ proj.T, words @ basis @ basis.T)
    assert report.projected >= 3  # word and position tables, the projection
    with pytest.raises(ValueError, match="below hidden"):
        StudentArch(hidden=64, heads=2, embedding=64)
    assert "embedding" not in arch.model_dump()  # pipelines without it keep their JSON and key
