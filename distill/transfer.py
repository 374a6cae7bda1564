"""Unlabeled transfer text: a file (the dataset formats) whose text column the teacher labels once (soft
targets) and that joins the student's transfer set as rows with label ``UNLABELED``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from distill.data import TextTask
from distill.tables import UNLABELED, DataError, Example, check_columns, column_texts, read_source


def load_transfer(
    source: str,
    *,
    text_column: str = "text",
    text_pair_column: str | None = None,
    shown_as: dict[str, str] | None = None,
    name: str | None = None,
    **_: object,
) -> list[Example]:
    """The rows of ``source`` (a file, a ``save_to_disk`` folder or a Hub dataset; every split) as unlabeled
    examples. Errors name the file as ``shown_as[source]`` (the user's file name) and the bad lines."""
    shown = (shown_as or {}).get(source) or name
    _, (df, extra), _, where = read_source(source, shown=shown)
    frames = [df] if extra is None else [df, extra]
    rows: list[Example] = []
    for frame in frames:
        check_columns(frame, where, {"text": text_column, "text pair": text_pair_column})
        texts = column_texts(frame, text_column, where)
        pairs = column_texts(frame, text_pair_column, where) if text_pair_column else [None] * len(texts)
        rows += [Example(t, UNLABELED, p) for t, p in zip(texts, pairs, strict=True)]
    if not rows:
        raise DataError(f"{where} has no rows of transfer text")
    return rows


def transfer_profile(rows: list[Example]) -> dict[str, object]:
    """What the API answers for a transfer file: its size and text lengths (no classes: it has none)."""
    words = pd.Series([len(e.text.split()) + len((e.text_pair or "").split()) for e in rows])
    return {
        "unlabeled": True,
        "rows": len(rows),
        "words": {"mean": float(words.mean()), "median": float(words.median()), "max": int(words.max())},
        "examples": [{"text": e.text[:300]} for e in rows[:3]],
    }


def attach_transfer(task: TextTask, source: str, **fields: Any) -> TextTask:
    """``task`` with the transfer text of ``source`` (``fields``: ``load_transfer``'s, e.g. a
    ``TransferRef``'s); sentence pairs exactly when the task is."""
    if task.is_pair != (fields.get("text_pair_column") is not None):
        raise DataError(
            "the transfer text must be sentence pairs exactly when the dataset is (dataset: "
            f"{'pairs' if task.is_pair else 'single texts'}); set its text pair column accordingly"
        )
    task.transfer = load_transfer(source, **fields)
    return task
