"""Server-side SVG plots for the dashboard: pure functions from plain data to an ``<svg>`` string.

Every plot is an ``<svg class="plot" role="img" aria-label=…>`` with a ``<title>``, axis labels as ``<text>``,
and one element per data point (class ``point``) carrying a ``data-*`` attribute and a ``<title>`` tooltip, so
a browser test can count points and read values. All text is escaped; coordinates are rounded to 0.1 px.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from html import escape

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


W, H = 720, 360  # every axis plot; the importance bars grow with their count
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 24, 36, 48  # plot margins; the legend sits in the top one
_NS = "http://www.w3.org/2000/svg"
_BLUE, _ORANGE, _RED, _GREEN, _PURPLE, _GOLD = (
    "#4c78a8",
    "#f58518",
    "#e45756",
    "#54a24b",
    "#b279a2",
    "#eeca3b",
)
_RULES: tuple[tuple[str, str], ...] = (  # (selectors, declarations); legend keys use ``k-*`` classes
    ("text", "font:11px sans-serif;fill:#333"),
    (".axis line", "stroke:#888"),
    (".axis .grid", "stroke:#e6e6e6"),
    (".axis-label", "font-size:12px;fill:#222"),
    (".message", "font-size:14px;fill:#777"),
    ("circle.point,circle.key", f"fill:{_BLUE};fill-opacity:.8;r:3px"),
    ("circle.pruned,circle.k-pruned", f"fill:none;stroke:{_BLUE}"),
    ("circle.reference,circle.k-reference", f"fill:{_ORANGE};fill-opacity:1;r:5px"),
    ("circle.pareto,circle.k-pareto", f"fill:{_RED};fill-opacity:1;r:4px"),
    ("circle.trained,circle.k-trained", f"fill:{_GREEN};fill-opacity:1"),
    ("circle.picked,circle.k-picked", "stroke:#222;stroke-width:1.5;r:5px"),
    ("circle.best", f"fill:{_GREEN};fill-opacity:1;stroke:#222;r:5px"),
    (".line,line.key", "fill:none;stroke-width:1.5"),
    (".best-so-far,.k-best-so-far", f"stroke:{_GREEN}"),
    (".line.pareto", f"stroke:{_RED}"),
    (".accuracy,.k-accuracy", f"stroke:{_BLUE}"),
    (".macro-f1,.k-macro-f1", f"stroke:{_ORANGE}"),
    (".train-loss,.k-train-loss", f"stroke:{_PURPLE}"),
    ("circle.accuracy", f"fill:{_BLUE}"),
    ("circle.macro-f1", f"fill:{_ORANGE}"),
    ("circle.train-loss", f"fill:{_PURPLE}"),
    ("line.teacher,line.k-teacher", "stroke:#333;stroke-dasharray:5 4"),
    ("path.teacher,path.k-teacher", f"fill:{_GOLD};stroke:#333"),
    (".bar rect", f"fill:{_BLUE}"),
)
# an inline <style> applies to the whole HTML page: scope every selector to svg.plot
_STYLE = (
    "<style>"
    + "".join(",".join(f"svg.plot {sel}" for sel in sels.split(",")) + f"{{{decl}}}" for sels, decl in _RULES)
    + "</style>"
)


def _n(x: float) -> str:
    """A coordinate rounded to 0.1, without a trailing ``.0``."""
    s = f"{x:.1f}"
    return s[:-2] if s.endswith(".0") else s


def _num(v: object) -> float | None:
    """``v`` as a finite float, else None."""
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def format_params(n: float) -> str:
    """A parameter count as people write it: ``350K``, ``4M``, ``8.2M``, ``12M``, ``1.1B``."""
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            v = n / div
            return f"{v:.1f}".removesuffix(".0") + unit if v < 9.95 else f"{round(v)}{unit}"
    return f"{n:g}"


def _svg(label: str, body: Iterable[str], width: int = W, height: int = H) -> str:
    label = escape(label)
    return (
        f'<svg xmlns="{_NS}" class="plot" role="img" aria-label="{label}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}"><title>{label}</title>{_STYLE}{"".join(body)}</svg>'
    )


def _message(label: str, text: str, width: int = W, height: int = H) -> str:
    """A plot with nothing to draw: just a centred message."""
    body = (
        f'<text class="message" x="{width // 2}" y="{height // 2}" text-anchor="middle">{escape(text)}</text>'
    )
    return _svg(label, [body], width, height)


def _legend(items: Sequence[tuple[str, str, str]], note: str = "") -> str:
    """A row of (shape, key, text) entries above the plot; shapes: ``dot``, ``line``, ``diamond``.

    Swatches carry ``key k-<key>`` classes, never the data classes, so selectors like ``.point`` or
    ``.teacher`` find data only.
    """
    parts, x, y = ['<g class="legend">'], _LEFT, 16
    for shape, key, text in items:
        cls = f"key k-{key}" if key else "key"
        if shape == "line":
            parts.append(f'<line class="{cls}" x1="{x}" y1="{y - 4}" x2="{x + 18}" y2="{y - 4}"/>')
            x += 22
        elif shape == "diamond":
            parts.append(f'<path class="{cls}" d="{_diamond(x + 5, y - 4, 5)}"/>')
            x += 14
        else:
            parts.append(f'<circle class="{cls}" cx="{x + 4}" cy="{y - 4}" r="3"/>')
            x += 12
        parts.append(f'<text x="{x}" y="{y}">{escape(text)}</text>')
        x += 7 * len(text) + 18
    if note:
        parts.append(f'<text class="note" x="{W - _RIGHT}" y="{y}" text-anchor="end">{escape(note)}</text>')
    return "".join(parts) + "</g>"


def _nice_step(span: float, n: int, *, integer: bool = False) -> float:
    raw = span / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    steps = (1, 2, 5, 10) if integer else (1, 2, 2.5, 5, 10)
    return next(m * mag for m in steps if m * mag >= raw * (1 - 1e-9))


def _ticks(lo: float, hi: float, n: int = 5, *, integer: bool = False) -> list[float]:
    """Round tick values covering [lo, hi]; a degenerate range is widened around its value."""
    if hi - lo <= 1e-12 * max(1.0, abs(lo)):
        pad = 1.0 if integer else (abs(lo) * 0.05 or 0.5)
        lo, hi = (lo - pad if lo - pad >= 0 or lo < 0 else 0.0), hi + pad
    step = _nice_step(hi - lo, n, integer=integer)
    if integer:
        step = max(step, 1.0)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [i * step for i in range(first, last + 1)]


def _tick_label(v: float, step: float) -> str:
    decimals = 0
    while decimals < 6 and abs(step * 10**decimals - round(step * 10**decimals)) > 1e-6:
        decimals += 1
    return f"{v:.{decimals}f}"


def _log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks inside [lo, hi] (a positive range); thinned to powers of ten beyond 8."""
    out: list[float] = []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        out += [m * 10**e for m in (1, 2, 5) if lo <= m * 10**e <= hi]
    if len(out) > 8:
        out = [v for v in out if math.isclose(10 ** round(math.log10(v)), v)]
    return out if len(out) >= 2 else [lo, hi]


