"""The API drills of bench/drills.py, against an API-only serve (nothing it accepts runs): 100 concurrent
submissions, a bad-input sweep, authorization across two keys, CSRF, and schemathesis (no 5xx)."""

from __future__ import annotations

import concurrent.futures as cf
import subprocess
import sys
from pathlib import Path

import httpx

from bench.serving import (
    REPO,
    Row,
    Serve,
    _register,
    _state,
    _submit,
    serving,
)


def drill_concurrent(srv: Serve, ids: tuple[str, str]) -> Row:
    """100 submissions at once: 90 distinct, 10 repeats of one Idempotency-Key: 91 jobs, no error."""

    def submit(i: int) -> int:
        key = "same-key" if i < 10 else f"key-{i}"
        body = {"dataset_id": ids[0], "teacher_id": ids[1], "budget": {"trials": 2}}
        with httpx.Client(base_url=srv.url, timeout=120) as c:
            return c.post("/v1/jobs", json=body, headers={**srv.a, "Idempotency-Key": key}).status_code

    before = srv.http.get("/v1/jobs", headers=srv.a).json()["total"]
    with cf.ThreadPoolExecutor(32) as pool:
        codes = list(pool.map(submit, range(100)))
    made = srv.http.get("/v1/jobs", headers=srv.a).json()["total"] - before
    ok = codes.count(202) == 100 and made == 91
    return "100 concurrent submissions", "100×202, 91 jobs", f"{sorted(set(codes))}, {made} jobs", ok


BAD = [
    ("POST", "/v1/datasets", {"source": "outside_teacher"}),
    ("POST", "/v1/datasets", {"source": "fx/../../../etc"}),
    ("POST", "/v1/datasets", {"source": "/etc/passwd"}),
    ("POST", "/v1/teachers", {"path": "fx/../../../tmp"}),
    ("POST", "/v1/teachers", {"path": "b" * 5000}),
    ("POST", "/v1/teachers", {"base": "\u0000"}),
    ("POST", "/v1/jobs", {"dataset_id": "x", "teacher_id": "y"}),
    ("POST", "/v1/jobs", {"budget": {"trials": 1e308}}),
    ("GET", "/v1/jobs/" + "0" * 32 + "/trials?limit=-1", None),
    ("GET", "/v1/jobs?offset=99999999999999999999", None),
    ("POST", "/v1/jobs/" + "0" * 32 + "/cancel", None),
]


def drill_bad_inputs(srv: Serve, ids: tuple[str, str]) -> Row:
    codes = [srv.http.request(m, p, json=b, headers=srv.a).status_code for m, p, b in BAD]
    for budget in ({"wall_seconds": 1e-9}, {"max_params": 1000}, {"epochs": []}, {"trials": "nan"}):
        codes.append(
            srv.http.post(
                "/v1/jobs", json={"dataset_id": ids[0], "teacher_id": ids[1], "budget": budget}, headers=srv.a
            ).status_code
        )
    csv = "text,label\n" + "".join(f"row {i},c{i}\n" for i in range(3000))
    codes.append(srv.http.post("/v1/datasets", files={"file": ("ids.csv", csv)}, headers=srv.a).status_code)
    codes.append(
        srv.http.post("/v1/jobs", content=b"{}", headers={**srv.a, "Content-Type": "text/plain"}).status_code
    )
    ok = all(400 <= c < 500 for c in codes) and srv.http.get("/v1/health").status_code == 200
    return "bad-input sweep", f"{len(codes)} requests, all 4xx", f"codes {sorted(set(codes))}", ok


