"""Keras ``Lambda`` layers: their function is code in the file and is never run; where the shapes
make it obvious a parameter-free stand-in (the identity, or the sum of same-shape inputs) is
simulated in its place, and the document says so. Anything else is refused, the reason first.
"""

from __future__ import annotations

import base64
import builtins
import io
import json
import marshal
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.keras import check_keras, keras_to_spec, translate_or_graph

SAMPLING = {"module": "builtins", "class_name": "function", "config": "sampling", "registered_name": "function"}


def _tensor(src: str, width: int | None) -> dict[str, Any]:
    cfg: dict[str, Any] = {"dtype": "float32", "keras_history": [src, 0, 0]}
    if width is not None:
        cfg["shape"] = [None, width]
    return {"class_name": "__keras_tensor__", "config": cfg}


def _layer(cls: str, name: str, srcs: list[tuple[str, int | None]], **cfg: Any) -> dict[str, Any]:
    args = [_tensor(s, w) for s, w in srcs]
    return {"module": "keras.layers", "class_name": cls, "name": name, "registered_name": None,
            "config": {"name": name, "trainable": True, "dtype": "float32", **cfg},
            "inbound_nodes": [{"args": args if len(args) == 1 else [args], "kwargs": {}}] if srcs else []}


def _dense(name: str, units: int, src: str, width: int | None, act: str = "relu") -> dict[str, Any]:
    return _layer("Dense", name, [(src, width)], units=units, activation=act, use_bias=True,
                  kernel_initializer={"module": "keras.initializers", "class_name": "GlorotUniform",
                                      "config": {"seed": None}, "registered_name": None},
                  bias_initializer={"module": "keras.initializers", "class_name": "Zeros", "config": {},
                                    "registered_name": None})


def _functional(layers: list[dict[str, Any]], out: str) -> dict[str, Any]:
    return {"module": "keras", "class_name": "Functional", "config": {
        "name": "vae", "trainable": True, "layers": layers,
        "input_layers": [["x", 0, 0]], "output_layers": [[out, 0, 0]]}}


def _vae(function: Any = None, **lambda_cfg: Any) -> dict[str, Any]:
    """The Packt VAE (MLP): Dense 64 -> z_mean, z_log_var -> Lambda(sampling) -> Dense 64 -> Dense
    32 sigmoid, as Keras 3 writes it (tensor references declare their shapes)."""
    cfg = {"function": function or SAMPLING, "arguments": {}, **lambda_cfg}
    return _functional([
        _layer("InputLayer", "x", [], batch_shape=[None, 32], sparse=False),
        _dense("h", 64, "x", 32), _dense("z_mean", 2, "h", 64, "linear"), _dense("z_log_var", 2, "h", 64, "linear"),
        _layer("Lambda", "z", [("z_mean", 2), ("z_log_var", 2)], **cfg),
        _dense("dec", 64, "z", 2), _dense("out", 32, "dec", 64, "sigmoid")], "out")


def test_a_vae_sampling_lambda_is_stood_in_for_by_the_sum_and_the_document_says_so() -> None:
    for cfg in (_vae(output_shape=[2]), _vae()):  # output_shape given, or read from its reader's tensor
        spec, _, graph = translate_or_graph(cfg)
        assert spec is None and graph is not None
        z = graph.node("z")
        assert (z.cls, z.inputs, z.shape, z.weights) == ("Add", ["z_mean", "z_log_var"], (2,), [])
        assert graph.stand_ins == [("z", "sum", ["z_mean", "z_log_var"])]
    doc = check_keras(_vae(output_shape=[2]), seeds=1, verify=False)
    assert doc.status == "healthy", doc.summary
    assert "[Lambda stand-in: the function of Lambda z was NOT run" in doc.summary
    assert "z = the sum of its inputs (z_mean, z_log_var)" in doc.summary
    assert "findings that name z are approximate" in doc.summary
    assert [u.name for u in doc.layers if u.name in ("z_mean", "z_log_var", "dec")]  # the rest is checked


