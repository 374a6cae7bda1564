"""Server-side SVG plots and pipeline importance for the dashboard (no browser, no database)."""

from __future__ import annotations

import copy
import random
import time
import xml.etree.ElementTree as ET

import pytest

from distill.pipeline import IntermediateSpec, Pipeline
from search.importance import features, pipeline_importance
from service.dashboard import plots
from service.dashboard.plots import CandidatePoint, HistoryPoint, SizePoint

NS = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    """Parse (so the SVG is well-formed XML) and check the accessible root every plot must have."""
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    assert root.get("role") == "img" and root.get("aria-label")
    assert root.find(f"{NS}title") is not None
    return root


def elements(root: ET.Element, cls: str) -> list[ET.Element]:
    """Elements whose class list contains ``cls`` (what a CSS selector ``.cls`` finds)."""
    return [e for e in root.iter() if cls in (e.get("class") or "").split()]


def texts(root: ET.Element) -> list[str]:
    return ["".join(e.itertext()) for e in root.iter(f"{NS}text")]


def tooltip(e: ET.Element) -> str:
    t = e.find(f"{NS}title")
    assert t is not None, "every data point carries a <title> tooltip"
    return t.text or ""


def h(number: int, acc: float, status: str = "completed", ref: str | None = None) -> HistoryPoint:
    return HistoryPoint(number=number, accuracy=acc, status=status, reference=ref, trial_id=100 + number)


# --------------------------------------------------------------------------------------------- history


def test_history_points_links_tooltips_and_lines() -> None:
    pts = [
        h(0, 0.70, ref="no_kd"),
        h(1, 0.75, ref="vanilla_kd"),
        h(2, 0.72, "pruned"),
        h(3, 0.81),
        h(4, 0.78),
    ]
    root = parse(plots.history(pts, teacher_accuracy=0.9))
    points = sorted(elements(root, "point"), key=lambda p: int(p.get("data-trial", "")))
    assert [p.get("data-trial") for p in points] == ["0", "1", "2", "3", "4"]
    assert tooltip(points[3]) == "trial 3: accuracy 0.8100 (best)"
    assert "pruned" in points[2].get("class", "").split() and "(pruned)" in tooltip(points[2])
    assert len(elements(root, "reference")) == 2 and {"no_kd", "vanilla_kd"} <= set(texts(root))
    assert [p.get("data-trial") for p in elements(root, "best")] == ["3"]
    links = sorted(a.get("href", "") for a in root.iter(f"{NS}a"))
    assert links == [f"/ui/trials/{100 + i}" for i in range(5)]
    [best_line] = elements(root, "best-so-far")  # legend keys carry k-* classes, never the data ones
    assert best_line.get("class") == "line best-so-far" and best_line.tag == f"{NS}path"
    [teacher] = elements(root, "teacher")
    assert teacher.tag == f"{NS}line" and tooltip(teacher) == "teacher accuracy 0.9000"
    assert {"trial", "accuracy"} <= set(texts(root))


def test_history_without_teacher_and_best_so_far_skips_pruned() -> None:
    root = parse(plots.history([h(0, 0.6), h(1, 0.99, "pruned"), h(2, 0.7)], None))
    assert not elements(root, "teacher")
    assert [p.get("data-trial") for p in elements(root, "best")] == ["2"]  # the pruned 0.99 is not "best"


def test_history_empty_and_equal_values() -> None:
    assert "no data yet" in texts(parse(plots.history([], 0.9)))
    root = parse(plots.history([h(i, 0.5) for i in range(4)], 0.5))  # one value everywhere
    assert len(elements(root, "point")) == 4
    root = parse(plots.history([h(7, 0.5)], None))  # one trial: a degenerate x range too
    assert len(elements(root, "point")) == 1


def test_history_escapes_labels() -> None:
    svg = plots.history([h(0, 0.5, ref="<script>alert(1)</script>")], None)
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    parse(svg)


def test_history_10k_points_is_fast_and_small() -> None:
    rng = random.Random(0)
    pts = [
        HistoryPoint(
            i, rng.uniform(0.5, 0.9), "pruned" if rng.random() < 0.3 else "completed", None, 100_000 + i
        )
        for i in range(10_000)
    ]
    start = time.perf_counter()
    svg = plots.history(pts, 0.92)
    elapsed = time.perf_counter() - start
    size = len(svg.encode())
    print(f"history of 10,000 points: {elapsed * 1000:.1f} ms, {size / 1e6:.3f} MB")
    assert elapsed < 1.0  # ~15 ms here; loose to stay steady on a busy CI machine
    assert size < 1.5e6
    assert len(elements(parse(svg), "point")) == 10_000


# ----------------------------------------------------------------------------------- size vs accuracy


