"""Safe handling of user uploads: confined paths, bounded copies, checked archive extraction, body limits."""

from __future__ import annotations

import gzip
import json
import lzma
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from distill.hf import PICKLE_SUFFIXES

MAX_UPLOAD_ENV = "AUTODISTILLER_MAX_UPLOAD_MB"
_IGNORED_TOP = ("__MACOSX",)
_DRIVE = re.compile(r"^[A-Za-z]:")
_READ_ERRORS = (
    zipfile.BadZipFile,
    tarfile.TarError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    gzip.BadGzipFile,
    NotImplementedError,  # zip compression method zipfile does not know
    FileExistsError,  # a member that is both a file and a folder
    NotADirectoryError,
    IsADirectoryError,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class UploadError(ValueError):
    """A bad upload; the message tells the user what to fix and ``status`` is the HTTP status to answer."""

    status: int = 422

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class TooLarge(UploadError):
    """An upload or archive bigger than allowed."""

    status = 413


class _Readable(Protocol):
    async def read(self, size: int = -1) -> bytes: ...


def _mb(n: int) -> str:
    return f"{n / 2**20:g}"


def guard_path(path: str | Path, roots: Sequence[Path]) -> Path:
    """``path`` resolved (relative to the first root) if it lies inside one of ``roots`` and exists.

    Symlinks are resolved before the check, so neither ``..`` nor a link can escape a root.
    """
    if not roots:
        raise UploadError("no folders are allowed for server-side paths", status=403)
    resolved_roots = [Path(r).expanduser().resolve() for r in roots]
    candidate = Path(path)  # no `~` expansion: a client's `~` means nothing on the server
    if not candidate.is_absolute():
        candidate = resolved_roots[0] / candidate
    try:
        resolved = candidate.resolve()
        inside = any(resolved.is_relative_to(root) for root in resolved_roots)
        exists = inside and resolved.exists()
    except (OSError, ValueError) as e:  # a name too long, a NUL byte...
        raise UploadError(f"path {str(path)[:200]!r} is not a usable path: {e}") from None
    if not inside:
        allowed = ", ".join(str(r) for r in resolved_roots)
        raise UploadError(f"path {path} is outside the allowed folders ({allowed})", status=403)
    if not exists:
        raise UploadError(f"path {path} does not exist", status=404)
    return resolved


def _too_large_upload(limit: int) -> TooLarge:
    return TooLarge(
        f"the upload is larger than {_mb(limit)} MB; raise {MAX_UPLOAD_ENV} to allow bigger uploads"
    )


async def save_upload(upload: _Readable, dest: Path, limit: int, chunk: int = 1 << 20) -> int:
    """Copy ``upload`` to ``dest`` chunk by chunk and return the bytes written.

    Raises ``TooLarge`` past ``limit`` bytes and ``UploadError`` for an empty upload; no partial file is kept.
    """
    written = 0
    try:
        with dest.open("wb") as out:
            while data := await upload.read(chunk):
                written += len(data)
                if written > limit:
                    raise _too_large_upload(limit)
                out.write(data)
        if written == 0:
            raise UploadError("the uploaded file is empty")
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return written


def _check_name(name: str) -> None:
    """Refuse member names that could land outside the extraction folder."""
    if not name or "\x00" in name:
        raise UploadError(f"the archive holds a member with an invalid name ({name!r})")
    if "\\" in name:
        raise UploadError(f"the archive member {name!r} contains a backslash; use '/' as the path separator")
    if name.startswith("/") or _DRIVE.match(name):
        raise UploadError(
            f"the archive member {name!r} has an absolute path; only relative paths are accepted"
        )
    if ".." in PurePosixPath(name).parts:
        raise UploadError(f"the archive member {name!r} points outside the archive ('..')")


def _check_totals(members: int, total: int, max_bytes: int, max_members: int) -> None:
    if members > max_members:
        raise UploadError(f"the archive holds more than {max_members} files")
    if total > max_bytes:
        raise TooLarge(f"the archive unpacks to more than {_mb(max_bytes)} MB")


def _is_pickle(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in PICKLE_SUFFIXES


def _reject_pickles(names: list[str]) -> None:
    pickled = sorted({PurePosixPath(n).name for n in names if _is_pickle(n)})
    if pickled:
        raise UploadError(
            f"the archive holds pickled weights ({', '.join(pickled)}); only safetensors weights are accepted"
        )


def _check_zip(zf: zipfile.ZipFile, max_bytes: int, max_members: int) -> None:
    infos = zf.infolist()
    _check_totals(len(infos), 0, max_bytes, max_members)
    total = 0
    for info in infos:
        _check_name(info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UploadError(f"the archive member {info.filename!r} is a symlink; links are not accepted")
        if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise UploadError(
                f"the archive member {info.filename!r} is a special file; only files are accepted"
            )
        if info.flag_bits & 0x1:
            raise UploadError(f"the archive member {info.filename!r} is encrypted")
        total += info.file_size
    _check_totals(len(infos), total, max_bytes, max_members)
    _reject_pickles([i.filename for i in infos])


def _check_tar(tf: tarfile.TarFile, max_bytes: int, max_members: int) -> None:
    total = 0
    names: list[str] = []
    for count, member in enumerate(tf, start=1):  # streamed, so a flood of members stops early
        _check_name(member.name)
        if member.issym():
            raise UploadError(f"the archive member {member.name!r} is a symlink; links are not accepted")
        if member.islnk():
            raise UploadError(f"the archive member {member.name!r} is a hard link; links are not accepted")
        if not (member.isreg() or member.isdir()):
            raise UploadError(
                f"the archive member {member.name!r} is a device, fifo or other special file; "
                "only files are accepted"
            )
        total += member.size
        names.append(member.name)
        _check_totals(count, total, max_bytes, max_members)
    _reject_pickles(names)


def _extract_zip(zf: zipfile.ZipFile, dest: Path, max_bytes: int) -> None:
    root = dest.resolve()
    written = 0
    for info in zf.infolist():
        target = (root / info.filename).resolve()
        if not target.is_relative_to(root):
            raise UploadError(f"the archive member {info.filename!r} points outside the archive")
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, target.open("wb") as out:
            while data := src.read(1 << 20):
                written += len(data)
                if written > max_bytes:  # the header lied about the size
                    raise TooLarge(f"the archive unpacks to more than {_mb(max_bytes)} MB")
                out.write(data)


def _model_folder(dest: Path) -> Path:
    if (dest / "config.json").is_file():
        return dest
    folders = [
        d
        for d in dest.iterdir()
        if d.is_dir()
        and not d.name.startswith(".")
        and d.name not in _IGNORED_TOP
        and (d / "config.json").is_file()
    ]
    if len(folders) == 1:
        return folders[0]
    raise UploadError("the archive has no config.json at its top level or in a single top-level folder")


def safe_extract(archive: Path, dest: Path, *, max_bytes: int, max_members: int = 10_000) -> Path:
    """Check every member of a zip or tar ``archive``, extract it into ``dest`` and return the model folder.

    Links, special files, escaping names, pickled weights and archives over ``max_bytes`` (uncompressed)
    or ``max_members`` are refused before anything is written. On any failure ``dest`` is removed.
    """
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                _check_zip(zf, max_bytes, max_members)
                dest.mkdir(parents=True, exist_ok=True)
                _extract_zip(zf, dest, max_bytes)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                _check_tar(tf, max_bytes, max_members)
                dest.mkdir(parents=True, exist_ok=True)
                tf.extractall(dest, filter="data")
        else:
            raise UploadError("not a zip or tar archive")
        return _model_folder(dest)
    except BaseException as e:
        shutil.rmtree(dest, ignore_errors=True)
        if isinstance(e, _READ_ERRORS):
            raise UploadError(f"the archive is corrupt or unreadable: {e}") from e
        raise


def zip_folder(
    folder: Path, dest: Path, *, arc_root: str | None = None, skip_dirs: tuple[str, ...] = ()
) -> Path:
    """Write every regular file under ``folder`` into the zip ``dest`` as ``arc_root/relative/path``, but
    for the top-level subfolders named in ``skip_dirs``.

    The zip is written beside ``dest`` and moved into place, so readers never see a partial file.
    """
    root = arc_root if arc_root is not None else folder.name
    dest_resolved = dest.resolve()
    files = []
    for dirpath, dirs, names in os.walk(folder):  # does not follow symlinked folders
        if Path(dirpath) == folder:
            dirs[:] = [d for d in dirs if d not in skip_dirs]
        for name in names:
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file() or path.resolve() == dest_resolved:
                continue
            files.append(path)
    members = [(p, p.relative_to(folder).as_posix()) for p in sorted(files)]
    return zip_files([(p, f"{root}/{rel}" if root else rel) for p, rel in members], dest)


def zip_files(members: Sequence[tuple[Path, str]], dest: Path) -> Path:
    """Write the files ``members`` (path, name in the archive) into the zip ``dest``, atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path, name in members:
                zf.write(path, name)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


class _BodyTooLarge(Exception):
    """Raised from the wrapped ``receive`` once the request body passes the limit."""


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class BodyLimit:
    """Pure ASGI middleware answering 413 to HTTP requests whose body is larger than ``limit`` bytes.

    A declared ``content-length`` over the limit is refused before the app runs; otherwise the body is
    counted as the app reads it and reading stops once it passes the limit.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.detail = (
            f"the request body is larger than {_mb(limit)} MB; raise {MAX_UPLOAD_ENV} to allow bigger uploads"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", ()):
            if key.lower() == b"content-length":
                try:
                    declared = int(value)
                    if declared < 0:
                        raise ValueError(value)
                except ValueError:
                    await _reply(send, 400, "malformed Content-Length header")
                    return
                if declared > self.limit:
                    await _reply(send, 413, self.detail)
                    return
        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise _BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if exceeded:  # the app caught the overflow and answers anyway (FastAPI turns it into a 400)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await _reply(send, 413, self.detail)
