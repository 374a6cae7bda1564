"""Upload safety: path confinement, bounded copies, hostile archives and the request body limit."""

from __future__ import annotations

import asyncio
import io
import json
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import pytest
from fastapi import FastAPI, File
from fastapi import UploadFile as FastAPIUpload
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from service.uploads import (
    BodyLimit,
    TooLarge,
    UploadError,
    guard_path,
    safe_extract,
    save_upload,
    zip_folder,
)

CONFIG = b'{"model_type": "bert"}'
MB = 1 << 20


# ----------------------------------------------------------------------------- helpers


def make_zip(path: Path, members: dict[str, bytes] | list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    items = members.items() if isinstance(members, dict) else members
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in items:
            zf.writestr(name, data)
    return path


def tar_file(name: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, io.BytesIO(data)


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, io.BytesIO | None]], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tf:
        for info, data in members:
            tf.addfile(info, data)
    return path


def snapshot(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def assert_rejected(
    archive: Path, tmp_path: Path, *, status: int, match: str, error: type[UploadError] = UploadError, **kw
) -> None:
    """``safe_extract`` refuses ``archive``, leaves no ``dest`` and writes nothing anywhere else."""
    dest = tmp_path / "x" / "dest"
    escapes = [tmp_path.parent / "evil", tmp_path / "evil", tmp_path / "x" / "evil", Path("/tmp/evil-upload")]
    before = snapshot(tmp_path)
    kw.setdefault("max_bytes", 10 * MB)
    with pytest.raises(error, match=match) as info:
        safe_extract(archive, dest, **kw)
    assert info.value.status == status
    assert not dest.exists()
    assert snapshot(tmp_path) - before <= {tmp_path / "x"}
    assert not any(p.exists() for p in escapes)


# ----------------------------------------------------------------------------- safe_extract: rejections


@pytest.mark.parametrize(
    "name",
    [
        "../evil",
        "model/../../evil",
        "/tmp/evil-upload",
        "C:/evil",
        "c:evil",
        "..\\evil",
        "model\\..\\..\\evil",
    ],
)
def test_zip_escaping_names_rejected(tmp_path: Path, name: str) -> None:
    archive = make_zip(tmp_path / "a.zip", {"model/config.json": CONFIG, name: b"pwned"})
    assert_rejected(archive, tmp_path, status=422, match="archive member")


def test_tar_escaping_and_absolute_names_rejected(tmp_path: Path) -> None:
    for i, name in enumerate(["../evil", "/tmp/evil-upload"]):
        archive = make_tar(tmp_path / f"a{i}.tar", [tar_file("config.json", CONFIG), tar_file(name, b"x")])
        assert_rejected(archive, tmp_path, status=422, match="archive member")


def test_tar_symlink_rejected(tmp_path: Path) -> None:
    link = tarfile.TarInfo("model/passwd")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    archive = make_tar(tmp_path / "a.tar.gz", [tar_file("model/config.json", CONFIG), (link, None)], "w:gz")
    assert_rejected(archive, tmp_path, status=422, match="symlink")


def test_tar_hardlink_rejected(tmp_path: Path) -> None:
    link = tarfile.TarInfo("model/passwd")
    link.type, link.linkname = tarfile.LNKTYPE, "../../../../etc/passwd"
    archive = make_tar(tmp_path / "a.tar", [tar_file("model/config.json", CONFIG), (link, None)])
    assert_rejected(archive, tmp_path, status=422, match="hard link")


@pytest.mark.parametrize("kind", [tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE])
def test_tar_special_files_rejected(tmp_path: Path, kind: bytes) -> None:
    dev = tarfile.TarInfo("model/dev")
    dev.type = kind
    archive = make_tar(tmp_path / "a.tar", [tar_file("model/config.json", CONFIG), (dev, None)])
    assert_rejected(archive, tmp_path, status=422, match="special file")


def test_zip_symlink_entry_rejected(tmp_path: Path) -> None:
    link = zipfile.ZipInfo("model/passwd")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = make_zip(tmp_path / "a.zip", [("model/config.json", CONFIG), (link, b"/etc/passwd")])
    assert_rejected(archive, tmp_path, status=422, match="symlink")


def test_zip_bomb_rejected(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "a.zip", {"model/config.json": CONFIG, "model/w.safetensors": bytes(3 * MB)}
    )
    assert archive.stat().st_size < 100_000
    assert_rejected(archive, tmp_path, status=413, match="more than 1 MB", error=TooLarge, max_bytes=MB)


def test_tar_bomb_rejected(tmp_path: Path) -> None:
    members = [tar_file("config.json", CONFIG), tar_file("w.safetensors", bytes(3 * MB))]
    archive = make_tar(tmp_path / "a.tar.xz", members, "w:xz")
    assert_rejected(archive, tmp_path, status=413, match="MB", error=TooLarge, max_bytes=MB)


def test_zip_lying_header_rejected(tmp_path: Path) -> None:
    """A central directory that understates a member's size cannot smuggle extra bytes out."""
    archive = make_zip(tmp_path / "a.zip", {"config.json": CONFIG, "w.safetensors": bytes(2 * MB)})
    raw = bytearray(archive.read_bytes())
    size = (2 * MB).to_bytes(4, "little")
    assert raw.count(size) == 2  # local header and central directory entry
    archive.write_bytes(raw.replace(size, (100).to_bytes(4, "little")))
    assert_rejected(archive, tmp_path, status=422, match="corrupt", max_bytes=MB)


def test_too_many_members_rejected(tmp_path: Path) -> None:
    members = {"config.json": CONFIG} | {f"f{i}.txt": b"x" for i in range(20)}
    assert_rejected(
        make_zip(tmp_path / "a.zip", members), tmp_path, status=422, match="more than 10", max_members=10
    )
    tar = make_tar(tmp_path / "a.tar.bz2", [tar_file(n, d) for n, d in members.items()], "w:bz2")
    assert_rejected(tar, tmp_path, status=422, match="more than 10", max_members=10)


@pytest.mark.parametrize("suffix", [".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".BIN"])
def test_pickled_weights_rejected(tmp_path: Path, suffix: str) -> None:
    name = f"pytorch_model{suffix}"
    archive = make_zip(tmp_path / "a.zip", {"model/config.json": CONFIG, f"model/{name}": b"\x80\x04."})
    assert_rejected(archive, tmp_path, status=422, match=rf"pickled weights \({name}\); only safetensors")


def test_pickled_weights_in_tar_rejected(tmp_path: Path) -> None:
    members = [tar_file("config.json", CONFIG), tar_file("pytorch_model.bin", b"\x80\x04.")]
    archive = make_tar(tmp_path / "a.tgz", members, "w:gz")
    assert_rejected(archive, tmp_path, status=422, match=r"pickled weights \(pytorch_model.bin\)")


def test_not_an_archive_rejected(tmp_path: Path) -> None:
    junk = tmp_path / "model.zip"
    junk.write_bytes(b"hello, this is not an archive at all\n" * 100)
    assert_rejected(junk, tmp_path, status=422, match="not a zip or tar archive")


@pytest.mark.parametrize(
    "members",
    [
        {"model/w.safetensors": b"w"},
        {"a/config.json": CONFIG, "b/config.json": CONFIG},
        {"a/b/config.json": CONFIG},
        {".hidden/config.json": CONFIG},
        {"__MACOSX/config.json": CONFIG},
    ],
)
def test_no_config_rejected(tmp_path: Path, members: dict[str, bytes]) -> None:
    archive = make_zip(tmp_path / "a.zip", members)
    assert_rejected(archive, tmp_path, status=422, match="no config.json")


def test_failure_removes_precreated_dest(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    archive = make_zip(tmp_path / "a.zip", {"w.safetensors": b"w"})
    with pytest.raises(UploadError):
        safe_extract(archive, dest, max_bytes=MB)
    assert not dest.exists()


# ----------------------------------------------------------------------------- safe_extract: good archives


def test_zip_with_top_folder(tmp_path: Path) -> None:
    members = {
        "my-model/config.json": CONFIG,
        "my-model/model.safetensors": b"weights",
        "my-model/sub/tokenizer.json": b"{}",
        "__MACOSX/my-model/._config.json": b"junk",
        ".DS_Store": b"junk",
    }
    dest = tmp_path / "dest"
    folder = safe_extract(make_zip(tmp_path / "a.zip", members), dest, max_bytes=MB)
    assert folder == dest / "my-model"
    assert (folder / "config.json").read_bytes() == CONFIG
    assert (folder / "sub" / "tokenizer.json").read_bytes() == b"{}"


@pytest.mark.parametrize(("suffix", "mode"), [(".tar.gz", "w:gz"), (".tar", "w"), (".tar.bz2", "w:bz2")])
def test_flat_tar(tmp_path: Path, suffix: str, mode: str) -> None:
    members = [tar_file("config.json", CONFIG), tar_file("model.safetensors", b"weights")]
    folder_info = tarfile.TarInfo("extra")
    folder_info.type = tarfile.DIRTYPE
    archive = make_tar(tmp_path / f"model{suffix}", [*members, (folder_info, None)], mode)
    dest = tmp_path / "dest"
    assert safe_extract(archive, dest, max_bytes=MB) == dest
    assert (dest / "model.safetensors").read_bytes() == b"weights"
    assert (dest / "extra").is_dir()


def test_extract_into_existing_empty_dest(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    archive = make_zip(tmp_path / "a.zip", {"config.json": CONFIG})
    assert safe_extract(archive, dest, max_bytes=MB) == dest


# ----------------------------------------------------------------------------- guard_path


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path, Path]:
    root, other, outside = tmp_path / "root", tmp_path / "other", tmp_path / "outside"
    for d in (root, other, outside):
        d.mkdir()
    (root / "data.csv").write_text("a,b\n")
    (other / "more.csv").write_text("a,b\n")
    (outside / "secret").write_text("s3cr3t")
    return root, other, outside


def test_guard_path_dotdot(roots: tuple[Path, Path, Path]) -> None:
    root, other, _ = roots
    for path in ["../outside/secret", root / ".." / "outside" / "secret", "sub/../../outside/secret"]:
        with pytest.raises(UploadError, match="outside the allowed folders") as info:
            guard_path(path, [root, other])
        assert info.value.status == 403
        assert str(root) in str(info.value) and str(other) in str(info.value)


def test_guard_path_symlink_escape(roots: tuple[Path, Path, Path]) -> None:
    root, _, outside = roots
    (root / "link").symlink_to(outside / "secret")
    (root / "dirlink").symlink_to(outside)
    for path in ["link", root / "dirlink" / "secret"]:
        with pytest.raises(UploadError) as info:
            guard_path(path, [root])
        assert info.value.status == 403


def test_guard_path_absolute_outside(roots: tuple[Path, Path, Path]) -> None:
    root, _, outside = roots
    for path in [outside / "secret", "/etc/passwd", Path("~").expanduser()]:
        with pytest.raises(UploadError) as info:
            guard_path(path, [root])
        assert info.value.status == 403


def test_guard_path_inside(roots: tuple[Path, Path, Path]) -> None:
    root, other, _ = roots
    assert guard_path("data.csv", [root, other]) == (root / "data.csv").resolve()
    assert guard_path(str(other / "more.csv"), [root, other]) == (other / "more.csv").resolve()
    assert guard_path(".", [root]) == root.resolve()
    (root / "inner").symlink_to(root / "data.csv")
    assert guard_path("inner", [root]) == (root / "data.csv").resolve()


def test_guard_path_missing(roots: tuple[Path, Path, Path]) -> None:
    root, _, outside = roots
    with pytest.raises(UploadError, match="does not exist") as info:
        guard_path("nope.csv", [root])
    assert info.value.status == 404
    with pytest.raises(UploadError) as info:  # outside and missing: still 403, existence is not revealed
        guard_path(outside / "nope", [root])
    assert info.value.status == 403


# ----------------------------------------------------------------------------- save_upload


def test_save_upload_within_limit(tmp_path: Path) -> None:
    data = bytes(range(256)) * 40
    dest = tmp_path / "up.bin"
    reads: list[int] = []
    upload = UploadFile(io.BytesIO(data), filename="data.csv")
    real_read = upload.read

    async def spy(size: int = -1) -> bytes:
        reads.append(size)
        return await real_read(size)

    upload.read = spy  # type: ignore[method-assign]
    assert asyncio.run(save_upload(upload, dest, limit=len(data), chunk=1000)) == len(data)
    assert dest.read_bytes() == data
    assert reads and set(reads) == {1000}


def test_save_upload_over_limit(tmp_path: Path) -> None:
    dest = tmp_path / "up.bin"
    upload = UploadFile(io.BytesIO(b"x" * 5000))
    with pytest.raises(TooLarge, match="AUTODISTILLER_MAX_UPLOAD_MB") as info:
        asyncio.run(save_upload(upload, dest, limit=4096, chunk=1024))
    assert info.value.status == 413
    assert "MB" in str(info.value)
    assert not dest.exists()


def test_save_upload_limit_in_mb(tmp_path: Path) -> None:
    with pytest.raises(TooLarge, match="larger than 1 MB"):
        asyncio.run(save_upload(UploadFile(io.BytesIO(bytes(MB + 1))), tmp_path / "up", limit=MB))


def test_save_upload_empty(tmp_path: Path) -> None:
    dest = tmp_path / "up.bin"
    with pytest.raises(UploadError, match="the uploaded file is empty") as info:
        asyncio.run(save_upload(UploadFile(io.BytesIO(b"")), dest, limit=100))
    assert info.value.status == 422
    assert not dest.exists()


# ----------------------------------------------------------------------------- zip_folder


def test_zip_folder_round_trip(tmp_path: Path) -> None:
    folder = tmp_path / "student"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_bytes(CONFIG)
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 100)
    (folder / "sub" / "vocab.txt").write_text("a\nb\n")
    (folder / "link").symlink_to(tmp_path)  # not a regular file: left out
    dest = folder / "student.zip"  # inside the folder: must not zip itself
    assert zip_folder(folder, dest) == dest
    with zipfile.ZipFile(dest) as zf:
        assert sorted(zf.namelist()) == [
            "student/config.json",
            "student/model.safetensors",
            "student/sub/vocab.txt",
        ]
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in zf.infolist())
    assert [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []
    out = safe_extract(dest, tmp_path / "out", max_bytes=MB)
    assert out == tmp_path / "out" / "student"
    for rel in ["config.json", "model.safetensors", "sub/vocab.txt"]:
        assert (out / rel).read_bytes() == (folder / rel).read_bytes()


def test_zip_folder_arc_root_and_replace(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_bytes(CONFIG)
    dest = tmp_path / "exports" / "best.zip"
    dest.parent.mkdir()
    dest.write_bytes(b"old")
    zip_folder(folder, dest, arc_root="best-student")
    with zipfile.ZipFile(dest) as zf:
        assert zf.namelist() == ["best-student/config.json"]
    assert sorted(p.name for p in dest.parent.iterdir()) == ["best.zip"]


# ----------------------------------------------------------------------------- BodyLimit


def echo_app(calls: list[int]) -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        calls.append(1)
        body = await request.body()
        return JSONResponse({"n": len(body)})

    return Starlette(routes=[Route("/echo", echo, methods=["POST"])])


def chunks(n: int, size: int = 64) -> Iterator[bytes]:
    for _ in range(n):
        yield b"x" * size


def test_body_limit_content_length_over(tmp_path: Path) -> None:
    calls: list[int] = []
    client = TestClient(BodyLimit(echo_app(calls), limit=1000))
    r = client.post("/echo", content=b"x" * 1001)
    assert r.status_code == 413
    assert "AUTODISTILLER_MAX_UPLOAD_MB" in r.json()["detail"]
    assert r.headers["content-type"] == "application/json"
    assert calls == []


def test_body_limit_chunked_over() -> None:
    calls: list[int] = []
    client = TestClient(BodyLimit(echo_app(calls), limit=1000))
    r = client.post("/echo", content=chunks(20))
    assert r.status_code == 413
    assert "detail" in r.json()
    assert calls == [1]


def test_body_limit_under() -> None:
    calls: list[int] = []
    client = TestClient(BodyLimit(echo_app(calls), limit=1000))
    assert client.post("/echo", content=b"x" * 1000).json() == {"n": 1000}
    r = client.post("/echo", content=chunks(10))
    assert r.status_code == 200 and r.json() == {"n": 640}
    assert client.get("/echo").status_code == 405  # other responses untouched
    assert calls == [1, 1]


async def fastapi_upload(file: Annotated[FastAPIUpload, File()]) -> dict[str, int]:
    return {"n": len(await file.read())}


def test_body_limit_fastapi_upload() -> None:
    """FastAPI wraps body-read errors into a 400; the middleware still answers 413."""
    api = FastAPI()
    api.post("/up")(fastapi_upload)
    api.add_middleware(BodyLimit, limit=2000)
    client = TestClient(api)
    assert client.post("/up", files={"file": ("a.csv", b"x" * 100)}).json() == {"n": 100}
    r = client.post("/up", files={"file": ("a.csv", b"x" * 5000)})
    assert r.status_code == 413
    boundary = "b0undary"
    body = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'.encode()
    body += b"x" * 5000 + f"\r\n--{boundary}--\r\n".encode()
    r = client.post(
        "/up",
        content=(body[i : i + 500] for i in range(0, len(body), 500)),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 413
    assert "detail" in r.json()


def run_asgi(app, scope: dict, bodies: list[bytes]) -> list[dict]:
    """Drive ``app`` once with ``bodies`` as the request stream; return the messages it sent."""
    sent: list[dict] = []
    queue = [
        {"type": "http.request", "body": b, "more_body": i < len(bodies) - 1} for i, b in enumerate(bodies)
    ]

    async def receive() -> dict:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def http_scope(headers: list[tuple[bytes, bytes]]) -> dict:
    return {"type": "http", "method": "POST", "path": "/", "headers": headers}


def test_body_limit_malformed_content_length() -> None:
    called: list[int] = []

    async def app(scope, receive, send) -> None:
        called.append(1)

    for value in [b"abc", b"-5", b"1e3"]:
        sent = run_asgi(BodyLimit(app, limit=100), http_scope([(b"content-length", value)]), [b""])
        assert sent[0]["status"] == 400
        assert "detail" in json.loads(sent[1]["body"])
    assert called == []


def test_body_limit_after_response_started_just_ends() -> None:
    async def streaming(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while (await receive()).get("more_body"):
            await send({"type": "http.response.body", "body": b".", "more_body": True})
        await send({"type": "http.response.body", "body": b"done", "more_body": False})

    sent = run_asgi(BodyLimit(streaming, limit=100), http_scope([]), [b"x" * 60] * 5)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 200


def test_body_limit_passes_other_scopes() -> None:
    seen: list[dict] = []

    async def app(scope, receive, send) -> None:
        seen.append(scope)
        await send({"type": "lifespan.startup.complete", "body": await receive()})

    scope = {"type": "lifespan", "headers": [(b"content-length", b"999999")]}
    sent = run_asgi(BodyLimit(app, limit=1), scope, [b"x" * 100])
    assert seen == [scope]
    assert sent[0]["body"]["body"] == b"x" * 100
