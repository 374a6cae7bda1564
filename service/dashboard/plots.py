"""Server-side SVG plots for the dashboard: pure functions from plain data to an ``<svg>`` string.

Every plot is an ``<svg class="plot" role="img" aria-label=…>`` with a ``<title>``, axis labels as ``<text>``,
and one element per data point (class ``point``) carrying a ``data-*`` attribute and a ``<title>`` tooltip, so
a browser test can count points and read values. All text is escaped; coordinates are rounded to 0.1 px.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from service.dashboard.svg import (
    BOTTOM,
    LEFT,
    RIGHT,
    TOP,
    H,
    W,
    as_number,
    axes,
    diamond,
    fmt,
    format_params,
    legend,
    linear,
    linear_y_scale,
    log_x_scale,
    message,
    svg_doc,
    tick_label,
    ticks,
)
from store.states import TrialStatus

__all__ = [
    "CandidatePoint",
    "HistoryPoint",
    "SizePoint",
    "candidates",
    "curves",
    "format_params",
    "history",
    "importance_bars",
    "pareto",
    "size_vs_accuracy",
]


@dataclass(frozen=True)
class HistoryPoint:
    """One finished trial of a search: its number, accuracy, status and reference name (if any)."""

    number: int
    accuracy: float
    status: str  # "completed" | "pruned" (pruned trials are drawn hollow)
    reference: str | None  # "no_kd" | "vanilla_kd" | None
    trial_id: int


@dataclass(frozen=True)
class SizePoint:
    """One trained student: size (parameter count) against accuracy."""

    trial_id: int
    params: int
    accuracy: float
    label: str


@dataclass(frozen=True)
class CandidatePoint:
    """One DisWOT student candidate: its zero-cost proxy score and, once trained, its accuracy."""

    arch: str
    params: int
    score: float
    picked: bool
    accuracy: float | None


# --------------------------------------------------------------------------------------------- history


def history(points: list[HistoryPoint], teacher_accuracy: float | None) -> str:
    """Optimisation history: accuracy by trial number, best-so-far step line, teacher line, references.

    Each point links to ``/ui/trials/{trial_id}``; pruned trials are hollow and excluded from best-so-far.
    """
    label = "Optimisation history: accuracy by trial"
    points = sorted((p for p in points if as_number(p.accuracy) is not None), key=lambda p: p.number)
    if not points:
        return message(label, "no data yet")
    teacher = as_number(teacher_accuracy)
    xt = ticks(points[0].number, points[-1].number, 8, integer=True)
    sx = linear(xt[0], xt[-1], LEFT, W - RIGHT)
    sy, y_ticks = linear_y_scale([p.accuracy for p in points] + ([teacher] if teacher is not None else []))
    keys = [("dot", "", "completed"), ("dot", "pruned", "pruned"), ("dot", "reference", "reference")]
    keys += [("line", "best-so-far", "best so far")]
    keys += [("line", "teacher", "teacher")] if teacher is not None else []
    body = [axes([(sx(t), f"{t:.0f}") for t in xt], y_ticks, "trial", "accuracy"), legend(keys)]

    if teacher is not None:
        ty = sy(teacher)
        body.append(
            f'<line class="teacher" x1="{LEFT}" y1="{fmt(ty)}" x2="{W - RIGHT}" y2="{fmt(ty)}">'
            f"<title>teacher accuracy {teacher:.4f}</title></line>"
            f'<text class="teacher-label" x="{W - RIGHT - 4}" y="{fmt(ty - 4)}" text-anchor="end">'
            f"teacher {teacher:.4f}</text>"
        )
    completed = [p for p in points if p.status != TrialStatus.PRUNED]
    best = max(completed, key=lambda p: (p.accuracy, -p.number), default=None)
    # beyond 1,000 points a tenth of a pixel is invisible: whole pixels keep 10,000 points under 1.5 MB
    rd = fmt if len(points) <= 1000 else (lambda v: str(round(v)))
    dots, marked, labels = [], [], []  # marked (references, best) are drawn last, on top
    for p in points:
        cls, note = "point", ""
        if p.status == TrialStatus.PRUNED:
            cls, note = "point pruned", " (pruned)"
        if p.reference:
            cls, note = f"{cls} reference", f"{note} ({escape(p.reference)})"
            labels.append(
                f'<text class="reference-label" x="{fmt(sx(p.number) + 7)}" y="{fmt(sy(p.accuracy) - 7)}">'
                f"{escape(p.reference)}</text>"
            )
        if p is best:
            cls, note = f"{cls} best", f"{note} (best)"
        r = ' r="5"' if p.reference or p is best else ""  # plain points take their radius from the style
        (marked if r else dots).append(
            f'<a href="/ui/trials/{int(p.trial_id)}"><circle class="{cls}" cx="{rd(sx(p.number))}" '
            f'cy="{rd(sy(p.accuracy))}"{r} data-trial="{int(p.number)}"><title>trial {int(p.number)}: '
            f"accuracy {p.accuracy:.4f}{note}</title></circle></a>"
        )
    body.append(f'<g class="points">{"".join(dots)}</g>')
    if completed:  # the running maximum of the completed trials, as a step line up to the last trial
        run = completed[0].accuracy
        d = [f"M{fmt(sx(completed[0].number))} {fmt(sy(run))}"]
        for p in completed[1:]:
            if p.accuracy > run:
                run = p.accuracy
                d.append(f"H{fmt(sx(p.number))}V{fmt(sy(run))}")
        d.append(f"H{fmt(sx(points[-1].number))}")
        body.append(f'<path class="line best-so-far" d="{"".join(d)}"><title>best so far</title></path>')
    body.append(f'<g class="points marked">{"".join(marked)}</g>')
    body.extend(labels)
    return svg_doc(label, body)


# ----------------------------------------------------------------------------------- size vs accuracy


def pareto(points: Sequence[SizePoint]) -> set[int]:
    """Trial ids on the Pareto front of (max accuracy, min params); exact duplicates are all kept."""
    front: set[int] = set()
    best, best_params = -math.inf, None
    for p in sorted(points, key=lambda p: (p.params, -p.accuracy)):
        if p.accuracy > best:
            best, best_params = p.accuracy, p.params
            front.add(p.trial_id)
        elif p.accuracy == best and p.params == best_params:
            front.add(p.trial_id)
    return front


def size_vs_accuracy(points: list[SizePoint], teacher: tuple[int, float] | None) -> str:
    """Student size (log params) against accuracy, with the Pareto front and the teacher as a diamond."""
    label = "Student size vs accuracy"
    points = [p for p in points if p.params > 0 and as_number(p.accuracy) is not None]
    if not points:
        return message(label, "no data yet")
    if teacher is not None and not (teacher[0] > 0 and as_number(teacher[1]) is not None):
        teacher = None
    sx, x_ticks = log_x_scale([p.params for p in points] + ([teacher[0]] if teacher else []))
    sy, y_ticks = linear_y_scale([p.accuracy for p in points] + ([teacher[1]] if teacher else []))
    keys = [("dot", "", "student"), ("dot", "pareto", "Pareto front")]
    keys += [("diamond", "teacher", "teacher")] if teacher else []
    body = [axes(x_ticks, y_ticks, "student parameters (log scale)", "accuracy"), legend(keys)]

    front_ids = pareto(points)
    front = sorted((p for p in points if p.trial_id in front_ids), key=lambda p: (p.params, p.accuracy))
    d = [f"M{fmt(sx(front[0].params))} {fmt(sy(front[0].accuracy))}"]
    d += [f"H{fmt(sx(p.params))}V{fmt(sy(p.accuracy))}" for p in front[1:]]
    body.append(f'<path class="line pareto" d="{"".join(d)}"><title>Pareto front</title></path>')

    dots = []
    for p in sorted(points, key=lambda p: p.trial_id in front_ids):  # the front drawn on top
        on = p.trial_id in front_ids
        dots.append(
            f'<a href="/ui/trials/{int(p.trial_id)}"><circle class="point{" pareto" if on else ""}" '
            f'cx="{fmt(sx(p.params))}" cy="{fmt(sy(p.accuracy))}" r="{4 if on else 3}" '
            f'data-trial="{int(p.trial_id)}"><title>{escape(p.label)}: accuracy {p.accuracy:.4f}, '
            f"{format_params(p.params)} params{' (Pareto front)' if on else ''}</title></circle></a>"
        )
    body.append(f'<g class="points">{"".join(dots)}</g>')
    if teacher:
        tx, ty = sx(teacher[0]), sy(teacher[1])
        body.append(
            f'<path class="teacher" d="{diamond(tx, ty)}" data-params="{int(teacher[0])}">'
            f"<title>teacher: accuracy {teacher[1]:.4f}, {format_params(teacher[0])} params</title></path>"
            f'<text class="teacher-label" x="{fmt(tx - 10)}" y="{fmt(ty - 10)}" text-anchor="end">'
            "teacher</text>"
        )
    return svg_doc(label, body)


# ------------------------------------------------------------------------------------------ importance


def importance_bars(
    importances: dict[str, float], label: str = "Parameter importance: which pipeline component mattered"
) -> str:
    """Horizontal bars of parameter importance, sorted descending, each labelled with name and value."""
    items = sorted(((k, as_number(v) or 0.0) for k, v in importances.items()), key=lambda kv: -kv[1])
    if not items:
        return message(label, "no data yet", height=120)
    row, name_w, value_w, top = 26, 140, 48, 12
    height = top + row * len(items) + 8
    scale = (W - name_w - value_w - RIGHT) / (max(max(v for _, v in items), 0.0) or 1.0)
    bars = []
    for i, (name, v) in enumerate(items):
        y, w = top + i * row, max(v, 0.0) * scale
        bars.append(
            f'<g class="bar" data-param="{escape(name)}" data-value="{v:.4f}">'
            f"<title>{escape(name)}: {v:.2f}</title>"
            f'<text class="name" x="{name_w - 8}" y="{y + 15}" text-anchor="end">{escape(name)}</text>'
            f'<rect x="{name_w}" y="{y + 3}" width="{fmt(w)}" height="{row - 8}"/>'
            f'<text class="value" x="{fmt(name_w + w + 6)}" y="{y + 15}">{v:.2f}</text></g>'
        )
    return svg_doc(label, bars, height=height)


# ------------------------------------------------------------------------------------------ candidates


def candidates(points: list[CandidatePoint]) -> str:
    """DisWOT student candidates: log params against proxy score; trained and picked ones stand out."""
    label = "Student candidates: proxy score by size"
    points = [p for p in points if p.params > 0 and as_number(p.score) is not None]
    if not points:
        return message(label, "no data yet")
    sx, x_ticks = log_x_scale([p.params for p in points])
    sy, y_ticks = linear_y_scale([p.score for p in points])
    keys = [("dot", "", "candidate"), ("dot", "trained", "trained"), ("dot", "picked", "picked")]
    body = [axes(x_ticks, y_ticks, "student parameters (log scale)", "proxy score"), legend(keys)]
    dots = []
    for p in sorted(points, key=lambda p: (p.accuracy is not None, p.picked)):  # trained/picked on top
        acc = as_number(p.accuracy)
        cls = "point" + (" trained" if acc is not None else "") + (" picked" if p.picked else "")
        note = (f", accuracy {acc:.4f}" if acc is not None else "") + (" (picked)" if p.picked else "")
        dots.append(
            f'<circle class="{cls}" cx="{fmt(sx(p.params))}" cy="{fmt(sy(p.score))}" '
            f'r="{5 if p.picked else 3}" data-arch="{escape(p.arch)}">'
            f"<title>{escape(p.arch)}: score {p.score:.4g}, "
            f"{format_params(p.params)} params{note}</title></circle>"
        )
    body.append(f'<g class="points">{"".join(dots)}</g>')
    return svg_doc(label, body)


# ---------------------------------------------------------------------------------------------- curves

_SERIES = (("accuracy", "accuracy", "accuracy"), ("macro_f1", "macro-f1", "macro F1"))


def curves(epochs: list[dict]) -> str:
    """Per-epoch curves of one trial: accuracy and macro F1 (left axis, 0–1), train loss (right, own scale).

    ``epochs`` are the recorded metric dicts (``epoch``, ``accuracy``, ``macro_f1``, ``train_loss``, …).
    """
    label = "Training curves by epoch"
    rows = sorted(
        (
            (int(e["epoch"]) if as_number(e.get("epoch")) is not None else i + 1, e)
            for i, e in enumerate(epochs or [])
        ),
        key=lambda r: r[0],
    )
    if not rows:
        return message(label, "no epochs recorded yet")
    right = 64  # room for the train-loss axis
    xt = ticks(rows[0][0], rows[-1][0], 8, integer=True)
    sx = linear(xt[0], xt[-1], LEFT, W - right)
    sy = linear(0.0, 1.0, H - BOTTOM, TOP)
    y_ticks = [(sy(t / 5), f"{t / 5:.1f}") for t in range(6)]
    x_ticks = [(sx(t), f"{t:.0f}") for t in xt]
    body = [axes(x_ticks, y_ticks, "epoch", "accuracy / macro F1", right=right)]

    series: list[tuple[str, str, str, Callable[[float], float]]] = [(*s, sy) for s in _SERIES]
    losses = [v for _, e in rows if (v := as_number(e.get("train_loss"))) is not None]
    if losses:
        lt = ticks(min(min(losses), 0.0), max(losses))
        sl = linear(lt[0], lt[-1], H - BOTTOM, TOP)
        xr, cy = W - right, (H - BOTTOM + TOP) // 2
        axis = [f'<g class="axis y2-axis"><line x1="{xr}" y1="{H - BOTTOM}" x2="{xr}" y2="{TOP}"/>']
        axis += [f'<text x="{xr + 6}" y="{fmt(sl(t) + 4)}">{tick_label(t, lt[1] - lt[0])}</text>' for t in lt]
        axis.append(
            f'<text class="axis-label" x="{W - 10}" y="{cy}" text-anchor="middle" '
            f'transform="rotate(90 {W - 10} {cy})">train loss</text></g>'
        )
        body.append("".join(axis))
        series.append(("train_loss", "train-loss", "train loss", sl))

    for key, cls, name, scale in series:
        pts = [(ep, v) for ep, e in rows if (v := as_number(e.get(key))) is not None]
        if len(pts) > 1:
            d = "L".join(f"{fmt(sx(ep))} {fmt(scale(v))}" for ep, v in pts)
            body.append(f'<path class="line {cls}" d="M{d}"/>')
        body.extend(
            f'<circle class="point {cls}" cx="{fmt(sx(ep))}" cy="{fmt(scale(v))}" r="3" data-epoch="{ep}" '
            f'data-series="{key}"><title>epoch {ep}: {name} {v:.4f}</title></circle>'
            for ep, v in pts
        )
    note = "1 epoch so far" if len(rows) == 1 else ""
    body.append(legend([("line", cls, name) for _, cls, name, _ in series], note))
    return svg_doc(label, body)
