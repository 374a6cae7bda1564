"""Layer mappings, EMD weights, and the IntermediateLoss that puts them together with an objective."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from distill.intermediate import IntermediateLoss
from distill.mapping import attention_pairs, emd_weights, layer_pairs
from distill.objectives import ObjectiveContext
from distill.pipeline import IntermediateSpec

# ------------------------------------------------------------------------------------------- mappings

EXPECTED = {
    (2, 6): {
        "skip": [(1, 3), (2, 6)],
        "last": [(1, 5), (2, 6)],
        "uniform": [(0, 0), (1, 3), (2, 6)],
    },
    (3, 6): {
        "skip": [(1, 2), (2, 4), (3, 6)],
        "last": [(1, 4), (2, 5), (3, 6)],
        "uniform": [(0, 0), (1, 2), (2, 4), (3, 6)],
    },
    (4, 6): {
        "skip": [(1, 1), (2, 2), (3, 3), (4, 4)],  # k = 6 // 4 = 1
        "last": [(1, 3), (2, 4), (3, 5), (4, 6)],
        "uniform": [(0, 0), (1, 2), (2, 3), (3, 5), (4, 6)],  # 1.5 → 2, 3, 4.5 → 5, 6 (halves round up)
    },
}


@pytest.mark.parametrize(("n_s", "n_t", "mapping"), [(*k, m) for k, v in EXPECTED.items() for m in v])
def test_fixed_mappings_by_hand(n_s: int, n_t: int, mapping: str) -> None:
    assert layer_pairs(mapping, n_s, n_t) == EXPECTED[(n_s, n_t)][mapping]


@pytest.mark.parametrize(("n_s", "n_t"), list(EXPECTED))
def test_emd_is_all_layer_pairs(n_s: int, n_t: int) -> None:
    pairs = layer_pairs("emd", n_s, n_t)
    assert len(pairs) == n_s * n_t
    assert pairs[:2] == [(1, 1), (1, 2)] and pairs[-1] == (n_s, n_t)
    assert set(pairs) == {(i, j) for i in range(1, n_s + 1) for j in range(1, n_t + 1)}


def test_student_deeper_than_teacher_is_clamped() -> None:
    assert layer_pairs("skip", 6, 4) == [(1, 1), (2, 2), (3, 3), (4, 4), (5, 4), (6, 4)]
    assert layer_pairs("last", 6, 4) == [(1, 1), (2, 1), (3, 1), (4, 2), (5, 3), (6, 4)]
    assert layer_pairs("uniform", 6, 4) == [(0, 0), (1, 1), (2, 1), (3, 2), (4, 3), (5, 3), (6, 4)]


def test_attention_pairs_shift_and_drop_embeddings() -> None:
    assert attention_pairs(layer_pairs("uniform", 2, 6)) == [(0, 2), (1, 5)]
    assert attention_pairs(layer_pairs("skip", 3, 6)) == [(0, 1), (1, 3), (2, 5)]


def test_bad_mapping_arguments() -> None:
    with pytest.raises(ValueError, match="No layer mapping `diagonal` registered"):
        layer_pairs("diagonal", 2, 6)
    with pytest.raises(ValueError, match="at least one layer"):
        layer_pairs("skip", 0, 6)


# ------------------------------------------------------------------------------------------ emd weights


def lp_optimum(c: np.ndarray) -> float:
    n, m = c.shape
    rows = [np.kron(np.eye(n)[i], np.ones(m)) for i in range(n)]
    cols = [np.kron(np.ones(n), np.eye(m)[j]) for j in range(m)]
    res = linprog(c.ravel(), A_eq=np.array(rows + cols), b_eq=[1 / n] * n + [1 / m] * m, bounds=(0, None))
    return float(res.fun)


@pytest.mark.parametrize(("n_s", "n_t"), [(2, 6), (3, 6), (4, 6), (3, 3)])
def test_emd_weights_marginals_and_near_optimal(n_s: int, n_t: int) -> None:
    costs = torch.rand(n_s, n_t, generator=torch.Generator().manual_seed(n_s * 10 + n_t)) * 5
    w = emd_weights(costs)
    assert w.shape == (n_s, n_t) and (w >= 0).all()
    torch.testing.assert_close(w.sum(1), torch.full((n_s,), 1 / n_s))
    torch.testing.assert_close(w.sum(0), torch.full((n_t,), 1 / n_t))
    gap = (w * costs).sum().item() - lp_optimum(costs.double().numpy())
    assert -1e-6 <= gap <= 0.03 * (costs.max() - costs.min()).item()


def test_emd_weights_put_mass_on_cheap_pairs() -> None:
    costs = torch.ones(3, 3) - torch.eye(3)  # diagonal is free
    w = emd_weights(costs)
    assert (w.diagonal() > 0.99 / 3).all()
    # 2 student × 4 teacher: student 1 is cheap on teachers 1–2, student 2 on teachers 3–4
    costs = torch.tensor([[0.0, 0.1, 5.0, 5.0], [5.0, 5.0, 0.0, 0.2]])
    w = emd_weights(costs)
    assert w[0, :2].sum() > 0.49 and w[1, 2:].sum() > 0.49


def test_emd_weights_constant_costs_give_uniform_plan() -> None:
    w = emd_weights(torch.full((2, 4), 3.0))
    torch.testing.assert_close(w, torch.full((2, 4), 1 / 8))


# ------------------------------------------------------------------------------------ IntermediateLoss

CTX = ObjectiveContext(
    student_layers=2, teacher_layers=4, student_dim=4, teacher_dim=6, student_heads=2, teacher_heads=3
)
B, T = 2, 3


def batch(seed: int = 0) -> tuple:
    g = torch.Generator().manual_seed(seed)
    s_hidden = tuple(torch.randn(B, T, CTX.student_dim, generator=g, requires_grad=True) for _ in range(3))
    t_hidden = {j: torch.randn(B, T, CTX.teacher_dim, generator=g) for j in range(5)}
    s_attn = tuple(torch.randn(B, 2, T, T, generator=g).softmax(-1).requires_grad_(True) for _ in range(2))
    t_attn = {j: torch.randn(B, 3, T, T, generator=g).softmax(-1) for j in range(4)}
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    return s_hidden, t_hidden, s_attn, t_attn, mask


def build(name: str = "hidden_mse", features: str = "hidden", mapping: str = "skip", **kw: object):
    torch.manual_seed(0)
    return IntermediateLoss(IntermediateSpec(name=name, features=features, mapping=mapping, **kw), CTX)


@pytest.mark.parametrize("mapping", ["skip", "last", "uniform", "emd"])
def test_intermediate_loss_end_to_end(mapping: str) -> None:
    loss_fn = build(mapping=mapping)
    s_hidden, t_hidden, _, _, mask = batch()
    needed = {j: t_hidden[j] for j in loss_fn.teacher_hidden_layers}  # the trainer caches only these
    loss = loss_fn(s_hidden, needed, None, None, mask)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    used = {i for i, _ in loss_fn.hidden_pairs}
    for i, h in enumerate(s_hidden):
        assert (h.grad is not None) == (i in used)
    assert any(p.grad is not None for p in loss_fn.parameters())


def test_teacher_layers_needed() -> None:
    assert build(mapping="skip").teacher_hidden_layers == [2, 4]
    assert build(mapping="uniform").teacher_hidden_layers == [0, 2, 4]
    assert build(mapping="emd").teacher_hidden_layers == [1, 2, 3, 4]
    both = build(features="both", mapping="uniform")
    assert both.teacher_hidden_layers == [0, 2, 4] and both.teacher_attention_layers == [1, 3]
    att = build(name="attention", features="attention", mapping="last")
    assert att.teacher_hidden_layers == [] and att.teacher_attention_layers == [2, 3]


def test_fixed_mapping_is_the_mean_of_pair_losses() -> None:
    loss_fn = build(mapping="uniform")
    s_hidden, t_hidden, _, _, mask = batch()
    obj = loss_fn.objectives["hidden"]
    pairs = [(0, 0), (1, 2), (2, 4)]
    expected = sum(obj.pair_loss(s_hidden[i], t_hidden[j], mask, i) for i, j in pairs) / 3
    torch.testing.assert_close(loss_fn(s_hidden, t_hidden, None, None, mask), expected)


def test_emd_mapping_is_the_transport_weighted_cost() -> None:
    loss_fn = build(name="cosine", mapping="emd")
    s_hidden, t_hidden, _, _, mask = batch()
    obj = loss_fn.objectives["hidden"]
    costs = torch.stack(
        [torch.stack([obj.pair_loss(s_hidden[i], t_hidden[j], mask, i) for j in range(1, 5)]) for i in (1, 2)]
    )
    expected = (emd_weights(costs.detach()) * costs).sum()
    torch.testing.assert_close(loss_fn(s_hidden, t_hidden, None, None, mask), expected)


@pytest.mark.parametrize("mapping", ["skip", "emd"])
def test_both_features_is_hidden_plus_attention(mapping: str) -> None:
    both = build(features="both", mapping=mapping)
    hidden = build(features="hidden", mapping=mapping)
    attn = build(features="attention", mapping=mapping)
    hidden.objectives["hidden"].load_state_dict(both.objectives["hidden"].state_dict())
    s_hidden, t_hidden, s_attn, t_attn, mask = batch(1)
    loss = both(s_hidden, t_hidden, s_attn, t_attn, mask)
    expected = hidden(s_hidden, t_hidden, None, None, mask) + attn(s_hidden, {}, s_attn, t_attn, mask)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert s_attn[0].grad is not None and s_attn[1].grad is not None


def test_mi_alpha_through_intermediate_loss() -> None:
    loss_fn = build(name="mi_alpha", mapping="last", alpha=0.5)
    s_hidden, t_hidden, _, _, mask = batch(2)
    loss = loss_fn(s_hidden, t_hidden, None, None, mask)
    assert torch.isfinite(loss)
    loss.backward()


def test_none_and_missing_attentions_are_errors() -> None:
    with pytest.raises(ValueError, match="none"):
        IntermediateLoss(IntermediateSpec(name="none"), CTX)
    loss_fn = build(name="attention", features="attention")
    s_hidden, t_hidden, _, _, mask = batch()
    with pytest.raises(ValueError, match="output_attentions"):
        loss_fn(s_hidden, t_hidden, None, None, mask)


def test_teacher_tensors_follow_student_dtype() -> None:
    loss_fn = build(mapping="skip")
    s_hidden, t_hidden, _, _, mask = batch()
    half = {j: t.half() for j, t in t_hidden.items()}
    loss = loss_fn(s_hidden, half, None, None, mask)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
