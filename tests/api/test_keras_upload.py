"""POST /v1/checks/model with Keras files: detected by content, refused before a job when they
cannot be translated, and diagnosed by the worker like the in-process check."""

from __future__ import annotations

import io
import json
import zipfile

from tests.analysis.test_keras_import import _layer, _seq, _sigmoid_stack


def _zip(config: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("config.json", json.dumps(config))
    return buf.getvalue()


def test_a_keras_archive_is_checked_by_the_worker(api):
    r = api.post("/v1/checks/model", files={"file": ("m.keras", _zip(_sigmoid_stack()))},
                 data={"seeds": "1", "verify": "false"})
    assert r.status_code == 202, r.text
    job = api.wait_done(r.json()["id"], timeout=300)
    assert job["status"] == "succeeded", job
    assert "vanishing_gradient" in {f["code"] for f in job["result"]["findings"]}


def test_untranslatable_keras_layers_are_422_before_a_job(api):
    r = api.post("/v1/checks/model", files={"file": ("m.json", json.dumps(_seq(
        _layer("Lambda", "lam", output_shape=[3]), shape=[4])).encode())})  # a shape change
    assert r.status_code == 422, r.text
    assert "Lambda (lam)" in r.json()["detail"]


def test_a_trained_prelu_alpha_goes_through_the_graph_door(api):
    # one slope per unit is no spec activation: the API accepts it as the job will check it (the
    # graph door), and the job's document comes from the file's weights
    import numpy as np

    from tests.analysis.test_keras_layers import _h5_keras2, _prelu_model, _stored

    stored, _ = _stored(np.linspace(0.0, 0.5, 6).astype(np.float32))  # one slope per unit
    data = _h5_keras2(_prelu_model("keras2"), stored)
    r = api.post("/v1/checks/model", files={"file": ("m.h5", data)},
                 data={"seeds": "1", "verify": "false"})
    assert r.status_code == 202, r.text
    job = api.wait_done(r.json()["id"], timeout=300)
    assert job["status"] == "succeeded", job
    assert "as stored in the file" in job["result"]["summary"]


def test_a_keras_applications_style_graph_is_checked_and_a_bad_one_refused_first(api):
    # depthwise and separable convolutions, squeeze-and-excitation, Concatenate: the graph door
    from pathlib import Path

    data = (Path(__file__).parents[1] / "data/keras/mobile_dense_block.keras").read_bytes()
    r = api.post("/v1/checks/model", files={"file": ("m.keras", data)},
                 data={"seeds": "1", "verify": "false"})
    assert r.status_code == 202, r.text
    job = api.wait_done(r.json()["id"], timeout=300)
    assert job["status"] == "succeeded", job
    names = [layer["name"] for layer in job["result"]["layers"]]
    assert {"dw", "sep.depthwise", "sep.pointwise", "proj", "head"} <= set(names), names
    # a shape that does not fit is refused before a job, naming the layer
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        config = json.loads(zf.read("config.json"))
    for lay in config["config"]["layers"]:
        if lay["name"] == "proj":
            lay["config"]["filters"] = 5  # the Add's branches no longer match (8 and 5 channels)
    r = api.post("/v1/checks/model", files={"file": ("m.keras", _zip(config))})
    assert r.status_code == 422, r.text
    assert "add (Add): Add of shapes" in r.json()["detail"]


def test_a_uniform_stored_alpha_is_accepted_over_a_random_initialiser(api):
    # the config alone would be refused (a random alpha_initializer); the file's weights decide
    import numpy as np

    from tests.analysis.test_keras_layers import _h5_keras2, _init, _prelu_model, _stored

    cfg = _prelu_model("keras2", _init("keras2", "RandomUniform", minval=-0.05, maxval=0.05))
    stored, _ = _stored(np.full(6, 0.2, np.float32))
    r = api.post("/v1/checks/model", files={"file": ("m.h5", _h5_keras2(cfg, stored))},
                 data={"seeds": "1", "verify": "false"})
    assert r.status_code == 202, r.text
    job = api.wait_done(r.json()["id"], timeout=300)
    assert job["status"] == "succeeded", job
    assert [layer["name"] for layer in job["result"]["layers"]] == ["d", "out"]


def test_a_variable_length_keras_input_takes_its_sizes_from_input_shapes(api):
    from tests.analysis.test_keras_real_files import _variable_length_lstm

    body = json.dumps(_variable_length_lstm()).encode()
    r = api.post("/v1/checks/model", files={"file": ("m.json", body)}, data={"seeds": "1", "verify": "false"})
    assert r.status_code == 202, r.text  # left dynamic: the default length, said in the summary
    job = api.wait_done(r.json()["id"], timeout=300)
    assert job["status"] == "succeeded" and "--input-shape" in job["result"]["summary"], job
    r = api.post("/v1/checks/model", files={"file": ("m.json", body)},
                 data={"seeds": "1", "verify": "false", "input_shapes": json.dumps({"notes": [16, 6]})})
    assert r.status_code == 202, r.text
    job = api.wait_done(r.json()["id"], timeout=300)
    assert job["status"] == "succeeded", job
    assert max(s["t"] for s in job["result"]["time_steps"]) == 15


def test_a_keras_files_compiled_loss_is_used_when_the_request_names_none(api):
    # a regression compiled with mse, one linear output: under the default cross-entropy (a softmax
    # over one unit) no gradient would reach it; the file says mse, as check_keras reads it
    from tests.analysis.test_keras_import import _dense

    config = {**_seq(_dense("h", 16, "relu"), _dense("out", 1), shape=[8]),
              "compile_config": {"loss": "mse", "optimizer": "adam"}}
    r = api.post("/v1/checks/model", files={"file": ("m.keras", _zip(config))},
                 data={"seeds": "1", "verify": "false"})
    assert r.status_code == 202, r.text
    job = api.wait_done(r.json()["id"], timeout=300)
    assert job["status"] == "succeeded", job
    assert job["result"]["findings"] == [], job["result"]["findings"]


def test_the_model_route_takes_every_loss_the_checks_take(api):
    # kerassweep27: the route offered cross_entropy and mse only; one list (core.losses.LOSSES)
    from gradhealth.core.losses import LOSSES

    config = json.dumps(_seq(_layer("Dense", "out", units=1, activation="linear"), shape=[4])).encode()
    r = api.post("/v1/checks/model", files={"file": ("m.json", config)},
                 data={"seeds": "1", "verify": "false", "loss": "binary_cross_entropy"})
    assert r.status_code == 202, r.text
    r = api.post("/v1/checks/model", files={"file": ("m.json", config)}, data={"loss": "bce"})
    assert r.status_code == 422, r.text
    assert all(name in r.json()["detail"] for name in LOSSES)
    schema = api.get("/openapi.json").json()["paths"]["/v1/checks/model"]["post"]["requestBody"]
    assert schema["content"]["multipart/form-data"]["schema"]["properties"]["loss"]["enum"] == list(LOSSES)
