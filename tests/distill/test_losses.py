"""Output (logit-level) KD losses: each against a hand computation, plus the properties every loss shares.

Expected values are worked out with plain ``math`` loops over Python floats, independently of the torch
implementations; inputs are float64 so the tolerances can be tight.
"""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from distill.losses import LOSSES, LogitInputs, LossContext, build_loss
from distill.pipeline import LogitLossSpec
from distill.registry import UnknownComponentError

CTX = LossContext(num_labels=3, student_dim=4)

S = [[1.0, 2.0, 0.5], [-1.0, 0.0, 3.0]]  # student logits, B=2, C=3
T = [[2.0, 0.5, 1.0], [0.0, 1.0, 2.5]]  # teacher logits
Y = [0, 2]  # labels
H = [[0.5, -1.0, 2.0, 0.0], [1.0, 1.0, -0.5, 0.25]]  # student pooled features, B=2, H=4


def make_inputs(s=S, t=T, y=Y, h=H, dtype: torch.dtype = torch.float64) -> LogitInputs:
    return LogitInputs(
        student_logits=torch.tensor(s, dtype=dtype, requires_grad=True),
        teacher_logits=torch.tensor(t, dtype=dtype),
        labels=torch.tensor(y, dtype=torch.long),
        student_pooled=torch.tensor(h, dtype=dtype, requires_grad=True),
    )


def make_loss(name: str, temperature: float = 2.0, dtype: torch.dtype = torch.float64, **params: float):
    loss = build_loss(LogitLossSpec(name=name, temperature=temperature, params=params), CTX)
    return loss.to(dtype)


def softmax(z: list[float], temp: float = 1.0) -> list[float]:
    mx = max(z)
    e = [math.exp((v - mx) / temp) for v in z]
    return [v / sum(e) for v in e]


def kl(p: list[float], q: list[float]) -> float:
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True) if pi > 0)


def value(name: str, x: LogitInputs | None = None, temperature: float = 2.0, **params: float) -> float:
    return make_loss(name, temperature, **params)(x or make_inputs()).item()


# ---- hand computations, one per loss --------------------------------------------------------------------


def test_ce_only_is_zero_and_keeps_the_graph() -> None:
    x = make_inputs()
    loss = make_loss("ce_only")
    out = loss(x)
    assert out.item() == 0.0 and out.requires_grad
    out.backward()
    assert torch.equal(x.student_logits.grad, torch.zeros(2, 3, dtype=torch.float64))
    assert LOSSES.get("ce_only").uses_teacher is False
    assert LOSSES.get("kl").uses_teacher is True


def test_kl_matches_hand_computation() -> None:
    temp = 2.0
    expected = sum(kl(softmax(t, temp), softmax(s, temp)) for s, t in zip(S, T, strict=True)) / 2 * temp**2
    assert value("kl", temperature=temp) == pytest.approx(expected, rel=1e-10)


def test_kl_two_class_number_by_hand() -> None:
    # T=1, student [0, 0] -> q = (1/2, 1/2); teacher [ln 3, 0] -> p = (3/4, 1/4)
    # KL = 3/4 ln(3/2) + 1/4 ln(1/2)
    x = LogitInputs(
        torch.zeros(1, 2, dtype=torch.float64),
        torch.tensor([[math.log(3.0), 0.0]], dtype=torch.float64),
        torch.tensor([0]),
        torch.zeros(1, 4, dtype=torch.float64),
    )
    expected = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert value("kl", x, temperature=1.0) == pytest.approx(expected, rel=1e-10)


def test_mse_matches_hand_computation() -> None:
    # differences: (-1, 1.5, -0.5), (-1, -1, 0.5); squares sum to 1 + 2.25 + 0.25 + 1 + 1 + 0.25 = 5.75
    assert value("mse") == pytest.approx(5.75 / 6, rel=1e-12)
    assert value("mse", temperature=7.0) == pytest.approx(5.75 / 6, rel=1e-12)  # temperature unused


