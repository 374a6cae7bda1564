"""Output (logit-level) losses, one module each, filed in ``LOSSES`` by name."""

from distill.losses.base import LOSSES, LogitInputs, LogitLoss, LossContext
from distill.plugin import import_submodules, load_plugins

import_submodules(__name__)
load_plugins()

__all__ = ["LOSSES", "LogitInputs", "LogitLoss", "LossContext", "build_loss"]


def build_loss(spec, ctx: LossContext) -> LogitLoss:
    """Instantiate the loss a ``LogitLossSpec`` names."""
    return LOSSES.get(spec.name)(spec, ctx)
