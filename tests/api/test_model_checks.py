"""POST /v1/checks/model: an ONNX upload becomes the same diagnosis as check_onnx in-process, and
what cannot be checked is refused at submission, by the API process, without torch."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from gradhealth import check_onnx
from gradhealth.analysis.importers.onnx import OPS
from gradhealth.analysis.importers.onnx_static import SUPPORTED_OPS, parse_input_shape
from gradhealth.errors import InputFormatError
from tests.analysis.onnx_models import export, mlp
from tests.api.helpers import Api, running_app, settings_for

PROBLEM = "application/problem+json"
ROOT = Path(__file__).resolve().parents[2]


def _strip_durations(doc: Any) -> Any:
    """The document without wall-clock figures (the only thing two identical runs may differ in)."""
    if isinstance(doc, dict):
        return {k: _strip_durations(v) for k, v in doc.items() if not k.startswith("duration")}
    if isinstance(doc, list):
        return [_strip_durations(v) for v in doc]
    return doc


def sigmoid_mlp() -> bytes:
    torch.manual_seed(0)
    return export(mlp(nn.Sigmoid, depth=6, width=16), torch.randn(8, 16))


def dynamic_mlp() -> bytes:
    torch.manual_seed(1)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(mlp(nn.ReLU, depth=2, width=16, he=True), (torch.randn(4, 16),), f, dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    return f.getvalue()


def tiny_graph(op: str = "Relu", *, external: bool = False) -> bytes:
    """A MatMul + one op graph built with onnx.helper alone (no torch needed to make it)."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], np.eye(4, dtype=np.float32).ravel())
    if external:
        w.ClearField("float_data")
        w.data_location = TensorProto.EXTERNAL
        entry = w.external_data.add()
        entry.key, entry.value = "location", "../../etc/passwd"
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
                           helper.make_node(op, ["h"], ["y"], name="act1")], "tiny",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_the_api_knows_every_op_the_worker_interprets():
    # The API refuses unsupported ops from this list without torch; the worker builds from OPS.
    assert {k for k in OPS if not k.startswith("_")} == SUPPORTED_OPS


def test_an_upload_gets_the_in_process_diagnosis(api, tmp_path):
    data = sigmoid_mlp()
    r = api.post("/v1/checks/model", files={"file": ("mlp.onnx", data)}, data={"seeds": "1"})
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/v1/jobs/{r.json()['id']}" and r.json()["kind"] == "model"
    job = api.wait_done(r.json()["id"], timeout=300)
    assert job["status"] == "succeeded", job
    path = tmp_path / "mlp.onnx"
    path.write_bytes(data)
    local = check_onnx(path, seeds=1).model_dump(mode="json")
    assert local["status"] == "unhealthy" and any(f["code"] == "vanishing_gradient" for f in local["findings"])
    assert _strip_durations(job["result"]) == _strip_durations(local)
    # the events stream of a finished model job ends with its terminal event
    events = api.get(f"/v1/jobs/{job['id']}/events")
    assert events.status_code == 200 and "succeeded" in events.text
    # deleting the finished job removes its upload folder (and only that)
    folders = list((Path(api.app.state.settings.upload_dir)).iterdir())
    assert api.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert len(list(Path(api.app.state.settings.upload_dir).iterdir())) == len(folders) - 1


def test_raw_body_with_query_options_and_a_dynamic_dimension(api, tmp_path):
    data = dynamic_mlp()
    r = api.post("/v1/checks/model?wait=120&filename=dyn.onnx&seeds=1&verify=false&weights=reinitialise"
                 "&loss=mse&input_shape=x=6x16", content=data, headers={"content-type": "application/onnx"})
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["status"] == "succeeded", job
    path = tmp_path / "dyn.onnx"
    path.write_bytes(data)
    local = check_onnx(path, seeds=1, verify=False, weights="reinitialise", loss="mse",
                       input_shapes={"x": [6, 16]})
    assert job["result"]["simulation"]["batch_size"] == 6
    assert _strip_durations(job["result"]) == _strip_durations(local.model_dump(mode="json"))


def test_a_job_kind_filter_lists_model_jobs(idle_api):
    r = idle_api.post("/v1/checks/model", files={"file": ("t.onnx", tiny_graph())})
    assert r.status_code == 202, r.text
    page = idle_api.get("/v1/jobs?kind=model").json()
    assert r.json()["id"] in [j["id"] for j in page["items"]]
    assert all(j["kind"] == "model" for j in page["items"])


