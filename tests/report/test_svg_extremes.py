"""Charts of values at the ends of the float range: a log whose loss swings from -1.7e308 to
1.7e308 is drawn (the axis works on finite numbers), and a chart that cannot be drawn at all is
left out of the HTML report with a note instead of failing the whole page."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import pytest

from gradhealth.core.document import Diagnosis
from gradhealth.report import ReportContext, html, render, svg

HUGE = sys.float_info.max


def _numbers(svg_text: str) -> list[float]:
    """Every coordinate the picture's marks use."""
    coords = re.findall(r'(?:x|y|x1|x2|y1|y2|cx|cy)="(-?[0-9.e+-]+)"', svg_text)
    coords += [c for d in re.findall(r' d="([^"]*)"', svg_text) for c in re.findall(r"-?[0-9.]+", d)]
    return [float(c) for c in coords]


@pytest.mark.parametrize(("lo", "hi"), [(-1.7e308, 1.7e308), (-HUGE, HUGE), (1e308, 1e308), (0.0, 5e-324)])
def test_a_linear_axis_ticks_any_finite_range_inside_it(lo: float, hi: float) -> None:
    axis = svg.Axis("loss")
    a, b = axis.fitted([lo, hi])
    assert math.isfinite(a) and math.isfinite(b) and a < b
    ticks = axis.ticks(a, b)
    assert ticks and all(math.isfinite(t) and a <= t <= b for t in ticks)
    assert len(axis.tick_texts(ticks)) == len(ticks)


def test_huge_values_of_both_signs_are_charted_inside_the_plot() -> None:
    chart = svg.Chart("loss", svg.Axis("step"), svg.Axis("loss"))
    chart.line([1, 2, 3, 4, 5], [1.0, -1.7e308, 1.7e308, 5.0, 3.0])
    out = chart.render()
    values = _numbers(out)
    assert values and all(math.isfinite(v) and -1 <= v <= svg.WIDTH + 1 for v in values)
    # the line goes from the bottom (-1.7e308) to the top (1.7e308) of the plot
    ys = [float(y) for y in re.findall(r",(-?[0-9.]+)", re.search(r'class="line s0" d="([^"]*)"', out)[1])]
    assert max(ys) - min(ys) > 0.8 * (svg.HEIGHT - svg.MARGIN_TOP - svg.MARGIN_BOTTOM)


def test_a_log_axis_up_to_the_largest_float_is_drawn() -> None:
    chart = svg.Chart("norm", svg.Axis("step"), svg.Axis("norm", "log"))
    chart.line([1, 2, 3], [5e-324, 1.0, HUGE])
    out = chart.render()
    assert all(math.isfinite(v) for v in _numbers(out))


def test_the_html_report_of_a_log_with_huge_values_of_both_signs(tmp_path: Path) -> None:
    from gradhealth.logs.check import run_log_check

    log = tmp_path / "huge.csv"
    log.write_text("step,loss\n1,1.0\n2,-1.7e308\n3,1.7e308\n4,5\n5,3\n")
    page = render("html", run_log_check(log), ReportContext(source="huge.csv"))
    assert 'data-chart="series"' in page and "chart-skipped" not in page


def test_a_chart_that_cannot_be_drawn_is_left_out_with_a_note(
        arch_doc: Diagnosis, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> str:
        raise OverflowError("cannot convert float infinity to integer")

    monkeypatch.setattr(html, "layer_norm_chart", broken)
    page = render("html", arch_doc, ReportContext(source="spec"))
    assert 'class="warning chart-skipped"' in page and "OverflowError" in page
    assert 'data-chart="fractions"' in page or 'data-chart="remedies"' in page  # the other charts stay
    assert page.rstrip().endswith("</html>") and 'id="tables"' in page


def test_a_constant_series_is_shown_at_its_value_not_among_unit_ticks() -> None:
    # newuser4: a constant learning rate of 0.05 was padded by a whole unit, and its flat line sat
    # among ticks of 0.5 as if at "0"
    axis = svg.Axis("learning rate")
    lo, hi = axis.fitted([0.05, 0.05, 0.05])
    texts = axis.tick_texts(axis.ticks(lo, hi))
    assert lo < 0.05 < hi and hi - lo < 0.06 and "0.05" in texts and "0" not in texts
    assert axis.fitted([0.0]) == (-1.0, 1.0)


def test_nan_cells_of_the_heatmap_have_a_colour_of_their_own() -> None:
    # newuser4: the all-NaN steps of a blown-up run were blank, the same as "no data"
    out = svg.heatmap("g", ["fc1", "fc2"], [(0, 10), (10, 20), (20, 30)],
                      [[1.0, math.nan, None], [2.0, 3.0, math.nan]], x_label="step", y_label="layer",
                      value_label="norm")
    assert out.count(f'fill="{svg.NONFINITE_FILL}"') == 3  # the two cells and the legend's swatch
    assert "fc1 @ 10: NaN / Inf" in out and "fc2 @ 20: NaN / Inf" in out
    clean = svg.heatmap("g", ["fc1"], [(0, 10)], [[1.0]], x_label="step", y_label="layer", value_label="n")
    assert svg.NONFINITE_FILL not in clean
