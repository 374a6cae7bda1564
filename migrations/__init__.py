"""Alembic migrations of the trial database (installed as a package, so a non-editable install migrates)."""
