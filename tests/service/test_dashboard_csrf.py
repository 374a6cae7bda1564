"""The dashboard's forms refuse cross-site submissions, and its cookie holds a signed, expiring session token
rather than the API key (issue 17, finding 5)."""

from __future__ import annotations

import re
import time

from api_checks import Api, unchanged
from fastapi.testclient import TestClient

from service.session import COOKIE, SESSION_SECONDS, key_for_token, make_token
from store import create_key, revoke_key
from store.keys import key_for

HERE = {"Origin": "http://testserver"}
EVIL = {"Origin": "https://evil.example"}


def _key(api: Api) -> str:
    return api.a["Authorization"].removeprefix("Bearer ")


def _login(api: Api) -> TestClient:
    client = TestClient(api.app, raise_server_exceptions=False, follow_redirects=False)
    r = client.post("/ui/login", data={"key": _key(api)}, headers=HERE)
    assert r.status_code == 303, r.text
    return client


def _form(api: Api, csrf: str | None) -> dict[str, str]:
    body = {"dataset_id": api.dataset_id, "teacher_id": api.teacher_id, "trials": "2"}
    return body if csrf is None else {**body, "csrf": csrf}


def test_login_refuses_foreign_or_missing_origin(api: Api) -> None:
    client = TestClient(api.app, raise_server_exceptions=False, follow_redirects=False)
    for headers in (EVIL, {}, {"Origin": "null"}, {"Referer": "https://evil.example/x"}):
        r = client.post("/ui/login", data={"key": _key(api)}, headers=headers)
        assert r.status_code == 403, (headers, r.status_code)
        assert COOKIE not in r.cookies


def test_the_cookie_is_a_session_token_not_the_key(api: Api) -> None:
    client = TestClient(api.app, raise_server_exceptions=False, follow_redirects=False)
    r = client.post("/ui/login", data={"key": _key(api)}, headers={"Referer": "http://testserver/ui/login"})
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    token = r.cookies[COOKIE]
    assert _key(api) not in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert int(re.search(r"Max-Age=(\d+)", cookie).group(1)) <= SESSION_SECONDS <= 24 * 3600
    assert key_for_token(api.db, token) is not None


def test_tokens_that_are_forged_expired_or_revoked_are_refused(api: Api) -> None:
    row = key_for(api.db, _key(api))
    token = make_token(row)
    key_id, expiry, sig = token.split(".")
    assert key_for_token(api.db, f"{key_id}.{int(expiry) + 10**6}.{sig}") is None  # extended by hand
    assert key_for_token(api.db, token, now=time.time() + SESSION_SECONDS + 1) is None  # expired
    assert key_for_token(api.db, _key(api)) is None and key_for_token(api.db, "") is None
    other, _ = create_key(api.db, "short-lived")
    other_token = make_token(other)
    assert key_for_token(api.db, other_token) is not None
    revoke_key(api.db, other.id)
    assert key_for_token(api.db, other_token) is None


def test_job_form_refuses_cross_site_posts(api: Api) -> None:
    client = _login(api)
    page = client.get("/ui/jobs")
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
    with unchanged(api.app):
        assert client.post("/ui/jobs", data=_form(api, csrf), headers=EVIL).status_code == 403
        assert client.post("/ui/jobs", data=_form(api, csrf)).status_code == 403  # no Origin at all
        assert client.post("/ui/jobs", data=_form(api, None), headers=HERE).status_code == 403
        assert client.post("/ui/jobs", data=_form(api, "0" * 64), headers=HERE).status_code == 403
    r = client.post("/ui/jobs", data=_form(api, csrf), headers=HERE)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/jobs/")


def test_the_api_ignores_the_cookie_for_writes(api: Api) -> None:
    client = _login(api)
    assert client.get("/v1/jobs").status_code == 200  # pages read through the API with the cookie
    with unchanged(api.app):
        r = client.post("/v1/jobs", json={"dataset_id": api.dataset_id, "teacher_id": api.teacher_id})
        assert r.status_code == 401