def _linear(d0: float, d1: float, r0: float, r1: float) -> Callable[[float], float]:
    k = (r1 - r0) / (d1 - d0) if d1 != d0 else 0.0
    return lambda v: r0 + (v - d0) * k


def _log_x(params: Sequence[float]) -> tuple[Callable[[float], float], list[tuple[float, str]]]:
    """A log-scale x axis around positive ``params`` (padded ×/÷ 1.25, ×/÷ 2 when all equal) and its ticks."""
    lo, hi = min(params), max(params)
    d0, d1 = (lo / 1.25, hi * 1.25) if hi > lo else (lo / 2, hi * 2)
    f = _linear(math.log10(d0), math.log10(d1), _LEFT, W - _RIGHT)

    def sx(v: float) -> float:
        return f(math.log10(max(v, d0)))

    return sx, [(sx(t), format_params(t)) for t in _log_ticks(d0, d1)]


def _linear_y(values: Sequence[float]) -> tuple[Callable[[float], float], list[tuple[float, str]]]:
    """A linear y scale over round ticks covering ``values``, and its (pixel, label) ticks."""
    ticks = _ticks(min(values), max(values))
    step = ticks[1] - ticks[0]
    sy = _linear(ticks[0], ticks[-1], H - _BOTTOM, _TOP)
    big = max(abs(ticks[0]), abs(ticks[-1])) >= 1e5 or step < 1e-4
    return sy, [(sy(t), f"{t:.3g}" if big else _tick_label(t, step)) for t in ticks]


