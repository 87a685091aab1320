"""Small chart primitives that write inline SVG: no scripts, no external assets, so a report
renders offline, in print and in a CI artifact viewer.

A :class:`Chart` has two :class:`Axis` (linear or log10; each with a label that names its unit),
and marks added in drawing order: lines with optional markers, horizontal reference lines,
shaded x-ranges, before/after dumbbells. :func:`heatmap` draws a rows x columns grid on a log
colour scale. Colours come from CSS classes (:data:`CSS`), so the page's light and dark themes
apply to the charts too; every chart starts with a ``<title>`` for screen readers.

Coordinates are in the SVG's own ``viewBox`` units; the page scales the picture to its width.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Literal

WIDTH, HEIGHT = 720, 300
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 74, 24, 30, 46
SERIES_CLASSES = 6  # .s0 .. .s5 in CSS

# Theme-aware colours for the marks; the page defines the variables for light and dark.
CSS = """
svg.chart{width:100%;height:auto;min-width:36rem;font:12px system-ui,sans-serif;display:block}
svg.chart text{fill:var(--fg)}
svg.chart .title{font-weight:600;font-size:13px}
svg.chart .axis,svg.chart .tick line{stroke:var(--fg);stroke-width:1}
svg.chart .grid{stroke:var(--grid);stroke-width:1}
svg.chart .line{fill:none;stroke-width:2}
svg.chart .s0{stroke:var(--c0);fill:var(--c0)}svg.chart .s1{stroke:var(--c1);fill:var(--c1)}
svg.chart .s2{stroke:var(--c2);fill:var(--c2)}svg.chart .s3{stroke:var(--c3);fill:var(--c3)}
svg.chart .s4{stroke:var(--c4);fill:var(--c4)}svg.chart .s5{stroke:var(--c5);fill:var(--c5)}
svg.chart path.line{fill:none}
svg.chart .pred{stroke-dasharray:6 4}
svg.chart .ref{stroke-width:1.2;stroke-dasharray:3 3;fill:none}
svg.chart .ref.warn{stroke:var(--warn)}svg.chart .ref.err{stroke:var(--err)}
svg.chart text.warn{fill:var(--warn)}svg.chart text.err{fill:var(--err)}
svg.chart .shade{fill:var(--err);opacity:.14;stroke:none}
svg.chart .hl{fill:var(--err);stroke:var(--bg);stroke-width:1.5}
svg.chart .hlband{fill:var(--err);opacity:.08}
svg.chart .before{fill:var(--err)}svg.chart .after.fixed{fill:var(--ok)}
svg.chart .after{fill:var(--warn)}svg.chart .arrow{stroke:var(--fg);stroke-width:1.2}
svg.chart .legend rect{stroke:none}
"""


def _e(x: object) -> str:
    return escape(str(x), quote=True)


#: The largest finite float: a domain never reaches past it (a log axis' next decade would).
_MAX = sys.float_info.max
#: The smallest positive float: a log axis' domain never starts at 0.
_TINY = math.ulp(0.0)


def _frac(v: float, lo: float, hi: float) -> float:
    """Where ``v`` lies between ``lo`` (0) and ``hi`` (1), on finite numbers even when the
    distance between them is beyond the largest float (-1.7e308 to 1.7e308): halved, it is not."""
    span = hi - lo
    if math.isfinite(span):
        return (v - lo) / span
    return (v / 2 - lo / 2) / (hi / 2 - lo / 2)


def fmt(x: float) -> str:
    """A tick or tooltip figure: short, exact for decades (1e-06, 0.01, 1, 100)."""
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e4:
        return f"{x:.3g}"
    return f"{x:.0e}" if abs(round(math.log10(abs(x))) - math.log10(abs(x))) < 1e-9 else f"{x:.2g}"


def fmt_linear(x: float) -> str:
    """A linear-axis tick: whole numbers with thousands separators (steps), else three digits."""
    return f"{x:,.0f}" if abs(x) >= 1 and abs(x - round(x)) < 1e-9 else fmt(x)


@dataclass
class Axis:
    """One axis: its scale, its label (with the unit, e.g. ``||dL/dh|| (L2 norm)``) and domain.

    Unset ``lo``/``hi`` come from the data and reference lines drawn on it; a log axis widens
    them to whole decades.
    """

    label: str
    scale: Literal["linear", "log"] = "linear"
    lo: float | None = None
    hi: float | None = None
    tick_labels: dict[float, str] = field(default_factory=dict)  # replaces the numbers at ticks

    def fitted(self, values: Sequence[float]) -> tuple[float, float]:
        """The domain: the set bounds, else the data's (positive values only on a log axis)."""
        vals = [v for v in values if math.isfinite(v) and (self.scale == "linear" or v > 0)]
        lo = self.lo if self.lo is not None else min(vals, default=1.0 if self.scale == "log" else 0.0)
        hi = self.hi if self.hi is not None else max(vals, default=lo)
        if self.scale == "log":
            lo_d, hi_d = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
            if hi_d <= lo_d:
                lo_d, hi_d = lo_d - 1, hi_d + 1
            # Clamped to finite, positive floats: 1e309 overflows, 1e-324 is 0.
            return max(10.0**max(lo_d, -324), _TINY), 10.0**hi_d if hi_d <= 308 else _MAX
        if hi <= lo:
            # Widened by half the value either way (one unit around 0), never past the largest
            # float: a constant learning rate of 0.05 padded by a whole unit read as a flat line
            # at "0" among ticks of 0.5 (newuser4)
            pad = abs(lo) / 2 if lo != 0 else 1.0
            lo, hi = max(lo - pad, -_MAX), min(hi + pad, _MAX)
        return lo, hi

    def tick_texts(self, ticks: Sequence[float]) -> list[str]:
        """What the ticks say: the set labels, decades on a log axis, and on a linear one every
        tick with the same number of decimals (scientific for very small or large steps)."""
        if self.tick_labels:
            return [self.tick_labels.get(t, fmt(t)) for t in ticks]
        if self.scale == "log" or len(ticks) < 2:
            return [fmt(t) for t in ticks]
        step = abs(ticks[1] - ticks[0])
        if step < 1e-3 or step >= 1e6:
            return ["0" if t == 0 else f"{t:.1e}" for t in ticks]
        decimals = max(0, -math.floor(math.log10(step) + 1e-9))
        return [f"{t:,.{decimals}f}" for t in ticks]

    def ticks(self, lo: float, hi: float, most: int = 8) -> list[float]:
        """Decades on a log axis (every k-th when there are many), 1-2-5 steps on a linear one."""
        if self.tick_labels:
            return sorted(t for t in self.tick_labels if lo <= t <= hi)
        if self.scale == "log":
            a, b = round(math.log10(lo)), round(math.log10(hi))
            every = max(1, math.ceil((b - a) / most))
            return [10.0**d for d in range(a, b + 1, every)]
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            return [lo] if lo == hi and math.isfinite(lo) else []
        if not math.isfinite(hi - lo):
            # A range past the largest float (-1.7e308 to 1.7e308): ticks of the range scaled
            # down by a power of ten (still 1-2-5 steps), scaled back up.
            scale = 1e10
            return [min(max(t * scale, lo), hi) for t in self.ticks(lo / scale, hi / scale, most)]
        return self._linear(lo, hi, most, nice=False)[2]

    def nice_ticks(self, lo: float, hi: float, most: int = 8) -> tuple[float, float, list[float]]:
        """``(lo, hi, ticks)``: the domain with each end the data set (``lo``/``hi`` unset) widened
        to the tick before or after it, and the ticks, all inside it; an end set stays where it is.
        A learning rate of 0.01 then 0.4 on a short panel gets 0, 0.2, 0.4 on [0, 0.4], where it got
        one tick, 0.5, outside its domain [0.01, 0.4] and drawn over the panel's title (newuser11)."""
        if self.tick_labels or self.scale == "log":
            return lo, hi, self.ticks(lo, hi, most)
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo and math.isfinite(hi - lo)):
            return lo, hi, self.ticks(lo, hi, most)
        a, b, ticks = self._linear(lo, hi, most, nice_lo=self.lo is None, nice_hi=self.hi is None)
        return a, b, ticks

    @staticmethod
    def _linear(lo: float, hi: float, most: int, *, nice: bool = True, nice_lo: bool | None = None,
                nice_hi: bool | None = None) -> tuple[float, float, list[float]]:
        """1-2-5 ticks of ``[lo, hi]``: the smallest step that gives at most ``most`` of them (two
        at least, where the range allows), every one inside the domain; a ``nice`` end is moved out
        to the next multiple of the step, so it carries a tick of its own."""
        nice_lo = nice if nice_lo is None else nice_lo
        nice_hi = nice if nice_hi is None else nice_hi
        # (a short panel's 3 ticks aim at 2 intervals: aiming at 1, most - 2, put the one 1-2-5 step
        # at or past the whole range)
        raw = (hi - lo) / max(2, most - 2)
        if not raw > 0 or 10.0 ** math.floor(math.log10(raw)) == 0:
            return lo, hi, [lo, hi]  # a range of a few subnormal floats: its ends are the ticks
        mag = 10.0 ** math.floor(math.log10(raw))
        chosen: tuple[float, int, int] | None = None
        for m in (1, 2, 5, 10, 20, 50, 100):
            step = m * mag
            if step < raw * (1 - 1e-9):
                continue
            first = math.floor(lo / step + 1e-9) if nice_lo else math.ceil(lo / step - 1e-9)
            last = math.ceil(hi / step - 1e-9) if nice_hi else math.floor(hi / step + 1e-9)
            if last - first + 1 <= max(most, 2):
                chosen = (step, first, last)
                break
        if chosen is None:
            return lo, hi, [lo, hi]
        step, first, last = chosen
        ticks = [k * step for k in range(first, last + 1)]
        a = min(lo, ticks[0]) if nice_lo and ticks else lo
        b = max(hi, ticks[-1]) if nice_hi and ticks else hi
        # never a tick outside the domain (a rounding of k * step must not put one over the title)
        eps = 1e-9 * (b - a)
        return a, b, [min(max(t, a), b) for t in ticks if a - eps <= t <= b + eps]