def test_not_onnx_is_refused_at_submission(idle_api):
    # A zip is what a .keras archive is, so it is refused as a damaged Keras file rather than as ONNX.
    for body, said in ((b"layers:\n  - linear: 3\n", "not an ONNX model"),
                       (b"PK\x03\x04zipzipzip", "not a .keras archive"),
                       (bytes(range(256)), "not an ONNX model")):
        r = idle_api.post("/v1/checks/model", files={"file": ("m.onnx", body)})
        assert r.status_code == 400 and r.headers["content-type"] == PROBLEM, r.text
        assert said in r.json()["detail"]
    r = idle_api.post("/v1/checks/model", files={"file": ("m.onnx", b"")})
    assert r.status_code == 422 and "empty" in r.json()["detail"]
    r = idle_api.post("/v1/checks/model", content=tiny_graph(), headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "application/onnx" in r.json()["detail"]


def test_unsupported_ops_are_all_named_with_their_nodes(idle_api):
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], np.zeros(16, np.float32))
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["a"], name="mm"),
                           helper.make_node("Loop", ["a"], ["b"], name="loop1"),
                           helper.make_node("NonMaxSuppression", ["b"], ["y"], name="nms")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    data = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    r = idle_api.post("/v1/checks/model", files={"file": ("m.onnx", data)})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    detail = r.json()["detail"]
    assert "Loop (node loop1)" in detail and "NonMaxSuppression (node nms)" in detail and "MatMul" not in detail


def test_external_data_missing_sizes_and_limits_are_refused(idle_api):
    r = idle_api.post("/v1/checks/model", files={"file": ("m.onnx", tiny_graph(external=True))})
    assert r.status_code == 422 and "external data" in r.json()["detail"] and "w" in r.json()["detail"]
    r = idle_api.post("/v1/checks/model", files={"file": ("m.onnx", dynamic_mlp())})
    assert r.status_code == 202, r.text  # a dynamic batch takes the default
    r = idle_api.post("/v1/checks/model", files={"file": ("m.onnx", dynamic_mlp())},
                      data={"input_shapes": json.dumps({"x": [3, 16]})})
    assert r.status_code == 202, r.text
    r = idle_api.post("/v1/checks/model", files={"file": ("m.onnx", dynamic_mlp())},
                      data={"input_shapes": json.dumps({"y": [3, 16]})})
    assert r.status_code == 422 and "y" in r.json()["detail"]


@pytest.fixture(scope="module")
def tight_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """No workers, and plan limits a small model can cross."""
    limits = {"max_parameters": 1000, "max_activation_bytes": 1_000_000}
    with running_app(settings_for(tmp_path_factory.mktemp("tight"), workers=0, limits=limits)) as client:
        yield client


def test_parameters_and_activation_memory_over_the_limits_are_422(tight_api):
    # dynamic_mlp: 714 parameters; per row 5 float64 tensors of <= 16 values and their gradients
    # (2 Gemm + 2 Relu outputs of 16, the head's 10): 8 * 2 * (4 * 16 + 10) = 1184 bytes a row.
    r = tight_api.post("/v1/checks/model", files={"file": ("m.onnx", dynamic_mlp())}, data={"batch_size": "512"})
    assert r.status_code == 202, r.text  # 512 rows: about 0.6 MB
    r = tight_api.post("/v1/checks/model", files={"file": ("m.onnx", dynamic_mlp())}, data={"batch_size": "1024"})
    assert r.status_code == 422 and "activations" in r.json()["detail"], r.text  # about 1.2 MB
    torch.manual_seed(0)
    wide = export(mlp(nn.ReLU, depth=1, width=64), torch.randn(2, 64))  # 64*64+64 + 64*10+10 = 4810
    r = tight_api.post("/v1/checks/model", files={"file": ("m.onnx", wide)})
    assert r.status_code == 422 and "4810 parameters" in r.json()["detail"], r.text


def test_bad_options_are_422_naming_the_field(idle_api):
    cases = [({"loss": "hinge"}, "loss"), ({"weights": "random"}, "weights"), ({"batch_size": "0"}, "batch_size"),
             ({"seeds": "1000"}, "seeds"), ({"verify": "maybe"}, "verify"),
             ({"input_shapes": "{not json"}, "input_shapes"), ({"input_shapes": '{"x": [0]}'}, "input_shapes"),
             ({"input_shape": "x=axb"}, "input shape"), ({"bogus": "1"}, "bogus")]
    for fields, name in cases:
        r = idle_api.post("/v1/checks/model", files={"file": ("t.onnx", tiny_graph())}, data=fields)
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, (fields, r.text)
        assert name in r.json()["detail"], (fields, r.json())
    r = idle_api.post("/v1/checks/model?seeds=1", files={"file": ("t.onnx", tiny_graph())}, data={"seeds": "2"})
    assert r.status_code == 422 and "seeds" in r.json()["detail"]
    r = idle_api.post("/v1/checks/model", data={"seeds": "2"}, files={"other": ("t.onnx", tiny_graph())})
    assert r.status_code == 422 and "file" in r.json()["detail"]


