"""Row stores for teacher features: a float16 ``.npy`` file read row by row, or a tensor in memory.

A file is written in batches under a temporary name and renamed once complete, so a reader never sees a
partial file; one whose size does not match its header is rejected (``CorruptFile``). Readers read only
the rows, and the token prefix, they index, with ``os.pread`` on a descriptor opened lazily in each
process. Nothing is memory-mapped, so a trial's resident memory holds its batch, not the file; the OS page
cache, shared by every process of the node, keeps the hot part of the file. A pickled ``Rows`` carries
file paths, not data: that is how a job's teacher outputs reach its Ray trials.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

fmt = np.lib.format


class CorruptFile(ValueError):
    """A cache file that is truncated, not a C-ordered ``.npy``, or of the wrong shape."""


class NpyFile:
    """A C-ordered ``.npy`` file of shape ``(N, ...)``; rows read on demand."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        try:
            with open(self.path, "rb") as f:
                major, _ = fmt.read_magic(f)
                read = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
                shape, fortran, dtype = read(f)
                self.offset = f.tell()
        except (OSError, ValueError, EOFError) as e:
            raise CorruptFile(f"{self.path}: not a readable .npy file ({e})") from None
        self.shape: tuple[int, ...] = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.row_bytes = math.prod(self.shape[1:]) * self.dtype.itemsize
        expected = self.offset + self.shape[0] * self.row_bytes
        if fortran or not self.shape or os.path.getsize(self.path) != expected:
            raise CorruptFile(f"{self.path}: {os.path.getsize(self.path)} bytes, header says {expected}")
        self._fd: int | None = None

    def read(self, rows: np.ndarray, prefix: int | None = None) -> np.ndarray:
        """Rows ``rows`` (any order), each cut to its first ``prefix`` entries along dimension 1."""
        inner = self.shape[1:]
        if prefix is not None and inner:
            inner = (min(prefix, inner[0]), *inner[1:])
        nbytes = math.prod(inner) * self.dtype.itemsize
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        buf = b"".join(os.pread(self._fd, nbytes, self.offset + int(r) * self.row_bytes) for r in rows)
        return np.frombuffer(buf, dtype=self.dtype).reshape(len(rows), *inner)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fd": None}  # each process opens its own descriptor

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)


Part = Tensor | NpyFile


class Rows:
    """One feature of N rows, stacked from parts (files or tensors) along dimension 0.

    Indexing ``rows[idx, ...]`` (``idx`` a tensor of row indices or a slice) returns a tensor and reads
    only those rows; a leading ``:L`` or integer on dimension 1 reads only that prefix of each row.
    """

    def __init__(self, parts: Sequence[Part]) -> None:
        self.parts = list(parts)
        shapes = {tuple(p.shape[1:]) for p in self.parts}
        if len(shapes) != 1:
            raise ValueError(f"parts of one feature differ in shape: {sorted(shapes)}")
        self.sizes = [int(p.shape[0]) for p in self.parts]
        self.shape = (sum(self.sizes), *shapes.pop())

    def __len__(self) -> int:
        return self.shape[0]

    @classmethod
    def cat(cls, items: Sequence[Tensor | Rows]) -> Rows:
        return cls([p for x in items for p in (x.parts if isinstance(x, Rows) else [x])])

    def __getitem__(self, key: Any) -> Tensor:
        first, *rest = key if isinstance(key, tuple) else (key,)
        if isinstance(first, slice):
            rows = np.arange(len(self))[first]
        else:
            rows = torch.as_tensor(first).cpu().numpy().astype(np.int64).reshape(-1)
        prefix = _prefix(rest[0]) if rest else None
        if prefix is not None and isinstance(rest[0], slice):
            rest[0] = slice(None)  # the prefix read already cut it
        inner = list(self.shape[1:])
        if prefix is not None and inner:
            inner[0] = min(prefix, inner[0])
        out: Tensor | None = None
        start = 0
        for part, size in zip(self.parts, self.sizes, strict=True):
            at = np.nonzero((rows >= start) & (rows < start + size))[0]
            if len(at):
                local = rows[at] - start
                if isinstance(part, NpyFile):
                    got = torch.from_numpy(part.read(local, prefix).copy())
                else:
                    got = (
                        part[torch.from_numpy(local)][:, : inner[0]]
                        if inner
                        else part[torch.from_numpy(local)]
                    )
                if out is None:
                    out = got.new_empty((len(rows), *inner))
                out[torch.from_numpy(at)] = got
            start += size
        if out is None:  # no rows asked for
            out = torch.empty((0, *inner), dtype=torch.float16)
        return out[(slice(None), *rest)] if rest else out


def _prefix(index: Any) -> int | None:
    """How many leading entries of dimension 1 an index touches (``None``: all of them)."""
    if isinstance(index, int) and index >= 0:
        return index + 1
    if isinstance(index, slice) and index.start in (None, 0) and index.step in (None, 1):
        stop = index.stop
        return stop if isinstance(stop, int) and stop >= 0 else None
    return None


def sweep_stale(folder: Path, older_than_s: float = 3600.0) -> list[Path]:
    """Delete temporary files of writers that died (not written to for ``older_than_s``); returns them.
    A live writer appends a batch every few seconds, so its file stays fresh."""
    now, gone = time.time(), []
    for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
        try:
            if now - tmp.stat().st_mtime > older_than_s:
                tmp.unlink()
                gone.append(tmp)
        except FileNotFoundError:  # renamed or swept by another process meanwhile
            continue
    return gone


class NpyWriter:
    """Writes an ``(N, ...)`` array batch after batch to ``path``; visible under ``path`` only once complete.

    A context manager: leaving it normally renames the finished temporary file, leaving it by an
    exception deletes it. Writers in other processes may race on the same path: each writes its own
    temporary file and the last rename wins (the contents are the same).
    """

    def __init__(self, path: Path, rows: int, dtype: np.dtype | type = np.float16) -> None:
        self.path, self.rows, self.dtype = Path(path), rows, np.dtype(dtype)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}-{id(self)}.tmp")
        self.written = 0
        self._f = None

    def __enter__(self) -> NpyWriter:
        return self

    def write(self, batch: np.ndarray) -> None:
        """Append the next rows (in order)."""
        batch = np.ascontiguousarray(batch, dtype=self.dtype)
        if self._f is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.tmp, "wb")  # noqa: SIM115 (closed in __exit__)
            header = {"descr": fmt.dtype_to_descr(self.dtype), "fortran_order": False}
            fmt.write_array_header_1_0(self._f, {**header, "shape": (self.rows, *batch.shape[1:])})
        self._f.write(batch.tobytes())
        self.written += len(batch)

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if self._f is not None:
            self._f.close()
        if exc_type is None and self.written != self.rows:
            self.tmp.unlink(missing_ok=True)
            raise ValueError(f"{self.path}: {self.written} of {self.rows} rows written")
        if exc_type is None:
            self.tmp.replace(self.path)
        else:
            self.tmp.unlink(missing_ok=True)