def _axes(
    x_ticks: Sequence[tuple[float, str]],
    y_ticks: Sequence[tuple[float, str]],
    x_label: str,
    y_label: str,
    right: int = _RIGHT,
) -> str:
    """Axis lines, grid, tick labels and axis labels; ticks are (pixel, text) pairs."""
    x0, x1, y0, y1 = _LEFT, W - right, H - _BOTTOM, _TOP
    parts = [f'<g class="axis x-axis"><line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}"/>']
    for px, text in x_ticks:
        parts.append(
            f'<line x1="{_n(px)}" y1="{y0}" x2="{_n(px)}" y2="{y0 + 4}"/>'
            f'<text x="{_n(px)}" y="{y0 + 16}" text-anchor="middle">{escape(text)}</text>'
        )
    parts.append(
        f'<text class="axis-label" x="{(x0 + x1) // 2}" y="{H - 8}" text-anchor="middle">'
        f'{escape(x_label)}</text></g><g class="axis y-axis"><line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}"/>'
    )
    for py, text in y_ticks:
        parts.append(
            f'<line class="grid" x1="{x0 + 1}" y1="{_n(py)}" x2="{x1}" y2="{_n(py)}"/>'
            f'<text x="{x0 - 6}" y="{_n(py + 4)}" text-anchor="end">{escape(text)}</text>'
        )
    cy = (y0 + y1) // 2
    parts.append(
        f'<text class="axis-label" x="14" y="{cy}" text-anchor="middle" transform="rotate(-90 14 {cy})">'
        f"{escape(y_label)}</text></g>"
    )
    return "".join(parts)


def _diamond(x: float, y: float, r: float = 7) -> str:
    return f"M{_n(x)} {_n(y - r)}L{_n(x + r)} {_n(y)}L{_n(x)} {_n(y + r)}L{_n(x - r)} {_n(y)}Z"


# --------------------------------------------------------------------------------------------- history