def test_pareto_hand_example() -> None:
    pts = [SizePoint(1, 1_000_000, 0.7, "a"), SizePoint(2, 2_000_000, 0.8, "b")]
    pts += [SizePoint(3, 3_000_000, 0.75, "c"), SizePoint(4, 4_000_000, 0.9, "d")]
    assert plots.pareto(pts) == {1, 2, 4}
    assert plots.pareto([]) == set()
    same = [SizePoint(1, 5, 0.5, "x"), SizePoint(2, 5, 0.5, "y"), SizePoint(3, 6, 0.5, "z")]
    assert plots.pareto(same) == {1, 2}  # exact duplicates both stay; bigger and no better does not


def test_size_vs_accuracy_points_front_and_teacher() -> None:
    pts = [SizePoint(1, 1_000_000, 0.7, "2×128"), SizePoint(2, 2_000_000, 0.8, "4×256")]
    pts += [SizePoint(3, 3_000_000, 0.75, "4×384"), SizePoint(4, 8_200_000, 0.9, "6×384")]
    root = parse(plots.size_vs_accuracy(pts, teacher=(110_000_000, 0.92)))
    points = elements(root, "point")
    assert len(points) == 4
    front = elements(root, "pareto")
    assert {p.get("data-trial") for p in front if p.tag == f"{NS}circle"} == {"1", "2", "4"}
    assert [p.get("class") for p in front if p.tag == f"{NS}path"] == ["line pareto"]
    by_id = {p.get("data-trial"): p for p in points}
    assert tooltip(by_id["4"]) == "6×384: accuracy 0.9000, 8.2M params (Pareto front)"
    assert tooltip(by_id["3"]) == "4×384: accuracy 0.7500, 3M params"
    [teacher] = elements(root, "teacher")
    assert teacher.tag == f"{NS}path" and tooltip(teacher) == "teacher: accuracy 0.9200, 110M params"
    assert {"1M", "2M", "5M", "10M", "100M"} <= set(texts(root))


def test_size_vs_accuracy_empty_equal_and_escaping() -> None:
    assert "no data yet" in texts(parse(plots.size_vs_accuracy([], (1_000_000, 0.9))))
    root = parse(plots.size_vs_accuracy([SizePoint(i, 4_000_000, 0.8, "s") for i in range(3)], None))
    assert len(elements(root, "point")) == 3
    svg = plots.size_vs_accuracy([SizePoint(1, 10, 0.5, '<script>"x"</script>')], None)
    assert "<script>" not in svg
    assert tooltip(elements(parse(svg), "point")[0]).startswith(
        '<script>"x"</script>:'
    )  # escaped, parsed back


def test_format_params() -> None:
    assert [plots.format_params(n) for n in (4e6, 12e6, 8.2e6, 350e3, 1.1e9, 999)] == [
        "4M",
        "12M",
        "8.2M",
        "350K",
        "1.1B",
        "999",
    ]


# ------------------------------------------------------------------------------------------ importance


def test_importance_bars_sorted_with_values() -> None:
    root = parse(plots.importance_bars({"lr": 0.1, "loss": 0.42, "student": 0.3, "<b>": 0.18}))
    bars = elements(root, "bar")
    assert [b.get("data-param") for b in bars] == ["loss", "student", "<b>", "lr"]
    assert tooltip(bars[0]) == "loss: 0.42"
    assert [t for t in texts(bars[0]) if t] == ["loss", "0.42"]


def test_importance_bars_empty_and_equal() -> None:
    assert "no data yet" in texts(parse(plots.importance_bars({})))
    root = parse(plots.importance_bars({"a": 0.0, "b": 0.0}))
    assert len(elements(root, "bar")) == 2


# ------------------------------------------------------------------------------------------ candidates


def test_candidates_trained_and_picked() -> None:
    pts = [
        CandidatePoint("2×128", 3_000_000, 1.5, picked=False, accuracy=None),
        CandidatePoint("4×256", 9_000_000, 2.5, picked=True, accuracy=0.8123),
        CandidatePoint("6×384", 22_000_000, 2.0, picked=True, accuracy=None),
        CandidatePoint("<script>", 1_000_000, 0.5, picked=False, accuracy=0.7),
    ]
    svg = plots.candidates(pts)
    assert "<script>" not in svg
    root = parse(svg)
    points = elements(root, "point")
    assert len(points) == 4
    assert {p.get("data-arch") for p in elements(root, "trained")} == {"4×256", "<script>"}
    assert {p.get("data-arch") for p in elements(root, "picked")} == {"4×256", "6×384"}
    tip = tooltip(next(p for p in points if p.get("data-arch") == "4×256"))
    assert tip == "4×256: score 2.5, 9M params, accuracy 0.8123 (picked)"
    assert "proxy score" in texts(root)


def test_candidates_empty_and_equal() -> None:
    assert "no data yet" in texts(parse(plots.candidates([])))
    same = [CandidatePoint(f"a{i}", 1000, 1.0, False, None) for i in range(3)]
    assert len(elements(parse(plots.candidates(same)), "point")) == 3


