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
    """A classification task: label names (id → name) and its train / validation / test examples. The search
    selects on ``validation``; ``test`` (may be empty) is held out for one final measurement."""

    name: str
    labels: list[str]
    train: list[Example]
    validation: list[Example]
    test: list[Example] = field(default_factory=list)
    is_pair: bool = False
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    transfer: list[Example] = field(default_factory=list)  # unlabeled text (label ``UNLABELED``)

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def transfer_set(self) -> list[Example]:
        """What a student distils on: the training split, then the unlabeled transfer text."""
        return [*self.train, *self.transfer]

    def fingerprint(self) -> str:
        """Stable short hash of the content (labels, pair flag, examples); the name is not part of it."""
        h = hashlib.sha256()
        h.update(json.dumps({"labels": self.labels, "is_pair": self.is_pair}).encode())
        splits = [("train", self.train), ("validation", self.validation)]
        splits += [("test", self.test)] if self.test else []
        for split, examples in splits + ([("transfer", self.transfer)] if self.transfer else []):
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
            test=list(self.test),
            is_pair=self.is_pair,
            meta=dict(self.meta),
            transfer=list(self.transfer),
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
    examples: list[Example], fraction: float, seed: int, what: str = "validation"
) -> tuple[list[Example], list[Example]]:
    if not 0 < fraction < 1:
        raise DataError(f"{what}_fraction must be between 0 and 1 (exclusive), got {fraction}")
    n_val = max(1, round(len(examples) * fraction))
    if n_val >= len(examples):
        raise DataError(f"too few rows ({len(examples)}) to hold out a {what} split")
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
    if not (max_train or max_val):
        return task
    small = task.subset(max_train, max_val, seed=seed)
    split = dict(small.meta.get("split") or {})
    split.update(train=len(small.train), validation=len(small.validation), subset_of=len(task.train))
    small.meta["split"] = split
    return small


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
    test_fraction: float = 0.0,
    validation_source: str | None = None,
    test_source: str | None = None,
    shown_as: dict[str, str] | None = None,
) -> TextTask:
    """Load a classification task from a built-in name, a file, a ``save_to_disk`` folder or the Hub.

    The data's own split is used when it has one (a ``DatasetDict`` with ``train`` and ``validation``
    (or ``test``), or ``split_column`` with values ``train`` / ``validation`` (``valid``, ``val``,
    ``dev``) or ``test``); otherwise ``validation_fraction`` of the rows is held out, stratified by
    label and seeded. ``validation_source`` / ``test_source``: separate files with the same columns. A test
    split not given is ``test_fraction`` of the rows (0: none), held out first, stratified and seeded.
    ``shown_as``: source → the name errors show (a user's file name rather than a server path). Column
    arguments are ignored for built-ins. ``meta["split"]`` records how the splits were made.
    """
    source = str(source)
    if source in BUILTINS:
        labels, examples = builtin_task(source)
        parts = _held_out({"train": examples}, validation_fraction, test_fraction, seed)
        return TextTask(
            name or source, labels, parts["train"], parts["validation"], parts.get("test", []),
            meta={"source": source, "split": _split_record(parts, "seeded stratified fractions", seed)},
        )  # fmt: skip

    shown = shown_as or {}
    path, (train_df, val_df), class_names, where = read_source(source, hub_config, shown.get(source))
    frames: dict[str, pd.DataFrame] = {"train": train_df}
    if val_df is not None:
        frames["validation"] = val_df
    for split, extra in (("validation", validation_source), ("test", test_source)):
        if extra is not None:
            frames[split] = read_source(str(extra), hub_config, shown.get(str(extra)))[1][0]
    return _build(
        name or (path.stem if path.exists() else source),
        frames,
        where,
        text_column=text_column,
        text_pair_column=text_pair_column,
        label_column=label_column,
        class_names=class_names.get(label_column),
        fractions=(validation_fraction, test_fraction),
        seed=seed,
        split_column=split_column,
        source=source,
    )


