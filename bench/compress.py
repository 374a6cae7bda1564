"""How small a student can get: full vs pruned vocabulary vs factorised embeddings, on held-out test data.

    AUTODISTILLER_HOME=/tmp/ad-compress nice -n 10 .venv/bin/python -m bench.compress \
        [--task rotten_tomatoes] [--sizes 8000 500 1000] [--epochs 3] [--lr 3e-4] [--students LABEL ...]

One task: a stratified, disjoint train / validation / test split of all its labelled rows
(``bench.methods.three_way_split``); the shipped MiniLM fine-tuned on the train split as the teacher (cached
under $AUTODISTILLER_HOME); each student distilled with vanilla KD (KL, T = 4) on the same split, lr, epochs
and seed. Prints per student: parameters and their ratio to the teacher's, test accuracy with its 95% Wilson
interval and as a fraction of the teacher's, the size of its exported folder's weights on disk, and its CPU
latency timed side by side with the teacher (same process, one thread, interleaved); then the smallest
student within 2% of the teacher's test accuracy.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from bench.methods import three_way_split
from distill.assets import minilm_dir
from distill.data import TextTask, load_task
from distill.encoding import encode_fixed
from distill.engine import distill_student
from distill.export import export_student
from distill.finetune import FinetuneConfig, finetune_teacher
from distill.holdout import held_out_metrics, interval_text, paired_latency
from distill.pipeline import Pipeline, StudentArch, Training
from distill.student import count_params
from store.settings import Settings


def students() -> dict[str, StudentArch]:
    """From the usual 2 × 384 student (the teacher's width, its full vocabulary) down."""
    return {
        "2×384, full vocab": StudentArch(layers=2, hidden=384, heads=12, ffn=1536),
        "2×384, task vocab": StudentArch(layers=2, hidden=384, heads=12, ffn=1536, vocab="task"),
        "2×384, task vocab, emb 128": StudentArch(
            layers=2, hidden=384, heads=12, ffn=1536, vocab="task", embedding=128
        ),
        "2×192, task vocab, emb 128": StudentArch(
            layers=2, hidden=192, heads=6, ffn=768, vocab="task", embedding=128
        ),
        "1×384, task vocab, emb 64": StudentArch(
            layers=1, hidden=384, heads=12, ffn=1536, vocab="task", embedding=64
        ),
        "2×128, task vocab, emb 64": StudentArch(
            layers=2, hidden=128, heads=4, ffn=512, vocab="task", embedding=64
        ),
    }


def disk_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.glob("*.safetensors")) / 1e6


def run(name: str, sizes: Sequence[int], tr: Training, only: Sequence[str], settings: Settings) -> None:
    full = load_task(name)
    train, val, test = three_way_split(full, sizes)
    task = TextTask(full.name, full.labels, train, val, test)
    teacher = finetune_teacher(
        minilm_dir(), TextTask(full.name, full.labels, train, val), settings.teachers,
        FinetuneConfig(max_length=tr.max_length),
    )  # fmt: skip
    ident = torch.arange(task.num_labels)
    t_test = held_out_metrics(teacher.model, encode_fixed(test, teacher.tokenizer, tr.max_length, ident))
    t_params = count_params(teacher.model)
    print(
        f"\n### {name}: train {len(train)} / val {len(val)} / test {len(test)}; KD (KL, T=4), "
        f"lr {tr.lr}, {tr.epochs} epochs, seed {tr.seed}\n\nteacher (MiniLM-L6 fine-tuned): "
        f"{t_params / 1e6:.1f}M params, test {interval_text(t_test)}\n"
    )
    print(
        "| student | params | × smaller | test acc (95% CI) | of teacher | disk MB "
        "| latency ms (teacher) | s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    best: tuple[int, str] | None = None
    for label, arch in students().items():
        if only and label not in only:
            continue
        t0 = time.perf_counter()
        r = distill_student(task, teacher, Pipeline.vanilla_kd(student=arch, training=tr), progress=False)
        secs = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            folder = export_student(r, teacher, task, Path(tmp) / "s")
            mb = disk_mb(folder)
        m = held_out_metrics(r.student, encode_fixed(test, r.tokenizer, tr.max_length, ident))
        speed = paired_latency(teacher.model, r.student, seq_len=tr.max_length)
        frac = m["accuracy"] / t_test["accuracy"]
        print(
            f"| {label} | {r.params / 1e6:.2f}M | {t_params / r.params:.1f} | {interval_text(m)} "
            f"| {frac:.3f} | {mb:.1f} | {speed['student_ms']:.2f} ({speed['teacher_ms']:.2f}) | {secs:.0f} |",
            flush=True,
        )
        if frac >= 0.98 and (best is None or r.params < best[0]):
            best = (r.params, label)
    if best:
        print(f"\nsmallest within 2% of the teacher: {best[1]}, {t_params / best[0]:.1f}× fewer parameters")
    else:
        print("\nno student within 2% of the teacher")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="rotten_tomatoes")
    ap.add_argument("--sizes", nargs=3, type=int, default=[8000, 500, 1000], help="train, val, test rows")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--students", nargs="*", default=[], help="labels to run (default: all)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tr = Training(lr=args.lr, epochs=args.epochs, batch_size=32, max_length=args.max_length)
    run(args.task, args.sizes, tr, args.students, Settings.from_env())


if __name__ == "__main__":
    main()
