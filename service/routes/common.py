"""Pieces the resource routes share: pagination, multipart forms, the OpenAPI body of an upload route."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, UploadFile

COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, unknown or revoked API key"},
    404: {"description": "No such item for this API key"},
}
UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed multipart body"},
    403: {"description": "A server-side path outside the import folders"},
    413: {"description": "Upload too large"},
    415: {"description": "Neither JSON nor multipart"},
    422: {"description": "Unusable input (the message says why)"},
}
Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="Items to skip.")]


def json_or_upload(json_model: type[BaseModel], form_fields: dict[str, Any], what: str) -> dict[str, Any]:
    """``openapi_extra`` for a POST that takes either a JSON body or a multipart upload (``file``)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": json_model.model_json_schema(ref_template="#/components/schemas/{model}")
                },
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary", "description": what},
                            **form_fields,
                        },
                    }
                },
            },
        }
    }


async def read_body(request: Request, model: type[BaseModel], max_files: int = 1) -> BaseModel | FormData:
    """The JSON body validated as ``model``, or the multipart form (with its ``file``, and at most
    ``max_files`` files in all)."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form(max_files=max_files, max_fields=20)
        if not isinstance(form.get("file"), UploadFile):
            raise HTTPException(422, "a multipart upload needs its file in the `file` field")
        return form
    if not ctype.startswith("application/json"):
        raise HTTPException(415, "send JSON (`application/json`) or an upload (`multipart/form-data`)")
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as e:
        raise HTTPException(422, error_list(e)) from None


def require_json(request: Request) -> None:
    """415 unless the body is JSON (FastAPI would otherwise try to parse any body as JSON)."""
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise HTTPException(415, "send the body as JSON (`Content-Type: application/json`)")


def form_model(form: FormData, model: type[BaseModel], **fixed: Any) -> BaseModel:
    """The form's non-empty text fields plus the server's ``fixed`` ones, validated as ``model``."""
    fields = {k: v for k, v in form.items() if not k.endswith("file") and isinstance(v, str) and v != ""}
    fields.update(fixed)
    try:
        return model.model_validate(fields)
    except ValidationError as e:
        raise HTTPException(422, error_list(e)) from None


def error_list(e: ValidationError | RequestValidationError) -> list[dict[str, Any]]:
    """Where and what, without the input: the input may not be JSON (NaN) and need not be echoed."""
    return [{"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]} for err in e.errors()]
