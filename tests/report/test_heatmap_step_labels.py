"""The per-layer heatmap's cells name the steps the run logged in them (newuser6 P15: a run logged
every 2 steps had cells titled ``0.weight @ 4.9``, a bin edge no step was logged at)."""

from __future__ import annotations

import re

from gradhealth.core.document import Diagnosis, SeriesPoints
from gradhealth.report import ReportContext, render


def _titles(steps: list[float]) -> list[str]:
    points = [SeriesPoints(name=f"grad_norm/{n}", role="layer_grad_norm", layer=n, steps=steps,
                           values=[1.0 + 0.01 * i for i in range(len(steps))]) for n in ("0.weight", "2.weight")]
    doc = Diagnosis(kind="logs", status="healthy", summary="s", findings=[], points=points)
    page = render("html", doc, ReportContext())
    heat = page[page.index('class="chart heatmap"'):]
    heat = heat[:heat.index("</svg>")]
    return re.findall(r"<title>0\.weight @ ([^:<]+):", heat)


def test_integer_steps_are_labelled_with_the_steps_logged_in_each_cell():
    logged = list(range(0, 296, 2))  # 0, 2, ..., 294: 148 points in 60 columns
    labels = _titles([float(s) for s in logged])
    assert len(labels) == 60
    named: list[int] = []
    for label in labels:
        m = re.fullmatch(r"steps? (\d+)(?:-(\d+))?", label)
        assert m, label  # whole steps only, never "4.9"
        named += [int(x) for x in m.groups() if x is not None]
    assert set(named) <= set(logged)  # each a step the run logged
    assert named[0] == 0 and named[-1] == 294
    assert labels[0] == "steps 0-4"  # the first bin is 294 / 60 = 4.9 steps wide: steps 0, 2 and 4
    assert labels[1] == "steps 6-8"  # [4.9, 9.8)


def test_fractional_steps_keep_their_digits():
    labels = _titles([0.5 * i for i in range(7)])  # epochs 0, 0.5, ..., 3
    assert labels[0] == "step 0" and labels[-1] == "step 3"
    assert "step 0.5" in labels
