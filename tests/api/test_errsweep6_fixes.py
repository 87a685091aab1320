"""errsweep6 fixes at the API's doors and the ONNX static reader:

- H1: an input shape's size in Unicode digits ('²', '١'), of 5000 digits or past 2^31-1, in either
  spelling (``input_shape=x=16x²`` as a form field or query, ``--input-shape``), and the integer
  options (``batch_size``, ``seeds``), are 422 ``invalid_option`` naming the size, not a 500.
- H12: an ONNX STRING initializer (or a Constant's STRING value) is refused before a job exists,
  by name, not inside the job as numpy's "element type object".
- H10: a webhook host whose label is not letters, digits and inner hyphens (``exa%00mple.com``) is
  422 at ``/url``; a JSON body's door answers 415 for a body sent as text/plain or YAML.
- H7: a JSON body or JSON option that names a key twice is 422 naming the key and its pointer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.onnx_static import (
    check_tensor_data,
    input_shapes_from,
    parse_input_shape,
    read_header,
)
from gradhealth.api.bodies import DuplicateKey, strict_loads
from gradhealth.errors import InputFormatError
from gradhealth.webhooks.addresses import UrlRefused, parse
from tests.api.helpers import Api

PUBLIC = "https://93.184.216.34/hook"  # an address literal: no name to resolve in a test


def _gemm(weight: Any, dynamic: bool = True) -> bytes:
    """A one-Gemm ONNX model x[N, 8] @ W[8, 4] + B, its weight ``weight``, as bytes."""
    b = numpy_helper.from_array(np.zeros(4, np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "B"], ["y"], name="fc")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N" if dynamic else 16, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N" if dynamic else 16, 4])], [weight, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return model.SerializeToString()


_FLOAT_W = numpy_helper.from_array(np.ones((8, 4), np.float32), "W")
_STRING_W = helper.make_tensor("W", TensorProto.STRING, [8, 4], [b"a"] * 32)

# --- H1: one ASCII-only, bounded size parser ------------------------------------------------------

BAD_SIZES = [("x=16x\u00b2", "'\u00b2' is not a whole number in the digits 0-9"),
             ("x=16x\u0661", "'\u0661' is not a whole number in the digits 0-9"),
             ("x=16x" + "9" * 5000, "(5000 digits) out of range (1..2^31-1)"),
             ("x=16x99999999999999999999", "size 99999999999999999999 out of range (1..2^31-1)"),
             ("x=2147483648", "size 2147483648 out of range"),
             ("x=16x0", "size 0 out of range")]


@pytest.mark.parametrize(("text", "message"), BAD_SIZES, ids=["superscript", "arabic", "5000-digits",
                                                              "over-int64", "2^31", "zero"])
def test_input_shape_sizes_are_ascii_and_bounded(text: str, message: str) -> None:
    with pytest.raises(InputFormatError, match=r"^input shape ") as caught:
        parse_input_shape(text)
    assert message in caught.value.detail


def test_input_shape_bounds_are_the_json_spellings() -> None:
    assert parse_input_shape("x=2147483647x0016") == ("x", [2**31 - 1, 16])
    assert input_shapes_from({"x": [2**31 - 1]}) == {"x": [2**31 - 1]}
    with pytest.raises(InputFormatError):
        input_shapes_from({"x": [2**31]})


@pytest.mark.parametrize(("text", "message"), BAD_SIZES[:4], ids=["superscript", "arabic", "5000-digits",
                                                                  "over-int64"])
@pytest.mark.parametrize("door", ["form", "query"])
def test_model_door_refuses_bad_sizes_with_422(idle_api: Api, door: str, text: str, message: str) -> None:
    model = _gemm(_FLOAT_W)
    if door == "form":
        r = idle_api.post("/v1/checks/model", files={"file": ("m.onnx", model)},
                          data={"input_shape": text, "seeds": "1"})
    else:
        r = idle_api.post("/v1/checks/model", params={"input_shape": text, "seeds": "1"}, content=model,
                          headers={"Content-Type": "application/onnx"})
    assert r.status_code == 422, r.text
    assert r.json()["type"].endswith("/invalid-option")
    assert message in r.json()["detail"]
    assert idle_api.get("/livez").status_code == 200  # the connection was kept


@pytest.mark.parametrize(("field", "value"), [("batch_size", "\u00b2"), ("seeds", "\u0661"),
                                              ("batch_size", "9" * 5000)])
def test_integer_options_in_unicode_or_huge_are_422(idle_api: Api, field: str, value: str) -> None:
    r = idle_api.post("/v1/checks/model", files={"file": ("m.onnx", _gemm(_FLOAT_W))}, data={field: value})
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(f"{field}: expected an integer from 1 to ")


# --- H12: a STRING initializer is refused statically -------------------------------------------------

def test_string_initializer_is_refused_by_name() -> None:
    with pytest.raises(ModelError, match=r"^initializer 'W': a STRING tensor \(text\), not numbers"):
        read_header(_gemm(_STRING_W, dynamic=False))


def test_string_constant_is_refused_by_node() -> None:
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["c"], name="k",
                          value=helper.make_tensor("v", TensorProto.STRING, [1], [b"a"]))], "g", [],
        [helper.make_tensor_value_info("c", TensorProto.STRING, [1])])
    with pytest.raises(ModelError, match=r"^node k \(Constant\), attribute 'value': a STRING tensor"):
        check_tensor_data(graph)


def test_string_weight_is_422_before_a_job(idle_api: Api) -> None:
    r = idle_api.post("/v1/checks/model?seeds=1", content=_gemm(_STRING_W, dynamic=False),
                      headers={"Content-Type": "application/onnx"})
    assert r.status_code == 422, r.text
    assert "initializer 'W': a STRING tensor" in r.json()["detail"]


# --- H10: host labels, and the JSON doors' content type -----------------------------------------------

@pytest.mark.parametrize("url", ["http://exa%00mple.com/", "http://a_b.example.com/", "http://-a.example/",
                                 "http://a-.example/", "http://ex!ample.com/"])
def test_host_labels_are_letters_digits_and_inner_hyphens(url: str) -> None:
    with pytest.raises(UrlRefused, match="is not a valid domain name: .* is not letters, digits"):
        parse(url)


@pytest.mark.parametrize("url", ["https://example.com/x", "http://a-b.c9.example/", "http://bücher.example/",
                                 "http://xn--bcher-kva.example/", PUBLIC])
def test_ordinary_hosts_still_pass(url: str) -> None:
    parse(url)


def test_webhook_with_percent_in_host_is_422_at_url(idle_api: Api) -> None:
    r = idle_api.post("/v1/webhooks", json={"url": "http://exa%00mple.com/"})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["pointer"] == "/url"


@pytest.mark.parametrize("content_type", ["text/plain", "application/yaml", None])
@pytest.mark.parametrize(("path", "body"), [("/v1/webhooks", b'{"url": "%s"}' % PUBLIC.encode()),
                                            ("/v1/runs", b'{"name": "ct-probe"}')])
def test_json_doors_answer_415_for_other_types(idle_api: Api, path: str, body: bytes,
                                               content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    r = idle_api.post(path, content=body, headers=headers)
    assert r.status_code == 415, r.text
    assert r.json()["detail"] == f"send the body as application/json, not {content_type or 'no type'}"


def test_json_doors_take_json_with_a_charset(idle_api: Api) -> None:
    r = idle_api.post("/v1/runs", content=b'{"name": "ct-ok"}',
                      headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 201, r.text


# --- H7: a key named twice ------------------------------------------------------------------------------

def test_strict_loads_names_the_key_and_its_pointer() -> None:
    assert strict_loads('{"a": {"b": 1}, "c": [1]}') == {"a": {"b": 1}, "c": [1]}
    with pytest.raises(DuplicateKey) as caught:
        strict_loads('{"a": [0, {"k/x": 1, "k/x": 2}]}')
    assert caught.value.pointer == "/a/1/k~1x"
    assert str(caught.value).startswith("/a/1/k~1x: the key 'k/x' appears twice in one object")


@pytest.mark.parametrize(("path", "body", "key"), [
    ("/v1/webhooks", b'{"url": "https://example.com/a", "url": "https://example.org/b"}', "url"),
    ("/v1/runs", b'{"name": "dupkey-a", "name": "dupkey-b"}', "name"),
    ("/v1/runs", b'{"name": "dupkey-c", "config": {"num_classes": 5, "num_classes": 6}}',
     "config/num_classes"),
])
def test_json_bodies_refuse_a_repeated_key(idle_api: Api, path: str, body: bytes, key: str) -> None:
    r = idle_api.post(path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["errors"][0]["pointer"] == f"/{key}"
    assert f"the key '{key.rsplit('/', 1)[-1]}' appears twice" in problem["detail"]


def test_webhook_patch_refuses_a_repeated_key(idle_api: Api) -> None:
    created = idle_api.post("/v1/webhooks", json={"url": PUBLIC})
    assert created.status_code == 201, created.text
    r = idle_api.request("PATCH", f"/v1/webhooks/{created.json()['id']}",
                         content=b'{"active": false, "active": true}', headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["pointer"] == "/active"
    idle_api.delete(f"/v1/webhooks/{created.json()['id']}")


@pytest.mark.parametrize(("field", "text", "pointer"), [
    ("input_shapes", '{"x": [16, 8], "x": [1, 1]}', "/x"),
    ("optimizer", '{"type": "adam", "lr": 0.1, "type": "sgd"}', "/type"),
])
def test_model_options_refuse_a_repeated_key(idle_api: Api, field: str, text: str, pointer: str) -> None:
    r = idle_api.post("/v1/checks/model", files={"file": ("m.onnx", _gemm(_FLOAT_W))}, data={field: text})
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(f"{field}: {pointer}: the key ")
