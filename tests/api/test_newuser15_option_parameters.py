"""newuser15 #10: every 422 of the upload routes names the parameter it is about in ``errors[].parameter``
(docs/http-api.md: "`parameter` (a model option, `seeds`...)"), as ``seeds`` and ``loss`` did:
``?format=``, a ``loss_at`` the graph has no tensor for, ``input_shapes`` for an input the graph
lacks (or not JSON), ``input_shape``, ``target_range``/``input_range`` and a missing ``file`` part."""

from __future__ import annotations

import pytest

from tests.analysis.test_onnx_sweep14_fixes import _brain
from tests.api.test_target_range_field import _xor


def _item(r):  # the one errors[] item of a problem+json 422
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    errors = r.json()["errors"]
    assert len(errors) == 1, errors
    return errors[0]


@pytest.mark.parametrize(("data", "parameter", "words"), [
    ({"loss_at": "nope"}, "loss_at", "no tensor of that name"),
    ({"input_shapes": '{"nope": [8, 64]}'}, "input_shapes", "inputs the graph does not have: nope"),
    ({"input_shape": "nope=8x64"}, "input_shape", "inputs the graph does not have: nope"),
    ({"input_shapes": "{"}, "input_shapes", "not JSON"),
    ({"input_shapes": '{"x": [0]}'}, "input_shapes", "positive"),
    ({"input_shape": "x=0x3"}, "input_shape", "out of range"),
    ({"input_range": "1,0"}, "input_range", "input_range"),
    ({"target_range": "0,1"}, "target_range", "Keras"),
])
def test_an_onnx_upload_s_bad_option_names_its_parameter(idle_api, data, parameter, words):
    item = _item(idle_api.post("/v1/checks/model", files={"file": ("brain.onnx", _brain())}, data=data))
    assert item["parameter"] == parameter, item
    assert words in item["detail"], item


def test_an_unknown_input_names_the_graph_s_inputs(idle_api):
    r = idle_api.post("/v1/checks/model", files={"file": ("brain.onnx", _brain())},
                      data={"input_shapes": '{"nope": [8, 64]}'})
    assert r.json()["code" if "code" in r.json() else "type"].endswith(("invalid-option", "invalid_option"))
    assert "its inputs are '" in r.json()["detail"], r.text


def test_loss_at_for_a_keras_file_names_loss_at(idle_api):
    item = _item(idle_api.post("/v1/checks/model", files={"file": ("xor.json", _xor())}, data={"loss_at": "out"}))
    assert item["parameter"] == "loss_at", item


def test_a_keras_input_shape_for_no_input_names_input_shapes(idle_api):
    item = _item(idle_api.post("/v1/checks/model", files={"file": ("xor.json", _xor())},
                               data={"input_shapes": '{"nope": [4, 2]}'}))
    assert item["parameter"] == "input_shapes", item


def test_an_unknown_format_hint_names_query_format_and_the_readers_of_that_kind(idle_api):
    r = idle_api.post("/v1/checks/logs?format=csv", files={"file": ("training.log", b"epoch,loss\n0,1.0\n")})
    item = _item(r)
    assert item["parameter"] == "query.format", item
    detail = r.json()["detail"]
    # the readers whose descriptions name CSV files, and that the hint can be left out
    assert "csv files are read by" in detail and "keras" in detail.split("csv files are read by")[1], detail
    assert "lightning" in detail.split("csv files are read by")[1], detail
    assert "leave ?format= out" in detail, detail


@pytest.mark.parametrize("route", ["/v1/checks/logs", "/v1/checks/model"])
def test_a_missing_file_part_names_file(idle_api, route):
    item = _item(idle_api.post(route, files={"upload": ("a.csv", b"step,loss\n0,1\n")}))
    assert item["parameter"] == "file", item
    item = _item(idle_api.post(route, files={"file": (None, b"step,loss\n0,1\n")}))
    assert item["parameter"] == "file", item
