"""``normalise_inputs``: a first layer that reads inputs far from the unit scale its init assumes
(raw 0-255 pixels) is offered standardised inputs, verified by simulation (LeCun et al. 1998)."""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from gradhealth import check_module
from gradhealth.analysis.check import CheckOptions, run_architecture_check
from gradhealth.analysis.plan import Limits
from gradhealth.analysis.thresholds import Thresholds


def _spec(scale: float) -> dict[str, Any]:
    return {"input": {"shape": [64], "scale": scale}, "seeds": 1,
            "layers": [{"type": "linear", "out_features": 64, "activation": "tanh", "init": "xavier_normal",
                        "repeat": 3}, {"type": "linear", "out_features": 10}]}


def test_a_spec_whose_inputs_are_50_times_too_large_is_offered_unit_scale() -> None:
    doc = run_architecture_check(_spec(50.0), CheckOptions(Thresholds(), Limits(), device="cpu"))
    [sat] = [f for f in doc.findings if f.code == "saturation"]
    [fix] = [r for r in sat.remedies if r.id == "normalise_inputs"]
    assert fix.patch == [{"op": "add", "path": "/input/scale", "value": 1.0}]
    # standard normal inputs times 50: root mean square 50 (to the batch's sampling error)
    rms = float(re.search(r"root mean square ([\d.]+)", fix.change)[1])  # type: ignore[index]
    assert 45 < rms < 55
    assert fix.verified is not None and fix.verified.fixed and fix.recommended
    assert sat.remedies[0] is fix


def test_inputs_at_the_unit_scale_are_not_offered_it() -> None:
    # the same net saturated by its weights instead (normal std 1 at fan-in 64): the inputs are not why
    raw = _spec(1.0)
    raw["layers"][0]["init"] = {"scheme": "normal", "std": 1.0}
    doc = run_architecture_check(raw, CheckOptions(Thresholds(), Limits(), device="cpu"))
    assert any(f.code == "saturation" for f in doc.findings)
    assert not [r for f in doc.findings for r in f.remedies if r.id == "normalise_inputs"]


class _PixelMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(196, 64), nn.Linear(64, 64), nn.Linear(64, 10)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = img.float()  # uint8 pixels, never divided by 255
        return self.fc3(torch.tanh(self.fc2(torch.tanh(self.fc1(x)))))


def test_a_module_fed_raw_pixels_is_offered_standardised_inputs_verified() -> None:
    torch.manual_seed(0)
    pixels = torch.randint(0, 256, (64, 196), dtype=torch.uint8)
    doc = check_module(_PixelMLP(), pixels, loss="cross_entropy", seeds=1)
    [sat] = [f for f in doc.findings if f.code == "saturation"]
    [fix] = [r for r in sat.remedies if r.id == "normalise_inputs"]
    assert "fc1 reads inputs of root mean square" in fix.change
    # simulated with fc1 reading its input standardised: the saturation is gone
    assert fix.verified is not None and fix.verified.fixed and fix.verified.after is not None
    assert fix.verified.after < 0.05 and fix.recommended
