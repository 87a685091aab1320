"""kerassweep11: a network with one hidden weighted layer, every weight zero, passes no gradient
to anything but the readout's bias; the trunk's all-zero test ran only from two hidden layers."""

from __future__ import annotations

import pytest

from gradhealth.library import check_architecture


def _spec(hidden: str, readout: str, activation: str = "tanh") -> dict:
    return {"input": {"shape": [16]}, "batch_size": 32, "seeds": 2, "loss": {"type": "mse"},
            "layers": [{"type": "linear", "out_features": 64, "activation": activation, "init": hidden,
                        "bias_init": {"scheme": "zeros"}},
                       {"type": "linear", "out_features": 1, "init": readout}]}


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_one_zero_hidden_layer_under_a_zero_readout_gets_no_gradient(activation: str) -> None:
    # h = act(0 x + 0) = 0 and the readout's weights are 0: dL/dW_out = g h = 0, dL/dh = W_out g = 0,
    # so neither weight matrix ever moves; only the readout's bias learns
    doc = check_architecture(_spec("zeros", "zeros", activation))
    [f] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    assert f.severity == "error" and f.evidence.value == 0.0


@pytest.mark.parametrize("hidden,readout", [("he_normal", "zeros"), ("xavier_uniform", "xavier_uniform")])
def test_a_zero_readout_alone_or_no_zeros_is_no_vanishing(hidden: str, readout: str) -> None:
    # a readout at zero over a live layer gets a gradient (h != 0) and lets one through from the
    # second step (DiT's final layer): no finding about the depth
    doc = check_architecture(_spec(hidden, readout))
    assert not [f for f in doc.findings if f.code == "vanishing_gradient" and f.severity in ("warning", "error")]
