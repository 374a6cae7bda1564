"""How well zero-cost proxies rank distilled text students (DisWOT vs baselines), and how much cheaper.

    nice -n 10 .venv/bin/python -m bench.proxies [--datasets rotten_tomatoes] [--n-train 1000] [--epochs 3]
                                                 [--seeds 0,1,2] [--space tiny|wide] [--lr 1e-3]
                                                 [--n-val 300] [--gt-seeds 0,1,2] [--noise-floor]

24 student architectures (``--space``: tiny, 64–128 wide, or wide, 192–384) in 6 groups of 4 of the same
size but different shape (deep-narrow vs shallow-wide,
heads, FFN ratio) are distilled with the same pipeline (vanilla KD) from the fine-tuned MiniLM teacher; each
group's accuracy is printed against the majority-class baseline (a group stuck there would make its τ
meaningless). Every proxy scores them for each seed (the proxy batch and the students' initialisation),
with the trained teacher and a random one; the table gives Kendall τ and Spearman ρ between score and
distilled accuracy over all and within the equal-size groups (mean over groups), mean ± sd over seeds, and
the time to score all vs to train all. ``--gt-seeds``: the ground truth is the mean accuracy over several
training seeds (``--noise-floor`` prints how far one seed agrees with the others).
The CNN space is ``bench/proxies_cnn.py``.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import time
from pathlib import Path

import torch

from bench.proxies_cnn import add_size_mixes, correlations, print_table
from distill.assets import minilm_dir
from distill.data import load_task
from distill.encoding import encode_fixed
from distill.engine import distill_student
from distill.finetune import FinetuneConfig, finetune_teacher
from distill.pipeline import Pipeline, StudentArch, Training
from distill.student import estimate_params
from distill.teacher_outputs import teacher_outputs
from distill.trainer import evaluate
from search.proxies import PROXIES, ProxyBatch, random_like
from search.proxy_scoring import score_candidates
from store.settings import Settings


def _archs(hidden: int, *shapes: tuple[int, int, int]) -> list[StudentArch]:
    return [StudentArch(layers=n, hidden=hidden, heads=h, ffn=f) for n, h, f in shapes]


# Equal parameters within a group (checked below); depth, heads and FFN width differ.
WIDE: dict[str, list[StudentArch]] = {
    "384 ~15.6M": _archs(384, (2, 12, 1536), (3, 12, 768), (4, 12, 384), (2, 6, 1536)),
    "384 ~15.0M": _archs(384, (1, 12, 3072), (2, 12, 1152), (1, 6, 3072), (2, 4, 1152)),
    "384 ~13.8M": _archs(384, (1, 12, 1536), (2, 12, 384), (1, 6, 1536), (1, 4, 1536)),
    "256 ~10.4M": _archs(256, (3, 8, 1024), (6, 8, 256), (3, 4, 1024), (6, 16, 256)),
    "256 ~9.6M": _archs(256, (2, 8, 1024), (4, 8, 256), (2, 4, 1024), (4, 16, 256)),
    "192 ~6.9M": _archs(192, (2, 6, 768), (4, 6, 192), (2, 3, 768), (4, 12, 192)),
}
# Tiny students (64–128 wide, 1–4 layers; embeddings projected from the teacher's): cheap enough to distil
# all 24 on two shared cores.
TINY: dict[str, list[StudentArch]] = {
    "128 B": _archs(128, (2, 4, 512), (3, 4, 256), (4, 4, 128), (2, 8, 512)),
    "128 A": _archs(128, (1, 4, 512), (2, 4, 128), (1, 8, 512), (2, 2, 128)),
    "96 B": _archs(96, (2, 4, 384), (3, 4, 192), (4, 4, 96), (2, 6, 384)),
    "96 A": _archs(96, (1, 4, 384), (2, 4, 96), (1, 2, 384), (2, 6, 96)),
    "64 B": _archs(64, (2, 4, 256), (3, 4, 128), (4, 4, 64), (2, 2, 256)),
    "64 A": _archs(64, (1, 4, 256), (2, 4, 64), (1, 2, 256), (2, 8, 64)),
}
SPACES = {"wide": WIDE, "tiny": TINY}
MAX_LENGTH = {"rotten_tomatoes": 64, "bbc_news": 128}


def distilled(
    task, teacher, archs, ml: int, epochs: int, lr: float, settings: Settings, seed: int = 0
) -> tuple[list[float], float]:
    """Validation accuracy of every arch distilled with vanilla KD (cached as JSON), and training seconds
    (``seed``: the students' initialisation and batch order; 0 is the ground truth)."""
    tag = f"{task.name}-{len(task.train)}-e{epochs}-lr{lr:g}" + (f"-s{seed}" if seed else "")
    path = Path("artifacts/bench_text") / f"{tag}.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    train = encode_fixed(task.train, teacher.tokenizer, ml, torch.arange(task.num_labels))
    outputs = teacher_outputs(teacher, {"input_ids": train.input_ids, "attention_mask": train.attention_mask,
                                        "token_type_ids": train.token_type_ids},
                              cache_dir=settings.teacher_outputs, progress=False)  # fmt: skip
    for arch in archs:
        key = arch.model_dump_json()
        if key in done:
            continue
        training = Training(lr=lr, epochs=epochs, max_length=ml, seed=seed)
        pipe = Pipeline.vanilla_kd(student=arch, training=training)
        t0 = time.perf_counter()
        res = distill_student(task, teacher, pipe, outputs=outputs, progress=False, measure_latency=False)
        done[key] = (res.metrics["accuracy"], time.perf_counter() - t0)
        print(
            f"  {arch.layers}L×{arch.hidden} h{arch.heads} ffn{arch.ffn:<5} acc {done[key][0]:.4f}",
            flush=True,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(done))
    return [done[a.model_dump_json()][0] for a in archs], sum(done[a.model_dump_json()][1] for a in archs)


def proxy_batch(task, teacher, ml: int, size: int, seed: int) -> ProxyBatch:
    idx = torch.randperm(len(task.train), generator=torch.Generator().manual_seed(seed))[:size].tolist()
    enc = encode_fixed([task.train[i] for i in idx], teacher.tokenizer, ml, torch.arange(task.num_labels))
    n = int(enc.attention_mask.sum(1).max())
    ids, mask, types = enc.input_ids[:, :n], enc.attention_mask[:, :n], enc.token_type_ids[:, :n]
    return ProxyBatch(labels=enc.labels, input_ids=ids, attention_mask=mask, token_type_ids=types)


def run(dataset: str, args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    n_train, n_val, epochs, batch_size = args.n_train, args.n_val, args.epochs, args.batch_size
    seeds = [int(x) for x in args.seeds.split(",")]
    groups_def = SPACES[args.space]
    settings = Settings.from_env()
    ml = MAX_LENGTH[dataset]
    task = load_task(dataset).subset(n_train, n_val, seed=0)
    teacher = finetune_teacher(minilm_dir(), task, settings.teachers, FinetuneConfig(max_length=ml))
    archs = [a for g in groups_def.values() for a in g]
    groups = [name for name, g in groups_def.items() for _ in g]
    gt_seeds = [int(x) for x in args.gt_seeds.split(",")]
    runs = [distilled(task, teacher, archs, ml, epochs, args.lr, settings, seed=s) for s in gt_seeds]
    accs = mean_accuracies([r[0] for r in runs])
    train_s = runs[0][1]
    val = encode_fixed(task.validation, teacher.tokenizer, ml, torch.arange(task.num_labels))
    majority = max(collections.Counter(val.labels.tolist()).values()) / len(val.labels)
    print(f"\n### {dataset}: {len(task.train)}/{len(task.validation)} examples, max_length {ml}, "
          f"{len(archs)} students in {len(groups_def)} equal-size groups ({args.space}), vanilla KD "
          f"{epochs} epochs at lr {args.lr:g}, proxy seeds {seeds}, accuracy = mean over training seeds "
          f"{gt_seeds}\n")  # fmt: skip
    print(f"teacher accuracy {evaluate(teacher.model, val)['accuracy']:.4f}; majority class {majority:.4f}\n")
    print("| group | params | accuracies | mean |\n|---|---|---|---|")
    bins = []
    for name in groups_def:
        idx = [i for i, g in enumerate(groups) if g == name]
        bins.append(idx)
        ps = [estimate_params(archs[i], teacher.model) for i in idx]
        assert max(ps) <= 1.01 * min(ps), f"group {name} is not of equal size: {ps}"
        a = [accs[i] for i in idx]
        print(
            f"| {name} | {min(ps) / 1e6:.2f}M | {', '.join(f'{x:.3f}' for x in a)} "
            f"| {statistics.fmean(a):.3f} |"
        )
    proxies = [n for n in PROXIES.names() if n != "flops"]
    results: dict[tuple[str, str], list[tuple[float, ...]]] = {}
    score_s = 0.0
    for seed in seeds:
        batch = proxy_batch(task, teacher, ml, batch_size, seed)
        for mode, t_model in (("trained", teacher.model), ("random", random_like(teacher.model, seed=seed))):
            t0 = time.perf_counter()
            rows = score_candidates(t_model, archs, batch, proxies, seed=seed)
            score_s += time.perf_counter() - t0
            scores = {name: [r[name] for r in rows] for name in proxies}  # with DisWOT's two terms
            add_size_mixes(scores, "body_params")
            for name, values in scores.items():
                results.setdefault((name, mode), []).append(correlations(values, accs, bins))
    print()
    print_table(results, "groups")
    passes = 2 * len(seeds)
    rate = len(archs) * passes / score_s
    print(f"\nscoring all {len(archs)} with all {len(proxies)} proxies: {score_s / passes:.1f} s "
          f"({rate:.1f} candidates/s); training them once: {train_s:.0f} s\n")  # fmt: skip
    if args.noise_floor:
        if len(runs) == 1:
            runs.append(distilled(task, teacher, archs, ml, epochs, args.lr, settings, seed=1))
        print_noise_floor(runs, bins)


def mean_accuracies(runs: list[list[float]]) -> list[float]:
    """Each student's accuracy averaged over training runs (one list per run, the students in order)."""
    return [statistics.fmean(col) for col in zip(*runs, strict=True)]


def print_noise_floor(runs: list[tuple[list[float], float]], bins: list[list[int]]) -> None:
    """How far the ground truth itself reproduces: each training seed's accuracies against the mean of the
    others' (mean over seeds), overall and within groups. A proxy cannot be measured much above this."""
    rows = []
    for k, (accs, _) in enumerate(runs):
        rest = mean_accuracies([r[0] for j, r in enumerate(runs) if j != k])
        rows.append(correlations(accs, rest, bins))
    tau, rho, w_tau, w_rho = (statistics.fmean(c) for c in zip(*rows, strict=True))
    print(
        f"ground-truth noise floor: one training seed against the mean of the other {len(runs) - 1}: "
        f"τ {tau:+.2f} (ρ {rho:+.2f}) overall, {w_tau:+.2f} ({w_rho:+.2f}) within groups\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="rotten_tomatoes")
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--n-val", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--space", choices=sorted(SPACES), default="tiny", help="the student groups")
    ap.add_argument("--lr", type=float, default=1e-3, help="students' learning rate")
    ap.add_argument("--batch-size", type=int, default=32, help="examples the proxies see")
    ap.add_argument("--gt-seeds", default="0", help="training seeds; the ground truth is their mean accuracy")
    ap.add_argument("--noise-floor", action="store_true", help="one seed vs the rest")
    args = ap.parse_args()
    for ds in args.datasets.split(","):
        run(ds, args)


if __name__ == "__main__":
    main()
