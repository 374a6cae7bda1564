"""The conditional Optuna search space: every sampled point is a valid Pipeline, parameters appear only where
they mean something, and flat params ↔ Pipeline round-trips."""

from __future__ import annotations

import optuna
import pytest

from distill.losses import LOSSES, uses_temperature
from distill.mapping import attention_pairs, layer_pairs
from distill.objectives import OBJECTIVES
from distill.pipeline import Pipeline, StudentArch, Training
from search.space import Range, SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)

CANDIDATES = [
    StudentArch(layers=1, hidden=64, heads=4, ffn=128),
    StudentArch(layers=2, hidden=128, heads=4, ffn=256),
    StudentArch(layers=3, hidden=96, heads=6, ffn=192, init="random"),
    StudentArch(layers=4, hidden=128, heads=8, ffn=512),
]


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return SearchSpace.default(CANDIDATES)


def _sample(space: SearchSpace, sampler: optuna.samplers.BaseSampler, n: int) -> list[dict]:
    study = optuna.create_study(sampler=sampler)
    out = []
    for i in range(n):
        trial = study.ask()
        space.suggest(trial)
        out.append(dict(trial.params))
        study.tell(trial, float(i % 7))  # something for TPE to model
    return out


@pytest.fixture(scope="module", params=["random", "tpe"])
def samples(request: pytest.FixtureRequest, space: SearchSpace) -> list[dict]:
    sampler = (
        optuna.samplers.RandomSampler(seed=0)
        if request.param == "random"
        else optuna.samplers.TPESampler(seed=0, n_startup_trials=20)
    )
    return _sample(space, sampler, 300)


def test_every_sample_is_a_valid_pipeline_with_conditional_params(
    space: SearchSpace, samples: list[dict]
) -> None:
    seen_losses, seen_inters = set(), set()
    for params in samples:
        pipe = space.to_pipeline(params)  # validates
        assert isinstance(pipe, Pipeline)
        loss, inter = params["loss"], params["inter"]
        seen_losses.add(loss)
        seen_inters.add(inter)
        assert ("mi_alpha" in params) == (inter == "mi_alpha")
        assert ("temperature" in params) == uses_temperature(loss)
        assert ("kd_weight" in params) == (loss != "ce_only")
        assert ("dkd_beta" in params) == (loss == "dkd")
        assert ("sinkhorn_epsilon" in params) == (loss == "sinkhorn")
        assert ("mapping" in params) == ("inter_weight" in params) == (inter != "none")
        assert ("aug_p" in params) == ("aug_copies" in params) == (params["aug"] != "none")
        assert ("mixup_alpha" in params) == params["mixup"]
        if inter != "none":
            kinds = {"both": {"hidden", "attention"}}.get(
                pipe.intermediate.features, {pipe.intermediate.features}
            )
            assert kinds <= OBJECTIVES.get(inter).supports
            assert ("inter_features" in params) == (OBJECTIVES.get(inter).supports == {"hidden", "attention"})
        assert ("progressive" in params) == (inter != "none" and params["epochs"] >= 2)
        if params.get("progressive"):
            stages = pipe.training.stages or []
            assert sum(st.epochs for st in stages) == pipe.training.epochs
            assert (stages[0].hard, stages[0].kd, stages[0].intermediate) == (0, 0, 1)
        else:
            assert pipe.training.stages is None
        assert "teacher_mix" not in params and pipe.teachers is None  # no extra teachers in this space
        assert pipe.training.max_length == space.training.max_length
        # the inverse gives back exactly the sampled params
        assert space.to_params(pipe) == params
    assert seen_losses == set(LOSSES.names())
    assert len(seen_inters) >= len(OBJECTIVES) // 2


def test_extra_teachers_offer_mixing_their_soft_targets() -> None:
    space = SearchSpace.small(CANDIDATES[:2], extra_teachers=2)
    assert space.size() == 3 * SearchSpace.small(CANDIDATES[:2]).size()
    mixes = set()
    for params in _sample(space, optuna.samplers.RandomSampler(seed=3), 120):
        pipe = space.to_pipeline(params)
        assert ("teacher_mix" in params) == (params["loss"] != "ce_only")
        mix = params.get("teacher_mix", "single")
        mixes.add(mix)
        if mix == "single":
            assert pipe.teachers is None
        else:
            assert pipe.teachers is not None and pipe.teachers.mode == mix
            assert pipe.teachers.weights == [1.0, 1.0, 1.0]  # the job's teacher and two extras, equal
        assert space.to_params(pipe) == params
        assert pipe.training.stages is None  # the small preset offers no progressive schedule
    assert mixes == {"single", "fixed", "confidence"}
    with pytest.raises(ValueError, match="extra_teachers"):
        SearchSpace.small(CANDIDATES, extra_teachers=9)


