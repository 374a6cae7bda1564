"""Each seed-paper method against vanilla KD: same student, lr and seeds, held-out test accuracy.

    nice -n 10 .venv/bin/python -m bench.methods [--tasks rotten_tomatoes bbc_news] [--seeds 0 1 2]
        [--sizes TRAIN VAL TEST] [--teacher-rows N] [--methods LABEL ...] [--lr 3e-4] [--epochs 3]
        [--mlm FOLDER]

``--mlm``: a masked LM folder (``{task}`` in it is replaced by the task's name; ``bench.mlm_head`` builds
one per task) enables the contextual-augmentation method. The multi-teacher methods add a second teacher:
MiniLM fine-tuned on the same rows as the first with fine-tuning seed 1 (built only when such a method is
selected; its test accuracy is printed).

Per task: a stratified, disjoint train / validation / test split of all labelled rows (the project's tasks
only have train + validation, so the bench holds out its own test set); a MiniLM teacher fine-tuned on the
train split, or on ``--teacher-rows`` rows that include it (cached under $AUTODISTILLER_HOME); one student
trained per method and seed with ``distill_student`` (vanilla KD always, the others as ``--methods``
says). Prints, per task, each method's test accuracy (mean over seeds) with a 95% bootstrap interval over
test examples, and the paired difference to vanilla KD with its interval (resampling the same test
examples for both methods, correctness averaged over seeds).
"""

from __future__ import annotations

import argparse
import random
import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch

from distill.assets import minilm_dir
from distill.data import TextTask, load_task
from distill.encoding import encode_fixed
from distill.engine import distill_student
from distill.finetune import FinetuneConfig, finetune_teacher
from distill.pipeline import (
    Augmentation,
    IntermediateSpec,
    LogitLossSpec,
    Pipeline,
    StudentArch,
    TeacherMix,
    Training,
    progressive_stages,
)
from distill.tables import Example
from store.settings import Settings

STUDENT = StudentArch(layers=2, hidden=384, heads=12, ffn=1536)
KD = "KD (KL, T=4)"


CONTEXTUAL = "KD + contextual aug (p=0.15, 1 copy)"


def methods(tr: Training, mlm: str | None = None) -> dict[str, Pipeline]:
    """Vanilla KD first; every other entry changes one thing of it (contextual augmentation only with a
    masked LM ``mlm``)."""
    kd = Pipeline.vanilla_kd(student=STUDENT, training=tr)

    def loss(name: str, **params: float) -> Pipeline:
        return kd.model_copy(update={"loss": LogitLossSpec(name=name, temperature=4.0, params=params)})

    def inter(name: str, mapping: str = "skip", weight: float = 1.0, **params: float) -> Pipeline:
        spec = IntermediateSpec(name=name, mapping=mapping, weight=weight, params=params)
        return kd.model_copy(update={"intermediate": spec})

    return {
        KD: kd,
        "no KD (CE only)": Pipeline.no_kd(student=STUDENT, training=tr),
        "DAC-KL": loss("dac_kl"),
        "Dual-Head KD": loss("dual_head"),
        "SinKD per-sample": loss("sinkhorn"),
        "SinKD batch-wise": loss("sinkhorn_batch"),
        "KD + hidden CE (skip)": inter("hidden_ce"),
        "KD + LELP (last)": inter("lelp", mapping="last"),
        "KD + ND class means (last)": inter("nd", mapping="last", class_means=1.0),
        "KD + hidden MSE (skip)": inter("hidden_mse"),
        "Progressive 1+1+1, hidden MSE (skip)": inter("hidden_mse").model_copy(
            update={"training": tr.model_copy(update={"stages": progressive_stages(1, 1, tr.epochs - 2)})}
        ),
        "Multi-teacher fixed [1, 1]": kd.model_copy(update={"teachers": TeacherMix(weights=[1, 1])}),
        "Multi-teacher confidence [1, 1]": kd.model_copy(
            update={"teachers": TeacherMix(weights=[1, 1], mode="confidence")}
        ),
        # the augmentation's control: one augmented copy doubles the optimizer steps; so does this
        "KD, 2x epochs (steps of 1 aug copy)": kd.model_copy(
            update={"training": tr.model_copy(update={"epochs": 2 * tr.epochs})}
        ),
    } | ({CONTEXTUAL: kd.model_copy(update={"augmentation": augmentation(mlm)})} if mlm else {})


def augmentation(mlm: str) -> Augmentation:
    """Contextual augmentation: one augmented copy, each word replaced with probability 0.15."""
    return Augmentation(ops=["contextual"], p=0.15, copies=1, mlm=mlm)


def three_way_split(task: TextTask, sizes: Sequence[int], seed: int = 0) -> tuple[list[Example], ...]:
    """Stratified, disjoint ``sizes = (train, val, test)`` samples of all the task's labelled rows."""
    rng = random.Random(seed)
    by_label: dict[int, list[Example]] = defaultdict(list)
    for ex in [*task.train, *task.validation]:
        by_label[ex.label].append(ex)
    total = sum(len(v) for v in by_label.values())
    parts: list[list[Example]] = [[] for _ in sizes]
    for rows in by_label.values():
        rng.shuffle(rows)
        start = 0
        for part, n in zip(parts, sizes, strict=True):
            take = round(n * len(rows) / total)
            part.extend(rows[start : start + take])
            start += take
    for part in parts:
        rng.shuffle(part)
    return tuple(parts)


