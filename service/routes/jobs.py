"""``/v1/jobs`` and ``/v1/trials``: submit a job, follow it, read its recommendation and leaderboard, cancel
it, download its student."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path as FsPath
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Response
from fastapi.responses import FileResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from distill.hf import PICKLE_SUFFIXES
from distill.onnx_export import FORMATS, ONNX_DIR, onnx_file
from search.importance import importance_caveat, pipeline_importance
from service.deps import Context, Ctx, Key, owned_job, owned_trial
from service.jobs import job_out, queue_job, recommendation_out
from service.routes.common import COMMON_ERRORS, Limit, Offset, require_json
from service.schemas import (
    ImportanceOut,
    JobOut,
    JobRequest,
    Page,
    RecommendationOut,
    TrialOut,
)
from service.uploads import UploadError, guard_path, zip_files, zip_folder
from store import (
    SORT_KEYS,
    TERMINAL_STATES,
    TRIAL_STATUSES,
    Job,
    count_jobs,
    count_trials,
    get_job,
    latest_model,
    leaderboard,
    list_artifacts,
    list_jobs,
    trial_pipelines,
)
from store import cancel_job as cancel
from store.results import trial_rows
from store.spec import Id
from store.states import JobState

router = APIRouter(tags=["jobs"], responses=COMMON_ERRORS)
SortKey = Literal[tuple(k for name in SORT_KEYS for k in (name, f"-{name}"))]  # type: ignore[valid-type]


@router.post(
    "/v1/jobs",
    status_code=202,
    dependencies=[Depends(require_json)],
    response_model=JobOut,
    summary="Submit a distillation job",
    responses={
        404: {"description": "Unknown dataset or teacher"},
        415: {"description": "The body is not JSON"},
        422: {"description": "Bad request, or an Idempotency-Key reused for another request"},
    },
)
def submit_job(
    body: JobRequest,
    response: Response,
    ctx: Ctx,
    key: Key,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=128,
            pattern=r"^[\x21-\x7e]+$",
            description="Repeat a POST safely: the same key returns the job it created the first time.",
        ),
    ] = None,
) -> JobOut:
    """Queue a search for the best KD pipeline and student for a registered dataset and teacher, within
    the budget (trials, wall time) and constraints (max params, max latency, target ratio to the teacher).
    Answered at once with the job and its URLs; a worker picks it up."""
    job = queue_job(ctx, key, body, idempotency_key)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job_out(job)


@router.get("/v1/jobs", response_model=Page[JobOut], summary="My jobs, newest first")
def jobs_page(
    ctx: Ctx, key: Key, state: JobState | None = None, limit: Limit = 50, offset: Offset = 0
) -> Page[JobOut]:
    rows = list_jobs(ctx.db, owner=key.id, state=state, limit=limit, offset=offset)
    total = count_jobs(ctx.db, owner=key.id, state=state)
    return Page[JobOut](items=[job_out(j) for j in rows], total=total, limit=limit, offset=offset)


@router.get("/v1/jobs/{job_id}", response_model=JobOut, summary="A job: state, progress, best so far, ETA")
def job_status(job_id: Id, ctx: Ctx, key: Key) -> JobOut:
    return job_out(owned_job(ctx, key, job_id))


@router.get(
    "/v1/jobs/{job_id}/events",
    summary="Live progress (server-sent events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "`event: job` per change"}},
)
async def job_events(
    job_id: Id, ctx: Ctx, key: Key, interval: Annotated[float, Query(ge=0.2, le=30)] = 1.0
) -> StreamingResponse:
    """A `text/event-stream`: an `event: job` with the job (as `GET /v1/jobs/{id}`) whenever it changes,
    until it ends; a comment line every 15 s keeps proxies from closing the stream."""
    owned_job(ctx, key, job_id)

    async def stream() -> AsyncIterator[str]:
        last, quiet = None, 0.0
        while True:
            job = await run_in_threadpool(get_job, ctx.db, job_id)
            if job is None:
                return
            out = job_out(job)
            doc = out.model_dump(mode="json", exclude={"eta_seconds"})  # the ETA alone is no news
            if doc != last:
                last, quiet = doc, 0.0
                yield f"event: job\ndata: {out.model_dump_json()}\n\n"
            elif quiet >= 15:
                quiet = 0.0
                yield ": keep-alive\n\n"
            if job.state in TERMINAL_STATES:
                return
            await asyncio.sleep(interval)
            quiet += interval

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.get(
    "/v1/jobs/{job_id}/recommendation",
    response_model=RecommendationOut,
    summary="The pipeline recommended now, its score, cost and why",
)
def recommendation(job_id: Id, ctx: Ctx, key: Key) -> RecommendationOut:
    """During the search: the best pipeline measured so far. When the job has finished: the exported
    student's pipeline (`final`). Before any trial: a predicted pipeline when one is known, else
    `available: false` with the reason."""
    return recommendation_out(ctx, owned_job(ctx, key, job_id))


@router.get(
    "/v1/jobs/{job_id}/importance",
    response_model=ImportanceOut,
    summary="Which pipeline components matter, for this job and across jobs",
)
async def importance(job_id: Id, ctx: Ctx, key: Key) -> ImportanceOut:
    """`this_job`: fANOVA importance of each component over the job's completed trials (empty, with a
    `caveat`, below 20 trials); `across_jobs`: the latest recommender version's share of each component."""
    job = owned_job(ctx, key, job_id)
    pairs = trial_pipelines(ctx.db, job.id)
    caveat = importance_caveat(len(pairs))
    this_job = {} if caveat else await run_in_threadpool(pipeline_importance, pairs)
    model = latest_model(ctx.db)
    return ImportanceOut(
        job_id=job.id,
        this_job={k: round(v, 4) for k, v in this_job.items()},
        trials_used=len(pairs),
        caveat=caveat,
        across_jobs=model.importance if model else {},
        model_version=model.id if model else None,
    )


