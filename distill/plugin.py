"""Shared base of the trainable plug-ins (output losses and intermediate objectives)."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Mapping
from typing import ClassVar

from torch import nn

from distill.settings import DistillSettings


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


_loaded: list[str] = []  # the plug-in references imported in this process, in order


def load_plugins(settings: DistillSettings | None = None) -> None:
    """Import the user's plug-in files named in ``AUTODISTILLER_PLUGINS`` (or ``settings``:
    ``os.pathsep``-separated ``.py`` paths or module names), each once per process. A plug-in registers its
    own losses, objectives or augmentations with the usual decorators; every process that builds pipelines
    (search trials included) loads the same list, so a custom method works on a cluster as it does locally.
    """
    for ref in (settings or DistillSettings.from_env()).plugins:
        if ref in _loaded:
            continue
        _loaded.append(ref)
        if ref.endswith(".py"):
            spec = importlib.util.spec_from_file_location(f"autodistiller_plugin_{len(_loaded) - 1}", ref)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load plug-in file {ref}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            importlib.import_module(ref)
