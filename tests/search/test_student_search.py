"""Budgeted regularised evolution over student architectures, random search, and proxy scoring."""

from __future__ import annotations

import random
import statistics

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from distill.pipeline import StudentArch
from distill.student import estimate_params
from search.proxies import ProxyBatch
from search.proxy_scoring import proxy_fitness, score_candidates
from search.student_search import (
    StudentBudget,
    StudentSpace,
    random_search,
    regularized_evolution,
    student_params,
)

WIDE = StudentSpace(
    layers=range(1, 9), hiddens=range(64, 513, 64), heads=[1, 2, 4, 8], ffn_ratios=[1, 2, 3, 4]
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def teacher() -> BertForSequenceClassification:
    cfg = BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=32, num_labels=2,
    )  # fmt: skip
    torch.manual_seed(0)
    return BertForSequenceClassification(cfg).eval()


def toy(arch: StudentArch) -> float:
    """Known optimum 0 at 3 layers, hidden 256, FFN ratio 2, 4 heads."""
    return -(
        abs(arch.layers - 3)
        + abs(arch.hidden - 256) / 64
        + abs(arch.ffn / arch.hidden - 2)
        + 0.25 * abs(arch.heads - 4)
    )


def test_space_decodes_valid_archs_and_mutates_one_gene_by_one_step() -> None:
    space = StudentSpace(layers=[1, 2, 3], hidden_per_head=16, heads=[2, 4], ffn_ratios=[2.0, 4.0])
    assert space.size == 12
    assert space.decode((2, 1, 0)) == StudentArch(layers=3, hidden=64, heads=4, ffn=128)
    assert WIDE.decode((0, 3, 0, 0)) == StudentArch(layers=1, hidden=64, heads=8, ffn=64)
    assert StudentSpace(layers=[1], hiddens=[12], heads=[8], ffn_ratios=[1]).decode((0, 0, 0, 0)) is None
    rng = random.Random(0)
    for _ in range(200):
        genome = WIDE.sample(rng)
        child = WIDE.mutate(genome, rng)
        diffs = [abs(a - b) for a, b in zip(genome, child, strict=True)]
        assert sorted(diffs) == [0, 0, 0, 1]
    with pytest.raises(ValueError, match="exactly one"):
        StudentSpace(layers=[1], heads=[1], ffn_ratios=[1])


def test_cached_param_count_is_estimate_params(teacher) -> None:
    for arch in (
        StudentArch(layers=1, hidden=64, heads=2, ffn=64),
        StudentArch(layers=5, hidden=64, heads=8, ffn=64),
        StudentArch(layers=3, hidden=192, heads=4, ffn=576, init="random"),
    ):
        assert student_params(arch, teacher) == estimate_params(arch, teacher)


def test_evolution_respects_the_budget_and_is_deterministic(teacher) -> None:
    budget = StudentBudget(max_params=300_000)
    assert any(  # the budget binds: the space holds bigger students
        student_params(WIDE.decode(WIDE.sample(random.Random(i))), teacher) > budget.max_params
        for i in range(20)
    )
    kw = {"budget": budget, "population": 8, "sample_size": 3, "cycles": 24, "log": None}
    seen: list[StudentArch] = []

    def fitness(arch: StudentArch) -> float:
        seen.append(arch)
        return toy(arch)

    first = regularized_evolution(WIDE, fitness, teacher, seed=1, **kw)
    assert seen and all(estimate_params(a, teacher) <= budget.max_params for a in seen)
    again = regularized_evolution(WIDE, toy, teacher, seed=1, **kw)
    other = regularized_evolution(WIDE, toy, teacher, seed=2, **kw)
    assert first.evaluations == 32
    assert all(c.params <= budget.max_params for c in first.candidates)
    assert [(c.arch, c.score) for c in first.candidates] == [(c.arch, c.score) for c in again.candidates]
    assert [c.arch for c in first.candidates] != [c.arch for c in other.candidates]
    assert first.per_second > 0
    rs = random_search(WIDE, toy, teacher, evaluations=32, budget=budget, seed=1, log=None)
    assert rs.evaluations == 32 and all(c.params <= budget.max_params for c in rs.candidates)


def test_latency_budget_and_impossible_budget(teacher) -> None:
    budget = StudentBudget(max_latency_ms=3.0, latency_fn=lambda arch: float(arch.layers))
    result = regularized_evolution(
        WIDE, toy, teacher, budget=budget, population=6, sample_size=2, cycles=10, log=None
    )
    assert all(c.latency_ms is not None and c.latency_ms <= 3.0 for c in result.candidates)
    with pytest.raises(RuntimeError, match="no architecture within the budget"):
        random_search(
            WIDE, toy, teacher, evaluations=1, budget=StudentBudget(max_params=10), max_tries=50, log=None
        )
    with pytest.raises(ValueError, match="latency_fn"):
        StudentBudget(max_latency_ms=1.0)


