"""Settings read once from the environment (``AUTODISTILLER_*``); nothing else reads ``os.environ``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """``AUTODISTILLER_HOME``: the data folder (caches, uploads, exported students, the embedded SQLite DB).
    ``AUTODISTILLER_DATABASE_URL``: SQLAlchemy URL of the trial database (default: SQLite in the home).
    ``AUTODISTILLER_PLUGINS``: plug-in files or modules (``os.pathsep``-separated) with custom components.
    """

    home: Path
    database_url: str
    plugins: tuple[str, ...] = ()

    @classmethod
    def from_env(cls) -> Settings:
        default_home = Path.home() / ".cache" / "autodistiller"
        home = Path(os.environ.get("AUTODISTILLER_HOME") or default_home).expanduser()
        url = os.environ.get("AUTODISTILLER_DATABASE_URL") or f"sqlite:///{home / 'autodistiller.db'}"
        plugins = tuple(p for p in os.environ.get("AUTODISTILLER_PLUGINS", "").split(os.pathsep) if p)
        return cls(home=home, database_url=url, plugins=plugins)

    @property
    def teachers(self) -> Path:
        return self.home / "teachers"

    @property
    def teacher_outputs(self) -> Path:
        return self.home / "teacher_outputs"
