"""The dashboard in a real browser (Playwright driving the machine's Chromium) against a real uvicorn server
and a real worker process: log in, submit a small job through the form, watch it finish without reloading,
read the recommendation and the plots, sort and filter the leaderboard, open a trial. Screenshots of every
page go to ``artifacts/screenshots/`` (kept out of git)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from service.app import create_app
from service.client import Client
from store import create_key
from store.settings import Settings

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [  # this machine has no network beyond package registries: keep Chromium from calling home
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("AUTODISTILLER_REQUIRE_BROWSER"):
            pytest.fail(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_teacher: Path) -> Iterator[dict]:
    """uvicorn on a free port, a worker process on the same SQLite database, one key, a dataset, a teacher."""
    tmp = tmp_path_factory.mktemp("dashboard")
    settings = Settings(home=tmp / "home", database_url=f"sqlite:///{tmp / 'db.sqlite'}")
    app = create_app(settings)
    _, key = create_key(app.state.ctx.db, "dashboard-test")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    env = {
        **os.environ,
        "AUTODISTILLER_HOME": str(settings.home),
        "AUTODISTILLER_DATABASE_URL": settings.database_url,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    worker = subprocess.Popen([sys.executable, "-m", "autodistiller.cli", "worker"], cwd=REPO, env=env)
    try:
        while not srv.started:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        api = Client(url, key)
        data = api.register_dataset("rotten_tomatoes", max_train=200, max_val=100, name="rt-200")
        teacher = api.upload_teacher(tiny_teacher, name="tiny-teacher")
        yield {"url": url, "key": key, "api": api, "dataset": data, "teacher": teacher}
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        srv.should_exit = True
        thread.join(timeout=10)


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def cells(page, column: int) -> list[str]:
    return page.locator(f"#trials tbody tr td:nth-child({column})").all_inner_texts()


def test_a_job_from_the_form_to_a_trial(browser, server) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(server["url"] + "/ui/jobs")
    assert "/ui/login" in page.url  # no key yet: the login form
    shot(page, "01-login")
    page.fill("input[name=key]", "adk_wrong")
    page.click("button[type=submit]")
    assert page.get_by_role("alert").inner_text() == "unknown or revoked API key"
    page.fill("input[name=key]", server["key"])
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/jobs")
    assert page.locator("#jobs tbody").inner_text().startswith("No jobs yet")

    # the form: the registered dataset and teacher are offered; a bad budget is refused with why
    form = page.locator("#submit form")
    assert "rt-200" in form.locator("select[name=dataset_id]").inner_text()
    assert "tiny-teacher" in form.locator("select[name=teacher_id]").inner_text()
    form.locator("input[name=trials]").fill("4")
    form.locator("input[name=epochs]").fill("0")
    form.locator("button[type=submit]").click()
    assert "epochs" in page.get_by_role("alert").inner_text()  # epochs must be ≥ 1
    form = page.locator("#submit form")
    form.locator("input[name=trials]").fill("4")
    form.locator("input[name=epochs]").fill("1")
    form.locator("select[name=space]").select_option("small")
    shot(page, "02-jobs-form")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/ui/jobs/[0-9a-f]{32}$"))
    job_id = page.url.rsplit("/", 1)[1]

    # live progress: the page is never reloaded, the state and trial count change in place
    page.evaluate("window.__marker = 'same page'")
    page.wait_for_function(
        "document.getElementById('job-state').textContent.trim() === 'searching'", timeout=180_000
    )
    shot(page, "03-job-running")
    page.wait_for_function(
        "document.getElementById('job-state').textContent.trim() === 'finished'", timeout=400_000
    )
    assert page.evaluate("window.__marker") == "same page"
    assert page.locator("#job-trials").inner_text() == "4/4"
    page.wait_for_function("document.querySelectorAll('#trials tbody tr[data-trial]').length === 4")
    # the answer panel refreshes on its own beat after the job's state changes: wait for the final answer
    page.wait_for_function(
        "document.querySelector('#recommendation .tag')?.textContent.trim() === 'measured, final'",
        timeout=60_000,
    )
    assert "Distiller" in page.locator("#predicted").inner_text()  # no past jobs: the priors
    assert page.locator("#recommendation").get_by_role("link", name="Download the student").count() == 1
    downloads = page.locator("#downloads")  # the answer also as ONNX and int8, with their latency and sizes
    assert downloads.get_by_role("link", name="ONNX int8").get_attribute("href").endswith("?format=onnx-int8")
    assert downloads.get_by_role("link", name="ONNX", exact=True).count() == 1
    assert " ms int8" in page.locator("#onnx-latency").inner_text()
    assert "ONNX int8" in page.locator("#format-sizes").inner_text()
    assert page.locator("table.students").get_by_role("link", name="ONNX int8").count() >= 1
    baselines = page.locator("#baselines").inner_text()
    assert "No KD" in baselines and "Vanilla KD" in baselines and "not run yet" not in baselines

    # plots: one point per finished trial, the Pareto front, the importance bars (loaded after the page)
    history = page.get_by_role("img", name=re.compile("history", re.I))
    assert history.locator(".point").count() == 4
    size = page.get_by_role("img", name=re.compile("size", re.I))
    assert size.locator(".point.pareto").count() >= 1
    page.wait_for_function("!document.querySelector('.lazy').textContent.includes('computing')")
    shot(page, "04-job-finished")

    job = server["api"].job(job_id)
    assert job.state == "finished"
    accs = [float(a) for a in cells(page, 3)]
    assert accs == sorted(accs, reverse=True)  # best first by default

    # sort by params (descending, then ascending), then filter by status
    page.locator("#trials thead").get_by_role("link", name="Params").click()
    page.wait_for_url("**sort=-params**")
    params = [float(p.rstrip("Mk")) for p in cells(page, 6)]
    assert params == sorted(params, reverse=True)
    page.locator("#trials thead").get_by_role("link", name=re.compile("^Params")).click()
    page.wait_for_url("**sort=params**")
    params = [float(p.rstrip("Mk")) for p in cells(page, 6)]
    assert params == sorted(params)
    shot(page, "05-leaderboard-sorted")
    page.select_option("select[name=status]", "failed")
    page.wait_for_url("**status=failed**")
    assert page.locator("#trials tbody").inner_text().strip() == "No trials yet."
    page.select_option("select[name=status]", "completed")
    page.wait_for_url("**status=completed**")
    assert page.locator("#trials tbody tr[data-trial]").count() >= 1

    # a trial: its pipeline, its per-epoch curves
    page.locator("#trials tbody tr[data-trial] td a").first.click()
    page.wait_for_url(re.compile(r".*/ui/trials/\d+$"))
    assert page.locator("h1").inner_text().startswith("Trial ")
    assert '"student"' in page.locator("#pipeline").inner_text()
    curves = page.get_by_role("img", name=re.compile("curve", re.I))
    assert curves.locator(".accuracy").count() >= 1 and curves.locator(".macro-f1").count() >= 1
    shot(page, "06-trial")
    page.close()


def test_read_only_cookie_cannot_change_anything(browser, server) -> None:
    """The dashboard's cookie lets a page read through the API, never write: a cross-site-style POST with only
    the cookie is refused, and the job list is unchanged."""
    context = browser.new_context()
    page = context.new_page()
    login = page.request.post(
        server["url"] + "/ui/login", form={"key": server["key"]}, headers={"Origin": server["url"]}
    )
    assert login.ok
    cookie = next(c for c in context.cookies() if c["name"] == "autodistiller_session")
    assert server["key"] not in cookie["value"]  # the session is a signed token, not the key
    before = server["api"].jobs().total
    r = page.request.post(
        server["url"] + "/v1/jobs",
        data={"dataset_id": server["dataset"].id, "teacher_id": server["teacher"].id},
    )
    assert r.status == 401
    assert page.request.get(server["url"] + "/v1/jobs").status == 200  # reads work with the cookie
    assert server["api"].jobs().total == before
    context.close()
