"""The pipeline ranker learned from anyone's rows: features and targets by hand, the row format's errors,
and, on a synthetic meta-dataset whose best pipeline depends on the task, a one-shot pick that beats the
best fixed pipeline where the fixed one cannot win."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from autodistiller.cli import main
from search.meta_rows import MetaRow, RowsError, RowsWarning, load_meta_rows
from search.ranker import (
    OBJECTIVES,
    Ranker,
    _matrix,
    _OnPercentiles,
    dataset_of,
    folds,
    percentiles,
    pipeline_vector,
    relevance,
)
from search.ranker_eval import evaluate, interval, spearman


def test_pipeline_vector_by_hand() -> None:
    p = {"loss": {"name": "kl", "temperature": 4.0}, "augmentation": {"ops": ["eda_swap", "eda_delete"]},
         "intermediate": {"name": "none", "alpha": None}, "training": {"lr": 1e-3}}  # fmt: skip
    v = pipeline_vector(p)
    assert v == {
        "loss.name=kl": 1.0, "loss.temperature": 4.0, "augmentation.ops=eda_swap": 1.0,
        "augmentation.ops=eda_delete": 1.0, "augmentation.ops.count": 2.0, "intermediate.name=none": 1.0,
        "training.lr": 1e-3,
    }  # fmt: skip
    swapped = pipeline_vector({**p, "augmentation": {"ops": ["eda_delete", "eda_swap"]}})
    assert swapped == v  # an op set, whatever its order
    x = _matrix([v, {"loss.name=dkd": 1.0}], ["loss.name=dkd", "loss.temperature"])
    assert x[0, 0] == 0.0 and x[1, 0] == 1.0  # a name absent from a row: 0
    assert x[0, 1] == 4.0 and math.isnan(x[1, 1])  # a parameter that does not apply: missing


def test_percentiles_within_each_task() -> None:
    rows = [MetaRow("a", {}, s) for s in (0.5, 0.9, 0.7, 0.7)] + [MetaRow("b", {}, s) for s in (-3.0, -1.0)]
    assert percentiles(rows).tolist() == pytest.approx([0.0, 1.0, 0.5, 0.5, 0.0, 1.0])


def _synthetic(tasks: int = 6) -> list[MetaRow]:
    """Binary tasks favour loss `a`, five-class tasks loss `b`; larger lr helps a little everywhere."""
    rows = []
    for t in range(tasks):
        classes = 2 if t % 2 else 5
        for loss in ("a", "b", "c"):
            for lr in (1e-4, 3e-4, 1e-3, 3e-3):
                good = (loss == "a") == (classes == 2) and loss != "c"
                score = 0.6 + 0.1 * good + 0.01 * math.log10(lr / 1e-4) + 0.01 * t
                rows.append(MetaRow(f"task{t}", {"loss": {"name": loss}, "training": {"lr": lr}}, score,
                                    {"classes": float(classes), "size": float(100 * t)}))  # fmt: skip
    return rows


def test_relevance_grades_and_the_percentile_scale_by_hand() -> None:
    assert relevance(np.array([0.0, 1.0, 0.5, 1 / 3, 0.05])).tolist() == [0, 9, 5, 3, 0]  # 4.5 → 5
    assert relevance(np.array([0.0, 0.5, 1.0]), levels=3).tolist() == [0, 1, 2]

    class Raw:  # a fitted model's raw scores: the first input column
        def predict(self, x: np.ndarray) -> np.ndarray:
            return x[:, 0]

    x = np.array([[0.0], [1.0], [2.0]])
    on = _OnPercentiles(Raw(), x, np.array([0.0, 0.5, 1.0]))  # pct = 0 + 0.5 × raw
    assert (on.a, on.b) == pytest.approx((0.0, 0.5)) and on.predict(np.array([[4.0]])) == pytest.approx([2.0])
    backwards = _OnPercentiles(Raw(), x, np.array([1.0, 0.5, 0.0]))
    assert backwards.b == pytest.approx(1e-6)  # never reverses the model's order


def test_a_dataset_is_its_name_whatever_the_sample() -> None:
    # samples of one corpus at two sizes carry two fingerprints: one dataset, held out together
    assert dataset_of("rotten_tomatoes#6b380f0b/250≤14M") == dataset_of("rotten_tomatoes#016c2b63/1000≤14M")
    assert dataset_of("rotten_tomatoes/250≤14M") == "rotten_tomatoes" != dataset_of("sms_spam#3eaa3a04/all")
    assert dataset_of("CoLA") == "CoLA"


def test_folds_leave_whole_datasets_out_by_hand() -> None:
    tasks = ["a#f1/250", "a#f2/1000", "b/all", "c/all"]
    # no more datasets than bags: the jackknife, one model without each dataset, whatever the seed
    assert folds(tasks, 10) == folds(tasks, 10, seed=9) == [[2, 3], [0, 1, 3], [0, 1, 2]]
    assert folds(tasks, 1) == [[0, 1, 2, 3]] and folds(["a/x", "a/y"], 5) == [[0, 1]]  # one bag, one dataset
    # more datasets than bags: each dataset left out by exactly one of the bags, the folds set by the seed
    many = [f"d{i}/all" for i in range(7)]
    for seed in (0, 1):
        kept = folds(many, 3, seed)
        assert len(kept) == 3 and sorted(len(k) for k in kept) == [4, 5, 5]
        assert sorted(i for k in kept for i in set(range(7)) - set(k)) == list(range(7))
    assert folds(many, 3, 0) != folds(many, 3, 1)


def test_spearman_by_hand() -> None:
    assert spearman(np.array([1.0, 2.0, 3.0]), np.array([10.0, 30.0, 20.0])) == pytest.approx(0.5)
    # ranks (1, 2, 3) and (1, 3, 2): 1 − 6 × (0 + 1 + 1) / (3 × 8) = 0.5
    assert spearman(np.array([3.0, 2.0, 1.0]), np.array([1.0, 2.0, 3.0])) == pytest.approx(-1.0)
    assert math.isnan(spearman(np.array([1.0, 1.0]), np.array([1.0, 2.0])))
    assert math.isnan(spearman(np.array([1.0]), np.array([1.0])))


def test_bootstrap_interval_by_hand() -> None:
    assert interval([1.5, 1.5, 1.5]) == (1.5, 1.5)
    # two values: resampled means 0, 1, 2 with chances 1/4, 1/2, 1/4; the 2.5% and 97.5% points: the ends
    assert interval([0.0, 2.0]) == (0.0, 2.0)
    lo, hi = interval([0.1 * i for i in range(20)])
    assert lo < 0.95 < hi and hi - lo < 1.0


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_the_ranker_uses_the_task_where_a_fixed_pipeline_cannot(objective: str) -> None:
    regrets = evaluate(_synthetic(8), objective=objective)
    one_shot = np.mean([r.one_shot for r in regrets])
    fixed = np.mean([r.fixed for r in regrets])
    random = np.mean([r.random for r in regrets])
    assert fixed > 0.05  # the pipeline best elsewhere is wrong on half of the tasks
    assert one_shot < 0.03 < fixed and one_shot < random  # 0.0125 here: 1 task of 8 missed
    assert all(r.top3 == 0 for r in regrets)
    assert all(r.configs == 12 for r in regrets)
    assert np.mean([r.spearman for r in regrets]) > 0.5  # the whole order, not only the first, is learned


def test_meta_features_are_used_only_where_leaving_datasets_out_says_they_help() -> None:
    needed = _synthetic(8)  # the best loss depends on the class count: only meta-features tell
    assert Ranker.fit(needed, bags=1, meta="auto").uses_meta
    # one loss best everywhere, a meta-feature noise that lets the trees tell the tasks apart: whether it
    # is used is what leaving datasets out says (a coin flip on noise), and one that is the same on every
    # task cannot help, so it is not used
    rng = np.random.default_rng(0)
    noise = [
        MetaRow(r.task, r.pipeline, 0.6 + 0.1 * (r.pipeline["loss"]["name"] == "a")
                + 0.05 * rng.standard_normal(), {"junk": float(int(r.task[4:]) * 37 % 97)})
        for r in needed
    ]  # fmt: skip
    ranked = [replace(r, score=float(p)) for r, p in zip(noise, percentiles(noise), strict=True)]
    regret = {m: np.mean([r.one_shot for r in evaluate(ranked, bags=3, by_dataset=True, meta=m)])
              for m in ("use", "ignore")}  # fmt: skip
    assert Ranker.fit(noise, bags=1, meta="auto").uses_meta == (regret["use"] < regret["ignore"])
    same = [replace(r, meta={"junk": 1.0}) for r in noise]
    assert not Ranker.fit(same, bags=1, meta="auto").uses_meta
    assert not Ranker.fit(needed[:36], bags=1, meta="auto").uses_meta  # 3 datasets: too few to check
    assert Ranker.fit(needed[:36], bags=1).uses_meta and not Ranker.fit(needed, meta="ignore").uses_meta
    with pytest.raises(ValueError, match="auto, use or ignore"):
        Ranker.fit(needed, meta="yes")
    with pytest.raises(ValueError, match="lambdarank, percentile"):
        Ranker.fit(needed, objective="mse")


def test_bags_are_fixed_by_the_seed() -> None:
    rows, pipelines = _synthetic(6), [r.pipeline for r in _synthetic(6)[:12]]
    first = Ranker.fit(rows, bags=3).predict(pipelines, {"classes": 2.0})
    again = Ranker.fit(rows, bags=3).predict(pipelines, {"classes": 2.0})
    other = Ranker.fit(rows, bags=3, seed=7).predict(pipelines, {"classes": 2.0})
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])  # other folds of the datasets


def test_unknown_components_teach_and_rows_may_lack_meta() -> None:
    rows = [MetaRow(r.task, {**r.pipeline, "loss": {"name": "zz_" + r.pipeline["loss"]["name"]}}, r.score,
                    {} if r.task == "task0" else r.meta) for r in _synthetic()]  # fmt: skip
    ranker = Ranker.fit(rows, bags=2)
    mean, spread = ranker.predict([rows[0].pipeline, rows[4].pipeline], {"classes": 5.0})
    assert mean.shape == spread.shape == (2,) and np.isfinite(mean).all()
    assert ranker.order([r.pipeline for r in rows[:12]], {}) == ranker.order(
        [r.pipeline for r in rows[:12]], {}
    )


def test_row_files_and_their_errors(tmp_path: Path) -> None:
    good = tmp_path / "rows.csv"
    good.write_text(
        "task,pipeline,score,classes,model_seed,curve\n"
        't1,"{""loss"": {""name"": ""kl""}}",0.8,2,3,"[[0.8, 1.5]]"\nt1,"{}",,2,4,\n'
    )
    # the empty score is an unfinished trial: skipped; a seed and a learning curve: no meta-features
    (row,) = load_meta_rows(good)
    assert row.task == "t1" and row.pipeline == {"loss": {"name": "kl"}} and row.meta == {"classes": 2.0}
    bad = tmp_path / "bad.csv"
    bad.write_text('task,pipeline,score\nt1,"{}",0.5\nt1,"[1]",0.4\n')
    with pytest.raises(RowsError, match=r"^bad.csv, line 3: the pipeline is not a JSON object"):
        load_meta_rows(bad)
    (tmp_path / "cols.csv").write_text("task,config,acc\n")
    with pytest.raises(RowsError, match="pipeline, score"):
        load_meta_rows(tmp_path / "cols.csv")
    table = pa.table({"task": ["a", "b"], "pipeline": [json.dumps({"x": 1}), json.dumps({"x": 2})],
                      "accuracy": [0.5, None], "teacher_score": [0.9, 0.8]})  # fmt: skip
    pq.write_table(table, tmp_path / "rows.parquet")
    (row,) = load_meta_rows(tmp_path / "rows.parquet")
    assert row.pipeline == {"x": 1} and row.teacher_score == 0.9


def test_columns_that_change_within_a_run_are_no_meta_features(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    # classes: one value a task; entropy: one a run (two runs of t1); dev: changes from trial to trial
    path.write_text(
        "task,job_id,pipeline,score,classes,entropy,dev\n"
        't1,j1,"{""a"": 1}",0.8,2,0.5,0.71\nt1,j1,"{""a"": 2}",0.7,2,0.5,0.64\n'
        't1,j2,"{""a"": 1}",0.9,2,0.4,0.64\nt2,j3,"{""a"": 1}",0.6,3,,0.5\n'
    )
    with pytest.warns(RowsWarning, match=r"^runs.csv: dev change from trial to trial"):
        rows = load_meta_rows(path)
    assert [r.meta["classes"] for r in rows] == [2.0, 2.0, 2.0, 3.0]
    assert [r.meta["entropy"] for r in rows[:3]] == [0.5, 0.5, 0.4] and all("dev" not in r.meta for r in rows)
    path.write_text(path.read_text().replace(",j2,", ",j1,"))  # one run of t1: entropy changes within it
    with pytest.warns(RowsWarning, match=r"dev, entropy change"):
        assert "entropy" not in load_meta_rows(path)[0].meta


def test_cli_evaluate_and_fit(tmp_path: Path, capsys) -> None:
    path = tmp_path / "meta.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["task", "pipeline", "score", "classes"])
        for r in _synthetic():
            writer.writerow([r.task, json.dumps(r.pipeline), r.score, r.meta["classes"]])
    assert main(["recommender", "evaluate", "--rows", str(path), "--bags", "2"]) == 0
    out = capsys.readouterr().out
    assert "one-shot regret" in out and "| **mean** |" in out and out.count("| task") == 7
    assert "one-shot − best fixed: " in out and "95% bootstrap interval over the 6 tasks" in out
    assert main(["recommender", "evaluate", "--rows", str(tmp_path / "none.csv")]) == 2
    assert "none.csv: no such file" in capsys.readouterr().err


def test_seeds_are_repeats_of_one_pipeline_not_features() -> None:
    def row(task: str, lr: float, seed: int, score: float) -> MetaRow:
        return MetaRow(task, {"loss": {"name": "kl"}, "training": {"lr": lr, "seed": seed}}, score)

    assert row("a", 1e-3, 0, 0.5).key == row("a", 1e-3, 7, 0.9).key != row("a", 3e-4, 0, 0.5).key
    assert "training.seed" not in pipeline_vector(row("a", 1e-3, 3, 0.5).pipeline)
    # other meta-datasets name their seeds otherwise: any field called seed or …_seed, at any depth
    other = {"seed": 3, "model": {"model_seed": 1, "name": "x"}, "data": {"Random_Seed": 2, "aug": "eda"}}
    assert pipeline_vector(other) == {"model.name=x": 1.0, "data.aug=eda": 1.0}
    plain = {"model": {"name": "x"}, "data": {"aug": "eda"}}
    assert MetaRow("a", other, 0.5).key == MetaRow("a", plain, 0.1).key
    # task t: lr 1e-3 scores 0.70 and 0.80 over two seeds (mean 0.75), lr 3e-4 0.74 once: the best is 0.75
    rows = [row(t, lr, s, 0.6 + 0.01 * i) for i, t in enumerate("bcd") for lr in (1e-3, 3e-4) for s in (0, 1)]
    rows += [row("t", 1e-3, 0, 0.70), row("t", 1e-3, 1, 0.80), row("t", 3e-4, 0, 0.74)]
    held = next(r for r in evaluate(rows, bags=1) if r.task == "t")
    assert held.configs == 2 and held.best == pytest.approx(0.75)
