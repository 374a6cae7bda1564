"""The dashboard's pages (``/ui``): jobs, a job's live progress, leaderboard and plots, a trial.

Server-rendered (Jinja2), with inline SVG plots (``plots``) and one small script for live updates; every asset
is served by the app. A page reads with a signed session token (``service.session``, never the key) in an
HttpOnly, SameSite=Strict cookie set by the login form; every form POST must come from this server's own pages
(Origin) and the job form also carries the session's CSRF token; it submits through the API's own checks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from distill.pipeline import Pipeline, describe
from search.importance import importance_caveat, pipeline_importance
from service.dashboard import plots
from service.deps import Context, Ctx, owned_job, owned_trial
from service.jobs import job_out, queue_job, recommendation_out
from service.routes.common import error_list
from service.schemas import JobRequest
from service.session import (
    COOKIE,
    SESSION_SECONDS,
    check_csrf,
    check_origin,
    csrf_token,
    key_for_token,
    make_token,
)
from store import (
    SORT_KEYS,
    ApiKey,
    Dataset,
    Job,
    TeacherEntry,
    count_jobs,
    count_trials,
    get_job,
    get_profile,
    key_for,
    latest_model,
    leaderboard,
    list_artifacts,
    list_entries,
    list_jobs,
    reference_trials,
    trial_pipelines,
    trial_points,
)
from store.spec import Id, JobBudget
from store.states import SCORED_STATUSES, TRIAL_STATUSES, TrialStatus

router = APIRouter(prefix="/ui", include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
PAGE = 50


FORMAT_NAMES = {"safetensors": "safetensors", "onnx": "ONNX", "onnx-int8": "ONNX int8"}


def _or_dash(fmt: Callable[[Any], str]) -> Callable[[Any], str]:
    """A filter that shows a dash for a missing value (``None`` or an undefined template variable)."""
    return lambda v: "–" if v is None or isinstance(v, jinja2.Undefined) else fmt(v)


templates.env.filters.update(
    acc=_or_dash(lambda v: f"{v:.4f}"),
    pct=_or_dash(lambda v: f"{v:.1%}"),
    signed=_or_dash(lambda v: f"{v:+.4f}"),
    params=_or_dash(lambda n: f"{n / 1e6:.1f}M" if n >= 1e5 else f"{n / 1e3:.0f}k"),
    ms=_or_dash(lambda v: f"{v:.1f} ms"),
    mb=_or_dash(lambda n: f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"),
    fmt_name=lambda f: FORMAT_NAMES.get(f, f),
    secs=_or_dash(lambda v: f"{v:.0f} s"),
    when=_or_dash(lambda v: v.strftime("%Y-%m-%d %H:%M:%S")),
    describe=describe,
)


class LoginRequired(Exception):
    """No valid key in the cookie: the page answers with the login form."""


def page_key(request: Request, ctx: Context) -> ApiKey:
    row = key_for_token(ctx.db, request.cookies.get(COOKIE))
    if row is None:
        raise LoginRequired
    return row


SameOrigin = Depends(check_origin)


def login_redirect(request: Request, _: LoginRequired) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/login?{urlencode({'next': target})}", status_code=303)


def _safe_next(target: str | None) -> str:
    return target if target and target.startswith("/ui/") and "//" not in target else "/ui/jobs"


# ---------------------------------------------------------------------------------------------- login


@router.get("", response_class=HTMLResponse)
def home() -> Response:
    return RedirectResponse("/ui/jobs", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    return templates.TemplateResponse(request, "login.html", {"next": _safe_next(next), "error": None})


@router.post("/login", response_class=HTMLResponse, dependencies=[SameOrigin])
def login(
    request: Request, ctx: Ctx, key: Annotated[str, Form()], next: Annotated[str, Form()] = ""
) -> Response:
    row = key_for(ctx.db, key.strip())
    if row is None:
        context = {"next": _safe_next(next), "error": "unknown or revoked API key"}
        return templates.TemplateResponse(request, "login.html", context, status_code=401)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE, make_token(row), httponly=True, samesite="strict", max_age=SESSION_SECONDS, path="/"
    )
    return response


@router.post("/logout", dependencies=[SameOrigin])
def logout() -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


# ---------------------------------------------------------------------------------------------- jobs


def _jobs_page(request: Request, ctx: Context, key: ApiKey, *, error: str | None = None, status: int = 200):
    jobs = list_jobs(ctx.db, owner=key.id, limit=100)
    datasets, _ = list_entries(ctx.db, Dataset, owner=key.id, limit=200)
    teachers, _ = list_entries(ctx.db, TeacherEntry, owner=key.id, limit=200)
    context = {
        "key": key,
        "jobs": [job_out(j) for j in jobs],
        "total": count_jobs(ctx.db, owner=key.id),
        "datasets": [d for d in datasets if not d.ref.get("unlabeled")],
        "transfers": [d for d in datasets if d.ref.get("unlabeled")],
        "teachers": teachers,
        "error": error,
        "csrf": csrf_token(key, request.cookies.get(COOKIE, "")),
    }
    return templates.TemplateResponse(request, "jobs.html", context, status_code=status)


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, ctx: Ctx) -> Response:
    return _jobs_page(request, ctx, page_key(request, ctx))


@router.post("/jobs", response_class=HTMLResponse, dependencies=[SameOrigin])
def submit_form(
    request: Request,
    ctx: Ctx,
    dataset_id: Annotated[str, Form()],
    teacher_id: Annotated[str, Form()],
    trials: Annotated[str, Form()] = "12",
    wall_seconds: Annotated[str, Form()] = "",
    max_params: Annotated[str, Form()] = "",
    max_latency_ms: Annotated[str, Form()] = "",
    target_ratio: Annotated[str, Form()] = "",
    space: Annotated[str, Form()] = "default",
    epochs: Annotated[str, Form()] = "",
    transfer_id: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """The job form: the same checks as ``POST /v1/jobs``; a bad field re-renders the form with why."""
    key = page_key(request, ctx)
    check_csrf(key, request.cookies.get(COOKIE, ""), csrf)
    fields: dict[str, Any] = {
        "trials": trials, "wall_seconds": wall_seconds, "max_params": max_params,
        "max_latency_ms": max_latency_ms, "target_ratio": target_ratio, "space": space,
    }  # fmt: skip
    budget = {k: v.strip() for k, v in fields.items() if v and v.strip()}
    if epochs.strip():
        budget["epochs"] = [e for e in epochs.replace(",", " ").split() if e]
    try:
        body = JobRequest(
            dataset_id=dataset_id, teacher_id=teacher_id, budget=JobBudget.model_validate(budget),
            transfer_id=transfer_id.strip() or None,
        )  # fmt: skip
        job = queue_job(ctx, key, body)
    except ValidationError as e:
        why = "; ".join(
            f"{'.'.join(x for x in err['loc'] if isinstance(x, str)) or 'form'}: {err['msg']}"
            for err in error_list(e)
        )
        return _jobs_page(request, ctx, key, error=why, status=422)
    except HTTPException as e:
        return _jobs_page(request, ctx, key, error=str(e.detail), status=e.status_code)
    return RedirectResponse(f"/ui/jobs/{job.id}", status_code=303)


# ---------------------------------------------------------------------------------------------- one job


def _live_context(ctx: Context, key: ApiKey, job: Job, sort: str, status: str | None, page: int) -> dict:
    """What the live part of a job page shows: recommendation, baselines, leaderboard page, plots."""
    sort = sort if sort.removeprefix("-") in SORT_KEYS else "-accuracy"
    status_filter = status if status in TRIAL_STATUSES else None
    total = count_trials(ctx.db, job.id, status=status_filter)
    rows = leaderboard(ctx.db, job.id, sort=sort, status=status_filter, limit=PAGE, offset=(page - 1) * PAGE)
    points = trial_points(ctx.db, job.id)
    t_prof = get_profile(ctx.db, "teacher", job_id=job.id)
    teacher = t_prof.data if t_prof else {}
    scored = [p for p in points if p.accuracy is not None and p.status in SCORED_STATUSES]
    history = plots.history(
        [plots.HistoryPoint(p.number, p.accuracy, p.status, p.is_reference, p.id) for p in scored],
        job.teacher_accuracy,
    )
    sized = [
        plots.SizePoint(p.id, p.params, p.accuracy, f"trial {p.number}")
        for p in scored
        if p.params and p.status == TrialStatus.COMPLETED
    ]
    t_point = (
        (teacher["params"], job.teacher_accuracy) if teacher.get("params") and job.teacher_accuracy else None
    )
    return {
        "job": job_out(job),
        "rec": recommendation_out(ctx, job),
        "refs": reference_trials(ctx.db, job.id),
        "best": rows[0] if rows and sort == "-accuracy" and page == 1 and not status_filter else None,
        "rows": rows,
        "total": total,
        "sort": sort,
        "status": status_filter,
        "page": page,
        "pages": max(1, -(-total // PAGE)),
        "statuses": TRIAL_STATUSES,
        "teacher": teacher,
        "plot_history": history,
        "plot_size": plots.size_vs_accuracy(sized, t_point),
        "plot_candidates": _candidates_plot(ctx, job),
        "n_scored": len(scored),
    }


def _candidates_plot(ctx: Context, job: Job) -> str | None:
    """DisWOT's scored students; the ones a trial trained carry the best accuracy they reached."""
    prof = get_profile(ctx.db, "candidates", job_id=job.id)
    rows = prof.data.get("candidates") if prof and prof.data.get("source") == "diswot" else None
    if not rows:  # no search ran (the job named its candidates), or nothing was scored yet
        return None
    best: dict[str, float] = {}
    for t in leaderboard(ctx.db, job.id, sort="-accuracy", status="completed", limit=1000):
        best.setdefault(_arch_key(t.pipeline["student"]), t.accuracy)
    return plots.candidates(
        [
            plots.CandidatePoint(
                f"{r['arch']['layers']}×{r['arch']['hidden']}",
                r["params"],
                float(r["score"]),
                bool(r.get("picked")),
                best.get(_arch_key(r["arch"])),
            )
            for r in rows
        ]
    )


