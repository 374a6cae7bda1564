"""Settings read once from the environment (``AUTODISTILLER_*``); nothing else reads ``os.environ``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path  # caches: fine-tuned teachers, teacher outputs, exported students

    @classmethod
    def from_env(cls) -> Settings:
        home = os.environ.get("AUTODISTILLER_HOME") or Path.home() / ".cache" / "autodistiller"
        return cls(home=Path(home).expanduser())

    @property
    def teachers(self) -> Path:
        return self.home / "teachers"

    @property
    def teacher_outputs(self) -> Path:
        return self.home / "teacher_outputs"
