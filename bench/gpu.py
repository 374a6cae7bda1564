"""The GPU path (issue 18): small-student trials sharing one GPU, against a bare loop; teacher throughput.

    python -m bench.gpu              # on a GPU machine, one script, under 10 minutes
    python -m bench.gpu --smoke      # anywhere, CPU included: tiny sizes, to check the script (~1 min)
    python -m bench.gpu --json out.json

Prints three tables (recorded in bench/RESULTS.md):
1. the teacher's forward passes on the device: examples/s for logits only and for logits + every hidden
   layer (``distill.teacher_outputs``, its batches of 64), and the student's bare training loop;
2. 1, 2 and 4 concurrent trials on one GPU (Ray Tune, ``gpus_per_trial`` = 1/concurrency, the worker's
   packing): trials per hour, and each trial's wall (``distill_student`` from the shared teacher outputs:
   student built, data encoded, trained, validated each epoch, CPU latency measured) over the bare loop's;
3. the goals: trial wall ≤ 1.1× the bare loop at concurrency 1, and 4 at once ≥ 3× the trials per hour of 1.

The teacher is the shipped MiniLM encoder with a new 2-label head (throughput does not depend on its
accuracy), the student 2 × 384 (a third of its depth), vanilla KD on Rotten Tomatoes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.engine import bare_loop
from distill.assets import minilm_dir
from distill.data import TextTask, load_task
from distill.device import amp_for, resolve_device
from distill.encoding import TrainData, encode_fixed
from distill.engine import distill_student
from distill.export import save_model
from distill.hf import load_tokenizer
from distill.pipeline import Pipeline, StudentArch, Training
from distill.student import build_student
from distill.teacher import Teacher, load_teacher
from distill.teacher_outputs import TeacherOutputs, clear_memory_cache, teacher_outputs
from search.space import SearchSpace
from search.tune import TuneBudget, ensure_ray, run_search


@dataclass(frozen=True)
class Size:
    n_train: int
    n_val: int
    max_length: int
    epochs: int
    levels: tuple[int, ...]  # trials at once
    trials: tuple[int, ...]  # trials run at each level
    student: StudentArch
    tiny_teacher: bool


FULL = Size(
    8000, 500, 64, 3, (1, 2, 4), (4, 4, 8), StudentArch(layers=2, hidden=384, heads=12, ffn=1536), False
)
SMOKE = Size(160, 40, 32, 1, (1, 2), (2, 2), StudentArch(layers=1, hidden=64, heads=2, ffn=128), True)


def make_teacher(folder: Path, tiny: bool) -> Path:
    """MiniLM with a new 2-label head, or (``tiny``) a random 2 × 64 BERT with its vocabulary, saved."""
    import transformers

    tok = load_tokenizer(minilm_dir())
    labels = {"id2label": {0: "rotten", 1: "fresh"}, "label2id": {"rotten": 0, "fresh": 1}}
    torch.manual_seed(0)
    if tiny:
        cfg = transformers.BertConfig(
            vocab_size=tok.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=128, max_position_embeddings=64, num_labels=2, **labels,
        )  # fmt: skip
        model = transformers.BertForSequenceClassification(cfg)
    else:
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            str(minilm_dir()), num_labels=2, **labels
        )
    return save_model(model, tok, folder, card={"role": "teacher"})


_TEACHERS: dict[tuple[str, str], Teacher] = {}  # per Ray worker (Tune reuses its actors)


def _teacher(folder: str, device: str) -> Teacher:
    if (folder, device) not in _TEACHERS:
        _TEACHERS[(folder, device)] = load_teacher(folder).to(device)
    return _TEACHERS[(folder, device)]


def bench_trial(params: dict[str, Any], shared: dict[str, Any], report: Any) -> dict[str, Any]:
    """One trial's work as ``search.trainable.run_trial`` does it (no export), on a fixed pipeline so that
    every trial does the same work; the device is resolved in the trial (Ray shows it its GPU share)."""
    task, folder, outputs, pipeline = shared["task"], shared["teacher"], shared["outputs"], shared["pipeline"]
    device = str(resolve_device("auto"))
    teacher = _teacher(folder, device)
    t0 = time.perf_counter()
    result = distill_student(
        task, teacher, pipeline, report=lambda m: report(dict(m)), outputs=outputs, progress=False,
        device=device,
    )  # fmt: skip
    return {**result.metrics, "wall_seconds": time.perf_counter() - t0, "device": device}


def throughput(teacher: Teacher, train: TrainData, hidden: list[int]) -> float:
    """Examples per second of ``teacher_outputs`` (nothing cached) for ``hidden`` layers besides logits."""
    enc = {k: getattr(train, k) for k in ("input_ids", "attention_mask", "token_type_ids")}
    teacher_outputs(
        teacher, {k: v[:64] for k, v in enc.items()}, hidden_layers=hidden, progress=False
    )  # warm
    clear_memory_cache()
    _sync()
    t0 = time.perf_counter()
    teacher_outputs(teacher, enc, hidden_layers=hidden, progress=False)
    _sync()
    return len(train) / (time.perf_counter() - t0)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def concurrent(shared: dict[str, Any], level: int, trials: int, epochs: int) -> dict[str, float]:
    """``trials`` trials, ``level`` at once, each asking for 1/``level`` of a GPU (none on a CPU)."""
    space = SearchSpace.small([shared["pipeline"].student])
    budget = TuneBudget(
        trials=trials, concurrency=level, cpus_per_trial=1, gpus_per_trial=1 / level, early_stopping=False,
        max_epochs=epochs,
    )  # fmt: skip
    t0 = time.perf_counter()
    result = run_search(bench_trial, space, budget, shared=shared, seed=0, storage_path=shared["ray"])
    wall = time.perf_counter() - t0
    done = [t for t in result.trials if t.status == "completed"]
    if len(done) != trials:
        errors = [t.error for t in result.trials if t.error]
        raise RuntimeError(f"{len(done)}/{trials} trials finished at concurrency {level}: {errors[:1]}")
    walls = [float(t.metrics["wall_seconds"]) for t in done]
    return {
        "level": level,
        "trials": trials,
        "wall": wall,
        "trials_per_hour": trials / wall * 3600,
        "trial_wall": statistics.median(walls),
        "device": str(done[0].metrics.get("device")),
    }


def run(size: Size, work: Path) -> dict[str, Any]:
    device = resolve_device("auto")
    task: TextTask = load_task("rotten_tomatoes").subset(size.n_train, size.n_val, seed=0)
    teacher = load_teacher(make_teacher(work / "teacher", size.tiny_teacher)).to(str(device))
    ident = torch.arange(task.num_labels)
    train = encode_fixed(task.train, teacher.tokenizer, size.max_length, ident)
    val = encode_fixed(task.validation, teacher.tokenizer, size.max_length, ident)
    layers = list(range(teacher.num_layers + 1))
    tput = {"logits": throughput(teacher, train, []), "logits + hidden": throughput(teacher, train, layers)}
    enc = {k: getattr(train, k) for k in ("input_ids", "attention_mask", "token_type_ids")}
    outputs: TeacherOutputs = teacher_outputs(teacher, enc, progress=False)

    tr = Training(lr=1e-4, epochs=size.epochs, batch_size=32, max_length=size.max_length)
    pipeline = Pipeline.vanilla_kd(student=size.student, training=tr)
    fields = (train.input_ids, train.attention_mask, train.token_type_ids, train.labels)
    on_device = TrainData(*(t.to(device) for t in fields), teacher=TeacherOutputs(outputs.logits.to(device)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a trial (cpus_per_trial=1: Ray sets OMP_NUM_THREADS=1)
    warm = tr.model_copy(update={"epochs": 1})  # kernels, allocator and caches warmed, then timed afresh
    bare_loop(
        build_student(size.student, teacher.model)[0].to(device), on_device, val, warm, amp=amp_for(device)
    )
    student, _ = build_student(size.student, teacher.model)
    bare = bare_loop(student.to(device), on_device, val, tr, amp=amp_for(device))
    torch.set_num_threads(threads)
    teacher.model.to("cpu")  # the trials load their own
    if device.type == "cuda":
        torch.cuda.empty_cache()

    ensure_ray(num_cpus=None if device.type == "cuda" else max(size.levels))
    shared = {"task": task, "teacher": str(work / "teacher"), "outputs": outputs, "pipeline": pipeline,
              "ray": str(work / "ray")}  # fmt: skip
    rows = [concurrent(shared, lv, n, size.epochs) for lv, n in zip(size.levels, size.trials, strict=True)]
    return {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "amp": str(amp_for(device).dtype),
        "size": {k: str(v) for k, v in vars(size).items()},
        "teacher_examples_per_s": tput,
        "bare_loop_s": bare,
        "levels": rows,
    }


def report(r: dict[str, Any]) -> None:
    s = r["size"]
    print(
        f"device {r['device']} (autocast {r['amp']}); Rotten Tomatoes {s['n_train']}/{s['n_val']}, "
        f"max_length {s['max_length']}, {s['epochs']} epochs, vanilla KD\n"
    )
    print("| measure | value |\n|---|---|")
    for name, v in r["teacher_examples_per_s"].items():
        print(f"| teacher outputs, {name} | {v:,.0f} examples/s |")
    print(f"| bare training loop (one student) | {r['bare_loop_s']:.2f} s |\n")
    one = r["levels"][0]["trials_per_hour"]
    print("| trials at once | trials | wall s | trials/hour | × one at a time | trial wall s | ÷ bare loop |")
    print("|---|---|---|---|---|---|---|")
    for x in r["levels"]:
        print(
            f"| {x['level']} | {x['trials']} | {x['wall']:.1f} | {x['trials_per_hour']:,.0f} | "
            f"{x['trials_per_hour'] / one:.2f}× | {x['trial_wall']:.2f} | "
            f"{x['trial_wall'] / r['bare_loop_s']:.2f} |"
        )
    ratio = r["levels"][0]["trial_wall"] / r["bare_loop_s"]
    best = max(r["levels"], key=lambda x: x["level"])
    print(
        f"\ngoals: trial wall at 1 ÷ bare loop = {ratio:.2f} (goal ≤ 1.1); {best['level']} at once = "
        f"{best['trials_per_hour'] / one:.2f}× the trials/hour of one (goal ≥ 3 at 4, on one GPU)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (seconds on a CPU)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        result = run(SMOKE if args.smoke else FULL, Path(work))
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
