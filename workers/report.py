"""Plain-text views of a job for the terminal: the live leaderboard and the final summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel


def describe(pipeline: dict[str, Any] | BaseModel) -> str:
    """``kl(T=4) + mi_alpha/skip, eda_swap×1, 2×384`` — a pipeline in one short line."""
    if isinstance(pipeline, BaseModel):
        pipeline = pipeline.model_dump(mode="json")
    loss, inter, aug, st = (
        pipeline["loss"],
        pipeline["intermediate"],
        pipeline["augmentation"],
        pipeline["student"],
    )
    text = loss["name"] + (
        f"(T={loss['temperature']:.3g})" if loss["name"] in ("kl", "rkl", "jsd", "dkd") else ""
    )
    if inter["name"] != "none":
        text += f" + {inter['name']}/{inter['mapping']}" + ("/attn" if inter["features"] != "hidden" else "")
    if aug["ops"]:
        text += f", {'+'.join(aug['ops'])}×{aug['copies']}"
    if aug["mixup"]:
        text += ", mixup"
    return f"{text}, {st['layers']}×{st['hidden']}"


def leaderboard_table(trials: Sequence[Any], teacher_accuracy: float | None = None) -> str:
    """Trials (DB rows or the API's ``TrialOut``) as a fixed-width table."""
    rows = ["  #  status     accuracy  vs teacher  gain/no-KD   params   pipeline"]
    for t in trials:
        acc = f"{t.accuracy:.4f}" if t.accuracy is not None else "   -  "
        ratio = f"{t.accuracy / teacher_accuracy:.1%}" if t.accuracy and teacher_accuracy else "-"
        gain = f"{t.gain_over_no_kd:+.4f}" if t.gain_over_no_kd is not None else "-"
        params = f"{t.params / 1e6:.1f}M" if t.params else "-"
        ref = f" [{t.is_reference}]" if t.is_reference else ""
        rows.append(
            f"{t.number:>3}  {t.status:<9}  {acc:>8}  {ratio:>10}  {gain:>10}  {params:>7}   "
            f"{describe(t.pipeline)}{ref}"
        )
    return "\n".join(rows)
