"""newuser11 #10: a wrong-type value is echoed like every other bad value (``out_features: "wide"``
read "/layers/0/out_features: Input should be a valid integer", while a bad enum said "(got 'gelu2')")."""

from __future__ import annotations

import pytest

from gradhealth.analysis.spec import parse_spec
from gradhealth.errors import SpecError


def _message(raw: dict) -> str:
    with pytest.raises(SpecError) as caught:
        parse_spec(raw)
    return str(caught.value)


@pytest.mark.parametrize(("layer", "expected"), [
    ({"type": "linear", "out_features": "wide"}, "/layers/0/out_features: Input should be a valid integer (got 'wide')"),
    ({"type": "linear", "out_features": 1.5}, "(got 1.5)"),
    ({"type": "linear", "out_features": 8, "bias": "maybe"}, "/layers/0/bias: Input should be a valid boolean (got 'maybe')"),
    ({"type": "dropout", "p": "half"}, "/layers/0/p: Input should be a valid number"),
    ({"type": "linear", "out_features": -3}, "(got -3)"),
])
def test_a_wrong_type_is_echoed(layer: dict, expected: str) -> None:
    message = _message({"input": {"shape": [784]}, "layers": [layer]})
    assert expected in message
    assert "(got " in message


def test_a_huge_value_is_echoed_bounded() -> None:
    message = _message({"input": {"shape": [784]}, "layers": [{"type": "linear", "out_features": "w" * 10_000}]})
    assert "(got 'www" in message and len(message) < 400
