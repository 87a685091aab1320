"""errsweep8 #4: JSON that is not a Keras model config (``null``, ``42``, ``[]``, a string, deeply
nested arrays) sent to the model route was called "not an ONNX protobuf (... Wire format was
corrupt)"; a valid but deeply nested config in a ``.keras`` archive got Python's "maximum
recursion depth exceeded"."""

from __future__ import annotations

import io
import zipfile

import pytest

from gradhealth.analysis.importers import keras as _keras

MAX_CONFIG_DEPTH = getattr(_keras, "MAX_CONFIG_DEPTH", 200)


@pytest.mark.parametrize(("body", "kind"), [(b"null", "null"), (b"42", "a number"), (b"[]", "a list"),
                                            (b'"Sequential"', "a string"), (b"  [1, {\"a\": 2}]\n", "a list")])
def test_json_that_is_not_a_keras_config_is_named_as_json(api, body, kind):
    r = api.post("/v1/checks/model", files={"file": ("m.json", body)})
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert f"the upload is JSON text ({kind}) but not a Keras model config" in detail
    assert "`class_name` and `config.layers`" in detail and "protobuf (" not in detail


def test_deeply_nested_json_is_refused_by_its_depth_before_parsing(api):
    depth = 100_000  # past Python's decoder recursion (about 1,000)
    r = api.post("/v1/checks/model", files={"file": ("m.json", b"[" * depth + b"]" * depth)})
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert f"nested {depth:,} levels deep, more than the {MAX_CONFIG_DEPTH} levels" in detail
    assert "recursion" not in detail and "protobuf (" not in detail


def test_a_deeply_nested_keras_config_says_how_deep_not_pythons_words(api):
    depth = 5_000
    config = ('{"class_name": "Sequential", "config": {"name": "s", "layers": [], "x": '
              + "[" * depth + "]" * depth + "}}")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("config.json", config)
        z.writestr("metadata.json", '{"keras_version": "3.3.3"}')
    r = api.post("/v1/checks/model", files={"file": ("m.keras", buf.getvalue())})
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    # the config's own two levels and the list's
    assert f"config.json is nested {depth + 2:,} levels deep, more than the {MAX_CONFIG_DEPTH}" in detail
    assert "recursion" not in detail