def test_evolution_beats_random_search_on_a_toy_objective(teacher) -> None:
    evo, rnd = [], []
    for seed in range(4):
        e = regularized_evolution(
            WIDE, toy, teacher, population=10, sample_size=4, cycles=40, seed=seed, log=None
        )
        r = random_search(WIDE, toy, teacher, evaluations=50, seed=seed, log=None)
        assert e.evaluations == r.evaluations == 50
        evo.append(e.best.score)
        rnd.append(r.best.score)
    assert statistics.fmean(evo) > statistics.fmean(rnd) + 0.5
    assert statistics.fmean(evo) > -1.0


def test_top_k_is_sorted_and_distinct(teacher) -> None:
    result = regularized_evolution(WIDE, toy, teacher, population=6, sample_size=3, cycles=30, log=None)
    top = result.top_k(5)
    assert len(top) == 5
    assert [c.score for c in top] == sorted((c.score for c in top), reverse=True)
    assert len({c.arch for c in top}) == 5
    assert top[0] == result.best and result.best.score == max(c.score for c in result.candidates)
    assert result.top_k(1000)[-1].score == min(c.score for c in result.candidates)


def _batch() -> ProxyBatch:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 100, (6, 8), generator=g)
    mask = torch.ones_like(ids)
    mask[2, 5:] = 0
    return ProxyBatch(labels=torch.tensor([0, 1, 0, 1, 0, 1]), input_ids=ids, attention_mask=mask)


def test_score_candidates_rows(teacher) -> None:
    archs = [
        StudentArch(layers=1, hidden=32, heads=4, ffn=64),
        StudentArch(layers=2, hidden=16, heads=2, ffn=32, init="random"),
        StudentArch(layers=2, hidden=32, heads=2, ffn=32),
    ]
    rows = score_candidates(teacher, archs, _batch(), ["diswot", "params", "nwot"], seed=0)
    again = score_candidates(teacher, archs, _batch(), ["diswot", "params", "nwot"], seed=0)
    assert [r["arch"] for r in rows] == [a.model_dump() for a in archs]
    for row, arch in zip(rows, archs, strict=True):
        assert row["params"] == estimate_params(arch, teacher) == row["params"]
        assert {"diswot", "diswot_semantic", "diswot_relation", "nwot", "seconds"} <= row.keys()
        assert row["seconds"] > 0
    assert sorted(r["diswot"] for r in rows) != [0.5] * 3  # mean ranks within the three
    keys = ("diswot", "diswot_semantic", "diswot_relation", "params", "nwot")
    assert [[r[k] for k in keys] for r in rows] == [[r[k] for k in keys] for r in again]


def test_evolution_ranks_the_whole_population(teacher) -> None:
    """Scores are ranks within everything scored (never all equal), and the pick follows them."""
    fitness = proxy_fitness(teacher, _batch(), ["diswot", "params"])
    space = StudentSpace(layers=[1, 2, 3], hidden_per_head=8, heads=[1, 2, 4], ffn_ratios=[1, 2])
    result = regularized_evolution(space, fitness, teacher, population=6, sample_size=3, cycles=6, log=None)
    assert result.evaluations == 12
    scores = [c.score for c in result.candidates]
    assert len(set(scores)) > 1
    assert {"diswot_semantic", "diswot_relation", "params"} <= result.best.extras.keys()
    unique = list({c.arch: c for c in result.candidates}.values())
    rows = score_candidates(teacher, [c.arch for c in unique], _batch(), ["diswot"], seed=0)
    by_arch = {c.arch: c.score for c in unique}
    ranked = sorted(by_arch, key=lambda a: -by_arch[a])
    # the whole population's ranks: the same ordering as scoring the distinct archs together
    assert ranked == sorted(
        by_arch, key=lambda a: -next(r["diswot"] for r in rows if r["arch"] == a.model_dump())
    )
    top = [c.arch for c in result.top_k(3)]
    assert top == ranked[:3]


def test_population_fitness_picks_by_rank_not_sampling_order(teacher) -> None:
    """A population-level fitness whose best are sampled last: the pick is not the first sampled."""

    class Reverse:
        calls = 0

        def __call__(self, arch: StudentArch) -> dict[str, float]:
            self.calls += 1
            return {"score": 0.0, "order": float(self.calls)}

        def combine(self, rows):  # ranks: later evaluations score higher
            return [r["order"] / len(rows) for r in rows]

    space = StudentSpace(layers=[1, 2, 3], hidden_per_head=8, heads=[1, 2, 4], ffn_ratios=[1, 2])
    result = random_search(space, Reverse(), teacher, evaluations=6, cache=False, log=None)
    assert [c.index for c in result.top_k(2)] == [5, 4]
