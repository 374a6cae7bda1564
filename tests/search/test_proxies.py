"""Zero-cost proxies on tiny BERTs and a tiny CNN family defined here."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

from search.proxies import (
    PROXIES,
    ProxyBatch,
    ProxyModel,
    build_proxy,
    gram,
    gram_distance,
    random_like,
    row_normalise,
    zscore,
)
from search.proxies._diswot import resize_gram
from search.proxies.flops import bert_flops, hooked_flops

NAMES = [
    "diswot",
    "diswot_relation",
    "diswot_semantic",
    "fisher",
    "flops",
    "grad_norm",
    "nwot",
    "params",
    "snip",
    "synflow",
]
LABELS = torch.tensor([0, 1, 2, 0, 1, 2])


pytestmark = pytest.mark.usefixtures("one_thread")


def bert(layers: int = 2, hidden: int = 16, heads: int = 2, seed: int = 0) -> BertForSequenceClassification:
    cfg = BertConfig(
        vocab_size=100, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=2 * hidden, max_position_embeddings=32, num_labels=3,
    )  # fmt: skip
    torch.manual_seed(seed)
    return BertForSequenceClassification(cfg).eval()


def cnn(width: int = 8, depth: int = 2, seed: int = 0) -> ProxyModel:
    """A tiny conv net: ``depth`` × (conv3×3, BN, ReLU) at ``width`` channels, GAP, linear head."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Conv2d(3 if i == 0 else width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
    return ProxyModel.from_cnn(nn.Sequential(*layers), nn.Linear(width, 3))


@pytest.fixture(scope="module")
def text_batch() -> ProxyBatch:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 100, (6, 10), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[3, 4:] = 0
    return ProxyBatch(labels=LABELS, input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids))


