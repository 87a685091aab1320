"""The Keras graph door: models the spec language cannot express (keras.applications' building
blocks) built in PyTorch as Keras computes them, checked against Keras' own outputs.

The fixtures in tests/data/keras were written by Keras 3.15.1 itself (make_graph_models.py says
how), with Keras' outputs for a fixed input: the comparison is against an independent computation.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import torch

from gradhealth.analysis.graph import InputSpec, make_inputs
from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.keras import (
    check_keras,
    read_keras_training,
    read_keras_weights,
    translate_or_graph,
)
from gradhealth.analysis.importers.keras_graph import conv_padding, plan_keras_graph
from gradhealth.analysis.importers.keras_torch import (
    KerasNet,
    _drawn,
    draw_initializer,
    load_stored,
    reinitialise,
)
from gradhealth.errors import InputFormatError, LimitExceeded
from gradhealth.settings import Limits

DATA = Path(__file__).parents[1] / "data" / "keras"
MODELS = ("mobile_dense_block", "sequence_mixer", "nested_layer_scale", "decoder", "recurrent_pools",
          "two_towers", "three_heads", "attention_block", "question_pairs", "recommender",
          "sequence_tagger", "preact_resnet", "inception_resnet", "siamese")


def _read(name: str, ext: str) -> tuple[bytes, dict[str, Any]]:
    data = (DATA / f"{name}.{ext}").read_bytes()
    return data, read_keras_training(data)[0]


@pytest.mark.parametrize("ext", ["keras", "h5"])
@pytest.mark.parametrize("name", MODELS)
def test_the_torch_graph_computes_what_keras_computed(name: str, ext: str) -> None:
    data, config = _read(name, ext)
    graph = plan_keras_graph(config, keep_preprocessing=True)
    net = KerasNet(graph, None).double()
    load_stored(net, read_keras_weights(data, config) or {})
    expected = json.loads((DATA / f"{name}.expected.json").read_text())
    # one input, or several (token ids as integers)
    xs = ([torch.tensor(v, dtype=torch.int64 if kind == "int" else torch.float64)
           for v, kind in zip(expected["inputs"], expected["dtypes"], strict=True)]
          if "inputs" in expected else [torch.tensor(expected["input"], dtype=torch.float64)])
    for mode in ("inference", "training"):  # running statistics, then the batch's
        net.train(mode == "training")
        out = net(*xs)
        pairs = (zip(out, expected[mode], strict=True) if "outputs" in expected
                 else [(out, expected[mode])])  # several outputs: each, in Keras' order
        for got_tensor, want_list in pairs:
            got, want = got_tensor.detach().numpy(), np.array(want_list)
            assert got.shape == want.shape
            # Keras ran in float32: agreement to its precision, far below any layout mistake
            assert np.abs(got - want).max() < 1e-5 * max(1.0, np.abs(want).max()), mode


def test_the_spec_path_is_kept_for_what_it_expresses_and_the_graph_takes_the_rest() -> None:
    _, config = _read("mobile_dense_block", "keras")
    spec, _, graph = translate_or_graph(config)
    assert spec is None and graph is not None
    assert graph.parameters == sum(math.prod(s) for n in graph.nodes for r, s in n.weights)
    # a plain chain still becomes a spec (remedies as spec patches)
    from tests.analysis.test_keras_import import _sigmoid_stack

    spec, origins, graph = translate_or_graph(_sigmoid_stack())
    assert spec is not None and origins and graph is None


def test_a_graph_check_names_keras_layers_and_reads_the_compiled_training() -> None:
    data, _ = _read("mobile_dense_block", "keras")
    doc = check_keras(data, seeds=1, batch_size=4, verify=False)
    names = [layer.name for layer in doc.layers]
    assert names[0] == "stem_conv" and names[-1] == "head"
    assert {"dw", "se_reduce", "se_expand", "sep.depthwise", "sep.pointwise", "proj", "side"} <= set(names)
    assert "as stored in the file" in doc.summary
    assert "input preprocessing skipped: rescale" in doc.summary
    fresh = check_keras(data, seeds=1, batch_size=4, verify=False, weights="reinitialise")
    assert "Keras' initialisers" in fresh.summary
    # the file's weights and a fresh draw are different networks
    assert [u.grad_norm for u in fresh.layers] != [u.grad_norm for u in doc.layers]


def _chain(pre: list[dict[str, Any]]) -> dict[str, Any]:
    """A Keras 3 Functional config: input -> pre... -> Dense(8, relu) -> Concatenate with itself
    -> Dense(3, softmax). The Concatenate keeps it off the spec path."""
    def tensor(name: str) -> dict[str, Any]:
        return {"class_name": "__keras_tensor__", "config": {"keras_history": [name, 0, 0]}}

    layers: list[dict[str, Any]] = [{"class_name": "InputLayer", "name": "x",
                                     "config": {"name": "x", "batch_shape": [None, 5]}, "inbound_nodes": []}]
    previous = "x"
    for lay in [*pre, {"class_name": "Dense", "config": {"name": "d", "units": 8, "activation": "relu"}}]:
        name = lay["config"]["name"]
        layers.append({**lay, "name": name, "inbound_nodes": [{"args": [tensor(previous)], "kwargs": {}}]})
        previous = name
    layers.append({"class_name": "Concatenate", "name": "cat", "config": {"name": "cat", "axis": -1},
                   "inbound_nodes": [{"args": [[tensor("d"), tensor("d")]], "kwargs": {}}]})
    layers.append({"class_name": "Dense", "name": "out",
                   "config": {"name": "out", "units": 3, "activation": "softmax"},
                   "inbound_nodes": [{"args": [tensor("cat")], "kwargs": {}}]})
    return {"class_name": "Functional", "config": {"name": "m", "layers": layers,
                                                   "input_layers": ["x", 0, 0], "output_layers": ["out", 0, 0]}}


def test_the_inputs_own_preprocessing_is_skipped_not_applied_twice() -> None:
    rescale = {"class_name": "Rescaling", "config": {"name": "pre", "scale": 1 / 255, "offset": 0.0}}
    norm = {"class_name": "Normalization", "config": {"name": "norm", "axis": -1, "mean": 0.5,
                                                      "variance": 0.04}}
    plain = check_keras(_chain([]), seeds=1, verify=False)
    pre = check_keras(_chain([rescale, norm]), seeds=1, verify=False)
    assert "input preprocessing skipped: pre, norm" in pre.summary
    # the same network with the same draws: the standard normal input is the normalised data
    assert [u.grad_norm for u in pre.layers] == pytest.approx([u.grad_norm for u in plain.layers], rel=1e-12)
    # ... but a Rescaling deeper in the network is computed
    deep = dict(rescale, config={"name": "deep", "scale": 0.5, "offset": 0.0})
    cfg = _chain([])
    cfg["config"]["layers"].insert(2, {**deep, "name": "deep", "inbound_nodes": [
        {"args": [{"class_name": "__keras_tensor__", "config": {"keras_history": ["d", 0, 0]}}]}]})
    cfg["config"]["layers"][3]["inbound_nodes"] = [{"args": [[
        {"class_name": "__keras_tensor__", "config": {"keras_history": ["deep", 0, 0]}}] * 2]}]
    halved = check_keras(cfg, seeds=1, verify=False)
    assert "preprocessing" not in halved.summary
    assert halved.layers[0].grad_norm != pytest.approx(plain.layers[0].grad_norm, rel=1e-3)


@pytest.mark.parametrize("init,scale,mode,dist", [
    ("HeNormal", 2.0, "fan_in", "truncated_normal"),
    ("GlorotUniform", 1.0, "fan_avg", "uniform"),
    ("LecunNormal", 1.0, "fan_in", "truncated_normal"),
    ({"class_name": "VarianceScaling", "config": {"scale": 3.0, "mode": "fan_out",
                                                  "distribution": "untruncated_normal"}}, 3.0, "fan_out", "n"),
])
def test_initialisers_draw_keras_variances_over_keras_fans(init: Any, scale: float, mode: str,
                                                           dist: str) -> None:
    # a depthwise kernel [3, 3, 64, 2]: Keras' fans are 9 * 64 in and 9 * 2 out (not torch's)
    shape = (3, 3, 64, 2)
    fan = {"fan_in": 9 * 64, "fan_out": 9 * 2, "fan_avg": 9 * 33}[mode]
    torch.manual_seed(0)
    w = draw_initializer(init if isinstance(init, dict) else {"class_name": init, "config": {}}, shape,
                         "glorot_uniform")
    assert tuple(w.shape) == shape
    assert float(w.var()) == pytest.approx(scale / fan, rel=0.08)
    if dist == "truncated_normal":  # cut at two of its (pre-correction) standard deviations
        assert float(w.abs().max()) <= 2 * math.sqrt(scale / fan) / 0.87962566103423978 + 1e-12
    if dist == "uniform":
        assert float(w.abs().max()) <= math.sqrt(3 * scale / fan)


@pytest.mark.parametrize("size,kernel,stride,dilation,padding,want", [
    (17, 3, 2, 1, "valid", (8, 0, 0)),
    (8, 3, 2, 1, "same", (4, 0, 1)),  # TF's rule: the odd pad goes after
    (8, 3, 1, 1, "same", (8, 1, 1)),
    (12, 3, 1, 2, "causal", (12, 4, 0)),
    (7, 5, 3, 1, "same", (3, 2, 2)),
    (6, 2, 2, 1, "same", (3, 0, 0)),
])
def test_padding_follows_keras(size: int, kernel: int, stride: int, dilation: int, padding: str,
                               want: tuple[int, int, int]) -> None:
    assert conv_padding(size, kernel, stride, dilation, padding) == want
    out, before, after = want
    span = (kernel - 1) * dilation + 1
    assert (size + before + after - span) // stride + 1 == out  # the padded valid convolution


def test_every_problem_is_named_in_one_error() -> None:
    # (a shape change: a one-input Lambda with no output_shape is assumed to keep its input's)
    cfg = _chain([{"class_name": "Lambda", "config": {"name": "lam", "output_shape": [999]}}])
    with pytest.raises(ModelError) as err:
        translate_or_graph(cfg)
    assert "Lambda (lam)" in err.value.detail and "as a spec:" in err.value.detail
    bad = _chain([{"class_name": "Dense", "config": {"name": "k", "units": 4,
                                                     "kernel_initializer": "my_init"}}])
    bad["config"]["layers"][-1]["config"]["activation"] = "swishy"
    with pytest.raises(ModelError) as err:
        plan_keras_graph(bad)
    # (a config without weights draws them: the initialiser is needed, and the flag is named)
    assert "k (Dense): kernel_initializer 'my_init' cannot be drawn" in err.value.detail
    assert "--weights reinitialise" in err.value.detail
    assert "out (Dense): activation 'swishy' is not supported" in err.value.detail


def test_limits_are_checked_from_the_shapes_before_anything_is_built() -> None:
    big = _chain([{"class_name": "Dense", "config": {"name": "wide", "units": 16_000_000}}])
    with pytest.raises(LimitExceeded, match="parameters"):
        plan_keras_graph(big, limits=Limits())
    with pytest.raises(LimitExceeded, match="MiB"):
        plan_keras_graph(_chain([]), batch_size=10**9)


def test_an_output_named_twice_is_refused() -> None:
    cfg = _chain([])
    cfg["config"]["output_layers"] = [["out", 0, 0], ["out", 0, 0]]
    with pytest.raises(ModelError, match="must be distinct layers"):
        plan_keras_graph(cfg)


def test_outputs_named_in_a_dict_are_the_models_outputs() -> None:
    # keras.Model(inputs, outputs={"price": ..., "category": ...}) writes output_layers as a dict
    # (kerassweep6: refused as "outputs (0)"); each output keeps its own compiled loss by name
    cfg = _chain([])
    layers = cfg["config"]["layers"]
    layers.append({"class_name": "Dense", "name": "price", "config": {"name": "price", "units": 1},
                   "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__",
                                                "config": {"keras_history": ["d", 0, 0]}}], "kwargs": {}}]})
    cfg["config"]["output_layers"] = {"category": ["out", 0, 0], "price": ["price", 0, 0]}
    graph = plan_keras_graph(cfg)
    assert graph.output_names == ["out", "price"]
    doc = check_keras(cfg | {"compile_config": {"loss": {"category": "sparse_categorical_crossentropy",
                                                          "price": "mse"}}}, seeds=1, verify=False)
    assert {"out", "price"} <= {layer.name for layer in doc.layers}


def test_a_keras3_op_with_a_number_is_computed() -> None:
    # MobileNetV3's hard sigmoid: ReLU6(x + 3) * (1 / 6), written as ops with numbers
    cfg = _chain([])
    layers = cfg["config"]["layers"]

    def op(cls: str, name: str, src: str, number: float) -> dict[str, Any]:
        return {"module": "keras.src.ops.numpy", "class_name": cls, "name": name, "config": {"name": name},
                "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__",
                                             "config": {"keras_history": [src, 0, 0]}}, number]}]}
    layers[2:2] = [op("Add", "plus3", "d", 3.0), op("Multiply", "sixth", "plus3", 1 / 6)]
    layers[4]["inbound_nodes"] = [{"args": [[{"class_name": "__keras_tensor__",
                                              "config": {"keras_history": ["sixth", 0, 0]}}] * 2]}]
    graph = plan_keras_graph(cfg)
    net = KerasNet(graph, None).double()
    x = torch.randn(4, 5, dtype=torch.float64)
    h = torch.relu(net.layers[1](x))  # the Dense(8, relu)
    hidden = (h + 3.0) / 6.0
    want = net.layers[-1](torch.cat([hidden, hidden], -1))  # Dense(3) and its softmax
    assert torch.allclose(net(x), want, rtol=1e-12)


@pytest.mark.parametrize(("version", "slope"), [("2.2.4", 0.2), ("2.15.0", 0.2), ("3.6.0", 1 / 6), (None, 1 / 6)])
def test_hard_sigmoid_is_the_function_of_the_keras_that_wrote_the_file(version: str | None, slope: float) -> None:
    cfg = _chain([{"class_name": "Dense", "config": {"name": "h", "units": 6, "activation": "hard_sigmoid"}}])
    if version is not None:
        cfg["keras_version"] = version  # where model.to_json() writes it (and the readers put it)
    net = KerasNet(plan_keras_graph(cfg), None).double()
    x = 3 * torch.randn(64, 5, dtype=torch.float64)  # wide enough to reach both flat ends
    dense = net.layers[1][0]  # the Dense before its activation
    want = torch.clamp(slope * dense(x) + 0.5, 0, 1)
    assert torch.allclose(net.layers[1](x), want, rtol=1e-12, atol=1e-12)


def test_weights_that_do_not_fit_are_refused_with_the_layer() -> None:
    data, config = _read("sequence_mixer", "keras")
    stored = read_keras_weights(data, config) or {}
    stored["hidden"] = [stored["hidden"][0][:-1], stored["hidden"][1]]
    net = KerasNet(plan_keras_graph(config), None)
    with pytest.raises(ModelError, match=r"hidden: the file stores \[\[35, 8\], \[8\]\] where the "
                                         r"config builds \[\[36, 8\], \[8\]\]"):
        load_stored(net, stored)


def test_a_keras_archive_from_bytes_and_its_zip_are_the_same_graph() -> None:
    data, config = _read("mobile_dense_block", "keras")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert json.loads(zf.read("config.json"))["config"]["name"] == config["config"]["name"]


def test_a_keras3_functional_chain_with_one_input_is_a_spec() -> None:
    # Keras 3 writes one input as a bare [name, node, tensor] triple; reading it as a list of
    # triples was a TypeError (a 500 through the API) on every single-input Functional chain
    cfg = _chain([])
    layers = cfg["config"]["layers"]
    del layers[2]  # the Concatenate: x -> d -> out is a chain
    layers[2]["inbound_nodes"] = [{"args": [{"class_name": "__keras_tensor__",
                                             "config": {"keras_history": ["d", 0, 0]}}]}]
    spec, origins, graph = translate_or_graph(cfg)
    assert graph is None and spec is not None
    assert [lay["type"] for lay in spec["layers"]] == ["linear", "linear"]
    assert check_keras(cfg, seeds=1, verify=False).layers[0].name == "d"


def test_mutated_configs_get_a_model_error_or_a_network_that_runs() -> None:
    # never an exception of another kind (a 500 through the API, a failed job): every number,
    # size and link in the config is checked before anything is built
    import copy
    import random

    from gradhealth.errors import GradHealthError

    configs = [_read(name, "keras")[1] for name in MODELS]
    rng = random.Random(0)
    bad_values: list[Any] = [None, -1, 0, "x", [], {}, 1.5, [0], [-1, 2], True, 10**12, math.inf]
    outcomes = {"refused": 0, "ran": 0}
    for _ in range(300):
        cfg = copy.deepcopy(rng.choice(configs))
        lay = rng.choice(cfg["config"]["layers"])
        target = lay if rng.random() < 0.15 else lay["config"]
        keys = [k for k in target if k not in ("name", "dtype", "trainable", "module")]
        if not keys:
            continue
        key = rng.choice(keys)
        if rng.random() < 0.2:
            del target[key]
        else:
            target[key] = rng.choice(bad_values)
        try:
            _, _, graph = translate_or_graph(cfg, batch_size=2)
        except GradHealthError:
            outcomes["refused"] += 1
            continue
        if graph is not None:
            net = KerasNet(graph, None).double()
            xs = make_inputs([InputSpec((2, *shape), torch.int64, vocab) if vocab else InputSpec((2, *shape))
                              for _, shape, vocab in graph.inputs], 0)
            out = net(*xs)
            sum(o.sum() for o in (out if isinstance(out, tuple) else (out,))).backward()
        outcomes["ran"] += 1
    assert outcomes["refused"] > 50 and outcomes["ran"] > 50, outcomes


def test_a_nested_model_is_inlined_and_a_layer_scale_belongs_to_its_layer() -> None:
    # ConvNeXt's shape: a nested Sequential stem, blocks whose last Dense is scaled by 1e-6 before
    # the residual Add. The scale is part of that layer's unit (as a norm is): its output gradient
    # is the stream's, so the trunk is not read as a 1e6x "explosion" from stem to last block.
    doc = check_keras(DATA / "nested_layer_scale.keras", seeds=2, verify=False, weights="reinitialise")
    by_name = {u.name: u for u in doc.layers}
    assert list(by_name)[0] == "stem_conv"  # the nested model's own layer, by its own name
    assert "exploding_gradient" not in {f.code for f in doc.findings}
    stem = by_name["stem_conv"].output_grad_norm
    for k in range(3):
        scaled = by_name[f"b{k}_pw2"].output_grad_norm  # after its 1e-6 scale: the stream's
        inside = by_name[f"b{k}_pw1"].output_grad_norm  # before it: 1e-6 of the stream's
        assert 0.1 < scaled / stem < 10
        assert scaled / inside > 1e4


def test_an_unhealthy_graph_gets_remedies_verified_on_copies() -> None:
    # ten sigmoid Dense layers (Keras' glorot_uniform) before a Concatenate: the graph door, and
    # the sigmoid chain vanishes as the mean-field theory says (derivative <= 1/4 per layer)
    cfg = _chain([{"class_name": "Dense", "config": {"name": f"s{k}", "units": 32, "activation": "sigmoid"}}
                  for k in range(10)])
    doc = check_keras(cfg, seeds=2, verify=True)
    assert "Keras' initialisers" in doc.summary
    finding = next(f for f in doc.findings if f.code == "vanishing_gradient")
    assert finding.evidence.layers[0] == "s0"
    verified = [r for r in finding.remedies if r.verified is not None]
    assert verified, [r.id for r in finding.remedies]
    # a verified remedy's "after" is a re-simulation of the changed copy, not the same figure
    assert any(r.verified.fixed and r.verified.after != r.verified.before for r in verified)


def _dense_stack(init: Any, n: int = 5) -> dict[str, Any]:
    layers: list[dict[str, Any]] = [{"class_name": "InputLayer", "config": {"name": "in", "batch_shape": [None, 20]}}]
    layers += [{"class_name": "Dense", "config": {"name": f"d{k}", "units": 32, "activation": "relu",
                                                  "kernel_initializer": init}} for k in range(n)]
    layers.append({"class_name": "Dense", "config": {"name": "out", "units": 10, "activation": "softmax"}})
    return {"class_name": "Sequential", "config": {"name": "m", "layers": layers}}


def test_initialisers_the_spec_cannot_draw_go_through_the_graph_door() -> None:
    # a fault-injection benchmark's favourite bugs: all-ones, all-zeros, a uniform on [0, 1]
    # kernels. With ones, every ReLU unit of layer k + 1 is the sum of the 32 equal positive units
    # of layer k: the activations grow exactly 32x per layer, 32^4 from d0 to d4.
    doc = check_keras(_dense_stack("ones"), seeds=2, verify=False)
    finding = next(f for f in doc.findings if f.code == "exploding_gradient")
    assert finding.evidence.activation_growth == pytest.approx(32.0 ** 4, rel=1e-9)
    zeros = check_keras(_dense_stack("zeros"), seeds=2, verify=False)
    vanishing = next(f for f in zeros.findings if f.code == "vanishing_gradient")
    assert vanishing.summary.startswith("no gradient reaches d0")  # all-zero weights pass nothing
    uniform = {"class_name": "RandomUniform", "config": {"minval": 0.0, "maxval": 1.0}}
    assert "exploding_gradient" in {f.code for f in check_keras(_dense_stack(uniform), seeds=2,
                                                                 verify=False).findings}


def test_a_convolution_its_norm_and_its_activation_are_one_unit() -> None:
    # as torch networks are read (conv, bn, relu on the same tensors): the convolution's output
    # gradient is read after its norm, and its ReLU's dead units are counted
    doc = check_keras(DATA / "mobile_dense_block.keras", seeds=1, batch_size=4, verify=False)
    by_name = {u.name: u for u in doc.layers}
    assert by_name["stem_conv"].activation == "relu"  # ReLU(6.0) after stem_bn
    assert by_name["dw"].activation == "silu"  # Activation("swish") after dw_bn
    assert by_name["se_reduce"].activation == "relu"  # the convolution's own activation
    assert not {"stem_bn", "stem_relu", "dw_bn", "dw_act"} & set(by_name)
    # ... and the network still computes what Keras computed (the fused body is the same maths)
    data, config = _read("mobile_dense_block", "keras")
    net = KerasNet(plan_keras_graph(config, keep_preprocessing=True), None).double()
    load_stored(net, read_keras_weights(data, config) or {})
    assert isinstance(net.layers[[n.name for n in net.graph.nodes].index("stem_bn")], torch.nn.Identity)


def _conv_chain(middle: list[dict[str, Any]]) -> dict[str, Any]:
    """Keras 3 Functional: image -> Conv2D(4, 3) -> middle... -> Concatenate(x, x) -> Flatten -> Dense."""
    def tensor(name: str) -> dict[str, Any]:
        return {"class_name": "__keras_tensor__", "config": {"keras_history": [name, 0, 0]}}

    specs = [{"class_name": "Conv2D", "config": {"name": "conv", "filters": 4, "kernel_size": 3}}, *middle]
    layers: list[dict[str, Any]] = [{"class_name": "InputLayer", "name": "x",
                                     "config": {"name": "x", "batch_shape": [None, 8, 8, 3]}}]
    previous = "x"
    for lay in specs:
        name = lay["config"]["name"]
        layers.append({**lay, "name": name, "inbound_nodes": [{"args": [tensor(previous)]}]})
        previous = name
    layers += [{"class_name": "Concatenate", "name": "cat", "config": {"name": "cat"},
                "inbound_nodes": [{"args": [[tensor(previous), tensor(previous)]]}]},
               {"class_name": "Flatten", "name": "flat", "config": {"name": "flat"},
                "inbound_nodes": [{"args": [tensor("cat")]}]},
               {"class_name": "Dense", "name": "out", "config": {"name": "out", "units": 3, "activation": "softmax"},
                "inbound_nodes": [{"args": [tensor("flat")]}]}]
    return {"class_name": "Functional", "config": {"name": "c", "layers": layers,
                                                   "input_layers": ["x", 0, 0], "output_layers": ["out", 0, 0]}}


def test_an_activation_layer_joins_its_convolution_and_a_norm_over_another_axis_does_not() -> None:
    relu = {"class_name": "ReLU", "config": {"name": "act"}}
    doc = check_keras(_conv_chain([relu]), seeds=1, verify=False)
    assert [(u.name, u.activation) for u in doc.layers][0] == ("conv", "relu")
    # a BatchNormalization over the rows (axis 1) is not the convolution's channel norm: it and
    # the ReLU after it stay layers of their own, and the network computes the same either way
    cfg = _conv_chain([{"class_name": "BatchNormalization", "config": {"name": "bn", "axis": 1}}, relu])
    graph = plan_keras_graph(cfg)
    net = KerasNet(graph, None).double()
    names = [n.name for n in graph.nodes]
    assert not isinstance(net.layers[names.index("bn")], torch.nn.Identity)
    assert not isinstance(net.layers[names.index("act")], torch.nn.Identity)
    assert check_keras(cfg, seeds=1, verify=False).layers[0].activation is None


def test_a_norm_after_a_convolutions_relu_makes_it_normalised_and_computes_the_same(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Conv2D(activation="relu") then BatchNormalization, as Keras tutorials write it: relu(c z) =
    # c relu(z), so the norm divides the convolution's weight scale out all the same
    cfg = _conv_chain([{"class_name": "BatchNormalization", "config": {"name": "bn"}}])
    cfg["config"]["layers"][1]["config"]["activation"] = "relu"
    doc = check_keras(cfg, seeds=1, verify=False)
    conv = next(layer for layer in doc.layers if layer.name == "conv")
    assert conv.activation == "relu" and conv.normalised
    graph = plan_keras_graph(cfg)
    torch.manual_seed(0)
    fused = KerasNet(graph, None).double()
    reinitialise(fused)
    monkeypatch.setattr("gradhealth.analysis.importers.keras_torch._fuse_convolutions", lambda net: None)
    torch.manual_seed(0)
    apart = KerasNet(graph, None).double()
    reinitialise(apart)
    x = torch.randn(5, 8, 8, 3, dtype=torch.float64)
    torch.testing.assert_close(fused(x), apart(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("size,kernel,stride,padding", [
    (4, 3, 2, "same"),  # an odd crop: TensorFlow puts the extra row after
    (4, 4, 2, "same"), (3, 2, 1, "same"), (5, 3, 3, "same"),
    (4, 1, 2, "valid"),  # a kernel under its stride: zeros after
    (4, 5, 2, "valid"),
])
def test_a_transposed_convolution_is_the_gradient_of_the_convolution(size: int, kernel: int, stride: int,
                                                                     padding: str) -> None:
    # TensorFlow defines conv_transpose as the gradient of the convolution with the same padding;
    # computed here with autograd through Keras' convolution (conv_padding), independently
    from gradhealth.analysis.importers.keras_graph import Node, transposed_padding
    from gradhealth.analysis.importers.keras_torch import _assign, _transposed

    out, _ = transposed_padding(size, kernel, stride, padding)
    torch.manual_seed(0)
    w = torch.randn(kernel, 3, 2, dtype=torch.float64)  # Keras: [k, filters, in] = conv's [k, in, out]
    x = torch.randn(1, size, 2, dtype=torch.float64)
    z = torch.zeros(1, out, 3, dtype=torch.float64, requires_grad=True)
    _, before, after = conv_padding(out, kernel, stride, 1, padding)
    y = torch.nn.functional.conv1d(torch.nn.functional.pad(z.movedim(-1, 1), [before, after]),
                                   w.permute(2, 1, 0), stride=stride)
    assert y.shape[-1] == size
    (y * x.movedim(-1, 1)).sum().backward()
    node = Node("t", "Conv1DTranspose", {"kernel_size": kernel, "strides": stride, "padding": padding,
                                          "filters": 3}, ["x"], shape=(out, 3), in_shapes=[(size, 2)],
                weights=[("kernel", (kernel, 3, 2)), ("bias", (3,))])
    module, holders = _transposed(node)
    module.double()
    _assign(node, holders, module, [w.numpy(), np.zeros(3)])
    assert torch.allclose(module(x), z.grad, atol=1e-12)


# --- recurrent layers in a graph ----------------------------------------------------------------

def test_a_recurrent_graph_is_read_step_by_step_in_every_layer() -> None:
    data, _ = _read("recurrent_pools", "keras")
    doc = check_keras(data, seeds=1, batch_size=8, verify=False)
    types = {layer.name: layer.type for layer in doc.layers}
    assert {k: types.get(k) for k in ("bilstm", "gru_v1", "relu_rnn", "gru")} == {
        "bilstm": "lstm", "gru_v1": "gru", "relu_rnn": "rnn", "gru": "gru"}
    steps: dict[tuple[str, int], int] = {}
    for s in doc.time_steps:
        steps[(s.layer, s.sublayer)] = steps.get((s.layer, s.sublayer), 0) + 1
    # ten steps each; the Bidirectional's backward direction is sublayer 1
    assert steps == {("bilstm", 0): 10, ("bilstm", 1): 10, ("gru_v1", 0): 10, ("relu_rnn", 0): 10,
                     ("gru", 0): 10}


def test_recurrent_weights_are_drawn_as_keras_draws_them() -> None:
    _, config = _read("recurrent_pools", "keras")
    net = KerasNet(plan_keras_graph(config), None).double()
    torch.manual_seed(0)
    reinitialise(net)
    names = [n.name for n in net.graph.nodes]
    lstm = cast(Any, net.layers[names.index("bilstm")]).rnn
    units = 6
    for suffix in ("_l0", "_l0_reverse"):
        # Keras' orthogonal recurrent kernel [units, 4 units] has orthonormal rows; torch holds
        # its transpose, gate by gate (i, f, g, o in both)
        keras_recurrent = getattr(lstm, f"weight_hh{suffix}").detach().T
        torch.testing.assert_close(keras_recurrent @ keras_recurrent.T,
                                   torch.eye(units, dtype=torch.float64), rtol=0, atol=1e-10)
        bias = getattr(lstm, f"bias_ih{suffix}").detach()  # unit_forget_bias: the forget block is 1
        assert bias[units:2 * units].tolist() == [1.0] * units
        assert bias[:units].abs().max() == 0 and bias[2 * units:].abs().max() == 0
    # glorot_uniform over the whole [features, 4 units] kernel: limit sqrt(6 / (4 + 24))
    kernel = lstm.weight_ih_l0.detach()
    assert kernel.abs().max() <= math.sqrt(6 / (4 + 24))


def test_a_sequence_over_the_time_step_limit_is_refused_before_anything_is_built() -> None:
    _, config = _read("recurrent_pools", "keras")
    with pytest.raises(LimitExceeded, match="10 time steps"):
        plan_keras_graph(config, limits=Limits(max_time_steps=9))


def test_a_backward_layer_that_is_not_the_forward_one_reading_backwards_is_refused() -> None:
    _, config = _read("recurrent_pools", "keras")
    config = json.loads(json.dumps(config))
    bi = next(lay for lay in config["config"]["layers"] if lay["class_name"] == "Bidirectional")
    bi["config"]["backward_layer"]["config"]["units"] = 7
    with pytest.raises(ModelError, match="bilstm.*backward_layer"):
        plan_keras_graph(config)


def test_a_model_of_two_inputs_is_checked_with_each_inputs_own_batch() -> None:
    data, config = _read("two_towers", "h5")
    graph = plan_keras_graph(config)
    assert [(name, shape, vocab) for name, shape, vocab in graph.inputs] == [
        ("tokens", (7,), 30), ("numbers", (5,), None)]
    doc = check_keras(data, seeds=2, batch_size=8, verify=False)
    names = [layer.name for layer in doc.layers]
    assert {"emb", "text_gru", "tab", "mix", "out"} <= set(names)
    assert len([s for s in doc.time_steps if s.layer == "text_gru"]) == 7
    net = KerasNet(graph, None).double()
    with pytest.raises(TypeError, match="takes 2 inputs"):
        net(torch.randn(2, 5, dtype=torch.float64))


def test_several_outputs_each_add_their_own_loss() -> None:
    data, config = _read("three_heads", "keras")
    doc = check_keras(data, seeds=1, batch_size=8, verify=False)
    reported = {layer.name: layer for layer in doc.layers}
    assert {"h1", "h2", "kind", "size", "aux"} <= set(reported)

    # the same network, batch and targets, with the three losses summed here: h2 feeds two heads
    grads = _three_heads_grads(data, config, lambda kind: kind)
    for name in ("h1", "h2"):
        assert reported[name].output_grad_norm == pytest.approx(grads[name], rel=1e-9)


def _three_heads_grads(data: bytes, config: dict[str, Any], kind_logits: Any) -> dict[str, float]:
    """||dL/dh|| at h1 and h2 of the three_heads file's network, with its three losses summed here:
    cross-entropy on ``kind_logits(the kind head's logits)``, MSE on size, binary cross-entropy on aux,
    against the targets the check draws for seed 0."""
    graph = plan_keras_graph(config)
    net = KerasNet(graph, {"kind": "softmax", "aux": "sigmoid"}).double()
    load_stored(net, read_keras_weights(data, config) or {})
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str) -> Any:
        def hook(_: Any, __: Any, out: torch.Tensor) -> None:
            out.retain_grad()
            seen[name] = out
        return hook

    names = [n.name for n in graph.nodes]
    for name in ("h1", "h2"):
        net.layers[names.index(name)].register_forward_hook(keep(name))
    (x,) = make_inputs([InputSpec((8, 6))], 0)
    kind, size, aux = net(x)
    loss = (torch.nn.functional.cross_entropy(kind_logits(kind), _targets(kind, 0, "classes"))
            + torch.nn.functional.mse_loss(size, _targets(size, 1, "normal"))
            + torch.nn.functional.binary_cross_entropy_with_logits(aux, _targets(aux, 2, "bits")))
    loss.backward()
    out: dict[str, float] = {}
    for name in ("h1", "h2"):
        grad = seen[name].grad
        assert grad is not None
        out[name] = float(grad.norm())
    return out


def _targets(out: torch.Tensor, k: int, kind: str) -> torch.Tensor:
    """The synthetic targets of the k-th output of seed 0 (gradhealth.analysis.graph.loss_of's draw)."""
    gen = torch.Generator().manual_seed(20_000 + 1_000_000 * k)
    if kind == "classes":
        return torch.randint(out.shape[-1], out.shape[:-1], generator=gen)
    if kind == "normal":
        return torch.randn(out.shape, generator=gen, dtype=torch.float64)
    return torch.randint(2, out.shape, generator=gen).to(torch.float64)


# --- attention ----------------------------------------------------------------------------------

def test_attention_is_four_projections_named_after_keras_sublayers() -> None:
    data, _ = _read("attention_block", "h5")
    doc = check_keras(data, seeds=1, batch_size=8, verify=False)
    names = [layer.name for layer in doc.layers]
    for attention in ("self_attn", "cross_attn"):
        assert [n for n in names if n.startswith(attention)] == [
            f"{attention}.{part}" for part in ("query", "key", "value", "output")]


@pytest.mark.parametrize(("version", "keras3"), [("3.15.1", True), ("2.15.0", False)])
def test_attention_kernels_are_drawn_over_the_fans_keras_uses(version: str, keras3: bool) -> None:
    # Keras 3 (measured: 64 features, 4 heads of 16: Var 0.0160 ~ 2 / (64 + 64)) draws a
    # projection over the matrix it is; Keras 2's initialisers saw the 3-d kernel
    _, config = _read("attention_block", "keras")
    config = {**config, "keras_version": version}
    graph = plan_keras_graph(config)
    node = graph.node("self_attn")
    torch.manual_seed(0)
    drawn = dict(zip([r for r, _ in node.weights], _drawn(node), strict=True))
    d, h, k = drawn["query_kernel"].shape
    limit = math.sqrt(6 / (d + h * k)) if keras3 else math.sqrt(6 / (h * d + k * d))
    assert np.abs(drawn["query_kernel"]).max() <= limit
    assert np.abs(drawn["query_kernel"]).max() > 0.9 * limit  # uniform up to the limit: reached
    hv, v, out = drawn["output_kernel"].shape
    limit = math.sqrt(6 / (hv * v + out)) if keras3 else math.sqrt(6 / (v * hv + out * hv))
    assert 0.9 * limit < np.abs(drawn["output_kernel"]).max() <= limit


def test_an_attention_mask_is_refused_by_name() -> None:
    _, config = _read("attention_block", "keras")
    config = json.loads(json.dumps(config))
    layer = next(lay for lay in config["config"]["layers"] if lay["config"]["name"] == "self_attn")
    layer["inbound_nodes"][0]["kwargs"]["attention_mask"] = layer["inbound_nodes"][0]["args"][0]
    with pytest.raises(ModelError, match="self_attn: MultiHeadAttention with an attention_mask"):
        plan_keras_graph(config)


# --- shared layers ------------------------------------------------------------------------------

def test_a_shared_layer_is_one_set_of_weights_called_twice() -> None:
    data, config = _read("question_pairs", "keras")
    graph = plan_keras_graph(config)
    # Embedding 20 x 5, LSTM 4 units over 5 features, Dense 4 -> 4, Dense 8 -> 1: each counted once
    assert graph.parameters == 20 * 5 + 4 * 4 * (5 + 4 + 1) + (4 * 4 + 4) + (8 + 1)
    calls = [n.name for n in graph.nodes if n.name.startswith("shared_lstm")]
    assert sorted(calls) == ["shared_lstm", "shared_lstm#1"]
    net = KerasNet(graph, None)
    names = [n.name for n in graph.nodes]
    assert net.layers[names.index("shared_lstm")] is net.layers[names.index("shared_lstm#1")]
    doc = check_keras(data, seeds=1, batch_size=8, verify=False)
    reported = [layer.name for layer in doc.layers]
    assert reported.count("shared_lstm") == 1 and not any("#" in name for name in reported)
    assert len([s for s in doc.time_steps if s.layer == "shared_lstm"]) == 6


def test_a_shared_layer_called_on_other_shapes_is_refused() -> None:
    _, config = _read("question_pairs", "keras")
    config = json.loads(json.dumps(config))
    second = next(lay for lay in config["config"]["layers"] if lay["config"]["name"] == "second")
    second["config"]["batch_shape"] = [None, 9]  # the second question is longer: fine for an LSTM
    plan_keras_graph(config)
    # the Dense's second call reads the embedded tokens (6 x 5) where its first read the LSTM (4)
    proj = next(lay for lay in config["config"]["layers"] if lay["config"]["name"] == "shared_proj")
    proj["inbound_nodes"][1]["args"][0]["config"]["keras_history"] = ["shared_emb", 1, 0]
    with pytest.raises(ModelError, match="shared_proj#1: called on inputs of shapes"):
        plan_keras_graph(config)


def test_a_two_tower_recommender_of_three_id_inputs_is_checked() -> None:
    data, config = _read("recommender", "keras")
    graph = plan_keras_graph(config)
    assert [(name, vocab) for name, _, vocab in graph.inputs] == [("user", 10), ("item", 12), ("history", 12)]
    assert graph.node("affinity").shape == (4,) and graph.node("cosine").shape == (1,)
    doc = check_keras(data, seeds=2, batch_size=8, verify=False)
    assert {"user_emb", "item_emb", "history_emb", "click"} <= {layer.name for layer in doc.layers}
    bad = json.loads(json.dumps(config))
    dot = next(lay for lay in bad["config"]["layers"] if lay["config"]["name"] == "affinity")
    dot["config"]["axes"] = [1, 1]  # 4 timesteps against 6 features
    with pytest.raises(ModelError, match="affinity.*contracted sizes differ"):
        plan_keras_graph(bad)


def test_a_time_distributed_per_step_layer_is_that_layer() -> None:
    data, config = _read("sequence_tagger", "h5")
    graph = plan_keras_graph(config)
    assert [(n.name, n.cls) for n in graph.nodes if n.name in ("per_token", "drop", "tags")] == [
        ("per_token", "Dense"), ("drop", "Dropout"), ("tags", "Dense")]
    doc = check_keras(data, seeds=1, batch_size=8, verify=False)
    assert [layer.name for layer in doc.layers][-2:] == ["per_token", "tags"]
    assert len([s for s in doc.time_steps if s.layer == "context"]) == 2 * 9  # both directions
    bad = json.loads(json.dumps(config))
    wrapper = next(lay for lay in bad["config"]["layers"] if lay["config"]["name"] == "per_token")
    # a layer that reads a sequence of its own is no frame-wise layer: refused by name (a frame-wise
    # one, a Conv1D, is read: kerassweep9; here with the Dense's config, it has no filters to read)
    wrapper["config"]["layer"]["class_name"] = "GRU"
    with pytest.raises(ModelError, match=r"TimeDistributed\(GRU\) \(per_token\)"):
        translate_or_graph(bad)
    wrapper["config"]["layer"]["class_name"] = "Conv1D"
    with pytest.raises(InputFormatError, match=r"/config/layer/config/filters: dense \(Conv1D\)"):
        translate_or_graph(bad)


def test_a_preactivation_resnet_stream_is_normalised_as_a_whole() -> None:
    # ResNet50V2's shape: the stem convolution reaches the first block's pre-activation BN
    # through ZeroPadding2D and MaxPooling2D; each block's last convolution (and a projection
    # shortcut) adds to a stream that only BNs read. Scaled together, the stream's writers change
    # nothing the network computes; one alone does. So all of them are normalised.
    data, config = _read("preact_resnet", "keras")
    doc = check_keras(data, seeds=1, batch_size=4, verify=False, weights="reinitialise")
    normalised = {layer.name: layer.normalised for layer in doc.layers if layer.type != "activation"}
    writers = ["conv1_conv", "block1_3_conv", "block2_3_conv", "block3_0_conv", "block3_3_conv"]
    assert normalised == {
        **{name: True for name in writers},
        **{f"block{k}_{i}_conv": True for k in (1, 2, 3) for i in (1, 2)},
        "predictions": False}
    # the claim, computed independently on the Keras graph's own forward pass
    net = KerasNet(plan_keras_graph(config), None).double()
    load_stored(net, read_keras_weights(data, config) or {})
    net.train()
    convs = {name: module for module, (name, _) in net.module_names().items()
             if isinstance(module, torch.nn.Conv2d)}
    x = torch.randn(4, 16, 16, 3, dtype=torch.float64)

    def scaled(names: list[str]) -> torch.Tensor:
        with torch.no_grad():
            for name in names:
                for p in convs[name].parameters():
                    p.mul_(2.0)
            out = net(x)
            for name in names:
                for p in convs[name].parameters():
                    p.div_(2.0)
        return cast(torch.Tensor, out)

    with torch.no_grad():
        before = net(x)
    assert torch.allclose(scaled(writers), before, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(scaled(["block2_3_conv"]), before, rtol=1e-4, atol=1e-6)


def test_keras_applications_custom_scale_layer_adds_the_scaled_branch() -> None:
    _, config = _read("inception_resnet", "keras")
    graph = plan_keras_graph(config)
    scale = graph.node("block1_scale")
    assert scale.cls == "CustomScaleLayer" and scale.shape == graph.node("block1_conv").shape
    net = KerasNet(graph, None).double()
    module = net.layers[[n.name for n in graph.nodes].index("block1_scale")]
    x, branch = torch.randn(2, 3), torch.randn(2, 3)
    assert torch.equal(module(x, branch), x + 0.17 * branch)
    # a scale that is not a number is named, with its layer
    bad = json.loads(json.dumps(config))
    for layer in bad["config"]["layers"]:
        if layer["config"]["name"] == "block2_scale":
            layer["config"]["scale"] = "0.17"
    with pytest.raises(ModelError, match="block2_scale.*CustomScaleLayer needs a number `scale`"):
        plan_keras_graph(bad)


def test_a_nested_model_called_twice_is_one_set_of_weights() -> None:
    # a Siamese network: one nested encoder called on both images
    data, config = _read("siamese", "keras")
    graph = plan_keras_graph(config)
    names = [n.name for n in graph.nodes]
    assert {"enc_conv", "enc_conv#encoder#1", "enc_dense", "enc_dense#encoder#1"} <= set(names)
    # the weights are counted once: the encoder's and the head's
    assert graph.parameters == 6 * 3 * 3 * 3 + 4 * 6 + 6 * 8 + 8 + 8 + 1  # BN: 2 weights, 2 statistics
    net = KerasNet(graph, None)
    assert net.layers[names.index("enc_dense")] is net.layers[names.index("enc_dense#encoder#1")]
    doc = check_keras(data, seeds=1, batch_size=4, verify=False)
    assert [layer.name for layer in doc.layers if layer.type != "activation"] == ["enc_conv", "enc_dense", "same"]
    # the second call's gradient reaches the shared weights too: both calls' sum, as Keras trains it
    assert doc.layers[0].grad_norm and doc.layers[0].grad_norm > 0


def _with_losses(data: bytes, loss: Any) -> bytes:
    """The .keras file ``data`` compiled with ``loss`` instead (its config.json rewritten)."""
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.namelist():
            body = zin.read(item)
            if item == "config.json":
                cfg = json.loads(body)
                cfg["compile_config"]["loss"] = loss
                body = json.dumps(cfg).encode()
            zout.writestr(item, body)
    return out.getvalue()


@pytest.mark.parametrize("as_list", [False, True])
def test_each_output_is_simulated_with_its_own_compiled_loss(as_list: bool) -> None:
    # the softmax head compiled on logits (from_logits=True): Keras applies its softmax again
    data, config = _read("three_heads", "keras")
    on_logits = {"class_name": "CategoricalCrossentropy", "config": {"from_logits": True}}
    loss: Any = [on_logits, "mse", "binary_crossentropy"] if as_list else {
        "kind": on_logits, "size": "mse", "aux": "binary_crossentropy"}
    doc = check_keras(_with_losses(data, loss), seeds=1, batch_size=8, verify=False)
    reported = {layer.name: layer for layer in doc.layers}
    grads = _three_heads_grads(data, config, lambda kind: torch.softmax(kind, -1))
    assert reported["h1"].output_grad_norm == pytest.approx(grads["h1"], rel=1e-9)
