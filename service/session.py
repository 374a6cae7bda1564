"""The dashboard's session: a signed, expiring token in an HttpOnly cookie — never the API key itself — and
the checks every form POST passes (same origin, and the form's CSRF token).

A token is ``<key id>.<expiry>.<HMAC-SHA256>``, signed with the key's stored hash: only the server (which
holds the hash, never the key) can make one, it dies with the key (revoke) or at its expiry, and a stolen
cookie gives no API key.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from store import ApiKey
from store.keys import get_key
from store.tx import Db

COOKIE = "autodistiller_session"
SESSION_SECONDS = 12 * 3600


def _sign(key: ApiKey, message: str) -> str:
    return hmac.new(key.key_hash.encode(), message.encode(), hashlib.sha256).hexdigest()


def make_token(key: ApiKey, now: float | None = None) -> str:
    """A session token for ``key`` that expires in ``SESSION_SECONDS``."""
    expiry = int((now if now is not None else time.time()) + SESSION_SECONDS)
    payload = f"{key.id}.{expiry}"
    return f"{payload}.{_sign(key, payload)}"


def key_for_token(db: Db, token: str | None, now: float | None = None) -> ApiKey | None:
    """The live key a well-signed, unexpired ``token`` names, else ``None``."""
    parts = (token or "").split(".")
    if len(parts) != 3 or not parts[1].isdigit() or len(parts[0]) != 32:
        return None
    key_id, expiry, sig = parts
    if int(expiry) < (now if now is not None else time.time()):
        return None
    key = get_key(db, key_id)
    if key is None or not hmac.compare_digest(sig, _sign(key, f"{key_id}.{expiry}")):
        return None
    return key


def csrf_token(key: ApiKey, token: str) -> str:
    """The hidden field of the session's forms: bound to the session token, so another site cannot know it."""
    return _sign(key, "csrf." + token)


def check_csrf(key: ApiKey, token: str, given: str) -> None:
    """403 unless ``given`` is the CSRF token of this session."""
    if not hmac.compare_digest(given.encode(), csrf_token(key, token).encode()):
        raise HTTPException(403, "the form's CSRF token is missing or stale: reload the page, submit again")


def check_origin(request: Request) -> None:
    """403 unless the POST comes from a page of this server: ``Origin`` (or, failing it, ``Referer``) must
    name this host. Browsers send one of them on every form POST; a foreign site cannot forge either."""
    source = request.headers.get("origin") or request.headers.get("referer")
    host = request.headers.get("host", "")
    if not source or source == "null" or urlsplit(source).netloc.lower() != host.lower():
        raise HTTPException(403, "cross-site form submission refused (Origin does not match this server)")
