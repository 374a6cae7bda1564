"""Intermediate objectives: each checked against an independent hand computation on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from distill.objectives import OBJECTIVES, Objective, ObjectiveContext
from distill.objectives.base import FittedObjective
from distill.objectives.mi_alpha import log_loo_mean
from distill.pipeline import IntermediateSpec

CTX = ObjectiveContext(
    student_layers=2,
    teacher_layers=4,
    student_dim=2,
    teacher_dim=3,
    student_heads=2,
    teacher_heads=3,
    num_labels=2,
)
ALL = [
    "attention",
    "cosine",
    "crd",
    "hidden_ce",
    "hidden_mse",
    "infonce",
    "lelp",
    "mi_alpha",
    "nd",
    "nwj",
    "pkd",
    "relation",
    "trg",
    "tuba",
]

# Projection used by the projected objectives: p = W s + c (Hs = 2 → Ht = 3).
W = [[1.0, 0.0], [0.0, 2.0], [1.0, -1.0]]
C = [0.0, 0.5, 0.0]

# Hidden states (B = 2, T = 3); the last token of example 2 is padding.
S = [[[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]], [[-1.0, 1.0], [2.0, 2.0], [0.0, 1.0]]]
T = [
    [[1.0, 0.0, 2.0], [0.0, 1.0, 1.0], [1.0, 1.0, 1.0]],
    [[2.0, -1.0, 0.0], [1.0, 1.0, 0.0], [0.5, 0.5, 0.5]],
]
MASK = [[1, 1, 1], [1, 1, 0]]

# [CLS] vectors for the batch-level objectives (B = 3).
S_CLS = [[1.0, 2.0], [-1.0, 1.0], [2.0, -0.5]]
T_CLS = [[1.0, 0.0, 2.0], [0.0, 1.0, 1.0], [1.0, 1.0, 5.0]]


# --------------------------------------------------------------------------------------------- helpers


def make(name: str, kind: str = "hidden", ctx: ObjectiveContext = CTX, **params: float) -> Objective:
    alpha = params.pop("alpha", 0.5) if name == "mi_alpha" else None
    spec = IntermediateSpec(name=name, features=kind, alpha=alpha, params=params)
    obj = OBJECTIVES.get(name)(spec, ctx, kind)
    if isinstance(obj, FittedObjective):  # fitted on random teacher features, one per student index
        g = torch.Generator().manual_seed(5)
        hidden = {i: torch.randn(8, 2, ctx.teacher_dim, generator=g) for i in range(ctx.student_layers + 1)}
        obj.fit([(i, i) for i in hidden], hidden, torch.arange(8) % max(ctx.num_labels, 1))
    return obj


def set_linear(lin: torch.nn.Linear, weight: list[list[float]], bias: list[float]) -> None:
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(weight))
        lin.bias.copy_(torch.tensor(bias))


def tens(x: list) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32)


def cls_batch(s_cls: list[list[float]], t_cls: list[list[float]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 2, H) hidden states whose token 0 is the given [CLS] vector (token 1 is noise)."""
    g = torch.Generator().manual_seed(0)
    s, t = tens(s_cls), tens(t_cls)
    s = torch.stack([s, torch.randn(s.shape, generator=g)], 1)
    t = torch.stack([t, torch.randn(t.shape, generator=g)], 1)
    return s, t


def matvec(w: list[list[float]], x: list[float], b: list[float]) -> list[float]:
    return [sum(wi * xi for wi, xi in zip(row, x, strict=True)) + bi for row, bi in zip(w, b, strict=True)]


def dot(x: list[float], y: list[float]) -> float:
    return sum(a * b for a, b in zip(x, y, strict=True))


def norm(x: list[float]) -> float:
    return math.sqrt(dot(x, x))


def cos(x: list[float], y: list[float]) -> float:
    return dot(x, y) / (norm(x) * norm(y))


def unit(x: list[float]) -> list[float]:
    n = norm(x)
    return [a / n for a in x]


def real_tokens() -> list[tuple[int, int]]:
    return [(b, k) for b in range(2) for k in range(3) if MASK[b][k]]


def close(value: torch.Tensor, expected: float) -> None:
    assert value.dim() == 0
    assert value.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


# --------------------------------------------------------------------------------------- registry shape


def test_all_objectives_registered_with_supports_and_defaults() -> None:
    assert sorted(OBJECTIVES.names()) == ALL
    for name in ALL:
        cls = OBJECTIVES.get(name)
        assert cls.supports and cls.supports <= {"hidden", "attention"}
        assert all(isinstance(v, float) for v in cls.defaults.values())
        assert OBJECTIVES.entries()[ALL.index(name)].description


