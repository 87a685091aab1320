"""A YAML spec sent with ``curl -d @file`` arrives with its newlines removed (newuser15 #2): the
refusal says so and names ``--data-binary``, where it said "the spec is empty" (a leading comment
swallowed the rest) or gave a bare YAML error at line 1. Multi-line YAML and JSON are unaffected."""

from __future__ import annotations

import pytest

from gradhealth.analysis.spec import load_spec_text
from gradhealth.errors import InputFormatError

_SPEC = "# a deep MLP\ninput:\n  shape: [16]\nlayers:\n  - type: linear\n    out_features: 2\n"


def _curl_d(text: str) -> str:
    """What ``curl -d @file`` sends: the file with every CR and LF removed (curl's documented behaviour)."""
    return text.replace("\r", "").replace("\n", "")


@pytest.mark.parametrize("text", [_curl_d(_SPEC), _curl_d(_SPEC.split("\n", 1)[1])])
def test_collapsed_yaml_names_data_binary(text):
    with pytest.raises(InputFormatError) as e:
        load_spec_text(text, content_type="application/yaml")
    assert "--data-binary" in str(e.value) and "one line" in str(e.value)


def test_multiline_yaml_and_broken_json_get_no_curl_hint():
    assert load_spec_text(_SPEC, content_type="application/yaml")["input"] == {"shape": [16]}
    with pytest.raises(InputFormatError) as e:
        load_spec_text("# only a comment\n", content_type="application/yaml")
    assert "--data-binary" not in str(e.value)
    with pytest.raises(InputFormatError) as e:
        load_spec_text('{"input": {"shape": [16]}, "layers": [', content_type="application/json")
    assert "--data-binary" not in str(e.value)


def test_api_refusal_names_data_binary(idle_api):
    r = idle_api.post("/v1/checks/architecture", content=_curl_d(_SPEC), headers={"Content-Type": "application/yaml"})
    assert r.status_code == 400 and "--data-binary" in r.json()["detail"]
