"""newuser10 #13: an unknown spec field lists the fields its object takes, at every level."""

from __future__ import annotations

import pytest

from gradhealth.analysis.spec import parse_spec
from gradhealth.errors import SpecError


def _message(raw: dict) -> str:
    with pytest.raises(SpecError) as err:
        parse_spec(raw)
    return str(err.value)


def test_an_unknown_layer_field_lists_the_layer_types_fields() -> None:
    message = _message({"input": {"shape": [3, 8, 8]}, "layers": [
        {"type": "conv2d", "out_channels": 4, "kernel_size": 3}, {"type": "pool", "kind": "avg"}]})
    assert "/layers/1/kind: unknown field (allowed: mode, repeat, type)" in message


@pytest.mark.parametrize("raw,expected", [
    ({"input": {"shape": [4], "foo": 1}, "layers": [{"type": "linear", "out_features": 2}]},
     "/input/foo: unknown field (allowed: distribution, range, scale, shape, tokens)"),
    ({"input": {"shape": [4]}, "layers": [{"type": "linear", "out_features": 2,
                                           "init": {"scheme": "xavier_normal", "gian": 1}}]},
     "/layers/0/init/gian: unknown field; did you mean 'gain'? (allowed: bound, distribution, gain,"),
    ({"input": {"shape": [4]}, "layers": [{"type": "residual", "layers": [
        {"type": "linear", "out_features": 4, "bias_init": {"value": 0, "zz": 1}}]}]},
     "/layers/0/layers/0/bias_init/zz: unknown field (allowed: scheme, std, value)"),
    ({"input": {"shape": [4]}, "layers": [{"type": "linear", "out_features": 2}], "loss": {"type": "mse", "qq": 1}},
     "/loss/qq: unknown field (allowed: classes, from_logits, target_range, type)"),
    ({"input": {"shape": [4]}, "layers": [{"type": "linear", "out_features": 2}],
      "optimizer": {"type": "sgd", "lr": 0.1, "momentun": 0.9}},
     "/optimizer/momentun: unknown field; did you mean 'momentum'? (allowed: alpha, clip_norm,"),
    ({"input": {"shape": [4]}, "layer": []},
     "/layer: unknown field; did you mean 'layers'? (allowed: batch_size, device, input, layers, loss,"),
])
def test_every_level_lists_its_fields(raw: dict, expected: str) -> None:
    assert expected in _message(raw)
