"""Shared base of the trainable plug-ins (output losses and intermediate objectives)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from typing import ClassVar

from torch import nn


class PluginModule(nn.Module):
    """An ``nn.Module`` plug-in with named float parameters that have defaults.

    Subclasses set ``defaults``; a pipeline may override any of them through its ``params`` dict,
    and an unknown key is rejected before anything is built.
    """

    defaults: ClassVar[dict[str, float]] = {}

    @classmethod
    def check_params(cls, params: Mapping[str, float]) -> None:
        unknown = sorted(set(params) - set(cls.defaults))
        if unknown:
            allowed = ", ".join(sorted(cls.defaults)) or "none"
            raise ValueError(f"{cls.__name__} has no parameter(s) {unknown} (allowed: {allowed})")

    @classmethod
    def resolve(cls, params: Mapping[str, float]) -> dict[str, float]:
        cls.check_params(params)
        return {**cls.defaults, **params}


def import_submodules(package: str) -> None:
    """Import every module of ``package`` so their ``@register`` decorators run."""
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_") and info.name != "base":
            importlib.import_module(f"{package}.{info.name}")
