"""Text-classification tasks: load, validate, split, subset and tokenize.

``load_task`` accepts a built-in name (``rotten_tomatoes``, ``bbc_news``), a CSV / TSV / JSON Lines /
JSON / Parquet file, a ``datasets.save_to_disk`` folder, or a Hugging Face Hub dataset name. Bad input
is refused with one :class:`DataError` that names the problem (and the file / column / rows).

Label ids:

* ``rotten_tomatoes``: ``["rotten", "fresh"]`` (negative = 0, positive = 1, the SST-2 / HF
  ``rotten_tomatoes`` convention, so binary sentiment teachers map by identity).
* ``bbc_news``: sorted topic names ``business, entertainment, politics, sports, tech``.
* A ``datasets`` ``ClassLabel`` column keeps its own names and ids.
* Anything else: the distinct label values in sorted order (numerically when all are integers,
  names are then ``str(value)``; otherwise as strings).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from distill.tables import (
    TEST_SPLITS,
    TRAIN_SPLITS,
    VAL_SPLITS,
    DataError,
    Example,
    builtin_task,
    check_columns,
    column_texts,
    label_names,
    raw_labels,
    read_source,
)

BUILTINS = ("rotten_tomatoes", "bbc_news")
_DEFAULT_LABEL = re.compile(r"^LABEL_\d+$")


@dataclass
class TextTask:
    """A classification task: label names (id → name) and its train / validation examples."""

    name: str
    labels: list[str]
    train: list[Example]
    validation: list[Example]
    is_pair: bool = False
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def fingerprint(self) -> str:
        """Stable short hash of the content (labels, pair flag, examples); the name is not part of it."""
        h = hashlib.sha256()
        h.update(json.dumps({"labels": self.labels, "is_pair": self.is_pair}).encode())
        for split, examples in (("train", self.train), ("validation", self.validation)):
            h.update(f"\x00{split}\x00".encode())
            for ex in examples:
                h.update(json.dumps([ex.label, ex.text, ex.text_pair], ensure_ascii=False).encode())
                h.update(b"\n")
        return h.hexdigest()[:16]

    def subset(self, n_train: int | None, n_val: int | None, seed: int = 0) -> TextTask:
        """A stratified, seeded sample of ``n_train`` / ``n_val`` examples (``None`` or too many = all)."""
        rng = random.Random(seed)

        def pick(examples: list[Example], n: int | None) -> list[Example]:
            if n is None or n >= len(examples):
                return list(examples)
            if n < 0:
                raise ValueError(f"subset size must be >= 0, got {n}")
            return [examples[i] for i in _stratified_pick([e.label for e in examples], n, rng)]

        return TextTask(
            name=self.name,
            labels=list(self.labels),
            train=pick(self.train, n_train),
            validation=pick(self.validation, n_val),
            is_pair=self.is_pair,
            meta=dict(self.meta),
        )


# ---------------------------------------------------------------------------------------------- splitting


def _stratified_pick(labels: Sequence[int], n: int, rng: random.Random) -> list[int]:
    """``n`` indices (sorted) drawn per class in proportion to its size (largest remainder)."""
    by_class: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[label].append(i)
    total = len(labels)
    n = min(n, total)
    quota = {c: n * len(ix) / total for c, ix in by_class.items()}
    take = {c: math.floor(q) for c, q in quota.items()}
    rest = n - sum(take.values())
    for c in sorted(by_class, key=lambda c: (take[c] - quota[c], c))[:rest]:
        take[c] += 1
    chosen: list[int] = []
    for c in sorted(by_class):
        ix = list(by_class[c])
        rng.shuffle(ix)
        chosen += ix[: take[c]]
    return sorted(chosen)


def _stratified_split(
    examples: list[Example], fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    if not 0 < fraction < 1:
        raise DataError(f"validation_fraction must be between 0 and 1 (exclusive), got {fraction}")
    n_val = max(1, round(len(examples) * fraction))
    if n_val >= len(examples):
        raise DataError(f"too few rows ({len(examples)}) to hold out a validation split")
    val_idx = set(_stratified_pick([e.label for e in examples], n_val, random.Random(seed)))
    train = [e for i, e in enumerate(examples) if i not in val_idx]
    val = [e for i, e in enumerate(examples) if i in val_idx]
    return train, val


# ---------------------------------------------------------------------------------------------- built-ins


def load_subset(
    source: str, *, max_train: int | None = None, max_val: int | None = None, seed: int = 0, **kw: Any
) -> TextTask:
    """``load_task`` then, when a size is given, a stratified seeded subset of the splits."""
    task = load_task(source, seed=seed, **kw)
    return task.subset(max_train, max_val, seed=seed) if (max_train or max_val) else task


def load_task(
    source: str,
    *,
    text_column: str = "text",
    text_pair_column: str | None = None,
    label_column: str = "label",
    validation_fraction: float = 0.1,
    seed: int = 0,
    split_column: str | None = None,
    hub_config: str | None = None,
    name: str | None = None,
) -> TextTask:
    """Load a classification task from a built-in name, a file, a ``save_to_disk`` folder or the Hub.

    The data's own split is used when it has one (a ``DatasetDict`` with ``train`` and ``validation``
    (or ``test``), or ``split_column`` with values ``train`` / ``validation`` (``valid``, ``val``,
    ``dev``) or ``test``); otherwise ``validation_fraction`` of the rows is held out, stratified by
    label and seeded. Column arguments are ignored for built-ins.
    """
    source = str(source)
    if source in BUILTINS:
        labels, examples = builtin_task(source)
        train, val = _stratified_split(examples, validation_fraction, seed)
        return TextTask(name or source, labels, train, val, is_pair=False, meta={"source": source})

    path, (train_df, val_df), class_names, where = read_source(source, hub_config)
    return _build(
        name or (path.stem if path.exists() else source),
        (train_df, val_df),
        where,
        text_column=text_column,
        text_pair_column=text_pair_column,
        label_column=label_column,
        class_names=class_names.get(label_column),
        validation_fraction=validation_fraction,
        seed=seed,
        split_column=split_column,
        source=source,
    )


def _split_values(df: pd.DataFrame, col: str, where: str) -> tuple[list[bool], list[bool]]:
    """Train / validation row masks from a split column (validation falls back to test rows)."""
    values = df[col].astype(str).str.strip().str.lower().tolist()
    unknown = sorted(set(values) - {*TRAIN_SPLITS, *VAL_SPLITS, *TEST_SPLITS})
    if unknown:
        raise DataError(
            f"{where}: split column `{col}` has unknown values {unknown} (expected train / validation / test)"
        )
    val_names = VAL_SPLITS if any(v in VAL_SPLITS for v in values) else TEST_SPLITS
    is_train = [v in TRAIN_SPLITS for v in values]
    is_val = [v in val_names for v in values]
    if not any(is_train) or not any(is_val):
        raise DataError(f"{where}: split column `{col}` needs both train and validation/test rows")
    return is_train, is_val


def _build(
    name: str,
    parts: tuple[pd.DataFrame, pd.DataFrame | None],
    where: str,
    *,
    text_column: str,
    text_pair_column: str | None,
    label_column: str,
    class_names: list[str] | None,
    validation_fraction: float,
    seed: int,
    split_column: str | None,
    source: str,
) -> TextTask:
    train_df, val_df = parts
    wanted = {"text": text_column, "text-pair": text_pair_column, "label": label_column}
    if split_column is not None and val_df is None:
        wanted["split"] = split_column
    named = [("train", train_df)] if val_df is None else [("train", train_df), ("validation", val_df)]
    for split, df in named:
        label = where if val_df is None else f"{where} [{split}]"
        if len(df) == 0:
            raise DataError(f"{label} parses to zero rows")
        check_columns(df, label, wanted)

    # Validate every row against its position in the source (before any split by column).
    columns: dict[str, tuple[list[str], list[str] | None, list[Any]]] = {}
    for split, df in named:
        label = where if val_df is None else f"{where} [{split}]"
        texts = column_texts(df, text_column, label)
        pairs = column_texts(df, text_pair_column, label) if text_pair_column else None
        columns[split] = (texts, pairs, raw_labels(df, label_column, label, class_names))
    all_keys = [k for _, _, keys in columns.values() for k in keys]
    labels = label_names(all_keys, class_names, where, label_column)
    to_id = {n: i for i, n in enumerate(labels)}

    def examples(split: str) -> list[Example]:
        texts, pairs, keys = columns[split]
        ids = list(keys) if class_names is not None else [to_id[str(k)] for k in keys]
        return [Example(t, ids[i], None if pairs is None else pairs[i]) for i, t in enumerate(texts)]

    if val_df is not None:
        train, val = examples("train"), examples("validation")
    elif split_column is not None:
        is_train, is_val = _split_values(train_df, split_column, where)
        rows = examples("train")
        train = [e for e, keep in zip(rows, is_train, strict=True) if keep]
        val = [e for e, keep in zip(rows, is_val, strict=True) if keep]
    else:
        train, val = _stratified_split(examples("train"), validation_fraction, seed)
    return TextTask(name, labels, train, val, is_pair=text_pair_column is not None, meta={"source": source})


# ---------------------------------------------------------------------------------------------- teacher


def check_label_compatibility(
    task: TextTask, teacher_labels: list[str] | None, teacher_num_labels: int
) -> list[int]:
    """Map dataset label ids to the teacher's: ``perm[dataset_id] = teacher_id``.

    Default HF names (``LABEL_0``, ...) or none map by identity; real names are matched exactly, then
    case-insensitively. Raises :class:`DataError` on a count mismatch or a dataset label the teacher lacks.
    """
    if teacher_num_labels != task.num_labels:
        raise DataError(
            f"the teacher has {teacher_num_labels} labels but the dataset `{task.name}` has "
            f"{task.num_labels} ({', '.join(task.labels)})"
        )
    if not teacher_labels or all(_DEFAULT_LABEL.match(str(n)) for n in teacher_labels):
        return list(range(task.num_labels))
    if len(teacher_labels) != teacher_num_labels:
        raise DataError(f"teacher has {len(teacher_labels)} label names but {teacher_num_labels} labels")
    exact = {str(n): i for i, n in enumerate(teacher_labels)}
    folded = {str(n).strip().lower(): i for i, n in enumerate(teacher_labels)}
    perm: list[int] = []
    for label in task.labels:
        tid = exact.get(label, folded.get(label.strip().lower()))
        if tid is None:
            raise DataError(
                f"dataset label `{label}` is not among the teacher's labels "
                f"({', '.join(map(str, teacher_labels))})"
            )
        perm.append(tid)
    if len(set(perm)) != len(perm):
        raise DataError(f"dataset labels {task.labels} map onto the same teacher label twice: {perm}")
    return perm


def encode(examples: list[Example], tokenizer: Any, max_length: int) -> dict[str, torch.Tensor]:
    """Tokenize to ``input_ids``, ``attention_mask``, ``token_type_ids``, ``labels`` (padded to the longest,
    truncated to ``max_length``); pairs are encoded as ``tokenizer(text, text_pair)``."""
    if not examples:
        raise ValueError("encode needs at least one example")
    texts = [e.text for e in examples]
    pairs = [e.text_pair or "" for e in examples] if any(e.text_pair is not None for e in examples) else None
    enc = tokenizer(
        texts,
        pairs,
        padding="longest",
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )
    return {
        "input_ids": enc["input_ids"],
        "attention_mask": enc["attention_mask"],
        "token_type_ids": enc.get("token_type_ids", torch.zeros_like(enc["input_ids"])),
        "labels": torch.tensor([e.label for e in examples], dtype=torch.long),
    }
