"""A small Python client for the AutoDistiller API (what the CLI verbs ``submit``/``status``/... use).

    from service.client import Client
    api = Client("http://127.0.0.1:8000", key)          # or Client.from_settings(Settings.from_env())
    data = api.dataset("reviews.csv")                     # uploads a local file, else registers by name
    teacher = api.teacher("./my-teacher")                 # uploads a local model folder (zip)
    job = api.submit(data.id, teacher.id, {"trials": 12})
    job = api.wait(job.id, on_update=print)
    api.download_student(job.id, "student/")              # a Hugging Face model folder
    api.download_student(job.id, "onnx/", format="onnx")  # model.onnx + config.json + tokenizer

Answers are the API's own pydantic models (``service.schemas``); an error reply raises :class:`ApiError`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from service.schemas import DatasetOut, ImportanceOut, JobOut, Page, RecommendationOut, TeacherOut, TrialOut
from service.uploads import safe_extract, zip_folder
from store.settings import Settings
from store.spec import JobBudget
from store.states import TERMINAL_STATES as TERMINAL

M = TypeVar("M", bound=BaseModel)


class ApiError(RuntimeError):
    """The API answered with an error; ``detail`` is its message."""

    def __init__(self, status: int, detail: Any) -> None:
        self.status, self.detail = status, detail
        text = detail if isinstance(detail, str) else json.dumps(detail)
        super().__init__(f"HTTP {status}: {text}")


class Client:
    """``url``: the API's base URL; ``key``: an API key. ``http``: an ``httpx.Client`` to use instead (tests
    pass FastAPI's ``TestClient``)."""

    def __init__(
        self, url: str = "http://127.0.0.1:8000", key: str | None = None, *, http: httpx.Client | None = None
    ) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        if http is None:
            http = httpx.Client(base_url=url, timeout=httpx.Timeout(60.0, read=600.0))
        http.headers.update(headers)
        self.http = http

    @classmethod
    def from_settings(cls, settings: Settings, *, url: str | None = None, key: str | None = None) -> Client:
        """``url``/``key`` if given, else ``AUTODISTILLER_URL`` and ``AUTODISTILLER_API_KEY``, else the
        local key ``serve`` wrote. Raises ``ApiError`` (401) when no key is found at all."""
        s = settings
        key = key or s.api_key or (s.key_file.read_text().strip() if s.key_file.is_file() else None)
        if not key:
            why = "no API key: pass one, set AUTODISTILLER_API_KEY, or run `autodistiller serve` once"
            raise ApiError(401, why + " (it writes a local key)")
        return cls(url or s.api_url, key)

    # ------------------------------------------------------------------ plumbing
    def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            r = self.http.request(method, path, **kw)
        except httpx.TransportError as e:
            raise ApiError(0, f"cannot reach the API at {self.http.base_url}: {e}") from None
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise ApiError(r.status_code, detail)
        return r

    def _get(self, model: type[M], path: str, **kw: Any) -> M:
        return model.model_validate(self._send("GET", path, **kw).json())

    def _post(self, model: type[M], path: str, **kw: Any) -> M:
        return model.model_validate(self._send("POST", path, **kw).json())

    # ------------------------------------------------------------------ datasets and teachers
    def upload_dataset(
        self,
        file: str | Path,
        *,
        validation_file: str | Path | None = None,
        test_file: str | Path | None = None,
        **columns: Any,
    ) -> DatasetOut:
        """Upload a CSV/TSV/JSONL/JSON/Parquet file, and optionally separate validation / test files;
        ``columns``: name, text_column, label_column, split_column, validation_fraction, test_fraction..."""
        paths = {"file": Path(file), "validation_file": validation_file, "test_file": test_file}
        form = {k: str(v) for k, v in columns.items() if v is not None}
        with contextlib.ExitStack() as stack:
            files = {
                k: (Path(v).name, stack.enter_context(Path(v).open("rb")))
                for k, v in paths.items()
                if v is not None
            }
            return self._post(DatasetOut, "/v1/datasets", files=files, data=form)

    def register_dataset(self, source: str, **fields: Any) -> DatasetOut:
        """A built-in name, a Hub name, or a path under the server's import folders."""
        body = {"source": source, **{k: v for k, v in fields.items() if v is not None}}
        return self._post(DatasetOut, "/v1/datasets", json=body)

    def dataset(self, source: str | Path, **fields: Any) -> DatasetOut:
        """Upload ``source`` if it is a local file, else register it by name."""
        if Path(source).is_file():  # a local file: its split files are uploaded with it
            splits = {f"{k}_file": fields.pop(f"{k}_source", None) for k in ("validation", "test")}
            return self.upload_dataset(source, **splits, **fields)
        return self.register_dataset(str(source), **fields)

    def upload_teacher(
        self, folder: str | Path, name: str | None = None, masked_lm: bool = False
    ) -> TeacherOut:
        """Zip a local Hugging Face model folder (safetensors) and upload it (``masked_lm``: a masked LM for
        contextual augmentation, not a teacher)."""
        folder = Path(folder)
        with tempfile.TemporaryDirectory() as tmp:
            archive = zip_folder(folder, Path(tmp) / f"{folder.name}.zip")
            with archive.open("rb") as f:
                return self._post(
                    TeacherOut,
                    "/v1/teachers",
                    files={"file": (archive.name, f, "application/zip")},
                    data={"name": name or folder.name, **({"masked_lm": "true"} if masked_lm else {})},
                )

    def register_teacher(
        self,
        *,
        path: str | None = None,
        base: str | None = None,
        finetune: Mapping[str, Any] | None = None,
        name: str | None = None,
        masked_lm: bool = False,
    ) -> TeacherOut:
        body: dict[str, Any] = {"path": path, "base": base, "name": name, "masked_lm": masked_lm or None}
        if finetune:
            body["finetune"] = dict(finetune)
        return self._post(TeacherOut, "/v1/teachers", json={k: v for k, v in body.items() if v is not None})

    def teacher(self, source: str | Path, masked_lm: bool = False) -> TeacherOut:
        """Upload a local model folder; ``minilm`` or another name registers a base encoder or Hub id."""
        if Path(source).is_dir():
            return self.upload_teacher(source, masked_lm=masked_lm)
        if str(source) == "minilm" and not masked_lm:
            return self.register_teacher(base="minilm")
        return self.register_teacher(path=str(source), masked_lm=masked_lm)

    # ------------------------------------------------------------------ jobs
    def submit(
        self,
        dataset_id: str,
        teacher_id: str,
        budget: JobBudget | Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        extra_teacher_ids: Sequence[str] = (),
        mlm_id: str | None = None,
        transfer_id: str | None = None,
    ) -> JobOut:
        """Queue a job; ``extra_teacher_ids``: more fine-tuned teachers to mix in, ``mlm_id``: a registered
        masked LM for contextual augmentation, ``transfer_id``: registered unlabeled transfer text."""
        if isinstance(budget, JobBudget):
            budget = budget.model_dump(mode="json", exclude_defaults=True)
        body: dict[str, Any] = {"dataset_id": dataset_id, "teacher_id": teacher_id}
        body["budget"] = dict(budget or {})
        if extra_teacher_ids:
            body["extra_teacher_ids"] = list(extra_teacher_ids)
        if mlm_id:
            body["mlm_id"] = mlm_id
        if transfer_id:
            body["transfer_id"] = transfer_id
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._post(JobOut, "/v1/jobs", json=body, headers=headers)

    def job(self, job_id: str) -> JobOut:
        return self._get(JobOut, f"/v1/jobs/{job_id}")

    def jobs(self, *, state: str | None = None, limit: int = 50, offset: int = 0) -> Page[JobOut]:
        params = {"limit": limit, "offset": offset, **({"state": state} if state else {})}
        return self._get(Page[JobOut], "/v1/jobs", params=params)

    def events(self, job_id: str) -> Iterator[JobOut]:
        """The job each time it changes, until it ends (server-sent events)."""
        with self.http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=None) as r:
            if r.status_code >= 400:
                r.read()
                raise ApiError(r.status_code, r.json().get("detail"))
            for line in r.iter_lines():
                if line.startswith("data: "):
                    yield JobOut.model_validate_json(line[6:])

    def wait(
        self,
        job_id: str,
        *,
        poll_s: float = 2.0,
        timeout_s: float | None = None,
        on_update: Callable[[JobOut], None] | None = None,
    ) -> JobOut:
        """Poll until the job ends (or ``timeout_s`` passes: ``TimeoutError``); ``on_update`` per poll."""
        start = time.monotonic()
        while True:
            job = self.job(job_id)
            if on_update is not None:
                on_update(job)
            if job.state in TERMINAL:
                return job
            if timeout_s is not None and time.monotonic() - start > timeout_s:
                raise TimeoutError(f"job {job_id} still {job.state} after {timeout_s:g} s")
            time.sleep(poll_s)

    def recommendation(self, job_id: str) -> RecommendationOut:
        return self._get(RecommendationOut, f"/v1/jobs/{job_id}/recommendation")

    def importance(self, job_id: str) -> ImportanceOut:
        return self._get(ImportanceOut, f"/v1/jobs/{job_id}/importance")

    def trials(
        self,
        job_id: str,
        *,
        sort: str = "-accuracy",
        status: list[str] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[TrialOut]:
        params: dict[str, Any] = {"sort": sort, "limit": limit, "offset": offset}
        if status:
            params["status"] = status
        return self._get(Page[TrialOut], f"/v1/jobs/{job_id}/trials", params=params)

    def trial(self, trial_id: int) -> TrialOut:
        return self._get(TrialOut, f"/v1/trials/{trial_id}")

    def cancel(self, job_id: str) -> JobOut:
        return self._post(JobOut, f"/v1/jobs/{job_id}/cancel")

    def download_student(
        self,
        job_id: str,
        dest: str | Path,
        *,
        trial: int | None = None,
        format: str = "safetensors",
        max_bytes: int = 20 << 30,
    ) -> Path:
        """Download the recommended student (``trial``: that trial's, a kept Pareto-front or reference
        student) and unpack it into the new folder ``dest`` (safely); returns it. ``format``: ``safetensors``
        (the Hugging Face folder), ``onnx`` (``model.onnx``) or ``onnx-int8`` (``model-int8.onnx``), each ONNX
        file with ``config.json`` and the tokenizer."""
        dest = Path(dest)
        if dest.exists():
            raise FileExistsError(f"{dest} exists; give a new folder for the student")
        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(tmp) / "student.zip"
            params: dict[str, Any] = {"trial": int(trial)} if trial is not None else {}
            if format != "safetensors":
                params["format"] = format
            with self.http.stream("GET", f"/v1/jobs/{job_id}/student", params=params) as r:
                if r.status_code >= 400:
                    r.read()
                    raise ApiError(r.status_code, r.json().get("detail"))
                with archive.open("wb") as f:
                    for chunk in r.iter_bytes(1 << 20):
                        f.write(chunk)
            folder = safe_extract(archive, Path(tmp) / "x", max_bytes=max_bytes)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(folder, dest)  # another filesystem, maybe: not a rename
        return dest