def _arch_key(arch: dict[str, Any]) -> str:
    return json.dumps(arch, sort_keys=True)


def _job_context(ctx: Context, key: ApiKey, job_id: str, sort: str, status: str | None, page: int) -> dict:
    job = owned_job(ctx, key, job_id)
    return {"key": key, **_live_context(ctx, key, job, sort, status, page)}


Sort = Annotated[str, Query(max_length=40)]
TrialId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
Status = Annotated[str | None, Query(max_length=20)]
PageNo = Annotated[int, Query(ge=1, le=1_000_000)]


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(
    request: Request, ctx: Ctx, job_id: Id, sort: Sort = "-accuracy", status: Status = None, page: PageNo = 1
) -> Response:
    key = page_key(request, ctx)
    return templates.TemplateResponse(request, "job.html", _job_context(ctx, key, job_id, sort, status, page))


@router.get("/jobs/{job_id}/live", response_class=HTMLResponse)
def job_live(
    request: Request, ctx: Ctx, job_id: Id, sort: Sort = "-accuracy", status: Status = None, page: PageNo = 1
) -> Response:
    """The live part of the job page, re-fetched by the page's script when the job changes."""
    key = page_key(request, ctx)
    return templates.TemplateResponse(
        request, "_live.html", _job_context(ctx, key, job_id, sort, status, page)
    )


