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
        _layer("Lambda", "lam"), shape=[4])).encode())})
    assert r.status_code == 422, r.text
    assert "Lambda (lam)" in r.json()["detail"]


def test_a_trained_prelu_alpha_is_refused_before_a_job_as_the_job_would(api):
    # the translation reads a PReLU's stored alpha: the API's check must read it too
    import numpy as np

    from tests.analysis.test_keras_layers import _h5_keras2, _prelu_model, _stored

    stored, _ = _stored(np.linspace(0.0, 0.5, 6).astype(np.float32))  # one slope per unit
    data = _h5_keras2(_prelu_model("keras2"), stored)
    r = api.post("/v1/checks/model", files={"file": ("m.h5", data)}, data={"seeds": "1"})
    assert r.status_code == 422, r.text
    assert "prelu: PReLU with stored alpha that differs between units" in r.json()["detail"]
    r = api.post("/v1/checks/model", files={"file": ("m.h5", data)},
                 data={"seeds": "1", "verify": "false", "weights": "reinitialise"})
    assert r.status_code == 202, r.text  # the architecture alone: Keras' zeros, a ReLU


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
