"""How the proxies rank DisWOT's own CNN space against its *published* distilled accuracies.

    .venv/bin/python -m bench.proxies_published --ground-truth s1-gt-kd.txt [--seeds 0,1,2] [--batch 64]

``--ground-truth``: DisWOT's published CIFAR-100 results for its 64-ResNet space (the file
``exps/s1-gt-kd.txt`` of the official repository, github.com/lliai/DisWOT-CVPR2023; not shipped here): one
line per student, ``<blocks per stage as three digits> <distilled top-1 %>``, e.g. ``135 72.77``.

The proxies need no trained weights in DisWOT's own procedure (its code scores a randomly initialised
ResNet-56/110 teacher against randomly initialised students, on one CIFAR-100 batch), so this runs here
without CIFAR-100: students and teacher are built for 3 × 32 × 32 inputs and 100 classes, and the batch is
``--inputs photos`` (random 32 × 32 crops of scikit-learn's two sample photographs, needs Pillow) or
``gauss`` (N(0, 1) images, as DisWOT's Zen-style procedure), with random labels. ``--init default`` keeps
PyTorch's initialisation; ``gauss`` re-draws conv/linear weights from N(0, 1) as DisWOT's code does. A seed
is the batch, the labels and every network's initialisation. Printed: τ and ρ against the published
accuracy, over all 64 and within 8 bins of 8 neighbours in parameter count (no two students here
have the same size; mean over bins), mean ± sd over seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from bench.cnn_space import ARCHS, build
from bench.proxies_cnn import add_size_mixes, add_term_rank_mean, correlations, print_table, size_bins
from search.proxies import PROXIES, ProxyBatch, ProxyModel, build_proxy

CLASSES = 100


def read_ground_truth(path: Path) -> dict[tuple[int, int, int], float]:
    """``{(b1, b2, b3): accuracy}`` from ``<digits> <accuracy>`` lines; errors name the file and line."""
    out: dict[tuple[int, int, int], float] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[0]) != 3 or not parts[0].isdigit():
            raise SystemExit(f"{path.name}, line {n}: expected '<3 digits> <accuracy>', got {line!r}")
        out[tuple(int(c) for c in parts[0])] = float(parts[1])
    missing = [a for a in ARCHS if a not in out]
    if missing:
        raise SystemExit(f"{path.name}: no accuracy for {len(missing)} students, e.g. {missing[0]}")
    return out


def gauss_init(net: nn.Module) -> nn.Module:
    """DisWOT's ``network_weight_gaussian_init``: conv/linear weights N(0, 1), biases 0, BN affine 1/0."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
    return net


def photos(n: int, gen: torch.Generator) -> Tensor:
    """``n`` random 32 × 32 crops of scikit-learn's sample photographs, standardised per channel."""
    from sklearn.datasets import load_sample_images  # needs Pillow

    imgs = [torch.tensor(np.asarray(i), dtype=torch.float32).permute(2, 0, 1) / 255 for i in
            load_sample_images().images]  # fmt: skip
    crops = []
    for _ in range(n):
        img = imgs[int(torch.randint(len(imgs), (1,), generator=gen))]
        y = int(torch.randint(img.shape[1] - 32, (1,), generator=gen))
        x = int(torch.randint(img.shape[2] - 32, (1,), generator=gen))
        crops.append(img[:, y : y + 32, x : x + 32])
    batch = torch.stack(crops)
    return (batch - batch.mean((0, 2, 3), keepdim=True)) / batch.std((0, 2, 3), keepdim=True)


def make_batch(kind: str, size: int, seed: int) -> ProxyBatch:
    gen = torch.Generator().manual_seed(seed)
    x = photos(size, gen) if kind == "photos" else torch.randn(size, 3, 32, 32, generator=gen)
    return ProxyBatch(labels=torch.randint(CLASSES, (size,), generator=gen), images=x)


def network(depths: tuple[int, int, int], seed: int, init: str) -> ProxyModel:
    net = build(depths, seed, classes=CLASSES, channels=3)
    return ProxyModel.from_torch(gauss_init(net) if init == "gauss" else net, "layer3")


def run(gt_path: Path, seeds: list[int], size: int, kind: str, init: str, teacher_depth: int) -> None:
    torch.set_num_threads(1)
    gt = read_ground_truth(gt_path)
    accs = [gt[a] for a in ARCHS]
    params = [sum(p.numel() for p in build(a, 0, CLASSES, 3).parameters()) for a in ARCHS]
    bins = size_bins(params)
    names = [n for n in PROXIES.names() if n not in ("flops", "body_params")]  # ∝ params here
    results: dict[tuple[str, str], list[tuple[float, ...]]] = {}
    for seed in seeds:
        batch = make_batch(kind, size, seed)
        teacher = network((teacher_depth,) * 3, 100 + seed, init)
        students = [network(a, 1000 + seed, init) for a in ARCHS]
        scores = {name: build_proxy(name, seed).score_all(teacher, students, batch) for name in names}
        add_term_rank_mean(scores)
        add_size_mixes(scores, "params")
        for name, values in scores.items():
            results.setdefault((name, f"random {teacher_depth * 6 + 2}"), []).append(
                correlations(values, accs, bins)
            )
        print(f"seed {seed} done", flush=True)
    print(f"\n### DisWOT's published space: 64 ResNets, CIFAR-100 accuracy from {gt_path.name}\n")
    print(f"inputs {kind}, init {init}, batch {size}, seeds {seeds}; published accuracy "
          f"{min(accs):.2f}–{max(accs):.2f}; {len(bins)} bins of {len(bins[0])} by size\n")  # fmt: skip
    print_table(results, "bins")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ground-truth", type=Path, required=True, help="DisWOT's exps/s1-gt-kd.txt")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--inputs", choices=("photos", "gauss"), default="photos")
    ap.add_argument("--init", choices=("default", "gauss"), default="default")
    ap.add_argument("--teacher-depth", type=int, default=9, help="blocks per stage (9: ResNet-56)")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    run(args.ground_truth, seeds, args.batch, args.inputs, args.init, args.teacher_depth)


if __name__ == "__main__":
    main()
