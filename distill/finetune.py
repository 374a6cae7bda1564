"""Fine-tuning a base encoder into a teacher, once; later calls with the same inputs reuse the cached one."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from distill.data import TextTask
from distill.encoding import encode_fixed
from distill.export import save_model
from distill.hf import load_classifier, load_tokenizer
from distill.pipeline import LogitLossSpec, Pipeline, Training
from distill.teacher import Teacher, folder_fingerprint, load_teacher
from distill.trainer import train_model


@dataclass(frozen=True)
class FinetuneConfig:
    """How a base encoder becomes a teacher. Part of the cache key."""

    epochs: int = 2
    lr: float = 1e-4  # 5e-5 left MiniLM (untrained pooler) at chance on ~1,000 examples in 2 epochs
    batch_size: int = 32
    max_length: int = 64
    seed: int = 0


def finetune_teacher(
    base: str | Path,
    task: TextTask,
    cache_root: Path,
    cfg: FinetuneConfig = FinetuneConfig(),
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
    report: Callable[[dict], None] | None = None,
) -> Teacher:
    """Fine-tune ``base`` on ``task`` once; later calls with the same inputs load the cached folder.
    ``report`` hears each epoch's metrics (the job's fine-tuning stage shows them with an ETA)."""
    base_fp = folder_fingerprint(Path(base)) if Path(base).is_dir() else str(base)
    key_blob = json.dumps([base_fp, task.fingerprint(), cfg.__dict__], sort_keys=True)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", task.name).strip("._")[:60] or "task"  # a user's name: no path
    folder = cache_root / f"{slug}-{hashlib.sha256(key_blob.encode()).hexdigest()[:12]}"
    if (folder / "config.json").is_file():
        log(f"teacher: reusing the cached fine-tuned teacher in {folder}")
        return load_teacher(folder)

    log(f"teacher: fine-tuning {base} on {task.name} ({len(task.train)} examples, {cfg.epochs} epochs)")
    labels = task.labels
    torch.manual_seed(cfg.seed)  # the new classifier head: a function of the recipe, not of what ran before
    model = load_classifier(
        base,
        num_labels=task.num_labels,
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )
    tokenizer = load_tokenizer(base)
    recipe = Pipeline(
        loss=LogitLossSpec(name="ce_only", kd_weight=0.0),
        training=Training(
            lr=cfg.lr, epochs=cfg.epochs, batch_size=cfg.batch_size, max_length=cfg.max_length, seed=cfg.seed
        ),
    )
    identity = torch.arange(task.num_labels)
    train = encode_fixed(task.train, tokenizer, cfg.max_length, identity)
    val = encode_fixed(task.validation, tokenizer, cfg.max_length, identity)
    result = train_model(
        model, train, val, recipe, report=report, progress=progress, desc="teacher fine-tuning"
    )
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(
        model,
        tokenizer,
        tmp,
        card={
            "role": "teacher",
            "base": str(base),
            "task": task.name,
            "metrics": result.final,
            "finetune": cfg.__dict__,
        },
    )
    tmp.rename(folder)  # atomic: a half-written teacher is never picked up
    log(f"teacher: validation accuracy {result.final['accuracy']:.4f}, saved to {folder}")
    return load_teacher(folder)
