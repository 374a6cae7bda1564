"""The FastAPI application: ``create_app()`` wires settings, the database, the routes and the error replies.

Run it with ``autodistiller serve`` (API + in-process workers) or any ASGI server:
``uvicorn --factory service.app:create_app``.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.routing import Match

from distill.hf import ModelError
from distill.registry import UnknownComponentError
from distill.tables import DataError
from service.dashboard import routes as dashboard
from service.deps import Context
from service.routes import datasets, jobs, teachers
from service.routes.common import error_list
from service.schemas import Health
from service.uploads import BodyLimit, UploadError
from store import make_engine, normalize_url, session_factory, upgrade
from store.settings import Settings

MULTIPART_SLACK = 1 << 20  # form fields and part headers around an upload of the largest allowed size

try:
    VERSION = version("autodistiller")
except PackageNotFoundError:  # running from a source tree that was not installed
    VERSION = "0+unknown"

DESCRIPTION = """
Find the best knowledge-distillation pipeline for your dataset and teacher, and get the distilled student.

1. `POST /v1/datasets` (upload a file, or register a built-in / Hub / server-side dataset) and
   `POST /v1/teachers` (upload a model archive, or register a path / Hub id / base encoder);
2. `POST /v1/jobs` with their ids and a budget → 202 and the job's URLs;
3. poll `GET /v1/jobs/{id}` (or stream `/events`), read `/recommendation` and the `/trials` leaderboard;
4. `GET /v1/jobs/{id}/student` downloads the best student as a Hugging Face model folder (zip).

Every call needs an API key: `Authorization: Bearer <key>` (`autodistiller keys create`).
"""


@asynccontextmanager
async def _lifespan(_: FastAPI) -> AsyncIterator[None]:
    """Move everything loaded at start-up (torch, transformers, pandas: ~0.5M objects) out of the cyclic GC's
    reach: otherwise every full collection walks them all, a ~250 ms pause of every request in flight."""
    gc.collect()
    gc.freeze()
    yield


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _answers(app: FastAPI, scope: dict) -> bool:
    """Whether some route of ``app`` takes ``scope``'s path and method."""
    return any(route.matches(scope)[0] is Match.FULL for route in app.router.routes)


def create_app(settings: Settings) -> FastAPI:
    """The API for ``settings``; migrates the database first."""
    upgrade(settings.database_url)
    db = session_factory(make_engine(settings.database_url))
    app = FastAPI(title="AutoDistiller", version=VERSION, description=DESCRIPTION, lifespan=_lifespan)
    app.state.ctx = Context(settings=settings, db=db)
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes + MULTIPART_SLACK)
    for router in (datasets.router, teachers.router, jobs.router, dashboard.router):
        app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=Path(dashboard.__file__).parent / "static"), name="static")
    app.add_exception_handler(dashboard.LoginRequired, dashboard.login_redirect)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui/jobs", status_code=303)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": error_list(e)}, status_code=422)  # FastAPI's own echoes the input

    @app.exception_handler(UploadError)
    async def _upload_error(_: Request, e: UploadError) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=e.status)

    for error in (DataError, ModelError, UnknownComponentError):

        @app.exception_handler(error)
        async def _unusable(_: Request, e: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(e).strip("'\"")}, status_code=422)

    @app.options("/{path:path}", include_in_schema=False)
    def _options(request: Request) -> Response:
        """Every method the path answers, in ``Allow`` (Starlette's 405 names only the first route's)."""
        allowed = sorted(m for m in _METHODS if _answers(app, {**request.scope, "method": m}))
        if not allowed:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        return Response(status_code=204, headers={"Allow": ", ".join([*allowed, "OPTIONS"])})

    @app.get("/v1/health", response_model=Health, tags=["service"], summary="Liveness and version")
    def health() -> Health:
        url = normalize_url(settings.database_url)
        return Health(status="ok", version=VERSION, database=url.get_backend_name())

    return app