def test_rkl_matches_hand_computation() -> None:
    temp = 3.0
    expected = sum(kl(softmax(s, temp), softmax(t, temp)) for s, t in zip(S, T, strict=True)) / 2 * temp**2
    assert value("rkl", temperature=temp) == pytest.approx(expected, rel=1e-10)
    assert value("rkl", temperature=temp) != pytest.approx(value("kl", temperature=temp), rel=1e-3)


def test_jsd_matches_hand_computation() -> None:
    temp = 2.0
    total = 0.0
    for s, t in zip(S, T, strict=True):
        p, q = softmax(t, temp), softmax(s, temp)
        m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
        total += 0.5 * kl(p, m) + 0.5 * kl(q, m)
    assert value("jsd", temperature=temp) == pytest.approx(total / 2 * temp**2, rel=1e-10)


def test_jsd_is_bounded_by_log2_for_disjoint_distributions() -> None:
    # near one-hot on different classes: JSD -> ln 2 (per T² = 1)
    x = make_inputs(s=[[50.0, 0.0, 0.0]], t=[[0.0, 50.0, 0.0]], y=[0], h=[H[0]])
    assert value("jsd", x, temperature=1.0) == pytest.approx(math.log(2.0), rel=1e-6)


def dkd_by_hand(temp: float, alpha: float, beta: float) -> float:
    total = 0.0
    for s, t, g in zip(S, T, Y, strict=True):
        ps, pt = softmax(s, temp), softmax(t, temp)
        tckd = kl([pt[g], 1 - pt[g]], [ps[g], 1 - ps[g]])
        # non-target distributions: renormalise the non-target probabilities
        ns = [ps[c] / (1 - ps[g]) for c in range(3) if c != g]
        nt = [pt[c] / (1 - pt[g]) for c in range(3) if c != g]
        total += alpha * tckd + beta * kl(nt, ns)
    return total / len(S) * temp**2


def test_dkd_matches_hand_computation() -> None:
    assert value("dkd", temperature=2.0) == pytest.approx(dkd_by_hand(2.0, 1.0, 8.0), rel=1e-9)
    got = value("dkd", temperature=4.0, alpha=0.5, beta=2.0)
    assert got == pytest.approx(dkd_by_hand(4.0, 0.5, 2.0), rel=1e-9)


def test_dkd_with_alpha_beta_one_is_kl_decomposition_bound() -> None:
    # Zhao et al. eq. (1): KD = TCKD + (1 − p_t,g) · NCKD, so alpha=1, beta=1 is >= KD when p_t,g > 0
    assert value("dkd", alpha=1.0, beta=1.0) >= value("kl") - 1e-12
    assert LOSSES.get("dkd").resolve({}) == {"alpha": 1.0, "beta": 8.0}


def pld_by_hand(temp: float, label_first: bool) -> float:
    total = 0.0
    for s, t, g in zip(S, T, Y, strict=True):
        order = sorted(range(3), key=lambda c: -t[c])
        if label_first:
            order = [g] + [c for c in order if c != g]
        w = softmax(t, temp)
        for k, c in enumerate(order):
            rest = order[k:]
            lse = math.log(sum(math.exp(s[j]) for j in rest))
            total -= w[c] * (s[c] - lse)
    return total / len(S)


def test_pld_matches_hand_computation() -> None:
    # sample 1: teacher ranks (0, 2, 1), label 0 first anyway; sample 2: teacher ranks (2, 1, 0), label 2
    assert value("pld", temperature=2.0) == pytest.approx(pld_by_hand(2.0, True), rel=1e-10)
    assert value("pld", temperature=2.0, label_first=0.0) == pytest.approx(pld_by_hand(2.0, False), rel=1e-10)


def test_pld_label_first_only_matters_when_the_teacher_is_wrong() -> None:
    wrong = make_inputs(y=[1, 0])
    assert value("pld", wrong) != pytest.approx(value("pld", wrong, label_first=0.0), rel=1e-6)
    assert value("pld") == pytest.approx(value("pld", label_first=0.0), rel=1e-12)


