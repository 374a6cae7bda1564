"""Teacher outputs on disk: equal to the teacher's forward, read row by row (never whole), rebuilt when a
cached file is partial or corrupt, shared without copying the tensors."""

from __future__ import annotations

import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

from distill import teacher_outputs as to
from distill.feature_store import CorruptFile, NpyFile, NpyWriter, Rows
from distill.teacher import Teacher
from distill.teacher_outputs import TeacherOutputs, clear_memory_cache, teacher_outputs

N, T = 40, 12


@pytest.fixture(scope="module")
def teacher() -> Teacher:
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=30, hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32
    )
    cfg._attn_implementation = "eager"
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghij"])}
    model = BertForSequenceClassification(cfg).eval()
    return Teacher(model, BertTokenizer(vocab=vocab), "tiny", "tiny-fp")


@pytest.fixture(scope="module")
def enc() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(3, T + 1, (N,), generator=g)
    mask = (torch.arange(T)[None] < lengths[:, None]).long()
    ids = torch.randint(5, 30, (N, T), generator=g) * mask
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def _outputs(teacher, enc, cache: Path | None, **kw) -> TeacherOutputs:
    clear_memory_cache()  # as a new process would: only the disk cache serves
    kw = {"hidden_layers": [0, 2, 3], "attention_layers": [1], **kw}
    return teacher_outputs(teacher, enc, cache_dir=cache, batch_size=16, progress=False, **kw)


def test_cached_outputs_equal_the_teachers_forward(teacher, enc, tmp_path):
    with torch.no_grad():
        ref = teacher.model(**enc, output_hidden_states=True, output_attentions=True)
    seen: list[tuple[int, int]] = []
    out = _outputs(teacher, enc, tmp_path, on_batch=lambda d, n: seen.append((d, n)))
    assert seen == [(16, N), (32, N), (40, N)]  # progress after each batch
    again = _outputs(teacher, enc, tmp_path)  # read back from disk
    for o in (out, again):
        torch.testing.assert_close(o.logits, ref.logits, rtol=0, atol=1e-5)
        idx = torch.tensor([39, 0, 7, 7, 21])
        sel = o.select(idx, 9)
        for i in (0, 2, 3):
            want = ref.hidden_states[i][idx, :9]
            torch.testing.assert_close(sel.hidden[i], want, rtol=1e-3, atol=2e-3)
        torch.testing.assert_close(sel.attentions[1], ref.attentions[1][idx, :, :9, :9], rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(
            o.hidden[3][:, 0].float(), ref.hidden_states[3][:, 0], rtol=1e-3, atol=2e-3
        )
    files = sorted(p.name for p in next(tmp_path.iterdir()).iterdir())
    assert files == ["attn_1.npy", "hidden_0.npy", "hidden_2.npy", "hidden_3.npy", "logits.npy"]


def test_in_memory_outputs_index_like_the_files(teacher, enc, tmp_path):
    disk, ram = _outputs(teacher, enc, tmp_path), _outputs(teacher, enc, None)
    assert isinstance(ram.hidden[2], torch.Tensor) and ram.hidden[2].dtype == torch.float16
    idx = torch.tensor([3, 1, 30])
    a, b = disk.select(idx, 5), ram.select(idx, 5)
    assert torch.equal(a.hidden[2], b.hidden[2]) and torch.equal(a.attentions[1], b.attentions[1])


def test_a_trial_gets_references_not_tensors(teacher, enc, tmp_path):
    out = _outputs(teacher, enc, tmp_path)
    assert all(isinstance(v, Rows) for v in [*out.hidden.values(), *out.attentions.values()])
    assert all(isinstance(p, NpyFile) for v in out.hidden.values() for p in v.parts)
    on_disk = sum(p.stat().st_size for p in next(tmp_path.iterdir()).iterdir())
    shipped = len(pickle.dumps(out))  # what Ray's object store carries to each trial
    assert shipped < out.logits.numel() * 4 + 4096 < on_disk
    back = pickle.loads(pickle.dumps(out))
    assert torch.equal(
        back.select(torch.tensor([5]), T).hidden[3], out.select(torch.tensor([5]), T).hidden[3]
    )


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_reading_every_batch_keeps_resident_memory_bounded(tmp_path):
    rows, shape = 1200, (128, 128)  # 39 MB of float16 attention-like rows
    with NpyWriter(tmp_path / "big.npy", rows) as w:
        for start in range(0, rows, 100):
            w.write(np.full((100, *shape), start, dtype=np.float16))
    feature = Rows([NpyFile(tmp_path / "big.npy")])
    base = peak = _rss_kb()
    for start in range(0, rows, 32):
        batch = feature[torch.arange(start, min(start + 32, rows)), :64]
        assert batch.shape[1:] == (64, 128) and float(batch[0, 0, 0]) == start // 100 * 100
        peak = max(peak, _rss_kb())
    assert (peak - base) * 1024 < 8 * 2**20  # a memory map would have grown by the whole 39 MB file


def test_partial_or_corrupt_cache_files_are_recomputed(teacher, enc, tmp_path, monkeypatch):
    good = _outputs(teacher, enc, tmp_path)
    folder = next(tmp_path.iterdir())
    calls: list[list[str]] = []
    real = to._compute
    monkeypatch.setattr(to, "_compute", lambda t, e, names, *a: calls.append(names) or real(t, e, names, *a))
    hidden = folder / "hidden_2.npy"
    size = hidden.stat().st_size
    with open(hidden, "r+b") as f:
        f.truncate(size - 100)  # a torn file
    (folder / "attn_1.npy").write_bytes(b"not a numpy file")
    dead, live = folder / ".hidden_3.npy.123-4.tmp", folder / ".hidden_3.npy.567-8.tmp"
    dead.write_bytes(b"a writer that died")  # never read, and swept once stale
    live.write_bytes(b"a writer still writing")
    os.utime(dead, (time.time() - 7200, time.time() - 7200))
    out = _outputs(teacher, enc, tmp_path)
    assert calls == [["hidden_2", "attn_1"]]
    assert hidden.stat().st_size == size
    assert not dead.exists() and live.exists()
    idx = torch.arange(N)
    assert torch.equal(out.select(idx, T).hidden[2], good.select(idx, T).hidden[2])
    _outputs(teacher, enc, tmp_path)
    assert calls == [["hidden_2", "attn_1"]]  # repaired: served from disk


def test_a_failed_writer_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError), NpyWriter(tmp_path / "x.npy", 10) as w:
        w.write(np.zeros((4, 3)))
        raise RuntimeError("teacher crashed")
    with pytest.raises(ValueError, match="4 of 10 rows"), NpyWriter(tmp_path / "y.npy", 10) as w:
        w.write(np.zeros((4, 3)))
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "z.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(CorruptFile, match=r"z\.npy"):
        NpyFile(tmp_path / "z.npy")


