"""The student candidates of a job: the usual first students under the budget, or the DisWOT student search
(aging evolution ranked by a zero-cost proxy, without training)."""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedModel

from distill.data import TextTask
from distill.encoding import encode_fixed
from distill.engine import student_vocab
from distill.families import shape_of
from distill.pipeline import StudentArch
from distill.profile import teacher_label_map
from distill.student import build_student, count_params, cpu_latency_ms, estimate_params
from distill.teacher import Teacher
from distill.vocab import TaskVocab, can_prune
from search.proxies import DEFAULT_PROXY, ProxyBatch, random_like
from search.proxy_scoring import proxy_fitness
from search.student_search import StudentBudget, StudentSpace, regularized_evolution, student_params


def factorised_widths(teacher_hidden: int) -> tuple[int, ...]:
    """Embedding widths the DisWOT search offers besides none: powers of two from 16, below the teacher's
    width (a student's tables are then ``vocab × width`` plus one ``width × hidden`` projection)."""
    return tuple(w for w in (16, 32, 64, 128, 256) if w < teacher_hidden)


def default_candidates(teacher: PreTrainedModel) -> list[StudentArch]:
    """Students shallower and narrower than the teacher: depth 1–4 at its width, and narrower widths.

    The first is the reference students' architecture: a third of the teacher's depth (at least 1) at its
    width, initialised from its layers (DistilBERT-style), the usual first thing one would try.
    """
    shape = shape_of(teacher.config)
    width, heads, ffn, depth = shape.hidden, shape.heads, shape.ffn, shape.layers
    head_dim = width // heads
    first = max(1, depth // 3)
    out = [StudentArch(layers=first, hidden=width, heads=heads, ffn=ffn)]
    for layers in range(1, min(4, depth - 1) + 1):
        if layers != first:
            out.append(StudentArch(layers=layers, hidden=width, heads=heads, ffn=ffn))
    for frac in (2 / 3, 1 / 2):
        h_heads = max(1, round(heads * frac))
        hidden = h_heads * head_dim
        for layers in (2, 4):
            if layers < depth:
                out.append(StudentArch(layers=layers, hidden=hidden, heads=h_heads, ffn=4 * hidden))
    return out


def feasible_candidates(
    candidates: list[StudentArch],
    teacher: PreTrainedModel,
    *,
    max_params: int | None,
    max_latency_ms: float | None,
    seq_len: int,
    vocab: TaskVocab | None = None,
) -> tuple[list[StudentArch], list[dict[str, Any]]]:
    """Candidates that meet the budget (checked before any training), and a row per candidate for the DB
    (``vocab``: the task's pruned vocabulary, needed by ``vocab: task`` candidates)."""
    rows, keep = [], []
    for arch in candidates:
        if arch.vocab == "task" and vocab is None:
            raise ValueError("a `vocab: task` candidate needs the task's vocabulary (a WordPiece tokenizer)")
        size = vocab.size if vocab is not None else None
        row: dict[str, Any] = {"arch": arch.model_dump(), "params": estimate_params(arch, teacher, size)}
        ok = max_params is None or row["params"] <= max_params
        if ok and max_latency_ms is not None:
            kept = vocab.kept if arch.vocab == "task" and vocab is not None else None
            student, _ = build_student(arch, teacher, seed=0, kept=kept)
            row["latency_ms"] = cpu_latency_ms(student, seq_len=seq_len)
            ok = row["latency_ms"] <= max_latency_ms
        row["feasible"] = ok
        rows.append(row)
        if ok:
            keep.append(arch)
    return keep, rows


#: The proxy the student search ranks candidates by (see bench/RESULTS.md for how it was chosen).
STUDENT_PROXY = DEFAULT_PROXY


def proxy_batch(teacher: Teacher, task: TextTask, max_length: int, size: int = 32) -> ProxyBatch:
    """``size`` training examples (evenly spread over the split) as a proxy batch, trimmed to real length."""
    step = max(1, len(task.train) // size)
    examples = task.train[::step][:size]
    enc = encode_fixed(examples, teacher.tokenizer, max_length, teacher_label_map(teacher, task))
    n = int(enc.attention_mask.sum(1).max())
    return ProxyBatch(
        labels=enc.labels,
        input_ids=enc.input_ids[:, :n],
        attention_mask=enc.attention_mask[:, :n],
        token_type_ids=enc.token_type_ids[:, :n],
    )


def search_students(
    teacher: Teacher,
    task: TextTask,
    *,
    max_params: int | None,
    max_latency_ms: float | None,
    seq_len: int,
    top_k: int = 4,
    evaluations: int = 50,
    proxy: str = STUDENT_PROXY,
    proxy_teacher: str = "random",
    seed: int = 0,
) -> tuple[list[StudentArch], list[dict[str, Any]], float]:
    """DisWOT student search: aging evolution over students smaller than the teacher, ranked by ``proxy``
    without training. Returns the candidates for the pipeline search (the usual reference student first
    when it fits the budget, then the ``top_k`` found), a row per scored candidate (``score``: its rank-based
    score within all the candidates scored), and candidates/s.
    """
    model = teacher.model
    shape = shape_of(model.config)
    vocab = student_vocab(task, teacher) if can_prune(teacher.tokenizer) else None
    limit = max_params if max_params is not None else int(0.75 * count_params(model))
    latency_fn = None
    if max_latency_ms is not None:

        def latency_fn(arch: StudentArch) -> float:
            kept = vocab.kept if arch.vocab == "task" and vocab is not None else None
            return cpu_latency_ms(
                build_student(arch, model, seed=seed, kept=kept)[0], seq_len=seq_len, runs=5
            )

    space = StudentSpace(
        layers=range(1, shape.layers),
        heads=range(1, shape.heads + 1),
        ffn_ratios=(1, 2, 3, 4),
        hidden_per_head=shape.hidden // shape.heads,
        embeddings=factorised_widths(shape.hidden),
        task_vocab_size=vocab.size if vocab is not None else None,
    )
    budget = StudentBudget(max_params=limit, max_latency_ms=max_latency_ms, latency_fn=latency_fn)
    reference = default_candidates(model)[0]
    # A randomly initialised teacher: chosen on the text bench of issue 4 with the old proxy code. On the CNN
    # bench of issue 14 (bench/RESULTS.md) the trained teacher ranked better; not yet re-measured on text.
    scorer = random_like(model, seed=seed) if proxy_teacher == "random" else model
    batch = proxy_batch(teacher, task, seq_len)
    extras = [
        p for p in ("params", "flops") if p != proxy
    ]  # cheap, analytic: stored beside the search's proxy
    fitness = proxy_fitness(
        scorer, batch, [proxy, *extras], seed, vocab
    )  # ranks within the scored population
    population = max(2, min(16, evaluations // 3))
    result = regularized_evolution(
        space, fitness, scorer, budget=budget, population=population, sample_size=max(1, population // 4),
        cycles=max(0, evaluations - population), seed=seed, log=None,
    )  # fmt: skip
    found = [c.arch for c in result.top_k(top_k)]
    fits = student_params(reference, model) <= limit and (
        latency_fn is None or latency_fn(reference) <= max_latency_ms
    )
    picked = ([reference] if fits else []) + [a for a in found if a != reference]
    chosen = {a.model_dump_json() for a in picked}
    rows = [
        {**c.row(), proxy: c.score, "proxy": proxy, "picked": c.arch.model_dump_json() in chosen}
        for c in result.candidates
    ]
    return picked[: top_k + 1], rows, result.per_second