def test_a_shape_preserving_one_input_lambda_is_the_identity_on_both_doors() -> None:
    # Sequential (the spec door): Keras 3 writes each layer's input shape in its build_config
    def seq_layer(cls: str, name: str, width: int, **cfg: Any) -> dict[str, Any]:
        return {"module": "keras.layers", "class_name": cls, "registered_name": None,
                "config": {"name": name, "dtype": "float32", **cfg},
                "build_config": {"input_shape": [None, width]}}

    dense = {"activation": "tanh", "use_bias": True}
    seq = {"module": "keras", "class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"name": "input_layer", "batch_shape": [None, 8]}},
        seq_layer("Dense", "a", 8, units=16, **dense),
        seq_layer("Lambda", "scale", 16, function=SAMPLING, output_shape=[16]),
        seq_layer("Dense", "b", 16, units=4, **dense)]}}
    spec = keras_to_spec(seq)
    assert [lay.get("out_features") for lay in spec["layers"]] == [16, 4]  # no layer for the Lambda
    doc = check_keras(seq, seeds=1, verify=False)
    assert "Lambda stand-in: the function of Lambda scale was NOT run" in doc.summary
    assert "scale = its input" in doc.summary
    # without output_shape: the layer reading it declares the shape it reads, its input's
    del seq["config"]["layers"][2]["config"]["output_shape"]
    assert len(keras_to_spec(seq)["layers"]) == 2
    # Functional (the graph door, off the spec path by a second output): the Identity layer
    fun = _functional([_layer("InputLayer", "x", [], batch_shape=[None, 8]), _dense("a", 16, "x", 8),
                       _layer("Lambda", "lam", [("a", 16)], function=SAMPLING, output_shape=[16]),
                       _dense("b", 4, "lam", 16), _dense("c", 4, "lam", 16)], "b")
    fun["config"]["output_layers"] = [["b", 0, 0], ["c", 0, 0]]
    spec, _, graph = translate_or_graph(fun)
    assert graph is not None and graph.node("lam").cls == "Identity"
    assert graph.stand_ins == [("lam", "identity", ["a"])]


@pytest.mark.parametrize(("output_shape", "reason"), [
    ([3], "its output shape [3] is not"),  # a shape change
    ([], "its output shape [] is not"),  # a reduction to a scalar
    (["4sGAAAA...", None, None], "its output_shape ["),  # Keras 2: output_shape as code
])
def test_a_lambda_no_stand_in_fits_is_refused_the_reason_first_and_the_list_once(
        output_shape: Any, reason: str) -> None:
    layers = [_layer("InputLayer", "x", [], batch_shape=[None, 8]), _dense("a", 2, "x", 8),
              _layer("Lambda", "lam", [("a", 2)], function=SAMPLING,
                     **({} if output_shape is None else {"output_shape": output_shape})),
              _dense("b", 4, "lam", None)]
    with pytest.raises(ModelError) as err:
        translate_or_graph(_functional(layers, "b"))
    detail = err.value.detail
    assert detail.startswith("unsupported Keras layers: Lambda (lam): " + reason), detail
    assert detail.index(reason) < detail.index("function is code") < detail.index("; supported: ")
    assert detail.count("; supported: ") == 1 and "listed under Keras models in docs/models.md" in detail
    assert "InputLayer" not in detail  # the classes read are not all listed (kerassweep22)
    assert "(as a spec: refused too)" in detail
    assert len(detail) < 900