def test_upload_over_the_limit_is_413(idle_api):
    torch.manual_seed(0)
    data = export(mlp(nn.ReLU, depth=8, width=64), torch.randn(2, 64))
    assert len(data) > idle_api.app.state.settings.max_upload_bytes
    r = idle_api.post("/v1/checks/model", files={"file": ("big.onnx", data)})
    assert r.status_code == 413 and r.headers["content-type"] == PROBLEM
    r = idle_api.post("/v1/checks/model", content=data, headers={"content-type": "application/onnx"})
    assert r.status_code == 413


def test_idempotency_compares_the_file_and_the_options(idle_api):
    headers = {"Idempotency-Key": "model-1"}
    a = idle_api.post("/v1/checks/model", files={"file": ("a.onnx", tiny_graph())}, headers=headers)
    b = idle_api.post("/v1/checks/model", files={"file": ("a.onnx", tiny_graph())}, headers=headers)
    assert a.status_code == b.status_code == 202 and a.json()["id"] == b.json()["id"]
    renamed = idle_api.post("/v1/checks/model", files={"file": ("b.onnx", tiny_graph())}, headers=headers)
    assert renamed.status_code == 409  # the file name is part of the request (errsweep6 #8)
    c = idle_api.post("/v1/checks/model", files={"file": ("a.onnx", tiny_graph())}, data={"loss": "mse"},
                      headers=headers)
    assert c.status_code == 409
    d = idle_api.post("/v1/checks/model", files={"file": ("a.onnx", tiny_graph("Tanh"))}, headers=headers)
    assert d.status_code == 409


def test_input_shape_syntax():
    assert parse_input_shape("x=1x3x32x32") == ("x", [1, 3, 32, 32])
    assert parse_input_shape("input.1=8,16") == ("input.1", [8, 16])
    for bad in ("x", "=1x2", "x=", "x=1x0", "x=1x-2", "x=ax2"):
        with pytest.raises(InputFormatError):
            parse_input_shape(bad)


def test_the_model_route_runs_without_torch_in_the_api_process(tmp_path):
    # The onnx package alone builds the files and the API validates them: torch must stay unloaded.
    code = f"""
import sys, httpx, anyio, numpy as np
from onnx import TensorProto, helper
from gradhealth.api.app import create_app
from gradhealth.settings import Settings

def graph(op):
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], np.eye(4, dtype=np.float32).ravel())
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
                           helper.make_node(op, ["h"], ["y"], name="act1")], "tiny",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()

async def main():
    app = create_app(Settings(database_url="sqlite:///{tmp_path}/b.db", workers=0,
                              upload_dir="{tmp_path}/uploads"))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            ok = await c.post("/v1/checks/model", files={{"file": ("t.onnx", graph("Relu"))}})
            bad = await c.post("/v1/checks/model", files={{"file": ("t.onnx", graph("Loop"))}})
            print(ok.status_code, bad.status_code, "torch" in sys.modules)

anyio.run(main)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-3:] == ["202", "422", "False"]


def test_an_optimizer_option_checks_the_first_step_of_an_onnx_model(api):
    # an ONNX file does not say how it is trained: the option does. Adam at lr 0.5 on torch's
    # default Linear init moves each layer by about 0.5 * sqrt(3 * fan_in) of its weights
    torch.manual_seed(0)
    data = export(mlp(nn.ReLU, depth=3, width=16), torch.randn(8, 16))
    r = api.post("/v1/checks/model?wait=120", files={"file": ("mlp.onnx", data)},
                 data={"seeds": "1", "optimizer": '{"type": "adam", "lr": 0.5}'})
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["status"] == "succeeded", job
    found = {f["code"]: f for f in job["result"]["findings"]}
    assert found["large_updates"]["severity"] == "error"
    assert found["large_updates"]["evidence"]["value"] == pytest.approx(0.5 * (3 * 16) ** 0.5, rel=0.15)
    fix = next(x for x in found["large_updates"]["remedies"] if x["id"] == "lower_learning_rate")
    assert fix["verified"]["fixed"] is True
    # without the option nothing is said about the rate
    r = api.post("/v1/checks/model?wait=120", files={"file": ("mlp.onnx", data)}, data={"seeds": "1"})
    assert all(f["code"] != "large_updates" for f in r.json()["result"]["findings"])


def test_a_bad_optimizer_option_is_422_naming_what_is_wrong(idle_api):
    for text, says in (('{"type": "adam", "lr": -1e7}', "/lr"), ('{"type": "lion", "lr": 0.1}', "/type"),
                       ("adam", "optimizer"), ('{"type": "adam"}', "/lr")):
        r = idle_api.post("/v1/checks/model", files={"file": ("t.onnx", tiny_graph())},
                          data={"optimizer": text})
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, (text, r.text)
        assert "optimizer" in r.json()["detail"] and says in r.json()["detail"], (text, r.json())
