"""Training-free search for a student architecture: regularised evolution over a ``StudentSpace`` under a
budget, scored by any ``fitness(arch)`` — typically zero-cost proxies against the teacher (DisWOT).

* :class:`StudentSpace` — genes ``layers``, ``heads``, ``hidden`` (``heads × hidden_per_head``, or a gene of
  its own from ``hiddens``), ``ffn_ratio`` (``ffn = round(ratio × hidden)``) and, when ``embeddings`` offers
  widths, ``embedding`` (factorised tables; 0 = none, and a width ≥ hidden means none); an arch is valid
  when ``heads`` divides ``hidden``. Mutation moves one gene to a neighbouring value.
* :class:`StudentBudget` — ``max_params`` (``distill.student.estimate_params``) and ``max_latency_ms`` (a
  user-supplied ``latency_fn(arch)``). No candidate outside the budget is ever scored: sampling and
  mutation retry (at most ``max_tries`` times) until a valid arch comes up.
* :func:`regularized_evolution` (aging evolution, Real et al. 2019) and :func:`random_search`, with the same
  number of evaluations for a fair comparison, return a :class:`StudentSearchResult` (every evaluation,
  ``top_k``, candidates per second).
* A ``fitness`` with a ``combine(rows) -> scores`` method (``search.proxy_scoring.ProxyFitness``) is scored
  within the population: tournaments compare the sampled members' ranks among themselves, and every
  candidate's final ``score`` is its rank-based score within the whole scored population.
"""

from __future__ import annotations

import math
import random
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from transformers import PreTrainedModel

from distill.families import shape_of
from distill.pipeline import StudentArch
from distill.student import estimate_params

Genome = tuple[int, ...]  # one index per gene into its sorted value list
Fitness = Callable[[StudentArch], float | Mapping[str, float]]
Log = Callable[[str], None] | None
Origin = Literal["random", "mutation"]


