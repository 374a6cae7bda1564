"""Plain-text views of a job for the terminal: the live leaderboard and the final summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from distill.pipeline import describe


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
