"""``/v1/teachers``: upload a model folder as an archive, or register a path / Hub id / base encoder."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from service.deps import Context, Ctx, Key, owned_teacher
from service.inputs import ARCHIVE_SUFFIXES, receive_upload, register_teacher, register_uploaded_teacher
from service.routes.common import (
    COMMON_ERRORS,
    UPLOAD_ERRORS,
    Limit,
    Offset,
    form_model,
    json_or_upload,
    read_body,
)
from service.schemas import Page, TeacherAccuracy, TeacherIn, TeacherOut
from store import TeacherEntry, list_entries, teacher_accuracies
from store.spec import Id, Name

router = APIRouter(prefix="/v1/teachers", tags=["teachers"], responses=COMMON_ERRORS)


class UploadMeta(BaseModel):
    """The form fields that may come with an uploaded model archive."""

    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    masked_lm: bool = False  # a masked LM for contextual augmentation, not a teacher


def _out(ctx: Context, row: TeacherEntry) -> TeacherOut:
    out = TeacherOut.model_validate(row, from_attributes=True)
    out.accuracies = [TeacherAccuracy(**a) for a in teacher_accuracies(ctx.db, row.id)]
    return out


@router.post(
    "",
    status_code=201,
    response_model=TeacherOut,
    summary="Upload or register a teacher",
    openapi_extra=json_or_upload(
        TeacherIn,
        {"name": {"type": "string"}},
        f"An archive ({', '.join(ARCHIVE_SUFFIXES)}) of a Hugging Face model folder with safetensors weights",
    ),
    responses=UPLOAD_ERRORS,
)
async def create_teacher(request: Request, ctx: Ctx, key: Key) -> TeacherOut:
    """Upload an archive of a fine-tuned Hugging Face classifier folder (multipart field `file`), or
    register by JSON a `path` (a folder under the server's import folders, or a Hub id) or a `base` encoder
    that each job fine-tunes once on its data (`minilm` ships with the service). The model is loaded at
    once: safetensors only, no custom code, no `..` or links in the archive. Answered with its profile
    (architecture, parameters, labels); its accuracy on each dataset is added when a job has measured it."""
    body = await read_body(request, TeacherIn)
    if isinstance(body, TeacherIn):
        row = await run_in_threadpool(register_teacher, ctx.db, ctx.settings, body, key.id)
        return _out(ctx, row)
    fields = form_model(body, UploadMeta)
    upload = body["file"]
    filename = (upload.filename or "").lower()
    if not filename.endswith(ARCHIVE_SUFFIXES):
        raise HTTPException(422, f"upload the model folder as one of {', '.join(ARCHIVE_SUFFIXES)}")
    suffix = max((s for s in ARCHIVE_SUFFIXES if filename.endswith(s)), key=len)
    entry_id, archive = await receive_upload(ctx.settings, "teachers", upload, f"upload{suffix}")
    name = fields.name or (upload.filename or "teacher").split(".")[0]
    row = await run_in_threadpool(
        register_uploaded_teacher, ctx.db, ctx.settings, entry_id, archive, name, key.id, fields.masked_lm
    )
    return _out(ctx, row)


@router.get("", response_model=Page[TeacherOut], summary="My teachers")
def list_teachers(ctx: Ctx, key: Key, limit: Limit = 50, offset: Offset = 0) -> Page[TeacherOut]:
    rows, total = list_entries(ctx.db, TeacherEntry, owner=key.id, limit=limit, offset=offset)
    return Page[TeacherOut](items=[_out(ctx, r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{teacher_id}", response_model=TeacherOut, summary="A teacher, its profile and accuracies")
def get_teacher(teacher_id: Id, ctx: Ctx, key: Key) -> TeacherOut:
    return _out(ctx, owned_teacher(ctx, key, teacher_id))