def test_projections_per_student_layer_identity_when_square() -> None:
    obj = make("hidden_mse")
    assert len(obj.proj.layers) == CTX.student_layers + 1
    sq = ObjectiveContext(2, 4, 3, 3, 1, 1)
    lin = make("cosine", ctx=sq).proj.layers[1]
    assert torch.equal(lin.weight, torch.eye(3)) and torch.equal(lin.bias, torch.zeros(3))


# ------------------------------------------------------------------------------------ hand computations


def test_hidden_mse_hidden_by_hand() -> None:
    obj = make("hidden_mse")
    set_linear(obj.proj.layers[1], W, C)
    total = 0.0
    for b, k in real_tokens():
        p = matvec(W, S[b][k], C)
        total += sum((p[h] - T[b][k][h]) ** 2 for h in range(3))
    expected = total / (3 * len(real_tokens()))
    close(obj.pair_loss(tens(S), tens(T), torch.tensor(MASK), 1), expected)


def test_hidden_mse_uses_the_projection_of_its_layer() -> None:
    obj = make("hidden_mse")
    set_linear(obj.proj.layers[2], W, C)
    with torch.no_grad():
        obj.proj.layers[1].weight.zero_()
        obj.proj.layers[1].bias.zero_()
    t = tens(T)
    only_t = sum(t[b, k].pow(2).sum().item() for b, k in real_tokens()) / (3 * len(real_tokens()))
    close(obj.pair_loss(tens(S), t, torch.tensor(MASK), 1), only_t)
    assert obj.pair_loss(tens(S), t, torch.tensor(MASK), 2).item() != pytest.approx(only_t)


