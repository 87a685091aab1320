"""newuser8 #3: the per-layer heatmap draws exact zeros as zeros, leaves empty bins empty and
labels columns that tile the steps (a dead ReLU layer's zeros were skipped and its last live value,
0.00479, carried over steps 76-134; labels "steps 5-6" then "11-14" left 7-10 in no cell)."""

from __future__ import annotations

import re

from gradhealth.core.document import Diagnosis, SeriesPoints
from gradhealth.report import ReportContext, render
from gradhealth.report.svg import ZERO_FILL, ZERO_LABEL


def _cells(points: list[SeriesPoints], layer: str) -> list[tuple[str, str, str]]:
    doc = Diagnosis(kind="logs", status="warning", summary="s", findings=[], points=points)
    page = render("html", doc, ReportContext())
    heat = page[page.index('class="chart heatmap"'):]
    heat = heat[:heat.index("</svg>")]
    return re.findall(rf'fill="([^"]+)"><title>{re.escape(layer)} @ ([^:<]+): ([^<]+)</title>', heat)


def test_a_layer_dead_from_step_36_is_drawn_as_zero_not_as_its_last_live_value():
    steps = [float(s) for s in range(120)]  # 120 steps, 60 columns of 2 steps: not downsampled
    dead = [0.005 if s < 36 else 0.0 for s in range(120)]
    live = [0.1] * 120
    points = [SeriesPoints(name="grad_norm/0.weight", role="layer_grad_norm", layer="0.weight",
                           steps=steps, values=dead),
              SeriesPoints(name="grad_norm/4.bias", role="layer_grad_norm", layer="4.bias",
                           steps=steps, values=live)]
    cells = _cells(points, "0.weight")
    assert len(cells) == 60
    assert [label for _, label, _ in cells[:3]] == ["steps 0-1", "steps 2-3", "steps 4-5"]
    for fill, label, text in cells:
        first = int(re.match(r"steps? (\d+)", label)[1])
        if first >= 36:  # every bin from step 36 on holds zeros only
            assert fill == ZERO_FILL and text == ZERO_LABEL, (label, text)
        else:
            assert text == "0.005", (label, text)


def test_a_bin_with_some_zeros_says_how_many_and_an_empty_bin_stays_empty():
    # a layer logged at steps 0-19 and 40-59 of a 0..59 run (not downsampled): steps 20-39 are empty
    steps = [float(s) for s in (*range(20), *range(40, 60))]
    values = [0.0 if s in (4, 40, 41) else 0.01 for s in (*range(20), *range(40, 60))]
    other = SeriesPoints(name="grad_norm/fc2", role="layer_grad_norm", layer="fc2",
                         steps=[float(s) for s in range(60)], values=[1.0] * 60)
    fc1 = SeriesPoints(name="grad_norm/fc1", role="layer_grad_norm", layer="fc1", steps=steps, values=values)
    cells = {label: (fill, text) for fill, label, text in _cells([fc1, other], "fc1")}
    assert len(cells) == 40  # 60 one-step columns; the 20 of steps 20-39 are drawn empty
    assert not any(re.fullmatch(r"step (2\d|3\d)", label) for label in cells)
    assert cells["step 4"] == (ZERO_FILL, ZERO_LABEL)
    assert cells["step 40"] == (ZERO_FILL, ZERO_LABEL)
    assert cells["step 5"][1] == "0.01"


def test_columns_of_a_downsampled_document_tile_the_steps():
    # kept steps of a 300-step run downsampled to its buckets' extremes: gaps where steps were dropped
    kept = sorted({0, 2, 5, 6, 11, 14, *range(20, 300, 7), 299})
    points = [SeriesPoints(name="grad_norm/0.weight", role="layer_grad_norm", layer="0.weight",
                           steps=[float(s) for s in kept], values=[0.01] * len(kept), downsampled=True)]
    labels = [label for _, label, _ in _cells(points, "0.weight")]
    assert len(labels) == 60
    covered: list[int] = []
    for label in labels:
        m = re.fullmatch(r"steps? (\d+)(?:-(\d+))?", label)
        assert m, label
        a = int(m[1])
        b = int(m[2]) if m[2] else a
        covered += range(a, b + 1)
    assert covered == list(range(300))  # every step in exactly one column, in order
