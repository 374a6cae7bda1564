"""The conditional (define-by-run) Optuna search space over :class:`distill.pipeline.Pipeline`.

A trial's parameters are a *flat* dict with stable names: ``student`` (candidate index), ``loss``,
``temperature``, ``kd_weight``, ``hard_weight``, ``<loss>_<param>`` (e.g. ``dkd_beta``), ``inter``,
``inter_features``, ``mapping``, ``inter_weight``, ``mi_alpha``, ``<objective>_<param>`` (e.g. ``crd_tau``),
``aug``, ``aug_p``, ``aug_copies``, ``mixup``, ``mixup_alpha``, ``lr``, ``epochs``, ``batch_size``,
``progressive`` (staged training, :func:`distill.pipeline.progressive_split`; with an intermediate objective
and ≥ 2 epochs) and ``teacher_mix`` (``single``, ``fixed`` or ``confidence``; with extra teachers and KD).

A parameter is sampled only where it means something (no temperature for ``mse``, no ``mi_alpha`` unless
the objective is ``mi_alpha``, ...), and every choice offered combines with every other one, so each sampled
point validates as a ``Pipeline``. Optuna forbids a categorical parameter whose choices change between
trials, so the choices of a name never depend on earlier choices: a parameter that would have one option
left (e.g. ``inter_features`` for a hidden-only objective) is fixed instead of sampled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import BaseDistribution

from distill.augment import AUGMENTATIONS
from distill.losses import LOSSES, uses_temperature
from distill.mapping import MAPPINGS, attention_pairs, layer_pairs
from distill.objectives import OBJECTIVES
from distill.pipeline import (
    Augmentation,
    IntermediateSpec,
    LogitLossSpec,
    Pipeline,
    StudentArch,
    TeacherMix,
    Training,
    progressive_split,
)
from search.flat import aug_name, aug_ops, flatten, param_name
from search.replay import Replay

FEATURES = ("hidden", "attention", "both")
TEACHER_MIXES = ("single", "fixed", "confidence")  # one teacher; ``TeacherMix.mode`` of several
_KINDS = {"hidden": {"hidden"}, "attention": {"attention"}, "both": {"hidden", "attention"}}
_LOSS_DEFAULTS = LogitLossSpec()


@dataclass(frozen=True)
class Range:
    """A closed float interval, sampled uniformly or (``log=True``) log-uniformly."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not self.low <= self.high or (self.log and self.low <= 0):
            raise ValueError(f"bad range [{self.low}, {self.high}] (log={self.log})")

    def __contains__(self, x: object) -> bool:
        return isinstance(x, int | float) and self.low <= x <= self.high

    def suggest(self, trial: optuna.Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log)


def _uses_mlm(op: str) -> bool:
    return bool(getattr(AUGMENTATIONS.get(op), "uses_mlm", False))


