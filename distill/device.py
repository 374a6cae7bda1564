"""Where the KD library runs, and in what precision: the ``device`` setting resolved to a torch device, the
mixed-precision policy for it, and the host → device copies.

Every decision is a pure function of the setting and the machine's facts (``cuda_available``,
``bf16_supported``), so each can be tested on a CPU-only machine; :func:`resolve_device` and
:func:`amp_for` read the facts from torch. The CPU path is untouched: no autocast, no scaler, no copies.
torch is imported inside the functions that use it: the service's settings validate the setting with
:func:`check_device`, and the command line starts without loading torch.
"""

from __future__ import annotations

import contextlib
import re
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import Tensor

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device(setting: str) -> str:
    """``setting`` when it is a device setting (``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``), else a
    ``ValueError`` that names the choices."""
    if not isinstance(setting, str) or not _DEVICE.match(setting.strip().lower()):
        raise ValueError(f"device must be one of {', '.join(DEVICE_CHOICES)}; got {setting!r}")
    return setting.strip().lower()


def choose_device(setting: str | None, *, cuda_available: bool, cuda_count: int = 1) -> str:
    """The torch device a ``setting`` names on a machine with (or without) CUDA: ``auto`` (or None) is
    ``cuda`` where CUDA is available, else ``cpu``; asking for CUDA where there is none is an error."""
    s = check_device(setting or "auto")
    if s == "auto":
        return "cuda" if cuda_available else "cpu"
    if s.startswith("cuda"):
        if not cuda_available:
            raise ValueError(f"device {s!r} asked for, but CUDA is not available on this machine")
        index = int(s.partition(":")[2] or 0)
        if index >= cuda_count:
            raise ValueError(f"device {s!r} asked for, but this machine has {cuda_count} CUDA device(s)")
    return s


def check_gpu_share(gpus: float | None) -> None:
    """A trial's GPU share is none (0), a fraction (0 < x ≤ 1) or a whole number of GPUs; else a
    ``ValueError``."""
    if gpus is not None and (gpus < 0 or (gpus > 1 and gpus != int(gpus))):
        raise ValueError(f"gpus_per_trial is a fraction (0 < x ≤ 1) or a whole number of GPUs; got {gpus}")


def resolve_device(setting: str | torch.device | None = None) -> torch.device:
    """``choose_device`` with this machine's facts (a ``torch.device`` is taken as is)."""
    import torch

    if isinstance(setting, torch.device):
        return setting
    available = torch.cuda.is_available()
    count = torch.cuda.device_count() if available else 0
    return torch.device(choose_device(setting, cuda_available=available, cuda_count=count))


@dataclass(frozen=True)
class AmpPolicy:
    """Autocast ``dtype`` (None: full precision) and whether a ``GradScaler`` guards fp16 gradients."""

    device_type: str = "cpu"
    dtype: torch.dtype | None = None
    scaler: bool = False

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    def autocast(self) -> AbstractContextManager[object]:
        """The forward pass's autocast context (a no-op when disabled)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        import torch

        return torch.autocast(self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        import torch

        return torch.amp.GradScaler(self.device_type) if self.scaler else None


def amp_policy(device_type: str, bf16_supported: bool) -> AmpPolicy:
    """Mixed precision for a device: bf16 autocast on CUDA where the GPU has bf16 (Ampere and later),
    else fp16 autocast with a ``GradScaler``; none on the CPU (its path stays bit-for-bit fp32)."""
    import torch

    if device_type != "cuda":
        return AmpPolicy(device_type)
    if bf16_supported:
        return AmpPolicy("cuda", torch.bfloat16)
    return AmpPolicy("cuda", torch.float16, scaler=True)


def amp_for(device: torch.device) -> AmpPolicy:
    """``amp_policy`` with this machine's facts for ``device``."""
    import torch

    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    return amp_policy(device.type, bf16)


def to_device(t: Tensor, device: torch.device) -> Tensor:
    """``t`` on ``device``: the same tensor on the CPU; on CUDA a non-blocking copy (pinned when ``t`` is)."""
    if t.device == device:
        return t
    return t.to(device, non_blocking=device.type == "cuda" and t.is_pinned())


def pinned(t: Tensor, device: torch.device) -> Tensor:
    """``t`` in page-locked memory when it will be copied to a CUDA ``device`` (copies overlap compute);
    ``t`` itself otherwise."""
    if device.type != "cuda" or t.device.type != "cpu" or t.is_pinned():
        return t
    return t.pin_memory()
