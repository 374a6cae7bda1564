"""Every proxy's definition against a hand computation on a tiny network (loops, no proxy code)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from search.proxies import ProxyBatch, ProxyModel, build_proxy, ranks

pytestmark = pytest.mark.usefixtures("one_thread")
B, K = 4, 3
LABELS = torch.tensor([0, 1, 2, 1])


class Tiny(nn.Module):
    """1×1 conv (1 → 2 channels, no bias), BatchNorm (train mode: batch statistics), GAP, linear 2 → 3."""

    def __init__(self, seed: int, bn: bool = True) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(1, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(2) if bn else nn.Identity()
        self.fc = nn.Linear(2, K, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.bn(self.conv(x)).mean((2, 3)))


def images() -> Tensor:
    return torch.randn(B, 1, 2, 2, generator=torch.Generator().manual_seed(0)).double()


def by_hand(net: Tiny, x: Tensor) -> dict[str, list]:
    """Feature map, logits and gradients written out element by element (float64 lists)."""
    bn = isinstance(net.bn, nn.BatchNorm2d)
    w, fc = net.conv.weight.detach().double().flatten().tolist(), net.fc.weight.detach().double().tolist()
    gamma, beta = (
        (net.bn.weight.detach().double().tolist(), net.bn.bias.detach().double().tolist())
        if bn
        else ([1.0] * 2, [0.0] * 2)
    )
    pix = [[x[b, 0].flatten().tolist()[s] for s in range(4)] for b in range(B)]
    feats = [[[0.0] * 4 for _ in range(2)] for _ in range(B)]
    for c in range(2):
        conv = [[w[c] * pix[b][s] for s in range(4)] for b in range(B)]
        vals = [v for row in conv for v in row]
        mean = sum(vals) / len(vals)
        var = sum((v - mean) ** 2 for v in vals) / len(vals)
        for b in range(B):
            for s in range(4):
                norm = (conv[b][s] - mean) / math.sqrt(var + 1e-5) if bn else conv[b][s]
                feats[b][c][s] = gamma[c] * norm + beta[c]
    pooled = [[sum(feats[b][c]) / 4 for c in range(2)] for b in range(B)]
    logits = [[sum(fc[k][c] * pooled[b][c] for c in range(2)) for k in range(K)] for b in range(B)]
    dlogits = []
    for b in range(B):
        z = [math.exp(v) for v in logits[b]]
        dlogits.append([z[k] / sum(z) - float(k == int(LABELS[b])) for k in range(K)])
    dlogits = [[v / B for v in row] for row in dlogits]  # mean cross-entropy
    g_fc = [[sum(dlogits[b][k] * pooled[b][c] for b in range(B)) for c in range(2)] for k in range(K)]
    # without BN: dL/dF_bcs = Σ_k dL/dlogit_bk · W_kc / 4 and dL/dw_c = Σ_bs dL/dF_bcs · x_bs
    dfeat = [[sum(dlogits[b][k] * fc[k][c] for k in range(K)) / 4 for c in range(2)] for b in range(B)]
    g_w = [sum(dfeat[b][c] * pix[b][s] for b in range(B) for s in range(4)) for c in range(2)]
    return {"feats": feats, "logits": logits, "dlogits": dlogits, "g_fc": g_fc, "fc": fc, "w": w,
            "dfeat": dfeat, "g_w": g_w}  # fmt: skip


def normalised_rows(m: list[list[float]]) -> list[list[float]]:
    out = []
    for row in m:
        n = math.sqrt(sum(v * v for v in row))
        out.append([v / n if n > 0 else 0.0 for v in row])
    return out


def sq_dist(a: list[list[float]], b: list[list[float]]) -> float:
    return sum((x - y) ** 2 for ra, rb in zip(a, b, strict=True) for x, y in zip(ra, rb, strict=True))


def model(seed: int, bn: bool = True) -> tuple[Tiny, ProxyModel]:
    net = Tiny(seed, bn).double()
    return net, ProxyModel.from_torch(net, features="bn")


@pytest.fixture(scope="module")
def batch() -> ProxyBatch:
    return ProxyBatch(labels=LABELS, images=images())


def test_semantic_term_is_the_classifier_gradient_gram_distance(batch: ProxyBatch) -> None:
    (tn, teacher), (sn, student) = model(1), model(2)
    gt, gs = by_hand(tn, images())["g_fc"], by_hand(sn, images())["g_fc"]
    dist = 0.0
    for k in range(K):
        outer_t = [[gt[k][i] * gt[k][j] for j in range(2)] for i in range(2)]
        outer_s = [[gs[k][i] * gs[k][j] for j in range(2)] for i in range(2)]
        dist += sq_dist(normalised_rows(outer_s), normalised_rows(outer_t))
    expected = -dist / (2 * K)
    assert build_proxy("diswot_semantic")(teacher, student, batch) == pytest.approx(expected, rel=1e-9)
    assert build_proxy("diswot_semantic")(teacher, teacher, batch) == 0.0


def test_relation_term_is_the_flattened_map_batch_gram_distance_in_train_mode(batch: ProxyBatch) -> None:
    (tn, teacher), (sn, student) = model(1), model(2)
    grams = []
    for net in (tn, sn):
        flat = [[v for c in range(2) for v in f[c]] for f in by_hand(net, images())["feats"]]
        grams.append(
            normalised_rows([[sum(p * q for p, q in zip(a, b, strict=True)) for b in flat] for a in flat])
        )
    expected = -sq_dist(grams[1], grams[0]) / B**2
    assert build_proxy("diswot_relation")(teacher, student, batch) == pytest.approx(expected, rel=1e-9)


def test_diswot_is_the_papers_sum_of_both_terms_alone_or_in_a_population(batch: ProxyBatch) -> None:
    teacher = model(1)[1]
    students = [model(s)[1] for s in (2, 3, 4, 5)]
    sem = build_proxy("diswot_semantic").score_all(teacher, students, batch)
    rel = build_proxy("diswot_relation").score_all(teacher, students, batch)
    expected = [s + r for s, r in zip(sem, rel, strict=True)]
    assert build_proxy("diswot").score_all(teacher, students, batch) == pytest.approx(expected, rel=1e-12)
    assert build_proxy("diswot")(teacher, students[0], batch) == pytest.approx(expected[0], rel=1e-12)
    assert len(set(expected)) > 1


def test_diswot_size_is_the_mean_of_the_diswot_and_body_size_ranks(batch: ProxyBatch) -> None:
    teacher = model(1)[1]
    students = [model(s)[1] for s in (2, 3, 4, 5)]
    diswot = build_proxy("diswot").score_all(teacher, students, batch)
    body = 2 + 2 * 2 + 2 * K  # conv 1→2 (2), BN γ and β (2 × 2), fc 2→3 (6): all the same size
    assert build_proxy("body_params").score_all(teacher, students, batch) == [float(body)] * 4
    scores = build_proxy("diswot_size").score_all(teacher, students, batch)
    d = 1e-6  # equal sizes: the order is DisWOT's
    expected = [(1 - d) * (r + 0.5) / 2 + d * r for r in ranks(diswot)]
    assert scores == pytest.approx(expected, rel=0, abs=1e-12)
    proxy = build_proxy("diswot_size")
    three = proxy.combine(
        [
            {"diswot_semantic": a, "diswot_relation": 0.0, "diswot": a, "body_params": p}
            for a, p in ((-1.0, 10), (-2.0, 30), (-3.0, 20))
        ]
    )  # DisWOT ranks 1, ½, 0; size ranks 0, 1, ½: means ½, ¾, ¼
    assert three == pytest.approx([0.5, 0.75, 0.25], abs=1e-5) and three[1] > three[0] > three[2]
    tied = proxy.combine(
        [
            {"diswot_semantic": a, "diswot_relation": 0.0, "diswot": a, "body_params": p}
            for a, p in ((-1.0, 10), (-2.0, 20))
        ]
    )  # both means ½: the DisWOT score breaks the tie
    assert tied[0] > tied[1]
    assert build_proxy("diswot_size")(teacher, students[0], batch) == pytest.approx(diswot[0], rel=1e-12)
    assert ranks([3.0, 1.0, 2.0, 2.0]) == [1.0, 0.0, 0.5, 0.5] and ranks([7.0]) == [0.5]


def test_size_then_diswot_orders_by_body_size_then_by_diswot(batch: ProxyBatch) -> None:
    proxy = build_proxy("size_then_diswot")
    rows = [
        {"diswot_semantic": a, "diswot_relation": 0.0, "diswot": a, "body_params": p}
        for a, p in ((-1.0, 10), (-3.0, 30), (-2.0, 20), (-0.5, 20), (float("nan"), 20), (-1.0, 10))
    ]  # keys (10, −1) ×2 < (20, NaN→−∞) < (20, −2) < (20, −0.5) < (30, −3); ranks 1.5, 6, 4, 5, 3, 1.5 of 6
    assert proxy.combine(rows) == pytest.approx([0.1, 1.0, 0.6, 0.8, 0.4, 0.1])
    teacher = model(1)[1]
    students = [model(s)[1] for s in (2, 3, 4, 5)]  # all the same body size: DisWOT's order
    diswot = build_proxy("diswot").score_all(teacher, students, batch)
    assert proxy.score_all(teacher, students, batch) == pytest.approx(ranks(diswot))
    assert proxy(teacher, students[0], batch) == pytest.approx(diswot[0], rel=1e-12)


def test_gradient_proxies_use_conv_and_linear_weights_only(batch: ProxyBatch) -> None:
    net, student = model(2, bn=False)
    h = by_hand(net, images())
    pairs = [(w, g) for rw, rg in zip(h["fc"], h["g_fc"], strict=True) for w, g in zip(rw, rg, strict=True)]
    pairs_conv = list(zip(h["w"], h["g_w"], strict=True))
    norm = math.sqrt(sum(g * g for _, g in pairs)) + math.sqrt(sum(g * g for _, g in pairs_conv))
    snip = sum(abs(w * g) for w, g in pairs + pairs_conv)
    assert build_proxy("grad_norm")(student, student, batch) == pytest.approx(norm, rel=1e-6)
    assert build_proxy("snip")(student, student, batch) == pytest.approx(snip, rel=1e-6)


def test_fisher_sums_every_conv_and_linear_output(batch: ProxyBatch) -> None:
    net, student = model(2, bn=False)
    h = by_hand(net, images())
    # linear output: a = logits, g = dL/dlogits, no positions
    fc_term = 0.5 * sum(
        sum((h["logits"][b][k] * h["dlogits"][b][k]) ** 2 for b in range(B)) / B for k in range(K)
    )
    # conv output: a = the map, g = dL/dF (the same for the 4 pixels), summed over pixels per (b, c)
    conv = [[sum(h["feats"][b][c]) * h["dfeat"][b][c] for c in range(2)] for b in range(B)]
    conv_term = 0.5 * sum(sum(conv[b][c] ** 2 for b in range(B)) / B for c in range(2))
    assert build_proxy("fisher")(student, student, batch) == pytest.approx(fc_term + conv_term, rel=1e-6)


class Mlp(nn.Module):
    """Linear 3 → 4, functional ReLU, linear 4 → 2 (no module activations at all)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.l1, self.l2 = nn.Linear(3, 4), nn.Linear(4, 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.l2(F.relu(self.l1(x)))


def test_nwot_counts_functional_relus() -> None:
    net = Mlp().double()
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(1)).double()
    mlp = ProxyModel.from_torch(net, features="l1")
    pre = (x @ net.l1.weight.detach().T + net.l1.bias.detach()).tolist()
    codes = [[1.0 if v > 0 else 0.0 for v in row] for row in pre]
    k = [[sum(1.0 for p, q in zip(a, b, strict=True) if p == q) for b in codes] for a in codes]
    expected = torch.linalg.slogdet(torch.tensor(k, dtype=torch.float64)).logabsdet.item()
    got = build_proxy("nwot")(mlp, mlp, ProxyBatch(labels=torch.tensor([0, 1, 0, 1, 0]), images=x))
    assert got == pytest.approx(expected)


def test_synflow_is_twice_the_path_sum_of_a_two_layer_linear_net() -> None:
    net = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Linear(4, 2, bias=False))
    w1, w2 = net[0].weight.detach().abs().double(), net[1].weight.detach().abs().double()
    r = (w2 @ w1).sum().item()  # R = 1ᵀ|W2||W1|1 on an all-ones input
    lin = ProxyModel.from_torch(net, features=net[0])
    batch = ProxyBatch(labels=torch.tensor([0, 1]), images=torch.randn(2, 3))
    assert build_proxy("synflow")(lin, lin, batch) == pytest.approx(2 * r)


def test_nwot_counts_a_relu_module_once() -> None:
    """``nn.ReLU`` (which calls ``F.relu`` inside) and a bare ``F.relu`` give the same codes."""
    functional = Mlp().double()
    modular = nn.Sequential(functional.l1, nn.ReLU(), functional.l2)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(1)).double()
    batch = ProxyBatch(labels=torch.tensor([0, 1, 0, 1, 0]), images=x)
    a = ProxyModel.from_torch(functional, features="l1")
    b = ProxyModel.from_torch(modular, features=functional.l1)
    assert build_proxy("nwot")(a, a, batch) == build_proxy("nwot")(b, b, batch)