_PAGE_FIELDS = [f for f in TrialOut.model_fields if f not in ("epochs", "error")]  # detail only


@router.get("/v1/jobs/{job_id}/trials", response_model=Page[TrialOut], summary="The leaderboard")
def trials_page(
    job_id: Id,
    ctx: Ctx,
    key: Key,
    sort: Annotated[SortKey, Query(description="A column; `-` first for descending.")] = "-accuracy",
    status: Annotated[list[Literal[TRIAL_STATUSES]] | None, Query()] = None,  # type: ignore[valid-type]
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[TrialOut]:
    """A page of the job's trials, best first by default; missing values sort last."""
    owned_job(ctx, key, job_id)
    rows = leaderboard(ctx.db, job_id, sort=sort, status=status, limit=limit, offset=offset)
    return Page[TrialOut](
        items=[TrialOut.model_validate({f: getattr(r, f) for f in _PAGE_FIELDS}) for r in rows],
        total=count_trials(ctx.db, job_id, status=status),
        limit=limit,
        offset=offset,
    )


@router.get("/v1/trials/{trial_id}", response_model=TrialOut, summary="One trial with its curves and error")
def trial_detail(trial_id: Annotated[int, Path(ge=1, le=2**31 - 1)], ctx: Ctx, key: Key) -> TrialOut:
    return TrialOut.model_validate(owned_trial(ctx, key, trial_id), from_attributes=True)


@router.post(
    "/v1/jobs/{job_id}/cancel",
    response_model=JobOut,
    summary="Cancel a job",
    responses={409: {"description": "The job has already ended"}},
)
def cancel_job(job_id: Id, ctx: Ctx, key: Key) -> JobOut:
    """Stop a queued or running job; finished trials are kept, running ones are marked failed."""
    job = owned_job(ctx, key, job_id)
    if not cancel(ctx.db, job.id):
        raise HTTPException(409, f"job {job.id} has already ended ({job.state})")
    return job_out(get_job(ctx.db, job.id))


StudentFormat = Literal[FORMATS]  # type: ignore[valid-type]
#: top-level files of a student folder that the ONNX archives leave out (the weights, the card, our notes)
NOT_FOR_ONNX = ("README.md", "autodistiller.json")


@router.get(
    "/v1/jobs/{job_id}/student",
    summary="Download a student (a zip of a Hugging Face model folder, or ONNX): the recommended one, or "
    "`trial=N`",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/zip": {}}, "description": "The student"},
        404: {"description": "No kept student for that trial, or no file of that format for it"},
        409: {"description": "No student yet"},
        422: {"description": "Unknown format"},
    },
)
def download_student(
    job_id: Id,
    ctx: Ctx,
    key: Key,
    trial: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
    fmt: Annotated[
        StudentFormat,
        Query(
            alias="format",
            description="`safetensors`: the Hugging Face folder; `onnx`: `model.onnx` (fp32); `onnx-int8`: "
            "`model-int8.onnx` (dynamic int8) — each ONNX file with `config.json` and the tokenizer files",
        ),
    ] = "safetensors",
) -> FileResponse:
    """The exported student: `config.json`, `model.safetensors`, the tokenizer and a model card;
    `transformers.AutoModelForSequenceClassification.from_pretrained(folder)` loads it. `trial=N`: the student
    of trial number N, kept when it is on the Pareto front (accuracy, params, latency) or a reference (the
    recommendation's `students` lists them). `format=onnx` / `onnx-int8`: the ONNX graph (inputs
    `input_ids`, `attention_mask`, `token_type_ids` where the model takes them, dynamic batch and sequence;
    output `logits`) with `config.json` and the tokenizer, for onnxruntime."""
    job = owned_job(ctx, key, job_id)
    folder = _student_folder(ctx, job, trial)
    tag = (f"-trial-{trial}" if trial is not None else "") + (f"-{fmt}" if fmt != "safetensors" else "")
    archive = folder.with_name(folder.name + (f".{fmt}" if fmt != "safetensors" else "") + ".zip")
    if not archive.is_file():
        _student_archive(folder, fmt, archive, f"student-{job.id}")
    return FileResponse(
        archive, media_type="application/zip", filename=f"autodistiller-student-{job.id}{tag}.zip"
    )


