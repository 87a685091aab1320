"""newuser11 #4, #5: a chart's y ticks lie inside its plot box and its data's range (a short
learning-rate panel of 0.01 then 0.4 had one tick, 0.5, above the box and over its title), a series'
axis label does not say its name twice, and a reference line's label stays inside the plot box,
clear of the legend and of the other labels. Measured from the SVG's own geometry."""

from __future__ import annotations

import re

import pytest

from gradhealth.core.document import SeriesPoints
from gradhealth.report import html, svg


def _plot_box(out: str) -> tuple[float, float, float, float]:
    """``(left, top, right, bottom)`` of the plot, read from the axis path ``M{left},{top} V{bottom} H{right}``."""
    m = re.search(r'class="axis" d="M([0-9.]+),([0-9.]+) V([0-9.]+) H([0-9.]+)"', out)
    assert m is not None
    left, top, bottom, right = (float(x) for x in m.groups())
    return left, top, right, bottom


def _y_ticks(out: str) -> list[tuple[float, float]]:
    """``(value, y)`` of each y tick: its grid line's y and its label's number."""
    found = re.findall(r'<line class="grid" x1="[0-9.]+" x2="[0-9.]+" y1="([0-9.-]+)" y2="[0-9.-]+"/>'
                       r'<text x="[0-9.-]+" y="[0-9.-]+" text-anchor="end">([^<]*)</text>', out)
    return [(float(text.replace(",", "")), float(y)) for y, text in found]


def _box(x: float, y: float, text: str, anchor: str = "start") -> tuple[float, float, float, float]:
    """A 12 px label's box, at its widest (:data:`svg.CHAR_WIDTH` a character)."""
    w = svg.CHAR_WIDTH * len(text)
    x0 = x - w if anchor == "end" else x - w / 2 if anchor == "middle" else x
    return x0, y - svg.ASCENT, x0 + w, y + svg.DESCENT


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _lr_panel(values: list[float], height: int = 170) -> str:
    chart = svg.Chart("learning rate", svg.Axis("step", lo=0, hi=len(values) - 1),
                      html._log_axis(values, "learning rate"), height=height)
    chart.line(list(range(len(values))), values, series=1)
    return chart.render()


@pytest.mark.parametrize("values", [
    [0.01] * 150 + [0.4] * 150,          # newuser11: the lr raised 40x at step 150
    [0.05] * 100,                        # a constant rate
    [3e-4] * 50 + [3e-5] * 50,           # a step decay
    [0.1 - 0.0009 * i for i in range(100)],
    [2.31, 2.32, 2.305, 2.33],           # a narrow range far from 0
])
@pytest.mark.parametrize("height", [170, 300])
def test_y_ticks_lie_inside_the_plot_box_and_cover_the_data(values: list[float], height: int) -> None:
    out = _lr_panel(values, height)
    left, top, right, bottom = _plot_box(out)
    ticks = _y_ticks(out)
    assert len(ticks) >= 2, out
    assert all(top - 0.05 <= y <= bottom + 0.05 for _, y in ticks)
    # on the linear axis the ticks bracket the data: a tick at or under its lowest value and one
    # at or over its highest (0 and 0.4 for the 0.01 -> 0.4 rate), none farther out than the data
    # needs (the lowest no more than one tick step under it, the highest likewise)
    vals = sorted(v for v, _ in ticks)
    step = vals[1] - vals[0]
    assert vals[0] <= min(values) + 1e-12 and vals[-1] >= max(values) - 1e-12
    if max(values) > min(values):   # (a constant is padded by half its value either way)
        assert vals[0] > min(values) - step - 1e-12 and vals[-1] < max(values) + step + 1e-12
    # and no tick label reaches the title's box
    title = re.search(r'<text class="title" x="([0-9.]+)" y="([0-9.]+)">([^<]*)</text>', out)
    assert title is not None
    tbox = _box(float(title[1]), float(title[2]), title[3])
    for v, y in ticks:
        assert not _overlap(_box(left - 6, y + 4, svg.fmt(v), "end"), tbox)


@pytest.mark.parametrize(("lo", "hi", "most"), [
    (0.01, 0.4, 3), (0.0, 1.0, 3), (1e-9, 3e-9, 3), (-5.0, 7.0, 4), (123.0, 124.0, 6), (0.1, 0.10001, 3),
    (-1e6, -999_000.0, 5),
])
def test_linear_ticks_stay_within_their_set_domain(lo: float, hi: float, most: int) -> None:
    ticks = svg.Axis("x", lo=lo, hi=hi).ticks(lo, hi, most)
    assert ticks and all(lo <= t <= hi for t in ticks) and len(ticks) <= max(most, 2)


def test_a_series_label_names_its_role_only_where_the_name_does_not() -> None:
    def label(name: str, role: str) -> str:
        return html._series_label(SeriesPoints(name=name, role=role, steps=[0.0], values=[1.0]))  # type: ignore[arg-type]
    assert label("grad_norm", "grad_norm") == "grad_norm"
    assert label("loss", "loss") == "loss"
    assert label("train/loss", "loss") == "train/loss (loss)"


def test_reference_labels_stay_in_the_plot_clear_of_the_legend_and_each_other() -> None:
    # the architecture report's layer chart: three legend entries, thresholds near the top
    chart = svg.Chart("Gradient norm per layer (forward order)", svg.Axis("layer index"),
                      svg.Axis("gradient norm (L2, log scale)", "log"))
    xs = list(range(17))
    chart.line(xs, [1e-6 * 2.1 ** i for i in xs], series=0, label="||dL/dh|| output", markers=True)
    chart.line(xs, [1e-5 * 1.9 ** i for i in xs], series=1, label="||dL/dW|| weights")
    chart.line(xs, [1.1e-6 * 2.1 ** i for i in xs], series=2, dashed=True, label="mean-field prediction (tanh)")
    ref = 0.0649
    for factor, what, level in ((0.01, "vanishing", "warn"), (1e-4, "vanishing error", "err"),
                                (100, "exploding", "warn"), (1e4, "exploding error", "err"),
                                (1.2e4, "another line close by", "err")):
        chart.hline(ref * factor, f"{what}: {svg.fmt(factor)} × reference", level)  # type: ignore[arg-type]
    out = chart.render()
    left, top, right, bottom = _plot_box(out)
    legend = re.search(r'<g class="legend">(.*?)</g>', out)
    assert legend is not None
    legend_boxes = [_box(float(x), float(y), t) for x, y, t in
                    re.findall(r'<text x="([0-9.]+)" y="([0-9.]+)">([^<]*)</text>', legend[1])]
    assert len(legend_boxes) == 3 and all(b[2] <= right for b in legend_boxes)
    labels = [_box(float(x), float(y), t.replace("&#x27;", "'"), "end") for x, y, t in
              re.findall(r'<text class="(?:warn|err)" x="([0-9.]+)" y="([0-9.]+)" text-anchor="end">([^<]*)</text>', out)]
    assert len(labels) == 5
    for i, b in enumerate(labels):
        assert top <= b[1] and b[3] <= bottom, b
        assert not any(_overlap(b, lb) for lb in legend_boxes)
        assert not any(_overlap(b, other) for other in labels[i + 1:])
