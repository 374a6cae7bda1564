"""``nwot``: NASWOT (Mellor et al. 2021), the log-determinant of the activation-pattern kernel."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from search.proxies.base import Proxy, register
from search.proxies.batch import ProxyBatch
from search.proxies.models import ProxyModel

#: Rectifier-like activations, caught whether called as modules or functions.
ACTIVATIONS = {
    F.relu, F.relu_, torch.relu, torch.relu_, Tensor.relu, Tensor.relu_, F.relu6, F.gelu, F.silu,
    F.leaky_relu, F.elu, F.hardswish, F.mish,
}  # fmt: skip
_MODULES = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.LeakyReLU, nn.ELU, nn.Hardswish, nn.Mish)


def activation_modules(module: nn.Module) -> list[nn.Module]:
    """Activation modules: torch's rectifier-likes and Hugging Face's ``transformers.activations``."""
    return [
        m for m in module.modules()
        if isinstance(m, _MODULES) or type(m).__module__ == "transformers.activations"
    ]  # fmt: skip


class _Codes(TorchFunctionMode):
    """Records ``[out > 0]`` of every activation module and every activation function called outside one
    (e.g. ``F.relu`` in a forward; HF's ``gelu_new`` is a formula, caught as its module), flattened per
    sample, padding tokens zeroed."""

    def __init__(self, batch: ProxyBatch) -> None:
        super().__init__()
        self.mask = batch.attention_mask
        self.size = batch.size
        self.inside = 0
        self.codes: list[Tensor] = []

    def record(self, out: Any) -> None:
        if isinstance(out, Tensor) and out.dim() >= 2 and out.shape[0] == self.size:
            c = (out.detach() > 0).double()
            m = torch.ones_like(c)
            if self.mask is not None and c.dim() == 3 and c.shape[:2] == self.mask.shape:
                m = m * self.mask.to(c).unsqueeze(-1)
            self.codes.append(torch.stack([c * m, (1 - c) * m]).flatten(2))

    def enter(self, *_: Any) -> None:
        self.inside += 1

    def leave(self, _: nn.Module, __: Any, out: Any) -> None:
        self.inside -= 1
        self.record(out)

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if func in ACTIVATIONS and not self.inside:
            self.record(out)
        return out


@register("nwot", "NASWOT log|det K| of the binary activation codes (ReLU/GELU modules or functions)")
class Nwot(Proxy):
    """Per sample ``b``, ``c_b`` is the binary code ``[a > 0]`` of every unit output by a rectifier-like
    activation (module or functional call: ``F.relu`` counts as much as ``nn.ReLU``; transformers' GELUs
    over real tokens only), ``m_b`` its mask; ``K = (m⊙c)(m⊙c)ᵀ + (m⊙(1−c))(m⊙(1−c))ᵀ`` counts the units on
    which two samples agree, and ``score = log|det K|`` (``slogdet``, float64)."""

    @torch.no_grad()
    def _measure(self, student: ProxyModel, batch: ProxyBatch, state: Any) -> float:
        mode = _Codes(batch)
        modules = activation_modules(student.module)
        handles = [m.register_forward_pre_hook(mode.enter) for m in modules]
        handles += [m.register_forward_hook(mode.leave) for m in modules]
        try:
            with mode:
                student.forward(batch)
        finally:
            for h in handles:
                h.remove()
        if not mode.codes:
            raise ValueError("nwot needs ReLU/GELU-like activations; the model runs none")
        on, off = torch.cat(mode.codes, dim=-1)
        return float(torch.linalg.slogdet(on @ on.T + off @ off.T).logabsdet)