def history(points: list[HistoryPoint], teacher_accuracy: float | None) -> str:
    """Optimisation history: accuracy by trial number, best-so-far step line, teacher line, references.

    Each point links to ``/ui/trials/{trial_id}``; pruned trials are hollow and excluded from best-so-far.
    """
    label = "Optimisation history: accuracy by trial"
    points = sorted((p for p in points if _num(p.accuracy) is not None), key=lambda p: p.number)
    if not points:
        return _message(label, "no data yet")
    teacher = _num(teacher_accuracy)
    xt = _ticks(points[0].number, points[-1].number, 8, integer=True)
    sx = _linear(xt[0], xt[-1], _LEFT, W - _RIGHT)
    sy, y_ticks = _linear_y([p.accuracy for p in points] + ([teacher] if teacher is not None else []))
    keys = [("dot", "", "completed"), ("dot", "pruned", "pruned"), ("dot", "reference", "reference")]
    keys += [("line", "best-so-far", "best so far")]
    keys += [("line", "teacher", "teacher")] if teacher is not None else []
    body = [_axes([(sx(t), f"{t:.0f}") for t in xt], y_ticks, "trial", "accuracy"), _legend(keys)]

    if teacher is not None:
        ty = sy(teacher)
        body.append(
            f'<line class="teacher" x1="{_LEFT}" y1="{_n(ty)}" x2="{W - _RIGHT}" y2="{_n(ty)}">'
            f"<title>teacher accuracy {teacher:.4f}</title></line>"
            f'<text class="teacher-label" x="{W - _RIGHT - 4}" y="{_n(ty - 4)}" text-anchor="end">'
            f"teacher {teacher:.4f}</text>"
        )
    completed = [p for p in points if p.status != TrialStatus.PRUNED]
    best = max(completed, key=lambda p: (p.accuracy, -p.number), default=None)
    # beyond 1,000 points a tenth of a pixel is invisible: whole pixels keep 10,000 points under 1.5 MB
    rd = _n if len(points) <= 1000 else (lambda v: str(round(v)))
    dots, marked, labels = [], [], []  # marked (references, best) are drawn last, on top
    for p in points:
        cls, note = "point", ""
        if p.status == TrialStatus.PRUNED:
            cls, note = "point pruned", " (pruned)"
        if p.reference:
            cls, note = f"{cls} reference", f"{note} ({escape(p.reference)})"
            labels.append(
                f'<text class="reference-label" x="{_n(sx(p.number) + 7)}" y="{_n(sy(p.accuracy) - 7)}">'
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
        d = [f"M{_n(sx(completed[0].number))} {_n(sy(run))}"]
        for p in completed[1:]:
            if p.accuracy > run:
                run = p.accuracy
                d.append(f"H{_n(sx(p.number))}V{_n(sy(run))}")
        d.append(f"H{_n(sx(points[-1].number))}")
        body.append(f'<path class="line best-so-far" d="{"".join(d)}"><title>best so far</title></path>')
    body.append(f'<g class="points marked">{"".join(marked)}</g>')
    body.extend(labels)
    return _svg(label, body)


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
    points = [p for p in points if p.params > 0 and _num(p.accuracy) is not None]
    if not points:
        return _message(label, "no data yet")
    if teacher is not None and not (teacher[0] > 0 and _num(teacher[1]) is not None):
        teacher = None
    sx, x_ticks = _log_x([p.params for p in points] + ([teacher[0]] if teacher else []))
    sy, y_ticks = _linear_y([p.accuracy for p in points] + ([teacher[1]] if teacher else []))
    keys = [("dot", "", "student"), ("dot", "pareto", "Pareto front")]
    keys += [("diamond", "teacher", "teacher")] if teacher else []
    body = [_axes(x_ticks, y_ticks, "student parameters (log scale)", "accuracy"), _legend(keys)]

    front_ids = pareto(points)
    front = sorted((p for p in points if p.trial_id in front_ids), key=lambda p: (p.params, p.accuracy))
    d = [f"M{_n(sx(front[0].params))} {_n(sy(front[0].accuracy))}"]
    d += [f"H{_n(sx(p.params))}V{_n(sy(p.accuracy))}" for p in front[1:]]
    body.append(f'<path class="line pareto" d="{"".join(d)}"><title>Pareto front</title></path>')

    dots = []
    for p in sorted(points, key=lambda p: p.trial_id in front_ids):  # the front drawn on top
        on = p.trial_id in front_ids
        dots.append(
            f'<a href="/ui/trials/{int(p.trial_id)}"><circle class="point{" pareto" if on else ""}" '
            f'cx="{_n(sx(p.params))}" cy="{_n(sy(p.accuracy))}" r="{4 if on else 3}" '
            f'data-trial="{int(p.trial_id)}"><title>{escape(p.label)}: accuracy {p.accuracy:.4f}, '
            f"{format_params(p.params)} params{' (Pareto front)' if on else ''}</title></circle></a>"
        )
    body.append(f'<g class="points">{"".join(dots)}</g>')
    if teacher:
        tx, ty = sx(teacher[0]), sy(teacher[1])
        body.append(
            f'<path class="teacher" d="{_diamond(tx, ty)}" data-params="{int(teacher[0])}">'
            f"<title>teacher: accuracy {teacher[1]:.4f}, {format_params(teacher[0])} params</title></path>"
            f'<text class="teacher-label" x="{_n(tx - 10)}" y="{_n(ty - 10)}" text-anchor="end">'
            "teacher</text>"
        )
    return _svg(label, body)


# ------------------------------------------------------------------------------------------ importance


def importance_bars(
    importances: dict[str, float], label: str = "Parameter importance: which pipeline component mattered"
) -> str:
    """Horizontal bars of parameter importance, sorted descending, each labelled with name and value."""
    items = sorted(((k, _num(v) or 0.0) for k, v in importances.items()), key=lambda kv: -kv[1])
    if not items:
        return _message(label, "no data yet", height=120)
    row, name_w, value_w, top = 26, 140, 48, 12
    height = top + row * len(items) + 8
    scale = (W - name_w - value_w - _RIGHT) / (max(max(v for _, v in items), 0.0) or 1.0)
    bars = []
    for i, (name, v) in enumerate(items):
        y, w = top + i * row, max(v, 0.0) * scale
        bars.append(
            f'<g class="bar" data-param="{escape(name)}" data-value="{v:.4f}">'
            f"<title>{escape(name)}: {v:.2f}</title>"
            f'<text class="name" x="{name_w - 8}" y="{y + 15}" text-anchor="end">{escape(name)}</text>'
            f'<rect x="{name_w}" y="{y + 3}" width="{_n(w)}" height="{row - 8}"/>'
            f'<text class="value" x="{_n(name_w + w + 6)}" y="{y + 15}">{v:.2f}</text></g>'
        )
    return _svg(label, bars, height=height)


# ------------------------------------------------------------------------------------------ candidates


def candidates(points: list[CandidatePoint]) -> str:
    """DisWOT student candidates: log params against proxy score; trained and picked ones stand out."""
    label = "Student candidates: proxy score by size"
    points = [p for p in points if p.params > 0 and _num(p.score) is not None]
    if not points:
        return _message(label, "no data yet")
    sx, x_ticks = _log_x([p.params for p in points])
    sy, y_ticks = _linear_y([p.score for p in points])
    keys = [("dot", "", "candidate"), ("dot", "trained", "trained"), ("dot", "picked", "picked")]
    body = [_axes(x_ticks, y_ticks, "student parameters (log scale)", "proxy score"), _legend(keys)]
    dots = []
    for p in sorted(points, key=lambda p: (p.accuracy is not None, p.picked)):  # trained/picked on top
        acc = _num(p.accuracy)
        cls = "point" + (" trained" if acc is not None else "") + (" picked" if p.picked else "")
        note = (f", accuracy {acc:.4f}" if acc is not None else "") + (" (picked)" if p.picked else "")
        dots.append(
            f'<circle class="{cls}" cx="{_n(sx(p.params))}" cy="{_n(sy(p.score))}" '
            f'r="{5 if p.picked else 3}" data-arch="{escape(p.arch)}">'
            f"<title>{escape(p.arch)}: score {p.score:.4g}, "
            f"{format_params(p.params)} params{note}</title></circle>"
        )
    body.append(f'<g class="points">{"".join(dots)}</g>')
    return _svg(label, body)


# ---------------------------------------------------------------------------------------------- curves

_SERIES = (("accuracy", "accuracy", "accuracy"), ("macro_f1", "macro-f1", "macro F1"))


def curves(epochs: list[dict]) -> str:
    """Per-epoch curves of one trial: accuracy and macro F1 (left axis, 0–1), train loss (right, own scale).

    ``epochs`` are the recorded metric dicts (``epoch``, ``accuracy``, ``macro_f1``, ``train_loss``, …).
    """
    label = "Training curves by epoch"
    rows = sorted(
        (
            (int(e["epoch"]) if _num(e.get("epoch")) is not None else i + 1, e)
            for i, e in enumerate(epochs or [])
        ),
        key=lambda r: r[0],
    )
    if not rows:
        return _message(label, "no epochs recorded yet")
    right = 64  # room for the train-loss axis
    xt = _ticks(rows[0][0], rows[-1][0], 8, integer=True)
    sx = _linear(xt[0], xt[-1], _LEFT, W - right)
    sy = _linear(0.0, 1.0, H - _BOTTOM, _TOP)
    y_ticks = [(sy(t / 5), f"{t / 5:.1f}") for t in range(6)]
    x_ticks = [(sx(t), f"{t:.0f}") for t in xt]
    body = [_axes(x_ticks, y_ticks, "epoch", "accuracy / macro F1", right=right)]

    series: list[tuple[str, str, str, Callable[[float], float]]] = [(*s, sy) for s in _SERIES]
    losses = [v for _, e in rows if (v := _num(e.get("train_loss"))) is not None]
    if losses:
        lt = _ticks(min(min(losses), 0.0), max(losses))
        sl = _linear(lt[0], lt[-1], H - _BOTTOM, _TOP)
        xr, cy = W - right, (H - _BOTTOM + _TOP) // 2
        axis = [f'<g class="axis y2-axis"><line x1="{xr}" y1="{H - _BOTTOM}" x2="{xr}" y2="{_TOP}"/>']
        axis += [f'<text x="{xr + 6}" y="{_n(sl(t) + 4)}">{_tick_label(t, lt[1] - lt[0])}</text>' for t in lt]
        axis.append(
            f'<text class="axis-label" x="{W - 10}" y="{cy}" text-anchor="middle" '
            f'transform="rotate(90 {W - 10} {cy})">train loss</text></g>'
        )
        body.append("".join(axis))
        series.append(("train_loss", "train-loss", "train loss", sl))

    for key, cls, name, scale in series:
        pts = [(ep, v) for ep, e in rows if (v := _num(e.get(key))) is not None]
        if len(pts) > 1:
            d = "L".join(f"{_n(sx(ep))} {_n(scale(v))}" for ep, v in pts)
            body.append(f'<path class="line {cls}" d="M{d}"/>')
        body.extend(
            f'<circle class="point {cls}" cx="{_n(sx(ep))}" cy="{_n(scale(v))}" r="3" data-epoch="{ep}" '
            f'data-series="{key}"><title>epoch {ep}: {name} {v:.4f}</title></circle>'
            for ep, v in pts
        )
    note = "1 epoch so far" if len(rows) == 1 else ""
    body.append(_legend([("line", cls, name) for _, cls, name, _ in series], note))
    return _svg(label, body)
