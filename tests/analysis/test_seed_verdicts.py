"""Remedies verified on one seed where the verdict is clear, on every seed where it is close.

A remedy's re-simulation runs the spec's first seed; only when its verdict (fixed, recommended)
changes with the thresholds moved by the seed margin either way do the other seeds run, joined to
the first (issue 12, item 4: a full check near the cost of one simulation).
"""

from __future__ import annotations

import copy
import math

import jsonpatch
import numpy as np
import pytest

from gradhealth.analysis.check import (
    MIN_MARGIN_DECADES,
    MIN_MARGIN_SHARE,
    improved,
    judge,
    seed_margin,
)
from gradhealth.analysis.plan import make_plan
from gradhealth.analysis.rules import detect
from gradhealth.analysis.simulate import combined, simulate
from gradhealth.analysis.spec import parse_spec
from gradhealth.analysis.thresholds import Thresholds
from tests.helpers import example

VERIFIED = ["deep_sigmoid_mlp", "relu_xavier_mlp", "std1_mlp", "residual_mlp_unnormalised", "tanh_rnn_long"]


def test_a_run_joined_from_two_is_the_run_of_every_seed():
    plan = make_plan(parse_spec(example("tanh_rnn_long")))  # units and a series through time
    whole = simulate(plan)
    joined = combined(simulate(plan, seeds=1), simulate(plan, start=1))
    assert joined.seeds == whole.seeds == plan.spec.seeds
    assert joined.losses == whole.losses and len(joined.silent) == whole.seeds
    assert [u.name for u in joined.units] == [u.name for u in whole.units]
    for a, b in zip(whole.units, joined.units, strict=True):
        assert a.values.keys() == b.values.keys()
        for m in a.values:
            np.testing.assert_array_equal(a.values[m], b.values[m])
    assert whole.time_series
    for a, b in zip(whole.time_series, joined.time_series, strict=True):
        np.testing.assert_array_equal(a.norms, b.norms)
        assert (a.carried is None) == (b.carried is None)
        if a.carried is not None:
            np.testing.assert_array_equal(a.carried, b.carried)


def test_a_partial_run_counts_its_own_seeds():
    plan = make_plan(parse_spec(example("std1_mlp")))
    assert simulate(plan, seeds=1).seeds == 1
    assert simulate(plan, seeds=99).seeds == plan.spec.seeds  # never past the spec's own
    assert simulate(plan, start=1).seeds == plan.spec.seeds - 1


def test_shifted_thresholds_fire_earlier_or_later():
    t = Thresholds()
    strict, lenient = t.shifted(0.5, 0.1), t.shifted(-0.5, -0.1)
    assert t.vanishing(10 ** -1.8) is None and strict.vanishing(10 ** -1.8) == "warning"
    assert t.vanishing(10 ** -2.3) == "warning" and lenient.vanishing(10 ** -2.3) is None
    assert t.exploding(40.0) is None and strict.exploding(40.0) == "warning"
    assert t.updates(0.5) == "warning" and strict.updates(0.5) == "error" and lenient.updates(0.2) is None
    assert t.fraction(0.55, t.dead_warning, t.dead_error) is None
    assert strict.fraction(0.55, strict.dead_warning, strict.dead_error) == "warning"
    assert lenient.fraction(0.65, lenient.dead_warning, lenient.dead_error) is None
    far = t.shifted(3.0, 0.9)  # a ratio threshold stays on its side of 1, a fraction within (0, 1]
    assert far.vanishing_warning < 1 < far.exploding_warning and 0 < far.saturation_warning <= 1


def test_the_margin_grows_with_the_seeds_spread_and_never_below_its_floor():
    result = simulate(make_plan(parse_spec(example("relu_xavier_mlp"))))
    decades, share = seed_margin(result)
    assert decades >= MIN_MARGIN_DECADES and share >= MIN_MARGIN_SHARE
    noisy = copy.deepcopy(result)
    for u in noisy.units:  # seeds three decades apart: a verdict on one of them means little
        if "output_grad_norm" in u.values:
            u.values["output_grad_norm"] = np.array([1e-3, 1.0, 1e3][:len(u.values["output_grad_norm"])])
    spread = math.sqrt(np.mean(np.log10([1e-3, 1.0, 1e3][:result.seeds]) ** 2)
                       - np.mean(np.log10([1e-3, 1.0, 1e3][:result.seeds])) ** 2)
    assert seed_margin(noisy)[0] == pytest.approx(3 * math.sqrt(2) * spread)


