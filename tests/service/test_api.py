"""The HTTP service end to end: upload data and a teacher, submit a job, follow it, read the recommendation
and the leaderboard, download the student and load it with transformers — through FastAPI's client with a
real worker process, and through a real ``autodistiller serve`` that is killed mid-search and restarted."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import transformers
import uvicorn
from fastapi.testclient import TestClient

from bench.serving import serve_command
from distill.data import load_task
from distill.onnx_export import session
from service.app import create_app
from service.client import ApiError, Client
from store import create_key
from store.settings import Settings

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
TINY = [
    {"layers": 1, "hidden": 32, "heads": 2, "ffn": 64},
    {"layers": 2, "hidden": 32, "heads": 2, "ffn": 64},
]
BUDGET = {"space": "small", "max_length": 32, "candidates": TINY, "epochs": [1]}


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "AUTODISTILLER_HOME": str(settings.home),
        "AUTODISTILLER_DATABASE_URL": settings.database_url,
        "RAY_USAGE_STATS_ENABLED": "0",
        **extra,
    }


@pytest.fixture(scope="module")
def reviews_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's own CSV: 240 real reviews with string labels."""
    task = load_task("rotten_tomatoes").subset(200, 40, seed=3)
    rows = [{"review": e.text, "sentiment": task.labels[e.label]} for e in task.train + task.validation]
    path = tmp_path_factory.mktemp("upload") / "reviews.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def reviews_test_csv(reviews_csv: Path) -> Path:
    """The same user's separate test file: 60 other reviews."""
    used = set(pd.read_csv(reviews_csv)["review"])
    task = load_task("rotten_tomatoes").subset(600, 10, seed=9)
    rows = [{"review": e.text, "sentiment": task.labels[e.label]} for e in task.train if e.text not in used]
    path = reviews_csv.with_name("held-out reviews.csv")
    pd.DataFrame(rows[:60]).to_csv(path, index=False)
    return path


