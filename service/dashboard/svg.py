"""SVG primitives of the dashboard's plots: the palette and scoped style, number formatting, ticks, axes,
legends, an empty-plot message. Pure functions; ``plots`` composes them."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from html import escape

W, H = 720, 360  # every axis plot; the importance bars grow with their count
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 36, 48  # plot margins; the legend sits in the top one
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


def fmt(x: float) -> str:
    """A coordinate rounded to 0.1, without a trailing ``.0``."""
    s = f"{x:.1f}"
    return s[:-2] if s.endswith(".0") else s


def as_number(v: object) -> float | None:
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


def svg_doc(label: str, body: Iterable[str], width: int = W, height: int = H) -> str:
    label = escape(label)
    return (
        f'<svg xmlns="{_NS}" class="plot" role="img" aria-label="{label}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}"><title>{label}</title>{_STYLE}{"".join(body)}</svg>'
    )


def message(label: str, text: str, width: int = W, height: int = H) -> str:
    """A plot with nothing to draw: just a centred message."""
    body = (
        f'<text class="message" x="{width // 2}" y="{height // 2}" text-anchor="middle">{escape(text)}</text>'
    )
    return svg_doc(label, [body], width, height)


def legend(items: Sequence[tuple[str, str, str]], note: str = "") -> str:
    """A row of (shape, key, text) entries above the plot; shapes: ``dot``, ``line``, ``diamond``.

    Swatches carry ``key k-<key>`` classes, never the data classes, so selectors like ``.point`` or
    ``.teacher`` find data only.
    """
    parts, x, y = ['<g class="legend">'], LEFT, 16
    for shape, key, text in items:
        cls = f"key k-{key}" if key else "key"
        if shape == "line":
            parts.append(f'<line class="{cls}" x1="{x}" y1="{y - 4}" x2="{x + 18}" y2="{y - 4}"/>')
            x += 22
        elif shape == "diamond":
            parts.append(f'<path class="{cls}" d="{diamond(x + 5, y - 4, 5)}"/>')
            x += 14
        else:
            parts.append(f'<circle class="{cls}" cx="{x + 4}" cy="{y - 4}" r="3"/>')
            x += 12
        parts.append(f'<text x="{x}" y="{y}">{escape(text)}</text>')
        x += 7 * len(text) + 18
    if note:
        parts.append(f'<text class="note" x="{W - RIGHT}" y="{y}" text-anchor="end">{escape(note)}</text>')
    return "".join(parts) + "</g>"


def _nice_step(span: float, n: int, *, integer: bool = False) -> float:
    raw = span / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    steps = (1, 2, 5, 10) if integer else (1, 2, 2.5, 5, 10)
    return next(m * mag for m in steps if m * mag >= raw * (1 - 1e-9))


def ticks(lo: float, hi: float, n: int = 5, *, integer: bool = False) -> list[float]:
    """Round tick values covering [lo, hi]; a degenerate range is widened around its value."""
    if hi - lo <= 1e-12 * max(1.0, abs(lo)):
        pad = 1.0 if integer else (abs(lo) * 0.05 or 0.5)
        lo, hi = (lo - pad if lo - pad >= 0 or lo < 0 else 0.0), hi + pad
    step = _nice_step(hi - lo, n, integer=integer)
    if integer:
        step = max(step, 1.0)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [i * step for i in range(first, last + 1)]


def tick_label(v: float, step: float) -> str:
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


def linear(d0: float, d1: float, r0: float, r1: float) -> Callable[[float], float]:
    k = (r1 - r0) / (d1 - d0) if d1 != d0 else 0.0
    return lambda v: r0 + (v - d0) * k


def log_x_scale(params: Sequence[float]) -> tuple[Callable[[float], float], list[tuple[float, str]]]:
    """A log-scale x axis around positive ``params`` (padded ×/÷ 1.25, ×/÷ 2 when all equal) and its ticks."""
    lo, hi = min(params), max(params)
    d0, d1 = (lo / 1.25, hi * 1.25) if hi > lo else (lo / 2, hi * 2)
    f = linear(math.log10(d0), math.log10(d1), LEFT, W - RIGHT)

    def sx(v: float) -> float:
        return f(math.log10(max(v, d0)))

    return sx, [(sx(t), format_params(t)) for t in _log_ticks(d0, d1)]


def linear_y_scale(values: Sequence[float]) -> tuple[Callable[[float], float], list[tuple[float, str]]]:
    """A linear y scale over round ticks covering ``values``, and its (pixel, label) ticks."""
    marks = ticks(min(values), max(values))
    step = marks[1] - marks[0]
    sy = linear(marks[0], marks[-1], H - BOTTOM, TOP)
    big = max(abs(marks[0]), abs(marks[-1])) >= 1e5 or step < 1e-4
    return sy, [(sy(t), f"{t:.3g}" if big else tick_label(t, step)) for t in marks]


def axes(
    x_ticks: Sequence[tuple[float, str]],
    y_ticks: Sequence[tuple[float, str]],
    x_label: str,
    y_label: str,
    right: int = RIGHT,
) -> str:
    """Axis lines, grid, tick labels and axis labels; ticks are (pixel, text) pairs."""
    x0, x1, y0, y1 = LEFT, W - right, H - BOTTOM, TOP
    parts = [f'<g class="axis x-axis"><line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}"/>']
    for px, text in x_ticks:
        parts.append(
            f'<line x1="{fmt(px)}" y1="{y0}" x2="{fmt(px)}" y2="{y0 + 4}"/>'
            f'<text x="{fmt(px)}" y="{y0 + 16}" text-anchor="middle">{escape(text)}</text>'
        )
    parts.append(
        f'<text class="axis-label" x="{(x0 + x1) // 2}" y="{H - 8}" text-anchor="middle">'
        f'{escape(x_label)}</text></g><g class="axis y-axis"><line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}"/>'
    )
    for py, text in y_ticks:
        parts.append(
            f'<line class="grid" x1="{x0 + 1}" y1="{fmt(py)}" x2="{x1}" y2="{fmt(py)}"/>'
            f'<text x="{x0 - 6}" y="{fmt(py + 4)}" text-anchor="end">{escape(text)}</text>'
        )
    cy = (y0 + y1) // 2
    parts.append(
        f'<text class="axis-label" x="14" y="{cy}" text-anchor="middle" transform="rotate(-90 14 {cy})">'
        f"{escape(y_label)}</text></g>"
    )
    return "".join(parts)


def diamond(x: float, y: float, r: float = 7) -> str:
    return f"M{fmt(x)} {fmt(y - r)}L{fmt(x + r)} {fmt(y)}L{fmt(x)} {fmt(y + r)}L{fmt(x - r)} {fmt(y)}Z"
