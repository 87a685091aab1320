"""dead_units judges a fraction above 1/2 by how many units it is of.

Inputs that all look alike (a squeeze-and-excitation layer reads globally pooled features, which
are nearly the same for every sample) leave a zero-bias ReLU unit off for the whole batch with
probability 1/2. In a layer of 8 units, 5 off (62%) is then a coin toss, not a sign of a badly
scaled init; 48 of 64, or all 8, are not.
"""

from __future__ import annotations

import pytest
import torch
from scipy.stats import binom
from torch import nn

from gradhealth.analysis.findings import binomial_tail_half
from gradhealth.analysis.module_check import check_module
from gradhealth.core.document import Diagnosis


class Excite(nn.Module):
    """conv -> relu -> global pool -> Linear(16, width) -> relu -> Linear -> sigmoid gate.

    The squeeze layer's first ``off`` rows are negative and the rest positive, so with the pooled
    (positive) features those units are off for every sample and the others on."""

    def __init__(self, width: int, off: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.squeeze = nn.Linear(16, width, bias=False)
        self.excite = nn.Linear(width, 16)
        self.head = nn.Linear(16, 4)
        with torch.no_grad():
            self.squeeze.weight.fill_(0.1)
            self.squeeze.weight[:off] = -0.1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x))
        s = torch.relu(self.squeeze(h.mean(dim=(2, 3))))
        gated = h * torch.sigmoid(self.excite(s))[:, :, None, None]
        return self.head(gated.mean(dim=(2, 3)))


def _check(width: int, off: int) -> Diagnosis:
    torch.manual_seed(0)
    return check_module(Excite(width, off), torch.randn(16, 3, 8, 8), seeds=3, verify=False)


def _squeeze(doc: Diagnosis) -> float:
    layer = next(layer for layer in doc.layers if layer.name == "squeeze")
    assert layer.dead_fraction is not None
    return layer.dead_fraction


def test_five_of_eight_units_off_is_what_alike_inputs_make_by_chance() -> None:
    doc = _check(8, 5)
    assert _squeeze(doc) == pytest.approx(5 / 8)  # the layer report shows the count as measured
    assert "dead_units" not in {f.code for f in doc.findings if f.severity != "info"}
    # 62.5% beside no finding at all read as a contradiction (onnxsweep13 u06): a note says why
    [note] = [f for f in doc.findings if f.code == "dead_units"]
    assert "5 of 8 units is within chance of half" in note.summary


def test_the_same_fraction_of_a_wide_layer_is_no_coin_toss() -> None:
    doc = _check(64, 48)
    assert _squeeze(doc) == pytest.approx(0.75)
    finding = next(f for f in doc.findings if f.code == "dead_units")
    assert finding.severity == "warning"
    assert finding.evidence.layers == ["squeeze"]


def test_every_unit_of_a_small_layer_off_is_still_found() -> None:
    doc = _check(8, 8)
    finding = next(f for f in doc.findings if f.code == "dead_units")
    assert finding.severity == "error"


@pytest.mark.parametrize(("k", "n"), [(0, 5), (5, 8), (7, 8), (8, 8), (154, 256), (990, 2000),
                                      (1100, 2001), (2600, 5000), (6, 5)])
def test_the_binomial_tail_agrees_with_scipy(k: int, n: int) -> None:
    expected = float(binom.sf(k - 1, n, 0.5))
    assert binomial_tail_half(k, n) == pytest.approx(expected, rel=0.02, abs=1e-12)


def _mostly_off(width: int = 256) -> nn.Module:
    """Linear -> ReLU -> Linear whose first layer's units are each off for about 3/4 of random
    inputs (bias -0.39: the pre-activation's std is 0.577 under torch's default init, and
    Phi(-0.39 / 0.577) = 0.75). Each fires for a quarter of the inputs: alive."""
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(32, width), nn.ReLU(), nn.Linear(width, 10))
    with torch.no_grad():
        net[0].bias.fill_(-0.39)
    return net


def test_a_batch_of_one_cannot_show_dead_units_and_a_batch_of_eight_can() -> None:
    # with one sample a unit is off "for the whole batch" as often as it is off at all: ~75% of
    # these live units, which an export with a fixed batch of 1 would report as dead
    one = check_module(_mostly_off(), torch.randn(1, 32), seeds=3, verify=False)
    fractions = [lay.dead_fraction for lay in one.layers if lay.dead_fraction is not None]
    assert fractions and max(fractions) > 0.65  # the measurement itself is still reported
    assert "dead_units" not in {f.code for f in one.findings if f.severity != "info"}
    # (and a note says why the figure in the table is no finding: a batch of 1 with inputs drawn is
    # run on further draws to 16 samples a seed, onnxsweep27, and no unit is off for all 48 of them,
    # as a unit firing on a quarter of the inputs is with probability 0.75^48 ~ 1e-6)
    assert any(f.code == "dead_units" and "0% for all 48 samples" in f.summary for f in one.findings)
    # over 8 samples a live unit is off for all of them with probability 0.75^8 = 0.1
    eight = check_module(_mostly_off(), torch.randn(8, 32), seeds=3, verify=False)
    assert "dead_units" not in {f.code for f in eight.findings if f.severity != "info"}
    # and a layer truly off for every input is found once the batch can show it
    dead = _mostly_off()
    with torch.no_grad():
        dead[0].bias.fill_(-50.0)
    eight = check_module(dead, torch.randn(8, 32), seeds=3, verify=False)
    assert "dead_units" in {f.code for f in eight.findings}
