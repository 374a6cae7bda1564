"""The KD library's settings: only what every process that builds pipelines must agree on (Ray workers
included), read from the environment once per process. The service's settings are ``store.settings``."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DistillSettings:
    """``AUTODISTILLER_PLUGINS``: plug-in files or modules (``os.pathsep``-separated) with your components."""

    plugins: tuple[str, ...] = ()

    @classmethod
    def from_env(cls) -> DistillSettings:
        refs = os.environ.get("AUTODISTILLER_PLUGINS", "").split(os.pathsep)
        return cls(plugins=tuple(p for p in refs if p))