@pytest.fixture(scope="module")
def image_batch() -> ProxyBatch:
    return ProxyBatch(
        labels=LABELS, images=torch.randn(6, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    )


def pair(family: str) -> tuple[ProxyModel, ProxyModel]:
    """(teacher, student): wider/deeper teacher, so channel counts differ."""
    if family == "bert":
        return ProxyModel.from_hf(bert(2, 24, 2, seed=1)), ProxyModel.from_hf(bert(1, 16, 2, seed=2))
    return cnn(12, 2, seed=1), cnn(8, 1, seed=2)


def test_registry_lists_every_proxy() -> None:
    assert PROXIES.names() == NAMES
    assert all(e.description for e in PROXIES.entries())


@pytest.mark.parametrize("family", ["bert", "cnn"])
@pytest.mark.parametrize("name", NAMES)
def test_proxy_is_finite_deterministic_and_leaves_models_untouched(
    name: str, family: str, text_batch: ProxyBatch, image_batch: ProxyBatch
) -> None:
    batch = text_batch if family == "bert" else image_batch
    teacher, student = pair(family)
    student.module.train()  # must be scored in eval mode and handed back in train mode
    teacher.module.requires_grad_(False)  # a frozen (e.g. trained) teacher
    before = {k: v.clone() for k, v in student.module.state_dict().items()}
    t_before = {k: v.clone() for k, v in teacher.module.state_dict().items()}

    first = build_proxy(name, seed=3)(teacher, student, batch)
    second = build_proxy(name, seed=3)(teacher, student, batch)

    assert isinstance(first, float) and math.isfinite(first)
    assert first == second
    for model, state in ((student, before), (teacher, t_before)):
        assert all(p.grad is None for p in model.module.parameters())
        after = model.module.state_dict()
        assert all(torch.equal(state[k], after[k]) for k in state)
    assert all(m.training for m in student.module.modules())
    assert not any(p.requires_grad for p in teacher.module.parameters())
    assert all(p.requires_grad for p in student.module.parameters())


def test_gram_helpers_by_hand() -> None:
    zs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    zt = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    assert torch.equal(gram(zt), torch.tensor([[2.0, 1.0], [1.0, 1.0]]))
    gt = row_normalise(gram(zt))
    r5, r2 = math.sqrt(5), math.sqrt(2)
    assert torch.allclose(gt, torch.tensor([[2 / r5, 1 / r5], [1 / r2, 1 / r2]]))
    assert torch.equal(row_normalise(gram(zs)), torch.eye(2))
    by_hand = ((1 - 2 / r5) ** 2 + (1 / r5) ** 2 + (1 / r2) ** 2 + (1 - 1 / r2) ** 2) / 4
    assert gram_distance(torch.eye(2), gt).item() == pytest.approx(by_hand)  # 2 × 2 Gram, B = 2
    # per-sample Grams: Σ_b ‖ΔG_b‖² / (n_b · B); sample 0 differs by 1 in one entry, sample 1 by 2 in two
    gs = torch.zeros(2, 2, 2)
    gt3 = gs.clone()
    gt3[0, 0, 0] = 1.0
    gt3[1, 0, 1] = gt3[1, 1, 0] = 2.0
    assert gram_distance(gs, gt3).item() == pytest.approx((1 / 2 + 8 / 2) / 2)
    assert gram_distance(gs, gt3, torch.tensor([1, 2])).item() == pytest.approx((1 / 1 + 8 / 2) / 2)
    assert torch.equal(row_normalise(torch.zeros(2, 2)), torch.zeros(2, 2))
    assert resize_gram(torch.ones(3, 4, 4), 6).shape == (3, 6, 6)


def test_diswot_relation_self_is_zero_and_other_is_negative(text_batch: ProxyBatch) -> None:
    teacher = ProxyModel.from_hf(bert(2, 24, 2, seed=1))
    proxy = build_proxy("diswot_relation")
    assert proxy(teacher, teacher, text_batch) == 0.0
    assert proxy(teacher, ProxyModel.from_hf(bert(1, 16, 2, seed=2)), text_batch) < 0
    assert build_proxy("diswot_semantic")(teacher, teacher, text_batch) == 0.0
    net = cnn(8, 2)
    assert build_proxy("diswot_relation")(net, net, ProxyBatch(LABELS, images=torch.randn(6, 3, 5, 5))) == 0.0


def test_diswot_standardises_over_the_candidates(text_batch: ProxyBatch) -> None:
    teacher = ProxyModel.from_hf(random_like(bert(2, 24, 2), seed=5))
    students = [ProxyModel.from_hf(bert(layers, 16, 2, seed=layers)) for layers in (1, 2, 3)]
    sem = build_proxy("diswot_semantic").score_all(teacher, students, text_batch)
    rel = build_proxy("diswot_relation").score_all(teacher, students, text_batch)
    proxy = build_proxy("diswot")
    scores = proxy.score_all(teacher, students, text_batch)
    expected = [a + b for a, b in zip(zscore(sem), zscore(rel), strict=True)]
    assert scores == pytest.approx(expected)
    assert sum(scores) == pytest.approx(0.0, abs=1e-9)
    assert proxy(teacher, students[0], text_batch) == pytest.approx(sem[0] + rel[0])  # raw sum alone
    assert proxy.score_all(teacher, students[:1], text_batch) == [0.0]  # nothing to standardise against
    by_hand = [(x - 2) / math.sqrt(2 / 3) for x in (1.0, 2.0, 3.0)]
    assert zscore([1.0, 2.0, 3.0]) == pytest.approx(by_hand)


def test_size_proxies_grow_with_depth(text_batch: ProxyBatch, image_batch: ProxyBatch) -> None:
    for name in ("params", "flops"):
        proxy = build_proxy(name)
        teacher = ProxyModel.from_hf(bert(1))
        by_depth = [proxy(teacher, ProxyModel.from_hf(bert(n)), text_batch) for n in (1, 2, 3)]
        assert by_depth == sorted(by_depth) and len(set(by_depth)) == 3
        cnns = [proxy(cnn(8, 1), cnn(8, n), image_batch) for n in (1, 2, 3)]
        assert cnns == sorted(cnns) and len(set(cnns)) == 3


def test_bert_flops_is_the_linear_layers_plus_attention_products(
    text_batch: ProxyBatch, image_batch: ProxyBatch
) -> None:
    model = bert(2, 16, 2)
    t, h = text_batch.seq_len, 16
    linear = hooked_flops(ProxyModel.from_hf(model), text_batch)  # Linear layers only, [CLS]-only pooler
    assert bert_flops(model.config, t) == linear + 2 * (4 * t * t * h)
    net = cnn(8, 1)
    conv, lin = 2 * 3 * 9 * 8 * 36, 2 * 8 * 3  # one 3×3 conv 3→8 on 6×6, linear 8→3
    assert hooked_flops(net, image_batch) == conv + lin


def test_hf_adapter_matches_the_model(text_batch: ProxyBatch) -> None:
    model = bert(2, 16, 2)
    adapter = ProxyModel.from_hf(model)
    with torch.no_grad():
        ref = model(
            input_ids=text_batch.input_ids,
            attention_mask=text_batch.attention_mask,
            token_type_ids=text_batch.token_type_ids,
        ).logits
        feats, logits = adapter.forward(text_batch)
    assert torch.allclose(logits, ref, atol=1e-6)
    assert feats.shape == (6, 10, 16)
    assert torch.equal(adapter.pooled(feats, text_batch), feats[:, 0])
    mean = ProxyModel.from_hf(model, pooling="mean").pooled(feats, text_batch)
    assert torch.allclose(mean[3], feats[3, :4].mean(0))
    w = model.classifier.weight @ model.bert.pooler.dense.weight
    assert torch.allclose(adapter.classifier_weight(), w)
    assert len(adapter.activation_modules()) == 2


def test_cam_weighting_and_channel_gram(text_batch: ProxyBatch, image_batch: ProxyBatch) -> None:
    for family, batch in (("bert", text_batch), ("cnn", image_batch)):
        teacher, student = pair(family)
        for over in ("positions", "channels"):
            value = build_proxy("diswot_semantic", weighting="cam", over=over)(teacher, student, batch)
            assert math.isfinite(value) and value <= 0


def test_random_like_is_a_seeded_random_copy() -> None:
    trained = bert(1, 16, 2, seed=0)
    state = torch.get_rng_state()
    a, b, c = random_like(trained, seed=1), random_like(trained, seed=1), random_like(trained, seed=2)
    assert torch.equal(torch.get_rng_state(), state)
    assert a.config.to_dict() == trained.config.to_dict() and not a.training
    wa, wb, wc = (m.bert.encoder.layer[0].output.dense.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert not torch.equal(wa, trained.bert.encoder.layer[0].output.dense.weight)