def test_the_cli_refuses_a_lambda_no_stand_in_fits_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.keras"
    cfg = _vae(output_shape=[5])
    cfg["config"]["layers"][5]["inbound_nodes"][0]["args"][0]["config"]["shape"] = [None, 5]  # its reader agrees
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("config.json", json.dumps(cfg))
    run = subprocess.run([sys.executable, "-m", "gradhealth.cli", "check", str(bad)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert "Lambda (z): its output shape [5] is not each of its inputs' ([2], [2])" in run.stderr
    assert run.stderr.count("; supported: ") == 1


def test_a_lambda_whose_function_is_code_is_never_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    touched = tmp_path / "ran.txt"
    source = f"lambda x: open({str(touched)!r}, 'w').write('MARKER_RAN') or 1 / 0"
    code = compile(source, "<lambda>", "eval").co_consts[0]
    raw = marshal.dumps(code)
    blob = base64.b64encode(raw).decode()
    check_keras(_vae(output_shape=[2]), seeds=1, verify=False)  # every module imported before the guards
    called: list[str] = []
    real = {"eval": builtins.eval, "exec": builtins.exec, "compile": builtins.compile, "loads": marshal.loads}

    def guard(which: str) -> Any:
        def run(obj: Any, *args: Any, **kwargs: Any) -> Any:
            text = obj if isinstance(obj, str | bytes) else repr(getattr(obj, "co_consts", obj))
            if obj == raw or "MARKER_RAN" in str(text) or blob in str(text):
                called.append(which)
                raise AssertionError(f"{which} of the file's code")
            return real[which](obj, *args, **kwargs)
        return run

    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, guard(name))
    monkeypatch.setattr(marshal, "loads", guard("loads"))
    keras3 = {"module": "builtins", "class_name": "__lambda__", "registered_name": None,
              "config": {"code": blob, "defaults": None, "closure": None}}
    # stood in for (a sum), then refused (a shape change), with the code as Keras 3 and Keras 2 write it
    for function in (keras3, [blob, None, None], source):
        doc = check_keras(_vae(function=function, output_shape=[2]), seeds=1, verify=False)
        assert "Lambda stand-in" in doc.summary
        with pytest.raises(ModelError):
            check_keras(_vae(function=function, output_shape=[7]), seeds=1, verify=False)
    buf = io.BytesIO()  # and from a .keras file's bytes
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("config.json", json.dumps(_vae(function=keras3, output_shape=[2])))
    assert "Lambda stand-in" in check_keras(buf.getvalue(), seeds=1, verify=False).summary
    assert not called and not touched.exists()


def test_a_sum_lambda_of_x_and_f_of_x_is_the_spec_doors_residual_block() -> None:
    layers = [_layer("InputLayer", "x", [], batch_shape=[None, 8]), _dense("a", 8, "x", 8),
              _dense("b", 8, "a", 8, "linear"),
              _layer("Lambda", "res", [("x", 8), ("b", 8)], function=SAMPLING, output_shape=[8]),
              _dense("out", 3, "res", 8, "softmax")]
    spec, _, graph = translate_or_graph(_functional(layers, "out"))
    assert graph is None and spec is not None
    assert [lay["type"] for lay in spec["layers"]] == ["residual", "linear"]
    doc = check_keras(_functional(layers, "out"), seeds=1, verify=False)
    assert "res = the sum of its inputs (x, b)" in doc.summary


@pytest.mark.parametrize("output_shape", [[1], []])
def test_a_siamese_distance_lambda_is_the_euclidean_distance_of_its_two_inputs(output_shape: list[int]) -> None:
    # kerassweep13 h06: Lambda(euclidean_distance)([a, b]) of two embeddings to one number was refused
    import numpy as np
    import torch

    from gradhealth.analysis.importers.keras_torch import _Distance

    layers = [_layer("InputLayer", "x", [], batch_shape=[None, 8]), _dense("a", 6, "x", 8), _dense("b", 6, "x", 8),
              _layer("Lambda", "dist", [("a", 6), ("b", 6)], function=SAMPLING, output_shape=output_shape),
              *([_dense("out", 1, "dist", 1, "sigmoid")] if output_shape else [])]
    spec, _, graph = translate_or_graph(_functional(layers, "out" if output_shape else "dist"))
    assert spec is None and graph is not None
    dist = graph.node("dist")
    assert (dist.inputs, dist.shape, dist.weights) == (["a", "b"], tuple(output_shape), [])
    assert graph.stand_ins == [("dist", "distance", ["a", "b"])]
    # the stand-in computes what Keras' siamese example does: sqrt(max(sum((a - b)^2), 1e-7))
    a, b = np.random.default_rng(0).normal(size=(2, 5, 6))
    want = np.sqrt(np.maximum(((a - b) ** 2).sum(-1, keepdims=bool(output_shape)), 1e-7))
    got = _Distance(bool(output_shape))(torch.tensor(a), torch.tensor(b)).numpy()
    assert got == pytest.approx(want, rel=1e-12)
    if output_shape:
        doc = check_keras(_functional(layers, "out"), seeds=1, verify=False)
        assert "dist = the Euclidean distance of its inputs (a, b)" in doc.summary
        assert "findings that name dist are approximate" in doc.summary


def test_a_two_input_lambda_of_one_shape_without_output_shape_is_the_assumed_sum() -> None:
    # one input and no output_shape is assumed to keep its input's shape (kerassweep14 h08); two of
    # one shape are a VAE's sampling, z_mean's shape (kerassweep22 h03), said as ASSUMED; a reader's
    # stored kernel of another width refuses it (tests/analysis/test_kerassweep22_fixes.py)
    layers = [_layer("InputLayer", "x", [], batch_shape=[None, 8]), _dense("a", 2, "x", 8), _dense("c", 2, "x", 8),
              _layer("Lambda", "lam", [("a", 2), ("c", 2)], function=SAMPLING), _dense("b", 4, "lam", None)]
    doc = check_keras(_functional(layers, "b"), seeds=1, verify=False)
    assert "lam = the sum of its inputs (a, c), ASSUMED" in doc.summary


def test_a_one_input_lambda_without_output_shape_is_the_assumed_identity_on_the_graph_door() -> None:
    layers = [_layer("InputLayer", "x", [], batch_shape=[None, 8]), _dense("a", 2, "x", 8),
              _layer("Lambda", "lam", [("a", 2)], function=SAMPLING), _dense("b", 4, "lam", None),
              _dense("c", 4, "lam", None)]
    fun = _functional(layers, "b")
    fun["config"]["output_layers"] = [["b", 0, 0], ["c", 0, 0]]  # off the spec path by a second output
    spec, _, graph = translate_or_graph(fun)
    assert graph is not None and graph.node("lam").cls == "Identity" and graph.node("lam").shape == (2,)
    assert graph.stand_ins == [("lam", "assumed", ["a"])]
    doc = check_keras(fun, seeds=1, verify=False)
    assert "lam = its input, ASSUMED" in doc.summary
