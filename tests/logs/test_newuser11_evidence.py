"""newuser11 #1, #2, #8: a blown-up loss and gradient norm are reported by their peak (where the
summary and evidence ``value`` agree), late statistics never come from the healthy middle of a run
that ended in NaN/Inf, and a plateau beside a vanishing gradient is not offered a higher learning rate."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from gradhealth.logs.check import run_log_check
from gradhealth.report import ReportContext, render


def _jsonl(tmp_path: Path, series: dict[str, list[float]]) -> Path:
    """A gradhealth-recorder style JSON-lines log: one record per step and metric, NaN/Inf as JSON's
    NaN/Infinity (as Python's json writes them)."""
    lines = [{"step": step, "metric": name, "value": v}
             for name, values in series.items() for step, v in enumerate(values)]
    path = tmp_path / "gradients.jsonl"
    path.write_text("\n".join(json.dumps(x, allow_nan=True) for x in lines) + "\n")
    return path


def _blow_up(n: int = 300, onset: int = 150, grown: int = 12, base: float = 10.0, factor: float = 30.0
             ) -> tuple[list[float], list[float]]:
    """A grad norm at exactly ``base`` and a loss at 1.0 until ``onset``, then both multiplied by
    ``factor`` per step for ``grown`` steps, then Inf to the end (the norm) and NaN (the loss)."""
    rng = np.random.default_rng(0)
    norm = [base * float(np.exp(rng.normal(0, 0.02))) for _ in range(onset)]
    loss = [1.0 * float(np.exp(rng.normal(0, 0.02))) for _ in range(onset)]
    norm += [base * factor ** k for k in range(1, grown + 1)]
    loss += [1.0 * (factor ** 3) ** k for k in range(1, grown + 1)]   # 2.7e4 per step: past 1e15
    norm += [math.inf] * (n - len(norm))
    loss += [math.nan] * (n - len(loss))
    return norm, loss


def test_an_astronomical_loss_is_reported_at_its_peak_with_where_it_first_crossed(tmp_path: Path) -> None:
    norm, loss = _blow_up()
    doc = run_log_check(_jsonl(tmp_path, {"loss": loss, "grad_norm": norm}))
    [f] = [f for f in doc.findings if f.code == "loss_divergence"]
    v = np.array(loss)
    finite = np.isfinite(v)
    peak_step = int(np.nanargmax(np.where(finite, v, -np.inf)))
    first_step = int(np.argmax(finite & (v >= 1e15)))
    assert peak_step == 161 and first_step == 153      # 27000 ** 4 = 5.3e17 is the first past 1e15
    ev = f.evidence.model_dump()
    assert ev["value"] == pytest.approx(27000.0 ** 12) == ev["peak"]
    assert ev["peak_step"] == peak_step and ev["first_over_step"] == first_step
    assert ev["first_over"] == pytest.approx(27000.0 ** 4)
    assert f"reaches {27000.0 ** 12:.3g} at its largest (step {peak_step})" in f.summary
    assert f"first 1e+15 or more at step {first_step}" in f.summary


def test_exploding_gradient_evidence_states_the_summarys_figures(tmp_path: Path) -> None:
    norm, loss = _blow_up()
    doc = run_log_check(_jsonl(tmp_path, {"loss": loss, "grad_norm": norm}))
    [f] = [f for f in doc.findings if f.code == "exploding_gradient"]
    ev = f.evidence.model_dump()
    grown = np.array([10.0 * 30.0 ** k for k in range(1, 13)])
    # the baseline is the healthy level, 10 within the noise; the value is the peak over it
    assert ev["baseline"] == pytest.approx(10.0, rel=0.02)
    assert ev["peak"] == pytest.approx(grown[-1]) and ev["peak_step"] == 161
    assert ev["value"] == pytest.approx(ev["peak"] / ev["baseline"])
    assert f"{ev['value']:.3g}x its early baseline" in f.summary and f"to {grown[-1]:.3g} (step 161)" in f.summary
    # the median of the grown points is named as such, beside the count of them
    assert ev["sustained_median"] == pytest.approx(float(np.median(grown[-ev["sustained_points"]:])))
    assert f"median {ev['sustained_median']:.3g} over those {ev['sustained_points']} logged points" in f.summary
    # the last quarter (75 of 300 points) is all Inf: no late median, and how many were not finite
    assert ev["late_median"] is None and ev["late_points"] == 75 and ev["late_nonfinite"] == 75


def test_a_late_median_counts_only_finite_points_of_the_last_quarter(tmp_path: Path) -> None:
    # a norm that grows tenfold over the run, with NaN at every 4th point of its last quarter
    n = 200
    rng = np.random.default_rng(1)
    norm = [float(1.0 * 100 ** (i / n) * np.exp(rng.normal(0, 0.01))) for i in range(n)]
    for i in range(150, n, 4):
        norm[i] = math.nan
    loss = [float(2.0 - i / n) for i in range(n)]
    doc = run_log_check(_jsonl(tmp_path, {"loss": loss, "grad_norm": norm}))
    [f] = [f for f in doc.findings if f.code == "exploding_gradient"]
    ev = f.evidence.model_dump()
    late = np.array(norm[150:])
    assert ev["late_points"] == 50 and ev["late_nonfinite"] == int(np.sum(~np.isfinite(late))) == 13
    assert ev["late_median"] == pytest.approx(float(np.median(late[np.isfinite(late)])))


def _vanishing_plateau(tmp_path: Path) -> Path:
    """A 4-layer sigmoid-like run: the first layer's gradient 1e-12 of the last one's, the loss flat
    at ln 10 from the start, a learning rate logged at 0.01."""
    n = 400
    rng = np.random.default_rng(2)
    series = {
        "loss": [float(math.log(10) * np.exp(rng.normal(0, 0.002))) for _ in range(n)],
        "lr": [0.01] * n,
    }
    for k, scale in enumerate([1e-12, 1e-8, 1e-4, 0.5]):
        series[f"grad_norm/{k}.weight"] = [float(scale * np.exp(rng.normal(0, 0.05))) for _ in range(n)]
    return _jsonl(tmp_path, series)


def test_a_plateau_beside_a_vanishing_gradient_gets_its_remedies_not_a_higher_rate(tmp_path: Path) -> None:
    doc = run_log_check(_vanishing_plateau(tmp_path))
    [vg] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    [pl] = [f for f in doc.findings if f.code == "loss_plateau"]
    assert vg.severity == "error" and pl.severity == "warning"
    ids = [r.id for r in pl.remedies]
    assert "raise_learning_rate" not in ids
    assert ids == [r.id for r in vg.remedies]
    ev = pl.evidence.model_dump()
    assert ev["cause"] == "vanishing_gradient" and ev["withheld_remedies"] == ["raise_learning_rate"]
    assert "likely cause is the vanishing_gradient error" in pl.summary


def test_github_annotations_of_a_log_never_say_fix(tmp_path: Path) -> None:
    path = _vanishing_plateau(tmp_path)
    doc = run_log_check(path)
    out = render("github", doc, ReportContext(source=str(path), path=path))
    lines = [x for x in out.splitlines() if x.startswith(("::error", "::warning"))]
    assert lines and all("Fix:" not in x for x in lines)
    assert all("%0ASuggested: " in x and "(from the log)" in x for x in lines)
    assert "raise_learning_rate" not in out
    issues = json.loads(render("codeclimate", doc, ReportContext(source=str(path), path=path)))
    assert all("; fix:" not in i["description"] for i in issues)
