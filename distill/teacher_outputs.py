"""Teacher outputs, computed once per (teacher, encoded data) and reused by every student trained on them.

Logits, and only the hidden states / attention maps a pipeline asks for, are stored per layer as
safetensors under ``<cache>/<teacher fingerprint>-<data fingerprint>/`` (hidden and attention maps in
float16), so a second pipeline needing other layers computes just those. A process-wide memory cache
keeps loaded tensors for the next trial.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor
from tqdm.auto import tqdm

from distill.augment import mix
from distill.families import model_inputs
from distill.teacher import Teacher


@dataclass
class TeacherOutputs:
    logits: Tensor  # (N, C) float32
    hidden: dict[int, Tensor] = field(default_factory=dict)  # hidden index → (N, T, H) float16
    attentions: dict[int, Tensor] = field(default_factory=dict)  # layer → (N, heads, T, T) float16

    def select(self, idx: Tensor, length: int) -> TeacherOutputs:
        """Rows ``idx``, truncated to the first ``length`` tokens (right padding makes this exact)."""
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
        return TeacherOutputs(
            mix(self.logits, perm, lam),
            {k: mix(v, perm, lam) for k, v in self.hidden.items()},
            {k: mix(v, perm, lam) for k, v in self.attentions.items()},
        )


def data_fingerprint(enc: dict[str, Tensor]) -> str:
    h = hashlib.sha256()
    for k in ("input_ids", "attention_mask", "token_type_ids"):
        if k in enc:
            h.update(enc[k].contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


_MEMORY: dict[tuple[str, str], Tensor] = {}


def _names(hidden: Iterable[int], attentions: Iterable[int]) -> list[str]:
    return ["logits", *(f"hidden_{i}" for i in hidden), *(f"attn_{i}" for i in attentions)]


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
) -> TeacherOutputs:
    """Teacher logits (and requested features) for every row of ``enc``; computed only where not cached."""
    hidden_layers, attention_layers = sorted(set(hidden_layers)), sorted(set(attention_layers))
    folder = (cache_dir / f"{teacher.fingerprint}-{data_fingerprint(enc)}") if cache_dir else None
    key = str(folder) if folder else f"{teacher.fingerprint}-{data_fingerprint(enc)}"
    wanted = _names(hidden_layers, attention_layers)
    found: dict[str, Tensor] = {}
    for name in wanted:
        if (key, name) in _MEMORY:
            found[name] = _MEMORY[(key, name)]
        elif folder and (folder / f"{name}.safetensors").is_file():
            found[name] = _MEMORY[(key, name)] = load_file(folder / f"{name}.safetensors")["t"]
    missing = [n for n in wanted if n not in found]
    if missing:
        computed = _compute(teacher, enc, missing, batch_size, progress, desc)
        for name, tensor in computed.items():
            _MEMORY[(key, name)] = found[name] = tensor
            if folder:
                folder.mkdir(parents=True, exist_ok=True)
                tmp = folder / f".{name}.{os.getpid()}-{threading.get_ident()}.tmp"  # concurrent trials
                save_file({"t": tensor.contiguous()}, tmp)
                tmp.rename(folder / f"{name}.safetensors")
    return TeacherOutputs(
        found["logits"],
        {i: found[f"hidden_{i}"] for i in hidden_layers},
        {i: found[f"attn_{i}"] for i in attention_layers},
    )


_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _compute(
    teacher: Teacher, enc: dict[str, Tensor], names: list[str], batch_size: int, progress: bool, desc: str
) -> dict[str, Tensor]:
    model = teacher.model.eval()
    device = next(model.parameters()).device
    need_hidden = any(n.startswith("hidden_") for n in names)
    need_attn = any(n.startswith("attn_") for n in names)
    if need_attn and model.config._attn_implementation != "eager":
        model.set_attn_implementation("eager")
    parts: dict[str, list[Tensor]] = {n: [] for n in names}
    n = enc["input_ids"].shape[0]
    for start in tqdm(range(0, n, batch_size), desc=desc, disable=not progress, leave=False):
        sl = slice(start, start + batch_size)
        batch = {k: v[sl].to(device) for k, v in enc.items() if k in _INPUTS}
        inputs = model_inputs(model, batch)
        out = model(**inputs, output_hidden_states=need_hidden, output_attentions=need_attn)
        for name in names:
            kind, _, idx = name.partition("_")
            if kind == "logits":
                parts[name].append(out.logits.float().cpu())
            elif kind == "hidden":
                parts[name].append(out.hidden_states[int(idx)].half().cpu())
            else:
                parts[name].append(out.attentions[int(idx)].half().cpu())
    return {name: torch.cat(chunks) for name, chunks in parts.items()}


def clear_memory_cache() -> None:
    _MEMORY.clear()
