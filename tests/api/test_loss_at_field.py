"""POST /v1/checks/model's ``loss_at`` and ``input_range`` fields (onnxsweep14): the ONNX tensor the loss
is taken at and the range the float inputs are drawn in; an unknown tensor, a bad range, or loss_at for
a Keras file is 422 before a job; a known tensor reaches the check (input_range for a Keras file:
tests/api/test_keras_input_range_field.py)."""

from __future__ import annotations

from tests.analysis.test_onnx_sweep14_fixes import _brain
from tests.api.test_target_range_field import _xor


def test_loss_at_and_input_range_reach_the_onnx_check(api):
    r = api.post("/v1/checks/model", files={"file": ("brain.onnx", _brain())},
                 data={"seeds": "1", "verify": "false", "loss_at": "logits1", "input_range": "0,1"})
    assert r.status_code == 202, r.text
    job = api.wait_done(r.json()["id"], timeout=300)
    assert job["status"] == "succeeded", job
    assert "'logits1', as asked" in job["result"]["summary"]
    assert len(job["result"]["layers"]) == 3  # the body and branch 1's head; branch 0 is not read


def test_an_unknown_loss_at_a_bad_input_range_or_loss_at_for_keras_is_422(idle_api):
    r = idle_api.post("/v1/checks/model", files={"file": ("brain.onnx", _brain())}, data={"loss_at": "nope"})
    assert r.status_code == 422 and "its outputs are 'version_number'" in r.json()["detail"], r.text
    r = idle_api.post("/v1/checks/model", files={"file": ("brain.onnx", _brain())}, data={"input_range": "1,0"})
    assert r.status_code == 422 and "input_range" in r.json()["detail"], r.text
    r = idle_api.post("/v1/checks/model", files={"file": ("xor.json", _xor())}, data={"loss_at": "out"})
    assert r.status_code == 422 and "loss_at" in r.json()["detail"], r.text
