"""How well zero-cost proxies rank distilled students (DisWOT vs baselines), and how much cheaper they are.

    .venv/bin/python -m bench.proxies [--datasets rotten_tomatoes,bbc_news] [--n-train 1000] [--epochs 2]

16 student architectures in 4 groups of about the same size but different shape (deep-narrow vs
shallow-wide, heads, FFN ratio) are distilled with the same pipeline (vanilla KD) from the fine-tuned MiniLM
teacher; every proxy scores them (with the trained teacher, and with a random one as in the paper); the
table gives Kendall τ and Spearman ρ between score and distilled accuracy over all candidates and within
the equal-size groups (mean over groups), and the time to score all vs to train all.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from scipy.stats import kendalltau, spearmanr

from distill.assets import minilm_dir
from distill.data import load_task
from distill.encoding import encode_fixed
from distill.engine import distill_student
from distill.finetune import FinetuneConfig, finetune_teacher
from distill.pipeline import Pipeline, StudentArch, Training
from distill.teacher_outputs import teacher_outputs
from distill.trainer import evaluate
from search.proxies import PROXIES, ProxyBatch, random_like
from search.student_search import score_candidates
from store.settings import Settings


def _archs(hidden: int, *shapes: tuple[int, int, int]) -> list[StudentArch]:
    return [StudentArch(layers=n, hidden=hidden, heads=h, ffn=f) for n, h, f in shapes]


# Equal parameters within a group (checked below); depth, heads and FFN width differ.
GROUPS: dict[str, list[StudentArch]] = {
    "384-wide ~15.6M": _archs(384, (2, 12, 1536), (3, 12, 768), (4, 12, 384), (2, 6, 1536), (3, 4, 768)),
    "384-wide ~13.8M": _archs(384, (1, 12, 1536), (2, 12, 384), (1, 6, 1536)),
    "256-wide ~9.6M": _archs(256, (2, 8, 1024), (4, 8, 256), (2, 4, 1024), (4, 16, 256)),
    "192-wide ~6.9M": _archs(192, (2, 6, 768), (4, 6, 192), (2, 3, 768), (4, 12, 192)),
}
MAX_LENGTH = {"rotten_tomatoes": 64, "bbc_news": 128}


def correlations(scores: list[float], accs: list[float], groups: list[str]) -> tuple[float, ...]:
    tau, rho = kendalltau(scores, accs)[0], spearmanr(scores, accs)[0]
    within_tau, within_rho = [], []
    for g in dict.fromkeys(groups):
        idx = [i for i, x in enumerate(groups) if x == g]
        s, a = [scores[i] for i in idx], [accs[i] for i in idx]
        if len(set(s)) > 1 and len(set(a)) > 1:
            within_tau.append(kendalltau(s, a)[0])
            within_rho.append(spearmanr(s, a)[0])
    mean = statistics.fmean
    return tau, rho, mean(within_tau) if within_tau else float("nan"), mean(within_rho) if within_rho else 0.0


def run(dataset: str, n_train: int, n_val: int, epochs: int, batch_size: int) -> None:
    settings = Settings.from_env()
    ml = MAX_LENGTH[dataset]
    task = load_task(dataset).subset(n_train, n_val, seed=0)
    teacher = finetune_teacher(minilm_dir(), task, settings.teachers, FinetuneConfig(max_length=ml))
    archs = [a for g in GROUPS.values() for a in g]
    groups = [name for name, g in GROUPS.items() for _ in g]

    enc = encode_fixed(task.train[:batch_size], teacher.tokenizer, ml, torch.arange(task.num_labels))
    length = int(enc.attention_mask.sum(1).max())
    batch = ProxyBatch(
        labels=enc.labels,
        input_ids=enc.input_ids[:, :length],
        attention_mask=enc.attention_mask[:, :length],
        token_type_ids=enc.token_type_ids[:, :length],
    )
    proxies = PROXIES.names()
    scored: dict[str, list[dict]] = {}
    score_s: dict[str, float] = {}
    for mode, t_model in (("trained", teacher.model), ("random", random_like(teacher.model, seed=0))):
        t0 = time.perf_counter()
        scored[mode] = score_candidates(t_model, archs, batch, proxies, seed=0)
        score_s[mode] = time.perf_counter() - t0

    train = encode_fixed(task.train, teacher.tokenizer, ml, torch.arange(task.num_labels))
    outputs = teacher_outputs(teacher, {"input_ids": train.input_ids, "attention_mask": train.attention_mask,
                                        "token_type_ids": train.token_type_ids},
                              cache_dir=settings.teacher_outputs, progress=False)  # fmt: skip
    accs, train_s = [], 0.0
    for i, arch in enumerate(archs):
        pipe = Pipeline.vanilla_kd(student=arch, training=Training(lr=3e-4, epochs=epochs, max_length=ml))
        t0 = time.perf_counter()
        res = distill_student(task, teacher, pipe, outputs=outputs, progress=False, measure_latency=False)
        train_s += time.perf_counter() - t0
        accs.append(res.metrics["accuracy"])
        p = scored["trained"][i]["params"]
        print(f"  {groups[i]:<16} {arch.layers}L×{arch.hidden} h{arch.heads} ffn{arch.ffn:<5} "
              f"{p / 1e6:5.2f}M  acc {accs[-1]:.4f}", flush=True)  # fmt: skip
    for name in GROUPS:
        ps = [r["params"] for r, gg in zip(scored["trained"], groups, strict=True) if gg == name]
        assert max(ps) <= 1.1 * min(ps), f"group {name} is not of equal size: {ps}"

    print(
        f"\n### {dataset}: {len(task.train)}/{len(task.validation)} examples, max_length {ml}, "
        f"{len(archs)} students in {len(GROUPS)} equal-size groups, vanilla KD {epochs} epochs\n"
    )
    val = encode_fixed(task.validation, teacher.tokenizer, ml, torch.arange(task.num_labels))
    t_acc = evaluate(teacher.model, val)["accuracy"]
    print(f"teacher accuracy {t_acc:.4f}; students {min(accs):.4f}–{max(accs):.4f}\n")
    print(
        "| proxy | teacher | τ all | ρ all | τ within groups | ρ within groups |\n|---|---|---|---|---|---|"
    )
    for mode in ("trained", "random"):
        for name in proxies:
            tau, rho, wt, wr = correlations([r[name] for r in scored[mode]], accs, groups)
            print(f"| {name} | {mode} | {tau:+.2f} | {rho:+.2f} | {wt:+.2f} | {wr:+.2f} |")
    per = {m: score_s[m] / len(archs) for m in score_s}
    print(f"\nscoring all {len(archs)} candidates with all {len(proxies)} proxies: "
          f"{score_s['trained']:.1f} s (trained teacher), {score_s['random']:.1f} s (random); "
          f"training them: {train_s:.0f} s → "
          f"{train_s / score_s['trained']:.0f}× cheaper with every proxy, "
          f"{per['trained']:.2f} s per candidate")  # fmt: skip
    t0 = time.perf_counter()
    score_candidates(teacher.model, archs, batch, ["diswot"], seed=0)
    only = time.perf_counter() - t0
    print(
        f"DisWOT alone: {only:.1f} s for all {len(archs)} ({len(archs) / only:.1f} candidates/s) → "
        f"{train_s / only:.0f}× cheaper than training them\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="rotten_tomatoes,bbc_news")
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--n-val", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32, help="examples the proxies see")
    args = ap.parse_args()
    for ds in args.datasets.split(","):
        run(ds, args.n_train, args.n_val, args.epochs, args.batch_size)


if __name__ == "__main__":
    main()
