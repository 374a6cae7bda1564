"""Proxies on tiny BERTs and CNNs: the adapters, the transformer analogue, and models left untouched."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

from search.proxies import PROXIES, ProxyBatch, ProxyModel, build_proxy, random_like
from search.proxies.flops import bert_flops, hooked_flops

NAMES = [
    "body_params", "diswot", "diswot_relation", "diswot_semantic", "diswot_size", "fisher", "flops",
    "grad_norm", "nwot", "params", "size_then_diswot", "snip", "synflow",
]  # fmt: skip
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
    """``depth`` × (conv3×3, BN, ReLU) at ``width`` channels, GAP, linear head."""
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
    student.module.eval()  # scored in train mode (BN on batch statistics), handed back in eval mode
    teacher.module.requires_grad_(False)  # a frozen (e.g. trained) teacher
    before = {k: v.clone() for k, v in student.module.state_dict().items()}
    t_before = {k: v.clone() for k, v in teacher.module.state_dict().items()}

    first = build_proxy(name, seed=3)(teacher, student, batch)
    second = build_proxy(name, seed=3)(teacher, student, batch)

    assert isinstance(first, float) and math.isfinite(first)
    assert first == second
    for model, state in ((student, before), (teacher, t_before)):
        assert all(p.grad is None for p in model.module.parameters())
        after = model.module.state_dict()  # BN running statistics included
        assert all(torch.equal(state[k], after[k]) for k in state)
    assert not any(m.training for m in student.module.modules())
    assert not any(p.requires_grad for p in teacher.module.parameters())
    assert all(p.requires_grad for p in student.module.parameters())


def test_diswot_terms_are_zero_for_the_teacher_itself(
    text_batch: ProxyBatch, image_batch: ProxyBatch
) -> None:
    for family, batch in (("bert", text_batch), ("cnn", image_batch)):
        teacher, student = pair(family)
        for name in ("diswot_semantic", "diswot_relation"):
            assert build_proxy(name)(teacher, teacher, batch) == 0.0
            assert build_proxy(name)(teacher, student, batch) < 0  # channel counts differ: resized Gram


def test_transformer_analogue_masks_padding(text_batch: ProxyBatch) -> None:
    """Padding tokens change neither term: their ids are irrelevant and their hidden states are zeroed."""
    teacher, student = pair("bert")
    ids = text_batch.input_ids.clone()
    ids[text_batch.attention_mask == 0] = 7
    other = ProxyBatch(LABELS, input_ids=ids, attention_mask=text_batch.attention_mask,
                       token_type_ids=text_batch.token_type_ids)  # fmt: skip
    for name in ("diswot_semantic", "diswot_relation", "fisher", "nwot"):
        proxy = build_proxy(name)
        assert proxy(teacher, student, other) == pytest.approx(proxy(teacher, student, text_batch), rel=1e-6)
    feats, _ = student.forward(text_batch)
    assert student.mask(feats, text_batch)[1, 6:].abs().sum() == 0 and feats[1, 6:].abs().sum() > 0


def test_size_proxies_grow_with_depth(text_batch: ProxyBatch, image_batch: ProxyBatch) -> None:
    for name in ("params", "flops"):
        proxy = build_proxy(name)
        teacher = ProxyModel.from_hf(bert(1))
        by_depth = [proxy(teacher, ProxyModel.from_hf(bert(n)), text_batch) for n in (1, 2, 3)]
        assert by_depth == sorted(by_depth) and len(set(by_depth)) == 3
        cnns = [proxy(cnn(8, 1), cnn(8, n), image_batch) for n in (1, 2, 3)]
        assert cnns == sorted(cnns) and len(set(cnns)) == 3


def test_body_params_leave_the_embedding_tables_out(text_batch: ProxyBatch) -> None:
    net = bert(layers=2, hidden=16)
    tables = (100 + 32 + 2) * 16  # word (vocab 100), position (32), token type (2) tables, 16 wide
    total = sum(p.numel() for p in net.parameters())
    student = ProxyModel.from_hf(net)
    assert build_proxy("body_params")(student, student, text_batch) == total - tables
    assert build_proxy("params")(student, student, text_batch) == total


def test_bert_flops_is_the_linear_layers_plus_attention_products(
    text_batch: ProxyBatch, image_batch: ProxyBatch
) -> None:
    model = bert(2, 16, 2)
    t, h = text_batch.seq_len, 16
    linear = hooked_flops(ProxyModel.from_hf(model), text_batch)  # Linear layers only, [CLS]-only pooler
    assert bert_flops(model.config, t) == linear + 2 * (4 * t * t * h)
    conv, lin = 2 * 3 * 9 * 8 * 36, 2 * 8 * 3  # one 3×3 conv 3→8 on 6×6, linear 8→3
    assert hooked_flops(cnn(8, 1), image_batch) == conv + lin


def test_hf_adapter_runs_the_model_itself(text_batch: ProxyBatch) -> None:
    model = bert(2, 16, 2)
    adapter = ProxyModel.from_hf(model)
    with torch.no_grad():
        kw = {k: getattr(text_batch, k) for k in ("input_ids", "attention_mask", "token_type_ids")}
        ref = model(**kw, output_hidden_states=True)
        feats, logits = adapter.forward(text_batch)
    assert torch.equal(logits, ref.logits) and torch.equal(feats, ref.hidden_states[-1])
    assert adapter.classifier(text_batch) is model.classifier


def test_random_like_is_a_seeded_random_copy() -> None:
    trained = bert(1, 16, 2, seed=0)
    state = torch.get_rng_state()
    a, b, c = random_like(trained, seed=1), random_like(trained, seed=1), random_like(trained, seed=2)
    assert torch.equal(torch.get_rng_state(), state)
    assert a.config.to_dict() == trained.config.to_dict() and not a.training
    wa, wb, wc = (m.bert.encoder.layer[0].output.dense.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert not torch.equal(wa, trained.bert.encoder.layer[0].output.dense.weight)
