"""Baselines on constructed pairs of documents: new, gone, worse (severity, a figure past the
tolerance in decades or fraction, a named layer that moved), unchanged; regressions count only
warning and above; the CLI records the section and --fail-on new exits on regressions only."""

from __future__ import annotations

import json
import math

import pytest

from gradhealth.cli import exit_code
from gradhealth.cli_report import DEFAULT_DECADES as CLI_DECADES
from gradhealth.cli_report import DEFAULT_FRACTION_STEP as CLI_STEP
from gradhealth.core.baseline import DEFAULT_DECADES, DEFAULT_FRACTION_STEP, compare
from gradhealth.core.document import Diagnosis, Evidence, Finding, LayerReport, status_of
from gradhealth.report import render

from .helpers import ci_env, exploding_csv


def f(code, severity="warning", *, value=None, threshold=None, metric=None, layers=None):
    return Finding(code=code, severity=severity, summary=f"{code} {value}", explanation="why",
                   evidence=Evidence(metric=metric, value=value, threshold=threshold, layers=layers))


def doc(findings, layers=(), kind="architecture"):
    return Diagnosis(kind=kind, status=status_of(findings), summary="s", findings=findings,
                     layers=list(layers))


def layer(name, out, dead=None):
    return LayerReport(name=name, pointer="/layers/0", type="linear", output_grad_norm=out,
                       dead_fraction=dead)


def changes(b):
    return [(e.change, e.code) for e in b.findings]


def test_cli_defaults_are_the_modules():
    assert (CLI_DECADES, CLI_STEP) == (DEFAULT_DECADES, DEFAULT_FRACTION_STEP) == (0.5, 0.1)


def test_same_document_is_all_unchanged():
    d = doc([f("vanishing_gradient", value=1e-4, threshold=1e-2, metric="ratio")])
    b = compare(d, d.model_copy(deep=True))
    assert changes(b) == [("unchanged", "vanishing_gradient")]
    assert (b.new, b.gone, b.worse, b.unchanged, b.regressions) == (0, 0, 0, 1, 0)


def test_new_and_gone():
    before = doc([f("saturation")])
    now = doc([f("dead_units", "error")])
    b = compare(now, before)
    assert changes(b) == [("new", "dead_units"), ("gone", "saturation")]
    assert b.regressions == 1


def test_a_new_info_finding_is_not_a_regression():
    b = compare(doc([f("gradient_spike", "info")]), doc([]))
    assert b.new == 1 and b.regressions == 0


def test_severity_up_is_worse():
    b = compare(doc([f("saturation", "error")]), doc([f("saturation", "warning")]))
    assert changes(b) == [("worse", "saturation")]
    assert b.findings[0].reasons == ["severity warning -> error"]


@pytest.mark.parametrize("before, after, worse", [
    (1e-4, 1e-4 * 10 ** -0.6, True),   # 0.6 decades further below the threshold
    (1e-4, 1e-4 * 10 ** -0.4, False),  # within half a decade
    (1e-4, 1e-3, False),               # better: towards the threshold
])
def test_a_ratio_below_its_threshold_is_worse_further_down(before, after, worse):
    mk = lambda v: doc([f("vanishing_gradient", value=v, threshold=1e-2, metric="ratio")])  # noqa: E731
    b = compare(mk(after), mk(before))
    assert (b.worse == 1) is worse
    if worse:
        assert "0.60 decades" in b.findings[0].reasons[0]


def test_a_ratio_above_its_threshold_is_worse_further_up_and_the_tolerance_is_an_option():
    mk = lambda v: doc([f("exploding_gradient", value=v, threshold=1e2, metric="ratio")])  # noqa: E731
    assert compare(mk(1e5), mk(1e4)).worse == 1
    assert compare(mk(1e5), mk(1e4), decades=1.5).worse == 0
    assert compare(mk(1e3), mk(1e4)).worse == 0


