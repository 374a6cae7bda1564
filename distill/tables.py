"""Reading a user's table: built-in corpora, CSV / TSV / JSON Lines / JSON / Parquet files, ``save_to_disk``
folders and Hub datasets; their columns, texts and labels checked, every problem a ``DataError`` that names
the file, the column and the rows."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from distill.assets import bbc_news_dir, rotten_tomatoes_csv

FILE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
TRAIN_SPLITS = ("train",)
VAL_SPLITS = ("validation", "valid", "val", "dev")
TEST_SPLITS = ("test",)
_BARE_CR = re.compile(r"\r(?!\n)")
_SHOW = 5  # how many offending row indices an error lists


@dataclass
class Example:
    text: str
    label: int  # ``UNLABELED`` for transfer text: the teacher's soft targets are its only label
    text_pair: str | None = None


UNLABELED = -1  # the label of unlabeled transfer rows: ignored by the hard loss, used by KD and objectives


class DataError(ValueError):
    """The data cannot be used; the message names the problem (file, column, rows)."""


def builtin_task(name: str) -> tuple[list[str], list[Example]]:
    if name == "rotten_tomatoes":
        df = pd.read_csv(rotten_tomatoes_csv(), usecols=["category", "text"])
        df = df[df["category"] != "plot"].drop_duplicates("text")
        labels = ["rotten", "fresh"]
        ids = {n: i for i, n in enumerate(labels)}
        return labels, [Example(str(t), ids[c]) for c, t in zip(df["category"], df["text"], strict=True)]
    root = bbc_news_dir()
    topics = sorted(p.name for p in root.iterdir() if p.is_dir())
    examples = [
        Example(f.read_text(encoding="latin-1").strip(), i)
        for i, topic in enumerate(topics)
        for f in sorted((root / topic).glob("*.txt"))
    ]
    return topics, examples


# ---------------------------------------------------------------------------------------------- reading


def read_table(path: Path, shown: str | None = None) -> pd.DataFrame:
    """One file as a frame; errors name it as ``shown`` (default: its path). A CSV / TSV frame carries each
    row's line number in the file (``attrs["lines"]``) for the row errors."""
    suffix = path.suffix.lower()
    name = shown or str(path)
    try:
        if suffix in (".csv", ".tsv"):
            return _read_delimited(path, "\t" if suffix == ".tsv" else ",", name)
        if suffix in (".jsonl", ".json"):
            with path.open(encoding="utf-8") as f:
                is_array = f.read(4096).lstrip().startswith("[")  # .json may hold an array of records
            return pd.read_json(path, lines=not is_array, encoding="utf-8", dtype=False)
        return pd.read_parquet(path)
    except UnicodeDecodeError as e:
        raise DataError(f"{name} is not UTF-8 ({e.reason} at byte {e.start}); save it as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{name} parses to zero rows (the file is empty)") from None
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"could not parse {name} as {suffix[1:].upper()}: {e}") from None


def _read_delimited(path: Path, sep: str, name: str) -> pd.DataFrame:
    """A CSV / TSV file. A carriage return inside a quoted field is text; a bare one outside quotes would
    silently split a row in two, so it is refused with its line number (lines counted by line feeds)."""
    with path.open(encoding="utf-8", newline="") as f:  # no newline translation: a CR stays a CR
        text = f.read()
    if _BARE_CR.search(text):
        quoted, line = False, 1
        for i, ch in enumerate(text):
            if ch == '"':
                quoted = not quoted
            elif ch == "\n":
                line += 1
            elif ch == "\r" and not quoted and text[i + 1 : i + 2] != "\n":
                raise DataError(
                    f"{name}, line {line}: a bare carriage return (CR) inside a row; quote the field that "
                    f"holds it, or replace it with a space"
                )
    # Only truly empty cells are missing: a review that reads "NA" is still text.
    df = pd.read_csv(io.StringIO(text), sep=sep, keep_default_na=False, na_values=[""])
    reader = csv.reader(io.StringIO(text, newline="\n"), delimiter=sep)
    starts, last = [], 0
    for row in reader:
        if row and any(cell.strip() for cell in row):
            starts.append(last + 1)
        last = reader.line_num
    df.attrs["lines"] = starts[1:]  # the header is not a row
    return df


def dataset_parts(ds: Any, where: str) -> tuple[pd.DataFrame, pd.DataFrame | None, dict[str, list[str]]]:
    """Train and validation frames of a ``Dataset`` / ``DatasetDict`` (its ``train`` and ``validation``,
    ``valid``, ``val``, ``dev`` or else ``test`` split) and the names of its ``ClassLabel`` columns."""
    import datasets

    if isinstance(ds, datasets.Dataset):
        train, val = ds, None
    elif isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise DataError(f"{where} has no `train` split (splits: {', '.join(ds) or 'none'})")
        train = ds["train"]
        val = next((ds[s] for s in (*VAL_SPLITS, *TEST_SPLITS) if s in ds), None)
    else:
        raise DataError(f"{where} is a {type(ds).__name__}, not a Dataset or DatasetDict")
    class_names = {
        col: list(feat.names) for col, feat in train.features.items() if isinstance(feat, datasets.ClassLabel)
    }
    return train.to_pandas(), None if val is None else val.to_pandas(), class_names


def expand_path(source: str) -> Path:
    """``source`` as a path with ``~`` expanded (kept as is when ``~user`` names no user)."""
    try:
        return Path(source).expanduser()
    except RuntimeError:
        return Path(source)


def looks_like_path(source: str) -> bool:
    return (
        source.startswith(("/", ".", "~", "\\"))
        or Path(source).suffix.lower() in FILE_SUFFIXES
        or source.count("/") > 1
        or "\\" in source
    )


# ---------------------------------------------------------------------------------------------- validating