@dataclass(frozen=True)
class SearchSpace:
    """What the search may try. ``training`` holds the fixed settings (max_length, warmup, weight decay,
    seed) and the lr/epochs/batch size of the reference pipelines; it must lie inside the space."""

    candidates: list[StudentArch]
    losses: list[str] = field(default_factory=lambda: LOSSES.names())
    objectives: list[str] = field(default_factory=lambda: ["none", *OBJECTIVES.names()])
    mappings: list[str] = field(default_factory=MAPPINGS.names)
    features: list[str] = field(default_factory=lambda: list(FEATURES))
    augmentations: list[tuple[str, ...]] = field(
        default_factory=lambda: [(), *((op,) for op in AUGMENTATIONS.names() if not _uses_mlm(op))]
    )
    mlm: str | None = None  # the masked LM of ops that need one (``contextual``); offered only when set
    aug_p: Range = Range(0.05, 0.3)
    aug_copies: list[int] = field(default_factory=lambda: [1, 2])
    mixup: Range | None = Range(0.1, 1.0)  # None: never mix up
    lr: Range = Range(2e-5, 2e-3, log=True)
    epochs: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    batch_sizes: list[int] = field(default_factory=lambda: [16, 32, 64])
    progressive: bool = True  # offer staged training (intermediate → output distribution → labels)
    extra_teachers: int = 0  # teachers besides the job's: offers mixing their soft targets (``teacher_mix``)
    temperature: Range = Range(1.0, 16.0, log=True)
    kd_weight: Range = Range(0.1, 10.0, log=True)
    hard_weight: Range | None = Range(0.0, 1.0)  # None: fixed at 1
    inter_weight: Range = Range(0.01, 10.0, log=True)
    mi_alpha: Range = Range(0.0, 1.0)
    loss_params: dict[str, dict[str, Range]] = field(
        default_factory=lambda: {
            "dkd": {"alpha": Range(0.5, 2.0), "beta": Range(1.0, 16.0, log=True)},
            "sinkhorn": {"epsilon": Range(0.02, 1.0, log=True)},
            "sinkhorn_batch": {"epsilon": Range(0.02, 1.0, log=True)},
        }
    )
    inter_params: dict[str, dict[str, Range]] = field(
        default_factory=lambda: {
            "crd": {"tau": Range(0.03, 0.3, log=True)},
            "infonce": {"tau": Range(0.03, 0.3, log=True)},
        }
    )
    training: Training = field(default_factory=lambda: Training(lr=1e-4, epochs=3, batch_size=32))

    def __post_init__(self) -> None:
        if not self.candidates:
            raise ValueError("the search space needs at least one candidate student")
        if not 0 <= self.extra_teachers <= 7:
            raise ValueError(f"extra_teachers must be 0–7, got {self.extra_teachers}")
        for name in self.losses:
            LOSSES.get(name)
        for name in self.objectives:
            if name != "none":
                OBJECTIVES.get(name)
        for ops in self.augmentations:
            for op in ops:
                if _uses_mlm(op) and not self.mlm:
                    raise ValueError(f"augmentation {op} needs a masked LM: set the space's mlm")
        for name in self.mappings:
            MAPPINGS.get(name)  # an unknown name fails with the registry's error
        if bad := set(self.features) - set(FEATURES):
            raise ValueError(f"unknown feature kind(s) {sorted(bad)} (known: {', '.join(FEATURES)})")
        for what, values in [
            ("losses", self.losses),
            ("mappings", self.mappings),
            ("features", self.features),
            ("augmentations", self.augmentations),
            ("aug_copies", self.aug_copies),
            ("epochs", self.epochs),
            ("batch_sizes", self.batch_sizes),
        ]:
            if not values or len(set(values)) != len(values):
                raise ValueError(f"{what} must be a non-empty list without repeats, got {values!r}")
        for kind, table in (("loss", self.loss_params), ("objective", self.inter_params)):
            registry = LOSSES if kind == "loss" else OBJECTIVES
            for name, ranges in table.items():
                registry.get(name).check_params(dict.fromkeys(ranges, 0.0))
        names = [param_name(n, k) for n, t in {**self.loss_params, **self.inter_params}.items() for k in t]
        if len(set(names)) != len(names) or set(names) & _FIXED_NAMES:
            raise ValueError(f"loss/objective parameter names collide: {sorted(names)}")
        for name, ref in self.reference_pipelines().items():
            try:
                self.to_params(ref)
            except ValueError as e:
                raise ValueError(f"reference pipeline {name} is outside the search space: {e}") from None

    def feature_choices(self, objective: str) -> list[str]:
        """The allowed feature kinds ``objective`` supports (none: the objective is never offered)."""
        supports = OBJECTIVES.get(objective).supports
        return [f for f in self.features if _KINDS[f] <= supports]

    def offered_objectives(self) -> list[str]:
        """The ``inter`` choices: ``none`` and the objectives that can run on an allowed feature kind."""
        return [n for n in self.objectives if n == "none" or self.feature_choices(n)]

    # ------------------------------------------------------------------ presets
    @classmethod
    def default(cls, candidates: Sequence[StudentArch], **overrides: Any) -> SearchSpace:
        """Every registered loss, objective, mapping and augmentation op; ``overrides`` set any field."""
        return cls(list(candidates), **overrides)

    @classmethod
    def small(cls, candidates: Sequence[StudentArch], **overrides: Any) -> SearchSpace:
        """A handful of choices, for the demo and the tests; ``overrides`` set any field."""
        preset: dict[str, Any] = {
            "losses": ["ce_only", "kl", "mse", "dkd"],
            "objectives": ["none", "hidden_mse", "attention", "mi_alpha"],
            "mappings": ["skip", "last"],
            "augmentations": [(), ("eda_swap",)],
            "aug_copies": [1],
            "lr": Range(5e-5, 2e-3, log=True),
            "epochs": [1, 2],
            "batch_sizes": [16, 32],
            "progressive": False,
            "inter_params": {},
            "training": Training(lr=1e-4, epochs=2, batch_size=32, max_length=64),
        }
        return cls(list(candidates), **{**preset, **overrides})

    # ------------------------------------------------------------------ sampling
    @property
    def max_epochs(self) -> int:
        return max(self.epochs)

    def suggest(self, trial: optuna.Trial) -> None:
        """Sample one pipeline's parameters into ``trial`` (define-by-run; conditional)."""
        trial.suggest_categorical("student", list(range(len(self.candidates))))
        loss = trial.suggest_categorical("loss", self.losses)
        if loss != "ce_only":
            self.kd_weight.suggest(trial, "kd_weight")
            if self.hard_weight is not None:
                self.hard_weight.suggest(trial, "hard_weight")
        if uses_temperature(loss):
            self.temperature.suggest(trial, "temperature")
        for key, rng in self.loss_params.get(loss, {}).items():
            rng.suggest(trial, param_name(loss, key))

        inter = trial.suggest_categorical("inter", self.offered_objectives())
        if inter != "none":
            if len(kinds := self.feature_choices(inter)) > 1:
                trial.suggest_categorical("inter_features", kinds)
            trial.suggest_categorical("mapping", self.mappings)
            self.inter_weight.suggest(trial, "inter_weight")
            if inter == "mi_alpha":
                self.mi_alpha.suggest(trial, "mi_alpha")
            for key, rng in self.inter_params.get(inter, {}).items():
                rng.suggest(trial, param_name(inter, key))

        aug = trial.suggest_categorical("aug", [aug_name(ops) for ops in self.augmentations])
        if aug != "none":
            self.aug_p.suggest(trial, "aug_p")
            trial.suggest_categorical("aug_copies", self.aug_copies)
        if self.mixup is not None and trial.suggest_categorical("mixup", [False, True]):
            self.mixup.suggest(trial, "mixup_alpha")

        self.lr.suggest(trial, "lr")
        epochs = trial.suggest_categorical("epochs", self.epochs)
        trial.suggest_categorical("batch_size", self.batch_sizes)
        if self.progressive and inter != "none" and epochs >= 2:
            trial.suggest_categorical("progressive", [False, True])
        if self.extra_teachers and loss != "ce_only":
            trial.suggest_categorical("teacher_mix", list(TEACHER_MIXES))

    def distributions(self, params: Mapping[str, Any]) -> dict[str, BaseDistribution]:
        """The Optuna distribution of every parameter ``params`` uses; raises ``ValueError`` if ``params``
        lack one, hold one outside its distribution, or hold one the space would not sample."""
        replay = Replay(params)
        self.suggest(replay)  # type: ignore[arg-type]
        if extra := sorted(set(params) - set(replay.distributions)):
            raise ValueError(f"parameter(s) {extra} are not sampled for this pipeline")
        return replay.distributions

    # ------------------------------------------------------------------ conversion
    def to_pipeline(self, params: Mapping[str, Any]) -> Pipeline:
        """Flat parameters (from :meth:`suggest` or :meth:`to_params`) → ``Pipeline``."""
        p = dict(params)
        loss = p["loss"]
        loss_kw: dict[str, Any] = {
            "name": loss,
            "params": {k: float(p[param_name(loss, k)]) for k in self.loss_params.get(loss, {})},
        }
        if loss == "ce_only":
            loss_kw.update(kd_weight=0.0, hard_weight=1.0)
        else:
            loss_kw["kd_weight"] = float(p["kd_weight"])
            loss_kw["hard_weight"] = float(p["hard_weight"]) if self.hard_weight is not None else 1.0
        if uses_temperature(loss):
            loss_kw["temperature"] = float(p["temperature"])

        inter = p["inter"]
        if inter == "none":
            inter_spec = IntermediateSpec()
        else:
            choices = self.feature_choices(inter)
            inter_spec = IntermediateSpec(
                name=inter,
                features=p["inter_features"] if len(choices) > 1 else choices[0],
                mapping=p["mapping"],
                weight=float(p["inter_weight"]),
                alpha=float(p["mi_alpha"]) if inter == "mi_alpha" else None,
                params={k: float(p[param_name(inter, k)]) for k in self.inter_params.get(inter, {})},
            )

        ops = aug_ops(p["aug"])
        augmentation = Augmentation(
            ops=ops,
            p=float(p["aug_p"]) if ops else Augmentation().p,
            copies=int(p["aug_copies"]) if ops else 0,
            mixup=float(p["mixup_alpha"]) if p.get("mixup") else 0.0,
            mlm=self.mlm if any(_uses_mlm(op) for op in ops) else None,
        )
        training = {**self.training.model_dump(), "lr": float(p["lr"]), "epochs": int(p["epochs"])}
        training["batch_size"] = int(p["batch_size"])
        if p.get("progressive"):
            training["stages"] = progressive_split(training["epochs"], kd=loss != "ce_only")
        mix = p.get("teacher_mix", "single")
        return Pipeline(
            student=self.candidates[int(p["student"])],
            loss=LogitLossSpec(**loss_kw),
            intermediate=inter_spec,
            augmentation=augmentation,
            training=Training(**training),
            teachers=None
            if mix == "single"
            else TeacherMix(weights=[1.0] * (1 + self.extra_teachers), mode=mix),
        )

    def to_params(self, pipeline: Pipeline) -> dict[str, Any]:
        """``Pipeline`` → flat parameters, e.g. to ``study.enqueue_trial`` a known pipeline: the pipeline's
        flattening (``search.flat``), restricted to what this space samples for it.

        Raises ``ValueError`` when the pipeline is not a point of this space (``to_pipeline`` of the result
        must give the pipeline back, and every value must lie inside its distribution).
        """
        try:
            student = self.candidates.index(pipeline.student)
        except ValueError:
            raise ValueError(f"student {pipeline.student} is not a candidate of the space") from None
        replay = Replay({"student": student, **flatten(pipeline)})
        self.suggest(replay)  # type: ignore[arg-type]
        params = {name: replay.params[name] for name in replay.distributions}
        if (back := self.to_pipeline(params)) != pipeline:
            raise ValueError(
                f"pipeline is not a point of the space (nearest point: {back.model_dump_json()})"
            )
        return params

    def contains(self, pipeline: Pipeline) -> bool:
        """Whether ``pipeline`` is a point of this space (so it can be enqueued)."""
        try:
            self.to_params(pipeline)
        except ValueError:
            return False
        return True

    # ------------------------------------------------------------------ references and teacher needs
    def reference_pipelines(self) -> dict[str, Pipeline]:
        """``no_kd`` and ``vanilla_kd`` on the first candidate with the default training settings."""
        kw = {"student": self.candidates[0], "training": self.training}
        return {"no_kd": Pipeline.no_kd(**kw), "vanilla_kd": Pipeline.vanilla_kd(**kw)}

    def reference_params(self) -> dict[str, dict[str, Any]]:
        """The reference pipelines as flat parameters, ready to enqueue."""
        return {name: self.to_params(p) for name, p in self.reference_pipelines().items()}

    def teacher_layers_needed(self, n_teacher_layers: int) -> tuple[set[int], set[int]]:
        """(hidden-state indices, attention layers) of the teacher that some pipeline of the space may read.

        Hidden indices follow HF ``hidden_states`` (0 = embeddings); attention layers are 0-based.
        """
        kinds: set[str] = set()
        for name in self.offered_objectives():
            if name != "none":
                for f in self.feature_choices(name):
                    kinds |= _KINDS[f]
        hidden: set[int] = set()
        attention: set[int] = set()
        for student in self.candidates:
            for mapping in self.mappings:
                pairs = layer_pairs(mapping, student.layers, n_teacher_layers)
                if "hidden" in kinds:
                    hidden |= {j for _, j in pairs}
                if "attention" in kinds:
                    attention |= {j for _, j in attention_pairs(pairs)}
        return hidden, attention

    def size(self) -> float:
        """Number of categorical combinations (continuous parameters count once); for display."""
        n_loss = len(self.losses)
        n_inter = sum(
            1 if n == "none" else len(self.feature_choices(n)) * len(self.mappings)
            for n in self.offered_objectives()
        )
        n_aug = sum(len(self.aug_copies) if ops else 1 for ops in self.augmentations)
        n_mix = 2 if self.mixup is not None else 1
        n_train = len(self.epochs) * len(self.batch_sizes) * (2 if self.progressive else 1)
        n_teach = len(TEACHER_MIXES) if self.extra_teachers else 1
        return float(math.prod([len(self.candidates), n_loss, n_inter, n_aug, n_mix, n_train, n_teach]))


_FIXED_NAMES = frozenset(
    {
        "student",
        "loss",
        "temperature",
        "kd_weight",
        "hard_weight",
        "inter",
        "inter_features",
        "mapping",
        "inter_weight",
        "mi_alpha",
        "aug",
        "aug_p",
        "aug_copies",
        "mixup",
        "mixup_alpha",
        "lr",
        "epochs",
        "batch_size",
        "progressive",
        "teacher_mix",
    }
)
