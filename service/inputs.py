"""Registering what clients bring — datasets and teachers — validated and profiled before anything is stored.

Every function here either stores a complete entry (files under the data folder, then the DB row) or raises
an :class:`~service.uploads.UploadError` / ``DataError`` / ``ModelError`` and leaves nothing behind. A
server-side path must lie under ``Settings.allowed_roots``; uploads live under ``Settings.uploads``.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from distill.assets import minilm_dir
from distill.augment.contextual import load_masked_lm
from distill.data import BUILTINS, TextTask, check_label_compatibility, load_subset
from distill.hf import ModelError, load_classifier
from distill.profile import dataset_profile
from distill.student import count_params
from distill.tables import FILE_SUFFIXES, DataError
from distill.teacher import load_teacher
from distill.transfer import load_transfer, transfer_profile
from service.schemas import DatasetIn, TeacherIn
from service.uploads import UploadError, guard_path, safe_extract, save_upload
from store import Dataset, Db, TeacherEntry, add_entry
from store.models import new_id
from store.settings import Settings
from store.spec import DatasetRef, TeacherRef, TransferRef

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
EXAMPLES_SHOWN = 3
MAX_CLASSES = 1000
MIN_PER_CLASS = 2
MAX_EXPANSION = 20
# A Hugging Face Hub id: `name` or `org/name`, each part word characters, `-` and `.`, never `..` or `--`.
HUB_ID = re.compile(r"^(?!.*(\.\.|--))[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def clean_name(text: str | None, fallback: str) -> str:
    """A display name from user text (a file name, a path): printable, at most 200 characters."""
    name = "".join(ch for ch in (text or "") if ch.isprintable()).strip()[:200]
    return name or fallback


def _is_local(source: str, settings: Settings, what: str) -> bool:
    """A server-side path (checked against the import roots), as opposed to a Hub id.

    Anything that is not strictly shaped like a Hub id is a path; so is a Hub-shaped name that exists under
    the first import root. A Hub-shaped name that exists relative to the server's working directory is
    refused (``_hub_unreachable``) rather than loaded: the loaders would take the local folder.
    """
    if source.startswith(("/", ".", "~")) or Path(source).suffix.lower() in FILE_SUFFIXES:
        return True
    if not HUB_ID.match(source):
        return True
    roots = settings.allowed_roots
    try:
        under_root = bool(roots) and (Path(roots[0]).expanduser() / source).exists()
        shadowed = Path(source).exists()
    except (OSError, ValueError):  # a name too long for the file system
        raise _hub_unreachable(source, what) from None
    if under_root:
        return True
    if shadowed:
        raise _hub_unreachable(source, what)
    return False


def _hub_unreachable(source: str, what: str) -> UploadError:
    """The one answer for a Hub id that cannot be used, whatever the reason, so that it says nothing about
    the server's files."""
    return UploadError(
        f"`{source[:200]}` is not a {what} this server can load from the Hugging Face Hub (no network, or no "
        f"such id); a server-side file or folder is given by its path under the allowed folders"
    )


@contextmanager
def _hub_errors(source: str, what: str) -> Iterator[None]:
    """Loading a Hub id: every failure becomes the same ``_hub_unreachable`` answer."""
    try:
        yield
    except (DataError, ModelError, OSError) as e:
        raise _hub_unreachable(source, what) from e


def _profile(task: TextTask) -> dict[str, Any]:
    return {
        **dataset_profile(task),
        "examples": [
            {"text": ex.text[:300], "label": task.labels[ex.label]} for ex in task.train[:EXAMPLES_SHOWN]
        ],
    }


def _load(ref: DatasetRef) -> TextTask:
    task = load_subset(**ref.model_dump())
    if task.num_labels < 2:
        raise DataError(f"the dataset has a single class ({task.labels[0]}): a classifier needs at least two")
    if len(task.train) < 2 or not task.validation:
        raise DataError(
            f"too few examples: {len(task.train)} for training and {len(task.validation)} for validation"
        )
    _check_classes(task)
    return task


