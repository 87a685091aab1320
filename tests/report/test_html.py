"""The HTML report read back with html.parser: self-contained (no external URL anywhere), every
chart an inline <svg> with labelled axes, the highlighted layers exactly the ones the findings
name, the chart geometry where theory says it must be, and small for a 100-layer diagnosis."""

from __future__ import annotations

import html
import math
import re
from html.parser import HTMLParser

import numpy as np

from gradhealth.core.document import (
    Diagnosis,
    Evidence,
    Finding,
    LayerReport,
    SeriesPoints,
    TheoryStretch,
)
from gradhealth.logs.check import MAX_POINTS, chart_points, downsample
from gradhealth.logs.series import RunLog, Series
from gradhealth.report import ReportContext, render
from gradhealth.report.html import layer_norm_chart
from gradhealth.report.svg import Axis

from .helpers import document, finding, remedy, spec_text

URL_ATTRS = {"src", "href", "xlink:href", "action", "poster", "data"}


class Page(HTMLParser):
    """What the tests read: URLs in attributes, every <svg> with its texts, marks and data-*."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self.scripts = 0
        self.svgs: list[dict] = []
        self.styles: list[str] = []
        self._svg: dict | None = None
        self._text_class: str | None = None
        self._in_style = False
        self.article_ids: list[str] = []
        self.h3_codes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.urls += [v for k, v in attrs if k in URL_ATTRS and v is not None]
        self.scripts += tag == "script"
        self._in_style = tag == "style"
        if tag == "article":
            self.article_ids.append(a.get("id") or "")
        if tag == "svg":
            self._svg = {"attrs": a, "xlabel": "", "ylabel": "", "layers": [], "circles": [],
                         "paths": [], "remedies": [], "title": ""}
            self.svgs.append(self._svg)
        elif self._svg is not None:
            if tag == "text":
                self._text_class = a.get("class") or ""
            if tag == "g" and "data-layer" in a:
                self._svg["layers"].append(a["data-layer"])
            if tag == "circle":
                self._svg["circles"].append(a)
                if "data-remedy" in a:
                    self._svg["remedies"].append(a)
            if tag == "path":
                self._svg["paths"].append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._svg = None
        if tag == "text":
            self._text_class = None
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)
        if self._svg is not None and self._text_class in ("xlabel", "ylabel"):
            self._svg[self._text_class] += data


def parse(page: str) -> Page:
    p = Page()
    p.feed(page)
    p.close()
    return p


def assert_self_contained(page: str) -> Page:
    p = parse(page)
    assert p.scripts == 0
    # Only in-page anchors and data: URIs; the SVG namespace is an identifier, never fetched.
    assert all(u.startswith(("#", "data:")) for u in p.urls), p.urls
    css = "".join(p.styles)
    assert "url(" not in css and "@import" not in css
    without_ns = page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert not re.search(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}", without_ns.split("<body>")[0])
    assert "prefers-color-scheme:dark" in css and "viewport" in page
    for s in p.svgs:
        assert s["xlabel"].strip() and s["ylabel"].strip(), s["attrs"]
    return p


def charts(p: Page, kind: str) -> list[dict]:
    return [s for s in p.svgs if s["attrs"].get("data-chart") == kind]


def path_points(d: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"[ML](-?[\d.]+),(-?[\d.]+)", d)]


# --- a real architecture check and a real log check ---------------------------------------------


def test_architecture_report(arch_doc):
    page = render("html", arch_doc, ReportContext(source="examples/deep_sigmoid_mlp.yaml"))
    p = assert_self_contained(page)
    (norms,) = charts(p, "layer-norms")
    named = {n for f in arch_doc.findings for n in f.evidence.layers or []}
    assert named and set(norms["layers"]) == named
    # Findings first, most severe first; every remedy's snippet is on the page.
    assert page.index('id="findings"') < page.index('id="charts"') < page.index('id="tables"')
    for f in arch_doc.findings:
        for r in f.remedies:
            assert html.escape(r.snippet.splitlines()[0].strip()) in page
    # The before/after chart has one before and one after mark per verified remedy.
    (rem,) = charts(p, "remedies")
    verified = [r for r in arch_doc.findings[0].remedies if r.verified]
    assert sorted(c["data-remedy"] for c in rem["remedies"]) == sorted(
        [r.id for r in verified] * 2
    )
    fixed = {c["data-remedy"] for c in rem["remedies"] if "fixed" in c["class"].split()}
    assert fixed == {r.id for r in verified if r.verified.fixed}
    assert charts(p, "fractions")  # sigmoid layers report a saturated fraction


def test_a_spec_without_a_file_name_is_placed_by_its_line(arch_doc):
    # Over HTTP a spec has no file name: the card says the line, never "None:<line>".
    page = render("html", arch_doc, ReportContext(text=spec_text()))
    wheres = re.findall(r"Where: <code>([^<]*)</code>", page)
    assert wheres and all(w.startswith("line ") for w in wheres), wheres
    assert "None" not in "".join(wheres)


def test_log_report(log_doc):
    page = render("html", log_doc, ReportContext(source="main.log"))
    p = assert_self_contained(page)
    (spike,) = [f for f in log_doc.findings if f.code == "gradient_spike"]
    series = charts(p, "series")
    assert [s["attrs"]["data-series"] for s in series] == [spike.evidence.metric]
    assert charts(p, "learning-rate")
    # The document carries the points the chart draws: bounded, and the spikes survive.
    norm = next(s for s in log_doc.points if s.name == spike.evidence.metric)
    assert len(norm.steps) <= MAX_POINTS and norm.downsampled
    for step in spike.evidence.spike_steps:
        assert float(step) in norm.steps
    assert {s.role for s in log_doc.points} == {"grad_norm", "learning_rate"}


# --- constructed documents: geometry against theory, size --------------------------------------


def _layers(n: int, per_layer: float) -> list[LayerReport]:
    return [
        LayerReport(name=f"layers[0].linear#{i}", pointer="/layers/0", type="linear",
                    activation="tanh", grad_norm=per_layer ** (n - 1 - i),
                    output_grad_norm=per_layer ** (n - 1 - i), saturated_fraction=0.1,
                    dead_fraction=None)
        for i in range(n)
    ]


def test_mean_field_line_is_geometric_and_anchored_at_the_stretch_end():
    n, per = 12, 0.5
    layers = _layers(n, per)
    stretch = TheoryStretch(
        layers=[layers[0].name, layers[-1].name], depth=n, activation="tanh", sigma_w2=1.0,
        sigma_b2=0.0, q_star=0.0, chi1=per**2, phase="ordered",
        predicted_ratio=per ** (n - 1), measured_ratio=per ** (n - 1), log10_error=0.0,
    )
    doc = document([], layers=layers, theory={"stretches": [stretch]})
    p = parse(layer_norm_chart(doc) or "")
    (svg,) = p.svgs
    measured, _weights, predicted = (
        path_points(x["d"]) for x in svg["paths"] if "line" in x["class"].split()
    )
    # Both lines pass through the same pixels: the prediction equals the data here, and a log
    # axis turns a geometric sequence into equally spaced heights.
    assert len(predicted) == n
    for (xa, ya), (xb, yb) in zip(measured, predicted, strict=True):
        assert abs(xa - xb) < 0.11 and abs(ya - yb) < 0.11
    steps = np.diff([y for _, y in predicted])
    assert np.allclose(steps, steps[0], atol=0.15) and steps[0] < 0  # rising towards the output


def test_log_axis_spans_whole_decades():
    lo, hi = Axis("x", "log").fitted([3e-7, 2.0])
    assert (lo, hi) == (1e-7, 10.0)
    assert Axis("x", "log").ticks(lo, hi, most=9) == [10.0**d for d in range(-7, 2)]


def test_highlights_are_the_layers_the_findings_name():
    layers = _layers(30, 0.7)
    named = [layers[3].name, layers[17].name]
    doc = document(
        [finding("vanishing_gradient", "error", layers=named, remedies=[remedy("batch_norm")]),
         finding("saturation", "warning", layers=[layers[5].name])],
        layers=layers,
    )
    p = assert_self_contained(render("html", doc, ReportContext()))
    (norms,) = charts(p, "layer-norms")
    assert set(norms["layers"]) == set(named) | {layers[5].name}
    (fractions,) = charts(p, "fractions")
    assert fractions["layers"] == [layers[5].name]
    # Findings sorted by severity: the error's card comes first.
    assert p.article_ids == ["finding-1", "finding-2"]
    page = render("html", doc, ReportContext())
    assert page.index("vanishing_gradient</code>") < page.index("saturation</code>")


def test_a_100_layer_diagnosis_is_well_under_a_megabyte():
    layers = _layers(100, 0.9)
    findings = [
        finding("vanishing_gradient", "error", layers=[layers[0].name, layers[-1].name],
                remedies=[remedy(r) for r in ("relu_family_activation", "batch_norm", "layer_norm",
                                              "residual_connections", "xavier_init")]),
        finding("saturation", "warning", layers=[x.name for x in layers[:40]]),
    ]
    time_steps = [{"layer": "layers[1].rnn", "t": t, "output_grad_norm": 0.8**t} for t in range(200)]
    doc = document(findings, layers=layers, time_steps=time_steps)
    page = render("html", doc, ReportContext(source="big.yaml"))
    assert len(page.encode()) < 1_000_000
    p = assert_self_contained(page)
    assert {s["attrs"].get("data-chart") for s in p.svgs} >= {
        "layer-norms", "remedies", "time-steps", "fractions"}


def test_log_points_are_bounded_and_drawn_with_the_steps_shaded():
    steps = np.arange(100_000)
    loss = np.full(len(steps), 2.0)
    loss[70_001] = 50.0
    loss[80_000] = np.nan
    layer_runs = [Series(f"grad_norm/layer{i}", "layer_grad_norm", steps, np.full(len(steps), 10.0**-i),
                         layer=f"layer{i}") for i in range(150)]
    run = RunLog("csv", "run.csv", series=[
        Series("train/loss", "loss", steps, loss),
        Series("lr", "learning_rate", steps, np.linspace(1e-3, 1e-5, len(steps))),
        Series("val/acc", "metric", steps, np.ones(len(steps))),
        *layer_runs,
    ])
    f = Finding(code="loss_spike", severity="warning", summary="spike", explanation="why",
                evidence=Evidence(metric="train/loss", steps=[70_001, 70_001], layers=["layer3"]))
    points = chart_points(run, [f])
    by = {p.name: p for p in points}
    assert "val/acc" not in by  # neither named nor the learning rate nor a layer norm
    assert len(by["train/loss"].steps) <= MAX_POINTS and by["train/loss"].downsampled
    assert 70_001.0 in by["train/loss"].steps  # the one-step spike survives
    i = by["train/loss"].steps.index(80_000.0)  # so does the NaN, as null
    assert by["train/loss"].values[i] is None
    assert sum(p.role == "layer_grad_norm" for p in points) == 128
    doc = Diagnosis(kind="logs", status="warning", summary="s", findings=[f], points=points)
    assert '"values":[' in doc.model_dump_json()  # serialisable (no NaN in JSON)
    page = render("html", doc, ReportContext())
    p = assert_self_contained(page)
    (s,) = charts(p, "series")
    assert s["attrs"]["data-series"] == "train/loss"
    heat = [x for x in p.svgs if "heatmap" in x["attrs"]["class"]]
    assert len(heat) == 1 and heat[0]["layers"] == ["layer3"]
    assert len(page.encode()) < 1_000_000


def test_downsample_keeps_extremes_of_every_bucket():
    rng = np.random.default_rng(0)
    v = rng.lognormal(size=10_000)
    idx, cut = downsample(v, 300)
    assert cut and len(idx) <= 300 and np.all(np.diff(idx) > 0)
    assert v.argmax() in idx and v.argmin() in idx
    small, cut = downsample(v[:10], 300)
    assert not cut and list(small) == list(range(10))


def test_series_points_serialise_nonfinite_as_null():
    sp = SeriesPoints(name="x", role="loss", steps=[0, 1], values=[math.inf, 1.0])
    assert sp.model_dump()["values"] == [None, 1.0]
