"""The GPU decisions, each made on a CPU-only machine: the device a setting names, the mixed-precision
policy, and the CPU training path unchanged (the same loss sequence as before mixed precision existed)."""

from __future__ import annotations

import pytest
import torch
import transformers

from distill.device import AmpPolicy, amp_policy, check_device, check_gpu_share, choose_device, resolve_device
from distill.encoding import TrainData
from distill.pipeline import IntermediateSpec, LogitLossSpec, Pipeline, Training
from distill.teacher_outputs import TeacherOutputs
from distill.trainer import train_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    ("setting", "cuda", "count", "expected"),
    [
        ("auto", True, 1, "cuda"),
        ("auto", False, 0, "cpu"),
        (None, False, 0, "cpu"),
        ("cpu", True, 2, "cpu"),
        ("CUDA", True, 1, "cuda"),
        ("cuda:1", True, 2, "cuda:1"),
    ],
)
def test_the_device_a_setting_names(setting, cuda, count, expected):
    assert choose_device(setting, cuda_available=cuda, cuda_count=count) == expected


@pytest.mark.parametrize(
    ("setting", "cuda", "count", "message"),
    [
        ("gpu", True, 1, "device must be one of auto, cpu, cuda, cuda:N"),
        ("cuda", False, 0, "CUDA is not available"),
        ("cuda:2", True, 2, "has 2 CUDA device"),
    ],
)
def test_a_device_that_cannot_be_had_is_a_clear_error(setting, cuda, count, message):
    with pytest.raises(ValueError, match=message):
        choose_device(setting, cuda_available=cuda, cuda_count=count)


def test_this_machine_resolves_auto_to_what_it_has():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert check_device(" Auto ") == "auto"


def test_mixed_precision_policy():
    assert amp_policy("cuda", bf16_supported=True) == AmpPolicy("cuda", torch.bfloat16, scaler=False)
    assert amp_policy("cuda", bf16_supported=False) == AmpPolicy("cuda", torch.float16, scaler=True)
    cpu = amp_policy("cpu", bf16_supported=True)  # a CPU with bf16 still trains in fp32
    assert not cpu.enabled and cpu.grad_scaler() is None
    with cpu.autocast():
        assert not torch.is_autocast_enabled("cpu")


@pytest.mark.parametrize("share", [0, 0.25, 0.5, 1, 2, 8])
def test_gpu_share_fractions_and_whole_gpus(share):
    check_gpu_share(share)


@pytest.mark.parametrize("share", [-1, 1.5, 2.25])
def test_gpu_share_is_a_fraction_or_whole(share):
    with pytest.raises(ValueError, match="fraction"):
        check_gpu_share(share)


def _tiny_run(amp: AmpPolicy | None = None) -> tuple[list[float], float]:
    """3 epochs of a seeded 2-layer student with KL + hidden-MSE on fixed random teacher outputs."""
    g = torch.Generator().manual_seed(0)
    n, t = 48, 12
    mask = (torch.arange(t)[None] < torch.randint(4, t + 1, (n, 1), generator=g)).long()
    ids = torch.randint(5, 100, (n, t), generator=g) * mask
    labels = torch.randint(0, 2, (n,), generator=torch.Generator().manual_seed(1))

    def data() -> TrainData:
        return TrainData(ids.clone(), mask.clone(), torch.zeros_like(ids), labels.clone())

    cfg = transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=32, num_labels=2,
    )  # fmt: skip
    teacher_cfg = transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=4, num_attention_heads=2
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(cfg)
    train, val = data(), data()
    gt = torch.Generator().manual_seed(2)
    train.teacher = TeacherOutputs(
        torch.randn(n, 2, generator=gt), {i: torch.randn(n, t, 32, generator=gt).half() for i in range(5)}
    )
    pipeline = Pipeline(
        loss=LogitLossSpec(name="kl"),
        intermediate=IntermediateSpec(name="hidden_mse", features="hidden", mapping="skip", weight=0.5),
        training=Training(lr=1e-3, epochs=3, batch_size=16, max_length=t, seed=0),
    )
    res = train_model(
        model, train, val, pipeline, teacher_cfg=teacher_cfg, progress=False, device="cpu", amp=amp
    )
    with torch.no_grad():
        total = float(sum(p.double().sum() for p in model.parameters()))
    return [h["train_loss"] for h in res.history], total


#: ``_tiny_run()`` on the trainer before mixed precision and device staging were added (commit 67094ad).
BEFORE = ([1.9345443646113079, 1.8841535647710164, 1.8587531248728435], 157.09490394350752)


def test_cpu_training_is_unchanged_by_the_gpu_path():
    losses, total = _tiny_run()
    assert losses == pytest.approx(BEFORE[0], rel=1e-6, abs=0)
    assert total == pytest.approx(BEFORE[1], rel=1e-7, abs=0)


@pytest.mark.parametrize(
    "policy", [AmpPolicy("cpu", torch.bfloat16), AmpPolicy("cpu", torch.float16, scaler=True)], ids=str
)
def test_the_autocast_path_trains(policy):
    """The CUDA path's code (autocast, and the GradScaler for fp16) run on the CPU's autocast: it trains,
    and in lower precision (the losses are not fp32's)."""
    losses, _ = _tiny_run(policy)
    assert all(x == x and x < 10 for x in losses)
    assert losses[-1] < losses[0]
    assert losses != pytest.approx(BEFORE[0], rel=1e-6, abs=0)


def test_the_teacher_is_placed_by_the_setting(tiny_teacher):
    from distill.teacher import load_teacher

    teacher = load_teacher(tiny_teacher).to("cpu")
    assert next(teacher.model.parameters()).device.type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            teacher.to("cuda")


def test_training_data_moves_to_the_device_once(monkeypatch):
    """On a GPU the inputs move once per trial, and teacher outputs too when they fit the limit (``meta``
    stands in for CUDA here); on the CPU the data is used as is."""
    import distill.trainer as trainer

    data = TrainData(
        *(torch.zeros(4, 3, dtype=torch.long) for _ in range(3)), torch.zeros(4, dtype=torch.long)
    )
    data.teacher = TeacherOutputs(torch.zeros(4, 2), {1: torch.zeros(4, 3, 8).half()})
    assert trainer._on_device(data, torch.device("cpu")) is data
    moved = trainer._on_device(data, torch.device("meta"))
    assert moved.input_ids.is_meta and moved.labels.is_meta and moved.teacher.hidden[1].is_meta
    monkeypatch.setattr(trainer, "RESIDENT_TEACHER_BYTES", 16)
    kept = trainer._on_device(data, torch.device("meta"))
    assert kept.input_ids.is_meta and kept.teacher is data.teacher  # too big: copied batch by batch
