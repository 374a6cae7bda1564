"""Reading a user's table: built-in corpora, CSV / TSV / JSON Lines / JSON / Parquet files, ``save_to_disk``
folders and Hub datasets; their columns, texts and labels checked, every problem a ``DataError`` that names
the file, the column and the rows."""

from __future__ import annotations

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
_SHOW = 5  # how many offending row indices an error lists


@dataclass
class Example:
    text: str
    label: int
    text_pair: str | None = None


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


def read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            # Only truly empty cells are missing: a review that reads "NA" is still text.
            return pd.read_csv(
                path,
                sep="\t" if suffix == ".tsv" else ",",
                encoding="utf-8",
                keep_default_na=False,
                na_values=[""],
            )
        if suffix in (".jsonl", ".json"):
            with path.open(encoding="utf-8") as f:
                is_array = f.read(4096).lstrip().startswith("[")  # .json may hold an array of records
            return pd.read_json(path, lines=not is_array, encoding="utf-8", dtype=False)
        return pd.read_parquet(path)
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 ({e.reason} at byte {e.start}); save it as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} parses to zero rows (the file is empty)") from None
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"could not parse {path} as {suffix[1:].upper()}: {e}") from None


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


def row_list(indices: Sequence[int]) -> str:
    shown = ", ".join(str(i) for i in indices[:_SHOW])
    return f"[{shown}{', ...' if len(indices) > _SHOW else ''}]"


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
            f"(row indices {row_list(empty)}); remove or fill them"
        )
    refuse_nul(texts, where, col)
    return texts


def refuse_nul(values: list[Any], where: str, col: str) -> None:
    """NUL characters are binary debris, not text (and no database stores them in JSON): say where."""
    bad = [i for i, v in enumerate(values) if isinstance(v, str) and "\x00" in v]
    if bad:
        raise DataError(
            f"{where}: {len(bad)} row(s) with NUL characters in column `{col}` "
            f"(row indices {row_list(bad)}); is it a text file?"
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
            f"{where}: {len(missing)} row(s) with a missing label in column `{col}` "
            f"(row indices {row_list(missing)})"
        )
    refuse_nul(values, where, col)
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
    source: str, hub_config: str | None = None
) -> tuple[Path, tuple[pd.DataFrame, pd.DataFrame | None], dict[str, list[str]], str]:
    """A file, a ``save_to_disk`` folder or a Hub dataset as (path, (train, validation or None), class
    names per ``ClassLabel`` column, how errors name it)."""
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
        train_df, val_df = read_table(path), None
        where = str(path)
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