def attention_maps() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Student (B=2, 2 heads, T=2) and teacher (3 heads); example 2 has one padded token."""
    s = tens(
        [
            [[[0.7, 0.3], [0.4, 0.6]], [[0.5, 0.5], [0.2, 0.8]]],
            [[[0.9, 0.1], [0.3, 0.7]], [[0.6, 0.4], [0.5, 0.5]]],
        ]
    )
    t = tens(
        [
            [[[0.8, 0.2], [0.1, 0.9]], [[0.6, 0.4], [0.3, 0.7]], [[0.4, 0.6], [0.5, 0.5]]],
            [[[1.0, 0.0], [0.2, 0.8]], [[1.0, 0.0], [0.9, 0.1]], [[1.0, 0.0], [0.4, 0.6]]],
        ]
    )
    return s, t, torch.tensor([[1, 1], [1, 0]])


def test_hidden_mse_attention_by_hand() -> None:
    s, t, mask = attention_maps()
    obj = make("hidden_mse", kind="attention")
    # heads differ (2 vs 3) → average heads; real (query, key) pairs: all 4 of ex. 1, (0, 0) of ex. 2.
    s1 = [[(0.7 + 0.5) / 2, (0.3 + 0.5) / 2], [(0.4 + 0.2) / 2, (0.6 + 0.8) / 2]]
    t1 = [[(0.8 + 0.6 + 0.4) / 3, (0.2 + 0.4 + 0.6) / 3], [(0.1 + 0.3 + 0.5) / 3, (0.9 + 0.7 + 0.5) / 3]]
    sq = sum((s1[q][k] - t1[q][k]) ** 2 for q in range(2) for k in range(2))
    sq += ((0.9 + 0.6) / 2 - 1.0) ** 2
    close(obj.pair_loss(s, t, mask, 1), sq / 5)


def test_hidden_mse_attention_same_heads_compares_per_head() -> None:
    s, t, _ = attention_maps()
    t = t[:, :2]
    full = torch.ones(2, 2, dtype=torch.long)
    expected = ((s - t) ** 2).mean().item()
    close(make("hidden_mse", kind="attention").pair_loss(s, t, full, 1), expected)


def test_attention_kl_by_hand() -> None:
    s, t, mask = attention_maps()
    obj = make("attention", kind="attention")
    s_avg = s.mean(1).tolist()
    t_avg = t.mean(1).tolist()
    rows = []  # KL(t_row ‖ s_row) of each real query row, over real keys
    for b in range(2):
        n = sum(mask[b].tolist())
        for q in range(n):
            rows.append(
                sum(
                    t_avg[b][q][k] * (math.log(t_avg[b][q][k]) - math.log(s_avg[b][q][k]))
                    for k in range(n)
                    if t_avg[b][q][k] > 0
                )
            )
    close(obj.pair_loss(s, t, mask, 1), sum(rows) / len(rows))
    # a worked number: row 0 of example 2 is t = (1, 0), s = (0.75, ·) → KL = log(1/0.75)
    assert rows[2] == pytest.approx(math.log(4 / 3))


def test_attention_kl_is_zero_for_equal_maps() -> None:
    s, _, mask = attention_maps()
    close(make("attention", kind="attention").pair_loss(s, s.clone(), mask, 1), 0.0)


def test_cosine_by_hand() -> None:
    obj = make("cosine")
    set_linear(obj.proj.layers[1], W, C)
    dists = [1 - cos(matvec(W, S[b][k], C), T[b][k]) for b, k in real_tokens()]
    close(obj.pair_loss(tens(S), tens(T), torch.tensor(MASK), 1), sum(dists) / len(dists))


def test_pkd_by_hand() -> None:
    obj = make("pkd")
    set_linear(obj.proj.layers[1], W, C)
    per_ex = []
    for b in range(2):
        p, q = unit(matvec(W, S[b][0], C)), unit(T[b][0])
        per_ex.append(sum((x - y) ** 2 for x, y in zip(p, q, strict=True)))
    close(obj.pair_loss(tens(S), tens(T), torch.tensor(MASK), 1), sum(per_ex) / 2)
    # squared distance of unit vectors = 2 − 2 cos
    assert per_ex[0] == pytest.approx(2 - 2 * cos(matvec(W, S[0][0], C), T[0][0]))


def test_nd_by_hand() -> None:
    obj = make("nd", norm_weight=0.5)
    w_small = [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]  # makes ‖p‖ < ‖t‖ on example 2, not on example 1
    set_linear(obj.proj.layers[1], w_small, [1.0, 0.0, 0.0])
    per_ex = []
    for b in range(2):
        p, t = matvec(w_small, S[b][0], [1.0, 0.0, 0.0]), T[b][0]
        hinge = max(0.0, norm(t) - norm(p)) / norm(t)
        per_ex.append(1 - cos(p, t) + 0.5 * hinge)
    assert norm(matvec(w_small, S[0][0], [1.0, 0, 0])) > norm(T[0][0])
    assert norm(matvec(w_small, S[1][0], [1.0, 0, 0])) < norm(T[1][0])
    close(obj.pair_loss(tens(S), tens(T), torch.tensor(MASK), 1), sum(per_ex) / 2)


def test_relation_worked_number() -> None:
    # G_s = I; teacher [CLS] vectors equal → G_t rows (1/√2, 1/√2); ‖G̃_s − G̃_t‖² = 4 − 2√2; / B² = 4
    s, t = cls_batch([[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    close(make("relation").pair_loss(s, t, torch.ones(2, 2), 1), 1 - math.sqrt(2) / 2)


def test_relation_by_hand() -> None:
    s, t = cls_batch(S_CLS, T_CLS)

    def gram(a: list[list[float]]) -> list[list[float]]:
        return [unit([dot(x, y) for y in a]) for x in a]

    gs, gt = gram(S_CLS), gram(T_CLS)
    expected = sum((gs[i][j] - gt[i][j]) ** 2 for i in range(3) for j in range(3)) / 9
    close(make("relation").pair_loss(s, t, torch.ones(3, 2), 1), expected)


def test_trg_by_hand() -> None:
    total, count = 0.0, 0
    for b in range(2):
        real = [k for k in range(3) if MASK[b][k]]
        for p in real:
            for q in real:
                total += (cos(S[b][p], S[b][q]) - cos(T[b][p], T[b][q])) ** 2
                count += 1
    close(make("trg").pair_loss(tens(S), tens(T), torch.tensor(MASK), 1), total / count)


# ------------------------------------------------------------------------ contrastive / MI-bound family

TAU = 0.5


def critic_obj(name: str, **params: float) -> Objective:
    """g = identity (R² → R²), h = first two teacher coordinates: f(s, t) = cos(s, t[:2]) / τ."""
    obj = make(name, dim=2.0, tau=TAU, **params)
    set_linear(obj.g.layers[1], [[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])
    set_linear(obj.h.layers[1], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [0.0, 0.0])
    if hasattr(obj, "baseline"):
        set_linear(obj.baseline.layers[1], [BASE_W], [BASE_C])
    return obj


BASE_W = [0.1, -0.2, 0.3]
BASE_C = 0.05


def f(i: int, j: int) -> float:
    """Hand critic f(s_i, t_j)."""
    return cos(S_CLS[i], T_CLS[j][:2]) / TAU


def b(i: int) -> float:
    """Hand log-baseline b(t_i)."""
    return dot(BASE_W, T_CLS[i]) + BASE_C


OFF = [(i, j) for i in range(3) for j in range(3) if i != j]


def mi_loss(name: str, **params: float) -> torch.Tensor:
    s, t = cls_batch(S_CLS, T_CLS)
    return critic_obj(name, **params).pair_loss(s, t, torch.ones(3, 2), 1)


def test_infonce_by_hand() -> None:
    nce = sum(f(i, i) - math.log(sum(math.exp(f(i, j)) for j in range(3))) for i in range(3)) / 3
    close(mi_loss("infonce"), -(nce + math.log(3)))


def test_nwj_by_hand() -> None:
    joint = sum(f(i, i) for i in range(3)) / 3
    marg = sum(math.exp(f(i, j)) for i, j in OFF) / 6
    close(mi_loss("nwj"), -(joint - math.exp(-1) * marg))


def test_tuba_by_hand() -> None:
    joint = sum(f(i, i) - b(i) for i in range(3)) / 3
    marg = sum(math.exp(f(j, i) - b(i)) for i, j in OFF) / 6  # student j paired with teacher i
    close(mi_loss("tuba"), -(1 + joint - marg))


def test_tuba_with_zero_baseline_is_nwj_shifted() -> None:
    # b ≡ 1 turns TUBA into NWJ
    obj = critic_obj("tuba")
    set_linear(obj.baseline.layers[1], [[0.0, 0.0, 0.0]], [1.0])
    s, t = cls_batch(S_CLS, T_CLS)
    close(obj.pair_loss(s, t, torch.ones(3, 2), 1), mi_loss("nwj").item())


def hand_i_alpha(alpha: float) -> tuple[float, float]:
    """Joint and marginal terms of I_α from the docstring formula, S_ij = f(s_j, t_i)."""

    def s_(i: int, j: int) -> float:
        return f(j, i)

    def a(i: int, j: int) -> float:
        m = sum(math.exp(s_(i, k)) for k in range(3) if k != j) / 2
        return math.log(alpha * m + (1 - alpha) * math.exp(b(i)))

    joint = sum(s_(i, i) - a(i, j) for i, j in OFF) / 6
    marg = sum(math.exp(s_(i, j) - a(i, i)) for i, j in OFF) / 6
    return joint, marg


def test_mi_alpha_by_hand() -> None:
    joint, marg = hand_i_alpha(0.3)
    close(mi_loss("mi_alpha", alpha=0.3), -(1 + joint - marg))


def test_mi_alpha_zero_is_tuba() -> None:
    close(mi_loss("mi_alpha", alpha=0.0), mi_loss("tuba").item())


def test_mi_alpha_one_is_leave_one_out_infonce() -> None:
    joint, marg = hand_i_alpha(1.0)
    assert marg == pytest.approx(1.0)
    # I_1 = mean_{i≠j} [S_ii − log mean_{k≠j} exp(S_ik)], written out again without a(·)
    direct = 0.0
    for i, j in OFF:
        direct += f(i, i) - math.log(sum(math.exp(f(k, i)) for k in range(3) if k != j) / 2)
    assert joint == pytest.approx(direct / 6)
    close(mi_loss("mi_alpha", alpha=1.0), -(direct / 6))


def test_mi_alpha_state_matches_tuba() -> None:
    tuba, mi = make("tuba"), make("mi_alpha", alpha=0.0)
    mi.load_state_dict(tuba.state_dict())
    s, t = cls_batch(S_CLS, T_CLS)
    m = torch.ones(3, 2)
    close(mi.pair_loss(s, t, m, 2), tuba.pair_loss(s, t, m, 2).item())


def test_log_loo_mean_matches_brute_force_with_a_dominant_entry() -> None:
    x = torch.tensor([[60.0, 0.0, -3.0], [1.0, 2.0, 3.0], [-40.0, 5.0, 5.0]], requires_grad=True)
    got = log_loo_mean(x)
    for i in range(3):
        for j in range(3):
            rest = [x[i, k].item() for k in range(3) if k != j]
            m = max(rest)
            want = m + math.log(sum(math.exp(v - m) for v in rest) / 2)
            assert got[i, j].item() == pytest.approx(want, rel=1e-5, abs=1e-5)
    got.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_crd_by_hand() -> None:
    obj = make("crd", dim=2.0, tau=TAU)
    set_linear(obj.embed_s.layers[1], [[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])
    set_linear(obj.embed_t.layers[1], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [0.0, 0.0])
    rows = sum(-(f(i, i) - math.log(sum(math.exp(f(i, j)) for j in range(3)))) for i in range(3)) / 3
    cols = sum(-(f(j, j) - math.log(sum(math.exp(f(i, j)) for i in range(3)))) for j in range(3)) / 3
    s, t = cls_batch(S_CLS, T_CLS)
    close(obj.pair_loss(s, t, torch.ones(3, 2), 1), (rows + cols) / 2)


def test_mi_alpha_requires_alpha() -> None:
    spec = IntermediateSpec(name="mi_alpha", alpha=0.5)
    with pytest.raises(ValueError, match="alpha"):
        OBJECTIVES.get("mi_alpha")(spec.model_copy(update={"alpha": None}), CTX, "hidden")


def test_unsupported_kind_rejected() -> None:
    with pytest.raises(ValueError, match="attention"):
        IntermediateSpec(name="cosine", features="attention")
    spec = IntermediateSpec(name="cosine")
    with pytest.raises(ValueError, match="does not support"):
        OBJECTIVES.get("cosine")(spec, CTX, "attention")


# ------------------------------------------------------------------------------------- every objective

CASES = [(n, "hidden") for n in ALL if n != "attention"] + [
    ("hidden_mse", "attention"),
    ("attention", "attention"),
]


def random_inputs(kind: str, n_tok: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    if kind == "hidden":
        return torch.randn(3, n_tok, 2, generator=g), torch.randn(3, n_tok, 3, generator=g)
    return torch.randn(3, 2, n_tok, n_tok, generator=g), torch.randn(3, 3, n_tok, n_tok, generator=g)


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_finite_scalar_and_gradient_reaches_student(name: str, kind: str) -> None:
    torch.manual_seed(0)
    obj = make(name, kind=kind)
    s_raw, t_raw = random_inputs(kind, 3, seed=1)
    s_raw.requires_grad_(True)
    s = s_raw.softmax(-1) if kind == "attention" else s_raw
    t = t_raw.softmax(-1) if kind == "attention" else t_raw
    loss = obj.pair_loss(s, t, torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0]]), 1)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert s_raw.grad is not None and torch.isfinite(s_raw.grad).all() and s_raw.grad.abs().sum() > 0
    params = [p for p in obj.parameters() if p.grad is not None]
    assert all(torch.isfinite(p.grad).all() for p in params)


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_padding_changes_nothing(name: str, kind: str) -> None:
    torch.manual_seed(0)
    obj = make(name, kind=kind)
    s, t = random_inputs(kind, 3, seed=2)
    if kind == "attention":
        s, t = s.softmax(-1), t.softmax(-1)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0]])
    # two extra padded positions; (non-negative, for attention) garbage everywhere a mask is 0
    s_pad, t_pad = (x.abs() * 100 + 7 for x in random_inputs(kind, 5, seed=3))
    pad_mask = torch.cat([mask, torch.zeros(3, 2, dtype=torch.long)], 1)
    for b in range(3):
        n = int(mask[b].sum())
        if kind == "hidden":
            s_pad[b, :n], t_pad[b, :n] = s[b, :n], t[b, :n]
        else:
            s_pad[b, :, :n, :n], t_pad[b, :, :n, :n] = s[b, :, :n, :n], t[b, :, :n, :n]
    base = obj.pair_loss(s, t, mask, 1)
    padded = obj.pair_loss(s_pad, t_pad, pad_mask, 1)
    assert padded.item() == pytest.approx(base.item(), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("name", ["nwj", "tuba", "mi_alpha", "infonce", "crd"])
def test_batch_of_one_is_finite(name: str) -> None:
    s, t = random_inputs("hidden", 2, seed=4)
    s = s[:1].requires_grad_(True)
    loss = make(name).pair_loss(s, t[:1], torch.ones(1, 2), 1)
    assert torch.isfinite(loss)
    loss.backward()


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_mi_alpha_limits_have_finite_gradients(alpha: float) -> None:
    s, t = random_inputs("hidden", 2, seed=5)
    s.requires_grad_(True)
    obj = make("mi_alpha", alpha=alpha)
    obj.pair_loss(s, t, torch.ones(3, 2), 1).backward()
    assert torch.isfinite(s.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in obj.parameters() if p.grad is not None)