def _held_out(
    parts: dict[str, list[Example]], validation_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[Example]]:
    """Fill the missing held-out splits from ``train``: the test split first (``test_fraction`` of the
    rows), then the validation split (``validation_fraction`` of the rows), each stratified and seeded."""
    vf, tf = validation_fraction, test_fraction
    if not 0 < vf < 1 or not 0 <= tf < 1 or vf + tf >= 1:
        raise DataError(
            f"validation_fraction ({validation_fraction}) must be in (0, 1), test_fraction ({test_fraction}) "
            "in [0, 1), and their sum below 1"
        )
    out = dict(parts)
    n = len(out["train"])
    if "test" not in out and test_fraction > 0:
        out["train"], out["test"] = _stratified_split(out["train"], test_fraction, seed + 1, "test")
    if "validation" not in out:
        frac = min(0.99, validation_fraction * n / max(1, len(out["train"])))
        out["train"], out["validation"] = _stratified_split(out["train"], frac, seed)
    return out


def _split_record(parts: dict[str, list[Example]], how: str, seed: int) -> dict[str, Any]:
    """How the splits were made and their sizes (a job stores it with the dataset profile)."""
    return {"how": how, "seed": seed, **{k: len(v) for k, v in parts.items()}}


def _split_values(df: pd.DataFrame, col: str, where: str) -> dict[str, list[bool]]:
    """Row masks per split from a split column: train, validation and test when both held-out kinds are
    there; with only test rows (and no validation rows), those are the validation split."""
    values = df[col].astype(str).str.strip().str.lower().tolist()
    unknown = sorted(set(values) - {*TRAIN_SPLITS, *VAL_SPLITS, *TEST_SPLITS})
    if unknown:
        raise DataError(
            f"{where}: split column `{col}` has unknown values {unknown} (expected train / validation / test)"
        )
    masks = {
        "train": [v in TRAIN_SPLITS for v in values],
        "validation": [v in VAL_SPLITS for v in values],
        "test": [v in TEST_SPLITS for v in values],
    }
    if not any(masks["validation"]):
        masks["validation"] = masks.pop("test")
    elif not any(masks["test"]):
        del masks["test"]
    if not any(masks["train"]) or not any(masks["validation"]):
        raise DataError(f"{where}: split column `{col}` needs both train and validation/test rows")
    return masks


def _build(
    name: str,
    frames: dict[str, pd.DataFrame],
    where: str,
    *,
    text_column: str,
    text_pair_column: str | None,
    label_column: str,
    class_names: list[str] | None,
    fractions: tuple[float, float],
    seed: int,
    split_column: str | None,
    source: str,
) -> TextTask:
    """Examples per split from the source's frames (validated row by row, one label mapping for all), then
    the held-out splits the frames lack (split column, else seeded stratified fractions)."""
    wanted = {"text": text_column, "text-pair": text_pair_column, "label": label_column}
    if split_column is not None and len(frames) == 1:
        wanted["split"] = split_column
    columns: dict[str, tuple[list[str], list[str] | None, list[Any]]] = {}
    for split, df in frames.items():
        label = where if len(frames) == 1 else f"{where} [{split}]"
        if len(df) == 0:
            raise DataError(f"{label} parses to zero rows")
        check_columns(df, label, wanted)
        # Validate every row against its position in the source (before any split by column).
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

    parts = {split: examples(split) for split in frames}
    how = "given splits" if len(frames) > 1 else "seeded stratified fractions"
    if split_column is not None and len(frames) == 1:
        rows = parts["train"]
        masks = _split_values(frames["train"], split_column, where)
        parts = {k: [e for e, keep in zip(rows, m, strict=True) if keep] for k, m in masks.items()}
        how = f"split column `{split_column}`"
    parts = _held_out(parts, *fractions, seed)
    return TextTask(
        name, labels, parts["train"], parts["validation"], parts.get("test", []),
        is_pair=text_pair_column is not None,
        meta={"source": source, "split": _split_record(parts, how, seed)},
    )  # fmt: skip


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