def test_concatenated_parts_index_as_one(tmp_path):
    a = torch.randn(5, 4, 3).half()
    b = torch.randn(7, 4, 3).half()
    with NpyWriter(tmp_path / "b.npy", 7) as w:
        w.write(b[:3].numpy())
        w.write(b[3:].numpy())
    rows = Rows.cat([a, Rows([NpyFile(tmp_path / "b.npy")])])
    whole = torch.cat([a, b])
    idx = torch.tensor([11, 0, 6, 4, 5])
    assert rows.shape == (12, 4, 3)
    assert torch.equal(rows[idx, :2], whole[idx, :2])
    assert torch.equal(rows[:, 0], whole[:, 0])
    assert torch.equal(rows[idx, :, 1:], whole[idx, :, 1:])


def test_the_teacher_runs_under_the_amp_policy(teacher, enc):
    """Mixed precision (bf16 autocast, as on a CUDA device; here on the CPU) changes the teacher's numbers a
    little and its stored dtypes not at all; the default CPU policy is full precision."""
    from distill.device import AmpPolicy

    with torch.no_grad():
        ref = teacher.model(**enc).logits
    full = _outputs(teacher, enc, None, hidden_layers=[2], attention_layers=[])
    torch.testing.assert_close(full.logits, ref, rtol=0, atol=1e-5)
    bf16 = AmpPolicy("cpu", torch.bfloat16)
    bf16 = _outputs(teacher, enc, None, hidden_layers=[2], attention_layers=[], amp=bf16)
    assert bf16.logits.dtype == torch.float32 and bf16.hidden[2].dtype == torch.float16
    assert not torch.equal(bf16.logits, full.logits)  # autocast really ran
    torch.testing.assert_close(bf16.logits, ref, rtol=0.05, atol=1e-3)  # bf16: 8 bits of mantissa
    assert not torch.equal(bf16.hidden[2][:], full.hidden[2][:])