def test_a_fraction_up_by_more_than_the_step_is_worse():
    mk = lambda v: doc([f("dead_units", value=v, threshold=0.6, metric="max_dead_fraction")])  # noqa: E731
    assert compare(mk(0.75), mk(0.62)).worse == 1
    assert compare(mk(0.70), mk(0.62)).worse == 0


def test_a_named_layer_that_moved_makes_its_finding_worse():
    # Layer ratio = ||dL/dh|| over the last layer's: 1e-3 -> 1e-4 is a decade further from 1.
    before = doc([f("vanishing_gradient", layers=["l0", "l2"])],
                 [layer("l0", 1e-3), layer("l1", 1e-2, dead=0.1), layer("l2", 1.0)])
    now = doc([f("vanishing_gradient", layers=["l0", "l2"])],
              [layer("l0", 1e-4), layer("l1", 1e-2, dead=0.5), layer("l2", 1.0)])
    b = compare(now, before)
    assert changes(b) == [("worse", "vanishing_gradient")]
    moved = {(d.layer, d.metric) for d in b.layers}
    assert moved == {("l0", "log10_grad_ratio"), ("l1", "dead_fraction")}
    drift = next(d for d in b.layers if d.layer == "l0")
    assert math.isclose(drift.before, -3.0) and math.isclose(drift.after, -4.0)
    assert b.findings[0].reasons == ["l0: log10_grad_ratio -3 -> -4"]  # l1 is not named by it


def test_log_findings_are_matched_by_series():
    before = doc([f("exploding_gradient", "error", metric="grad_norm")], kind="logs")
    now = doc([f("exploding_gradient", "error", metric="grad_norm/encoder")], kind="logs")
    assert changes(compare(now, before)) == [("new", "exploding_gradient"), ("gone", "exploding_gradient")]


def test_fail_on_new_exits_only_on_regressions():
    known = doc([f("saturation", "error")])
    assert exit_code(known, "error") == 1
    compared = known.model_copy(update={"baseline": compare(known, known)})
    assert exit_code(compared, "new") == 0
    worse = doc([f("saturation", "error"), f("dead_units", "warning")])
    assert exit_code(worse.model_copy(update={"baseline": compare(worse, known)}), "new") == 1
    assert exit_code(known, "new") == 1  # no baseline: every finding is new


def test_the_reports_show_the_comparison():
    now = doc([f("dead_units", "error")])
    b = now.model_copy(update={"baseline": compare(now, doc([f("saturation")]), source="main.json")})
    text = render("text", b)
    assert "compared with the baseline main.json: 1 new, 0 worse, 1 gone" in text
    assert "new   dead_units (error)" in text
    md = render("markdown", b)
    assert "### Compared with the baseline" in md and "| **new** | error | `dead_units` |" in md
    assert json.loads(render("json", b))["baseline"]["regressions"] == 1


def test_the_cli_compares_with_a_baseline_file(tmp_path):
    import subprocess

    log = tmp_path / "run.csv"
    log.write_text(exploding_csv())
    first = subprocess.run(["gradhealth", "check", str(log), "--format", "json"], env=ci_env(),
                           capture_output=True, text=True, cwd=tmp_path)
    assert first.returncode == 1
    main = json.loads(first.stdout)
    assert main["baseline"] is None
    (tmp_path / "main.json").write_text(first.stdout)
    # A job resource (GET /v1/jobs/{id}) works as a baseline too.
    (tmp_path / "job.json").write_text(json.dumps({"id": "j", "status": "succeeded", "result": main}))
    for base in ("main.json", "job.json"):
        again = subprocess.run(["gradhealth", "check", str(log), "--format", "json", "--fail-on", "new",
                                "--baseline", base], env=ci_env(), capture_output=True, text=True,
                               cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        section = json.loads(again.stdout)["baseline"]
        assert section["unchanged"] == len(main["findings"]) and section["regressions"] == 0
        assert section["source"] == base
    (tmp_path / "bad.json").write_text('{"status": 1}')
    bad = subprocess.run(["gradhealth", "check", str(log), "--baseline", "bad.json"], env=ci_env(),
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "not a diagnosis document" in bad.stderr
