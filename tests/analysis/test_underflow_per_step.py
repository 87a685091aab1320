"""Where the gradient through time underflows float64, per_step_factor is the rate measured over the
steps before it did (specsweep13 u01/u09: it was null, and cells could not be compared)."""

from __future__ import annotations

import math

import pytest

from gradhealth import check_architecture


def test_per_step_factor_before_underflow() -> None:
    hidden, std = 32, 1e-4
    spec = {"input": {"shape": [120, 2]}, "batch_size": 16, "seeds": 1, "loss": "mse", "layers": [
        {"type": "rnn", "hidden_size": hidden, "nonlinearity": "tanh",
         "recurrent_init": {"scheme": "normal", "std": std}, "init": {"scheme": "normal", "std": std}},
        {"type": "linear", "out_features": 1}]}
    doc = check_architecture(spec)
    found = next(f for f in doc.findings if f.code == "vanishing_through_time")
    ev = found.evidence.model_dump()
    assert ev["value"] == 0  # nothing reaches step 0 in float64
    assert "under 1e-308" in found.summary
    # tiny weights keep tanh linear: dL/dh_{t-1} = W^T dL/dh_t shrinks by std * sqrt(hidden) a step
    expected = std * math.sqrt(hidden)
    assert ev["per_step_factor"] == pytest.approx(expected, rel=0.25)
    assert ev["per_step_factor_measured"] == "before_underflow"
    first, last = ev["per_step_factor_steps"]
    assert last == 118 and 0 < first < last
    # the steps it covers are the ones whose gradient a float64 holds: 118 - first steps of ~3.2 decades
    assert (last - first) * -math.log10(expected) <= 308 + 4
    assert "before it underflowed" in found.summary