# ---------------------------------------------------------------------------------------------- curves


def test_curves_lines_points_and_legend() -> None:
    epochs = [
        {"epoch": e, "accuracy": 0.6 + 0.05 * e, "macro_f1": 0.55 + 0.05 * e, "train_loss": 1.0 / e}
        for e in (1, 2, 3)
    ]
    root = parse(plots.curves(epochs))
    assert len(elements(root, "point")) == 9
    for cls in ("accuracy", "macro-f1", "train-loss"):
        assert any("line" in e.get("class", "").split() and e.tag == f"{NS}path" for e in elements(root, cls))
    assert {"accuracy", "macro F1", "train loss", "epoch"} <= set(texts(root))
    acc = [p for p in elements(root, "point") if p.get("data-series") == "accuracy"]
    assert tooltip(acc[0]) == "epoch 1: accuracy 0.6500"


def test_curves_zero_one_and_equal_epochs() -> None:
    assert "no epochs recorded yet" in texts(parse(plots.curves([])))
    root = parse(plots.curves([{"epoch": 1, "accuracy": 0.7, "macro_f1": 0.6, "train_loss": 0.5}]))
    assert len(elements(root, "point")) == 3
    flat = [{"epoch": e, "accuracy": 0.5, "macro_f1": 0.5, "train_loss": 0.0} for e in (1, 2)]
    assert len(elements(parse(plots.curves(flat)), "point")) == 6
    partial = [{"epoch": 1, "accuracy": 0.5}, {"epoch": 2, "accuracy": None, "train_loss": float("nan")}]
    assert len(elements(parse(plots.curves(partial)), "point")) == 1


# ---------------------------------------------------------------------------------- pipeline importance


def test_features_of_a_real_pipeline() -> None:
    doc = Pipeline().model_dump(mode="json")
    assert features(doc) == {
        "student": "2×384",
        "loss": "kl",
        "intermediate": "none",
        "mapping": "-",
        "augmentation": "none",
        "lr": 1e-4,
        "temperature": 4.0,
        "kd_weight": 1.0,
        "epochs": 3,
    }
    doc = Pipeline(intermediate=IntermediateSpec(name="hidden_mse", mapping="last")).model_dump(mode="json")
    doc["augmentation"] = {"ops": ["eda_swap", "eda_delete"], "p": 0.1, "copies": 1, "mixup": 0.4}
    f = features(doc)
    assert (f["intermediate"], f["mapping"], f["augmentation"]) == (
        "hidden_mse",
        "last",
        "eda_swap+eda_delete+mixup",
    )


def synthetic_trials(n: int, seed: int = 0) -> list[tuple[dict, float]]:
    """Accuracy set by the loss (large effect) plus noise; lr and the rest vary but do not matter."""
    rng = random.Random(seed)
    base = Pipeline().model_dump(mode="json")
    effect = {"ce_only": 0.0, "kl": 0.1, "mse": 0.05, "dkd": 0.15}
    out = []
    for _ in range(n):
        doc = copy.deepcopy(base)
        doc["loss"]["name"] = rng.choice(list(effect))
        doc["loss"]["temperature"] = rng.uniform(1, 8)
        doc["training"]["lr"] = 10 ** rng.uniform(-5, -3)
        doc["training"]["epochs"] = rng.randint(1, 4)
        doc["student"]["layers"] = rng.choice([2, 4])
        out.append((doc, 0.6 + effect[doc["loss"]["name"]] + rng.gauss(0, 0.01)))
    return out


def test_pipeline_importance_finds_the_loss() -> None:
    imp = pipeline_importance(synthetic_trials(80))
    assert next(iter(imp)) == "loss"
    assert imp["loss"] > 0.5 and imp["loss"] > 5 * imp["lr"]
    assert sum(imp.values()) == pytest.approx(1.0)
    assert list(imp.values()) == sorted(imp.values(), reverse=True)
    assert set(imp) == {"loss", "temperature", "lr", "epochs", "student"}  # constant features dropped


def test_pipeline_importance_500_trials_is_fast() -> None:
    trials = synthetic_trials(700)
    start = time.perf_counter()
    imp = pipeline_importance(trials, max_trials=500)
    elapsed = time.perf_counter() - start
    print(f"pipeline_importance over 500 trials: {elapsed:.2f} s")
    assert next(iter(imp)) == "loss"
    assert elapsed < 2.0


def test_pipeline_importance_degenerate_inputs() -> None:
    assert pipeline_importance(synthetic_trials(3)) == {}
    assert pipeline_importance([]) == {}
    doc = Pipeline().model_dump(mode="json")
    assert pipeline_importance([(doc, 0.5 + i / 100) for i in range(10)]) == {}  # no feature varies
    assert pipeline_importance([(d, 0.7) for d, _ in synthetic_trials(10)]) == {}  # accuracy does not vary
