"""The CNN student space with ground truth built here: CIFAR-style ResNets on scikit-learn's digits.

64 students (basic blocks per stage in {1, 3, 5, 7}, filters 16/16/32/64, as in DisWOT's search space) are
each distilled briefly from a deeper ResNet (9/9/9 blocks) trained once; accuracies and the teacher are
cached under ``artifacts/bench_cnn/`` so reruns only score. Imported by ``bench/proxies_cnn.py``.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import Tensor, nn

CACHE = Path("artifacts/bench_cnn")
DEPTHS = (1, 3, 5, 7)
TEACHER_DEPTH = (9, 9, 9)
ARCHS: list[tuple[int, int, int]] = list(itertools.product(DEPTHS, repeat=3))


class Block(nn.Module):
    """Basic residual block: conv3×3-BN-ReLU-conv3×3-BN (+ 1×1 strided projection), ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.short = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.short = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.short(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet: stem 16, stages 16/32/64 (strides 1/2/2), GAP, linear head."""

    def __init__(self, depths: tuple[int, int, int], classes: int = 10, channels: int = 1) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        stages, c_in = [], 16
        for i, (n, c) in enumerate(zip(depths, (16, 32, 64), strict=True)):
            blocks = [Block(c_in if j == 0 else c, c, 2 if (i and j == 0) else 1) for j in range(n)]
            stages.append(nn.Sequential(*blocks))
            c_in = c
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(64, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


N_TRAIN, NOISE = 1200, 0.2


def digits() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train x, train y, test x, test y): 1,200 / 597 digits, 8×8 scaled to [0, 1] plus fixed Gaussian
    noise (σ = 0.2, so the task is not saturated), fixed split."""
    d = load_digits()
    g = torch.Generator().manual_seed(0)
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = x + NOISE * torch.randn(x.shape, generator=g)
    y = torch.tensor(d.target)
    perm = torch.randperm(len(y), generator=g)
    x, y = x[perm], y[perm]
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    model.eval()
    return float((model(x).argmax(1) == y).float().mean())


def train(
    model: nn.Module, x: Tensor, y: Tensor, epochs: int, teacher: nn.Module | None = None, seed: int = 0
) -> None:
    """Adam 3e-3, batch 64, cosine schedule; with a teacher: ½ CE + ½ T²·KL(T = 4) (Hinton KD)."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    steps = epochs * ((len(y) + 63) // 64)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    soft = None
    if teacher is not None:
        teacher.eval()
        with torch.no_grad():
            soft = teacher(x)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(y)).split(64):
            logits = model(x[idx])
            loss = F.cross_entropy(logits, y[idx])
            if soft is not None:
                kl = F.kl_div(
                    F.log_softmax(logits / 4, 1), F.softmax(soft[idx] / 4, 1), reduction="batchmean"
                )
                loss = 0.5 * loss + 0.5 * 16 * kl
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()


def build(depths: tuple[int, int, int], seed: int, classes: int = 10, channels: int = 1) -> ResNet:
    torch.manual_seed(seed)
    return ResNet(depths, classes, channels)


def teacher_model(epochs: int = 30) -> ResNet:
    """The 9/9/9 teacher, trained once and cached."""
    path = CACHE / "teacher.pt"
    model = build(TEACHER_DEPTH, seed=0)
    if path.exists():
        model.load_state_dict(torch.load(path))
        return model.eval()
    x, y, _, _ = digits()
    train(model, x, y, epochs)
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model.eval()


def ground_truth(
    epochs: int = 10, seed: int = 0, archs: list[tuple[int, int, int]] = ARCHS, log: bool = True
) -> dict[str, float | dict]:
    """Distilled test accuracy of every student in ``archs`` (cached), the teacher's, and the training
    seconds; ``seed`` sets the students' initialisation and batch order (seed 0: the ground truth)."""
    path = CACHE / (f"ground_truth_e{epochs}.json" if seed == 0 else f"ground_truth_e{epochs}_s{seed}.json")
    done: dict = json.loads(path.read_text()) if path.exists() else {"acc": {}, "seconds": {}}
    teacher = teacher_model()
    x, y, xt, yt = digits()
    for arch in archs:
        key = "-".join(map(str, arch))
        if key in done["acc"]:
            continue
        model = build(arch, seed=seed)
        t0 = time.perf_counter()
        train(model, x, y, epochs, teacher=teacher, seed=seed)
        done["seconds"][key] = time.perf_counter() - t0
        done["acc"][key] = accuracy(model, xt, yt)
        if log:
            print(f"  {key}: acc {done['acc'][key]:.4f} ({done['seconds'][key]:.1f} s)", flush=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(done, indent=1))
    done["teacher_acc"] = accuracy(teacher, xt, yt)
    return done