def check_columns(df: pd.DataFrame, where: str, wanted: dict[str, str | None]) -> None:
    for role, col in wanted.items():
        if col is not None and col not in df.columns:
            available = ", ".join(map(str, df.columns)) or "none"
            raise DataError(f"{where}: no {role} column `{col}` (available columns: {available})")


def row_list(indices: Sequence[int], df: pd.DataFrame | None = None) -> str:
    """The offending rows as the user finds them: file line numbers when known (CSV / TSV), else row
    indices (0-based)."""
    lines = df.attrs.get("lines") if df is not None else None
    if lines is not None and len(lines) == len(df):  # type: ignore[arg-type]
        shown = ", ".join(str(lines[i]) for i in indices[:_SHOW])
        return f"lines {shown}{', ...' if len(indices) > _SHOW else ''}"
    shown = ", ".join(str(i) for i in indices[:_SHOW])
    return f"row indices [{shown}{', ...' if len(indices) > _SHOW else ''}]"


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists, arrays
        return False


def column_texts(df: pd.DataFrame, col: str, where: str) -> list[str]:
    values = df[col].tolist()
    texts = ["" if is_missing(v) else str(v) for v in values]
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        raise DataError(
            f"{where}: {len(empty)} row(s) with empty or whitespace-only text in column `{col}` "
            f"({row_list(empty, df)}); remove or fill them"
        )
    refuse_nul(texts, where, col, df)
    return texts


def refuse_nul(values: list[Any], where: str, col: str, df: pd.DataFrame | None = None) -> None:
    """NUL characters are binary debris, not text (and no database stores them in JSON): say where."""
    bad = [i for i, v in enumerate(values) if isinstance(v, str) and "\x00" in v]
    if bad:
        raise DataError(
            f"{where}: {len(bad)} row(s) with NUL characters in column `{col}` "
            f"({row_list(bad, df)}); is it a text file?"
        )


def label_key(value: Any) -> int | str:
    """Integral numbers → ``int``; anything else → stripped ``str``."""
    if isinstance(value, str):
        return value.strip()
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value).strip()
    return int(number) if number.is_integer() else str(value)


def raw_labels(df: pd.DataFrame, col: str, where: str, class_names: list[str] | None) -> list[Any]:
    values = df[col].tolist()
    missing = [
        i
        for i, v in enumerate(values)
        if is_missing(v) or (isinstance(v, str) and not v.strip()) or (class_names is not None and v == -1)
    ]
    if missing:
        raise DataError(
            f"{where}: {len(missing)} row(s) with a missing label in column `{col}` ({row_list(missing, df)})"
        )
    refuse_nul(values, where, col, df)
    return [label_key(v) for v in values]


def label_names(keys: list[int | str], class_names: list[str] | None, where: str, col: str) -> list[str]:
    distinct = set(keys)
    if class_names is not None:
        bad = sorted(k for k in distinct if not (isinstance(k, int) and 0 <= k < len(class_names)))
        if bad:
            raise DataError(f"{where}: label ids {bad} in column `{col}` are outside its ClassLabel names")
        names = list(class_names)
        present = [names[k] for k in distinct]  # type: ignore[index]
    elif all(isinstance(k, int) for k in distinct):
        names = present = [str(k) for k in sorted(distinct)]  # type: ignore[type-var]
    else:
        names = present = sorted({str(k) for k in distinct})
    if len(present) < 2:
        raise DataError(f"{where}: only one class (`{present[0]}`) in label column `{col}`; need >= 2")
    return names


def read_source(
    source: str, hub_config: str | None = None, shown: str | None = None
) -> tuple[Path, tuple[pd.DataFrame, pd.DataFrame | None], dict[str, list[str]], str]:
    """A file, a ``save_to_disk`` folder or a Hub dataset as (path, (train, validation or None), class
    names per ``ClassLabel`` column, how errors name it: ``shown``, e.g. the user's file name, else its
    path)."""
    path = expand_path(source)
    class_names: dict[str, list[str]] = {}
    val_df: pd.DataFrame | None
    try:
        is_dir, is_file = path.is_dir(), path.is_file()
    except (OSError, ValueError) as e:  # a name too long for the file system, a NUL byte
        raise DataError(f"`{source[:200]}` is not a usable file name: {e}") from None
    if is_dir:
        import datasets

        if not any((path / f).exists() for f in ("dataset_info.json", "dataset_dict.json", "state.json")):
            raise DataError(
                f"{path} is a folder but not a `datasets.save_to_disk` folder "
                f"(no dataset_info.json or dataset_dict.json)"
            )
        try:
            ds = datasets.load_from_disk(str(path))
        except Exception as e:
            raise DataError(f"could not load the saved dataset at {path}: {e}") from None
        where = str(path)
        train_df, val_df, class_names = dataset_parts(ds, where)
    elif is_file:
        if path.suffix.lower() not in FILE_SUFFIXES:
            raise DataError(
                f"unsupported file extension `{path.suffix or '(none)'}` for {path} "
                f"(supported: {', '.join(FILE_SUFFIXES)})"
            )
        where = shown or str(path)
        train_df, val_df = read_table(path, where), None
    elif looks_like_path(source):
        raise DataError(f"file not found: {path}")
    else:
        import datasets

        try:
            ds = datasets.load_dataset(source, hub_config)
        except Exception as e:
            what = source + (f" ({hub_config})" if hub_config else "")
            msg = (
                f"could not load Hub dataset `{what}` (no network?; no local file or folder of that name "
                f"either): {type(e).__name__}: {e}"
            )
            raise DataError(msg) from None
        where = f"Hub dataset `{source}`"
        train_df, val_df, class_names = dataset_parts(ds, where)

    return path, (train_df, val_df), class_names, where