def _one_and_every(raw: dict, code: str, patch: list) -> tuple:
    """The verdicts, on one seed and on every seed, of ``patch`` for the finding ``code`` of ``raw``,
    simulated here afresh (not through the verifier)."""
    t = Thresholds()
    dets = detect(simulate(make_plan(parse_spec(raw))), t)
    det = next(d for d in dets if d.code == code)
    plan = make_plan(parse_spec(jsonpatch.apply_patch(copy.deepcopy(raw), patch)))
    return det, dets, simulate(plan, seeds=1), simulate(plan)


@pytest.mark.parametrize("name", VERIFIED)
def test_a_one_seed_verdict_is_the_every_seed_verdict(name, checked):
    raw = example(name)
    one = [(f, r) for f in checked(name).findings for r in f.remedies
           if r.verified is not None and r.verified.seeds == 1]
    assert one, "the examples' clear-cut remedies are verified on one seed"
    for f, r in one:
        det, dets, _, every = _one_and_every(raw, f.code, r.patch)
        verdict = judge(det, dets, every, Thresholds())
        fixed, new = verdict.fixed, verdict.side_effects
        # a partial remedy (a decade and half the way nearer the bar, nothing introduced: peersweep22)
        # stays recommended, on every seed's figure as on one's
        partial = (not fixed and not new and r.verified.judged is None
                   and improved(det.value, verdict.value, det.evidence.get("threshold")))
        assert (fixed, (fixed and not new) or partial) == (r.verified.fixed, r.recommended), (name, r.id)


def test_a_verdict_close_to_a_threshold_is_left_to_every_seed(checked):
    """deep_sigmoid_mlp's residual remedy leaves ~62% of a layer saturated, against the 60% error
    threshold: on one seed that is an error under the nominal thresholds and only a warning under
    lenient ones, so the remedy's verdict is measured on every seed."""
    raw = example("deep_sigmoid_mlp")
    seeds = raw["seeds"]
    closes = [(f, r) for f in checked("deep_sigmoid_mlp").findings for r in f.remedies
              if r.verified is not None and r.verified.seeds == seeds and r.patch]
    assert closes
    for f, r in closes:
        det, dets, one, _ = _one_and_every(raw, f.code, r.patch)
        decades, share = seed_margin(simulate(make_plan(parse_spec(raw))))
        t = Thresholds()
        verdicts = {(v.fixed, v.fixed and not v.side_effects) for v in (judge(det, dets, one, x) for x in
                                                       (t, t.shifted(decades, share), t.shifted(-decades, -share)))}
        assert len(verdicts) > 1, r.id  # it was close: the shifts disagree on one seed


def test_a_live_modules_remedies_on_one_seed_get_the_every_seed_verdicts(monkeypatch):
    """The live-module door verifies the same way: its one-seed verdicts are the verdicts the
    same remedies get when every seed is simulated (the margin test forced off)."""
    import torch
    from torch import nn

    from gradhealth import check_module
    from gradhealth.analysis import module_check
    from tests.analysis.onnx_models import mlp

    def checked() -> dict[str, tuple[bool, bool, int | None]]:
        torch.manual_seed(0)
        doc = check_module(mlp(nn.Sigmoid, depth=12), torch.randn(32, 64), seeds=3)
        return {f"{f.code}/{r.id}": (r.verified.fixed, r.recommended, r.verified.seeds)
                for f in doc.findings for r in f.remedies if r.verified is not None}

    first = checked()
    assert any(seeds == 1 for _, _, seeds in first.values())
    monkeypatch.setattr(module_check, "decided", lambda *a, **k: False)
    every = checked()
    assert all(seeds == 3 for _, _, seeds in every.values())
    assert {k: v[:2] for k, v in first.items()} == {k: v[:2] for k, v in every.items()}


def test_a_remedy_that_leaves_its_measure_undefined_is_judged_by_the_gradients_passage() -> None:
    """A ReLU swapped for a leaky one has no dead units to count: 'fixed' only where no error about
    the gradient's passage remains (msweep6/7: an undefined 'after' was counted as a fix)."""
    from gradhealth.analysis.check import unmeasured_with_errors
    from gradhealth.analysis.findings import Detection

    def det(code: str, severity: str) -> Detection:
        return Detection(code, severity, "m", 1.0, "s", "e")

    assert unmeasured_with_errors(math.nan, [det("vanishing_gradient", "error")])
    assert not unmeasured_with_errors(math.nan, [det("vanishing_gradient", "warning")])
    assert not unmeasured_with_errors(math.nan, [det("large_updates", "error")])  # the optimizer's, not the flow's
    assert not unmeasured_with_errors(0.2, [det("vanishing_gradient", "error")])  # measured: judged by its value
