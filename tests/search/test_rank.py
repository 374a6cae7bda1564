"""``search.proxies.rank``: CNNs found by hooks or given a feature map, and Hugging Face families."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import (
    AlbertConfig,
    AlbertForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from search.proxies import ProxyModel, as_batch, rank
from search.proxies.models import find_feature_module

pytestmark = pytest.mark.usefixtures("one_thread")


class Net(nn.Module):
    """stem → stage1 → stage2 (stride 2) → functional GAP → fc; ``depth`` conv-BN blocks per stage."""

    def __init__(self, depth: int, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)

        def stage(c_in: int, c: int, stride: int) -> nn.Sequential:
            convs = [nn.Conv2d(c_in if i == 0 else c, c, 3, stride if i == 0 else 1, 1) for i in range(depth)]
            return nn.Sequential(*[m for conv in convs for m in (conv, nn.BatchNorm2d(c), nn.ReLU())])

        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.stage1, self.stage2 = stage(4, 4, 1), stage(4, 8, 2)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(F.adaptive_avg_pool2d(self.stage2(self.stage1(self.stem(x))), 1).flatten(1))


IMAGES = torch.randn(12, 1, 8, 8, generator=torch.Generator().manual_seed(0))
LABELS = torch.arange(12) % 3


def test_cnn_feature_map_is_the_last_stage_before_pooling() -> None:
    net = Net(2, seed=0)
    assert find_feature_module(net, IMAGES) is net.stage2
    assert ProxyModel.from_torch(net).classifier(as_batch(IMAGES, LABELS)) is net.fc


def test_rank_cnns_found_by_hooks_equals_given_features() -> None:
    teacher, students = Net(3, seed=0), [Net(d, seed=d) for d in (1, 2, 3)]
    for s in students:
        s.eval()
    found = rank(teacher, students, IMAGES, LABELS)
    assert rank(teacher, students, IMAGES, LABELS, features="stage2") == found
    assert rank(teacher, students, IMAGES, LABELS, features=lambda m: m.stage2) == found
    assert len(found) == 3 and len(set(found)) > 1 and all(0 <= s <= 1 for s in found)
    assert rank(teacher, students, IMAGES, LABELS, proxy="params") == sorted(
        float(sum(p.numel() for p in s.parameters())) for s in students
    )
    assert not any(s.training for s in students)


def _hf_models() -> list[nn.Module]:
    common = {"vocab_size": 50, "num_labels": 3, "max_position_embeddings": 40}
    torch.manual_seed(0)
    return [
        RobertaForSequenceClassification(
            RobertaConfig(
                hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, **common
            )
        ),
        DistilBertForSequenceClassification(
            DistilBertConfig(dim=16, n_layers=2, n_heads=2, hidden_dim=32, **common)
        ),
        AlbertForSequenceClassification(
            AlbertConfig(
                embedding_size=8,
                hidden_size=16,
                num_hidden_layers=1,
                num_attention_heads=2,
                intermediate_size=32,
                **common,
            )
        ),
    ]


class Pair(Net):
    """``forward`` returns ``(pooled features, logits)``, as NAS-Bench-201's and DisWOT's models do."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        pooled = F.adaptive_avg_pool2d(self.stage2(self.stage1(self.stem(x))), 1).flatten(1)
        return pooled, self.fc(pooled)


class Named(Net):
    """``forward`` returns ``{"logits": …}``."""

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {"logits": super().forward(x)}


def test_rank_reads_logits_from_tuples_and_mappings() -> None:
    plain = rank(Net(3, seed=0), [Net(d, seed=d) for d in (1, 2, 3)], IMAGES, LABELS, proxy="diswot")
    for cls in (Pair, Named):
        got = rank(cls(3, seed=0), [cls(d, seed=d) for d in (1, 2, 3)], IMAGES, LABELS, proxy="diswot")
        assert got == pytest.approx(plain, rel=1e-9)
    assert len(set(plain)) == 3


@pytest.mark.parametrize(
    "proxy", ["diswot", "diswot_size", "size_then_diswot", "nwot", "synflow", "fisher", "grad_norm"]
)
def test_rank_hf_families_through_hidden_states(proxy: str) -> None:
    models = [m.eval() for m in _hf_models()]
    g = torch.Generator().manual_seed(0)
    inputs = {
        "input_ids": torch.randint(3, 50, (6, 9), generator=g),
        "attention_mask": torch.ones(6, 9, dtype=torch.long),
    }
    inputs["attention_mask"][0, 5:] = 0
    scores = rank(models[0], models, inputs, torch.arange(6) % 3, proxy=proxy)
    assert len(scores) == 3 and len(set(scores)) > 1


def test_hf_classifier_is_the_final_linear_to_the_labels() -> None:
    roberta, distil, albert = _hf_models()

    batch = as_batch({"input_ids": torch.randint(3, 50, (2, 5))}, torch.tensor([0, 1]))
    assert ProxyModel.from_hf(roberta).classifier(batch) is roberta.classifier.out_proj
    assert ProxyModel.from_hf(distil).classifier(batch) is distil.classifier
    assert ProxyModel.from_hf(albert).classifier(batch) is albert.classifier