Level = Literal["warn", "err"]


@dataclass(frozen=True)
class _Line:
    xs: list[float]
    ys: list[float | None]
    series: int
    markers: bool
    dashed: bool
    names: Sequence[str] | None


@dataclass(frozen=True)
class _Highlight:
    x: float
    y: float | None
    name: str
    note: str


@dataclass(frozen=True)
class _HLine:
    y: float
    label: str
    level: Level


@dataclass(frozen=True)
class _VLine:
    x: float
    label: str


@dataclass(frozen=True)
class _Shade:
    x0: float
    x1: float
    label: str


@dataclass(frozen=True)
class _Dumbbell:
    y: float
    before: float | None
    after: float | None
    fixed: bool
    name: str


_Mark = _Line | _Highlight | _HLine | _VLine | _Shade | _Dumbbell


#: The widest a character of the charts' 12 px sans-serif font is drawn (digits and most letters
#: are ~6.7 px; capitals up to ~8), for the boxes labels are kept apart by
CHAR_WIDTH = 7.5
#: A label's height above its baseline and below it (descenders), at 12 px
ASCENT, DESCENT = 12.0, 3.0
#: The height of one legend row
LEGEND_ROW = 16


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    """Whether two boxes ``(x0, y0, x1, y1)`` overlap."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _label_baseline(y: float, chars: int, end: float, top: float, bottom: float,
                    placed: list[tuple[float, float, float, float]]) -> float:
    """The baseline of a reference line's label, right-aligned at ``end``: just above the line
    at ``y``, else just below it, else stepped down (then up) from there, the first place inside the plot box
    (``top`` to ``bottom``) that overlaps no label in ``placed``; the box taken is added to ``placed``.
    Kept inside the box, a label cannot reach the legend above it (newuser11: "exploding error: 1e+04
    x reference" drawn over "mean-field prediction (tanh)" where its line ran near the top)."""
    width = CHAR_WIDTH * chars
    lowest, highest = bottom - DESCENT, top + ASCENT

    def box(base: float) -> tuple[float, float, float, float]:
        return end - width, base - ASCENT, end, base + DESCENT

    tries = [y - 4, y + ASCENT + 2]
    tries += [y + ASCENT + 2 + k * (ASCENT + DESCENT) for k in range(1, 40)]
    tries += [y - 4 - k * (ASCENT + DESCENT) for k in range(1, 40)]
    candidates = [b for b in tries if highest <= b <= lowest] or [min(max(y - 4, highest), lowest)]
    base = next((b for b in candidates if not any(_overlaps(box(b), p) for p in placed)), candidates[0])
    placed.append(box(base))
    return base


def _path(points: Sequence[tuple[float, float] | None]) -> str:
    """An SVG path through the points; None breaks the line."""
    out, pen = [], "M"
    for p in points:
        if p is None:
            pen = "M"
            continue
        out.append(f"{pen}{p[0]:.1f},{p[1]:.1f}")
        pen = "L"
    return " ".join(out)


class Chart:
    """A two-axis chart. Add marks, then :meth:`render` the ``<svg>``.

    ``css_class`` tags the ``<svg>`` (``chart`` always), ``data`` adds ``data-*`` attributes
    to it so tests and scripts can find a chart by what it shows.
    """

    def __init__(self, title: str, x: Axis, y: Axis, *, width: int = WIDTH, height: int = HEIGHT,
                 data: dict[str, str] | None = None, margin_left: int = MARGIN_LEFT) -> None:
        self.title, self.x, self.y, self.width, self.height = title, x, y, width, height
        self.margin_left = margin_left
        self.data = data or {}
        self._marks: list[_Mark] = []
        self._xs: list[float] = []
        self._ys: list[float] = []
        self._legend: list[tuple[str, str]] = []

    # --- marks -------------------------------------------------------------------------------

    def line(self, xs: Sequence[float], ys: Sequence[float | None], *, series: int = 0,
             label: str | None = None, markers: bool = False, dashed: bool = False,
             names: Sequence[str] | None = None) -> Chart:
        """A line through (x, y); a y of None (or <= 0 on a log axis) breaks it. ``names`` label
        each point's marker tooltip."""
        pts = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None and math.isfinite(y)]
        self._xs += [p[0] for p in pts]
        self._ys += [p[1] for p in pts]
        self._marks.append(_Line(list(xs), list(ys), series, markers, dashed, names))
        if label:
            self._legend.append((f"s{series % SERIES_CLASSES}" + (" pred" if dashed else ""), label))
        return self

    def highlight(self, x: float, y: float | None, name: str, note: str = "") -> Chart:
        """A point a finding names: a marked dot and a faint column band, tagged ``data-layer``."""
        self._marks.append(_Highlight(x, y, name, note))
        return self

    def hline(self, y: float, label: str, kind: Level = "warn") -> Chart:
        """A horizontal reference line (a threshold), labelled at its right end."""
        self._ys.append(y)
        self._marks.append(_HLine(y, label, kind))
        return self

    def shade(self, x0: float, x1: float, label: str) -> Chart:
        """A shaded x-range (a finding's steps)."""
        self._xs += [x0, x1]
        self._marks.append(_Shade(x0, x1, label))
        return self

    def dumbbell(self, y: float, before: float | None, after: float | None, *, fixed: bool,
                 name: str) -> Chart:
        """Before -> after of one row (a remedy) at category position ``y`` on a value x-axis."""
        self._xs += [v for v in (before, after) if v is not None]
        self._marks.append(_Dumbbell(y, before, after, fixed, name))
        return self

    def vline(self, x: float, label: str) -> Chart:
        """A vertical reference line (a threshold on the x-axis)."""
        self._xs.append(x)
        self._marks.append(_VLine(x, label))
        return self

    # --- render ------------------------------------------------------------------------------

    def render(self) -> str:
        """The ``<svg>`` element."""
        x0, x1 = self.x.fitted(self._xs)
        y0, y1 = self.y.fitted(self._ys)
        left, right = self.margin_left, self.width - MARGIN_RIGHT
        legend = self._legend_rows(left, right)
        top, bottom = MARGIN_TOP + LEGEND_ROW * len(legend), self.height - MARGIN_BOTTOM
        # the y ticks first: a linear domain the data set is widened to its outer ticks
        y0, y1, y_ticks = self.y.nice_ticks(y0, y1, most=max(3, (bottom - top) // 36))

        def px(v: float) -> float:
            if self.x.scale == "log":
                f = _frac(math.log10(v), math.log10(x0), math.log10(x1))
            else:
                f = _frac(v, x0, x1)
            return left + f * (right - left)

        def py(v: float) -> float:
            if self.y.scale == "log":
                f = _frac(math.log10(v), math.log10(y0), math.log10(y1))
            else:
                f = _frac(v, y0, y1)
            return bottom - f * (bottom - top)

        def ok_y(v: float | None) -> bool:
            return v is not None and math.isfinite(v) and (self.y.scale == "linear" or v > 0)

        def ok_x(v: float | None) -> bool:
            return v is not None and math.isfinite(v) and (self.x.scale == "linear" or v > 0)

        attrs = "".join(f' data-{_e(k)}="{_e(v)}"' for k, v in self.data.items())
        out = [
            f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {self.width} '
            f'{self.height}" role="img"{attrs}>',
            f"<title>{_e(self.title)}</title>",
            f'<text class="title" x="{left}" y="16">{_e(self.title)}</text>',
        ]
        # grid and ticks
        for t, text in zip(y_ticks, self.y.tick_texts(y_ticks), strict=True):
            y = py(t)
            out.append(f'<line class="grid" x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}"/>'
                       f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_e(text)}</text>')
        x_ticks = self.x.ticks(x0, x1)
        for t, text in zip(x_ticks, self.x.tick_texts(x_ticks), strict=True):
            x = px(t)
            out.append(f'<g class="tick"><line x1="{x:.1f}" x2="{x:.1f}" y1="{bottom}" '
                       f'y2="{bottom + 4}"/></g><text x="{x:.1f}" y="{bottom + 16}" '
                       f'text-anchor="middle">{_e(text)}</text>')
        out.append(f'<path class="axis" d="M{left},{top} V{bottom} H{right}" fill="none"/>')
        out.append(f'<text class="xlabel" x="{(left + right) / 2:.0f}" y="{self.height - 8}" '
                   f'text-anchor="middle">{_e(self.x.label)}</text>')
        out.append(f'<text class="ylabel" transform="translate(14 {(top + bottom) / 2:.0f}) '
                   f'rotate(-90)" text-anchor="middle">{_e(self.y.label)}</text>')
        placed: list[tuple[float, float, float, float]] = []  # the boxes of the labels drawn so far
        for m in self._marks:
            if isinstance(m, _Shade):
                xa, xb = px(max(m.x0, x0)), px(min(m.x1, x1))
                out.append(f'<rect class="shade" x="{xa:.1f}" y="{top}" width="{max(xb - xa, 2):.1f}" '
                           f'height="{bottom - top}"><title>{_e(m.label)}</title></rect>')
            elif isinstance(m, _HLine):
                if ok_y(m.y) and y0 <= m.y <= y1:
                    y = py(m.y)
                    base = _label_baseline(y, len(m.label), right - 4, top, bottom, placed)
                    out.append(f'<line class="ref {m.level}" x1="{left}" x2="{right}" y1="{y:.1f}" '
                               f'y2="{y:.1f}"/><text class="{m.level}" x="{right - 4}" '
                               f'y="{base:.1f}" text-anchor="end">{_e(m.label)}</text>')
            elif isinstance(m, _VLine):
                if ok_x(m.x):
                    x = px(m.x)
                    out.append(f'<line class="ref warn" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" '
                               f'y2="{bottom}"/><text class="warn" x="{x + 4:.1f}" y="{top + 10}">'
                               f"{_e(m.label)}</text>")
            elif isinstance(m, _Line):
                cls = f"s{m.series % SERIES_CLASSES}"
                pts = [(px(x), py(y)) if ok_y(y) and ok_x(x) and y is not None else None
                       for x, y in zip(m.xs, m.ys, strict=True)]
                out.append(f'<path class="line {cls}{" pred" if m.dashed else ""}" d="{_path(pts)}"/>')
                if m.markers:
                    for i, p in enumerate(pts):
                        if p is not None:
                            tip = f"{m.names[i]}: " if m.names else ""
                            out.append(f'<circle class="{cls}" cx="{p[0]:.1f}" cy="{p[1]:.1f}" '
                                       f'r="2.5"><title>{_e(tip)}{_e(fmt(m.ys[i] or 0.0))}</title>'
                                       "</circle>")
            elif isinstance(m, _Highlight):
                cx = px(m.x)
                out.append(f'<g class="hlmark" data-layer="{_e(m.name)}"><rect class="hlband" '
                           f'x="{cx - 5:.1f}" y="{top}" width="10" height="{bottom - top}"/>')
                if m.y is not None and ok_y(m.y):
                    out.append(f'<circle class="hl" cx="{cx:.1f}" cy="{py(m.y):.1f}" r="5">'
                               f"<title>{_e(m.name)}: {_e(fmt(m.y))} {_e(m.note)}</title></circle>")
                out.append("</g>")
            else:
                y = py(m.y)
                ends = [(v, c) for v, c in ((m.before, "before"), (m.after, "after"))
                        if v is not None and ok_x(v)]
                if len(ends) == 2:
                    out.append(f'<line class="arrow" x1="{px(ends[0][0]):.1f}" '
                               f'x2="{px(ends[1][0]):.1f}" y1="{y:.1f}" y2="{y:.1f}"/>')
                for v, c in ends:
                    extra = " fixed" if c == "after" and m.fixed else ""
                    out.append(f'<circle class="{c}{extra}" data-remedy="{_e(m.name)}" '
                               f'cx="{px(v):.1f}" cy="{y:.1f}" r="5"><title>{_e(m.name)} {c}: '
                               f"{_e(fmt(v))}</title></circle>")
        if legend:
            # its own rows above the plot box, where no tick or reference-line label is drawn
            out.append('<g class="legend">')
            for row, items in enumerate(legend):
                y = MARGIN_TOP + LEGEND_ROW * row
                for x, cls, label in items:
                    out.append(f'<line class="line {cls}" x1="{x}" x2="{x + 18}" y1="{y + 4}" '
                               f'y2="{y + 4}"/><text x="{x + 22}" y="{y + 8}">{_e(label)}</text>')
            out.append("</g>")
        out.append("</svg>")
        return "".join(out)

    def _legend_rows(self, left: float, right: float) -> list[list[tuple[float, str, str]]]:
        """The legend's entries as rows of ``(x, class, label)``, a new row where the next entry
        would pass the plot's right edge."""
        rows: list[list[tuple[float, str, str]]] = []
        x = right
        for cls, label in self._legend:
            width = 22 + CHAR_WIDTH * len(label)
            if not rows or (x + width > right and x > left):
                rows.append([])
                x = left
            rows[-1].append((x, cls, label))
            x += width + 8
        return rows


# A sequential palette (viridis' ends and middle), interpolated in RGB: readable in both themes.
_PALETTE = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))


