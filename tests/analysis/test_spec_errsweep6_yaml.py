"""errsweep6 #4: a YAML spec over the value budget is refused by libyaml's C parser before the
pure-Python loader composes it (1 MB of 100,000 keys cost that loader 3 s), and a spec within it is
composed on libyaml's events with the same result as the pure-Python loader."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from gradhealth.analysis import spec as spec_module
from gradhealth.analysis.spec import load_spec_text
from gradhealth.errors import InputFormatError

pytestmark = pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML without libyaml: the pure loader only")

HEAD = "input: {shape: [8]}\nseeds: 1\nlayers:\n  - {type: linear, out_features: 4}\n"


class _NoPureLoader:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("the pure-Python YAML loader was used")


def test_over_budget_yaml_is_refused_without_the_pure_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spec_module, "_SpecLoader", _NoPureLoader)
    text = HEAD + "".join(f"k{i}: 1\n" for i in range(100_000))
    with pytest.raises(InputFormatError) as caught:
        load_spec_text(text, content_type="application/yaml")
    # 4 values in the head lines (mapping, input, its mapping, shape...) then two per key: the
    # 100,001st value is key k49996's value, on line 4 + 49997
    assert str(caught.value) == "the spec holds more than 100000 values (line 49997, column 9)"


def test_over_deep_yaml_is_refused_without_the_pure_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spec_module, "_SpecLoader", _NoPureLoader)
    text = "a:\n" + "".join(" " * i + "- \n" for i in range(1, 100))
    with pytest.raises(InputFormatError, match="nested more than 64 levels deep"):
        load_spec_text(text, content_type="application/yaml")


@pytest.mark.parametrize("text", [
    HEAD + "name: x\nlr: 1e-3\nn: 0x1F\nm: 0o17\nflag: yes\nnothing: ~\n",
    "base: &b {type: linear, out_features: 4}\ninput: {shape: [8]}\nlayers: [*b, {<<: *b, activation: relu}]\n",
    HEAD + "k: 00012\nf: .5\ng: -.inf_not\nt: 2001-12-14\n",
])
def test_libyaml_events_compose_as_the_pure_loader_does(text: str) -> None:
    pure = spec_module._SpecLoader(text, 1000)
    fast = spec_module._CSpecLoader(text, 1000)
    try:
        assert fast.get_single_data() == pure.get_single_data()
    finally:
        pure.dispose()
        fast.dispose()


def test_alias_bomb_is_still_refused_on_libyaml_events() -> None:
    text = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(6))
    with pytest.raises(InputFormatError, match="aliases expand the spec beyond the budget"):
        load_spec_text(text, content_type="application/yaml")
