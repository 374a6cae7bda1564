"""How well zero-cost proxies rank distilled CNN students, with ground truth built here.

    nice -n 10 .venv/bin/python -m bench.proxies_cnn [--seeds 0,1,2] [--batch 64] [--epochs 10]

The space (``bench/cnn_space.py``): 64 CIFAR-style ResNets (blocks per stage in {1,3,5,7}, filters
16/16/32/64) each distilled (Hinton KD, ``--epochs``) from a 9/9/9 ResNet on scikit-learn's digits; the first
run trains and caches them under ``artifacts/bench_cnn/``. Every proxy scores the 64 randomly initialised
students against the trained teacher (and the DisWOT terms against a random teacher too), for each seed
(seed = the proxy batch drawn from the training set and the students' initialisation). Printed: Kendall τ
and Spearman ρ between score and distilled accuracy, over all 64 and within 8 equal-size bins (students
sorted by parameter count, 8 per bin; mean over bins), mean ± sd over seeds; and candidates scored per
second vs the seconds it took to distil them.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from scipy.stats import kendalltau, spearmanr

from bench.cnn_space import ARCHS, TEACHER_DEPTH, build, digits, ground_truth, teacher_model
from search.proxies import PROXIES, ProxyBatch, ProxyModel, build_proxy, ranks

BINS = 8
MIX_WEIGHTS = (0.1, 0.25, 0.75)


def correlations(scores: list[float], accs: list[float], bins: list[list[int]]) -> tuple[float, ...]:
    """τ and ρ over all, and their means within the bins (bins where scores or accuracies are constant
    count as 0)."""
    tau, rho = kendalltau(scores, accs)[0], spearmanr(scores, accs)[0]
    wt, wr = [], []
    for idx in bins:
        s, a = [scores[i] for i in idx], [accs[i] for i in idx]
        constant = len(set(s)) < 2 or len(set(a)) < 2
        wt.append(0.0 if constant else kendalltau(s, a)[0])
        wr.append(0.0 if constant else spearmanr(s, a)[0])
    return tau, rho, statistics.fmean(wt), statistics.fmean(wr)


def size_bins(params: list[int]) -> list[list[int]]:
    """Indices sorted by parameter count (ties: index) cut into ``BINS`` bins of neighbours in size."""
    order = sorted(range(len(params)), key=lambda i: (params[i], i))
    step = len(params) // BINS
    return [order[i : i + step] for i in range(0, len(params), step)]


def add_term_rank_mean(scores: dict[str, list[float]]) -> None:
    """Add the mean of DisWOT's two terms' ranks (our earlier ``diswot``) where both terms were scored."""
    if "diswot_semantic" in scores and "diswot_relation" in scores:
        sem, rel = ranks(scores["diswot_semantic"]), ranks(scores["diswot_relation"])
        scores["mean rank of DisWOT's two terms"] = [(a + b) / 2 for a, b in zip(sem, rel, strict=True)]


def add_size_mixes(scores: dict[str, list[float]], size: str) -> None:
    """Add ``w · rank(diswot) + (1 − w) · rank(size)`` for ``w`` in ``MIX_WEIGHTS``: how much DisWOT adds to
    size (``w`` = ½ is ``diswot_size``; ties broken by DisWOT, as ``size_then_diswot`` does)."""
    if "diswot" in scores and size in scores:
        d, s = ranks(scores["diswot"]), ranks(scores[size])
        for w in MIX_WEIGHTS:
            scores[f"{w:g} · rank(diswot) + {1 - w:g} · rank(size)"] = [
                w * a + (1 - w) * b + 1e-9 * a for a, b in zip(d, s, strict=True)
            ]


def print_table(results: dict[tuple[str, str], list[tuple[float, ...]]], within: str) -> None:
    """One row per (proxy, teacher): τ/ρ overall and within groups, mean ± sd over seeds."""
    print(
        f"| proxy | teacher | τ all | ρ all | τ within {within} | ρ within {within} |\n"
        + "|---|---|---|---|---|---|"
    )
    for (name, mode), rows in results.items():
        cells = []
        for col in zip(*rows, strict=True):
            sd = statistics.pstdev(col) if len(col) > 1 else 0.0
            cells.append(f"{statistics.fmean(col):+.2f} ± {sd:.2f}")
        print(f"| {name} | {mode} | " + " | ".join(cells) + " |")


def proxy_batch(seed: int, size: int) -> ProxyBatch:
    x, y, _, _ = digits()
    idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:size]
    return ProxyBatch(labels=y[idx], images=x[idx])


def score(teacher: torch.nn.Module, names: list[str], seed: int, size: int) -> tuple[dict, float]:
    """Every proxy's population scores (+ the mean rank of DisWOT's two terms), and seconds for diswot."""
    batch = proxy_batch(seed, size)
    t_model = ProxyModel.from_torch(teacher, "layer3")
    students = [ProxyModel.from_torch(build(a, seed=1000 + seed), "layer3") for a in ARCHS]
    out: dict[str, list[float]] = {}
    seconds = 0.0
    for name in names:
        proxy = build_proxy(name, seed)
        t0 = time.perf_counter()
        state = proxy.prepare(t_model, batch)
        terms = [proxy.measure(t_model, s, batch, state) for s in students]
        if name == "diswot":
            seconds = time.perf_counter() - t0
        out[name] = proxy.combine(terms)
    add_term_rank_mean(out)
    return out, seconds


def noise_floor(epochs: int, accs: list[float]) -> None:
    """τ between the ground truth and a second distillation (another seed) of every 4th student."""
    again = ground_truth(epochs, seed=1, archs=ARCHS[::4], log=False)["acc"]
    pairs = [(accs[i], again["-".join(map(str, a))]) for i, a in enumerate(ARCHS) if i % 4 == 0]
    tau, rho = kendalltau(*zip(*pairs, strict=True))[0], spearmanr(*zip(*pairs, strict=True))[0]
    print(f"ground-truth noise floor: distilled again with another seed, {len(pairs)} students agree "
          f"with the first run at τ {tau:+.2f}, ρ {rho:+.2f} (a ceiling for any proxy)\n")  # fmt: skip


def run(seeds: list[int], size: int, epochs: int, floor: bool) -> None:
    torch.set_num_threads(1)
    gt = ground_truth(epochs)
    keys = ["-".join(map(str, a)) for a in ARCHS]
    accs = [gt["acc"][k] for k in keys]
    params = [sum(p.numel() for p in build(a, 0).parameters()) for a in ARCHS]
    bins = size_bins(params)
    names = [n for n in PROXIES.names() if n not in ("flops", "body_params")]  # ∝ params here
    results: dict[tuple[str, str], list[tuple[float, ...]]] = {}
    rate = []
    for seed in seeds:
        for mode in ("trained", "random"):
            teacher = teacher_model() if mode == "trained" else build(TEACHER_DEPTH, seed=100 + seed)
            use = names if mode == "trained" else [n for n in names if n.startswith("diswot")]
            scores, seconds = score(teacher, use, seed, size)
            if mode == "trained":
                rate.append(len(ARCHS) / seconds)
            for name, values in scores.items():
                results.setdefault((name, mode), []).append(correlations(values, accs, bins))
    train_s = sum(gt["seconds"].values())
    print(f"\n### CNN space: {len(ARCHS)} ResNets on digits, KD {epochs} epochs from a 9/9/9 ResNet\n")
    print(f"teacher accuracy {gt['teacher_acc']:.4f}; students {min(accs):.4f}–{max(accs):.4f} "
          f"(mean {statistics.fmean(accs):.4f}); proxy batch {size}; seeds {seeds}; "
          f"{BINS} equal-size bins of {len(ARCHS) // BINS} by parameter count\n")  # fmt: skip
    print_table(results, "bins")
    per_s = statistics.fmean(rate)
    print(f"\nDisWOT scores {per_s:.1f} candidates/s (all 64 in {len(ARCHS) / per_s:.1f} s); distilling "
          f"the 64 "
          f"took {train_s:.0f} s ({train_s * per_s / len(ARCHS):.0f}× longer)\n")  # fmt: skip
    if floor:
        noise_floor(epochs, accs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--batch", type=int, default=64, help="examples the proxies see")
    ap.add_argument("--epochs", type=int, default=10, help="KD epochs of each student (ground truth)")
    ap.add_argument("--noise-floor", action="store_true", help="distil every 4th student again (seed 1)")
    args = ap.parse_args()
    run([int(s) for s in args.seeds.split(",")], args.batch, args.epochs, args.noise_floor)


if __name__ == "__main__":
    main()