def test_mse_and_ce_only_have_no_temperature(space: SearchSpace) -> None:
    params = _sample(space, optuna.samplers.RandomSampler(seed=1), 200)
    assert any(p["loss"] == "mse" for p in params)
    assert all("temperature" not in p for p in params if p["loss"] in ("mse", "ce_only"))


def test_references_round_trip_and_can_be_enqueued(space: SearchSpace) -> None:
    refs = space.reference_pipelines()
    assert refs["no_kd"] == Pipeline.no_kd(student=CANDIDATES[0], training=space.training)
    assert refs["vanilla_kd"] == Pipeline.vanilla_kd(student=CANDIDATES[0], training=space.training)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for name, pipe in refs.items():
        params = space.to_params(pipe)
        assert space.to_pipeline(params) == pipe, name
        study.enqueue_trial(params)
    for pipe in refs.values():
        trial = study.ask()
        space.suggest(trial)
        assert space.to_pipeline(trial.params) == pipe
        study.tell(trial, 0.0)


def test_random_samples_enqueue_exactly(space: SearchSpace) -> None:
    params = _sample(space, optuna.samplers.RandomSampler(seed=2), 30)
    study = optuna.create_study()
    for p in params:
        study.enqueue_trial(space.to_params(space.to_pipeline(p)))
    for p in params:
        trial = study.ask()
        space.suggest(trial)
        assert trial.params == p
        study.tell(trial, 0.0)


def test_points_outside_the_space_are_rejected(space: SearchSpace) -> None:
    small = SearchSpace.small(CANDIDATES[:2])
    assert not small.contains(Pipeline.vanilla_kd(student=CANDIDATES[3], training=small.training))
    with pytest.raises(ValueError, match="temperature"):
        small.to_params(
            Pipeline.vanilla_kd(student=CANDIDATES[0], training=small.training).model_copy(
                update={"loss": Pipeline.vanilla_kd().loss.model_copy(update={"temperature": 99.0})}
            )
        )
    with pytest.raises(ValueError, match="not sampled"):
        space.distributions({**space.reference_params()["no_kd"], "temperature": 2.0})
    with pytest.raises(ValueError, match="missing"):
        space.distributions({"loss": "kl"})
    mse = Pipeline(student=CANDIDATES[0], loss={"name": "mse", "temperature": 2.0}, training=space.training)
    assert not space.contains(mse)  # the temperature of mse is not a point of the space


def test_space_validation_is_clear() -> None:
    with pytest.raises(ValueError, match="No output loss `nope`"):
        SearchSpace.small(CANDIDATES, losses=["ce_only", "kl", "nope"])
    with pytest.raises(ValueError, match="reference pipeline no_kd"):
        SearchSpace.small(CANDIDATES, epochs=[3])  # the references train for training.epochs = 2
    ok = SearchSpace.small(CANDIDATES, epochs=[3], training=Training(epochs=3))
    assert ok.max_epochs == 3
    rebuilt = SearchSpace(**{**ok.__dict__, "training": Training(epochs=3, max_length=128)})
    assert rebuilt.training.max_length == 128 and rebuilt.epochs == ok.epochs
    with pytest.raises(ValueError, match="at least one candidate"):
        SearchSpace.small([])
    with pytest.raises(ValueError, match="bad range"):
        Range(1.0, 0.5)


def test_objectives_without_an_allowed_feature_are_never_offered() -> None:
    hidden_only = SearchSpace.small(CANDIDATES, features=["hidden"])
    for params in _sample(hidden_only, optuna.samplers.RandomSampler(seed=3), 100):
        assert params["inter"] != "attention"
        assert "inter_features" not in params
        if params["inter"] != "none":
            assert hidden_only.to_pipeline(params).intermediate.features == "hidden"


def test_teacher_layers_needed(space: SearchSpace) -> None:
    hidden, attention = space.teacher_layers_needed(6)
    want_h, want_a = set(), set()
    for student in CANDIDATES:
        for mapping in space.mappings:
            pairs = layer_pairs(mapping, student.layers, 6)
            want_h |= {j for _, j in pairs}
            want_a |= {j for _, j in attention_pairs(pairs)}
    assert hidden == want_h == set(range(7))  # emd reads every layer, uniform the embeddings
    assert attention == want_a == set(range(6))

    skip_only = SearchSpace.small(CANDIDATES[:2], mappings=["skip"], features=["hidden"])
    # 1 layer: 1↔6; 2 layers: 1↔3, 2↔6; no attention objective can run on hidden-only features
    assert skip_only.teacher_layers_needed(6) == ({3, 6}, set())
    last = SearchSpace.small(CANDIDATES[:2], mappings=["last"], objectives=["none", "attention"])
    assert last.teacher_layers_needed(6) == (set(), {4, 5})
    none = SearchSpace.small(CANDIDATES, objectives=["none"])
    assert none.teacher_layers_needed(6) == (set(), set())
