"""errsweep5's small messages: a JSON spec with a UTF-8 byte-order mark is read (it got Python's
"decode using utf-8-sig" and was told to declare itself YAML); a NUL in YAML is named at its line
and column (raw PyYAML text over two lines, no line); ``?wait=nan`` is "not a number" (it read
"should be >= 0"); an id echoed in a 404 is escaped and at most 64 characters."""

from __future__ import annotations

import json

SPEC = {"input": {"shape": [4]}, "seeds": 1, "layers": [{"type": "linear", "out_features": 3}]}


def test_a_json_spec_with_a_byte_order_mark_is_read(api):
    body = b"\xef\xbb\xbf" + json.dumps(SPEC).encode()
    r = api.post("/v1/checks/architecture?wait=30", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code in (200, 202), r.text
    assert "utf-8-sig" not in r.text and "YAML" not in r.text


def test_a_nul_in_yaml_is_named_at_its_line_and_column(api):
    body = b"input: {shape: [4]}\nname: \"a\x00b\"\nlayers: [{type: linear, out_features: 3}]\n"
    r = api.post("/v1/checks/architecture", content=body, headers={"Content-Type": "application/yaml"})
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    # 'name: "a' is 8 characters: the NUL is line 2's 9th
    assert detail.startswith("invalid YAML at line 2, column 9: a NUL character (0x00)"), detail
    assert "\n" not in detail


def test_wait_nan_is_not_a_number(api):
    r = api.post("/v1/checks/architecture?wait=nan", json=SPEC)
    assert r.status_code == 422, r.text
    assert "'nan' is not a number (NaN): give a number >= 0" in r.json()["detail"], r.text


def test_an_echoed_id_is_escaped_and_bounded(api):
    r = api.get("/v1/jobs/%00")
    assert r.status_code == 404, r.text
    assert r.json()["detail"] == "no job \\x00"
    r = api.get("/v1/jobs/" + "a" * 10_000)
    assert r.status_code == 404, r.text
    assert r.json()["detail"] == f"no job {'a' * 64}... (10000 characters)"
    r = api.get("/v1/runs/%07x")
    assert r.status_code in (404, 422), r.text
    assert "\x07" not in r.text