def test_pld_two_class_number_by_hand() -> None:
    # s = (0, 0): rank-1 term = 0 − ln 2, rank-2 term = 0; teacher (0, 0) gives w = (1/2, 1/2) -> L = ln2 / 2
    x = make_inputs(s=[[0.0, 0.0]], t=[[0.0, 0.0]], y=[1], h=[H[0]])
    assert value("pld", x) == pytest.approx(math.log(2.0) / 2, rel=1e-12)


def sinkhorn_by_hand(a: list[float], b: list[float], eps: float, iters: int) -> float:
    """Plain (probability-space) Sinkhorn with the 0/1 cost: u = a / (K v), v = b / (Kᵀ u)."""
    n = len(a)
    cost = [[0.0 if i == j else 1.0 for j in range(n)] for i in range(n)]
    k = [[math.exp(-cost[i][j] / eps) for j in range(n)] for i in range(n)]
    v = [1.0] * n
    for _ in range(iters):
        u = [a[i] / sum(k[i][j] * v[j] for j in range(n)) for i in range(n)]
        v = [b[j] / sum(k[i][j] * u[i] for i in range(n)) for j in range(n)]
    return sum(u[i] * k[i][j] * v[j] * cost[i][j] for i in range(n) for j in range(n))


def test_sinkhorn_matches_hand_computation() -> None:
    temp = 2.0
    expected = sum(
        sinkhorn_by_hand(softmax(t, temp), softmax(s, temp), 0.1, 20) for s, t in zip(S, T, strict=True)
    )
    assert value("sinkhorn", temperature=temp) == pytest.approx(expected / 2, rel=1e-9)
    got = value("sinkhorn", temperature=temp, epsilon=0.5, iters=5)
    expected = sum(
        sinkhorn_by_hand(softmax(t, temp), softmax(s, temp), 0.5, 5) for s, t in zip(S, T, strict=True)
    )
    assert got == pytest.approx(expected / 2, rel=1e-9)


def test_sinkhorn_tends_to_total_variation_for_small_epsilon() -> None:
    # 0/1 ground cost: the unregularised OT distance is 1 − Σ min(a, b)
    temp = 1.0
    tv = sum(
        1 - sum(min(p, q) for p, q in zip(softmax(t, temp), softmax(s, temp), strict=True))
        for s, t in zip(S, T, strict=True)
    )
    got = value("sinkhorn", temperature=temp, epsilon=0.01, iters=200)
    assert got == pytest.approx(tv / 2, abs=1e-3)


def test_sinkhorn_rejects_bad_settings() -> None:
    for bad in ({"iters": 0}, {"iters": 2.5}, {"epsilon": 0.0}):
        with pytest.raises(ValueError):
            make_loss("sinkhorn", **bad)


def test_dual_head_matches_hand_computation_and_trains_both_heads() -> None:
    temp = 2.0
    loss = make_loss("dual_head", temperature=temp, aux_weight=0.5)
    w = [[0.1, -0.2, 0.3, 0.0], [0.5, 0.5, -0.5, 1.0], [-1.0, 0.0, 0.2, 0.4]]
    c = [0.1, 0.0, -0.3]
    with torch.no_grad():
        loss.aux_head.weight.copy_(torch.tensor(w, dtype=torch.float64))
        loss.aux_head.bias.copy_(torch.tensor(c, dtype=torch.float64))
    x = make_inputs()
    out = loss(x)

    def sig(z: float) -> float:
        return 1 / (1 + math.exp(-z))

    expected = 0.0
    for h, s, t in zip(H, S, T, strict=True):
        aux = [sum(w[k][d] * h[d] for d in range(4)) + c[k] for k in range(3)]
        binary = sum(
            kl([sig(tk / temp), 1 - sig(tk / temp)], [sig(ak / temp), 1 - sig(ak / temp)])
            for tk, ak in zip(t, aux, strict=True)
        )
        expected += kl(softmax(t, temp), softmax(s, temp)) + 0.5 * binary
    assert out.item() == pytest.approx(expected / 2 * temp**2, rel=1e-10)

    out.backward()
    assert loss.aux_head.weight.grad is not None and loss.aux_head.weight.grad.abs().sum() > 0
    assert x.student_pooled.grad is not None and x.student_pooled.grad.abs().sum() > 0
    assert x.student_logits.grad is not None and x.student_logits.grad.abs().sum() > 0  # main head: KD too
    assert {n for n, _ in loss.named_parameters()} == {"aux_head.weight", "aux_head.bias"}


