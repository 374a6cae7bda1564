"""Output (logit-level) losses, one module each, filed in ``LOSSES`` by name."""

from distill.losses.base import LOSSES, LogitInputs, LogitLoss, LossContext
from distill.plugin import import_submodules, load_plugins

import_submodules(__name__)
load_plugins()

__all__ = ["LOSSES", "LogitInputs", "LogitLoss", "LossContext", "build_loss", "uses_temperature"]


def build_loss(spec, ctx: LossContext) -> LogitLoss:
    """Instantiate the loss a ``LogitLossSpec`` names."""
    return LOSSES.get(spec.name)(spec, ctx)


def uses_temperature(name: str) -> bool:
    """Whether the output loss ``name`` depends on its temperature (a fact each loss class carries)."""
    return LOSSES.get(name).uses_temperature
