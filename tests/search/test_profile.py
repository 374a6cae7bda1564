"""Job profiling: data statistics, default student candidates, the budget applied before any training."""

from __future__ import annotations

import pytest

from distill.assets import minilm_dir
from distill.data import load_task
from distill.hf import load_classifier, load_tokenizer
from distill.profile import dataset_profile
from distill.student import estimate_params
from search.candidates import default_candidates, feasible_candidates


@pytest.fixture(scope="module")
def minilm():
    return load_classifier(minilm_dir(), num_labels=2)


def test_dataset_profile_counts_classes():
    task = load_task("rotten_tomatoes").subset(300, 100, seed=0)
    prof = dataset_profile(task)
    assert prof["train"] == 300 and sum(prof["class_counts"].values()) == 300
    assert 0 < prof["balance"] <= 1 and prof["words_mean"] > 5 and not prof["pair"]


def test_default_candidates_are_smaller_than_the_teacher_and_start_with_the_reference(minilm):
    cands = default_candidates(minilm)
    assert (cands[0].layers, cands[0].hidden) == (2, 384)
    assert len({c.model_dump_json() for c in cands}) == len(cands)
    assert all(c.layers < 6 and c.hidden <= 384 and c.hidden % c.heads == 0 for c in cands)


def test_budget_filters_candidates_before_training(minilm):
    cands = default_candidates(minilm)
    limit = 10_000_000
    keep, rows = feasible_candidates(cands, minilm, max_params=limit, max_latency_ms=None, seq_len=32)
    assert keep and len(rows) == len(cands)
    assert all(estimate_params(a, minilm) <= limit for a in keep)
    assert {r["feasible"] for r in rows} == {True, False}
    keep, rows = feasible_candidates(cands[:2], minilm, max_params=None, max_latency_ms=1e-6, seq_len=32)
    assert keep == [] and all(r["latency_ms"] > 1e-6 for r in rows)


def test_diswot_student_search_respects_the_budget_and_keeps_every_score(minilm):
    from distill.teacher import Teacher
    from search.candidates import search_students

    task = load_task("rotten_tomatoes").subset(200, 50, seed=0)
    teacher = Teacher(minilm, load_tokenizer(minilm_dir()), "minilm", "test")
    limit = 14_000_000
    picked, rows, rate = search_students(
        teacher, task, max_params=limit, max_latency_ms=None, seq_len=32, top_k=2, evaluations=8, seed=0
    )
    assert len(rows) == 8 and rate > 0
    assert all(r["params"] <= limit and "diswot_semantic" in r for r in rows)
    assert {r["proxy"] for r in rows} == {"size_then_diswot"}
    assert all(r["flops"] > 0 for r in rows)
    assert 1 <= len(picked) <= 3 and all(estimate_params(a, minilm) <= limit for a in picked)
    assert sum(r["picked"] for r in rows) >= len(picked) - 1  # the found ones (the reference may be extra)
    scores = [r["score"] for r in rows]
    assert all(r["size_then_diswot"] == r["score"] for r in rows)
    assert all(r["diswot"] == r["diswot_semantic"] + r["diswot_relation"] for r in rows)
    assert len(set(scores)) > 1  # ranked within the population: never all equal (it was all 0.0)
    found = [r for r in rows if r["picked"]]
    best = max(scores)
    assert any(r["score"] == best for r in found)  # the pick follows the scores, not the sampling order
    assert all(a.layers < 6 for a in picked)