def drill_authz(srv: Serve, ids: tuple[str, str], key_b: str) -> Row:
    job = _submit(srv, ids, trials=2).json()["id"]
    b = {"Authorization": f"Bearer {key_b}"}
    paths = [
        f"/v1/jobs/{job}",
        f"/v1/jobs/{job}/trials",
        f"/v1/jobs/{job}/student",
        f"/v1/jobs/{job}/recommendation",
        f"/v1/datasets/{ids[0]}",
        f"/v1/teachers/{ids[1]}",
    ]
    codes = [srv.http.get(p, headers=b).status_code for p in paths]
    codes.append(srv.http.post(f"/v1/jobs/{job}/cancel", headers=b).status_code)
    codes.append(
        srv.http.post("/v1/jobs", json={"dataset_id": ids[0], "teacher_id": ids[1]}, headers=b).status_code
    )
    lists = [srv.http.get(p, headers=b).json()["total"] for p in ("/v1/jobs", "/v1/datasets", "/v1/teachers")]
    ok = set(codes) == {404} and lists == [0, 0, 0] and _state(srv, job) != "cancelled"
    return (
        "authorization, two keys",
        "B gets 404 on A's things, sees none",
        f"{set(codes)}, B lists {lists}",
        ok,
    )


def drill_csrf(srv: Serve, ids: tuple[str, str]) -> Row:
    evil = {"Origin": "https://evil.example"}
    c = httpx.Client(base_url=srv.url, follow_redirects=False)
    login_evil = c.post("/ui/login", data={"key": srv.key}, headers=evil).status_code
    c.post("/ui/login", data={"key": srv.key}, headers={"Origin": srv.url})
    cookie = next(iter(c.cookies.values()), "")
    before = srv.http.get("/v1/jobs", headers=srv.a).json()["total"]
    form = {"dataset_id": ids[0], "teacher_id": ids[1], "trials": "2"}
    forged = [
        c.post("/ui/jobs", data=form, headers=evil).status_code,
        c.post("/ui/jobs", data=form).status_code,
    ]
    made = srv.http.get("/v1/jobs", headers=srv.a).json()["total"] - before
    c.close()
    ok = login_evil == 403 and forged == [403, 403] and made == 0 and srv.key not in cookie
    observed = f"login {login_evil}, form {forged}, jobs made {made}, key in cookie {srv.key in cookie}"
    return "CSRF", "foreign-origin login/form 403; cookie holds no key", observed, ok


def drill_schemathesis(srv: Serve, seconds: int) -> Row:
    """Schemathesis over the OpenAPI spec for at most ``seconds``; a 5xx is looked for both in its report
    and in the server's own log (so a run cut short still counts)."""
    cmd = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{srv.url}/openapi.json",
        "-c",
        "not_a_server_error",
        "-H",
        f"Authorization: Bearer {srv.key}",
        "-n",
        "5",
        "--request-timeout",
        "60",
    ]
    start = srv.log.stat().st_size
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds, cwd=REPO)
        text, finished = out.stdout + out.stderr, True
    except subprocess.TimeoutExpired as e:
        text, finished = (e.stdout or b"").decode(errors="replace"), False
    with srv.log.open("rb") as f:
        f.seek(start)
        served = f.read().decode(errors="replace")
    requests = served.count("HTTP/1.1")
    server_errors = sum(1 for line in served.splitlines() if '" 5' in line and "HTTP/1.1" in line)
    server_errors += served.count("Traceback") + ("Server error" in text)
    ok = server_errors == 0 and requests > 0 and (not finished or out.returncode == 0)
    seen = "completed" if finished else f"stopped at {seconds} s"
    return "schemathesis", "no 5xx", f"{seen}; {requests} requests, {server_errors} server errors", ok


def api_drills(home: Path, url: str, roots: Path, teacher: Path, fuzz_s: int) -> list[Row]:
    """The drills an API-only serve (no worker) answers: nothing it accepts is run."""
    from store import create_key, make_engine, session_factory

    with serving(home, url, 0, roots) as srv:
        ids = _register(srv, teacher)
        engine = make_engine(url)
        _, key_b = create_key(session_factory(engine), "drill-b")
        engine.dispose()
        rows = [
            drill_concurrent(srv, ids),
            drill_bad_inputs(srv, ids),
            drill_authz(srv, ids, key_b),
            drill_csrf(srv, ids),
        ]
        if fuzz_s:
            rows.append(drill_schemathesis(srv, fuzz_s))
    return rows