# ---- properties every loss shares -----------------------------------------------------------------------


def test_all_expected_losses_are_registered() -> None:
    expected = {"ce_only", "kl", "mse", "rkl", "jsd", "dkd", "pld", "sinkhorn", "dual_head"}
    assert expected <= set(LOSSES.names())
    for entry in LOSSES.entries():
        assert entry.description and "\n" not in entry.description


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_is_a_finite_scalar_with_gradient(name: str) -> None:
    x = make_inputs()
    loss = make_loss(name)
    out = loss(x)
    assert out.shape == () and torch.isfinite(out)
    out.backward()
    grad = x.student_logits.grad
    assert grad is not None and torch.isfinite(grad).all()
    if name != "ce_only":
        assert grad.abs().sum() > 0


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_survives_extreme_logits(name: str) -> None:
    # float32, as in training: saturated softmaxes must not turn into log(0) = -inf or NaN
    s = [[300.0, -300.0, 0.0], [0.0, 0.0, 0.0]]
    t = [[-300.0, 300.0, 0.0], [1e3, 0.0, -1e3]]
    x = make_inputs(s=s, t=t, h=[[100.0, -100.0, 50.0, 0.0], H[1]], dtype=torch.float32)
    out = make_loss(name, temperature=1.0, dtype=torch.float32)(x)
    out.backward()
    assert torch.isfinite(out)
    for grad in (x.student_logits.grad, x.student_pooled.grad):
        assert grad is None or torch.isfinite(grad).all()


@pytest.mark.parametrize(("name", "atol"), [("kl", 1e-12), ("rkl", 1e-12), ("jsd", 1e-12), ("mse", 0.0)])
def test_identical_student_and_teacher_give_zero(name: str, atol: float) -> None:
    x = make_inputs(t=S)
    assert value(name, x) == pytest.approx(0.0, abs=atol)


def test_sinkhorn_identical_is_zero_up_to_entropic_bias() -> None:
    x = make_inputs(t=S)
    assert value("sinkhorn", x) == pytest.approx(0.0, abs=1e-3)
    assert value("sinkhorn", x) < value("sinkhorn")


def test_unknown_loss_name_is_named_in_the_error() -> None:
    with pytest.raises(UnknownComponentError, match="nope"):
        LOSSES.get("nope")


def test_unknown_param_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="bogus"):
        LogitLossSpec(name="kl", params={"bogus": 1})
    with pytest.raises(ValidationError, match="bogus"):
        LogitLossSpec(name="dkd", params={"alpha": 2.0, "bogus": 1})
    assert LogitLossSpec(name="dkd", params={"alpha": 2.0}).params == {"alpha": 2.0}


def test_each_loss_says_whether_it_uses_the_temperature():
    """The fact lives on the loss: changing T changes exactly the losses that say they use it."""
    torch.manual_seed(0)
    x = LogitInputs(torch.randn(6, 3), torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2]), torch.randn(6, 8))
    ctx = LossContext(num_labels=3, student_dim=8)
    for entry in LOSSES.entries():
        values = []
        for t in (1.0, 4.0):
            torch.manual_seed(0)
            values.append(float(build_loss(LogitLossSpec(name=entry.name, temperature=t), ctx)(x).detach()))
        assert (values[0] != values[1]) == entry.obj.uses_temperature, entry.name