@torch.no_grad()
def correct(model, data) -> np.ndarray:
    """0/1 correctness per example of ``data`` (encoded)."""
    model.eval()
    logits = model(
        input_ids=data.input_ids, attention_mask=data.attention_mask, token_type_ids=data.token_type_ids
    ).logits
    return (logits.argmax(-1) == data.labels).numpy().astype(float)


def boot(x: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of ``x`` (resampling its entries)."""
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n, len(x)))].mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def run_task(
    name: str,
    sizes: Sequence[int],
    teacher_rows: int,
    seeds: Sequence[int],
    tr: Training,
    settings: Settings,
    only: Sequence[str] = (),
    mlm: str = "",
) -> None:
    """``teacher_rows`` ≥ ``sizes[0]``: the teacher is fine-tuned on that many rows, the students are
    distilled on the first ``sizes[0]`` of them (the transfer set is part of the teacher's training data)."""
    full = load_task(name)
    teacher_train, val, test = three_way_split(full, [max(teacher_rows, sizes[0]), *sizes[1:]])
    teacher = finetune_teacher(
        minilm_dir(),
        TextTask(full.name, full.labels, teacher_train, val),
        settings.teachers,
        FinetuneConfig(max_length=tr.max_length),
    )
    train = teacher_train[: sizes[0]]
    task = TextTask(full.name, full.labels, train, val)
    ident = torch.arange(task.num_labels)
    test_enc = encode_fixed(test, teacher.tokenizer, tr.max_length, ident)
    t_correct = correct(teacher.model, test_enc)
    print(
        f"\n### {name}: train {len(train)} (teacher {len(teacher_train)}) / val {len(val)} / "
        f"test {len(test)}, {task.num_labels} classes, "
        f"student {STUDENT.layers}x{STUDENT.hidden}, lr {tr.lr}, {tr.epochs} epochs, seeds {list(seeds)}\n"
    )
    print(f"Teacher (MiniLM-L6 fine-tuned) test accuracy {t_correct.mean():.4f}\n")
    all_methods = methods(tr, mlm.replace("{task}", name) if mlm else None)
    chosen = {k: v for k, v in all_methods.items() if k == KD or not only or k in only}
    extra = []
    if any(p.teachers for p in chosen.values()):
        second = finetune_teacher(
            minilm_dir(),
            TextTask(full.name, full.labels, teacher_train, val),
            settings.teachers,
            FinetuneConfig(max_length=tr.max_length, seed=1),
        )
        s_correct = correct(second.model, test_enc)
        agree = (t_correct == s_correct).mean()
        print(
            f"Second teacher (MiniLM-L6 fine-tuned on the same rows, seed 1) test accuracy "
            f"{s_correct.mean():.4f}; both right or both wrong on {agree:.3f} of the test rows\n"
        )
        extra = [second]
    print("| method | test acc (mean of seeds) | 95% CI | per seed | Δ vs KD | Δ 95% CI | s/run |")
    print("|---|---|---|---|---|---|---|")
    results: dict[str, np.ndarray] = {}
    for label, pipe in chosen.items():
        rows, secs = [], 0.0
        for seed in seeds:
            p = pipe.model_copy(update={"training": pipe.training.model_copy(update={"seed": seed})})
            t0 = time.perf_counter()
            more = extra if p.teachers else []
            r = distill_student(task, teacher, p, progress=False, measure_latency=False, extra_teachers=more)
            secs += time.perf_counter() - t0
            rows.append(correct(r.student, test_enc))
        results[label] = c = np.mean(rows, axis=0)
        lo, hi = boot(c)
        per_seed = " ".join(f"{x.mean():.3f}" for x in rows)
        delta = c - results[KD]
        dlo, dhi = boot(delta)
        print(
            f"| {label} | {c.mean():.4f} | [{lo:.3f}, {hi:.3f}] | {per_seed} | {delta.mean():+.4f} "
            f"| [{dlo:+.3f}, {dhi:+.3f}] | {secs / len(seeds):.0f} |",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", nargs="+", default=["rotten_tomatoes", "bbc_news"])
    ap.add_argument("--sizes", nargs=3, type=int, default=[800, 200, 600], help="train, val, test rows")
    ap.add_argument("--teacher-rows", type=int, default=0, help="teacher's train rows (default: train)")
    ap.add_argument("--methods", nargs="*", default=[], help="method labels to run (KD always runs)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mlm", default="", help="masked LM folder ({task}: the task) for contextual aug")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tr = Training(lr=args.lr, epochs=args.epochs, batch_size=32, max_length=args.max_length)
    for name in args.tasks:
        run_task(
            name, args.sizes, args.teacher_rows, args.seeds, tr, Settings.from_env(), args.methods, args.mlm
        )


if __name__ == "__main__":
    main()
