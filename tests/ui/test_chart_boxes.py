"""The report's charts measured in a real browser (Debian's Chromium via Playwright; skipped
without it, failed under CI as tests/ui/test_browser.py): in the HTML report of an architecture
check whose thresholds run near the top of its layer chart (a 16-layer tanh encoder at std 0.03,
newuser11 #5) and of a log whose learning rate jumps 0.01 -> 0.4 (newuser11 #4), no two of a
chart's texts overlap (title, legend entries, tick labels, reference-line labels: each box from
``getBBox``), and every y tick label lies within the plot box's height."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tests.ui.test_browser import browser, chromium  # noqa: F401  (the module's fixture)

SPEC = {
    "name": "tabular-encoder",
    "input": {"shape": [128]},
    "batch_size": 64,
    "seeds": 1,
    "loss": {"type": "cross_entropy", "classes": 5},
    "layers": [
        {"type": "linear", "out_features": 256, "activation": "tanh", "init": {"scheme": "normal", "std": 0.03},
         "repeat": 16},
        {"type": "linear", "out_features": 5},
    ],
}

# Every text's box in every chart, with its kind, and the plot box (the axis path's).
MEASURE = """() => [...document.querySelectorAll('svg.chart')].map(svg => {
  const axis = svg.querySelector('path.axis').getBBox();
  const texts = [...svg.querySelectorAll('text')].map(t => {
    const b = t.getBBox();
    const kind = t.classList.contains('title') ? 'title' : t.closest('g.legend') ? 'legend'
      : (t.classList.contains('warn') || t.classList.contains('err')) ? 'ref'
      : t.classList.contains('xlabel') || t.classList.contains('ylabel') ? 'label'
      : t.getAttribute('text-anchor') === 'end' ? 'ytick' : 'xtick';
    return {kind, text: t.textContent, x: b.x, y: b.y, w: b.width, h: b.height};
  });
  return {chart: svg.dataset.chart || '', plot: {x: axis.x, y: axis.y, w: axis.width, h: axis.height}, texts};
})"""


def _overlap(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]


def _check(charts: list[dict]) -> None:
    assert charts
    for c in charts:
        # (the x axis's own ticks and labels are outside these rules' reach: below the plot)
        texts = [t for t in c["texts"] if t["kind"] in ("title", "legend", "ref", "ytick") and t["text"].strip()]
        for i, a in enumerate(texts):
            for b in texts[i + 1:]:
                assert not _overlap(a, b), f"{c['chart']}: {a} overlaps {b}"
        plot = c["plot"]
        for t in texts:
            if t["kind"] == "ytick":
                middle = t["y"] + t["h"] / 2
                assert plot["y"] - 1 <= middle <= plot["y"] + plot["h"] + 1, f"{c['chart']}: tick {t} outside {plot}"
            if t["kind"] == "ref":
                assert plot["y"] - 1 <= t["y"] and t["y"] + t["h"] <= plot["y"] + plot["h"] + 1, (c["chart"], t)


def _measure(browser: Any, page_html: str) -> list[dict]:  # noqa: F811
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    try:
        page.set_content(page_html)
        return page.evaluate(MEASURE)
    finally:
        page.close()


def test_architecture_chart_texts_do_not_overlap(tmp_path: Path, browser: Any) -> None:  # noqa: F811
    from gradhealth.analysis.check import CheckOptions, run_architecture_check
    from gradhealth.analysis.plan import Limits
    from gradhealth.analysis.thresholds import Thresholds
    from gradhealth.report import ReportContext, render

    doc = run_architecture_check(SPEC, CheckOptions(Thresholds(), Limits(), verify=False))
    charts = _measure(browser, render("html", doc, ReportContext(source="encoder.yaml")))
    layer = [c for c in charts if c["chart"] == "layer-norms"]
    assert layer and {t["text"] for t in layer[0]["texts"] if t["kind"] == "legend"} >= {
        "mean-field prediction (tanh)"}
    assert any("exploding error" in t["text"] for t in layer[0]["texts"] if t["kind"] == "ref")
    _check(charts)


def test_log_chart_texts_do_not_overlap_and_the_rate_panel_is_ticked(tmp_path: Path, browser: Any) -> None:  # noqa: F811
    from gradhealth.logs.check import run_log_check
    from gradhealth.report import ReportContext, render

    lines = []
    for step in range(300):
        lr = 0.01 if step < 150 else 0.4
        norm = 10.0 if step < 150 else (10.0 * 30 ** (step - 149) if step < 162 else math.inf)
        lines += [{"step": step, "metric": "lr", "value": lr}, {"step": step, "metric": "grad_norm", "value": norm}]
    path = tmp_path / "gradients.jsonl"
    path.write_text("\n".join(json.dumps(x, allow_nan=True) for x in lines) + "\n")
    charts = _measure(browser, render("html", run_log_check(path), ReportContext(source=str(path), path=path)))
    panels = [c for c in charts if c["chart"] == "learning-rate"]
    assert panels
    for c in panels:
        ticks = sorted(float(t["text"]) for t in c["texts"] if t["kind"] == "ytick")
        assert len(ticks) >= 2 and ticks[0] <= 0.01 and ticks[-1] >= 0.4 and ticks[-1] < 0.8
    _check(charts)
