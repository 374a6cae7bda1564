"""``autodistiller demo``: a real teacher and a real student on real data, in a few minutes on 2 CPU cores."""

from __future__ import annotations

import time

import torch

from distill.assets import minilm_dir
from distill.data import load_task
from distill.engine import distill_student, encode_fixed
from distill.export import export_student
from distill.pipeline import IntermediateSpec, LogitLossSpec, Pipeline, StudentArch, Training
from distill.settings import Settings
from distill.student import count_params, cpu_latency_ms
from distill.teacher import FinetuneConfig, finetune_teacher
from distill.trainer import evaluate

#: The demo's default pipeline: a 2-layer student initialised from the teacher's layers, Hinton KD plus
#: Distiller's best intermediate objective (MI-α) on skip-mapped hidden states.
DEMO_PIPELINE = Pipeline(
    student=StudentArch(layers=2, hidden=384, heads=12, ffn=1536),
    loss=LogitLossSpec(name="kl", temperature=4.0),
    intermediate=IntermediateSpec(name="mi_alpha", alpha=0.5, mapping="skip", weight=0.1),
    training=Training(lr=1e-4, epochs=3, batch_size=32, max_length=64),
)


def run_demo(n_train: int = 2000, n_val: int = 500, max_length: int = 64) -> None:
    settings = Settings.from_env()
    t0 = time.perf_counter()
    task = load_task("rotten_tomatoes").subset(n_train, n_val, seed=0)
    print(
        f"data: Rotten Tomatoes, stratified subset of {len(task.train)} train / {len(task.validation)} "
        f"validation reviews (of {12752}), max_length={max_length} tokens"
    )
    teacher = finetune_teacher(minilm_dir(), task, settings.teachers, FinetuneConfig(max_length=max_length))
    pipeline = DEMO_PIPELINE.model_copy(
        update={"training": DEMO_PIPELINE.training.model_copy(update={"max_length": max_length})}
    )
    print(f"pipeline: {pipeline.model_dump_json()}")
    result = distill_student(task, teacher, pipeline, cache_dir=settings.teacher_outputs)
    folder = export_student(result, teacher, task, settings.home / "demo-student")

    val = encode_fixed(task.validation, teacher.tokenizer, max_length, torch.arange(task.num_labels))
    t_acc = evaluate(teacher.model, val)["accuracy"]
    t_params, t_lat = count_params(teacher.model), cpu_latency_ms(teacher.model, seq_len=max_length)
    s = result.metrics
    print()
    print(f"{'model':<10}{'val accuracy':>14}{'params':>14}{'CPU latency (1×' + str(max_length) + ')':>24}")
    print(f"{'teacher':<10}{t_acc:>14.4f}{t_params / 1e6:>13.1f}M{t_lat:>21.1f} ms")
    print(f"{'student':<10}{s['accuracy']:>14.4f}{s['params'] / 1e6:>13.1f}M{s['latency_ms']:>21.1f} ms")
    print(
        f"student keeps {s['accuracy'] / t_acc:.1%} of the teacher's accuracy with "
        f"{s['params'] / t_params:.0%} of its parameters, {t_lat / s['latency_ms']:.1f}× faster"
    )
    print(f"student exported to {folder} ({time.perf_counter() - t0:.0f} s in all)")
