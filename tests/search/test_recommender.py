"""The recommender: meta-features, the model's fit/predict round-trip, the shipped priors, and its use by the
worker (the predicted recommendation, the warm starts it enqueues, the cold-start fallback)."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import pytest
import torch

from distill.data import TextTask
from distill.pipeline import Pipeline, StudentArch, Training
from distill.tables import Example
from search.grid import AXES, grid
from search.meta_rows import MetaRow, RowsError, load_meta_rows
from search.metafeatures import META_KEYS, data_features, meta_features, reduce_embedding
from search.recommender import (
    MIN_ROWS,
    Recommender,
    candidate_pipelines,
    cold_start,
    component,
    rows_fingerprint,
    signature,
)
from search.space import SearchSpace
from store.settings import SHIPPED_PRIORS, Settings

STUDENT = StudentArch(layers=1, hidden=32, heads=2, ffn=64)
TRAINING = Training(lr=1e-4, epochs=2, batch_size=32, max_length=32)


# --------------------------------------------------------------------------- meta-features


def test_data_features_by_hand() -> None:
    ex = [Example("a b c", 0), Example("a b", 0), Example("a", 0), Example("a b c d e f", 1)]
    task = TextTask("t", ["neg", "pos"], ex, ex[:2])
    f = data_features(task)
    assert f["log10_train"] == pytest.approx(math.log10(4))
    assert f["classes"] == 2 and f["balance"] == pytest.approx(1 / 3) and f["pair"] == 0
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(2)  # 0.811
    assert f["label_entropy"] == pytest.approx(h)
    assert f["words_mean"] == pytest.approx((3 + 2 + 1 + 6) / 4)
    assert f["words_p95"] == 3  # sorted [1, 2, 3, 6], index int(0.95 * 3) = 2


def test_reduced_embedding_is_a_fixed_projection() -> None:
    e0 = torch.zeros(16)
    e0[0] = 5.0  # normalised to the unit vector e0: its summary is the projection's first row
    gen = torch.Generator().manual_seed(16)
    first_row = torch.randn(16, 8, generator=gen)[0] / math.sqrt(8)
    assert reduce_embedding(e0) == pytest.approx(first_row.tolist(), abs=1e-6)
    assert reduce_embedding(torch.arange(16.0)) == reduce_embedding(2 * torch.arange(16.0))


def test_meta_features_of_a_real_teacher_on_small_data(tiny_teacher: Path) -> None:
    from distill.data import load_task
    from distill.teacher import load_teacher

    task = load_task("rotten_tomatoes").subset(60, 40, seed=3)
    teacher = load_teacher(str(tiny_teacher))
    meta = meta_features(
        task, teacher, teacher_accuracy=0.7, max_length=32, max_params=teacher.num_params // 2
    )
    assert list(meta) == list(META_KEYS) and all(math.isfinite(v) for v in meta.values())
    assert meta["classes"] == 2 and meta["log10_train"] == pytest.approx(math.log10(60))
    assert 0.5 <= meta["teacher_confidence"] <= 1 and 0 <= meta["teacher_entropy"] <= 1
    assert meta["teacher_layers"] == 2 and meta["teacher_hidden"] == 64
    assert meta["budget_ratio"] == pytest.approx(0.5, abs=1e-3)
    assert meta["log10_teacher_params"] == pytest.approx(math.log10(teacher.num_params))
    # the embedding summary is a unit vector through a fixed projection: its norm is about 1
    emb = [meta[f"emb_{i}"] for i in range(8)]
    assert 0.2 < math.sqrt(sum(v * v for v in emb)) < 3


# --------------------------------------------------------------------------- the model


def synthetic_rows(tasks: int = 4, seed: int = 0) -> list[dict]:
    """Grid trials on made-up tasks where an attention objective adds 6 points and EDA 3 (on small data),
    as the rows file stores them."""
    rng = random.Random(seed)
    rows = []
    for t in range(tasks):
        meta = {k: rng.uniform(0, 1) for k in META_KEYS}
        meta.update(teacher_layers=2.0, teacher_hidden=64.0, log10_train=2.4 + t * 0.3)
        for (_, inter, aug), p in grid(STUDENT, TRAINING).items():
            ratio = 0.85 + 0.06 * (inter == "attention") + 0.03 * (aug == "eda_swap") + rng.gauss(0, 0.005)
            rows.append({"task": f"task{t}", **meta, "pipeline": p.model_dump_json(), "accuracy": ratio * 0.8,
                         "teacher_score": 0.8, "wall_seconds": 1.0})  # fmt: skip
    return rows


def meta_rows(rows: list[dict]) -> list[MetaRow]:
    return [
        MetaRow(r["task"], json.loads(r["pipeline"]), r["accuracy"], {k: r[k] for k in META_KEYS}, 0.8)
        for r in rows
    ]


def test_fit_rank_round_trip_puts_the_better_components_first() -> None:
    rows = meta_rows(synthetic_rows())
    model = Recommender.fit(rows)
    meta = rows[0].meta
    pipelines = list(grid(STUDENT, TRAINING).values())
    (top,) = model.rank(meta, pipelines, k=1)
    assert (top.pipeline.intermediate.name, top.pipeline.augmentation.ops) == ("attention", ["eda_swap"])
    assert top.percentile > 0.8 and top.seen
    ranked = model.rank(meta, pipelines, k=len(pipelines), distinct=False)
    attention = [s.pipeline.intermediate.name == "attention" for s in ranked]
    assert attention == sorted(attention, reverse=True)  # every attention pipeline above every other
    # deterministic: the same rows give the same model, and the fingerprint says so
    again = Recommender.fit(rows)
    assert again.fingerprint == model.fingerprint == rows_fingerprint(rows)
    assert [s.percentile for s in again.rank(meta, pipelines, k=5)] == [
        s.percentile for s in model.rank(meta, pipelines, k=5)
    ]
    # warm starts differ in what they try: the same recipe on another student is not a second pick
    other = StudentArch(layers=2, hidden=32, heads=2, ffn=64)
    both = pipelines + list(grid(other, TRAINING).values())
    first, second = model.rank(meta, both, k=2)
    assert signature(first.pipeline) != signature(second.pipeline)
    assert second.pipeline.intermediate.name == "attention" and second.percentile <= first.percentile
    imp = model.importance()
    assert sum(imp.values()) == pytest.approx(1, abs=1e-3)
    assert max(imp, key=imp.get) == "intermediate objective"
    near = model.nearest(meta, k=2)
    assert near[0].task == "task0" and near[0].distance == 0 and near[1].distance > 0
    assert near[0].best_ratio == pytest.approx(max(r.score for r in rows if r.task == "task0") / 0.8)


def test_signature_tells_mapping_alpha_and_op_sets_apart() -> None:
    table = grid(STUDENT, TRAINING)
    base = table[("kl", "attention", "eda_swap")]
    last = base.model_copy(update={"intermediate": base.intermediate.model_copy(update={"mapping": "last"})})
    assert signature(last) != signature(base)
    mi = table[("kl", "mi_alpha", "none")]
    other_alpha = mi.model_copy(update={"intermediate": mi.intermediate.model_copy(update={"alpha": 0.9})})
    assert signature(other_alpha) != signature(mi)
    aug = base.augmentation
    two = base.model_copy(update={"augmentation": aug.model_copy(update={"ops": ["a", "b"]})})
    swapped = base.model_copy(update={"augmentation": aug.model_copy(update={"ops": ["b", "a"]})})
    assert signature(two) == signature(swapped)  # an op set, whatever its order


def test_only_pipelines_like_the_training_trials_are_recommended() -> None:
    rows = meta_rows(synthetic_rows())
    model = Recommender.fit(rows)
    meta = rows[0].meta
    table = grid(STUDENT, TRAINING)
    base = table[("kl", "attention", "eda_swap")]
    assert model.seen(base)
    wider = base.model_copy(update={"student": StudentArch(layers=1, hidden=64, heads=2, ffn=64)})
    last = base.model_copy(update={"intermediate": base.intermediate.model_copy(update={"mapping": "last"})})
    mixup = base.model_copy(update={"augmentation": base.augmentation.model_copy(update={"mixup": 0.4})})
    dkd = base.model_copy(update={"loss": base.loss.model_copy(update={"name": "dkd"})})
    unseen = [wider, last, mixup, dkd]
    assert not any(model.seen(p) for p in unseen)  # width, mapping, mixup, loss never trained
    ranked = model.rank(meta, [*unseen, table[("mse", "none", "none")]], k=5)
    assert [s.pipeline for s in ranked] == [table[("mse", "none", "none")]] and ranked[0].seen
    # nothing like the past trials: rank them anyway, marked as extrapolation
    ranked = model.rank(meta, unseen, k=2)
    assert len(ranked) == 2 and not any(s.seen for s in ranked)
    # the least unlike first: one unseen choice (mixup) before an unseen mapping *and* mixup
    both = last.model_copy(update={"augmentation": mixup.augmentation})
    assert model.misses(mixup) == 1 and model.misses(both) == 2
    assert model.outside(both) == ["intermediate.mapping=last", "augmentation.mixup=0.4"]
    assert [s.pipeline for s in model.rank(meta, [both, mixup], k=2)] == [mixup]


def test_fit_refuses_too_little_data() -> None:
    rows = meta_rows(synthetic_rows(tasks=1))
    with pytest.raises(RowsError, match="2 tasks"):
        Recommender.fit(rows)
    with pytest.raises(RowsError, match=f"at least {MIN_ROWS}"):
        Recommender.fit(meta_rows(synthetic_rows(tasks=2))[:: len(rows) // 4][:4])


def test_held_out_regret_is_measured_by_leaving_datasets_out() -> None:
    model = Recommender.fit(meta_rows(synthetic_rows(tasks=4)))
    held = model.held_out()
    # attention + EDA is best on every task and the ranker learns it from the other three
    assert held is not None and held.tasks == 4 and held.one_shot < 0.01 and held.random > 0.02
    assert Recommender.fit(meta_rows(synthetic_rows(tasks=2))).held_out() is None  # < 3 datasets


def test_components_of_features() -> None:
    assert component("meta.log10_train") == "task"
    assert component("intermediate.name=mi_alpha") == component("intermediate.alpha")
    assert component("intermediate.alpha") == "intermediate objective"
    assert component("augmentation.ops=eda_swap") == "augmentation"
    assert component("student.layers") == "student"
    assert component("loss.name=kl") == component("loss.temperature") == "output loss"


def _write(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_shipped_priors_are_the_default_and_train_a_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTODISTILLER_PRIORS")
    assert Settings.from_env().priors == SHIPPED_PRIORS and SHIPPED_PRIORS.is_file()
    rows = load_meta_rows(SHIPPED_PRIORS)
    tasks = {r.task for r in rows}
    # every task's grid: 24 pipelines, 12 on the small tasks of bench/build_meta.py
    assert len(tasks) >= 4 and len(rows) >= len(tasks) * len(grid(STUDENT, TRAINING)) // 2
    model = Recommender.fit(rows)
    assert model.tasks == sorted(tasks)
    monkeypatch.setenv("AUTODISTILLER_PRIORS", "none")
    assert Settings.from_env().priors is None
    monkeypatch.setenv("AUTODISTILLER_PRIORS", "/nonexistent/meta.csv")
    with pytest.raises(ValueError, match="AUTODISTILLER_PRIORS"):
        Settings.from_env()


# --------------------------------------------------------------------------- candidates and priors


def test_candidates_cover_the_grid_and_samples_of_the_space() -> None:
    space = SearchSpace.small([STUDENT], training=TRAINING, epochs=[2])
    cands = candidate_pipelines(space, samples=40, seed=0)
    n_grid = math.prod(len(v) for v in AXES.values())
    assert n_grid < len(cands) <= n_grid + 40 and all(space.contains(p) for p in cands)
    assert cands[:n_grid] == list(grid(STUDENT, TRAINING).values())
    assert len({p.key() for p in cands}) == len(cands)


def test_cold_start_priors_follow_distiller() -> None:
    space = SearchSpace.small([STUDENT], training=TRAINING, epochs=[2])
    small, large = cold_start(space, n_train=500), cold_start(space, n_train=50_000)
    assert [p.intermediate.name for p in small] == ["mi_alpha", "mi_alpha", "hidden_mse"]
    assert small[0].augmentation.ops == ["eda_swap"] and small[0].loss.name == "kl"
    assert large[0].augmentation.ops == [] and large[0].intermediate.name == "mi_alpha"
    # a space without MI-α: the priors it holds, still in order
    no_mi = SearchSpace.small([STUDENT], training=TRAINING, epochs=[2], objectives=["none", "hidden_mse"])
    assert [p.intermediate.name for p in cold_start(no_mi, 500)] == ["hidden_mse", "none"]


# --------------------------------------------------------------------------- in the worker


@pytest.fixture(scope="module")
def ray_local():
    import ray

    from search.tune import ensure_ray

    ensure_ray(num_cpus=2)
    yield
    ray.shutdown()


def _run_job(settings: Settings, teacher: Path, trials: int, warm_start_k: int) -> tuple[object, str]:
    from store import jobs
    from store.spec import DatasetRef, JobBudget, JobSpec, TeacherRef
    from workers.worker import Worker

    spec = JobSpec(
        dataset=DatasetRef(source="rotten_tomatoes", max_train=120, max_val=60),
        teacher=TeacherRef(path=str(teacher)),
        budget=JobBudget(trials=trials, space="small", max_length=32, candidates=[STUDENT], epochs=[1],
                         warm_start_k=warm_start_k),
    )  # fmt: skip
    worker = Worker(settings)
    job = jobs.create_job(worker.db, **spec.model_dump(mode="json"))
    assert worker.run(once=True) == 1
    assert jobs.get_job(worker.db, job.id).state == "finished", jobs.get_job(worker.db, job.id).error
    return worker.db, job.id


@pytest.mark.slow
def test_warm_start_enqueues_the_predicted_pipelines(tmp_path: Path, tiny_teacher: Path, ray_local) -> None:
    from store import results, trials

    priors = _write(tmp_path / "priors.csv", synthetic_rows(tasks=3))
    settings = Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                        priors=priors)  # fmt: skip
    db, job_id = _run_job(settings, tiny_teacher, trials=4, warm_start_k=2)

    rec = results.latest_recommendation(db, job_id, source="predicted")
    d = rec.details
    assert d["method"] == "model" and d["trained_on"] == {"trials": 72, "tasks": 3, "prior_trials": 72}
    assert len(d["nearest"]) == 3 and len(d["alternatives"]) == 3 and d["held_out"]["tasks"] == 3
    assert rec.score is None and 0.5 < d["percentile"] <= 1.0 and "held-out tasks" in rec.why
    predicted = Pipeline.model_validate(rec.pipeline)
    assert predicted.intermediate.name == "attention" and predicted.augmentation.ops == ["eda_swap"]
    done = trials.finished_trials(db, job_id)
    assert [t.is_reference for t in done[:2]] == ["no_kd", "vanilla_kd"]
    # right after the references: the predicted top 2, in order
    assert done[2].pipeline_key == predicted.key()
    assert Pipeline.model_validate(done[3].pipeline).intermediate.name == "attention"
    # the finished job retrained the recommender: a version beside the one the prediction used
    latest = results.latest_model(db)
    assert latest.id == d["model_version"] + 1 and latest.rows == 72 + len(done) and latest.tasks == 4


@pytest.mark.slow
def test_cold_start_without_past_jobs_uses_the_priors(tmp_path: Path, tiny_teacher: Path, ray_local) -> None:
    from store import results, trials

    settings = Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    db, job_id = _run_job(settings, tiny_teacher, trials=3, warm_start_k=1)
    rec = results.latest_recommendation(db, job_id, source="predicted")
    assert rec.details["method"] == "priors" and "Distiller" in rec.why and rec.score is None
    predicted = Pipeline.model_validate(rec.pipeline)
    assert predicted.intermediate.name == "mi_alpha" and predicted.augmentation.ops == ["eda_swap"]
    done = trials.finished_trials(db, job_id)
    assert done[2].pipeline_key == predicted.key()
    assert results.latest_model(db) is None  # one job is too little to train on
    # its trials as meta-dataset rows: each with its learning curve (validation accuracy, seconds an epoch)
    from workers.recommend import db_rows

    rows = {r["pipeline"]: r for r in db_rows(db)}
    for t in done:
        curve = json.loads(rows[json.dumps(t.pipeline, sort_keys=True)]["curve"])
        assert len(curve) == 1 and curve[0][0] == pytest.approx(t.accuracy) and curve[0][1] > 0


def test_demo_says_whether_the_search_confirmed_or_beat_the_prediction(tmp_path: Path) -> None:
    from distill.pipeline import describe
    from store import jobs, results, trials
    from workers.run import predicted_text, prediction_verdict
    from workers.worker import Worker

    worker = Worker(Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}"))
    job = jobs.create_job(worker.db, dataset={"source": "rotten_tomatoes"}, teacher={"base": "minilm"})
    table = grid(STUDENT, TRAINING)
    top, second = table[("kl", "attention", "eda_swap")], table[("mse", "none", "none")]
    alternatives = [{"pipeline": describe(p), "ratio": 0.9} for p in (top, second)]
    results.add_recommendation(worker.db, job.id, top, "predicted", score=0.75, why="because",
                            details={"alternatives": alternatives})  # fmt: skip
    assert "predicted before any trial: kl(T=4) + attention" in predicted_text(worker, job.id)
    assert "runner-up: mse" in predicted_text(worker, job.id)
    assert prediction_verdict(worker, job.id) is None  # nothing measured yet

    def run(number: int, pipeline: Pipeline, acc: float) -> None:
        row = trials.start_trial(worker.db, job.id, number, pipeline)
        trials.finish_trial(worker.db, row.id, "completed", accuracy=acc)

    run(0, top, 0.74)
    assert prediction_verdict(worker, job.id).startswith(
        "the search confirmed the prediction: it measured 0.7400"
    )
    run(1, second, 0.76)
    assert prediction_verdict(worker, job.id) == (
        "the predicted pipeline measured 0.7400 (predicted 0.7500); the search beat it by 2.0 points "
        "(trial 1, a runner-up of the prediction)"
    )
