"""POST /v1/checks/model's ``input_range`` field for a Keras upload (kerassweep15 u02): the float inputs
drawn uniform in it, as for an ONNX file; a bad range is a 422 before a job."""

from __future__ import annotations

import numpy as np

from tests.analysis.test_keras_import import _h5_keras2
from tests.analysis.test_keras_input_range import _mlp


def _stored_tanh() -> bytes:
    """64 inputs -> Dense(32, tanh) with positive weights near 0.1 -> softmax(4), stored. On N(0, 1)
    inputs a hidden pre-activation has std about 0.1 * sqrt(64) = 0.8 (tanh unsaturated); on U(10, 11)
    inputs it is about 64 * 10.5 * 0.1 = 67: every unit saturated."""
    rng = np.random.default_rng(0)
    return _h5_keras2(_mlp(), {"hidden": [("kernel", rng.uniform(0.05, 0.15, (64, 32))), ("bias", np.zeros(32))],
                               "out": [("kernel", rng.normal(0, 0.1, (32, 4))), ("bias", np.zeros(4))]})


def test_an_input_range_field_reaches_the_keras_check(api):
    codes = {}
    for given in (None, "10,11"):
        data = {"seeds": "1", "verify": "false", "loss": "cross_entropy"} | ({"input_range": given} if given else {})
        r = api.post("/v1/checks/model", files={"file": ("tanh.h5", _stored_tanh())}, data=data)
        assert r.status_code == 202, r.text
        job = api.wait_done(r.json()["id"], timeout=300)
        assert job["status"] == "succeeded", job
        codes[given] = {f["code"]: f for f in job["result"]["findings"]}
    assert "saturation" not in codes[None]
    assert "drawn uniform in [10, 11] (the range given)" in codes["10,11"]["saturation"]["explanation"]


def test_a_bad_input_range_for_a_keras_file_is_422(idle_api):
    r = idle_api.post("/v1/checks/model", files={"file": ("tanh.h5", _stored_tanh())}, data={"input_range": "1,0"})
    assert r.status_code == 422 and "input_range" in r.json()["detail"], r.text
