"""API keys: created (stored hashed), looked up, listed, revoked; and the embedded setup's local key."""

from __future__ import annotations

import hashlib
import os
import secrets

from sqlalchemy import select, update

from store.models import ApiKey, new_id, utcnow
from store.session import make_engine, session_factory
from store.settings import Settings
from store.tx import Db, read, tx

KEY_PREFIX = "adk_"


def hash_key(key: str) -> str:
    """SHA-256 of a key: keys are 256-bit random tokens, so a fast hash is enough (nothing to brute-force)."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(db: Db, name: str) -> tuple[ApiKey, str]:
    """A new API key; returns the row and the key itself, which is stored only as its hash."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with tx(db) as s:
        row = ApiKey(id=new_id(), name=name, prefix=key[:10], key_hash=hash_key(key), created_at=utcnow())
        s.add(row)
        return row, key


def key_for(db: Db, key: str) -> ApiKey | None:
    """The live (not revoked) key row for ``key``, or ``None``."""
    q = select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
    with read(db) as s:
        return s.scalars(q).first()


def list_keys(db: Db) -> list[ApiKey]:
    with read(db) as s:
        return list(s.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)))


def revoke_key(db: Db, key_id: str) -> bool:
    """Revoke by id or prefix; ``False`` if no live key matched."""
    q = update(ApiKey).where((ApiKey.id == key_id) | (ApiKey.prefix == key_id), ApiKey.revoked_at.is_(None))
    with tx(db) as s:
        return s.execute(q.values(revoked_at=utcnow())).rowcount > 0


def ensure_local_key(settings: Settings) -> tuple[str | None, str]:
    """The embedded setup's key: the one in ``<home>/api-key`` if still valid, else a new ``local`` key
    when no key exists yet. Returns (key or ``None``, a line to print)."""
    db = session_factory(make_engine(settings.database_url))
    path = settings.key_file
    if path.is_file() and key_for(db, key := path.read_text().strip()) is not None:
        return key, f"API key (from {path}): {key}"
    if any(k.revoked_at is None for k in list_keys(db)):
        return None, "API keys exist: use yours (`autodistiller keys create --name NAME` makes another)"
    _, key = create_key(db, "local")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key, f"API key (new, saved to {path}): {key}"


def get_key(db: Db, key_id: str) -> ApiKey | None:
    """The live (not revoked) key row with id ``key_id``, or ``None``."""
    q = select(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
    with read(db) as s:
        return s.scalars(q).first()