def test_the_whole_flow_through_http(
    tmp_path: Path, reviews_csv: Path, reviews_test_csv: Path, tiny_teacher: Path
) -> None:
    settings = Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    app = create_app(settings)
    _, key = create_key(app.state.ctx.db, "alice")
    api = Client(key=key, http=TestClient(app))

    data = api.upload_dataset(
        reviews_csv, test_file=reviews_test_csv, text_column="review", label_column="sentiment"
    )
    assert data.kind == "upload" and data.profile["labels"] == ["fresh", "rotten"]
    assert data.profile["train"] + data.profile["validation"] == 240 and data.profile["test"] == 60
    assert data.name == data.profile["name"] == data.ref.name == "reviews.csv"  # not the server's data.csv
    assert data.profile["split"]["how"] == "given splits"
    teacher = api.upload_teacher(tiny_teacher, name="tiny")
    assert teacher.kind == "upload" and teacher.profile["layers"] == 2 and teacher.profile["num_labels"] == 2
    stored = Path(teacher.ref.path)
    assert stored.is_relative_to(settings.uploads / "teachers" / teacher.id)
    assert (stored / "model.safetensors").is_file()

    job = api.submit(data.id, teacher.id, {**BUDGET, "trials": 4}, idempotency_key="first")
    assert job.state == "queued" and job.urls["student"] == f"/v1/jobs/{job.id}/student"
    assert api.submit(data.id, teacher.id, {**BUDGET, "trials": 4}, idempotency_key="first").id == job.id
    assert api.recommendation(job.id).available is False
    with pytest.raises(ApiError) as e:
        api.download_student(job.id, tmp_path / "early")
    assert e.value.status == 409

    worker = subprocess.Popen(
        [sys.executable, "-m", "autodistiller.cli", "worker", "--once"], cwd=REPO, env=_env(settings)
    )
    seen: list[tuple[str, int]] = []
    try:
        done = api.wait(
            job.id,
            poll_s=0.5,
            timeout_s=600,
            on_update=lambda j: seen.append((j.state, j.progress.trials_done)),
        )
    finally:
        worker.wait(timeout=120)
    assert done.state == "finished", done.error
    assert {"queued", "profiling", "searching"} & {s for s, _ in seen} and seen[-1] == ("finished", 4)
    assert done.progress.fraction == 1.0
    assert done.teacher_accuracy > 0.5  # measured with the teacher's own label order (fresh↔rotten swapped)

    rec = api.recommendation(job.id)
    assert rec.available and rec.final and rec.source == "measured"
    assert (
        rec.params and rec.teacher.params and rec.size_ratio == pytest.approx(rec.params / rec.teacher.params)
    )
    assert rec.why.startswith("best of 4 trials") and f"trial {rec.trial_number}: validation" in rec.why
    assert "test 0." in rec.why
    assert rec.test.n == rec.teacher_test.n == 60 and rec.test.low <= rec.test.accuracy <= rec.test.high
    assert set(rec.references_test) <= {"no_kd", "vanilla_kd"}
    assert rec.speed["threads"] == 1 and rec.speedup == pytest.approx(rec.speed["speedup"])
    kept = {s.trial_number: s for s in rec.students}
    assert rec.trial_number in kept and "recommended" in kept[rec.trial_number].roles
    for n, link in kept.items():  # every kept student (the Pareto front, the references) downloads
        assert link.url.endswith(f"?trial={n}")
        other = api.download_student(job.id, tmp_path / f"trial-{n}", trial=n)
        card = (other / "README.md").read_text()
        assert "datasets:\n- reviews.csv" in card and "test accuracy (95% CI)" in card
        assert str(settings.home) not in card and "| teacher `tiny` |" in card
    missing = next(n for n in range(10) if n not in kept)
    with pytest.raises(ApiError) as e:
        api.download_student(job.id, tmp_path / "nope", trial=missing)
    assert e.value.status == 404
    # no past jobs in this database (and no shipped priors in the tests): Distiller's priors, tried first
    pred = rec.predicted
    assert pred.method == "priors" and pred.pipeline.intermediate.name == "mi_alpha"
    assert pred.percentile is None and pred.held_out is None
    assert pred.measured_accuracy == api.trials(job.id, sort="number").items[2].accuracy
    imp = api.importance(job.id)
    assert set(imp.this_job) <= {"student", "loss", "intermediate", "mapping", "augmentation", "lr",
                                 "temperature", "kd_weight", "epochs"}  # fmt: skip
    assert imp.across_jobs == {} and imp.model_version is None  # one job: nothing to train on yet

    board = api.trials(job.id)
    assert board.total == 4 and rec.trial_id in {t.id for t in board.items}
    accs = [t.accuracy for t in board.items if t.accuracy is not None]
    assert accs == sorted(accs, reverse=True)
    by_number = api.trials(job.id, sort="number", limit=2, offset=2)
    assert [t.number for t in by_number.items] == [2, 3] and by_number.total == 4
    assert {t.is_reference for t in board.items} >= {"no_kd", "vanilla_kd"}
    detail = api.trial(rec.trial_id)
    assert detail.epochs and detail.epochs[-1]["accuracy"] == pytest.approx(detail.accuracy)
    assert detail.pipeline == rec.pipeline

    events = list(api.events(job.id))  # an ended job: one event, then the stream closes
    assert [e.state for e in events] == ["finished"]

    folder = api.download_student(job.id, tmp_path / "student")
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder)
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    assert model.num_parameters() == rec.params
    with torch.no_grad():
        logits = model(**tok(["a wonderful, moving film"], return_tensors="pt")).logits
    assert logits.shape == (1, 2)
    assert not (folder / "onnx").exists()  # the default download is the Hugging Face folder only
    # every kept student also as ONNX and int8, timed beside the teacher, its sizes stored
    assert kept[rec.trial_number].formats == ["safetensors", "onnx", "onnx-int8"]
    sizes = kept[rec.trial_number].sizes
    assert sizes["onnx-int8"] < sizes["onnx"] and rec.speed["bytes"] == sizes
    assert rec.speed["onnx_ms"] > 0 and rec.speed["onnx_int8_ms"] > 0 and "int8" in rec.why
    onnx = api.download_student(job.id, tmp_path / "onnx", format="onnx")
    assert (onnx / "model.onnx").is_file() and (onnx / "config.json").is_file()
    assert not list(onnx.glob("*.safetensors"))
    enc = transformers.AutoTokenizer.from_pretrained(onnx)(["a wonderful, moving film"], return_tensors="np")
    out = session(onnx / "model.onnx").run(["logits"], {k: v.astype("int64") for k, v in enc.items()})[0]
    assert abs(out - logits.numpy()).max() <= 1e-4
    int8 = api.download_student(job.id, tmp_path / "int8", trial=rec.trial_number, format="onnx-int8")
    assert (int8 / "model-int8.onnx").stat().st_size == sizes["onnx-int8"]
    assert api.http.get(f"/v1/jobs/{job.id}/student", params={"format": "bogus"}).status_code == 422
    assert api.teacher(tiny_teacher).id != teacher.id  # a second upload is a second teacher
    assert api.http.get(f"/v1/teachers/{teacher.id}").json()["accuracies"][0]["job_id"] == job.id


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(settings: Settings, port: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = serve_command(port, workers=1)
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=_env(settings), stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.3)
    raise AssertionError(f"serve did not listen on {port}:\n{log.read_text()[-3000:]}")


