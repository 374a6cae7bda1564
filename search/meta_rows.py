"""Past trials anyone can bring: the documented row format the recommender learns from.

One row per finished trial, in a CSV (UTF-8, header) or Parquet file:

=================  ==================================================================================
``task``           required: the task (dataset) the trial ran on; rows of one task are compared
``pipeline``       required: the pipeline as JSON (``distill.pipeline.Pipeline``'s fields); names this
                   installation lacks are kept (they still teach), only never recommended;
                   its seeds (fields named ``seed`` or ``…_seed``) are not part of it: trials under
                   several seeds are repeats of one pipeline
``score``          required (or ``accuracy``): the trial's score, higher is better, any scale or sign
``teacher_score``  optional: the teacher's score on the task
``curve``          optional: the trial's learning curve, JSON ``[[validation score, seconds], …]`` one
                   pair an epoch (the benches replay early stopping with it; not a feature)
``job_id``         optional: the run (a job) the trial belonged to
any other column   optional: numeric meta-features of the task (missing values allowed); text ignored,
                   and so are seed columns (``seed``, ``…_seed``)
=================  ==================================================================================

A meta-feature describes the task, so it has one value per run: per task, or per task and ``job_id`` (two
runs of a task may differ, e.g. in their fine-tuned teacher). A numeric column whose value changes from
trial to trial within a run (a validation score, a training time, a choice kept outside the pipeline JSON)
describes trials: as a feature it would teach the ranker what no new task can tell it before training. It
is left out, and named in a :class:`RowsWarning`.

The shipped meta-dataset (``search/priors/meta.csv``) is in this format (its ``accuracy`` is the score).
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REQUIRED = ("task", "pipeline")
SCORE_COLUMNS = ("score", "accuracy")
#: Columns that are not meta-features, whatever their content.
NOT_META = frozenset({"task", "pipeline", "score", "accuracy", "teacher_score", "job_id", "ratio", "params",
                      "wall_seconds", "trial", "curve"})  # fmt: skip


class RowsError(ValueError):
    """The file is not a usable table of past trials; the message names the file and line."""


class RowsWarning(UserWarning):
    """Something in a file of past trials was left out; the message names the file and what."""


@dataclass(frozen=True)
class MetaRow:
    task: str
    pipeline: dict[str, Any]  # the raw JSON object (not validated against this installation's components)
    score: float
    meta: dict[str, float] = field(default_factory=dict)  # NaN: missing
    teacher_score: float | None = None

    @property
    def key(self) -> str:
        """The pipeline's identity across tasks: :func:`pipeline_key`."""
        return pipeline_key(self.pipeline)


def not_a_choice(path: str) -> bool:
    """Whether a pipeline field (``section.field``, any depth) is no choice a recommendation makes, so no
    part of a pipeline's identity and no feature of the ranker: a seed (``training.seed``, and in other
    meta-datasets' rows ``seed``, ``model_seed``, ``data.random_seed`` …)."""
    name = path.rsplit(".", 1)[-1].lower()
    return name == "seed" or name.endswith("_seed")


def _choices(value: Any, prefix: str = "") -> Any:
    if not isinstance(value, dict):
        return value
    return {k: _choices(v, f"{prefix}{k}.") for k, v in value.items() if not not_a_choice(f"{prefix}{k}")}


def pipeline_key(pipeline: dict[str, Any]) -> str:
    """A pipeline's identity: canonical JSON without the fields that are :func:`not_a_choice` (trials of
    one pipeline under other seeds are repeats of it, not other pipelines)."""
    return json.dumps(_choices(pipeline), sort_keys=True)


def _number(value: Any) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    return float(value)


def _records(path: Path) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    """Column names and (line or row number, record) pairs."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as e:  # a damaged or non-Parquet file
            raise RowsError(f"{path.name}: not a readable Parquet file ({e})") from None
        return table.column_names, [(i + 1, r) for i, r in enumerate(table.to_pylist())]
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            return list(reader.fieldnames or []), [(i, dict(r)) for i, r in enumerate(reader, start=2)]
    except UnicodeDecodeError:
        raise RowsError(f"{path.name}: not UTF-8 text (give a CSV in UTF-8, or Parquet)") from None


def load_meta_rows(path: str | Path) -> list[MetaRow]:
    """Read past trials (see the module docstring); a :class:`RowsError` names the file and line (CSV) or
    row (Parquet) of the first bad value. Rows with an empty score are skipped (unfinished trials)."""
    path = Path(path)
    where = "row" if path.suffix.lower() == ".parquet" else "line"
    if not path.is_file():
        raise RowsError(f"{path.name}: no such file")
    columns, records = _records(path)
    missing = [c for c in REQUIRED if c not in columns]
    score_col = next((c for c in SCORE_COLUMNS if c in columns), None)
    if missing or score_col is None:
        need = [*missing, *([] if score_col else ["score (or accuracy)"])]
        raise RowsError(
            f"{path.name}: the column(s) {', '.join(need)} are missing (have: {', '.join(columns)})"
        )
    meta_cols = [c for c in columns if c not in NOT_META and not not_a_choice(c)]
    rows: list[MetaRow] = []
    runs: list[tuple[str, str]] = []  # (task, job_id) of each row
    for n, rec in records:
        try:
            score = _number(rec[score_col])
            if math.isnan(score):
                continue
            pipeline = rec["pipeline"]
            pipeline = json.loads(pipeline) if isinstance(pipeline, str) else pipeline
            if not isinstance(pipeline, dict):
                raise ValueError("the pipeline is not a JSON object")
            meta = {}
            for c in meta_cols:
                try:
                    meta[c] = _number(rec.get(c))
                except (TypeError, ValueError):
                    continue  # a text column: not a meta-feature
            teacher = _number(rec.get("teacher_score")) if "teacher_score" in columns else math.nan
            task = str(rec["task"] or "").strip()
            if not task:
                raise ValueError("the task is empty")
            rows.append(MetaRow(task, pipeline, score, meta, None if math.isnan(teacher) else teacher))
            runs.append((task, str(rec.get("job_id") or "")))
        except (TypeError, ValueError) as e:
            raise RowsError(f"{path.name}, {where} {n}: {str(e).splitlines()[0][:200]}") from None
    if not rows:
        raise RowsError(f"{path.name}: no finished trial (every score is empty)")
    per_trial = varying(rows, runs)
    if per_trial:
        warnings.warn(
            f"{path.name}: {', '.join(per_trial)} change from trial to trial within a task's run, so they "
            "describe trials, not the task: not used as meta-features (a pipeline's choices belong in its "
            "JSON)",
            RowsWarning,
            stacklevel=2,
        )
        rows = [replace(r, meta={k: v for k, v in r.meta.items() if k not in per_trial}) for r in rows]
    return rows


def varying(rows: list[MetaRow], runs: list[tuple[str, str]]) -> list[str]:
    """The meta-feature columns with more than one value within a run (``runs``: each row's task and
    job id; missing values aside, equal to 9 significant digits counts as one value)."""
    values: dict[str, dict[tuple[str, str], set[float]]] = defaultdict(lambda: defaultdict(set))
    for r, run in zip(rows, runs, strict=True):
        for k, v in r.meta.items():
            if not math.isnan(v):
                values[k][run].add(float(f"{v:.9g}"))
    return sorted(k for k, by_run in values.items() if any(len(v) > 1 for v in by_run.values()))
