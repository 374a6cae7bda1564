"""Teacher outputs, computed once per (teacher, encoded data) and reused by every student trained on them.

Logits, and only the hidden states / attention maps a pipeline asks for, are stored per layer as ``.npy``
files under ``<cache>/<teacher fingerprint>-<data fingerprint>/`` (hidden states and attention maps in
float16, logits in float32), written batch by batch (``distill.feature_store``), so a second pipeline
needing other layers computes just those. Logits are loaded into memory (N·C floats); features stay on
disk and each training step reads the rows of its batch (``TeacherOutputs.select``). Without a cache
folder everything is kept in memory. Per example: ``T·H·2`` bytes per hidden layer, ``heads·T²·2`` per
attention layer (README, "Teacher outputs").
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from distill.augment import mix
from distill.device import AmpPolicy, amp_for
from distill.families import model_inputs
from distill.feature_store import CorruptFile, NpyFile, NpyWriter, Rows, sweep_stale
from distill.teacher import Teacher

log = logging.getLogger(__name__)

#: a feature of every row: on disk (``Rows``) or in memory (a tensor); both index the same way
Feature = Tensor | Rows


@dataclass
class TeacherOutputs:
    logits: Tensor  # (N, C) float32
    hidden: dict[int, Feature] = field(default_factory=dict)  # hidden index → (N, T, H) float16
    attentions: dict[int, Feature] = field(default_factory=dict)  # layer → (N, heads, T, T) float16

    def select(self, idx: Tensor, length: int) -> TeacherOutputs:
        """Rows ``idx``, truncated to the first ``length`` tokens (right padding makes this exact), as
        float32 tensors; from disk only these rows (and tokens) are read."""
        return TeacherOutputs(
            self.logits[idx],
            {k: v[idx, :length].float() for k, v in self.hidden.items()},
            {k: v[idx, :, :length, :length].float() for k, v in self.attentions.items()},
        )

    def only(self, hidden: Iterable[int], attentions: Iterable[int]) -> TeacherOutputs:
        """The same outputs restricted to some layers; a missing layer is an error."""
        missing = [f"hidden {i}" for i in hidden if i not in self.hidden]
        missing += [f"attention {i}" for i in attentions if i not in self.attentions]
        if missing:
            raise ValueError(f"shared teacher outputs lack {', '.join(missing)}")
        return TeacherOutputs(
            self.logits, {i: self.hidden[i] for i in hidden}, {i: self.attentions[i] for i in attentions}
        )

    def mixed(self, perm: Tensor, lam: float) -> TeacherOutputs:
        """Mixup targets: every output mixed like the inputs (features of a mixed input are approximated)."""
        return self.map(lambda v: mix(v, perm, lam))

    def map(self, fn: Callable[[Feature], Feature]) -> TeacherOutputs:
        """Every output passed through ``fn`` (e.g. a copy to a device)."""
        return TeacherOutputs(
            fn(self.logits),  # type: ignore[arg-type]
            {k: fn(v) for k, v in self.hidden.items()},
            {k: fn(v) for k, v in self.attentions.items()},
        )

    @classmethod
    def concat(cls, parts: list[TeacherOutputs]) -> TeacherOutputs:
        """The rows of ``parts`` one after the other (features stay where they are: nothing is copied)."""
        first = parts[0]
        return cls(
            torch.cat([p.logits for p in parts]),
            {k: Rows.cat([p.hidden[k] for p in parts]) for k in first.hidden},
            {k: Rows.cat([p.attentions[k] for p in parts]) for k in first.attentions},
        )


def data_fingerprint(enc: dict[str, Tensor]) -> str:
    h = hashlib.sha256()
    for k in ("input_ids", "attention_mask", "token_type_ids"):
        if k in enc:
            h.update(enc[k].contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


#: what this process already opened or computed: logits tensors, ``Rows`` over files (a few bytes each),
#: and, for outputs computed without a cache folder, the tensors themselves
_MEMORY: dict[tuple[str, str], Feature] = {}


def _names(hidden: Iterable[int], attentions: Iterable[int]) -> list[str]:
    return ["logits", *(f"hidden_{i}" for i in hidden), *(f"attn_{i}" for i in attentions)]


def _open(path: Path, rows: int, name: str) -> Feature | None:
    """The cached file of ``name``, or None when absent or unusable (then it is deleted and recomputed)."""
    if not path.is_file():
        return None
    try:
        f = NpyFile(path)
        if f.shape[0] != rows:
            raise CorruptFile(f"{path}: {f.shape[0]} rows, the data has {rows}")
    except CorruptFile as e:
        log.warning("recomputing teacher outputs: %s", e)
        path.unlink(missing_ok=True)
        return None
    return _load(f, name)


@torch.no_grad()
def teacher_outputs(
    teacher: Teacher,
    enc: dict[str, Tensor],
    *,
    hidden_layers: Iterable[int] = (),
    attention_layers: Iterable[int] = (),
    cache_dir: Path | None = None,
    batch_size: int = 64,
    progress: bool = True,
    desc: str = "teacher outputs",
    on_batch: Callable[[int, int], None] | None = None,
    amp: AmpPolicy | None = None,
) -> TeacherOutputs:
    """Teacher logits (and requested features) for every row of ``enc``; computed only where not cached.

    ``on_batch(done, total)`` is called after each batch the teacher runs (rows done so far). The teacher
    runs on its model's device under ``amp`` (default: that device's policy, ``distill.device.amp_for``:
    bf16 autocast on CUDA, full precision on the CPU); logits are stored as float32 either way.
    """
    hidden_layers, attention_layers = sorted(set(hidden_layers)), sorted(set(attention_layers))
    folder = (cache_dir / f"{teacher.fingerprint}-{data_fingerprint(enc)}") if cache_dir else None
    key = str(folder) if folder else f"{teacher.fingerprint}-{data_fingerprint(enc)}"
    n = int(enc["input_ids"].shape[0])
    found: dict[str, Feature] = {}
    for name in _names(hidden_layers, attention_layers):
        if (key, name) in _MEMORY:
            found[name] = _MEMORY[(key, name)]
        elif folder and (got := _open(folder / f"{name}.npy", n, name)) is not None:
            found[name] = _MEMORY[(key, name)] = got
    missing = [m for m in _names(hidden_layers, attention_layers) if m not in found]
    if missing:
        computed = _compute(teacher, enc, missing, folder, batch_size, progress, desc, on_batch, amp)
        for name, feature in computed.items():
            _MEMORY[(key, name)] = found[name] = feature
    logits = found["logits"]
    assert isinstance(logits, Tensor)
    return TeacherOutputs(
        logits,
        {i: found[f"hidden_{i}"] for i in hidden_layers},
        {i: found[f"attn_{i}"] for i in attention_layers},
    )


_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _pick(out, name: str) -> Tensor:
    kind, _, idx = name.partition("_")
    if kind == "logits":
        return out.logits.float()
    return (out.hidden_states if kind == "hidden" else out.attentions)[int(idx)].half()


def _compute(
    teacher: Teacher,
    enc: dict[str, Tensor],
    names: list[str],
    folder: Path | None,
    batch_size: int,
    progress: bool,
    desc: str,
    on_batch: Callable[[int, int], None] | None,
    amp: AmpPolicy | None,
) -> dict[str, Feature]:
    """Run the teacher in batches; each batch goes straight to its file (or to a preallocated tensor)."""
    model = teacher.model.eval()
    device = next(model.parameters()).device
    amp = amp or amp_for(device)
    need_hidden = any(n.startswith("hidden_") for n in names)
    need_attn = any(n.startswith("attn_") for n in names)
    if need_attn and model.config._attn_implementation != "eager":
        model.set_attn_implementation("eager")
    n = int(enc["input_ids"].shape[0])
    memory: dict[str, Tensor] = {}
    if folder:
        sweep_stale(folder)  # what writers killed mid-way left behind
    with ExitStack() as stack:
        writers: dict[str, NpyWriter] = {}
        for name in names if folder else ():
            writers[name] = stack.enter_context(NpyWriter(folder / f"{name}.npy", n, _dtype(name)))
        for start in tqdm(range(0, n, batch_size), desc=desc, disable=not progress, leave=False):
            sl = slice(start, start + batch_size)
            batch = {k: v[sl].to(device) for k, v in enc.items() if k in _INPUTS}
            with amp.autocast():
                out = model(
                    **model_inputs(model, batch),
                    output_hidden_states=need_hidden,
                    output_attentions=need_attn,
                )
            for name in names:
                part = _pick(out, name).cpu()
                if folder:
                    writers[name].write(part.numpy())
                else:
                    if name not in memory:
                        memory[name] = part.new_empty((n, *part.shape[1:]))
                    memory[name][sl] = part
            if on_batch is not None:
                on_batch(min(start + batch_size, n), n)
    if not folder:
        return dict(memory)
    return {name: _load(NpyFile(folder / f"{name}.npy"), name) for name in names}


def _dtype(name: str) -> type:
    return np.float32 if name == "logits" else np.float16


def _load(f: NpyFile, name: str) -> Feature:
    """Logits into memory; features as rows read on demand."""
    return Rows([f])[:].float() if name == "logits" else Rows([f])


def clear_memory_cache() -> None:
    _MEMORY.clear()
