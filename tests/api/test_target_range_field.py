"""POST /v1/checks/model's ``target_range`` field (peersweep8 h07): where a Keras model's regression
targets lie, the spec's ``loss.target_range``; a bad range, or one for an .onnx file, is 422 before a job."""

from __future__ import annotations

import json

import torch
from torch import nn

from tests.analysis.onnx_models import export, mlp
from tests.analysis.test_keras_import import _dense, _init, _seq


def _xor() -> bytes:
    cfg = _seq(_dense("hidden", 4, "sigmoid", _init("GlorotUniform")), _dense("out", 1, "sigmoid"), shape=[2])
    return json.dumps({**cfg, "compile_config": {"loss": "mean_squared_error", "optimizer": "sgd"}}).encode()


def test_a_target_range_field_reaches_the_keras_check(api):
    r = api.post("/v1/checks/model", files={"file": ("xor.json", _xor())},
                 data={"seeds": "1", "verify": "false", "target_range": "0,1"})
    assert r.status_code == 202, r.text
    job = api.wait_done(r.json()["id"], timeout=300)
    assert job["status"] == "succeeded", job
    [f] = [f for f in job["result"]["findings"] if f["code"] == "output_loss_mismatch"]
    assert f["severity"] == "info" and f["evidence"]["targets"] == "in [0, 1]"


def test_a_bad_target_range_or_one_for_an_onnx_file_is_422(idle_api):
    r = idle_api.post("/v1/checks/model", files={"file": ("xor.json", _xor())}, data={"target_range": "1,0"})
    assert r.status_code == 422 and "target_range" in r.json()["detail"], r.text
    torch.manual_seed(0)
    onnx = export(mlp(nn.ReLU, depth=2, width=8), torch.randn(4, 8))
    r = idle_api.post("/v1/checks/model", files={"file": ("m.onnx", onnx)}, data={"target_range": "0,1"})
    assert r.status_code == 422 and "target_range" in r.json()["detail"], r.text
