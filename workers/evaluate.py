"""The job's answer and its one measurement on data the selection never saw.

``choose``: the recommended trial — the most accurate on validation, or with ``target_ratio`` the smallest
(``target_by``: fastest) that reaches ratio × the teacher's validation accuracy, else the closest, said so.
``keep``: the trials whose students stay downloadable (the Pareto front of accuracy, params and latency, the
references, the recommended and the most accurate). ``test_all``: the teacher and every kept student
evaluated once on the test split (95% intervals), and the recommended student timed beside the teacher —
its ONNX and int8 copies (``export_formats``) in the same rounds.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from distill.data import TextTask
from distill.encoding import encode_fixed
from distill.hf import load_classifier, load_tokenizer
from distill.holdout import held_out_metrics, interval_text, paired_latency, speed_text
from distill.onnx_export import FILES, export_onnx, format_bytes, onnx_file, onnx_runner
from distill.profile import teacher_label_map
from search.pareto import pareto_front, reaching_target
from search.tune_events import TrialRecord
from store.models import Trial
from workers.stages import Profiled

log = logging.getLogger(__name__)
ONNX_CHECK_TEXTS = 32
KEEP_OBJECTIVES = [("accuracy", "max"), ("params", "min"), ("latency_ms", "min")]
TIMING = {"threads": 1, "batch": 1, "runs": 20, "warmup": 5}


def _row(t: Trial) -> dict[str, Any]:
    return {"number": t.number, "accuracy": t.accuracy, "params": t.params, "latency_ms": t.latency_ms}


def choose(completed: list[Trial], teacher_accuracy: float, budget: dict[str, Any]) -> tuple[Trial, dict]:
    """The recommended trial, and what the target ratio made of it (``{}`` without one)."""
    best = max(completed, key=lambda t: (t.accuracy, -t.number))
    ratio, by = budget.get("target_ratio"), budget.get("target_by") or "params"
    if ratio is None or not teacher_accuracy:
        return best, {}
    pick, closest = reaching_target([_row(t) for t in completed], teacher_accuracy, ratio, by)
    found = pick or closest
    chosen = next((t for t in completed if found and t.number == found["number"]), best)
    bar, what = ratio * teacher_accuracy, "smallest" if by == "params" else "fastest"
    if pick is not None:
        text = f"the {what} student reaching {ratio:.0%} of the teacher's validation accuracy (≥ {bar:.4f})"
    else:
        text = (
            f"no student reached {ratio:.0%} of the teacher's validation accuracy (≥ {bar:.4f}); the closest "
            f"reached {chosen.accuracy / teacher_accuracy:.1%}"
        )
    return chosen, {"ratio": ratio, "by": by, "bar": bar, "met": pick is not None, "trial": chosen.number,
                    "text": text}  # fmt: skip


def keep(completed: list[Trial], chosen: Trial) -> dict[int, list[str]]:
    """Trial number → why its student is kept (``recommended``, ``most_accurate``, ``pareto``, a
    reference's name)."""
    roles: dict[int, list[str]] = {chosen.number: ["recommended"]}
    best = max(completed, key=lambda t: (t.accuracy, -t.number))
    roles.setdefault(best.number, []).append("most_accurate")
    records = [
        TrialRecord(str(t.number), {}, _row(t))
        for t in completed
        if all(getattr(t, k) is not None for k, _ in KEEP_OBJECTIVES)
    ]
    for r in pareto_front(records, KEEP_OBJECTIVES):
        roles.setdefault(int(r.trial_id), []).append("pareto")
    for t in completed:
        if t.is_reference:
            roles.setdefault(t.number, []).append(t.is_reference)
    return dict(sorted(roles.items()))


def export_formats(prof: Profiled, folders: dict[int, Path], max_length: int) -> dict[str, dict[str, Any]]:
    """Each kept student also as ONNX and dynamic int8 (``onnx/`` in its folder), checked on validation
    texts; trial number → the export's report (sizes, logit difference, int8 agreement), or ``{"error"}``
    when a student could not be exported — its safetensors download is unaffected and the job goes on."""
    examples = prof.task.validation[:ONNX_CHECK_TEXTS] or prof.task.train[:ONNX_CHECK_TEXTS]
    texts = [e.text for e in examples]
    pairs = [e.text_pair or "" for e in examples] if any(e.text_pair is not None for e in examples) else None
    out: dict[str, dict[str, Any]] = {}
    for number, folder in folders.items():
        try:
            out[str(number)] = export_onnx(folder, texts, pairs, max_length=max_length)
        except Exception as e:  # an architecture the exporter cannot take, a mismatch: say so, keep going
            log.warning("trial %s: no ONNX export: %s", number, e)
            out[str(number)] = {"error": str(e)[:500]}
    return out


def _format_runners(folder: Path) -> dict[str, Any]:
    """The student's ONNX sessions (1 thread), for the formats it has."""
    return {fmt: onnx_runner(folder, fmt, threads=TIMING["threads"]) for fmt in FILES
            if onnx_file(folder, fmt).is_file()}  # fmt: skip


def test_all(prof: Profiled, max_length: int, folders: dict[int, Path], chosen: int) -> dict[str, Any]:
    """The teacher and each student in ``folders`` (trial number → folder) measured once on the test split;
    the ``chosen`` student timed beside the teacher (``speed``; its ONNX and int8 files in the same rounds,
    ``onnx_ms`` / ``onnx_int8_ms``, and the size on disk of each format, ``bytes``). Without a test split:
    ``{"test": None}``."""
    task, teacher = prof.task, prof.teacher
    if not task.test:
        return {"test": None, "reason": "the dataset has no test split (test_fraction 0)"}
    label_map = teacher_label_map(teacher, task)
    data = encode_fixed(task.test, teacher.tokenizer, max_length, label_map)
    doc: dict[str, Any] = {"n": len(task.test), "teacher": held_out_metrics(teacher.model, data)}
    doc["trials"] = {}
    for number, folder in folders.items():
        model, doc["trials"][str(number)] = _tested(prof.task, label_map, max_length, folder)
        if number == chosen:
            extra = _format_runners(folder)
            speed = paired_latency(teacher.model, model, seq_len=max_length, extra=extra, **TIMING)
            doc["speed"] = {**speed, "bytes": format_bytes(folder)}
    return doc


def _tested(task: TextTask, label_map: Any, max_length: int, folder: Path) -> tuple[Any, dict[str, Any]]:
    """The student in ``folder`` and its test metrics; it reads the test text through its own tokenizer (a
    pruned vocabulary renumbers ids)."""
    model = load_classifier(folder)
    own = encode_fixed(task.test, load_tokenizer(folder), max_length, label_map)
    return model, held_out_metrics(model, own)


def test_every(prof: Profiled, max_length: int, folders: dict[int, Path]) -> dict[str, Any]:
    """Every trial's student in ``folders`` (trial number → folder) measured on the test split (the budget's
    ``test_every``): trial number → accuracy and macro-F1. Empty without a test split."""
    if not prof.task.test:
        return {}
    out, label_map = {}, teacher_label_map(prof.teacher, prof.task)
    for number, folder in folders.items():
        m = _tested(prof.task, label_map, max_length, folder)[1]
        out[str(number)] = {"accuracy": m["accuracy"], "macro_f1": m.get("macro_f1"), "n": m["n"]}
    return out


def summary(chosen: Trial, refs: dict[str, Trial], doc: dict[str, Any], target: dict[str, Any]) -> str:
    """The answer in one paragraph: validation and test beside each other with intervals, the references
    on test, the side-by-side speed, the target's verdict."""
    parts = [f"trial {chosen.number}: validation {chosen.accuracy:.4f}"]
    test = doc.get("trials", {}).get(str(chosen.number)) if doc.get("test", True) is not None else None
    if test:
        parts.append(f"test {interval_text(test)}; one test example = {100 / test['n']:.2f} points")
        parts.append(f"teacher test {interval_text(doc['teacher'])}")
        for name, t in refs.items():
            ref = doc["trials"].get(str(t.number))
            if ref and t.number != chosen.number:
                gain, label = test["accuracy"] - ref["accuracy"], name.replace("_", " ")
                parts.append(f"{gain:+.4f} over {label} on test ({ref['accuracy']:.4f})")
    else:
        parts.append("no test split: validation only (selection used it)")
    if doc.get("speed"):
        parts.append(speed_text(doc["speed"]))
    if target:
        parts.append(target["text"])
    return "; ".join(parts)
