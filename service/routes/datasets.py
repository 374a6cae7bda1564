"""``/v1/datasets``: upload a file or register a built-in / Hub / server-side dataset; list and read them."""

from __future__ import annotations

import shutil
from pathlib import Path, PurePath

from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from distill.tables import FILE_SUFFIXES
from service.deps import Ctx, Key, owned_dataset
from service.inputs import receive_upload, register_dataset, register_uploaded_dataset
from service.routes.common import (
    COMMON_ERRORS,
    UPLOAD_ERRORS,
    Limit,
    Offset,
    form_model,
    json_or_upload,
    read_body,
)
from service.schemas import DatasetIn, DatasetOut, Page
from service.uploads import save_upload
from store import Dataset, list_entries
from store.spec import DatasetRef, Id

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], responses=COMMON_ERRORS)

_TEXT_FIELDS = ("name", "text_column", "text_pair_column", "label_column", "split_column")
_FORM = (
    {name: {"type": "string"} for name in _TEXT_FIELDS}
    | {name: {"type": "integer"} for name in ("max_train", "max_val", "seed")}
    | {name: {"type": "number"} for name in ("validation_fraction", "test_fraction")}
    | {"unlabeled": {"type": "boolean", "description": "Unlabeled transfer text (a text column only)."}}
    | {
        f"{split}_file": {"type": "string", "format": "binary", "description": f"A separate {split} file."}
        for split in ("validation", "test")
    }
)
_SPLIT_FILES = ("validation_file", "test_file")


@router.post(
    "",
    status_code=201,
    response_model=DatasetOut,
    summary="Upload or register a dataset",
    openapi_extra=json_or_upload(
        DatasetIn, _FORM, f"CSV, TSV, JSON Lines, JSON or Parquet ({', '.join(FILE_SUFFIXES)})"
    ),
    responses=UPLOAD_ERRORS,
)
async def create_dataset(request: Request, ctx: Ctx, key: Key) -> Dataset:
    """Upload a file (multipart field `file`, plus optional column names) or register a dataset by JSON:
    a built-in name (`rotten_tomatoes`, `bbc_news`), a Hub dataset name, or a path under the server's import
    folders. The data is loaded and checked at once (columns, at least two classes, examples) and answered
    with its profile: sizes, classes and their counts, balance, text lengths. With `unlabeled: true` it is
    transfer text for jobs' `transfer_id`: a text column only, answered with its rows and lengths."""
    body = await read_body(request, DatasetIn, max_files=3)
    if isinstance(body, DatasetIn):
        return await run_in_threadpool(register_dataset, ctx.db, ctx.settings, body, key.id)
    fields = form_model(body, DatasetIn, source="upload")  # the source is the file
    upload = body["file"]
    uploads = {k: body[k] for k in _SPLIT_FILES if isinstance(body.get(k), UploadFile)}
    suffix = _suffix(upload)
    for extra in uploads.values():
        _suffix(extra)
    entry_id, dest = await receive_upload(ctx.settings, "datasets", upload, f"data{suffix}")
    splits: dict[str, tuple[Path, str]] = {}
    try:
        for field, extra in uploads.items():  # beside the main file, in the same entry folder
            split = field.removesuffix("_file")
            path = dest.with_name(f"{split}{_suffix(extra)}")
            await save_upload(extra, path, ctx.settings.max_upload_bytes)
            splits[split] = (path, Path(extra.filename or "").name or split)
    except BaseException:
        shutil.rmtree(dest.parent, ignore_errors=True)  # a refused upload leaves no files
        raise
    ref = DatasetRef.model_validate(fields.model_dump(exclude={"name", "unlabeled"}))
    name = fields.name or Path(upload.filename or "").name or None
    return await run_in_threadpool(
        register_uploaded_dataset, ctx.db, ctx.settings, entry_id, dest, ref, name, key.id, splits,
        fields.unlabeled,
    )  # fmt: skip


def _suffix(upload: UploadFile) -> str:
    """The upload's file type, refused unless it is one the service reads."""
    suffix = "".join(PurePath(upload.filename or "").suffixes[-1:]).lower()
    if suffix not in FILE_SUFFIXES:
        raise HTTPException(
            422, f"unsupported file type `{suffix or '(none)'}`; upload one of {', '.join(FILE_SUFFIXES)}"
        )
    return suffix


@router.get("", response_model=Page[DatasetOut], summary="My datasets")
def list_datasets(ctx: Ctx, key: Key, limit: Limit = 50, offset: Offset = 0) -> Page[DatasetOut]:
    rows, total = list_entries(ctx.db, Dataset, owner=key.id, limit=limit, offset=offset)
    return Page[DatasetOut](
        items=[DatasetOut.model_validate(r, from_attributes=True) for r in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/{dataset_id}", response_model=DatasetOut, summary="A dataset and its profile")
def get_dataset(dataset_id: Id, ctx: Ctx, key: Key) -> Dataset:
    return owned_dataset(ctx, key, dataset_id)