@router.get("/jobs/{job_id}/importance", response_class=HTMLResponse)
async def job_importance(request: Request, ctx: Ctx, job_id: Id) -> Response:
    """Which pipeline component mattered (Optuna's fANOVA over the latest 500 finished trials); loaded
    after the page, as it takes up to a second or two."""
    key = page_key(request, ctx)
    job = owned_job(ctx, key, job_id)
    pairs = await run_in_threadpool(trial_pipelines, ctx.db, job.id, limit=500)
    if caveat := importance_caveat(len(pairs)):
        html = f'<p class="muted">This job: {escape(caveat)}.</p>'
    else:
        scores = await run_in_threadpool(pipeline_importance, pairs)
        html = plots.importance_bars(scores, f"This job: fANOVA over {len(pairs)} finished trials")
    if (model := latest_model(ctx.db)) is not None:  # across jobs: what the recommender learned
        label = f"Across jobs: share of each component in recommender v{model.id} ({model.tasks} tasks)"
        html += plots.importance_bars(model.importance, label)
    return HTMLResponse(html)


# ---------------------------------------------------------------------------------------------- one trial


@router.get("/trials/{trial_id}", response_class=HTMLResponse)
def trial_page(request: Request, ctx: Ctx, trial_id: TrialId) -> Response:
    key = page_key(request, ctx)
    trial = owned_trial(ctx, key, trial_id)
    job = get_job(ctx.db, trial.job_id)
    kept = any(a.trial_id == trial.id for a in list_artifacts(ctx.db, job.id, kind="student"))
    context = {
        "key": key,
        "job": job_out(job),
        "trial": trial,
        "pipeline": Pipeline.model_validate(trial.pipeline),
        "plot_curves": plots.curves(trial.epochs or []),
        "kept": kept,
    }
    return templates.TemplateResponse(request, "trial.html", context)
