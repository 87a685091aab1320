"""One seeds limit (the setting) with one message, and explanations that name activations as such."""

from __future__ import annotations

import re

import pytest

from gradhealth.analysis.plan import Limits, make_plan
from gradhealth.analysis.spec import Spec, parse_spec
from gradhealth.errors import LimitExceeded
from gradhealth.library import check_architecture
from gradhealth.settings import Settings

SMALL = {"input": {"shape": [8]}, "batch_size": 8,
         "layers": [{"type": "linear", "out_features": 8, "activation": "relu"}]}


def _figures(message: str) -> list[str]:
    return re.findall(r"\d+", message)


@pytest.mark.parametrize("seeds", [17, 20, 40, 1000])
def test_over_the_default_limit_is_one_message_naming_each_figure_once(seeds):
    spec = parse_spec(dict(SMALL, seeds=seeds))  # the schema does not refuse it with a message of its own
    with pytest.raises(LimitExceeded) as caught:
        make_plan(spec, Limits())
    message = str(caught.value.detail)
    assert [p.pointer for p in caught.value.problems] == ["/seeds"]
    assert sorted(_figures(message)) == sorted([str(seeds), "16"]), message


def test_the_setting_is_the_authority_and_the_schema_documents_its_default():
    prop = Spec.model_json_schema()["properties"]["seeds"]
    assert prop["maximum"] == Limits().max_seeds == 16
    assert "GRADHEALTH_LIMITS__MAX_SEEDS" in prop["description"]
    # A service configured for more seeds accepts them: no second, fixed limit in the schema.
    make_plan(parse_spec(dict(SMALL, seeds=40)), Limits(max_seeds=64))
    with pytest.raises(LimitExceeded, match="65 seeds is over the limit of 64"):
        make_plan(parse_spec(dict(SMALL, seeds=65)), Limits(max_seeds=64))


def test_a_stack_without_activations_is_not_called_identity_layers():
    # Linear layers without an activation and weights of std 1 on width 32: each layer multiplies the
    # gradient by about sqrt(32), so the check reports an exploding gradient with an explanation.
    spec = {"input": {"shape": [32]}, "seeds": 1, "batch_size": 32,
            "layers": [{"type": "linear", "out_features": 32, "init": {"scheme": "normal", "std": 1.0},
                        "repeat": 6}, {"type": "linear", "out_features": 4}]}
    doc = check_architecture(spec, verify=False, settings=Settings()).model_dump(mode="json")
    explanations = [f.get("explanation") or "" for f in doc["findings"]]
    assert any("no activation of their own" in text for text in explanations), explanations
    assert not any("identity layers" in text for text in explanations), explanations