@dataclass(frozen=True)
class StudentSpace:
    """The student architectures searched. Give ``hidden_per_head`` (hidden = heads × it) or ``hiddens``."""

    layers: Sequence[int]
    heads: Sequence[int]
    ffn_ratios: Sequence[float]
    hidden_per_head: int | None = None
    hiddens: Sequence[int] | None = None
    init: Literal["teacher-layers", "random"] = "teacher-layers"
    embeddings: Sequence[int] = ()  # factorised embedding widths offered besides none
    task_vocab_size: int | None = None  # set: pruned-vocabulary students are offered too (gene ``vocab``)
    genes: dict[str, tuple[Any, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.hidden_per_head is None) == (self.hiddens is None):
            raise ValueError("give exactly one of hidden_per_head and hiddens")
        genes: dict[str, tuple[Any, ...]] = {
            "layers": tuple(sorted(set(self.layers))),
            "heads": tuple(sorted(set(self.heads))),
        }
        if self.hiddens is not None:
            genes["hidden"] = tuple(sorted(set(self.hiddens)))
        genes["ffn_ratio"] = tuple(sorted(set(self.ffn_ratios)))
        if self.embeddings:
            genes["embedding"] = (0, *sorted(set(self.embeddings) - {0}))
        if self.task_vocab_size is not None:
            genes["vocab"] = ("full", "task")
        empty = [name for name, values in genes.items() if not values]
        if empty:
            raise ValueError(f"empty gene value list(s): {empty}")
        object.__setattr__(self, "genes", genes)

    @classmethod
    def around(cls, teacher: PreTrainedModel, ffn_ratios: Sequence[float] = (1, 2, 3, 4)) -> StudentSpace:
        """Students no deeper or wider than the teacher, at its head size."""
        shape = shape_of(teacher.config)
        return cls(
            layers=range(1, shape.layers + 1),
            heads=range(1, shape.heads + 1),
            ffn_ratios=ffn_ratios,
            hidden_per_head=shape.hidden // shape.heads,
        )

    @property
    def size(self) -> int:
        """Number of genomes (valid or not)."""
        return math.prod(len(v) for v in self.genes.values())

    def decode(self, genome: Genome) -> StudentArch | None:
        """The arch of ``genome``, or ``None`` when its heads do not divide its hidden size."""
        values = {name: vals[i] for (name, vals), i in zip(self.genes.items(), genome, strict=True)}
        hidden = values.get("hidden", values["heads"] * (self.hidden_per_head or 0))
        if hidden % values["heads"] or hidden < 8:
            return None
        ffn = max(8, round(values["ffn_ratio"] * hidden))
        emb = values.get("embedding") or None
        return StudentArch(
            layers=values["layers"], hidden=hidden, heads=values["heads"], ffn=ffn, init=self.init,
            embedding=emb if emb is not None and emb < hidden else None, vocab=values.get("vocab", "full"),
        )  # fmt: skip

    def sample(self, rng: random.Random) -> Genome:
        return tuple(rng.randrange(len(v)) for v in self.genes.values())

    def mutate(self, genome: Genome, rng: random.Random) -> Genome:
        """Move one gene (among those with a choice) to a neighbouring value (index ± 1)."""
        movable = [i for i, v in enumerate(self.genes.values()) if len(v) > 1]
        if not movable:
            return genome
        i = rng.choice(movable)
        n = len(list(self.genes.values())[i])
        step = rng.choice((-1, 1))
        j = genome[i] + step if 0 <= genome[i] + step < n else genome[i] - step
        return (*genome[:i], j, *genome[i + 1 :])


@dataclass(frozen=True)
class StudentBudget:
    """Hard limits on every scored candidate; ``latency_fn`` is required with ``max_latency_ms``."""

    max_params: int | None = None
    max_latency_ms: float | None = None
    latency_fn: Callable[[StudentArch], float] | None = None

    def __post_init__(self) -> None:
        if self.max_latency_ms is not None and self.latency_fn is None:
            raise ValueError("max_latency_ms needs a latency_fn(arch) -> ms")


_PARAM_CACHE: weakref.WeakKeyDictionary[PreTrainedModel, dict[tuple[int, ...], tuple[int, int]]] = (
    weakref.WeakKeyDictionary()
)


def student_params(arch: StudentArch, teacher: PreTrainedModel, task_vocab_size: int | None = None) -> int:
    """``estimate_params(arch, teacher)``, cached: a BERT classifier's size is affine in depth and does not
    depend on the head count, so two estimates per ``(hidden, ffn)`` give every depth exactly."""
    cache = _PARAM_CACHE.setdefault(teacher, {})
    rows = task_vocab_size if arch.vocab == "task" else None
    if arch.vocab == "task" and rows is None:
        raise ValueError("the size of a `vocab: task` student needs the task's vocabulary size")
    key = (arch.hidden, arch.ffn, arch.embedding or 0, rows or 0)
    if key not in cache:
        one = estimate_params(arch.model_copy(update={"layers": 1}), teacher, rows)
        two = estimate_params(arch.model_copy(update={"layers": 2}), teacher, rows)
        cache[key] = (one - (two - one), two - one)
    base, per_layer = cache[key]
    return base + arch.layers * per_layer


@dataclass(frozen=True)
class Candidate:
    """One evaluation: the arch, its size (and latency), its fitness and any extra scores it returned."""

    arch: StudentArch
    params: int
    score: float
    extras: dict[str, float]
    latency_ms: float | None
    index: int  # evaluation order, from 0
    origin: Origin

    def row(self) -> dict[str, Any]:
        return {
            "arch": self.arch.model_dump(),
            "params": self.params,
            "latency_ms": self.latency_ms,
            "score": self.score,
            **self.extras,
            "index": self.index,
            "origin": self.origin,
        }


@dataclass
class StudentSearchResult:
    """Every evaluation in order (re-evaluations of an arch included), and the wall time."""

    candidates: list[Candidate]
    seconds: float

    @property
    def evaluations(self) -> int:
        return len(self.candidates)

    @property
    def per_second(self) -> float:
        """Candidates scored per second of wall time."""
        return self.evaluations / self.seconds if self.seconds > 0 else math.inf

    @property
    def best(self) -> Candidate:
        return self.top_k(1)[0]

    def top_k(self, k: int) -> list[Candidate]:
        """The ``k`` best distinct archs, by descending score (earliest evaluation first on ties)."""
        seen: set[StudentArch] = set()
        unique = []
        for c in self.candidates:
            if c.arch not in seen:
                seen.add(c.arch)
                unique.append(c)
        return sorted(unique, key=lambda c: (-c.score, c.index))[:k]


class _Evaluator:
    """Samples and mutates valid in-budget genomes and scores them, recording every evaluation."""

    def __init__(
        self,
        space: StudentSpace,
        fitness: Fitness,
        teacher: PreTrainedModel,
        budget: StudentBudget | None,
        *,
        seed: int,
        max_tries: int,
        cache: bool,
    ) -> None:
        self.space, self.fitness, self.teacher = space, fitness, teacher
        self.budget = budget or StudentBudget()
        self.rng = random.Random(seed)
        self.max_tries = max_tries
        self.cache: dict[StudentArch, tuple[float, dict[str, float]]] | None = {} if cache else None
        self.latencies: dict[StudentArch, float] = {}
        self.candidates: list[Candidate] = []
        self.combine: Callable[[Sequence[Mapping[str, float]]], list[float]] | None = getattr(
            fitness, "combine", None
        )

    def scores(self, cands: Sequence[Candidate]) -> list[float]:
        """Scores of ``cands`` (ranked among themselves when the fitness is population-level)."""
        if self.combine is None:
            return [c.score for c in cands]
        return list(self.combine([c.extras for c in cands]))

    def result(self, seconds: float) -> StudentSearchResult:
        """Every evaluation, each scored within the whole population when the fitness combines."""
        cands = self.candidates
        if self.combine is not None:
            cands = [replace(c, score=s) for c, s in zip(cands, self.scores(cands), strict=True)]
        return StudentSearchResult(cands, seconds)

    def check(self, genome: Genome) -> tuple[StudentArch, int, float | None] | None:
        arch = self.space.decode(genome)
        if arch is None:
            return None
        params = student_params(arch, self.teacher, self.space.task_vocab_size)
        if self.budget.max_params is not None and params > self.budget.max_params:
            return None
        latency = None
        if self.budget.latency_fn is not None:
            if arch not in self.latencies:
                self.latencies[arch] = float(self.budget.latency_fn(arch))
            latency = self.latencies[arch]
            if self.budget.max_latency_ms is not None and latency > self.budget.max_latency_ms:
                return None
        return arch, params, latency

    def random_valid(self) -> tuple[Genome, tuple[StudentArch, int, float | None]]:
        for _ in range(self.max_tries):
            genome = self.space.sample(self.rng)
            ok = self.check(genome)
            if ok is not None:
                return genome, ok
        raise RuntimeError(
            f"no architecture within the budget {self.budget} after {self.max_tries} random samples"
        )

    def mutate_valid(self, parent: Genome) -> tuple[Genome, tuple[StudentArch, int, float | None], Origin]:
        for _ in range(self.max_tries):
            genome = self.space.mutate(parent, self.rng)
            ok = self.check(genome)
            if ok is not None:
                return genome, ok, "mutation"
        genome, ok = self.random_valid()  # no valid neighbour: restart from a random valid arch
        return genome, ok, "random"

    def evaluate(self, checked: tuple[StudentArch, int, float | None], origin: Origin) -> Candidate:
        arch, params, latency = checked
        if self.cache is not None and arch in self.cache:
            score, extras = self.cache[arch]
        else:
            score, extras = _split(self.fitness(arch))
            if self.cache is not None:
                self.cache[arch] = (score, extras)
        cand = Candidate(arch, params, score, dict(extras), latency, len(self.candidates), origin)
        self.candidates.append(cand)
        return cand


def _split(value: float | Mapping[str, float]) -> tuple[float, dict[str, float]]:
    if isinstance(value, Mapping):
        if "score" not in value:
            raise ValueError("a fitness returning a mapping must include 'score'")
        return float(value["score"]), {k: float(v) for k, v in value.items() if k != "score"}
    return float(value), {}


def _report(name: str, result: StudentSearchResult, log: Log) -> StudentSearchResult:
    if log is not None:
        best = result.best
        log(
            f"{name}: {result.evaluations} candidates in {result.seconds:.2f}s "
            f"({result.per_second:.1f}/s); best {best.score:.4g} {best.arch.model_dump()}"
        )
    return result


def regularized_evolution(
    space: StudentSpace,
    fitness: Fitness,
    teacher: PreTrainedModel,
    *,
    budget: StudentBudget | None = None,
    population: int = 20,
    sample_size: int = 5,
    cycles: int = 80,
    seed: int = 0,
    max_tries: int = 1000,
    cache: bool = True,
    log: Log = print,
) -> StudentSearchResult:
    """Aging evolution: score ``population`` random archs; then, ``cycles`` times, draw ``sample_size``
    members at random, mutate the fittest (ranked among the sample for a population-level fitness), score
    the child, add it and drop the oldest member.
    ``population + cycles`` evaluations in all. ``cache`` re-uses the fitness of an arch seen before
    (deterministic proxies); a re-evaluation still counts and is recorded.
    """
    if not 1 <= sample_size <= population:
        raise ValueError("need 1 <= sample_size <= population")
    ev = _Evaluator(space, fitness, teacher, budget, seed=seed, max_tries=max_tries, cache=cache)
    t0 = time.perf_counter()
    pop: deque[tuple[Genome, Candidate]] = deque()
    for _ in range(population):
        genome, ok = ev.random_valid()
        pop.append((genome, ev.evaluate(ok, "random")))
    for _ in range(cycles):
        sample = ev.rng.sample(list(pop), sample_size)
        scores = ev.scores([c for _, c in sample])
        parent = sample[max(range(sample_size), key=scores.__getitem__)]
        genome, ok, origin = ev.mutate_valid(parent[0])
        pop.append((genome, ev.evaluate(ok, origin)))
        pop.popleft()
    return _report("evolution", ev.result(time.perf_counter() - t0), log)


def random_search(
    space: StudentSpace,
    fitness: Fitness,
    teacher: PreTrainedModel,
    *,
    evaluations: int,
    budget: StudentBudget | None = None,
    seed: int = 0,
    max_tries: int = 1000,
    cache: bool = True,
    log: Log = print,
) -> StudentSearchResult:
    """``evaluations`` archs drawn uniformly from the valid in-budget genomes (the evolution's baseline)."""
    ev = _Evaluator(space, fitness, teacher, budget, seed=seed, max_tries=max_tries, cache=cache)
    t0 = time.perf_counter()
    for _ in range(evaluations):
        ev.evaluate(ev.random_valid()[1], "random")
    return _report("random search", ev.result(time.perf_counter() - t0), log)
