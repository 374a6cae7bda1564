"""Export: a Hugging Face folder (safetensors, tokenizer, model card) that ``transformers.pipeline`` loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

CARD = """---
library_name: transformers
pipeline_tag: text-classification
tags: [knowledge-distillation, autodistiller]
---
# {title}

{summary}

## Metrics (validation)
{metrics}

## Details
```json
{details}
```

Load it with `transformers.pipeline("text-classification", model="<this folder>")`.
"""


def save_model(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path, card: dict[str, Any]
) -> Path:
    """``save_pretrained`` (safetensors) + tokenizer + README model card + ``autodistiller.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    model.config._attn_implementation = "sdpa"  # eager was only needed to read attention maps in training
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    (folder / "autodistiller.json").write_text(json.dumps(card, indent=2, default=str))
    metrics = card.get("metrics") or {}
    rows = "\n".join(
        f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()
    )
    (folder / "README.md").write_text(
        CARD.format(
            title=card.get("title", "AutoDistiller model"),
            summary=card.get("summary", ""),
            metrics="| metric | value |\n|---|---|\n" + rows if rows else "(none)",
            details=json.dumps(
                {k: v for k, v in card.items() if k not in ("title", "summary")}, indent=2, default=str
            ),
        )
    )
    return folder


def export_student(result, teacher, task, folder: Path) -> Path:
    """Save a distilled student with a card naming its pipeline, metrics, teacher and data."""
    arch = result.pipeline.student
    return save_model(
        result.student,
        result.tokenizer,
        folder,
        {
            "title": f"Distilled student ({arch.layers} layers × {arch.hidden}) for {task.name}",
            "summary": f"Distilled by AutoDistiller from `{teacher.source}` on `{task.name}`.",
            "metrics": result.metrics,
            "pipeline": result.pipeline.model_dump(mode="json"),
            "teacher": teacher.describe(),
            "data": {
                "task": task.name,
                "train": len(task.train),
                "validation": len(task.validation),
                "labels": task.labels,
                "fingerprint": task.fingerprint(),
            },
        },
    )


FINAL_CARD = """---
{meta}
---
# {title}

{summary}

## Results
{results}

Accuracy is measured once on the held-out test split, which selection never saw; the interval is a 95%
Wilson interval. {speed}

## Details
```json
{details}
```

Load it with `transformers.pipeline("text-classification", model="<this folder>")`.
"""


def final_card(
    folder: Path,
    *,
    title: str,
    summary: str,
    dataset: str,
    base_model: str | None,
    results: str,
    speed: str,
    details: dict[str, Any],
) -> None:
    """Rewrite ``folder``'s model card once the job has measured it on the test split: what the pipeline did,
    the results table, the speed settings, and ``huggingface_hub`` card metadata (base_model — a Hub id
    only —, datasets, metrics)."""
    from huggingface_hub import ModelCardData

    meta = ModelCardData(
        library_name="transformers", pipeline_tag="text-classification",
        tags=["knowledge-distillation", "autodistiller"], datasets=[dataset], metrics=["accuracy", "f1"],
        base_model=base_model,
    ).to_yaml()  # fmt: skip
    text = FINAL_CARD.format(
        meta=meta, title=title, summary=summary, results=results, speed=speed,
        details=json.dumps(details, indent=2, default=str),
    )  # fmt: skip
    (folder / "README.md").write_text(text)
