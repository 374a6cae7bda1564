"""The meta-dataset bench: the small tasks' splits, and how bench/recommend.py judges an arm (no training)."""

import json
from pathlib import Path

import pandas as pd
import pytest

from bench.build_meta import SMALL_GRID, VARIANTS, merged, old_rows
from bench.meta_data import POOL, TEST, VAL, splits
from bench.recommend import Variant, arms, dataset_of, fixed_order, grid_point
from distill.pipeline import StudentArch, Training
from search.grid import grid
from search.meta_rows import MetaRow


def test_splits_are_bounded_stratified_and_keep_a_given_test_split():
    labels = ["a"] * 3000 + ["b"] * 1000 + ["rare"] * 5  # "rare" has too few rows for every split
    df = pd.DataFrame({"text": [f"t{i}" for i in range(len(labels))], "label": labels})
    out = splits(df)
    sizes = out["split"].value_counts().to_dict()
    assert sizes == {"train": POOL, "validation": VAL, "test": TEST} and "rare" not in set(out["label"])
    assert not out.duplicated("text").any()
    for part in out.groupby("split"):
        share = (part[1]["label"] == "b").mean()
        assert share == pytest.approx(0.25, abs=0.01)  # stratified
    given = df.iloc[:4000].assign(split=["test" if i % 4 == 0 else "train" for i in range(4000)])
    out = splits(given)
    assert set(out[out["split"] == "test"]["text"]) <= set(given[given["split"] == "test"]["text"])


def test_small_variants_run_the_reduced_grid_with_test_scores(tmp_path: Path):
    csv = tmp_path / "meta-data" / "sms_spam.csv"
    csv.parent.mkdir()
    csv.write_text("text,label,split\n")  # task_csv reuses a written file: no package needed
    small = [v for v in VARIANTS if v.small]
    assert {v.dataset for v in small} >= {"sms_spam", "topic_pairs"} and len({v.dataset for v in small}) == 10
    spec = small[0].spec(tmp_path)
    assert spec.budget.test_every and spec.dataset.split_column == "split"
    points = {(p.loss.name, p.intermediate.name) for p in spec.budget.warm_start}
    assert points == SMALL_GRID and len(spec.budget.warm_start) == 12
    assert spec.budget.trials == 12 + 2  # the references at the probed rate run beside the grid
    big = next(v for v in VARIANTS if not v.small).spec(tmp_path).budget
    assert big.test_every  # every row test-scored
    # a student of the teacher's layers keeps its heads (MiniLM: 12 of 32), as the service's candidates do
    assert (big.candidates[0].hidden, big.candidates[0].heads) == (384, 12)
    (tmp_path / "meta-data" / "vader_amazon.csv").write_text("text,label,split\n")
    whole = next(v for v in VARIANTS if v.whole_grid and v.dataset == "vader_amazon").spec(tmp_path)
    # a small task's CSV with the built-in datasets' recipe: the teacher's first layer, all 24 points
    assert whole.dataset.split_column == "split" and len(whole.budget.warm_start) == 24
    assert (whole.budget.candidates[0].heads, whole.budget.warm_start[0].training.lr) == (12, 1e-4)


def test_export_drops_old_rows_scored_on_another_split_than_the_fresh_rows_of_their_task():
    old = [
        {"task": "rt/s", "score_split": "validation", "score": 0.7},  # replaced: rt#6b38/s is tested now
        {"task": "bbc/s", "score_split": "validation", "score": 0.9},  # kept: no fresh bbc/s rows
        {"task": "sms/s", "score_split": "test", "score": 0.95},  # kept: a repeat on the same split
    ]
    fresh = [{"task": t, "score_split": "test", "score": 0.8} for t in ("rt#6b380f0b/s", "sms/s")]
    assert merged(old, fresh) == old[1:] + fresh


def test_export_keeps_only_the_old_rows_another_database_made(tmp_path: Path):
    out = tmp_path / "meta.csv"
    out.write_text("task,job_id,score,accuracy,teacher_accuracy\nrt/s,j1,0.7,0.71,0.8\nsms/s,j2,,0.9,0.95\n")
    # j1 is this database's: its rows are written afresh (from its jobs as defined now), never kept
    assert [(r["task"], r["score"], r["score_split"]) for r in old_rows(out, {"j1"})] == [
        ("sms/s", "0.9", "validation")  # an old row without a score: its validation accuracy
    ]
    assert len(old_rows(out, set())) == 2 and old_rows(tmp_path / "none.csv", set()) == []


def _rows(task: str, scores: dict, meta: float) -> list[MetaRow]:
    student, training = StudentArch(layers=1, hidden=128, heads=2, ffn=512), Training()
    return [
        MetaRow(task, json.loads(p.model_dump_json()), scores.get(k, 0.5), {"m": meta})
        for k, p in grid(student, training).items()
    ]