def _checked(ref: DatasetRef, unlabeled: bool) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Load the data once (validation): the entry's stored ref, its profile and a display name. ``unlabeled``:
    transfer text (a text column only), stored as a ``TransferRef``."""
    if not unlabeled:
        task = _load(ref)
        return ref.model_dump(), _profile(task), task.name
    fields = ref.model_dump(include={"source", "name", "shown_as", "text_column", "text_pair_column"})
    transfer = TransferRef.model_validate(fields)
    rows = load_transfer(**transfer.model_dump())
    return transfer.model_dump(), transfer_profile(rows), ref.name or Path(ref.source).name


def _check_classes(task: TextTask) -> None:
    """Refuse label sets no classifier can learn: more than ``MAX_CLASSES`` classes, or most classes with
    fewer than ``MIN_PER_CLASS`` training examples (a label column that is really an id)."""
    counts = Counter(ex.label for ex in task.train)
    if task.num_labels > MAX_CLASSES:
        raise DataError(f"{task.num_labels:,} classes: at most {MAX_CLASSES:,} classes are supported")
    rare = sum(1 for c in range(task.num_labels) if counts.get(c, 0) < MIN_PER_CLASS)
    if rare > task.num_labels / 2:
        raise DataError(
            f"{rare:,} of {task.num_labels:,} classes have fewer than {MIN_PER_CLASS} training examples: "
            "is the label column an id? Each class needs examples to learn from"
        )


def register_dataset(db: Db, settings: Settings, body: DatasetIn, owner: str | None) -> Dataset:
    """A built-in, Hub or server-side-path dataset: load it once (validation) and store its profile."""
    ref = DatasetRef.model_validate(body.model_dump(exclude={"unlabeled"}))
    if ref.source in BUILTINS:
        kind = "builtin"
    elif _is_local(ref.source, settings, "dataset"):
        kind = "path"
        ref = ref.model_copy(update={"source": str(guard_path(ref.source, settings.allowed_roots))})
    else:
        kind = "hub"
    extra = {k: getattr(ref, k) for k in ("validation_source", "test_source") if getattr(ref, k)}
    # a separate split file is a server-side path like any other: under the import roots
    ref = ref.model_copy(update={k: str(guard_path(v, settings.allowed_roots)) for k, v in extra.items()})
    with _hub_errors(ref.source, "dataset") if kind == "hub" else nullcontext():
        stored, profile, task_name = _checked(ref, body.unlabeled)
    name = body.name or clean_name(task_name, "dataset")
    return add_entry(db, Dataset, owner=owner, name=name, kind=kind, ref=stored, profile=profile)


async def receive_upload(settings: Settings, what: str, upload: Any, filename: str) -> tuple[str, Path]:
    """Stream ``upload`` to ``uploads/<what>/<new id>/<filename>`` (a name the server chose, never the
    client's) under the size limit; returns (id, file). On failure nothing is left behind."""
    entry_id = new_id()
    dest = settings.uploads / what / entry_id / filename
    with _removed_on_error(dest.parent):
        dest.parent.mkdir(parents=True)
        await save_upload(upload, dest, settings.max_upload_bytes)
    return entry_id, dest


@contextmanager
def _removed_on_error(folder: Path) -> Iterator[None]:
    """Delete ``folder`` if the block fails: a refused upload leaves no files."""
    try:
        yield
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def register_uploaded_dataset(
    db: Db,
    settings: Settings,
    entry_id: str,
    file: Path,
    ref: DatasetRef,
    name: str | None,
    owner: str | None,
    splits: dict[str, tuple[Path, str]] | None = None,
    unlabeled: bool = False,
) -> Dataset:
    """``file`` was saved under ``uploads/datasets/<entry_id>/``; validate it, or remove the folder. The
    dataset keeps ``name`` (the user's, else the upload's file name): the task, its errors, the model card and
    the recommender's task names show it, never the server's file name. ``splits``: uploaded validation /
    test files saved beside it (split → (file, the user's file name)); ``unlabeled``: transfer text."""
    with _removed_on_error(file.parent):
        shown = clean_name(name, "upload")
        extra = {f"{k}_source": str(path) for k, (path, _) in (splits or {}).items()}
        names = {str(file): shown, **{str(path): clean_name(n, k) for k, (path, n) in (splits or {}).items()}}
        ref = ref.model_copy(update={"source": str(file), "name": shown, "shown_as": names, **extra})
        stored, profile, _ = _checked(ref, unlabeled)
        return add_entry(
            db,
            Dataset,
            owner=owner,
            name=shown,
            kind="upload",
            ref=stored,
            profile=profile,
            size=file.stat().st_size,
            entry_id=entry_id,
        )


def _teacher_profile(source: str | Path) -> dict[str, Any]:
    teacher = load_teacher(source)
    return {**teacher.describe(), "num_labels": len(teacher.labels), "fine_tuned": True}


def _base_profile(source: str | Path) -> dict[str, Any]:
    model = load_classifier(source)
    cfg = model.config
    return {
        "source": str(source),
        "model_type": cfg.model_type,
        "layers": cfg.num_hidden_layers,
        "hidden": cfg.hidden_size,
        "heads": cfg.num_attention_heads,
        "params": count_params(model),
        "labels": None,
        "num_labels": None,
        "fine_tuned": False,
    }


def register_teacher(db: Db, settings: Settings, body: TeacherIn, owner: str | None) -> TeacherEntry:
    """A fine-tuned teacher by path/Hub id, or a base encoder to fine-tune per job, or (``masked_lm``) a
    masked LM for contextual augmentation by path/Hub id: load it (validation)."""
    ref = TeacherRef.model_validate(body.model_dump(exclude={"name", "masked_lm"}))
    if body.masked_lm and not ref.path:
        raise DataError("a masked LM is given by `path` (a folder or Hub id), not `base`")
    source = ref.path or ref.base or ""
    if ref.base == "minilm":
        kind, profile = "base", _base_profile(minilm_dir())
    else:
        local = _is_local(source, settings, "model")
        if local:
            source = str(guard_path(source, settings.allowed_roots))  # loading below checks the folder
        kind = ("path" if local else "hub") if ref.path else "base"
        ref = ref.model_copy(update={"path": source} if ref.path else {"base": source})
        load = _masked_lm_profile if body.masked_lm else _teacher_profile if ref.path else _base_profile
        with _hub_errors(source, "model") if not local else nullcontext():
            profile = load(source)
    name = body.name or clean_name(Path(source).name or source, "masked-lm" if body.masked_lm else "teacher")
    return add_entry(
        db, TeacherEntry, owner=owner, name=name, kind=kind, ref=ref.model_dump(), profile=profile
    )


def _masked_lm_profile(source: str | Path) -> dict[str, Any]:
    model, _ = load_masked_lm(source)  # refused without its MLM head
    cfg = model.config
    return {
        "masked_lm": True, "model_type": cfg.model_type, "layers": cfg.num_hidden_layers,
        "hidden": cfg.hidden_size, "params": count_params(model), "labels": None, "num_labels": None,
        "fine_tuned": False,
    }  # fmt: skip


def register_uploaded_teacher(
    db: Db,
    settings: Settings,
    entry_id: str,
    archive: Path,
    name: str | None,
    owner: str | None,
    masked_lm: bool = False,
) -> TeacherEntry:
    """``archive`` was saved under ``uploads/teachers/<entry_id>/``: extract it safely, load, profile (as a
    masked LM with its head when ``masked_lm``)."""
    with _removed_on_error(archive.parent):
        limit = extract_limit(settings, archive)
        model_dir = safe_extract(archive, archive.parent / "model", max_bytes=limit)
        archive.unlink()
        # loading checks the folder (safetensors, no remote code)
        profile = _masked_lm_profile(model_dir) if masked_lm else _teacher_profile(model_dir)
        size = sum(f.stat().st_size for f in model_dir.rglob("*") if f.is_file())
        ref = TeacherRef(path=str(model_dir))
        return add_entry(
            db,
            TeacherEntry,
            owner=owner,
            name=clean_name(name, "teacher"),
            kind="upload",
            ref=ref.model_dump(),
            profile=profile,
            size=size,
            entry_id=entry_id,
        )


def extract_limit(settings: Settings, archive: Path) -> int:
    """Bytes an uploaded archive may expand to: 4× the upload limit, and at most ``MAX_EXPANSION`` × its own
    size (+16 MB): model weights barely compress, so a small archive that claims gigabytes is a bomb."""
    return min(4 * settings.max_upload_bytes, MAX_EXPANSION * archive.stat().st_size + (16 << 20))


def check_pair(dataset: Dataset, teacher: TeacherEntry) -> None:
    """Refuse a fine-tuned teacher whose labels cannot serve the dataset (a ``DataError`` says why)."""
    prof = teacher.profile
    if not prof.get("fine_tuned"):
        return  # a base encoder gets the dataset's labels when it is fine-tuned
    labels = list(dataset.profile.get("labels") or [])
    check_label_compatibility(TextTask(dataset.name, labels, [], []), prof.get("labels"), prof["num_labels"])
