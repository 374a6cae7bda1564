"""Engine measurements: trial overhead vs a bare PyTorch loop, the teacher-output cache, pipeline accuracy.

    .venv/bin/python -m bench.engine [--n-train 2000] [--n-val 500] [--epochs 3]

Prints three tables (recorded in bench/RESULTS.md). Uses the demo's cached Rotten Tomatoes teacher.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from distill.assets import minilm_dir
from distill.data import load_task
from distill.device import AmpPolicy
from distill.encoding import TrainData, encode_fixed
from distill.engine import distill_student
from distill.finetune import FinetuneConfig, finetune_teacher
from distill.pipeline import IntermediateSpec, LogitLossSpec, Pipeline, StudentArch, Training
from distill.student import build_student
from distill.teacher_outputs import teacher_outputs
from distill.trainer import evaluate, train_model
from store.settings import Settings

STUDENT = StudentArch(layers=2, hidden=384, heads=12, ffn=1536)


def bare_loop(
    student, train: TrainData, val: TrainData, tr: Training, teacher_model=None, amp: AmpPolicy | None = None
) -> float:
    """The loop a person would write by hand: AdamW, KL(T=4)+CE, per-epoch accuracy; returns seconds.

    With ``teacher_model`` the teacher runs on every batch instead of reading cached logits. The student and
    ``train`` may be on a GPU; ``amp``: the same mixed precision as the trainer's (``distill.device``).
    """
    amp = amp or AmpPolicy()
    scaler = amp.grad_scaler()
    torch.manual_seed(tr.seed)
    gen = torch.Generator().manual_seed(tr.seed)
    opt = torch.optim.AdamW(student.parameters(), lr=tr.lr, weight_decay=tr.weight_decay)
    t0 = time.perf_counter()
    n = len(train)
    for _ in range(tr.epochs):
        student.train()
        order = torch.randperm(n, generator=gen)
        for s in range(0, n, tr.batch_size):
            idx = order[s : s + tr.batch_size]
            length = int(train.attention_mask[idx].sum(1).max())
            ids, mask = train.input_ids[idx, :length], train.attention_mask[idx, :length]
            if teacher_model is None:
                t_logits = train.teacher.logits[idx]
            else:
                with torch.no_grad():
                    t_logits = teacher_model(input_ids=ids, attention_mask=mask).logits
            with amp.autocast():
                logits = student(input_ids=ids, attention_mask=mask).logits
                kd = F.kl_div(
                    F.log_softmax(logits / 4, -1), F.softmax(t_logits / 4, -1), reduction="batchmean"
                )
                loss = F.cross_entropy(logits, train.labels[idx]) + kd * 16
            opt.zero_grad()
            if scaler is None:
                loss.backward()
                opt.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
        evaluate(student, val)
    if train.input_ids.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-val", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-length", type=int, default=64)
    args = ap.parse_args()
    settings = Settings.from_env()
    task = load_task("rotten_tomatoes").subset(args.n_train, args.n_val, seed=0)
    teacher = finetune_teacher(
        minilm_dir(), task, settings.teachers, FinetuneConfig(max_length=args.max_length)
    )
    tr = Training(lr=1e-4, epochs=args.epochs, batch_size=32, max_length=args.max_length)
    ident = torch.arange(task.num_labels)
    train = encode_fixed(task.train, teacher.tokenizer, args.max_length, ident)
    val = encode_fixed(task.validation, teacher.tokenizer, args.max_length, ident)
    enc = {
        "input_ids": train.input_ids,
        "attention_mask": train.attention_mask,
        "token_type_ids": train.token_type_ids,
    }
    t0 = time.perf_counter()
    train.teacher = teacher_outputs(teacher, enc, progress=False)  # logits only (in memory from here on)
    t_outputs = time.perf_counter() - t0
    teacher_acc = evaluate(teacher.model, val)["accuracy"]

    print(
        f"Rotten Tomatoes {len(task.train)}/{len(task.validation)}, max_length {args.max_length}, "
        f"student {STUDENT.layers}x{STUDENT.hidden}, {args.epochs} epochs, "
        f"{torch.get_num_threads()} threads\n"
    )

    # 1. trial overhead: our trainer vs the bare loop, same student, same data, cached teacher logits
    pipe = Pipeline.vanilla_kd(student=STUDENT, training=tr)
    s1, _ = build_student(STUDENT, teacher.model)
    t_ours = train_model(s1, train, val, pipe, progress=False).seconds
    s2, _ = build_student(STUDENT, teacher.model)
    t_bare = bare_loop(s2, train, val, tr)
    print("| measure | seconds |\n|---|---|")
    print(f"| our trainer (vanilla KD, cached logits) | {t_ours:.1f} |")
    print(f"| bare PyTorch loop (same work) | {t_bare:.1f} |")
    print(f"| **overhead ratio** | **{t_ours / t_bare:.3f}** |\n")

    # 2. the teacher-output cache
    s3, _ = build_student(STUDENT, teacher.model)
    t_fwd = bare_loop(s3, train, val, tr, teacher_model=teacher.model.eval())
    print("| teacher outputs | trial seconds |\n|---|---|")
    print(f"| computed once for the dataset (a one-off, shared by all trials) | {t_outputs:.1f} |")
    print(f"| read from the cache | {t_bare:.1f} |")
    print(f"| teacher forward every step | {t_fwd:.1f} |")
    print(f"| **speed-up per trial** | **{t_fwd / t_bare:.2f}×** |\n")

    # 3. accuracy of a few pipelines
    pipes = {
        "no KD (CE only)": Pipeline.no_kd(student=STUDENT, training=tr),
        "KL (T=4)": Pipeline.vanilla_kd(student=STUDENT, training=tr),
        "KL + hidden MSE (skip)": Pipeline(
            student=STUDENT, training=tr, intermediate=IntermediateSpec(name="hidden_mse", weight=1.0)
        ),
        "KL + MI-α (α=0.5, skip)": Pipeline(
            student=STUDENT,
            training=tr,
            intermediate=IntermediateSpec(name="mi_alpha", alpha=0.5, weight=0.1),
        ),
        "PLD": Pipeline(student=STUDENT, training=tr, loss=LogitLossSpec(name="pld", temperature=4.0)),
    }
    print(
        f"| pipeline | val accuracy | macro-F1 | trial seconds |\n|---|---|---|---|\n"
        f"| teacher (MiniLM-L6, fine-tuned) | {teacher_acc:.4f} | | |"
    )
    for name, p in pipes.items():
        t0 = time.perf_counter()
        r = distill_student(
            task, teacher, p, cache_dir=settings.teacher_outputs, progress=False, measure_latency=False
        )
        m = r.metrics
        print(
            f"| {name} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {time.perf_counter() - t0:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