def test_a_search_keeps_the_best_on_validation_and_is_judged_on_test():
    rows = _rows("x#ab/500≤5M", {("kl", "none", "none"): 0.9, ("mse", "none", "none"): 0.8}, 1.0)
    key = {grid_point(r.pipeline): r.key for r in rows}
    val = {(r.task, r.key): (0.6, 10.0, None) for r in rows}
    val[(rows[0].task, key[("mse", "none", "none")])] = (0.99, 10.0, None)  # best on validation, not on test
    v = Variant(rows, val)
    assert v.best == 0.9 and dataset_of(rows[0].task) == "x"
    assert v.found([("kl", "none", "none"), ("mse", "none", "none")]) == (0.8, 20.0)
    assert v.found([("kl", "none", "none"), ("ce_only", "none", "none")]) == (0.9, 20.0)
    tried = v.tpe(4, seed=0, start=[("kl", "none", "none")])
    assert len(tried) == 4 and tried[0] == ("kl", "none", "none")


def test_the_fixed_pipeline_is_the_best_on_average_over_the_other_tasks():
    good = ("kl", "hidden_mse", "eda_swap")
    train = _rows("a/1", {good: 0.9}, 0.0) + _rows("b/1", {good: 0.7, ("kl", "none", "none"): 0.8}, 1.0)
    assert fixed_order(train)[0] == good


def test_a_held_out_variant_without_the_overall_best_point_gets_the_next_best_fixed_pipeline():
    from search.ranker import Ranker

    good, second = ("kl", "hidden_mse", "eda_swap"), ("kl", "none", "none")
    train = _rows("a/1", {good: 0.9, second: 0.8}, 0.0) + _rows("b/1", {good: 0.95, second: 0.85}, 1.0)
    held = [r for r in _rows("c/1", {second: 0.9}, 0.5) if grid_point(r.pipeline) != good]  # a smaller grid
    v = Variant(held, {(r.task, r.key): (r.score, 1.0, None) for r in held})
    res = arms(v, Ranker.fit(train, bags=1), fixed_order(train), share=0.2, warm=1, seeds=1)
    assert res["fixed"] == (0.0, 1.0)  # `second`, the best fixed point this variant measured (was NaN)


def test_the_references_at_the_probed_rate_are_not_grid_points():
    rows = _rows("x#ab/500≤5M", {("kl", "none", "none"): 0.8}, 1.0)
    ref = json.loads(
        json.dumps(next(r.pipeline for r in rows if grid_point(r.pipeline) == ("kl", "none", "none")))
    )
    ref["training"]["batch_size"] = 64  # the job's vanilla-KD reference: another batch size, the probed lr
    v = Variant([*rows, MetaRow(rows[0].task, ref, 0.95, {"m": 1.0})], {})
    assert v.table[("kl", "none", "none")][1] == 0.8 and v.best == 0.8 and len(v.rows) == len(rows) + 1


def test_the_one_shot_pick_is_among_the_grid_pipelines_not_a_reference_at_the_probed_rate():
    from search.ranker import Ranker

    ref, good = ("kl", "none", "none"), ("kl", "hidden_mse", "eda_swap")

    def task(name: str) -> list[MetaRow]:
        rows = _rows(name, {ref: 0.1, good: 0.9}, 0.0)
        probed = json.loads(json.dumps(next(r.pipeline for r in rows if grid_point(r.pipeline) == ref)))
        probed["training"]["batch_size"] = 64  # the reference at the probed rate: every task's best
        return [*rows, MetaRow(name, probed, 0.99, {"m": 0.0})]

    train, held = [r for name in "abcdef" for r in task(f"{name}/1")], task("g/1")
    ranker = Ranker.fit(train, bags=1)
    assert ranker.order([r.pipeline for r in held])[0] == len(held) - 1  # the ranker's favourite
    v = Variant(held, {(r.task, r.key): (r.score, 1.0, None) for r in held})
    res = arms(v, ranker, fixed_order(train), share=0.2, warm=1, seeds=1)
    # its grid point (the reference at the grid's rate) scored 0.1: picking it would be 80 points of regret
    assert res["one-shot"][0] == pytest.approx(0.0)


def test_the_search_at_a_compute_budget_replays_asha_and_the_budget_cuts_the_trial_in_flight():
    first, second = ("kl", "none", "none"), ("mse", "none", "none")
    rows = _rows("x#ab/500≤5M", {first: 0.7, second: 0.9}, 1.0)
    key = {grid_point(r.pipeline): r.key for r in rows}
    curve = {p: [(0.5, 1.0), (0.6, 1.0), (0.7, 1.0), (0.8, 1.0)] for p in key}  # 4 epochs of 1 s each
    curve[second] = [(0.6, 1.0), (0.7, 1.0), (0.8, 1.0), (0.9, 1.0)]  # the best on validation
    v = Variant(rows, {(r.task, key[p]): (c[-1][0], 4.0, c) for p, c in curve.items() for r in rows[:1]})
    assert len(v.curves) == len(v.table) == 24
    # both trained to the end (no ASHA for the warm starts): `second` is the answer, judged on test
    assert v.search(8.0, seed=0, start=[first, second]) == (0.9, 8.0)
    # the budget cuts `second` after 1 epoch: a cut trial is no answer, `first` is
    assert v.search(5.5, seed=0, start=[first, second]) == (0.7, 5.0)
    # then TPE's proposals under ASHA: the first runs to the end (nothing at its rungs yet), later ones
    # stop at a rung or are cut; a tie on validation goes to the earlier trial (`first`)
    test, spent = v.search(12.0, seed=0, start=[first])
    assert spent == 12.0 and test in {0.7, 0.9}