def _student_archive(folder: FsPath, fmt: str, archive: FsPath, root: str) -> None:
    """``safetensors``: the whole Hugging Face folder but its ``onnx/``; an ONNX format: that file with
    ``config.json`` and the tokenizer files at the top of the archive."""
    if fmt == "safetensors":
        zip_folder(folder, archive, arc_root=root, skip_dirs=(ONNX_DIR,))
        return
    graph = onnx_file(folder, fmt)
    if not graph.is_file():
        raise HTTPException(
            404,
            f"this student has no {fmt} file: it was exported before ONNX export existed, or its export "
            "failed (the recommendation's `students` lists each student's formats); format=safetensors works",
        )
    keep = [
        p
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.is_symlink() and p.name not in NOT_FOR_ONNX
        and p.suffix != ".safetensors" and p.suffix not in PICKLE_SUFFIXES
    ]  # fmt: skip
    zip_files([(p, f"{root}/{p.name}") for p in [*keep, graph]], archive)


def _student_folder(ctx: Context, job: Job, trial: int | None = None) -> FsPath:
    arts = list_artifacts(ctx.db, job.id, kind="student")
    if not arts:
        raise HTTPException(409, f"job {job.id} has no student yet (state {job.state}: {job.progress_text})")
    if trial is not None:
        row = next((t for t in trial_rows(ctx.db, job.id) if t.number == trial), None)
        kept = arts + list_artifacts(ctx.db, job.id, kind="pareto_student")
        arts = [a for a in kept if row is not None and a.trial_id == row.id]
        if not arts:
            raise HTTPException(
                404,
                f"job {job.id} kept no student for trial {trial} (kept: the recommended student, the "
                "Pareto front and the references; see the recommendation's `students`)",
            )
    try:
        folder = guard_path(arts[-1].path, [ctx.settings.home])  # artifact paths are relative to the home
    except UploadError:
        folder = None
    if folder is None or not folder.is_dir():
        raise HTTPException(410, f"the student of job {job.id} is no longer on the server")
    return folder
