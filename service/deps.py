"""What every route gets: the settings, the database, and the caller's API key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from service.session import COOKIE, key_for_token
from store import ApiKey, Dataset, Job, TeacherEntry, Trial, get_entry, get_job, get_trial, key_for
from store.inputs import Entry
from store.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Or the key in `X-API-Key`.")


@dataclass(frozen=True)
class Context:
    settings: Settings
    db: sessionmaker[Session]


def context(request: Request) -> Context:
    return request.app.state.ctx


def api_key(
    request: Request,
    ctx: Annotated[Context, Depends(context)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_header)],
) -> ApiKey:
    """The caller's live API key, or 401. The dashboard's cookie counts for reads only (GET), so a page can
    follow a job's events, but no cookie-carrying request can change anything through the API."""
    given = bearer.credentials if bearer is not None else header
    session = request.cookies.get(COOKIE) if request.method in ("GET", "HEAD") else None
    if not given and session and (key := key_for_token(ctx.db, session)) is not None:
        return key
    if not given:
        raise HTTPException(
            401,
            "missing API key: send `Authorization: Bearer <key>` (or `X-API-Key`); "
            "`autodistiller keys create` makes one",
            headers={"WWW-Authenticate": "Bearer"},
        )
    key = key_for(ctx.db, given)
    if key is None:
        raise HTTPException(401, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    return key


Ctx = Annotated[Context, Depends(context)]
Key = Annotated[ApiKey, Depends(api_key)]


def owned_job(ctx: Context, key: ApiKey, job_id: str) -> Job:
    """The caller's job, or 404 (another key's job is reported as missing, not forbidden)."""
    job = get_job(ctx.db, job_id)
    if job is None or job.owner != key.id:
        raise HTTPException(404, f"no job {job_id}")
    return job


def owned_trial(ctx: Context, key: ApiKey, trial_id: int) -> Trial:
    """The trial of one of the caller's jobs, or 404 (saying nothing of whose it is)."""
    trial = get_trial(ctx.db, trial_id)
    job = get_job(ctx.db, trial.job_id) if trial is not None else None
    if job is None or job.owner != key.id:
        raise HTTPException(404, f"no trial {trial_id}")
    return trial


def _owned_entry(ctx: Context, key: ApiKey, model: type[Entry], entry_id: str, what: str) -> Entry:
    row = get_entry(ctx.db, model, entry_id)
    if row is None or row.owner != key.id:
        raise HTTPException(404, f"no {what} {entry_id}")
    return row


def owned_dataset(ctx: Context, key: ApiKey, dataset_id: str) -> Dataset:
    return _owned_entry(ctx, key, Dataset, dataset_id, "dataset")


def owned_teacher(ctx: Context, key: ApiKey, teacher_id: str) -> TeacherEntry:
    return _owned_entry(ctx, key, TeacherEntry, teacher_id, "teacher")
