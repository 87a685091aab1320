"""newuser9 over HTTP: #6 a Keras file's document is named by the model (its config's ``name``) as
in-process, not by the upload's file name; #9 a body that is not UTF-8 names the offset and the byte
apart; #11 the layer limit points at a place the spec has; #12 an unclosed YAML flow mapping is
named where it opens."""

from __future__ import annotations

import json

import pytest

from tests.helpers import small_keras_config


@pytest.mark.parametrize(("model_name", "expected"), [("seq", "seq"), (None, "keras_model.json")])
def test_a_keras_upload_is_named_as_in_process(api, model_name, expected):
    from gradhealth import check_keras

    config = small_keras_config(model_name)
    r = api.post("/v1/checks/model", files={"file": ("keras_model.json", json.dumps(config).encode())},
                 data={"seeds": "1", "verify": "false", "filename": "keras_model.json"})
    assert r.status_code == 202, r.text
    job = api.wait_done(r.json()["id"], timeout=300)
    assert job["status"] == "succeeded", job
    assert job["result"]["name"] == expected
    assert job["name"] == "keras_model.json"  # the job listing keeps the uploaded file's name
    if model_name is not None:  # the same document in-process
        assert check_keras(config, seeds=1, verify=False).name == expected


def test_a_spec_body_that_is_not_utf8_names_offset_and_byte(api):
    r = api.post("/v1/checks/architecture", content=b"\xc0\xbd\x01 garbage",
                 headers={"content-type": "application/yaml"})
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert "not UTF-8 text at byte offset 0 (byte 0xc0)" in detail and "(byte 0)" not in detail


def test_live_points_that_are_not_utf8_name_offset_and_byte(api):
    run = api.post("/v1/runs", json={"name": "nu9-bytes"}).json()
    r = api.post(f"/v1/runs/{run['id']}/points", content=b'{"step": 0}\n\xff',
                 headers={"content-type": "application/x-ndjson"})
    assert r.status_code in (400, 422), r.text
    assert "at byte offset 12 (byte 0xff)" in r.json()["detail"]


def test_five_thousand_plain_layers_are_refused_at_a_real_place(api):
    spec = {"input": {"shape": [8]}, "layers": [{"type": "linear", "out_features": 8} for _ in range(5000)]}
    r = api.post("/v1/checks/architecture", json=spec)
    assert r.status_code == 422, r.text
    problem = r.json()
    pointers = [e["pointer"] for e in problem.get("errors", [])] or [problem["detail"].split(":")[0]]
    assert "/layers/2000" in pointers and not any(p.endswith("/repeat") for p in pointers), problem
    assert "the spec lists 5,000 layers" in problem["detail"]


def test_an_unclosed_yaml_flow_mapping_is_a_400_at_its_opening(api):
    r = api.post("/v1/checks/architecture", content=b"input: {shape: [784]\nlayers:\n  - {type: linear, out_features: 10}\n",
                 headers={"content-type": "application/yaml"})
    assert r.status_code == 400, r.text
    assert r.json()["detail"].startswith("invalid YAML at line 1, column 8: a flow mapping opened there is not closed")
