"""The service's one settings object, read once from the environment (``AUTODISTILLER_*``) by the entry point
(the command line, a bench script) and passed down. The KD library's own settings are ``distill.settings``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from distill.device import check_device

#: The meta-dataset shipped beside the recommender (``bench/build_meta.py`` rebuilds it).
SHIPPED_PRIORS = Path(__file__).resolve().parent.parent / "search" / "priors" / "meta.csv"


class SettingsError(ValueError):
    """An ``AUTODISTILLER_*`` variable that cannot be used; the message names it."""


@dataclass(frozen=True)
class Settings:
    """``AUTODISTILLER_HOME``: the data folder (caches, uploads, exported students, the embedded SQLite DB).
    ``AUTODISTILLER_DATABASE_URL``: SQLAlchemy URL of the trial database (default: SQLite in the home).
    ``AUTODISTILLER_MAX_UPLOAD_MB``: the largest dataset or teacher upload the API accepts (default 500).
    ``AUTODISTILLER_IMPORT_ROOTS``: folders (``os.pathsep``-separated) whose files may be registered by
    server-side path through the API (default: the home's ``imports`` folder). Nothing outside them is read.
    ``AUTODISTILLER_URL`` / ``AUTODISTILLER_API_KEY``: where the client and the CLI verbs find the API, and
    the key they send (default: the local key ``autodistiller serve`` wrote to ``<home>/api-key``).
    ``AUTODISTILLER_PRIORS``: the meta-dataset CSV the recommender learns from besides the trial database
    (default: the one shipped in ``search/priors/``; ``none``: learn from this database only).
    ``AUTODISTILLER_DEVICE``: where the worker runs the teacher (profiling, DisWOT, teacher outputs) and the
    trials run: ``auto`` (CUDA where a trial or the worker sees a GPU, else the CPU), ``cpu``, ``cuda`` or
    ``cuda:N``; resolved where the work runs, so ``auto`` means each Ray node's own device.
    """

    home: Path
    database_url: str
    max_upload_mb: float = 500.0
    import_roots: tuple[Path, ...] = ()
    api_url: str = "http://127.0.0.1:8000"
    api_key: str | None = None
    priors: Path | None = None  # None: no prior meta-dataset
    device: str = "auto"

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "device", check_device(self.device))
        except ValueError as e:
            raise SettingsError(f"AUTODISTILLER_DEVICE: {e}") from None
        if self.priors is not None and not Path(self.priors).is_file():
            raise SettingsError(f"AUTODISTILLER_PRIORS: no meta-dataset file at {self.priors}")

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        default_home = Path.home() / ".cache" / "autodistiller"
        home = Path(env.get("AUTODISTILLER_HOME") or default_home).expanduser()
        url = env.get("AUTODISTILLER_DATABASE_URL") or f"sqlite:///{home / 'autodistiller.db'}"
        roots = env.get("AUTODISTILLER_IMPORT_ROOTS", "").split(os.pathsep)
        try:
            max_mb = float(env.get("AUTODISTILLER_MAX_UPLOAD_MB") or 500)
        except ValueError:
            raise SettingsError("AUTODISTILLER_MAX_UPLOAD_MB must be a number of megabytes") from None
        if max_mb <= 0:
            raise SettingsError("AUTODISTILLER_MAX_UPLOAD_MB must be positive")
        priors_env = env.get("AUTODISTILLER_PRIORS", "")
        if priors_env.lower() == "none":
            priors = None
        elif priors_env:
            priors = Path(priors_env).expanduser()
        else:
            priors = SHIPPED_PRIORS if SHIPPED_PRIORS.is_file() else None
        return cls(
            home=home,
            database_url=url,
            max_upload_mb=max_mb,
            import_roots=tuple(Path(p).expanduser() for p in roots if p),
            api_url=env.get("AUTODISTILLER_URL") or cls.api_url,
            api_key=env.get("AUTODISTILLER_API_KEY") or None,
            priors=priors,
            device=env.get("AUTODISTILLER_DEVICE") or "auto",
        )

    @property
    def teachers(self) -> Path:
        return self.home / "teachers"

    @property
    def teacher_outputs(self) -> Path:
        return self.home / "teacher_outputs"

    @property
    def uploads(self) -> Path:
        """Uploaded datasets and teachers, one folder per id."""
        return self.home / "uploads"

    @property
    def artifacts(self) -> Path:
        return self.home / "artifacts"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def key_file(self) -> Path:
        """The local API key that ``autodistiller serve`` creates for the embedded setup."""
        return self.home / "api-key"

    @property
    def allowed_roots(self) -> tuple[Path, ...]:
        """Where a server-side path given through the API may point."""
        return self.import_roots or (self.home / "imports",)