def test_serve_survives_a_kill_mid_search(tmp_path: Path, tiny_teacher: Path) -> None:
    """A real ``autodistiller serve`` (uvicorn + one worker process, SQLite) is SIGKILLed while it searches;
    restarted, it resumes the job, which finishes with every trial and none twice."""
    settings = Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    port, log = _free_port(), tmp_path / "serve.log"
    server = _serve(settings, port, log)
    try:
        key = settings.key_file.read_text().strip()  # the local key serve printed and saved
        api = Client(f"http://127.0.0.1:{port}", key)
        assert api.http.get("/v1/health").json()["status"] == "ok"
        data = api.register_dataset("rotten_tomatoes", max_train=200, max_val=100)
        teacher = api.upload_teacher(tiny_teacher)
        job = api.submit(data.id, teacher.id, {**BUDGET, "trials": 6, "epochs": [2]})
        while (j := api.job(job.id)).progress.trials_done < 2:
            assert j.state not in ("failed", "cancelled"), j.error
            time.sleep(0.5)
        server.send_signal(signal.SIGKILL)  # no clean-up: its worker child gets SIGTERM (PDEATHSIG)
        server.wait()
        with pytest.raises(ApiError):
            api.job(job.id)  # the API is down
        server = _serve(settings, port, log)
        assert "from " + str(settings.key_file) in log.read_text()  # the same key, reused
        done = api.wait(job.id, poll_s=1, timeout_s=600)
        assert done.state == "finished", f"{done.error}\n{log.read_text()[-3000:]}"
        trials = api.trials(job.id, sort="number", limit=100).items
        assert [t.number for t in trials if t.status != "failed"] == sorted(
            {t.number for t in trials if t.status != "failed"}
        )
        assert sum(t.status in ("completed", "pruned") for t in trials) == 6
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_cli_verbs_against_a_live_api(tmp_path: Path, tiny_teacher: Path, capsys, monkeypatch) -> None:
    """``submit``/``status``/``leaderboard``/``download`` talk to the API; ``keys`` manages keys in the DB."""
    from autodistiller.cli import main

    settings = Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    port = _free_port()
    monkeypatch.setenv("AUTODISTILLER_HOME", str(settings.home))
    monkeypatch.setenv("AUTODISTILLER_DATABASE_URL", settings.database_url)
    srv = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        while not srv.started:
            time.sleep(0.05)
        assert main(["keys", "create", "--name", "bob", "--quiet"]) == 0
        key = capsys.readouterr().out.strip()
        url = ["--url", f"http://127.0.0.1:{port}", "--key", key]
        args = [
            "submit",
            "--dataset",
            "rotten_tomatoes",
            "--max-train",
            "120",
            "--max-val",
            "60",
            "--trials",
            "3",
        ]
        assert main([*args, "--teacher", str(tiny_teacher), *url]) == 0
        out = capsys.readouterr().out
        job_id = out.split("job ")[1].split()[0]
        assert main(["status", job_id, *url]) == 0
        assert "queued" in capsys.readouterr().out
        assert main(["leaderboard", job_id, *url]) == 0
        assert "(0 of 0 trials)" in capsys.readouterr().out
        assert main(["download", job_id, "--out", str(tmp_path / "s"), "--format", "onnx", *url]) == 2
        assert "no student yet" in capsys.readouterr().err
        assert main(["keys", "list"]) == 0
        assert "bob" in capsys.readouterr().out
        assert main(["keys", "revoke", key[:10]]) == 0
        assert main(["status", job_id, *url]) == 2  # revoked
        assert "401" in capsys.readouterr().err
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def test_a_cli_search_is_listed_for_the_local_key(tmp_path: Path, tiny_teacher: Path, monkeypatch) -> None:
    """``autodistiller search`` (and the demo) run in-process under the embedded setup's local key, so the
    job shows up in the API and the dashboard of ``autodistiller serve`` on the same data folder."""
    from autodistiller.cli import main

    monkeypatch.setenv("AUTODISTILLER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AUTODISTILLER_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    args = ["search", "--dataset", "rotten_tomatoes", "--max-train", "120", "--max-val", "60"]
    assert (
        main(
            [*args, "--teacher", str(tiny_teacher), "--trials", "2", "--space", "small", "--max-length", "32"]
        )
        == 0
    )
    settings = Settings.from_env()
    api = Client(key=settings.key_file.read_text().strip(), http=TestClient(create_app(settings)))
    page = api.jobs()
    assert page.total == 1 and page.items[0].state == "finished"
    assert api.trials(page.items[0].id).total == 2