def colour(f: float) -> str:
    """The palette's colour at ``f`` in [0, 1]."""
    f = min(1.0, max(0.0, f)) * (len(_PALETTE) - 1)
    i = min(int(f), len(_PALETTE) - 2)
    a, b, t = _PALETTE[i], _PALETTE[i + 1], f - i
    return "#" + "".join(f"{round(a[k] + (b[k] - a[k]) * t):02x}" for k in range(3))


#: The heatmap's colour of a cell whose values were NaN or Inf (outside the value scale's ramp)
NONFINITE_FILL = "#d81b60"
#: A cell whose values were all exactly 0 (no gradient): a log scale has no place for it.
ZERO_FILL = "#000000"
ZERO_LABEL = "0 (no gradient)"


def heatmap(title: str, rows: Sequence[str], columns: Sequence[tuple[float, float]],
            cells: Sequence[Sequence[float | None]], *, x_label: str, y_label: str,
            value_label: str, highlight: Sequence[str] = (),
            column_labels: Sequence[str] | None = None,
            notes: Sequence[Sequence[str | None]] | None = None) -> str:
    """Rows x columns of positive values on a log10 colour scale (empty cells left blank, NaN
    cells, where the values were NaN or Inf, in :data:`NONFINITE_FILL` with a legend swatch).

    ``columns`` are (start, end) x-ranges in order; ``highlight`` names rows a finding names;
    ``column_labels`` name each column in the cells' tooltips (default: its start, ``@ 4.9``);
    a cell of exactly 0 is drawn in :data:`ZERO_FILL` ("0 (no gradient)", with a legend swatch);
    ``notes`` add a sentence to a cell's tooltip.
    """
    labels = (list(column_labels) if column_labels is not None else
              [fmt_linear(start) for start, _ in columns])
    width, row_h = WIDTH, max(4, min(18, 360 // max(1, len(rows))))
    top, left, right = MARGIN_TOP + 18, 150, width - MARGIN_RIGHT
    height = top + row_h * len(rows) + MARGIN_BOTTOM
    logs = [math.log10(v) for row in cells for v in row if v is not None and v > 0 and math.isfinite(v)]
    lo, hi = (min(logs), max(logs)) if logs else (0.0, 1.0)
    span = hi - lo or 1.0
    cw = (right - left) / max(1, len(columns))
    out = [f'<svg class="chart heatmap" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
           f'role="img"><title>{_e(title)}</title>',
           f'<text class="title" x="{left}" y="16">{_e(title)}</text>']
    # colour legend: five swatches from the lowest to the highest value present
    for i in range(5):
        f = i / 4
        out.append(f'<rect x="{left + i * 64}" y="22" width="64" height="10" fill="{colour(f)}"/>'
                   f'<text x="{left + i * 64 + 32}" y="{top - 3}" text-anchor="middle" '
                   f'font-size="10">{_e(fmt(10 ** (lo + f * span)))}</text>')
    out.append(f'<text x="{left + 330}" y="31">{_e(value_label)} (log colour)</text>')
    if any(v is not None and math.isnan(v) for row in cells for v in row):
        out.append(f'<rect x="{right - 110}" y="22" width="14" height="10" fill="{NONFINITE_FILL}"/>'
                   f'<text x="{right - 92}" y="31">NaN / Inf</text>')
    if any(v == 0 for row in cells for v in row):
        out.append(f'<rect class="zero" x="{right - 110}" y="{top - 13}" width="14" height="10" '
                   f'fill="{ZERO_FILL}"/><text x="{right - 92}" y="{top - 4}">{_e(ZERO_LABEL)}</text>')
    for r, (name, row) in enumerate(zip(rows, cells, strict=True)):
        y = top + r * row_h
        hl = name in highlight
        label = name if len(name) <= 24 else "…" + name[-23:]
        cls = ' class="err"' if hl else ""
        out.append(f'<text x="{left - 4}" y="{y + row_h * 0.75:.1f}" text-anchor="end" '
                   f'font-size="{min(11, row_h)}"{cls}>{_e(label)}</text>')
        if hl:
            out.append(f'<g class="hlmark" data-layer="{_e(name)}"><rect class="hlband" x="0" '
                       f'y="{y}" width="{left}" height="{row_h}"/></g>')
        for c, v in enumerate(row):
            note = notes[r][c] if notes is not None else None
            extra = f" ({_e(note)})" if note else ""
            if v is not None and math.isnan(v):
                fill, text = NONFINITE_FILL, "NaN / Inf"
            elif v == 0:
                fill, text = ZERO_FILL, ZERO_LABEL
            elif v is None or not v > 0 or not math.isfinite(v):
                continue
            else:
                fill, text = colour((math.log10(v) - lo) / span), fmt(v)
            out.append(f'<rect x="{left + c * cw:.1f}" y="{y}" width="{cw + 0.3:.1f}" height="{row_h}" '
                       f'fill="{fill}"><title>{_e(name)} @ {_e(labels[c])}: '
                       f"{_e(text)}{extra}</title></rect>")
    bottom = top + row_h * len(rows)
    out.append(f'<path class="axis" d="M{left},{top} V{bottom} H{right}" fill="none"/>')
    if columns:
        first, last = columns[0][0], columns[-1][1]
        axis = Axis(x_label)
        ticks = axis.ticks(first, last, most=6) if last > first else [first]
        for t, text in zip(ticks, axis.tick_texts(ticks), strict=True):
            x = left + (t - first) / ((last - first) or 1.0) * (right - left)
            out.append(f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{_e(text)}</text>')
    out.append(f'<text class="xlabel" x="{(left + right) / 2:.0f}" y="{height - 8}" '
               f'text-anchor="middle">{_e(x_label)}</text>')
    out.append(f'<text class="ylabel" transform="translate(12 {(top + bottom) / 2:.0f}) rotate(-90)" '
               f'text-anchor="middle">{_e(y_label)}</text></svg>')
    return "".join(out)
