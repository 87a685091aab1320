"""newuser12 items 2 and 3, on logs written here the way the GradientRecorder writes them:

2. a regression whose sigmoid output saturated against targets of about 3000 (grad norm 1.9e3-3.7e3 over
   the first 7 of 20 points, then down to ~1-3, the MSE flat at ~9.5e6) read "7 gradient spikes, the run
   recovered after each", with "lower the learning rate" there and "raise it" under the plateau;
3. a regression on unscaled targets (MSE 9.6e6 at step 0, NaN by step 5) got only "lower the learning
   rate x0.3", which went to NaN again: standardising the targets is what fixed it."""

from __future__ import annotations

import json
import math
from pathlib import Path

from gradhealth.core import remedies as R
from gradhealth.library import check_logs
from gradhealth.logs.check import _one_learning_rate_direction
from gradhealth.logs.detectors.common import finding


def _recorder_log(tmp_path: Path, losses: list[float], norms: list[float]) -> Path:
    """The GradientRecorder's JSON Lines: loss, grad_norm and lr every 5 steps."""
    lines: list[dict] = [{"gradhealth_recorder": "start", "params": {}}]
    for i, (loss, norm) in enumerate(zip(losses, norms, strict=True)):
        lines += [{"step": 5 * i, "metric": "loss", "value": loss},
                  {"step": 5 * i, "metric": "grad_norm", "value": norm},
                  {"step": 5 * i, "metric": "lr", "value": 1e-3}]
    path = tmp_path / "gradients.jsonl"
    path.write_text("\n".join(json.dumps(x, allow_nan=True) for x in lines) + "\n")
    return path


def _saturating(tmp_path: Path) -> Path:
    """20 points: the norm at ~2e3-3.7e3 for 7, then collapsing to ~1-3; the MSE flat at 9.5e6 +- 7 %
    (newuser12's tab_sigmoid, its numbers rounded), its last half's smoothed ends 5.7 % apart by noise."""
    norms = [1906.5, 1986.6, 2442.9, 3113.7, 3710.5, 2498.1, 723.1, 167.6, 22.6, 11.6, 6.9, 2.8, 2.1, 2.5,
             1.6, 1.2, 1.8, 0.65, 1.9, 2.8]
    losses = [9.60e6, 9.21e6, 9.92e6, 9.21e6, 9.52e6, 10.15e6, 9.76e6, 9.14e6, 9.91e6, 9.10e6, 9.32e6, 10.40e6,
              9.86e6, 9.37e6, 9.84e6, 8.98e6, 9.60e6, 9.20e6, 9.92e6, 9.20e6]
    return _recorder_log(tmp_path, losses, norms)


def _remedy_ids(doc) -> set[str]:  # noqa: ANN001
    return {r.id for f in doc.findings for r in f.remedies}


def test_a_gradient_collapsing_under_a_flat_huge_mse_is_vanishing_not_spikes(tmp_path: Path) -> None:
    doc = check_logs(_saturating(tmp_path))
    codes = {f.code: f for f in doc.findings}
    assert "gradient_spike" not in codes          # the run's first points are its start, not spikes
    f = codes["vanishing_gradient"]
    assert f.severity == "warning"
    # the loss's level never moved (its first tenth's and last quarter's medians within 5 %): stalled
    assert "while the loss stalled" in f.summary
    [fix] = [r for r in f.remedies if r.id == "normalise_inputs"]
    level = fix.params["loss_level"]
    assert level == 9.60e6                           # the median of its first 3 points
    assert fix.params["rms_error"] == math.sqrt(level)  # an MSE's square root: the typical error, ~3.1e3
    assert "targets" in fix.change and "y = (y - y_mean) / y_std" in fix.snippet
    # one direction for the learning rate in one document: no raise beside a lower
    assert not {"raise_learning_rate", "lower_learning_rate"} <= _remedy_ids(doc)
    assert "raise_learning_rate" not in _remedy_ids(doc)


def test_nan_after_a_huge_mse_offers_standardising_the_targets_first(tmp_path: Path) -> None:
    doc = check_logs(_recorder_log(tmp_path, [9601455.0] + [math.nan] * 19, [7631.7] + [math.nan] * 19))
    [f] = [f for f in doc.findings if f.code == "nonfinite"]
    assert [r.id for r in f.remedies] == ["normalise_inputs", "lower_learning_rate"]
    fix = f.remedies[0]
    assert fix.params["loss_level"] == 9601455.0
    assert round(fix.params["rms_error"]) == 3099          # sqrt(9.6e6) by hand: 3098.6
    assert "3.1e+03" in fix.change and "at step 0" in fix.change
    assert f.evidence.model_dump()["loss_scale"]["early_level"] == 9601455.0


def test_nan_after_a_cross_entropy_sized_loss_gets_no_target_remedy(tmp_path: Path) -> None:
    # a classifier's loss starts near ln(classes): its level says nothing of a target scale
    doc = check_logs(_recorder_log(tmp_path, [2.31] + [math.nan] * 19, [3.2] + [math.nan] * 19))
    assert "normalise_inputs" not in _remedy_ids(doc)
    assert "lower_learning_rate" in _remedy_ids(doc)


def test_a_raise_of_the_rate_is_withheld_beside_a_lower_one() -> None:
    ev = {"metric": "loss", "steps": [0, 10], "value": 1.0, "threshold": 1.0}
    spike = finding("gradient_spike", "warning", "spikes", "why", dict(ev), [R.lower_learning_rate()])
    flat = finding("loss_plateau", "warning", "flat", "why", dict(ev), [R.raise_learning_rate()])
    out = _one_learning_rate_direction([spike, flat])
    assert [r.id for r in out[0].remedies] == ["lower_learning_rate"]
    assert out[1].remedies == []
    assert "gradient_spike warning advises a lower one" in out[1].summary
    assert out[1].evidence.model_dump()["withheld_remedies"] == ["raise_learning_rate"]
    # a lower rate from a note alone does not overrule a warning's raise
    note = spike.model_copy(update={"severity": "info"})
    assert _one_learning_rate_direction([note, flat])[1].remedies[0].id == "raise_learning_rate"
