"""`gradhealth check model.onnx`: the check_onnx diagnosis, its options as flags, exit 2 for a
file that cannot be checked, and the same document through a real `gradhealth serve`."""

from __future__ import annotations

import io
import json
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from gradhealth import check_onnx
from gradhealth.cli import main
from tests.analysis.onnx_models import export, mlp
from tests.e2e.helpers import GRADHEALTH, env_for, serve


def _strip_durations(doc):  # noqa: ANN001, ANN202
    if isinstance(doc, dict):
        return {k: _strip_durations(v) for k, v in doc.items() if not k.startswith("duration")}
    if isinstance(doc, list):
        return [_strip_durations(v) for v in doc]
    return doc


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    (folder / "sigmoid.onnx").write_bytes(export(mlp(nn.Sigmoid, depth=6, width=16), torch.randn(8, 16)))
    torch.manual_seed(0)
    (folder / "he.onnx").write_bytes(export(mlp(nn.ReLU, depth=3, width=32, he=True), torch.randn(32, 32)))
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(mlp(nn.ReLU, depth=2, width=16, he=True), (torch.randn(4, 16),), f, dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    (folder / "dynamic.onnx").write_bytes(f.getvalue())
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], np.zeros(16, np.float32))
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["a"], name="mm"),
                           helper.make_node("Loop", ["a"], ["y"], name="loop1")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    (folder / "loop.onnx").write_bytes(
        helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    (folder / "text.onnx").write_text("layers:\n  - linear: 3\n")
    return {p.stem: p for p in folder.iterdir()}


def test_an_unhealthy_model_exits_1_with_the_library_document(models, capsys):
    assert main(["check", str(models["sigmoid"]), "--format", "json", "--seeds", "1", "--no-progress"]) == 1
    doc = json.loads(capsys.readouterr().out)
    local = check_onnx(models["sigmoid"], seeds=1).model_dump(mode="json")
    assert any(f["code"] == "vanishing_gradient" for f in local["findings"])
    assert _strip_durations(doc) == _strip_durations(local)


def test_a_healthy_model_exits_0_and_the_text_report_names_its_layers(models, capsys):
    assert main(["check", str(models["he"]), "--seeds", "1", "--no-verify", "--layers", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "healthy" in out.lower() and "0" in out  # layers named as in named_parameters(): 0, 2, 4, 6


def test_flags_reach_the_simulation(models, capsys):
    argv = ["check", str(models["dynamic"]), "--format", "json", "--seeds", "1", "--no-verify", "--no-progress",
            "--loss", "mse", "--weights", "reinitialise", "--input-shape", "x=6x16"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    local = check_onnx(models["dynamic"], seeds=1, verify=False, loss="mse", weights="reinitialise",
                       input_shapes={"x": [6, 16]})
    assert doc["simulation"]["batch_size"] == 6 and doc["simulation"]["seeds"] == 1
    assert _strip_durations(doc) == _strip_durations(local.model_dump(mode="json"))
    assert main(["check", str(models["dynamic"]), "--format", "json", "--seeds", "1", "--no-verify",
                 "--no-progress", "--batch-size", "5"]) == 0
    assert json.loads(capsys.readouterr().out)["simulation"]["batch_size"] == 5


def test_a_dynamic_batch_without_a_size_takes_the_default(models, capsys):
    assert main(["check", str(models["dynamic"]), "--no-progress", "--format", "json", "--seeds", "1",
                 "--no-verify"]) in (0, 1)
    assert json.loads(capsys.readouterr().out)["simulation"]["batch_size"] == 16


@pytest.mark.parametrize(("name", "extra", "message"), [
    ("text", [], "not an ONNX model"),
    ("loop", [], "Loop (node loop1)"),
    ("dynamic", ["--input-shape", "x=axb"], "NAME=1x3x32x32"),
    ("dynamic", ["--input-shape", "nope=2x16"], "nope"),
    ("dynamic", ["--batch-size", "0"], "--batch-size"),
    ("missing", [], "no such file"),
])
def test_what_cannot_be_checked_exits_2(models, capsys, name, extra, message):
    path = str(models.get(name, Path("/nonexistent/missing.onnx")))
    assert main(["check", path, "--no-progress", *extra]) == 2
    assert message in capsys.readouterr().err


def test_model_flags_on_a_spec_are_a_usage_error(capsys):
    assert main(["check", "example:relu_he_mlp", "--loss", "mse"]) == 2
    assert "--loss applies to model files" in capsys.readouterr().err
    assert main(["check", "example:relu_he_mlp", "--optimizer", '{"type": "adam", "lr": 0.1}']) == 2
    assert "a spec carries its own `optimizer`" in capsys.readouterr().err


def test_an_optimizer_flag_checks_the_first_step(models, capsys):
    # He init on 32-wide layers: Adam's first step moves each by lr * sqrt(32 / 2) = 2 at lr 0.5
    argv = ["check", str(models["he"]), "--format", "json", "--seeds", "1", "--no-progress", "--no-verify"]
    assert main([*argv, "--optimizer", '{"type": "adam", "lr": 0.5}']) == 1
    found = {f["code"]: f for f in json.loads(capsys.readouterr().out)["findings"]}
    assert found["large_updates"]["severity"] == "error"
    assert main([*argv, "--optimizer", '{"type": "adam", "lr": 1e-5}']) == 0
    capsys.readouterr()
    assert main([*argv, "--optimizer", '{"type": "adam", "lr": -1e7}']) == 2
    assert "--optimizer: /lr" in capsys.readouterr().err
    # a negative rate is a finding, not a malformed flag
    assert main([*argv, "--optimizer", '{"type": "adam", "lr": -1e-3}']) == 1
    assert "negative_learning_rate" in {f["code"] for f in json.loads(capsys.readouterr().out)["findings"]}


def test_json_problem_for_a_refused_model(models, capsys):
    assert main(["check", str(models["loop"]), "--format", "json"]) == 2
    problem = json.loads(capsys.readouterr().out)
    assert problem["status"] == 422 and "Loop" in problem["detail"]


def test_the_same_document_through_a_real_server(models, tmp_path):
    url = f"sqlite:///{tmp_path}/cli-model.db"
    settings = {"GRADHEALTH_UPLOAD_DIR": str(tmp_path / "uploads")}
    env = env_for(url, **settings)
    argv = ["check", "--format", "json", "--seeds", "1", "--no-verify", "--no-progress",
            "--input-shape", "x=6x16", "--loss", "mse", "--optimizer", '{"type": "adam", "lr": 0.5}']
    local = subprocess.run([*GRADHEALTH, *argv[:1], str(models["dynamic"]), *argv[1:]], env=env,
                           capture_output=True, text=True, timeout=300)
    with serve(url, tmp_path / "serve.log", **settings) as client:
        remote = subprocess.run([*GRADHEALTH, *argv[:1], str(models["dynamic"]), *argv[1:], "--server",
                                 str(client.base_url)], env=env, capture_output=True, text=True, timeout=300)
        refused = subprocess.run([*GRADHEALTH, "check", str(models["loop"]), "--server", str(client.base_url)],
                                 env=env, capture_output=True, text=True, timeout=300)
    # the optimizer reaches the service as a form field: its first step is found too large there
    assert local.returncode == remote.returncode == 1, (local.stderr, remote.stderr)
    assert _strip_durations(json.loads(local.stdout)) == _strip_durations(json.loads(remote.stdout))
    assert [f["code"] for f in json.loads(remote.stdout)["findings"]] == ["large_updates"]
    assert json.loads(remote.stdout)["simulation"]["batch_size"] == 6
    assert refused.returncode == 2 and "Loop (node loop1)" in refused.stderr


def test_a_keras_graph_file_is_checked_by_the_cli_as_by_the_library(capsys):
    # a keras.applications-style block (depthwise, separable, Concatenate): the graph door
    from gradhealth import check_keras

    path = Path(__file__).parent / "data" / "keras" / "mobile_dense_block.h5"
    code = main(["check", str(path), "--format", "json", "--seeds", "1", "--batch-size", "4", "--no-verify"])
    doc = json.loads(capsys.readouterr().out)
    want = check_keras(path, seeds=1, batch_size=4, verify=False).model_dump(mode="json")
    assert code == (1 if want["status"] == "unhealthy" else 0)  # --fail-on error: a warning exits 0
    assert _strip_durations(doc)["layers"] == _strip_durations(want)["layers"]
    assert "sep.depthwise" in [layer["name"] for layer in doc["layers"]]


def test_external_data_beside_a_file_is_read_only_when_asked(tmp_path, capsys):
    import onnx

    torch.manual_seed(0)
    data = export(nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)), torch.randn(4, 6))
    onnx.save_model(onnx.load_from_string(data), str(tmp_path / "m.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="m.onnx.data", size_threshold=0)
    args = ["check", str(tmp_path / "m.onnx"), "--format", "json", "--seeds", "1", "--no-verify"]
    assert main(args) == 2
    assert "--external-data" in capsys.readouterr().out
    assert main([*args, "--external-data"]) in (0, 1)
    doc = json.loads(capsys.readouterr().out)
    assert [lay["grad_norm"] for lay in doc["layers"]] == [
        lay.grad_norm for lay in check_onnx(data, seeds=1, verify=False).layers]


def test_a_batch_norm_in_training_mode_at_batch_1_is_invalid_input_not_unhealthy(tmp_path, capsys):
    # a training-mode export keeps BatchNorm normalising over the batch: one sample cannot be
    net = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))
    path = tmp_path / "bn.onnx"
    path.write_bytes(export(net, torch.randn(4, 8), train=True))
    assert main(["check", str(path), "--batch-size", "1"]) == 2
    assert "at least 2 samples" in capsys.readouterr().err
    assert main(["check", str(path), "--batch-size", "4", "--no-verify"]) in (0, 1)


def test_a_bug_of_ours_exits_3_not_1(monkeypatch, capsys):
    # exit 1 means "unhealthy" to a CI step: an exception the code did not expect must not read so
    import gradhealth.cli as cli

    def broken(args):  # noqa: ANN001, ANN202
        raise ValueError("an unexpected state")
    monkeypatch.setattr(cli, "cmd_catalog", broken)
    assert main(["catalog"]) == 3
    err = capsys.readouterr().err
    assert "internal error (ValueError: an unexpected state)" in err and "Traceback" in err
