"""Issue-19 methods against hand computations: DAC-KL, batch-wise SinKD, hidden CE, LELP, ND class means.

Expected values use plain ``math`` on Python floats, independent of the torch code (float64 inputs).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from transformers import BertConfig

from distill.encoding import TrainData
from distill.losses import LogitInputs, LossContext, build_loss
from distill.objectives import OBJECTIVES, ObjectiveContext
from distill.objectives.lelp import subclass_prototypes
from distill.pipeline import IntermediateSpec, LogitLossSpec, Pipeline
from distill.teacher_outputs import TeacherOutputs
from distill.trainer import DistillLoss

S = [[1.0, 2.0, 0.5], [-1.0, 0.0, 3.0]]  # student logits, B=2, C=3
T = [[2.0, 0.5, 1.0], [0.0, 1.0, 2.5]]  # teacher logits
Y = [0, 2]


def softmax(z: list[float], temp: float = 1.0) -> list[float]:
    mx = max(z)
    e = [math.exp((v - mx) / temp) for v in z]
    return [v / sum(e) for v in e]


def sig(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def inputs(s=S, t=T, y=Y) -> LogitInputs:
    return LogitInputs(
        torch.tensor(s, dtype=torch.float64, requires_grad=True),
        torch.tensor(t, dtype=torch.float64),
        torch.tensor(y),
        torch.zeros(len(s), 4, dtype=torch.float64),
    )


def loss(name: str, temperature: float = 2.0, **params: float):
    spec = LogitLossSpec(name=name, temperature=temperature, params=params)
    return build_loss(spec, LossContext(num_labels=3, student_dim=4)).double()


def objective(name: str, **params: float):
    ctx = ObjectiveContext(2, 4, 2, 3, 2, 3, num_labels=2)
    return OBJECTIVES.get(name)(IntermediateSpec(name=name, params=params), ctx, "hidden").double()


# ---- DAC-KL ----------------------------------------------------------------------------------------------


def test_dac_kl_matches_hand_computation() -> None:
    temp, k, lam = 2.0, 0.05, 0.5
    f = loss("dac_kl", temperature=temp, sharpness=k, coverage=lam)
    with torch.no_grad():  # constant sub-network output: g = (σ(b1), σ(b2))
        f.bounds[2].weight.zero_()
        f.bounds[2].bias.copy_(torch.tensor([-0.5, 0.3]))
    upper = sig(0.3)
    lower = sig(-0.5) * upper
    expected_kl = expected_cov = 0.0
    for s, t, y in zip(S, T, Y, strict=True):
        pt, ps = softmax(t, temp), softmax(s, temp)
        m = [1.0 if c == y else sig((p - lower) / k) * sig((upper - p) / k) for c, p in enumerate(pt)]
        q = [mi * p for mi, p in zip(m, pt, strict=True)]
        r = [mi * p for mi, p in zip(m, ps, strict=True)]
        q, r = [v / sum(q) for v in q], [v / sum(r) for v in r]
        expected_kl += sum(a * math.log(a / b) for a, b in zip(q, r, strict=True))
        expected_cov += 1 - sum(mi * p for mi, p in zip(m, pt, strict=True))
    got = f(inputs()).item()
    assert got == pytest.approx(expected_kl / 2 * temp**2 + lam * expected_cov / 2, rel=1e-9)


def test_dac_kl_keeps_the_label_and_trains_its_sub_network() -> None:
    f = loss("dac_kl")
    m = f.clip_mask(torch.tensor([[0.98, 0.01, 0.01]], dtype=torch.float64), torch.tensor([2]))
    assert m[0, 2].item() == 1.0
    x = inputs()
    f(x).backward()
    assert x.student_logits.grad.abs().sum() > 0
    assert f.bounds[0].weight.grad is not None and f.bounds[0].weight.grad.abs().sum() > 0


# ---- SinKD batch-wise ------------------------------------------------------------------------------------


def ot_by_hand(cost: list[list[float]], eps: float, iters: int) -> float:
    """Plain Sinkhorn with uniform marginals: u = a / (K v), v = b / (Kᵀ u); returns ⟨P, C⟩."""
    n = len(cost)
    a = [1 / n] * n
    kern = [[math.exp(-c / eps) for c in row] for row in cost]
    v = [1.0] * n
    for _ in range(iters):
        u = [a[i] / sum(kern[i][j] * v[j] for j in range(n)) for i in range(n)]
        v = [a[j] / sum(kern[i][j] * u[i] for i in range(n)) for j in range(n)]
    return sum(u[i] * kern[i][j] * v[j] * cost[i][j] for i in range(n) for j in range(n))


def test_sinkhorn_batch_matches_hand_computation() -> None:
    temp = 2.0
    s3 = [*S, [0.0, 0.0, 1.0]]
    t3 = [*T, [3.0, 0.0, -1.0]]
    ps = [softmax(z, temp) for z in s3]
    pt = [softmax(z, temp) for z in t3]
    cost = [[sum(abs(a - b) for a, b in zip(x, y, strict=True)) for y in pt] for x in ps]
    got = loss("sinkhorn_batch", temperature=temp, epsilon=0.2, iters=30)(inputs(s3, t3, [0, 2, 0])).item()
    assert got == pytest.approx(ot_by_hand(cost, 0.2, 30), rel=1e-9)


def test_sinkhorn_batch_is_the_optimal_matching_for_small_epsilon() -> None:
    # two samples whose teacher rows are swapped: OT re-matches them at cost 0, per-sample pays
    x = inputs(s=[[4.0, 0.0, 0.0], [0.0, 4.0, 0.0]], t=[[0.0, 4.0, 0.0], [4.0, 0.0, 0.0]])
    assert loss("sinkhorn_batch", epsilon=0.01, iters=200)(x).item() == pytest.approx(0.0, abs=1e-4)
    assert loss("sinkhorn", epsilon=0.01, iters=200)(x).item() > 0.5


# ---- hidden CE -------------------------------------------------------------------------------------------


def test_hidden_ce_matches_hand_computation() -> None:
    obj = objective("hidden_ce", tau=2.0)
    w, c = [[1.0, 0.0], [0.0, 2.0], [1.0, -1.0]], [0.0, 0.5, 0.0]
    with torch.no_grad():
        obj.proj.layers[1].weight.copy_(torch.tensor(w))
        obj.proj.layers[1].bias.copy_(torch.tensor(c))
    s = [[[1.0, 2.0], [0.5, -1.0]], [[-1.0, 1.0], [9.0, 9.0]]]
    t = [[[1.0, 0.0, 2.0], [0.0, 1.0, 1.0]], [[2.0, -1.0, 0.0], [7.0, 7.0, 7.0]]]
    mask = [[1, 1], [1, 0]]
    total = 0.0
    for b, k in [(0, 0), (0, 1), (1, 0)]:
        p = [sum(w[i][d] * s[b][k][d] for d in range(2)) + c[i] for i in range(3)]
        q, logp = softmax(t[b][k], 2.0), [math.log(v) for v in softmax(p, 2.0)]
        total += -sum(a * lb for a, lb in zip(q, logp, strict=True))
    got = obj.pair_loss(torch.tensor(s).double(), torch.tensor(t).double(), torch.tensor(mask), 1)
    assert got.item() == pytest.approx(total / 3, rel=1e-6)  # [CLS]/projections run in float32


# ---- LELP ------------------------------------------------------------------------------------------------

# class 0 spreads along x around (0, 0, 0), class 1 along y around (0, 0, 4)
FEATS = [[-2.0, 0.0, 0.0], [2.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
FEATS += [[0.0, -3.0, 4.0], [0.0, 3.0, 4.0], [0.0, -1.0, 4.0], [0.0, 1.0, 4.0]]
LABELS = [0, 0, 0, 0, 1, 1, 1, 1]


def test_lelp_prototypes_split_each_class_along_its_main_direction() -> None:
    protos = subclass_prototypes(torch.tensor(FEATS).double(), torch.tensor(LABELS), 2, 1)
    got = sorted(tuple(round(v, 9) + 0.0 for v in row) for row in protos.tolist())
    # halves of class 0: x in {-2,-1} → mean −1.5, {1,2} → 1.5; class 1: y halves → ±2 (at z = 4)
    assert got == sorted([(-1.5, 0.0, 0.0), (1.5, 0.0, 0.0), (0.0, -2.0, 4.0), (0.0, 2.0, 4.0)])


def test_lelp_loss_matches_hand_computation() -> None:
    obj = objective("lelp", directions=1.0, tau=0.5)
    t_cls = torch.tensor(FEATS).double()
    obj.fit([(2, 4)], {4: t_cls[:, None, :]}, torch.tensor(LABELS))
    protos = obj.protos_2.tolist()
    d2 = [[sum((a - b) ** 2 for a, b in zip(x, p, strict=True)) for p in protos] for x in FEATS]
    scale = sum(min(row) for row in d2) / len(d2)  # (4 · 0.5² + 4 · 1²) / 8 = 0.625
    assert obj.scale_2.item() == pytest.approx(scale, rel=1e-9)
    hw = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.5]]
    with torch.no_grad():
        obj.head.layers[2].weight.copy_(torch.tensor(hw))
        obj.head.layers[2].bias.zero_()
    s_cls = [[0.5, -1.0], [2.0, 1.0]]
    expected = 0.0
    for b, n in enumerate([0, 5]):
        q = softmax([-d / (0.5 * scale) for d in d2[n]])
        p = softmax([sum(w[d] * s_cls[b][d] for d in range(2)) for w in hw])
        expected += sum(a * math.log(a / c) for a, c in zip(q, p, strict=True) if a > 0)
    s = torch.tensor(s_cls).double()[:, None, :]
    got = obj.pair_loss(s, t_cls[[0, 5], None, :], torch.ones(2, 1), 2)
    assert got.item() == pytest.approx(expected / 2, rel=1e-6)


def test_lelp_unfitted_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        objective("lelp").pair_loss(torch.zeros(2, 1, 2), torch.zeros(2, 1, 3), torch.ones(2, 1), 1)


# ---- ND with class means ---------------------------------------------------------------------------------


def test_nd_class_means_by_hand() -> None:
    obj = objective("nd", class_means=1.0, norm_weight=0.5)
    obj.fit([(1, 2)], {2: torch.tensor(FEATS).double()[:, None, :]}, torch.tensor(LABELS))
    assert obj.means_1.tolist() == [[0.0, 0.0, 0.0], [0.0, 0.0, 4.0]]
    with torch.no_grad():  # projection R^2 → R^3: p = (s0, s1, s0 + s1)
        obj.proj.layers[1].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        obj.proj.layers[1].bias.zero_()
    s = [[1.0, 2.0], [0.0, 0.5]]
    t = [[0.1, 0.2, 3.0], [1.0, 0.0, 0.5]]  # nearest class mean by cosine: class 1 for both
    expected = 0.0
    for sv, tv in zip(s, t, strict=True):
        p = [sv[0], sv[1], sv[0] + sv[1]]
        cos = p[2] / math.sqrt(sum(v * v for v in p))  # against (0, 0, 4)
        tn, pn = math.sqrt(sum(v * v for v in tv)), math.sqrt(sum(v * v for v in p))
        expected += (1 - cos) + 0.5 * max(0.0, tn - pn) / tn
    got = obj.pair_loss(
        torch.tensor(s).double()[:, None], torch.tensor(t).double()[:, None], torch.ones(2, 1), 1
    )
    assert got.item() == pytest.approx(expected / 2, rel=1e-6)


# ---- the trainer fits fitted objectives once, before training --------------------------------------------


def test_distill_loss_prepare_fits_lelp_on_the_cached_teacher_features() -> None:
    small = {"hidden_size": 4, "num_attention_heads": 2, "intermediate_size": 8, "num_labels": 2}
    student = SimpleNamespace(config=BertConfig(num_hidden_layers=2, **small))
    teacher_cfg = BertConfig(num_hidden_layers=4, **{**small, "hidden_size": 3, "num_attention_heads": 1})
    pipe = Pipeline(intermediate=IntermediateSpec(name="lelp", mapping="last", params={"directions": 1.0}))
    crit = DistillLoss(pipe, student, teacher_cfg)
    hidden = torch.tensor(FEATS)[:, None, :].half()
    n = len(FEATS)
    ids = torch.zeros(n, 1, dtype=torch.long)
    data = TrainData(
        ids,
        torch.ones(n, 1),
        ids,
        torch.tensor(LABELS),
        TeacherOutputs(torch.zeros(n, 2), {3: -hidden, 4: hidden}),
    )
    crit.prepare(data)
    obj = crit.inter.objectives["hidden"]
    assert crit.inter.hidden_pairs == [(1, 3), (2, 4)]  # "last": one fit per student index, own layer
    assert obj.protos_2.shape == (4, 3) and obj.scale_2.item() == pytest.approx(0.625)
    assert sorted(obj.protos_1.tolist()) == sorted((-obj.protos_2).tolist())  # fitted on layer 3 = −layer 4
