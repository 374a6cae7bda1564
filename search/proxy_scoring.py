"""Scoring student architectures with zero-cost proxies: a table of rows (:func:`score_candidates`), or a
population-level ``fitness`` for the student search (:class:`ProxyFitness`).

Rank proxies (``size_then_diswot``, ``diswot_size``) rank their terms within the population scored, so a
candidate's score is only meaningful next to the others scored with it: ``score_candidates`` ranks the
archs given, and the search ranks the whole population it evaluated (``ProxyFitness.combine``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from transformers import PreTrainedModel

from distill.pipeline import StudentArch
from distill.student import build_student
from distill.vocab import TaskVocab
from search.proxies import Proxy, ProxyBatch, ProxyModel, build_proxy


def _build(
    arch: StudentArch, teacher_model: PreTrainedModel, seed: int, vocab: TaskVocab | None = None
) -> ProxyModel:
    """The student ``arch`` as a proxy model, on the teacher's device."""
    device = next(teacher_model.parameters()).device
    if arch.vocab == "task":
        if vocab is None:
            raise ValueError("scoring a `vocab: task` student needs the task's vocabulary (distill.vocab)")
        student, _ = build_student(arch, teacher_model, seed=seed, kept=vocab.kept)
        return ProxyModel.from_hf(student.to(device), id_map=vocab.old_to_new)
    student, _ = build_student(arch, teacher_model, seed=seed)
    return ProxyModel.from_hf(student.to(device))


def score_candidates(
    teacher_model: PreTrainedModel,
    archs: Sequence[StudentArch],
    batch: ProxyBatch,
    proxies: Sequence[str],
    seed: int = 0,
    *,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    vocab: TaskVocab | None = None,
) -> list[dict[str, Any]]:
    """A row per arch: ``arch``, ``params``, every proxy's score within ``archs`` and its raw terms
    (``diswot_semantic``/``diswot_relation``), and ``seconds`` (that student's build and scoring time;
    teacher-side work is shared, counted once, not in any row).

    Each student is built by ``build_student(arch, teacher_model, seed=seed)`` and dropped once scored.
    Pass ``random_like(teacher)`` as ``teacher_model`` for a random teacher; ``options`` holds per-proxy
    constructor options.
    """
    batch = batch.to(next(teacher_model.parameters()).device)
    teacher = ProxyModel.from_hf(teacher_model)
    built: dict[str, Proxy] = {n: build_proxy(n, seed, **(options or {}).get(n, {})) for n in proxies}
    states = {n: p.prepare(teacher, batch) for n, p in built.items()}
    terms: dict[str, list[dict[str, float]]] = {n: [] for n in built}
    rows: list[dict[str, Any]] = []
    for arch in archs:
        t0 = time.perf_counter()
        student = _build(arch, teacher_model, seed, vocab)
        row: dict[str, Any] = {
            "arch": arch.model_dump(),
            "params": sum(p.numel() for p in student.module.parameters()),
        }
        for n, proxy in built.items():
            t = proxy.measure(teacher, student, batch, states[n])
            terms[n].append(t)
            row.update(t)
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
    for n, proxy in built.items():
        for row, value in zip(rows, proxy.combine(terms[n]), strict=True):
            row[n] = value
    return rows


class ProxyFitness:
    """A population-level ``fitness`` for ``regularized_evolution``: ``fitness(arch)`` gives the raw terms
    of every proxy (``score``: ``proxies[0]``'s raw single-candidate score); ``combine(rows)`` scores a
    population of such rows with ``proxies[0]`` (ranks within it for the rank proxies)."""

    def __init__(
        self,
        teacher_model: PreTrainedModel,
        batch: ProxyBatch,
        proxies: Sequence[str],
        seed: int = 0,
        vocab: TaskVocab | None = None,
    ) -> None:
        if not proxies:
            raise ValueError("name at least one proxy")
        batch = batch.to(next(teacher_model.parameters()).device)  # students are built on it too
        self.teacher_model, self.batch, self.seed, self.vocab = teacher_model, batch, seed, vocab
        self.teacher = ProxyModel.from_hf(teacher_model)
        self.built = {n: build_proxy(n, seed) for n in proxies}
        self.main = self.built[proxies[0]]
        self.states = {n: p.prepare(self.teacher, batch) for n, p in self.built.items()}

    def __call__(self, arch: StudentArch) -> dict[str, float]:
        student = _build(arch, self.teacher_model, self.seed, self.vocab)
        out: dict[str, float] = {}
        main: dict[str, float] = {}
        for n, p in self.built.items():
            t = p.measure(self.teacher, student, self.batch, self.states[n])
            out.update(t)
            if p is self.main:
                main = t
        return {**out, "score": self.main.total(main)}

    def combine(self, rows: Sequence[Mapping[str, float]]) -> list[float]:
        """``proxies[0]``'s scores of a population of rows (as returned by calls, or their extras)."""
        return self.main.combine([dict(r) for r in rows])


def proxy_fitness(
    teacher_model: PreTrainedModel,
    batch: ProxyBatch,
    proxies: Sequence[str],
    seed: int = 0,
    vocab: TaskVocab | None = None,
) -> ProxyFitness:
    """A :class:`ProxyFitness` scoring with ``proxies`` (the first ranks, the rest ride along; ``vocab``:
    the task's pruned vocabulary, for ``vocab: task`` students)."""
    return ProxyFitness(teacher_model, batch, proxies, seed, vocab)
