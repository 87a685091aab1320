"""A remedy's verification shows the changed network by the finding's own metric, never another
(modsweep43 and a helper's note: output_loss_mismatch's loss floor was shown "silent_sample_fraction
1 -> 0.726", vanishing_gradient's starved middle "output_grad_ratio_least_to_last 0.000163 -> 48.3",
the ends' ratio). Where the rule measures the changed network by another figure, ``after`` is null
and the note names what was measured instead."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import gradhealth
import gradhealth.analysis.check as check
from gradhealth.analysis.findings import Detection


def test_a_remedy_judged_by_another_figure_shows_the_findings_own_after() -> None:
    # one sigmoid unit under cross-entropy: a softmax over a single class is 1 whatever the output,
    # so no sample gets a gradient (silent_sample_fraction 1). The remedy's changed network gives every
    # sample one (its sigmoid's slope is never 0): 0 silent, where the rule now judges the loss floor
    # a squashed output sets (unreachable_loss_fraction 0.726), which was shown as "1 -> 0.726"
    net = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 1), nn.Sigmoid())
    torch.manual_seed(0)
    doc = gradhealth.check_module(net, torch.randn(32, 20), loss="cross_entropy", seeds=2)
    [f] = [f for f in doc.findings if f.code == "output_loss_mismatch"]
    assert f.evidence.metric == "silent_sample_fraction" and f.evidence.value == 1.0
    verified = [r.verified for r in f.remedies if r.verified is not None]
    assert verified
    for v in verified:
        assert v.metric == "silent_sample_fraction" and v.after == 0.0
        if not v.fixed:
            assert v.note is not None and "unreachable_loss_fraction" in v.note


def test_a_squash_removed_leaves_no_loss_floor() -> None:
    # the forward's own softmax under cross-entropy: logits in [0, 1] over 10 classes, the best loss
    # -log(e / (e + 9)), a share of log(10) at chance; returned as logits, the floor is gone (0)
    net = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 10), nn.Softmax(dim=1))
    torch.manual_seed(0)
    doc = gradhealth.check_module(net, torch.randn(32, 20), loss="cross_entropy", seeds=2)
    [f] = [f for f in doc.findings if f.code == "output_loss_mismatch"]
    assert f.evidence.metric == "unreachable_loss_fraction"
    floor = -math.log(math.e / (math.e + 9)) / math.log(10)
    assert f.evidence.value == pytest.approx(floor, abs=0.05)
    [fix] = [r for r in f.remedies if r.id == "logits_loss"]
    assert fix.verified is not None and fix.verified.metric == "unreachable_loss_fraction"
    assert fix.verified.fixed and fix.verified.after == 0.0


class _Rule:
    """A rule stand-in whose figure on the changed network is ``metric``: 0.5 by its measure, 0.25
    by the detection it describes where it still fires."""

    def __init__(self, metric: str, fires: bool) -> None:
        self.metric, self.fires = metric, fires

    def severity(self, after: object, t: object) -> tuple[float, str | None]:
        return 0.5, "warning" if self.fires else None

    def describe(self, severity: str, value: float, after: object, t: object) -> Detection:
        return Detection("output_loss_mismatch", severity, self.metric, 0.25, "", "", {}, [])

    def measured_metric(self, after: object, t: object) -> str | None:
        return self.metric

    def measure_as(self, metric: str, after: object, t: object) -> float | None:
        return None  # the finding's metric not to be had on the changed network


@pytest.mark.parametrize(("metric", "fires", "expected"), [
    ("unreachable_loss_fraction", True, 0.25),   # still fires: its detection's own figure
    ("unreachable_loss_fraction", False, 0.5),   # gone: the measure, the same metric
    ("silent_sample_fraction", True, None),      # another metric either way: none shown
    ("silent_sample_fraction", False, None)])
def test_after_is_the_findings_metric_or_none(monkeypatch: pytest.MonkeyPatch, metric: str, fires: bool,
                                              expected: float | None) -> None:
    det = Detection("output_loss_mismatch", "error", "unreachable_loss_fraction", 0.6, "", "", {}, [])
    monkeypatch.setattr(check, "_part", lambda d: _Rule(metric, fires))
    shown, note = check.same_metric_after(det, 0.5, None, None)  # type: ignore[arg-type]
    assert (None if math.isnan(shown) else shown) == expected
    assert (note is not None) == (metric != det.metric)
    if note is not None:
        assert metric in note
