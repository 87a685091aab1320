"""Keras models the spec language cannot express, as a graph of layers (torch-free).

The spec translation (:mod:`.keras`) covers chains with identity-skip residual blocks, which is
what the spec language has. Real Keras models are often more: ``keras.applications``' MobileNets
and EfficientNets use depthwise convolutions, squeeze-and-excitation (``Multiply``), asymmetric
``ZeroPadding2D`` before strided convolutions; DenseNet and Inception concatenate branches;
ResNet's shortcuts are projections. Those models go through this module instead: the config is
read as a graph of Keras layers, every layer's output shape and weight shapes are inferred here
(Keras' own formulas, channels-last as Keras computes), and :mod:`.keras_torch` builds the same
graph in PyTorch and checks it through the graph simulation, as the ONNX door does.

This half is plain Python so the API can refuse a model it cannot check (an unsupported layer, a
shape that does not fit, a model over the parameter or memory limits) before a job exists and
without importing torch. Every problem is collected into ONE :class:`ModelError`.
"""

from __future__ import annotations

import math
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from gradhealth.analysis.importers import ModelError, name_layers
from gradhealth.errors import LimitExceeded

__all__ = ["GRAPH_LAYERS", "KerasGraph", "Node", "check_config_sizes", "endpoints", "lambda_stand_in",
           "plan_keras_graph", "size_problems", "stand_in_note"]

Shape = tuple[int, ...]

#: Layers that are the identity in the simulation (dropout is off in the graph simulation, as
#: for every live network; noise layers pass gradients through unchanged).
IDENTITY_LAYERS = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                   "GaussianDropout", "GaussianNoise", "AlphaDropout", "Identity",
                   "ActivityRegularization", "Masking")
_MERGES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Divide",
           "TrueDivide", "CustomScaleLayer")
#: Merges of exactly two inputs. keras.applications' InceptionResNetV2 adds each block's branch
#: to its input scaled: CustomScaleLayer(scale)([x, branch]) = x + branch * scale.
_BINARY = ("Subtract", "Divide", "TrueDivide", "CustomScaleLayer")
_CONVS = ("Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D",
          "SeparableConv2D")
_TRANSPOSED = ("Conv1DTranspose", "Conv2DTranspose")
_POOLS = ("MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D")
_GLOBAL = ("GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
           "GlobalMaxPooling2D")
#: Keras' recurrent layers (also inside a ``Bidirectional``) and their gate blocks.
RECURRENT = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}
#: The parameter-free layer that stands in for a distance Lambda (not a Keras class: the stand-in's own).
DISTANCE = "_EuclideanDistance"
#: Every layer class this path reads.
GRAPH_LAYERS = ("InputLayer", "Dense", *_CONVS, *_TRANSPOSED, *_POOLS, *_GLOBAL, *_MERGES, *IDENTITY_LAYERS,
                *RECURRENT, "Bidirectional", "MultiHeadAttention", "Dot", "BatchNormalization", "LayerNormalization", "Activation", "ReLU", "LeakyReLU",
                "ELU", "PReLU", "Softmax", "ThresholdedReLU", "Flatten", "Reshape", "Permute", "RepeatVector",
                "ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D", "UpSampling1D",
                "UpSampling2D", "Rescaling", "Normalization", "LayerScale", "Embedding", DISTANCE)
#: Keras activation names this path simulates (as torch modules in :mod:`.keras_torch`).
ACTIVATIONS = ("linear", "relu", "relu6", "sigmoid", "tanh", "elu", "selu", "gelu", "swish",
               "silu", "softplus", "softsign", "leaky_relu", "hard_sigmoid", "hard_swish",
               "hard_silu", "mish", "exponential", "softmax")


@dataclass
class Node:
    """One Keras layer of the graph: what it reads and what it makes."""

    name: str
    cls: str
    cfg: dict[str, Any]
    inputs: list[str]
    shape: Shape = ()  # its output, without the batch
    #: its variables in ``layer.weights`` order (Keras' layouts): (role, shape)
    weights: list[tuple[str, Shape]] = field(default_factory=list)
    in_shapes: list[Shape] = field(default_factory=list)
    #: a Keras 3 op's arguments in order: a tensor's layer name, or a number (``x + 3.0`` in
    #: MobileNetV3's hard sigmoid); None: the inputs only
    args: list[str | float] | None = None


@dataclass
class KerasGraph:
    """A Keras model as a graph of layers in an order that runs it (inputs first)."""

    name: str
    nodes: list[Node]
    input_name: str  # the first input's (input_names[0])
    output_name: str
    input_shape: Shape
    vocab_size: int | None  # an Embedding reads the input: token ids below this
    #: the input's own preprocessing (Rescaling, Normalization right after the input), skipped
    preprocessing: list[str] = field(default_factory=list)
    parameters: int = 0
    activation_bytes: int = 0
    #: multiply-adds of one sample's forward (:func:`graph_multiply_adds`): what the simulation's time
    #: is estimated from (:func:`gradhealth.analysis.timing.fit_time`)
    multiply_adds: int = 0
    #: every input, in the order the model is called with them: (name, shape, vocabulary or None)
    inputs: list[tuple[str, Shape, int | None]] = field(default_factory=list)
    #: every output, in the order the model returns them (output_name is the first)
    output_names: list[str] = field(default_factory=list)
    #: the input's preprocessing kept in the simulation, its statistics describing no data:
    #: (name, why, the largest factor it scales its input by; nan: statistics not finite)
    degenerate_preprocessing: list[tuple[str, str, float]] = field(default_factory=list)
    #: the input's preprocessing kept and applied to the raw inputs of the range given
    #: (``--input-range``: it describes the data the model is fed, before its own preprocessing)
    applied_preprocessing: list[str] = field(default_factory=list)
    #: a kept Normalization with no statistics to apply (never adapted), simulated as adapted to
    #: the range's inputs instead: (name, why, the mean and variance it was given)
    adapted_preprocessing: list[tuple[str, str, float, float]] = field(default_factory=list)
    #: Lambda layers simulated by a parameter-free stand-in (their code never run): (name, the
    #: stand-in: ``identity`` or ``sum``, the layers it reads) (:func:`lambda_stand_in`)
    stand_ins: list[tuple[str, str, list[str]]] = field(default_factory=list)

    def node(self, name: str) -> Node:
        """The node called ``name``."""
        return next(n for n in self.nodes if n.name == name)


def endpoints(value: Any) -> list[str]:
    """The layer names of a Functional config's ``input_layers``/``output_layers``: Keras 2 and 3
    write a list of ``[name, node, tensor]`` triples, Keras 3 a bare triple for one tensor, and a
    dict of them by name for a model built with named outputs (``outputs={"price": ..., ...}``:
    kerassweep6, refused as "outputs (0)")."""
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list) or not value:
        return []
    if isinstance(value[0], str):
        return [value[0]]
    if isinstance(value[0], dict):  # a dict of named inputs: its values
        value = list(value[0].values())
    return [str(v[0]) for v in value if isinstance(v, list) and v and isinstance(v[0], str)]


# --- Lambda layers: a stand-in, never their code --------------------------------------------------
#: The layer that stands in for a Lambda, by stand-in (:func:`lambda_stand_in`).
STAND_IN_LAYERS = {"identity": "Identity", "assumed": "Identity", "sum": "Add", "assumed_sum": "Add",
                   "distance": DISTANCE}
def declared_shape(value: Any, batch: bool = False) -> Shape | None:
    """A shape as a config declares it (``batch``: with the batch size first, dropped), None
    where it is not a list of positive integers (absent, a dynamic size, or code: Keras 2
    serialises an ``output_shape`` function as its bytecode, which is never run)."""
    if not isinstance(value, list | tuple):
        return None
    dims = list(value[1:] if batch else value)
    if not all(_count(d, MAX_SIZE) for d in dims):
        return None
    return tuple(dims)


def keras_tensor_shapes(value: Any, out: dict[tuple[str, int], list[Shape]] | None = None
                        ) -> dict[tuple[str, int], list[Shape]]:
    """The shape every Keras 3 tensor reference in ``value`` (a config) declares for the tensor
    it reads, by (layer, call): what the layers reading a layer's output say that output is."""
    out = {} if out is None else out
    if isinstance(value, dict):
        cfg = value.get("config")
        if value.get("class_name") == "__keras_tensor__" and isinstance(cfg, dict):
            history, shape = cfg.get("keras_history"), declared_shape(cfg.get("shape"), batch=True)
            if isinstance(history, list) and history and shape is not None:
                call = history[1] if len(history) > 1 and isinstance(history[1], int) else 0
                out.setdefault((str(history[0]), max(call, 0)), []).append(shape)
            return out
        for item in value.values():
            keras_tensor_shapes(item, out)
    elif isinstance(value, list):
        for item in value:
            keras_tensor_shapes(item, out)
    return out


def graph_multiply_adds(nodes: Sequence[Node]) -> int:
    """Multiply-adds of one sample's forward through ``nodes`` (shapes without the batch): each
    kernel (a Dense's, a convolution's, an attention's projections) is used once at each position of
    the layer's output, its values over the channels (a Dense's each row of a sequence, a
    convolution's each output pixel); a transposed convolution's at each position of its input,
    which it scatters; a recurrent layer's kernels once a time step. Biases, norms and the
    elementwise layers are left out: a few per cent of an estimate."""
    total = 0
    for n in nodes:
        kernels = [math.prod(shape) for role, shape in n.weights if role.endswith("kernel")]
        if not kernels or not n.shape:
            continue
        first = n.in_shapes[0] if n.in_shapes and n.in_shapes[0] else ()
        channels_first = n.cfg.get("data_format") == "channels_first"
        if any(role.endswith("recurrent_kernel") for role, _ in n.weights):
            positions = first[0] if len(first) > 1 else 1
        elif "Transpose" in n.cls and first:
            positions = math.prod(first) // max(first[0] if channels_first else first[-1], 1)
        else:
            positions = math.prod(n.shape) // max(n.shape[0] if channels_first else n.shape[-1], 1)
        total += sum(kernels) * positions
    return total


def lambda_stand_in(in_shapes: Sequence[Shape | None], output_shape: Any,
                    read_as: Sequence[Shape] = ()) -> tuple[str | None, str]:
    """What stands in for a ``Lambda`` layer, whose function (code in the file) is never run:
    ``("identity", "")``, ``("sum", "")`` or ``("distance", "")``, or ``(None, why not)``.

    ``in_shapes``: its inputs' shapes (None: unknown); ``output_shape``: its config's (absent:
    None); ``read_as``: the shapes the layers reading it declare for its output (Keras 3's
    tensor references). The output's shape is the declared one, else the one its readers agree
    on; the stand-in is the identity for one input of that shape, the sum for several.

    Why the sum: the usual multi-input Lambda is a VAE's reparameterisation z = mu + exp(logvar
    / 2) * eps. Its Jacobian with respect to mu is exactly I, and with respect to logvar it is
    diag(eps * exp(logvar / 2) / 2): at initialisation (logvar ~ 0) noise of unit scale, which
    the sum's I matches in scale but not in sign or direction. So the sum carries gradients of
    the right size to every branch (what the vanishing/exploding checks measure); it is not the
    function (no noise, no exp), so what the check says of that layer itself is approximate."""
    if not in_shapes:
        return None, "it reads no tensor"
    if any(s is None for s in in_shapes):
        return None, "the shapes of its inputs are not known"
    ins = [s for s in in_shapes if s is not None]
    declared = declared_shape(output_shape)
    if output_shape is not None and declared is None:
        return None, (f"its output_shape {str(output_shape)[:60]} is not a list of fixed sizes "
                      "(a function that computes it is code, never run)")
    outs = {*([declared] if declared is not None else []), *read_as}
    if len(outs) > 1:
        return None, f"its output shapes as the file declares them differ: {sorted(list(o) for o in outs)}"
    if not outs and len(ins) == 1:
        # Keras 2 gives a Lambda without output_shape the shape it finds by running the function,
        # which for the usual one-input Lambda (an input normalisation, x / 127.5 - 1) is its
        # input's: that is assumed, and said (stand_in_note); a reader's stored kernel that reads
        # another size refuses it, naming both layers (:func:`assumed_shape_problem`)
        return "assumed", ""
    if not outs and len(set(ins)) == 1:
        # several inputs of one shape and nothing declared: Keras 2's textbook VAE,
        # Lambda(sampling)([z_mean, z_log_var]), whose output is z_mean's shape; the sum is assumed
        # and said, and a reader's stored kernel of another width refuses it, naming both layers
        return "assumed_sum", ""
    if not outs:
        return None, (f"it declares no output_shape and reads {len(ins)} tensors of different shapes "
                      f"({', '.join(str(list(s)) for s in ins)}), and no layer that reads it declares the "
                      "shape it reads, so its output's shape is unknown; give it its output_shape")
    out = outs.pop()
    if len(ins) == 2 and ins[0] == ins[1] and ins[0] and out in (ins[0][:-1] + (1,), ins[0][:-1]):
        # a Siamese net's head (kerassweep13 h06): two embeddings of one shape to one number each,
        # ``sqrt(sum(square(a - b), -1))``, the Euclidean distance Keras' siamese example computes
        return "distance", ""
    if any(s != out for s in ins):
        what = "its input's" if len(ins) == 1 else "each of its inputs'"
        return None, (f"its output shape {list(out)} is not {what} ({', '.join(str(list(s)) for s in ins)}): "
                      "a reshape, a reduction over an axis or a new axis has no stand-in that needs no code")
    return ("identity" if len(ins) == 1 else "sum"), ""


def stand_in_note(stand_ins: Sequence[tuple[str, str, Sequence[str]]]) -> str | None:
    """The document's note (its summary's) that Lambda layers were stood in for, or None.

    Starts with the stable marker ``Lambda stand-in``."""
    if not stand_ins:
        return None
    said = [f"{name} = the sum of its inputs ({', '.join(srcs)})" if kind == "sum"
            else f"{name} = the Euclidean distance of its inputs ({', '.join(srcs)}), sqrt(sum((a - b)^2))"
            if kind == "distance"
            else f"{name} = its input, ASSUMED (it declares no output_shape: Keras infers its shape by "
                 "running the function, which is taken to keep its input's, as an element-wise "
                 "normalisation such as x / 127.5 - 1 does)"
            if kind == "assumed"
            else f"{name} = the sum of its inputs ({', '.join(srcs)}), ASSUMED (it declares no output_shape: "
                 "its inputs share one shape, taken to be its output's, as a VAE's sampling z = z_mean + "
                 "exp(z_log_var / 2) * eps keeps z_mean's)"
            if kind == "assumed_sum" else f"{name} = its input" for name, kind, srcs in stand_ins[:10]]
    names = ", ".join(name for name, _, _ in stand_ins[:10]) + (" ..." if len(stand_ins) > 10 else "")
    return ("Lambda stand-in: the function of Lambda " + names + " was NOT run (code in a file never is); "
            "a parameter-free stand-in was simulated in its place: " + "; ".join(said)
            + (f"; and {len(stand_ins) - 10} more" if len(stand_ins) > 10 else "")
            + f"; findings that name {names} are approximate")


#: Layers that compute the same on each time step as on the whole sequence (they act on the last
#: axis, or elementwise): TimeDistributed of one of them is that layer.
PER_STEP = ("Dense", "Activation", "Dropout", "SpatialDropout1D", "GaussianDropout", "ReLU", "LeakyReLU",
            "ELU", "Softmax", "BatchNormalization", "LayerNormalization")


#: Layers a ``TimeDistributed`` applies to each time step's frame (a CNN over a video's frames): run
#: on the frames stacked along the batch (:data:`TIME_DISTRIBUTED`, read by ``_shape`` and the torch
#: module). Not the ones that read several tensors or a sequence of their own.
FRAME_WISE = tuple(c for c in GRAPH_LAYERS if c not in (*_MERGES, *RECURRENT, "Bidirectional", "MultiHeadAttention",
                                                        "Dot", "InputLayer"))
#: The config key that marks a layer as applied frame by frame (set by :func:`_unwrap`).
TIME_DISTRIBUTED = "_time_distributed"


def _unwrap(cls: str, cfg: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(class, config) of a layer, a ``TimeDistributed`` of a per-step layer read as that layer
    (under the wrapper's name, where the file stores its weights); of any other frame-wise layer
    (Conv2D, MaxPooling2D, Flatten over a video's frames) as that layer marked
    :data:`TIME_DISTRIBUTED`."""
    if cls != "TimeDistributed":
        return cls, cfg
    inner = cfg.get("layer")
    inner_cls = str(inner.get("class_name", "")) if isinstance(inner, dict) else ""
    inner_cfg = inner.get("config") if isinstance(inner, dict) else None
    if inner_cls in FRAME_WISE and inner_cls not in PER_STEP and isinstance(inner_cfg, dict):
        return inner_cls, {**inner_cfg, "name": cfg.get("name", inner_cfg.get("name")), TIME_DISTRIBUTED: True}
    if inner_cls not in PER_STEP or not isinstance(inner_cfg, dict):
        return f"TimeDistributed({inner_cls or '?'})", cfg  # named as refused: not a class read here
    if inner_cls in ("BatchNormalization", "LayerNormalization") and inner_cfg.get("axis", -1) not in (-1, [-1]):
        return f"TimeDistributed({inner_cls} over axis {inner_cfg.get('axis')})", cfg
    return inner_cls, {**inner_cfg, "name": cfg.get("name", inner_cfg.get("name"))}


def frame_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """A :data:`TIME_DISTRIBUTED` layer's config as the layer's own (applied to one frame)."""
    return {k: v for k, v in cfg.items() if k != TIME_DISTRIBUTED}


def call_name(layer: str, call: int) -> str:
    """The node of a layer's ``call``-th call: the layer's own name for the first."""
    return layer if call == 0 else f"{layer}#{call}"


def _calls(layer: dict[str, Any]) -> list[list[tuple[str, int]]]:
    """Each call of a Functional layer: the tensors it read as (layer name, that layer's call), in
    argument order (Keras 3's ``keras_history`` and Keras 2's ``[name, call, tensor]``)."""
    nodes = layer.get("inbound_nodes")
    return [_tensors(node, []) for node in nodes] if isinstance(nodes, list) else []


def _tensors(value: Any, refs: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """``refs`` extended by the (layer, call) of every tensor reference in ``value``, in order."""
    if isinstance(value, dict):
        history = (value.get("config") or {}).get("keras_history") if value.get(
            "class_name") == "__keras_tensor__" else None
        if isinstance(history, list) and history:
            call = history[1] if len(history) > 1 and isinstance(history[1], int) else 0
            refs.append((str(history[0]), max(call, 0)))
            return refs
        for item in value.values():
            _tensors(item, refs)
    elif isinstance(value, list):
        if len(value) >= 3 and isinstance(value[0], str) and isinstance(value[1], int):
            refs.append((value[0], max(value[1], 0)))
            return refs
        for item in value:
            _tensors(item, refs)
    return refs


def _indexed(value: Any, refs: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """``refs`` extended by the (layer, call, output index) of every tensor reference in ``value``."""
    if isinstance(value, dict):
        history = (value.get("config") or {}).get("keras_history") if value.get(
            "class_name") == "__keras_tensor__" else None
        if isinstance(history, list) and history:
            call = history[1] if len(history) > 1 and isinstance(history[1], int) else 0
            index = history[2] if len(history) > 2 and isinstance(history[2], int) else 0
            refs.append((str(history[0]), max(call, 0), max(index, 0)))
            return refs
        for item in value.values():
            _indexed(item, refs)
    elif isinstance(value, list):
        if len(value) >= 3 and isinstance(value[0], str) and isinstance(value[1], int):
            refs.append((value[0], max(value[1], 0), value[2] if isinstance(value[2], int) else 0))
            return refs
        for item in value:
            _indexed(item, refs)
    return refs


def _recurrent_refs(layer: dict[str, Any], call: int, refs: list[tuple[str, int]],
                    by_layer: Mapping[str, dict[str, Any]], problems: list[str]
                    ) -> tuple[list[tuple[str, int]], int]:
    """(the tensors a recurrent layer's ``call`` reads, its initial states last; how many those
    are). ``RNN(...)(x, initial_state=[h0, c0])`` is the encoder-decoder idiom (Keras' own
    lstm_seq2seq; kerassweep12 h03/h05 were refused as "GRU with 2 inputs"): Keras 3 writes the
    states under the call's ``kwargs``, Keras 2 as inbound tensors after the sequence. Any other
    tensor argument stays an extra input, which ``_shape`` refuses. A state read from a
    ``return_state`` layer's output k > 0 is the last h only where that layer returns no sequence
    and k is 1 (its output 0 is then the same h); its cell state c is no tensor here: refused."""
    nodes = layer.get("inbound_nodes")
    node = nodes[call] if isinstance(nodes, list) and call < len(nodes) else None
    if isinstance(node, dict):
        kwargs: dict[str, Any] = node["kwargs"] if isinstance(node.get("kwargs"), dict) else {}
        args: list[Any] = node["args"] if isinstance(node.get("args"), list) else []
        # RNN.call(sequences, initial_state=None, mask=None, ...): a second positional is the states
        given = kwargs.get("initial_state", args[1] if len(args) > 1 else None)
        rest = args[:1] + args[1 + ("initial_state" not in kwargs):]
        main = _tensors([rest, {k: v for k, v in kwargs.items() if k != "initial_state"}], [])
        states = _indexed(given, [])
    elif isinstance(node, list) and len(refs) > 1:  # Keras 2: [sequence, *initial_state]
        main, states = refs[:1], _indexed(node[1:], [])
    else:
        return refs, 0
    name = str(layer.get("name") or _cfg(layer).get("name"))
    for src, _, index in states:
        if index == 0:
            continue
        source = by_layer.get(src) or {}
        if source.get("class_name") in MODELS:
            continue  # output k of a nested model: its own output layer (_nested_outputs)
        src_cfg = _cfg(source)
        if not (source.get("class_name") in RECURRENT and index == 1 and not src_cfg.get("return_sequences")):
            problems.append(f"{name}: its initial_state reads output {index} of {src} (a return_state "
                            "layer's state other than its last output), which is not supported")
    return main + [(src, k) for src, k, _ in states], len(states)


def _args(layer: dict[str, Any]) -> list[str | float] | None:
    """A Keras 3 layer's call arguments in order (tensors by layer name, numbers as floats) when
    any is a number; None otherwise (the inputs say it all)."""
    nodes = layer.get("inbound_nodes")
    if not isinstance(nodes, list) or len(nodes) != 1 or not isinstance(nodes[0], dict):
        return None
    out: list[str | float] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
            history = (value.get("config") or {}).get("keras_history")
            out.append(str(history[0]) if isinstance(history, list) and history else "?")
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out.append(float(value))

    walk(nodes[0].get("args") or [])
    return out if any(isinstance(a, float) for a in out) else None


def _ints(value: Any, n: int, what: str) -> tuple[int, ...]:
    values = list(value) if isinstance(value, list | tuple) else [value] * n
    if len(values) != n or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                   for v in values):
        raise ValueError(f"{what} {value!r}: expected {n} non-negative integer(s)")
    return tuple(int(v) for v in values)


def _padding_pairs(value: Any, n: int) -> tuple[tuple[int, int], ...]:
    """ZeroPadding/Cropping's ``padding``/``cropping``: an int, a pair per axis, or an int per axis."""
    if isinstance(value, int) and not isinstance(value, bool):
        _ints(value, 1, "padding")
        return ((value, value),) * n
    values = list(value) if isinstance(value, list | tuple) else []
    if n == 1 and len(values) == 2 and all(isinstance(v, int) for v in values):
        return ((values[0], values[1]),)
    if len(values) == n:
        out = []
        for v in values:
            out.append(_ints(v, 2, "padding") if isinstance(v, list | tuple) else _ints(v, 2, "padding"))
        return tuple((a, b) for a, b in out)
    raise ValueError(f"padding {value!r} is not an int, a pair per axis or an int per axis")


def window(cfg: dict[str, Any], n: int, pool: bool = False
           ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], str]:
    """(kernel, strides, dilation, padding) of a convolution's or a pooling's config over ``n``
    spatial axes (a pool's strides default to its size; it has no dilation)."""
    if pool:
        k = _ints(cfg.get("pool_size", 2), n, "pool_size")
        s, d = _ints(cfg.get("strides") or k, n, "strides"), (1,) * n
    else:
        k = _ints(cfg.get("kernel_size"), n, "kernel_size")
        s, d = _ints(cfg.get("strides", 1), n, "strides"), _ints(cfg.get("dilation_rate", 1), n, "dilation_rate")
    return k, s, d, str(cfg.get("padding", "valid")).lower()


def conv_padding(size: int, kernel: int, stride: int, dilation: int, padding: str) -> tuple[int, int, int]:
    """(output size, pad before, pad after) of one spatial axis, as Keras computes them: ``valid``
    pads nothing; ``same`` pads so the output is ceil(size / stride), the odd one after (TF's
    rule); ``causal`` (Conv1D) pads (kernel - 1) * dilation before."""
    span = (kernel - 1) * dilation + 1
    if padding == "valid":
        return (size - span) // stride + 1, 0, 0
    if padding == "causal":
        return (size + span - 1 - span) // stride + 1, span - 1, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + span - size, 0)
    return out, total // 2, total - total // 2


def transposed_padding(size: int, kernel: int, stride: int, padding: str) -> tuple[int, int]:
    """(output size, rows cropped before) of one axis of a transposed convolution, as TensorFlow
    computes it from torch's full output of (size - 1) * stride + kernel: ``valid`` is
    size * stride + max(kernel - stride, 0) (a kernel under its stride leaves zeros after);
    ``same`` is size * stride, cropping kernel - stride, the odd one after."""
    full = (size - 1) * stride + kernel
    if padding == "valid":
        return size * stride + max(kernel - stride, 0), 0
    return size * stride, max(full - size * stride, 0) // 2


def _activation(value: Any) -> str:
    """The activation a config names (any form Keras writes: :func:`.keras.activation_written`),
    as one of :data:`ACTIVATIONS`; ValueError quoting it as the file writes it otherwise."""
    from gradhealth.analysis.importers.keras import activation_key, activation_written

    key = activation_key(value)  # ValueError for a value that is no activation Keras writes
    name = {"leakyrelu": "leaky_relu", "hardsigmoid": "hard_sigmoid", "hardswish": "hard_swish",
            "hardsilu": "hard_silu"}.get(key, key)
    if name not in ACTIVATIONS:
        raise ValueError(f"activation {activation_written(value)!r} is not supported (supported: "
                         f"{', '.join(ACTIVATIONS)})")
    return name


def _axis(value: Any, rank: int) -> int:
    """A Keras axis (counting the batch as 0, or negative) -> an axis of the shape without batch."""
    axis = value[0] if isinstance(value, list | tuple) and len(value) == 1 else value
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise ValueError(f"axis {value!r}: expected one integer")
    k = axis - 1 if axis > 0 else rank + axis
    if not 0 <= k < rank:
        raise ValueError(f"axis {value!r} is out of range for a tensor of rank {rank + 1}")
    return k


def _broadcast(shapes: list[Shape], cls: str) -> Shape:
    rank = max(len(s) for s in shapes)
    out = []
    for dims in zip(*[(1,) * (rank - len(s)) + s for s in shapes], strict=True):
        big = {d for d in dims if d != 1}
        if len(big) > 1:
            raise ValueError(f"{cls} of shapes {' and '.join(str(list(s)) for s in shapes)}: they "
                             "do not broadcast")
        out.append(big.pop() if big else 1)
    return tuple(out)


#: MultiHeadAttention's projections, in ``layer.weights`` order: (role prefix, Keras' sublayer)
ATTENTION_PARTS = (("query", "query_dense"), ("key", "key_dense"), ("value", "value_dense"),
                   ("output", "output_dense"))


def attention_inputs(layer: dict[str, Any], problems: list[str]) -> tuple[list[str], bool]:
    """([query, value, key] layer names, use_causal_mask) of a MultiHeadAttention call, from Keras
    3's ``{args, kwargs}`` or Keras 2's ``[name, node, tensor, kwargs]`` inbound node."""
    name = str(layer.get("name") or _cfg(layer).get("name"))
    nodes = layer.get("inbound_nodes") or []
    first = nodes[0] if isinstance(nodes, list) and nodes else {}
    positional: list[str] = []
    kwargs: dict[str, Any] = {}

    def tensor(value: Any) -> str | None:  # the layer of the one tensor ``value`` refers to
        refs = _tensors(value, [])
        return refs[0][0] if len(refs) == 1 else None

    if isinstance(first, dict):  # Keras 3
        for arg in first.get("args") or []:
            if tensor(arg) is not None:
                positional.append(cast(str, tensor(arg)))
        given = first.get("kwargs")
        kwargs = given if isinstance(given, dict) else {}
    elif isinstance(first, list) and first and isinstance(first[0], list):  # Keras 2
        positional = [t for t in (tensor(item) for item in first) if t is not None]
        extra = first[0][3] if len(first[0]) > 3 else {}
        kwargs = extra if isinstance(extra, dict) else {}
    named = {k: tensor(v) for k, v in kwargs.items() if tensor(v) is not None}
    if kwargs.get("attention_mask") is not None or kwargs.get("return_attention_scores"):
        problems.append(f"{name}: MultiHeadAttention with an attention_mask or returning its scores "
                        "is not supported")
    query = positional[0] if positional else named.get("query")
    value = positional[1] if len(positional) > 1 else named.get("value")
    key = positional[2] if len(positional) > 2 else named.get("key") or value
    if query is None or value is None or key is None:
        problems.append(f"{name}: MultiHeadAttention needs its query and value inputs")
        return [], False
    return [query, value, key], bool(kwargs.get("use_causal_mask"))


def dot_axes(cfg: dict[str, Any], shapes: list[Shape]) -> tuple[int, int]:
    """The axes (of each input, batch excluded) a Dot layer contracts, checked: Keras' ``axes``
    (one for both, or a pair) counts the batch as axis 0, or from the end when negative."""
    if len(shapes) != 2 or any(len(s) not in (1, 2) for s in shapes):
        raise ValueError(f"Dot of shapes {[list(s) for s in shapes]}: two vectors or two "
                         "sequences (timesteps, features) are supported")
    axes = cfg.get("axes", -1)
    pair = list(axes) if isinstance(axes, list | tuple) else [axes, axes]
    if len(pair) != 2 or not all(isinstance(a, int) and not isinstance(a, bool) for a in pair):
        raise ValueError(f"axes {axes!r}: expected an integer or a pair of integers")
    found = (_axis(pair[0], len(shapes[0])), _axis(pair[1], len(shapes[1])))
    if shapes[0][found[0]] != shapes[1][found[1]]:
        raise ValueError(f"Dot over axes {axes!r} of shapes {list(shapes[0])} and {list(shapes[1])}: "
                         "the contracted sizes differ")
    return found


def _dot_shape(cfg: dict[str, Any], shapes: list[Shape]) -> Shape:
    a, b = dot_axes(cfg, shapes)
    rest = tuple(v for k, v in enumerate(shapes[0]) if k != a) + tuple(
        v for k, v in enumerate(shapes[1]) if k != b)
    return rest or (1,)  # two vectors: one number per sample, as Keras' batch_dot keeps it


def _attention_shape(cfg: dict[str, Any], shapes: list[Shape]) -> tuple[Shape, list[tuple[str, Shape]]]:
    if len(shapes) != 3 or any(len(s) != 2 for s in shapes):
        raise ValueError(f"MultiHeadAttention of shapes {[list(s) for s in shapes]}: query, value and "
                         "key must each be a sequence (timesteps, features)")
    (t, dq), (s_v, dv), (s_k, dk) = shapes
    if s_v != s_k:
        raise ValueError(f"value and key of {s_v} and {s_k} timesteps")
    axes = cfg.get("attention_axes")
    if axes not in (None, [1], 1, [-2], (1,)):
        raise ValueError(f"attention_axes {axes!r}: only attention over the timesteps is supported")
    if cfg.get("use_gate") or cfg.get("sliding_window"):
        raise ValueError("use_gate / sliding_window attention is not supported")
    sizes = {"num_heads": cfg.get("num_heads"), "key_dim": cfg.get("key_dim"),
             "value_dim": cfg.get("value_dim") or cfg.get("key_dim")}  # value_dim: key_dim by default
    for key, size in sizes.items():
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_SIZE:
            raise ValueError(f"{key} {size!r}: expected a positive integer up to {MAX_SIZE}")
    out = cfg.get("output_shape")
    out = out[0] if isinstance(out, list | tuple) and len(out) == 1 else out if out is not None else dq
    if not isinstance(out, int) or isinstance(out, bool) or not 1 <= out <= MAX_SIZE:
        raise ValueError(f"output_shape {cfg.get('output_shape')!r}: expected one positive integer")
    h, k, v = (cast(int, sizes[key]) for key in ("num_heads", "key_dim", "value_dim"))
    bias = bool(cfg.get("use_bias", True))
    weights: list[tuple[str, Shape]] = []
    for role, fan, width in (("query", dq, k), ("key", dk, k), ("value", dv, v)):
        weights.append((f"{role}_kernel", (fan, h, width)))
        if bias:
            weights.append((f"{role}_bias", (h, width)))
    weights.append(("output_kernel", (h, v, out)))
    if bias:
        weights.append(("output_bias", (out,)))
    return (t, out), weights


def attention_inner(node: Node) -> int:
    """Values per sample a MultiHeadAttention holds besides its output (for the memory plan): the
    scores and their softmax (heads x T x S each) and the per-head query, key, value and attended
    value (kerassweep13 h02: 4 blocks of 4 heads over 640 steps are 13M values per sample, 13 GB at
    batch 64 with their gradients, uncounted until then: the process was killed at 22.6 GB)."""
    if len(node.in_shapes) != 3 or any(len(s) != 2 for s in node.in_shapes):
        return 0
    # from the config (validated by _attention_shape): a shared layer's later calls have no weights
    heads, key_dim = int(node.cfg["num_heads"]), int(node.cfg["key_dim"])
    value_dim = int(node.cfg.get("value_dim") or key_dim)
    t, s = node.in_shapes[0][0], node.in_shapes[1][0]
    return heads * (2 * t * s + (t + s) * key_dim + (s + t) * value_dim)


def recurrent_cell(cls: str, cfg: dict[str, Any]) -> tuple[str, dict[str, Any], int]:
    """(recurrent class, its config, directions) of a recurrent layer ``cls`` with config ``cfg``,
    or of a Bidirectional's layer (concatenated: its backward layer is a copy of the forward one);
    ValueError for a Bidirectional the cells do not compute (both Keras doors read it here)."""
    if cls != "Bidirectional":
        return cls, cfg, 1
    inner = cfg.get("layer")
    inner = inner if isinstance(inner, dict) else {}
    inner_cls, inner_cfg = str(inner.get("class_name", "")), inner.get("config")
    if inner_cls not in RECURRENT or not isinstance(inner_cfg, dict):
        raise ValueError(f"Bidirectional of {inner_cls or '?'} is not supported ({', '.join(RECURRENT)})")
    if cfg.get("merge_mode", "concat") != "concat":
        raise ValueError(f"merge_mode {cfg.get('merge_mode')!r} is not supported (only concat)")
    if not mirrored_backward(inner, cfg.get("backward_layer")):
        raise ValueError("a custom backward_layer is not supported")
    if inner_cfg.get("go_backwards"):
        # Keras then reads forwards in its backward half and returns the forward half's outputs
        # unflipped: not the concatenation of aligned directions that is simulated
        raise ValueError("Bidirectional of a go_backwards layer is not supported")
    return inner_cls, inner_cfg, 2


def mirrored_backward(layer: Any, backward: Any) -> bool:
    """A Bidirectional's ``backward_layer`` is the forward layer reading backwards (or absent):
    Keras 3 writes that copy into every config, under its own name with ``go_backwards`` flipped."""
    if not backward:
        return True
    if not isinstance(layer, dict) or not isinstance(backward, dict):
        return False

    def plain(value: Any) -> Any:  # without Keras' serialisation bookkeeping (object ids)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items() if k != "shared_object_id"}
        return [plain(v) for v in value] if isinstance(value, list) else value

    def rest(cfg: Any) -> dict[str, Any]:
        cfg = cfg if isinstance(cfg, dict) else {}
        return {k: plain(v) for k, v in cfg.items() if k not in ("name", "go_backwards")}

    forward_back = bool((layer.get("config") or {}).get("go_backwards"))
    return (backward.get("class_name") == layer.get("class_name")
            and bool((backward.get("config") or {}).get("go_backwards")) != forward_back
            and rest(backward.get("config")) == rest(layer.get("config")))


#: The activations an LSTM/GRU cell computes (:data:`gradhealth.analysis.cells.ACTIVATION_FUNCTIONS`,
#: the ones a Dense has here): its own (candidate and cell state) and its gates'. Not softmax.
CELL_ACTIVATIONS = tuple(a for a in ACTIVATIONS if a != "softmax")


def recurrent_gates(cls: str, cfg: dict[str, Any]) -> tuple[str, str, bool]:
    """(activation, gate activation in Keras' name, reset_after) of a recurrent config, refusing
    what the cells in :mod:`gradhealth.analysis.cells` do not compute. An LSTM/GRU whose own
    activation is not tanh has it after the gate's, ``"sigmoid/relu"``: what
    :func:`gradhealth.analysis.cells.mark` takes (so the torch half's cell is built with it);
    SimpleRNN is torch's cell, tanh or relu."""
    act = _activation(cfg.get("activation", "tanh"))
    if act not in (("tanh", "relu") if cls == "SimpleRNN" else CELL_ACTIVATIONS):
        raise ValueError(f"{cls} with activation {act} is not supported")
    try:
        gate = _activation(cfg.get("recurrent_activation", "sigmoid"))
    except ValueError:
        gate = ""
    if cls != "SimpleRNN" and gate not in CELL_ACTIVATIONS:
        raise ValueError(f"recurrent_activation {cfg.get('recurrent_activation')!r} is not supported "
                         f"({', '.join(CELL_ACTIVATIONS)})")
    if cls != "SimpleRNN" and act != "tanh":
        gate = f"{gate}/{act}"
    # go_backwards is simulated (keras_torch._Recurrent reads the sequence reversed); a stateful
    # layer carries its state from one batch to the next, which one simulated step has no notion of
    if cfg.get("stateful"):
        raise ValueError("stateful recurrent layers are not supported")
    if not cfg.get("use_bias", True):
        raise ValueError("recurrent layers without bias are not supported")
    return act, gate or "sigmoid", cls != "GRU" or bool(cfg.get("reset_after", True))


def spec_gate(gate: str, keras3: bool) -> str:
    """The spec's ``recurrent_activation`` for Keras' gate name in a file of Keras 3 (or not):
    Keras 3 redefined hard_sigmoid as relu6(x + 3) / 6; Keras 2's is 0.2x + 0.5 (each name of a
    ``gate/activation`` pair, :func:`recurrent_gates`)."""
    if keras3:
        return gate
    return "/".join("hard_sigmoid_keras2" if g == "hard_sigmoid" else g for g in gate.split("/"))


def _recurrent_shape(node: Node, x: Shape, states: Sequence[Shape] = ()) -> tuple[Shape, list[tuple[str, Shape]]]:
    cls, cfg, directions = recurrent_cell(node.cls, node.cfg)
    if len(x) != 2:
        raise ValueError(f"{cls} reads a sequence (timesteps, features), not a tensor of shape {list(x)}")
    for _, message in size_problems(cls, cfg)[:1]:  # a Bidirectional's layer: its own sizes
        raise ValueError(message)
    units = cast(int, cfg["units"])
    want = 2 if cls == "LSTM" else 1  # [h0, c0] for an LSTM, h0 otherwise
    if states and (len(states) != want or any(tuple(s) != (units,) for s in states)):
        raise ValueError(f"{cls}'s initial_state needs {want} tensor(s) of shape [{units}] "
                         f"({'h, c' if want == 2 else 'h'}), not {[list(s) for s in states]}")
    _, _, reset_after = recurrent_gates(cls, cfg)
    width = RECURRENT[cls] * units
    two_biases = cls == "GRU" and reset_after  # Keras' reset_after GRU: input and recurrent biases
    weights: list[tuple[str, Shape]] = [("kernel", (x[-1], width)), ("recurrent_kernel", (units, width)),
                                        ("bias", (2, width) if two_biases else (width,))]
    if directions == 2:
        weights = [(f"{d}_{role}", shape) for d in ("forward", "backward") for role, shape in weights]
    out = directions * units
    return ((x[0], out) if cfg.get("return_sequences") else (out,)), weights


def _shape(node: Node, shapes: list[Shape]) -> tuple[Shape, list[tuple[str, Shape]]]:
    """(output shape, weights) of one layer from its input shapes, by Keras' formulas."""
    cls, cfg = node.cls, node.cfg
    x = shapes[0] if shapes else ()
    if cfg.get(TIME_DISTRIBUTED):
        # the layer on each time step's frame: its shape rule on the frame, the time axis kept
        if len(shapes) != 1 or len(x) < 2:
            raise ValueError(f"TimeDistributed({cls}) needs one input with a time axis")
        frame, weights = _shape(replace(node, cfg=frame_config(cfg)), [x[1:]])
        return (x[0], *frame), weights
    if cls == DISTANCE:  # a Lambda's stand-in: two inputs of one shape, their distance on the last axis
        if len(shapes) != 2 or shapes[0] != shapes[1]:  # (a file may name the class itself)
            raise ValueError(f"{cls} needs two inputs of one shape, not {[list(s) for s in shapes]}")
        return (shapes[0][:-1] + (1,) if cfg.get("_keepdims", True) else shapes[0][:-1]), []
    if cls in _MERGES:
        constants = sum(isinstance(a, float) for a in node.args or [])
        if len(shapes) + constants < 2 or not shapes or (constants and cls == "Concatenate"):
            raise ValueError(f"{cls} needs at least two inputs")
        if constants:
            shapes = [*shapes, ()]  # a number broadcasts
        if cls == "Concatenate":
            axis = _axis(cfg.get("axis", -1), len(x))
            for s in shapes[1:]:
                if len(s) != len(x) or any(a != b for k, (a, b) in enumerate(zip(s, x, strict=True))
                                           if k != axis):
                    raise ValueError(f"Concatenate of shapes {list(x)} and {list(s)} on axis "
                                     f"{cfg.get('axis', -1)}: the other axes differ")
            return x[:axis] + (sum(s[axis] for s in shapes),) + x[axis + 1:], []
        if cls in _BINARY and len(node.args or shapes) != 2:
            raise ValueError(f"{cls} needs exactly two inputs")
        if cls == "CustomScaleLayer" and (isinstance(cfg.get("scale"), bool)
                                          or not isinstance(cfg.get("scale"), int | float)):
            raise ValueError("CustomScaleLayer needs a number `scale`")
        return _broadcast(shapes, cls), []
    if cls == "MultiHeadAttention":
        return _attention_shape(cfg, shapes)
    if cls == "Dot":
        return _dot_shape(cfg, shapes), []
    states = int(cfg.get("_states") or 0)
    if states and cls not in RECURRENT:
        raise ValueError(f"{cls} with initial_state is not supported")  # a Bidirectional's: per direction
    if states and len(shapes) == states + 1:
        return _recurrent_shape(node, x, shapes[1:])
    if len(shapes) != 1:
        raise ValueError(f"{cls} with {len(shapes)} inputs is not supported")
    if cfg.get("data_format") == "channels_first":  # what _channels_last does not run channels-last
        raise ValueError("data_format channels_first is supported on convolutions, pooling, padding, "
                         "cropping and upsampling outside a TimeDistributed only")
    bias = bool(cfg.get("use_bias", True))
    if cls in RECURRENT or cls == "Bidirectional":
        return _recurrent_shape(node, x)
    if cls == "Dense":
        if not x:
            raise ValueError("Dense of a scalar")
        units = int(cfg["units"])
        return x[:-1] + (units,), [("kernel", (x[-1], units))] + ([("bias", (units,))] if bias else [])
    if cls in _CONVS:
        n = 2 if cls.endswith("2D") else 1
        if len(x) != n + 1:
            raise ValueError(f"{cls} of a tensor of shape {list(x)} (it reads {n + 1}-d inputs)")
        k, s, d, padding = window(cfg, n)
        if padding not in ("valid", "same", "causal") or (padding == "causal" and n != 1):
            raise ValueError(f"padding {padding!r} is not supported")
        if any(v < 1 for v in (*k, *s, *d)):
            raise ValueError("kernel_size, strides and dilation_rate must be positive")
        spatial = tuple(conv_padding(x[i], k[i], s[i], d[i], padding)[0] for i in range(n))
        if any(v < 1 for v in spatial):
            raise ValueError(f"the kernel {list(k)} does not fit the input {list(x)}")
        c = x[-1]
        if cls.startswith("Depthwise"):
            dm = int(cfg.get("depth_multiplier", 1))
            return spatial + (c * dm,), [("depthwise_kernel", (*k, c, dm))] + (
                [("bias", (c * dm,))] if bias else [])
        filters = int(cfg["filters"])
        if cls.startswith("Separable"):
            dm = int(cfg.get("depth_multiplier", 1))
            return spatial + (filters,), [("depthwise_kernel", (*k, c, dm)),
                                          ("pointwise_kernel", (*(1,) * n, c * dm, filters))] + (
                [("bias", (filters,))] if bias else [])
        groups = int(cfg.get("groups", 1))
        if groups < 1 or c % groups or filters % groups:
            raise ValueError(f"groups {groups} does not divide {c} input channels and {filters} filters")
        return spatial + (filters,), [("kernel", (*k, c // groups, filters))] + (
            [("bias", (filters,))] if bias else [])
    if cls in _TRANSPOSED:
        n = 2 if "2D" in cls else 1
        if len(x) != n + 1:
            raise ValueError(f"{cls} of a tensor of shape {list(x)} (it reads {n + 1}-d inputs)")
        k, s, d, padding = window(cfg, n)
        if padding not in ("valid", "same") or any(v < 1 for v in (*k, *s)):
            raise ValueError(f"padding {padding!r}, kernel_size and strides must be valid/same and positive")
        if cfg.get("output_padding") is not None or any(v != 1 for v in d):
            raise ValueError("output_padding and dilation are not supported")
        filters = int(cfg["filters"])
        spatial = tuple(transposed_padding(x[i], k[i], s[i], padding)[0] for i in range(n))
        return spatial + (filters,), [("kernel", (*k, filters, x[-1]))] + (
            [("bias", (filters,))] if bias else [])
    if cls in _POOLS:
        n = 2 if cls.endswith("2D") else 1
        if len(x) != n + 1:
            raise ValueError(f"{cls} of a tensor of shape {list(x)}")
        k, s, _, padding = window(cfg, n, pool=True)
        if padding not in ("valid", "same") or any(v < 1 for v in (*k, *s)):
            raise ValueError(f"padding {padding!r} / pool_size / strides not supported")
        spatial = tuple(conv_padding(x[i], k[i], s[i], 1, padding)[0] for i in range(n))
        if any(v < 1 for v in spatial):
            raise ValueError(f"the pool {list(k)} does not fit the input {list(x)}")
        return spatial + (x[-1],), []
    if cls in _GLOBAL:
        n = 2 if cls.endswith("2D") else 1
        if len(x) != n + 1:
            raise ValueError(f"{cls} of a tensor of shape {list(x)}")
        return ((1,) * n + (x[-1],)) if cfg.get("keepdims") else (x[-1],), []
    if cls in ("ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D"):
        n = 2 if cls.endswith("2D") else 1
        if len(x) != n + 1:
            raise ValueError(f"{cls} of a tensor of shape {list(x)}")
        pairs = _padding_pairs(cfg.get("padding" if cls.startswith("Zero") else "cropping", 1), n)
        sign = 1 if cls.startswith("Zero") else -1
        spatial = tuple(x[i] + sign * (a + b) for i, (a, b) in enumerate(pairs))
        if any(v < 1 for v in spatial):
            raise ValueError(f"cropping {list(pairs)} leaves nothing of {list(x)}")
        return spatial + (x[-1],), []
    if cls in ("UpSampling1D", "UpSampling2D"):
        n = 2 if cls.endswith("2D") else 1
        if len(x) != n + 1:
            raise ValueError(f"{cls} of a tensor of shape {list(x)}")
        size = _ints(cfg.get("size", 2), n, "size")
        if str(cfg.get("interpolation", "nearest")) not in ("nearest", "bilinear"):
            raise ValueError(f"interpolation {cfg.get('interpolation')!r} is not supported")
        return tuple(x[i] * size[i] for i in range(n)) + (x[-1],), []
    if cls == "Flatten":
        return (math.prod(x),), []
    if cls == "Reshape":
        target = [int(v) for v in cfg.get("target_shape") or []]
        if target.count(-1) > 1 or any(v == 0 or v < -1 for v in target):
            raise ValueError(f"target_shape {target}")
        known = math.prod(v for v in target if v != -1)
        if -1 in target:
            if math.prod(x) % known:
                raise ValueError(f"cannot reshape {list(x)} to {target}")
            target[target.index(-1)] = math.prod(x) // known
        if math.prod(target) != math.prod(x):
            raise ValueError(f"cannot reshape {list(x)} ({math.prod(x)} values) to {target}")
        return tuple(target), []
    if cls == "RepeatVector":
        # a seq2seq's encoder state (or an LSTM autoencoder's code) fed to every step of the
        # decoder: [batch, features] -> [batch, n, features], no weights; its gradient is the
        # sum of the n steps' gradients
        if len(x) != 1:
            raise ValueError(f"RepeatVector of a tensor of shape {list(x)} (it repeats a vector)")
        return (int(cfg["n"]), x[0]), []
    if cls == "Permute":
        dims = [int(v) for v in cfg.get("dims") or []]
        if sorted(dims) != list(range(1, len(x) + 1)):
            raise ValueError(f"dims {dims} is not a permutation of 1..{len(x)}")
        return tuple(x[d - 1] for d in dims), []
    if cls in ("BatchNormalization", "LayerNormalization"):
        if cls == "LayerNormalization" and isinstance(cfg.get("axis"), list) and len(cfg["axis"]) > 1:
            axes = sorted(_axis(a, len(x)) for a in cfg["axis"])
            if axes != list(range(axes[0], len(x))):
                raise ValueError(f"LayerNormalization over axes {cfg['axis']} (only trailing axes)")
            width: Shape = tuple(x[a] for a in axes)
        else:
            width = (x[_axis(cfg.get("axis", -1), len(x))],)
            if cls == "LayerNormalization" and _axis(cfg.get("axis", -1), len(x)) != len(x) - 1:
                raise ValueError("LayerNormalization over other than the last axes is not supported")
        names = ([("gamma", width)] if cfg.get("scale", True) else []) + (
            [("beta", width)] if cfg.get("center", True) else [])
        if cls == "BatchNormalization":
            names += [("moving_mean", width), ("moving_variance", width)]
        return x, names
    if cls == "PReLU":
        shared = cfg.get("shared_axes") or []
        shared = [shared] if isinstance(shared, int) else list(shared)
        alpha = tuple(1 if (k + 1) in shared else v for k, v in enumerate(x))
        return x, [("alpha", alpha)]
    if cls == "LayerScale":
        return x, [("gamma", (x[-1],))]
    if cls == "Normalization":
        axis = cfg.get("axis", -1)
        axes = [axis] if isinstance(axis, int) else list(axis or [])
        keep = sorted({_axis(a, len(x)) for a in axes})
        shape = tuple(x[k] for k in keep)  # Keras keeps the statistics' axes only
        return x, [("mean", shape), ("variance", shape), ("count", ())]
    if cls == "Embedding":
        return x + (int(cfg["output_dim"]),), [("embeddings", (int(cfg["input_dim"]), int(cfg["output_dim"])))]
    if cls == "Softmax":
        _axis(cfg.get("axis", -1), len(x))
    return x, []  # elementwise: activations, Rescaling, identities


#: Every initializer class Keras 2 and 3 serialise, by :func:`.keras._initializer`'s name (lower
#: case, no underscores, aliases and Keras 3's ``Initializer`` suffix resolved), drawn by both
#: doors (the spec door's ``init``, :func:`.keras_torch.draw_initializer`).
INITIALIZERS = ("zeros", "ones", "constant", "randomnormal", "randomuniform", "truncatednormal",
                "variancescaling", "glorotuniform", "glorotnormal", "henormal", "heuniform",
                "lecunnormal", "lecununiform", "orthogonal", "identity")


def check_initializer(value: Any, key: str) -> None:
    """Refuse an initialiser :func:`.keras_torch.draw_initializer` cannot draw (a custom one, a
    typo, Keras 3's STFT), with the flag that makes it needed (:func:`.keras.reinitialise_only`)."""
    from gradhealth.analysis.importers.keras import _initializer, reinitialise_only

    if value is None:
        return
    name, _ = _initializer(value)
    if name not in INITIALIZERS:
        raw = value.get("class_name") if isinstance(value, dict) else value
        raise ValueError(reinitialise_only(f"{key} {raw or name!r}"))


def initializer_problems(node: Node) -> list[str]:
    """Why each initialiser ``node`` would be drawn from cannot be (every ``*_initializer`` of its
    config, and of the layer a Bidirectional wraps): asked only where the weights are drawn
    (``reinitialise``), since the file's stored weights need none."""
    cfgs = [node.cfg]
    for wrapped in ("layer", "backward_layer") if node.cls == "Bidirectional" else ():
        inner = node.cfg.get(wrapped)
        if isinstance(inner, dict) and isinstance(inner.get("config"), dict):
            cfgs.append(inner["config"])
    out = []
    for cfg in cfgs:
        for key in sorted(k for k in cfg if isinstance(k, str) and k.endswith("_initializer")):
            try:
                check_initializer(cfg.get(key), key)
            except ValueError as exc:
                out.append(str(exc))
    return out


#: The largest kernel, stride, dilation or upsampling factor read: a sanity bound on a number
#: taken from an uploaded file before any memory estimate sees it (a kernel's ``same`` padding,
#: kernel - 1 positions, and an upsampling factor multiply what a layer allocates). It is no
#: memory limit: the plan estimates the layers' memory and refuses past the settings' limits.
#: 4096 refused real long-signal front ends (peersweep20 dm62440336: a Conv1D of kernel 10000,
#: stride 5000 over 1,323,000 audio samples); 2**16 covers a second of 48 kHz audio in one window,
#: and bounds a padding to 65,535 positions a row, far under the 2**24 a size may be.
MAX_WINDOW = 2**16

#: Numbers each class reads: key -> (default, smallest, largest, strictly above the smallest).
_NUMBERS: dict[str, dict[str, tuple[float | None, float, float, bool]]] = {
    "BatchNormalization": {"epsilon": (1e-3, 0.0, 1e6, True), "momentum": (0.99, 0.0, 1.0, False)},
    "LayerNormalization": {"epsilon": (1e-3, 0.0, 1e6, True)},
    "ReLU": {"max_value": (None, 0.0, 1e30, False), "negative_slope": (0.0, -1e6, 1e6, False),
             "threshold": (0.0, -1e30, 1e30, False)},
    "LeakyReLU": {"negative_slope": (0.3, -1e6, 1e6, False), "alpha": (0.3, -1e6, 1e6, False)},
    "ELU": {"alpha": (1.0, -1e6, 1e6, False)},
    "ThresholdedReLU": {"theta": (1.0, -1e30, 1e30, False)},
    "LayerScale": {"init_values": (1e-6, -1e6, 1e6, False)},
    "ActivityRegularization": {"l1": (0.0, 0.0, 1e30, False), "l2": (0.0, 0.0, 1e30, False)},
}
#: Sizes each class reads (positive integers up to :data:`MAX_SIZE`), checked before any is used
#: (:func:`size_problems`): a size is a count, so 64.7, true, "64", Infinity are refused, not coerced.
_SIZES = {"Dense": ("units",), "Conv1D": ("filters", "groups"), "Conv2D": ("filters", "groups"),
          "Conv1DTranspose": ("filters",), "Conv2DTranspose": ("filters",),
          "SeparableConv1D": ("filters", "depth_multiplier"),
          "SeparableConv2D": ("filters", "depth_multiplier"),
          "DepthwiseConv1D": ("depth_multiplier",), "DepthwiseConv2D": ("depth_multiplier",),
          "Embedding": ("input_dim", "output_dim"), "SimpleRNN": ("units",), "LSTM": ("units",),
          "GRU": ("units",), "MultiHeadAttention": ("num_heads", "key_dim", "value_dim"), "RepeatVector": ("n",)}
#: Sizes a config may leave out (or give as null), with the value Keras then uses (None: derived
#: from another size, as MultiHeadAttention's value_dim is its key_dim).
_SIZE_DEFAULTS: dict[str, int | None] = {"groups": 1, "depth_multiplier": 1, "value_dim": None}
MAX_SIZE = 2**24
#: Window sizes (an integer, or one per spatial axis) and the classes that read them as such.
_WINDOWS = ("kernel_size", "strides", "dilation_rate", "pool_size", "size")
_WINDOWED = (*_CONVS, *_TRANSPOSED, *_POOLS, "UpSampling1D", "UpSampling2D")


def _count(value: Any, most: int) -> bool:
    """Whether ``value`` is an integer from 1 to ``most`` as JSON gives one (a bool is not one)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= most


def size_problems(cls: str, cfg: dict[str, Any]) -> list[tuple[str, str]]:
    """The size fields of one layer's config (``cls``, ``cfg``) that are not what the layer reads:
    ``(key, message)`` pairs, the key a JSON-pointer tail into ``cfg`` (``units``,
    ``kernel_size/1``). Both Keras doors use the sizes as Python ints, so a size must be checked
    here before any ``int()`` of it: ``int(inf)`` raises, ``int(64.7)`` and ``int(True)`` coerce."""
    out: list[tuple[str, str]] = []
    for key in _SIZES.get(cls, ()):
        value = cfg.get(key, _SIZE_DEFAULTS.get(key))
        if value is None and key in _SIZE_DEFAULTS:
            continue
        if not _count(value, MAX_SIZE):
            out.append((key, f"{key} {value!r}: expected a positive integer up to {MAX_SIZE}"))
    for key in _WINDOWS:
        value = cfg.get(key)
        if value is None:  # absent: Keras' default (a pool's strides: its pool_size)
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for k, v in enumerate(values):
            is_int = isinstance(v, int) and not isinstance(v, bool)
            # a class that reads this key as a window takes integers only; elsewhere an integer
            # out of range is still refused (the padding it implies would be an allocation of its own)
            if (is_int and not 1 <= v <= MAX_WINDOW) or (not is_int and cls in _WINDOWED):
                where = f"{key}/{k}" if isinstance(value, list | tuple) else key
                out.append((where, f"{key} {value!r}: expected integers from 1 to {MAX_WINDOW} (a fixed bound "
                                   "on a kernel, stride, dilation or upsampling factor read from a file, no "
                                   "setting raises it; see docs/models.md, Keras models)"))
                break
    shape = cfg.get("target_shape") if cls == "Reshape" else None
    for k, v in enumerate(shape if isinstance(shape, list | tuple) else []):
        if not (_count(v, MAX_SIZE) or v == -1 and isinstance(v, int) and not isinstance(v, bool)):  # -1: what fits
            out.append((f"target_shape/{k}", f"target_shape {shape!r}: expected positive integers "
                                             f"up to {MAX_SIZE}, or one -1"))
            break
    return out


def check_config_sizes(config: dict[str, Any]) -> None:
    """Refuse a Keras model config any of whose layers (nested models and wrapped layers too) gives a
    size that is not a positive integer within the limits, with a JSON pointer to each one
    (``/config/layers/1/config/units``). Run before either door reads a size: the spec door
    converts them with ``int()``, which raises on Infinity and coerces 64.7, true or "64"."""
    from gradhealth.analysis.importers.keras import SUPPORTED, _LegacyConfig
    from gradhealth.errors import InputFormatError, Problem

    known = {*GRAPH_LAYERS, *SUPPORTED, *MODELS, "TimeDistributed"}
    problems: list[Problem] = []

    def layer(value: Any, pointer: str, depth: int, known: Container[str] = known) -> None:
        # a layer with no `config` key is read as an empty config, as both doors read it, so its
        # required sizes are refused here by pointer too (errsweep8 #2: {"class_name": "Dense"}
        # reached the spec door's int(cfg["units"]): a KeyError, HTTP 500)
        absent = isinstance(value, dict) and "config" not in value
        if not isinstance(value, dict) or not isinstance(value.get("config", {}), dict) or depth > 16:
            return  # not a layer object: each door says so in its own terms
        cls, cfg = str(value.get("class_name")), value.get("config", {})
        if cls not in known:
            return  # an unsupported class is refused by name, whatever its sizes
        name = cfg.get("name", value.get("name", cls))
        for key, message in size_problems(cls, cfg):
            said = f"{message} (the layer has no `config` object)" if absent else message
            problems.append(Problem(f"{pointer}/config/{key}", f"{name} ({cls}): {said}"))
        # a wrapper's layer, where the doors read it (another is refused by name)
        inner = RECURRENT if cls == "Bidirectional" else FRAME_WISE if cls == "TimeDistributed" else ()
        layer(cfg.get("layer"), f"{pointer}/config/layer", depth + 1, inner)
        if cls in MODELS:
            model(cfg, f"{pointer}/config", depth + 1)

    def model(cfg: Any, pointer: str, depth: int) -> None:
        layers = cfg.get("layers") if isinstance(cfg, dict) else None
        # a Keras <= 2.2.2 Sequential's layers are its config itself (keras.modern_config)
        at = pointer if isinstance(cfg, _LegacyConfig) else f"{pointer}/layers"
        for i, lay in enumerate(layers if isinstance(layers, list) else []):
            layer(lay, f"{at}/{i}", depth)

    model(config.get("config") if isinstance(config, dict) else None, "/config", 0)
    if problems:
        shown = "; ".join(str(p) for p in problems[:20]) + (f"; and {len(problems) - 20} more"
                                                             if len(problems) > 20 else "")
        raise InputFormatError(f"invalid layer sizes in the Keras config: {shown}", problems)


def _check_numbers(node: Node) -> None:
    """Every number a layer's config gives is of the kind and range the layer reads."""
    cfg = node.cfg
    for key, (default, lo, hi, strict) in _NUMBERS.get(node.cls, {}).items():
        value = cfg.get(key, default)
        if value is None and default is None:
            continue
        if (not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value)
                or value < lo or value > hi or (strict and value == lo)):
            raise ValueError(f"{key} {value!r}: expected a number {'above' if strict else 'from'} "
                             f"{lo:g}" + (f" to {hi:g}" if hi < 1e30 else ""))
    for _, message in size_problems(node.cls, cfg)[:1]:
        raise ValueError(message)
    for key in ("scale", "offset", "mean", "variance"):
        if node.cls in ("Rescaling", "Normalization") and cfg.get(key) is not None:
            flat = cfg[key] if isinstance(cfg[key], list) else [cfg[key]]
            if not flat or not all(isinstance(v, int | float) and not isinstance(v, bool)
                                   and math.isfinite(v) for v in flat):
                raise ValueError(f"{key} {cfg[key]!r}: expected a number or a list of numbers")
            width = node.in_shapes[0][-1] if node.in_shapes and node.in_shapes[0] else 1
            if len(flat) not in (1, width):
                raise ValueError(f"{key} has {len(flat)} values for {width} channels")


def _check_layer(node: Node) -> None:
    """Refuse what a supported class is configured to do that the simulation does not."""
    cfg = node.cfg
    _check_numbers(node)
    if "activation" in cfg and node.cls not in ("Activation",):
        _activation(cfg.get("activation"))
    if node.cls == "Activation":
        _activation(cfg.get("activation"))
    # ActivityRegularization is the identity here whatever its l1/l2: its penalty's gradient is left
    # out, and check_keras says so in the document (keras.activity_penalty_notes)
    if node.cls == "Softmax" and node.inputs and len(node.inputs) > 1:
        raise ValueError("Softmax with a mask input is not supported")


#: Layers that take Keras' ``data_format``: those that keep a channels axis run channels-last
#: between two transposes; the global pools reduce every axis but the channels, so a transpose of
#: their input is all they need. The keras.io time-series transformer ends in
#: ``GlobalAveragePooling1D(data_format="channels_first")``, a mean over the features of each step
#: (kerassweep13 h02, refused until then).
_FORMATTED = (*_CONVS, *_TRANSPOSED, *_POOLS, "ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D",
              "UpSampling1D", "UpSampling2D")


def _channels_last(nodes: list[Node], outputs: list[str]) -> tuple[list[Node], list[str]]:
    """``nodes`` with each ``data_format="channels_first"`` layer run channels-last: a ``Permute``
    of its input (channels to the last axis) before it and, where its output keeps a channels axis,
    a ``Permute`` back after it, which its readers (and ``outputs``) then read. The layer keeps its
    name and its weights (Keras' kernels have one layout in both formats); the transposes are named
    ``<layer>#channels_last`` and ``<layer>#channels_first``. A layer inside a TimeDistributed is
    left as it is (:func:`_shape` refuses it)."""
    out: list[Node] = []
    renamed: dict[str, str] = {}
    for node in nodes:
        node.inputs = [renamed.get(i, i) for i in node.inputs]
        if node.args:
            node.args = [renamed.get(a, a) if isinstance(a, str) else a for a in node.args]
        if (node.cfg.get("data_format") != "channels_first" or node.cfg.get(TIME_DISTRIBUTED)
                or node.cls not in (*_FORMATTED, *_GLOBAL) or len(node.inputs) != 1):
            out.append(node)
            continue
        rank = (2 if node.cls.endswith("2D") else 1) + 1  # the input's axes without the batch
        before = Node(f"{node.name}#channels_last", "Permute",
                      {"name": f"{node.name}#channels_last", "dims": [*range(2, rank + 1), 1]}, node.inputs)
        node.inputs = [before.name]
        node.cfg = {**node.cfg, "data_format": "channels_last"}
        out += [before, node]
        if node.cls in _GLOBAL and not node.cfg.get("keepdims"):
            continue  # (channels,): the same in both formats
        after = Node(f"{node.name}#channels_first", "Permute",
                     {"name": f"{node.name}#channels_first", "dims": [rank, *range(1, rank)]}, [node.name])
        out.append(after)
        renamed[node.name] = after.name
    return out, [renamed.get(name, name) for name in outputs]


def _cfg(layer: dict[str, Any]) -> dict[str, Any]:
    cfg = layer.get("config")
    return cfg if isinstance(cfg, dict) else {}


#: Classes of a model nested in a model as one of its layers (ConvNeXt's stem is a Sequential).
MODELS = ("Sequential", "Functional", "Model")


def output_ref(node: str, index: int) -> str:
    """The name a reader gives output ``index`` of a nested model's call ``node``: the node's own
    for its first output, ``node:index`` for another (TensorFlow's own way of naming a tensor of an
    op, so no Keras layer name has it). An encoder ``Model(x, [z_mean, z_log_var, z])`` read as
    ``decoder(encoder(x)[2])`` is ``["encoder", 1, 2]`` in the file: ``encoder:2`` here."""
    return node if index == 0 else f"{node}:{index}"


def _nested_problem(name: str, cls: str, why: str) -> str:
    """A nested model's refusal, said as one: which model, that it is Keras' own class (no
    custom code), what is not read, and the workaround (each sub-model checked on its own)."""
    return (f"{name}: a Keras {cls} nested in the model (Keras' own class, not custom code) {why}; check "
            f"the nested models as separate files instead (save each sub-model on its own, e.g. "
            f"{name}.save(...), and check each)")


def _inline(nodes: list[Node], problems: list[str], depth: int = 0) -> tuple[list[Node], dict[str, str]]:
    """``nodes`` with every nested model replaced by its own layers, reading what it read, and
    the names of the nested models' outputs -> the layers that make them (for the layers that
    read them): a call's first output by the call's name, output k by :func:`output_ref`.

    A nested model's inputs are its call's tensors in order: its k-th input layer is dropped and
    the layers that read it read the call's k-th tensor instead (a GAN's combined model calling a
    generator ``Model([noise, label], image)`` with two tensors: kerassweep29 malgan_combined,
    refused until then as "a nested model is supported with one input")."""
    out: list[Node] = []
    alias: dict[str, str] = {}
    returns: dict[str, int] = {}  # a nested model's call -> how many outputs it has
    for node in nodes:
        if node.cls not in MODELS:
            out.append(node)
            continue
        if not isinstance(node.cfg.get("layers"), list):
            problems.append(_nested_problem(node.name, node.cls, "has no list of layers in its config"))
            continue
        if depth > 8:
            problems.append(_nested_problem(node.name, node.cls, "is nested more than 8 models deep, "
                                            "deeper than this check reads"))
            continue
        before = len(problems)
        inner, starts, ends = _order({"class_name": node.cls, "config": node.cfg}, problems, depth + 1)
        if not inner or not ends:
            if len(problems) == before:
                problems.append(_nested_problem(node.name, node.cls, "has no layers to read"))
            continue
        if len(node.inputs) != len(starts):
            problems.append(_nested_problem(
                node.name, node.cls, f"takes {len(starts)} input(s) ({', '.join(starts)}) but is called "
                f"here with {len(node.inputs)} tensor(s)"))
            continue
        feed = dict(zip(starts, node.inputs, strict=True))  # its inputs -> the tensors it is called with
        if node.cfg.get("_shares"):
            # a nested model called again (a Siamese network's encoder): its layers once more,
            # each named for this call, running the first call's modules (the same weights)
            renamed = {n.name: f"{n.name}#{node.name}" for n in inner if n.name not in feed}
            for n in inner:
                n.cfg = {**n.cfg, "_shares": n.cfg.get("_shares") or n.name}
                n.name = renamed.get(n.name, n.name)
                n.inputs = [renamed.get(i, i) for i in n.inputs]
            ends = [renamed.get(end, end) for end in ends]
        for n in inner:
            if n.name not in feed:
                n.inputs = [feed.get(i, i) for i in n.inputs]
                out.append(n)
        ends = [feed.get(end, end) for end in ends]  # an output that is one of its inputs: that tensor
        for k, end in enumerate(ends):
            alias[output_ref(node.name, k)] = end
        returns[node.name] = len(ends)
    for n in out:
        for i in n.inputs:
            base, colon, index = i.rpartition(":")
            if colon and index.isdigit() and i not in alias and base in returns:
                problems.append(f"{n.name}: reads output {index} of the nested model {base}, which has "
                                f"{returns[base]} output(s) (counted from 0)")
        n.inputs = [alias.get(i, i) for i in n.inputs]
    return out, alias


def _rebase_nested_calls(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` (a Functional config) with every ``[name, node, tensor]`` reference to a model
    nested in it counted from the nested model's first call in this model, as every other
    reference is. A Functional model starts with a node of its own (its Input to its output, made
    when it was built), which Keras 2 counts when it writes the nodes of the outer model: an
    encoder/decoder's ``decoder(encoder(x))`` is written ``["encoder", 1, 0]`` (kerassweep15 h04,
    refused as "encoder#1: a layer the config does not define"), and Keras 3 does the same in
    ``input_layers``/``output_layers`` (``["decoder", 1, 0]``); Keras 3's ``keras_history``
    counts only this model's calls and is left as it is. Whether a nested model's list references
    start at 1 is read from the references themselves: one that names node 0 means they do not,
    one that names the node past its last call means they do (a Sequential nested without an input
    shape has no node of its own in Keras 2, and Keras 3 never counts one for a Sequential); the
    class decides the rest (a Functional/Model starts at 1)."""
    layers = [lay for lay in cfg.get("layers") or [] if isinstance(lay, dict)]
    nested = {str(lay.get("name") or _cfg(lay).get("name")): lay for lay in layers
              if lay.get("class_name") in MODELS}
    if not nested:
        return cfg
    seen: dict[str, list[int]] = {}

    def walk(value: Any, rewrite: Mapping[str, int] | None) -> Any:
        if isinstance(value, dict):
            if value.get("class_name") == "__keras_tensor__":
                return value  # Keras 3's keras_history: this model's calls only
            return {k: walk(v, rewrite) for k, v in value.items()}
        if not isinstance(value, list):
            return value
        if len(value) >= 3 and isinstance(value[0], str) and isinstance(value[1], int):
            if value[0] in nested:
                if rewrite is None:
                    seen.setdefault(value[0], []).append(value[1])
                elif rewrite.get(value[0]) and value[1] > 0:
                    value = [value[0], value[1] - rewrite[value[0]], *value[2:]]
            return [*value[:3], *(walk(v, rewrite) for v in value[3:])]
        return [walk(v, rewrite) for v in value]

    keys = ("layers", "input_layers", "output_layers")
    for key in keys:
        walk([lay.get("inbound_nodes") for lay in layers] if key == "layers" else cfg.get(key), None)
    shift: dict[str, int] = {}
    for name, indices in seen.items():
        lay = nested[name]
        calls = lay.get("inbound_nodes")
        n = len(calls) if isinstance(calls, list) else 0
        own = _cfg(lay).get("layers")
        first = own[0] if isinstance(own, list) and own and isinstance(own[0], dict) else {}
        built = lay.get("class_name") != "Sequential" or first.get("class_name") == "InputLayer" or any(
            k in _cfg(first) for k in ("batch_input_shape", "input_shape", "batch_shape"))
        shift[name] = 0 if 0 in indices else int(max(indices) >= n or built)
    if not any(shift.values()):
        return cfg
    out = {**cfg, "layers": [{**lay, "inbound_nodes": walk(lay.get("inbound_nodes"), shift)}
                             if "inbound_nodes" in lay else lay for lay in layers]}
    for key in ("input_layers", "output_layers"):
        if key in cfg:
            out[key] = walk(cfg[key], shift)
    return out


def _nested_outputs(layer: dict[str, Any], call: int, refs: list[tuple[str, int]],
                    nested: Container[str]) -> list[str]:
    """The node names of the tensors ``refs`` (a layer's ``call``, as :func:`_calls` and
    :func:`_recurrent_refs` give them), each reading output k > 0 of a model in ``nested`` named
    :func:`output_ref` (Keras 2's ``[name, node, k]``, Keras 3's ``keras_history``)."""
    nodes = layer.get("inbound_nodes")
    node = nodes[call] if isinstance(nodes, list) and call < len(nodes) else None
    pending: dict[tuple[str, int], list[int]] = {}
    for src, c, t in _indexed(node, []):
        pending.setdefault((src, c), []).append(t)
    out = []
    for src, c in refs:
        ts = pending.get((src, c))
        t = ts.pop(0) if ts else 0
        out.append(output_ref(call_name(src, c), t) if src in nested else call_name(src, c))
    return out


def _order(config: dict[str, Any], problems: list[str], depth: int = 0) -> tuple[list[Node], list[str], list[str]]:
    """The nodes of a Functional or Sequential config, inputs first, the input names (in the
    order the model takes them) and the output names (in the order it returns them)."""
    cfg = config["config"]
    raw = [lay for lay in cfg.get("layers") or [] if isinstance(lay, dict)]
    if config.get("class_name") == "Sequential":
        nodes, previous = [], None
        for lay in raw:
            name = str(_cfg(lay).get("name") or lay.get("class_name"))
            nodes.append(Node(name, *_unwrap(str(lay.get("class_name")), _cfg(lay)), [previous] if previous else []))
            previous = name
        if not nodes or nodes[0].cls != "InputLayer":
            start = f"{cfg.get('name') or 'sequential'}/input"
            nodes.insert(0, Node(start, "InputLayer", {}, []))
            if len(nodes) > 1:
                nodes[1].inputs = [start]
        nodes, alias = _inline(nodes, problems, depth)
        return nodes, [nodes[0].name] if nodes else [], [alias.get(nodes[-1].name, nodes[-1].name)] if nodes else []
    cfg = _rebase_nested_calls(cfg)
    raw = [lay for lay in cfg.get("layers") or [] if isinstance(lay, dict)]
    listed: list[Node] = []
    by_layer = {str(lay.get("name") or _cfg(lay).get("name")): lay for lay in raw}
    nested = {name for name, lay in by_layer.items() if lay.get("class_name") in MODELS}
    for lay in raw:
        name = str(lay.get("name") or _cfg(lay).get("name"))
        cls, layer_cfg = _unwrap(str(lay.get("class_name")), _cfg(lay))
        if not isinstance(lay.get("config"), dict):
            problems.append(f"{name}: its config is not an object")
        calls = _calls(lay)
        if len(calls) > 1 and cls == "MultiHeadAttention":
            problems.append(f"{name}: a {cls} called more than once (shared weights) is not supported")
            continue
        if cls == "MultiHeadAttention":
            srcs, causal = attention_inputs(lay, problems)
            listed.append(Node(name, cls, {**layer_cfg, "_causal": causal}, srcs))
            continue
        for k, refs in enumerate(calls or [[]]):
            # a layer called again (shared weights) is a node per call, "name#k", whose module is
            # the first call's; Keras names a call's output by [layer, call, tensor]
            node_cfg = {**layer_cfg, "_shares": name} if k else layer_cfg
            if cls in RECURRENT or cls == "Bidirectional":
                refs, states = _recurrent_refs(lay, k, refs, by_layer, problems)
                node_cfg = {**node_cfg, "_states": states} if states else node_cfg
            reads = [call_name(src, i) for src, i in refs]
            if nested:  # which output of a nested model each tensor is (``encoder(x)[2]``)
                reads = _nested_outputs(lay, k, refs, nested)
            listed.append(Node(call_name(name, k), cls, node_cfg, reads, args=_args(lay)))
    before = len(problems)
    flat, alias = _inline(listed, problems, depth)
    if len(problems) > before:
        return [], [], []  # a nested model not read: its own reason, not "a layer the config does not define"
    by_name = {n.name: n for n in flat}
    ins, outs = endpoints(cfg.get("input_layers")), endpoints(cfg.get("output_layers"))
    indexed = _indexed(cfg.get("output_layers"), [])
    if nested and len(indexed) == len(outs):  # the model returns a nested model's output k (k > 0)
        outs = [output_ref(call_name(src, c), t) if src in nested else o
                for o, (src, c, t) in zip(outs, indexed, strict=True)]
    outs = [alias.get(o, o) for o in outs]
    if not ins or not outs or len(set(ins)) != len(ins) or len(set(outs)) != len(outs):
        problems.append(f"{config.get('class_name', 'model')}: its inputs ({len(ins)}) and outputs "
                        f"({len(outs)}) must be distinct layers, one or more of each")
        return [], [], []
    order: list[Node] = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[tuple[str, bool]] = [(name, False) for name in reversed(outs)]
    while stack:
        name, done = stack.pop()
        if done:
            state[name] = 2
            order.append(by_name[name])
            continue
        if state.get(name) == 2:
            continue
        if name not in by_name:
            base, colon, index = name.rpartition(":")
            problems.append(f"{name}: output {index} of the nested model {base}, which has fewer outputs"
                            if colon and index.isdigit() and base.partition("#")[0] in nested
                            else f"{name}: a layer the config does not define")
            return [], [], []
        if state.get(name) == 1:
            problems.append(f"{name}: the graph has a cycle")
            return [], [], []
        state[name] = 1
        stack.append((name, True))
        stack.extend((src, False) for src in reversed(by_name[name].inputs) if state.get(src) != 2)
    for name in ins:
        if name not in state:
            problems.append(f"{', '.join(outs)}: no output depends on the input {name}")
        elif by_name[name].cls != "InputLayer":
            problems.append(f"{name}: a model input that is not an InputLayer")
    return order, ins, outs


#: Layers that turn raw inputs (pixels in 0..255) into normalised ones.
PREPROCESSING = ("Rescaling", "Normalization")


#: keras.backend.epsilon(): Keras' Normalization divides by max(sqrt(variance), this).
NORMALIZATION_EPSILON = 1e-7


def degenerate_statistics(node: Node, stored: Mapping[str, Sequence[Any]] | None = None
                          ) -> tuple[str, float] | None:
    """Why a Normalization's statistics are not those of any data (a variance of at most
    epsilon^2, so Keras multiplies by up to 1e7; a mean or variance that is not finite), with the
    largest factor it scales its input by (nan where not finite); None where they are fine.
    The statistics are the file's stored variables when ``stored`` has them (as
    :func:`.keras_torch.load_stored` reads them), else the config's ``mean`` / ``variance``."""
    import numpy as np

    if node.cls != "Normalization":
        return None
    arrays = list((stored or {}).get(node.name) or [])
    mean, var = (arrays[0], arrays[1]) if len(arrays) >= 2 else (node.cfg.get("mean"), node.cfg.get("variance"))
    if var is None:
        return None  # not adapted: Keras' own 0 and 1 until it is
    try:
        m = np.asarray(0.0 if mean is None else mean, dtype=np.float64)
        v = np.asarray(var, dtype=np.float64)
    except (TypeError, ValueError):
        return None  # not numbers: the layer's own check (or the weights' loading) says so
    if v.size == 0:
        return None
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(v))):
        return "a stored mean or variance that is not finite", math.nan
    low = float(v.min())
    if low <= NORMALIZATION_EPSILON ** 2:
        scale = 1.0 / max(math.sqrt(max(low, 0.0)), NORMALIZATION_EPSILON)
        return f"a stored variance of {low:g}, which scales its input by {scale:.3g}", scale
    return None


def _skip_preprocessing(nodes: list[Node], input_name: str,
                        stored: Mapping[str, Sequence[Any]] | None = None,
                        input_range: tuple[float, float] | None = None,
                        ) -> tuple[list[str], list[tuple[str, str, float]], list[tuple[str, str, float, float]]]:
    """Mark the chain of preprocessing layers that reads the model's input as skipped, and name it;
    with the layer kept because its statistics are degenerate: (name, why, the scale it applies).

    The simulation's inputs are standard normal: they stand for the data as the first layer that
    learns sees it, normalised. A model that normalises its raw input itself (keras.applications'
    ``Rescaling(1/255)`` and ``Normalization``) would scale those inputs a second time, and every
    figure after it would describe inputs 255 times too small, not the network. A Normalization
    whose statistics describe no data (:func:`degenerate_statistics`: a variance of 0 multiplies
    by 1e7) normalises nothing: it is kept, with its statistics, and the chain stops there.

    With ``input_range`` the inputs are the raw data (uniform in it), not normalised ones: the
    chain is kept, each layer applied as Keras computes it, and named as applied. A Normalization
    with no statistics to apply (:func:`_known_statistics`) is given those Keras' ``adapt()``
    would compute on the range's inputs as they reach it, and named with them (the third list)."""
    import numpy as np

    skipped: list[str] = []
    adapted: list[tuple[str, str, float, float]] = []
    current = input_name
    # the mean and variance of each element of the range's inputs, as they reach the next layer
    mean: Any = 0.0 if input_range is None else (input_range[0] + input_range[1]) / 2
    var: Any = 0.0 if input_range is None else (input_range[1] - input_range[0]) ** 2 / 12
    while True:
        readers = [n for n in nodes if current in n.inputs]
        if len(readers) != 1 or readers[0].cls not in PREPROCESSING or readers[0].inputs != [current]:
            return skipped, [], adapted
        node = readers[0]
        why = degenerate_statistics(node, stored)
        if why is not None:
            return skipped, [(node.name, *why)], adapted
        if input_range is None:
            node.weights = []
            node.cfg = {**node.cfg, "_skipped": True}
        elif node.cls == "Rescaling":
            scale = np.asarray(node.cfg.get("scale", 1.0), dtype=np.float64)
            mean, var = mean * scale + np.asarray(node.cfg.get("offset", 0.0), dtype=np.float64), var * scale ** 2
        else:
            shape = _statistics_shape(node)
            known = _known_statistics(node, stored)
            if known is None:  # what adapt() computes on the inputs reaching it, over its axes
                x = node.in_shapes[0]
                over = tuple(k for k, v in enumerate(shape) if v == 1 and x[k] != 1)
                full_mean, full_var = np.broadcast_to(mean, x), np.broadcast_to(var, x)
                mu = full_mean.mean(axis=over, keepdims=True)
                sigma2 = np.maximum((full_var + full_mean ** 2).mean(axis=over, keepdims=True) - mu ** 2, 0.0)
                size = dict(node.weights)["mean"]
                node.cfg = {**node.cfg, "mean": mu.reshape(size).tolist(), "variance": sigma2.reshape(size).tolist(),
                            "_adapted_to_range": True}
                adapted.append((node.name, _unknown_why(node, stored), float(mu.mean()), float(sigma2.mean())))
            else:
                mu, sigma2 = (np.asarray(a, dtype=np.float64).reshape(shape) for a in known)
            std = np.maximum(np.sqrt(np.maximum(sigma2, 0.0)), NORMALIZATION_EPSILON)
            mean, var = (mean - mu) / std, var / std ** 2
        skipped.append(node.name)
        current = node.name


def _statistics_shape(node: Node) -> tuple[int, ...]:
    """A Normalization's statistics (its axes only) as a shape that broadcasts against its input."""
    x = node.in_shapes[0]
    axis = node.cfg.get("axis", -1)
    keep = {_axis(a, len(x)) for a in ([axis] if isinstance(axis, int) else list(axis or []))}
    return tuple(v if k in keep else 1 for k, v in enumerate(x))


def _known_statistics(node: Node, stored: Mapping[str, Sequence[Any]] | None) -> tuple[Any, Any] | None:
    """A Normalization's mean and variance, as its statistics' shape, from the file's variables
    (as :func:`.keras_torch.load_stored` reads them) or the config's; None where it has none to
    apply: no statistics anywhere, Keras 2's ``count`` of 0, or Keras 3's initial mean 0 and
    variance 1 exactly (what ``build()`` makes before ``adapt()``: no data has them)."""
    import numpy as np

    size = dict(node.weights)["mean"]
    arrays = list((stored or {}).get(node.name) or [])
    if len(arrays) >= 2:
        mean, var = (np.asarray(a, dtype=np.float64) for a in arrays[:2])
        if len(arrays) >= 3 and np.asarray(arrays[2]).size == 1 and float(np.asarray(arrays[2])) == 0:
            return None
        if mean.size and var.size and np.all(mean == 0) and np.all(var == 1):
            return None
        return mean.reshape(size), var.reshape(size)
    if node.cfg.get("variance") is None or node.cfg.get("mean") is None:
        return None
    return (np.broadcast_to(np.asarray(node.cfg["mean"], dtype=np.float64), size),
            np.broadcast_to(np.asarray(node.cfg["variance"], dtype=np.float64), size))


def _unknown_why(node: Node, stored: Mapping[str, Sequence[Any]] | None) -> str:
    """Why :func:`_known_statistics` found none to apply, in words."""
    arrays = list((stored or {}).get(node.name) or [])
    if len(arrays) >= 3:
        return "a count of 0: never adapted"
    if len(arrays) >= 2:
        return "Keras' initial mean 0 and variance 1: never adapted"
    return "no mean or variance in the config" + (" or the file" if stored is not None else "")


def unsupported_message(unsupported: list[tuple[str, str]], lambdas: Sequence[tuple[str, str]] = (),
                        supported: Sequence[str] = GRAPH_LAYERS, nested: bool = True,
                        tf_functions: Sequence[str] = ()) -> str:
    """The one refusal of ``unsupported`` (class, name) layers: each class with its layers and the
    reason it is refused (a refused Lambda's own reason first: ``lambdas``, (name, why); a
    TFOpLambda's with each TensorFlow op it calls: ``tf_functions``), then the classes this door
    reads, once."""
    from gradhealth.analysis.importers.keras import REFUSED  # (keras.py imports this module)
    from gradhealth.analysis.importers.keras_tfops import OP_CLASSES, unmapped_functions

    why = dict(REFUSED)
    for cls in MODELS:
        # Keras' own model classes, as a layer of the model: the graph check inlines their layers; the
        # spec translation reads none (kerassweep29: they were called "a custom layer's computation is code")
        why[cls] = ("a Keras model nested in the model (Keras' own class, not custom code), which the spec "
                    "translation does not read and the graph check reads as its layers")
    for cls in OP_CLASSES:  # its config is data (an op's name), not code: say which op is not read
        why[cls] = unmapped_functions(list(tf_functions) or ["?"])
    # the ops' explanation names every op of both classes and the ops read: said after the first op
    # class refused, referred to after another (a VAE's sampling has both TFOpLambda and SlicingOpLambda)
    refused_ops = [cls for cls in dict.fromkeys(c for c, _ in unsupported) if cls in OP_CLASSES]
    for cls in refused_ops[1:]:
        why[cls] = "a TensorFlow op this door maps to no Keras layer, as above"
    if lambdas:  # the reason each was refused, then why a Lambda is read by its shapes only
        own = "; ".join((f"{n}: {w}" if len(lambdas) > 1 else w) for n, w in lambdas[:3])
        why["Lambda"] = own + (f"; and {len(lambdas) - 3} more" if len(lambdas) > 3 else "") + "; " + REFUSED["Lambda"]
    # the point first; then the closest classes read, not all of them (docs/models.md's Keras section
    # lists them): a list of 70 names after every refusal buried the one line that mattered
    import difflib

    # matched on the names' stems, without the generic "Layer" suffix and cuDNN's prefix: on whole
    # names a custom ClusteringLayer was "closest" to CustomScaleLayer by that suffix alone (kerassweep25)
    def stem(name: str) -> str:
        return name.removeprefix("CuDNN").removesuffix("Layer") or name

    classes = [c for c in supported if not c.startswith("_")]
    by_stem: dict[str, list[str]] = {}
    for c in classes:
        by_stem.setdefault(stem(c), []).append(c)
    matches = {cls: [m for s in difflib.get_close_matches(stem(cls), list(by_stem), n=3, cutoff=0.6) for m in by_stem[s]]
               for cls, _ in unsupported}
    close = list(dict.fromkeys(m for found in matches.values() for m in found))
    for cls, found in matches.items():
        if not found and cls not in why:
            # no class of Keras' this door knows by that name, nor one like it: most likely the
            # model's own, whose computation the file does not hold
            why[cls] = ("no Keras layer this door knows; a custom layer's computation is code, which the file "
                        "does not hold (only its config): check the model as a live module (gradhealth.check_module) "
                        "or write it as a spec")
    return ("unsupported Keras layers: " + name_layers(unsupported, why=why) + "; supported: "
            + (f"the closest read are {', '.join(close[:5])}; " if close else "")
            + f"{len(classes)} layer classes" + (" and models nested in the model" if nested else "")
            + ", listed under Keras models in docs/models.md")


def plan_keras_graph(config: dict[str, Any], *, batch_size: int = 64, limits: Any = None,
                     keep_preprocessing: bool = False,
                     stored: Mapping[str, Sequence[Any]] | None = None,
                     input_range: tuple[float, float] | None = None, draws: bool | None = None) -> KerasGraph:
    """Read ``config`` (a Keras model config) as a graph, infer every shape and weight, and check
    it against ``limits`` (parameters, activation memory) before anything is allocated.

    Raises :class:`ModelError` naming every layer that cannot be checked, in one message,
    :class:`InputFormatError` for sizes that are not positive integers (:func:`check_config_sizes`),
    and :class:`LimitExceeded` over the limits. The input's own preprocessing is skipped unless
    ``keep_preprocessing`` (:func:`_skip_preprocessing` says why), or where its statistics
    (``stored``: the file's weights, where they will be used) are degenerate. With ``input_range``
    (the raw inputs' range, ``--input-range``) it is kept and applied to them instead.

    ``draws``: whether the weights will be drawn from the config's initialisers (None: where
    ``stored`` is None); only then is an initialiser :func:`.keras_torch.draw_initializer` cannot
    draw refused (:func:`initializer_problems`)."""
    from gradhealth.analysis.importers.keras import _input_shape, keras3_names
    from gradhealth.settings import Limits

    limits = limits or Limits()
    check_config_sizes(config)  # every size a positive integer before any is used
    problems: list[str] = []
    nodes, input_names, output_names = _order(config, problems)
    nodes, output_names = _channels_last(nodes, output_names)
    if not keras3_names(config):
        for n in nodes:  # hard_sigmoid is Keras 2's 0.2x + 0.5 (keras_torch._act_module)
            n.cfg = {**n.cfg, "_keras2": True}
    # a Lambda is decided from its shapes, once they are known (below)
    unsupported = [(n.cls, n.name) for n in nodes if n.cls not in GRAPH_LAYERS and n.cls != "Lambda"]
    if unsupported:
        # named in the order the file lists them (the graph's order runs them: a refusal naming
        # add_3, add_2, add first read as if the first were missing)
        listed = {str(lay.get("name") or _cfg(lay).get("name")): k
                  for k, lay in enumerate(config["config"].get("layers") or []) if isinstance(lay, dict)}
        unsupported.sort(key=lambda pair: listed.get(pair[1].partition("#")[0], len(listed)))
        raise ModelError(unsupported_message(unsupported, tf_functions=[
            str(n.cfg.get("_tf_function") or n.cfg.get("function")) for n in nodes
            if n.cls in ("TFOpLambda", "SlicingOpLambda")]))
    if problems:
        raise ModelError("cannot check the Keras model: " + "; ".join(problems))
    by_name = {n.name: n for n in nodes}
    for n in nodes:
        # Masking hides the timesteps whose features all equal mask_value: on the model's continuous
        # synthetic input none does (the identity); deeper, a ReLU's zeros can (as the spec door says)
        if n.cls == "Masking" and not all(by_name[i].cls == "InputLayer" for i in n.inputs if i in by_name):
            raise ModelError(f"{n.name}: Masking is supported on the model's (float) input only: deeper, a "
                             "timestep's features can equal mask_value (a ReLU's zeros) and hiding it "
                             "changes the recurrent gradients")
    inputs: list[tuple[str, Shape, int | None]] = []
    for k, input_name in enumerate(input_names):
        first = by_name[input_name]
        # a Sequential config without an InputLayer gives the shape on its first layer
        after = nodes[1:2] if len(input_names) == 1 else []
        shape_list = _input_shape([{"class_name": first.cls, "config": first.cfg},
                                   *({"class_name": n.cls, "config": n.cfg} for n in after)],
                                  config["config"] if k == 0 else {})
        where = "input" if len(input_names) == 1 else f"input {input_name}"
        flag = "input" if len(input_names) == 1 else input_name
        if shape_list is None:
            raise ModelError(f"{where}: the config has no input shape (build the model or give it an Input); "
                             f"give one sample's sizes with --input-shape {flag}=<sizes> (e.g. --input-shape "
                             f"{flag}=784 for 784 features; `input_shapes` over HTTP)")
        if any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in shape_list):
            raise ModelError(f"{where}: dynamic dimensions in the input shape {shape_list} are not "
                             "supported; give the model a fixed input shape or the sizes to use (--input-shape input=32x41; `input_shapes` over HTTP)")
        readers = [n for n in nodes if input_name in n.inputs]
        dim = readers[0].cfg.get("input_dim") if readers and all(n.cls == "Embedding" for n in readers) else None
        # a bad input_dim is the Embedding's own problem (_check_numbers names it below)
        vocab = dim if isinstance(dim, int) and not isinstance(dim, bool) and dim >= 1 else None
        first.shape = tuple(shape_list)
        inputs.append((input_name, first.shape, vocab))
    shapes: dict[str, Shape] = {name: shape for name, shape, _ in inputs}
    reads = keras_tensor_shapes(config)  # what each layer's readers declare its output to be
    stand_ins: list[tuple[str, str, list[str]]] = []
    refused: list[tuple[str, str]] = []  # Lambda layers no stand-in fits: (name, why)
    for node in nodes:
        if node.name in shapes and node.cls == "InputLayer":
            continue
        if node.cls == "Lambda":
            node.in_shapes = [shapes[i] for i in node.inputs]
            base, _, call = node.name.partition("#")
            read_as = reads.get((base, int(call) if call.isdigit() else 0), [])
            kind, why = lambda_stand_in(node.in_shapes, node.cfg.get("output_shape"), read_as)
            if kind is None:
                refused.append((node.name, why))
                node.shape = node.in_shapes[0] if node.in_shapes else ()
                shapes[node.name] = node.shape
                continue
            # the stand-in is the existing parameter-free layer (the torch half builds it as such);
            # the function in the config is never looked at
            # (a distance keeps its last axis as 1 where the output, declared or read, has the inputs' rank)
            out = declared_shape(node.cfg.get("output_shape")) or next(iter(read_as), ())
            keepdims = kind != "distance" or len(node.in_shapes[0] or ()) == len(out)
            node.cls, node.args = STAND_IN_LAYERS[kind], None
            node.cfg = {"name": node.cfg.get("name", node.name), "_stand_in": kind, "_keepdims": keepdims,
                        **({"_shares": node.cfg["_shares"]} if node.cfg.get("_shares") else {})}
            stand_ins.append((node.name, kind, list(node.inputs)))
        try:
            node.in_shapes = [shapes[i] for i in node.inputs]
            _check_numbers(node)
            node.shape, node.weights = _shape(node, node.in_shapes)
            _check_layer(node)
            if stored is None if draws is None else draws:
                problems.extend(f"{node.name} ({node.cls}): {why}" for why in initializer_problems(node))
        except (ValueError, KeyError, TypeError, IndexError, OverflowError) as exc:
            problems.append(f"{node.name} ({node.cls}): {exc}")
            node.shape = node.in_shapes[0] if node.in_shapes else ()
        shapes[node.name] = node.shape
        if node.cls == "Embedding" and (len(node.inputs) != 1 or node.inputs[0] not in input_names):
            problems.append(f"{node.name}: an Embedding is supported on a model input only")
    for node in nodes:  # a shared layer's later calls: the first call's weights, counted once
        owner = node.cfg.get("_shares")
        if owner is not None and owner in by_name:
            if node.weights != by_name[owner].weights:
                problems.append(f"{node.name}: called on inputs of shapes {[list(s) for s in node.in_shapes]}, "
                                f"which make weights other than its first call's")
            node.weights = []
    if refused:
        raise ModelError(unsupported_message([("Lambda", name) for name, _ in refused], lambdas=refused)
                         + ("; also: " + "; ".join(problems) if problems else ""))
    if problems:
        raise ModelError("cannot check the Keras model: " + "; ".join(problems))
    skipped: list[str] = []
    applied: list[str] = []
    kept: list[tuple[str, str, float]] = []
    adapted: list[tuple[str, str, float, float]] = []
    for name, _, vocab in [] if keep_preprocessing else inputs:
        given = None if vocab else input_range  # token ids keep their draw
        names, degenerate, fitted = _skip_preprocessing(nodes, name, stored, given)
        (skipped if given is None else applied).extend(names)
        kept += degenerate
        adapted += fitted
    graph = KerasGraph(str(config["config"].get("name") or "keras_model"), nodes, input_names[0],
                       output_names[0], inputs[0][1], inputs[0][2], skipped, inputs=inputs,
                       output_names=output_names, degenerate_preprocessing=kept, stand_ins=stand_ins,
                       applied_preprocessing=applied, adapted_preprocessing=adapted)
    graph.parameters = sum(math.prod(s) for n in nodes for role, s in n.weights if role != "count")
    graph.multiply_adds = graph_multiply_adds(nodes)
    # float64 activations and their gradients, one copy each per node (as the ONNX door counts),
    # an unrolled recurrent layer's gates and states at every step (as the spec's plan counts), and
    # an attention's scores, probabilities and per-head projections (attention_inner)
    steps = [(n, recurrent_cell(n.cls, n.cfg)) for n in nodes if n.cls in RECURRENT or n.cls == "Bidirectional"]
    inner = sum(dirs * n.in_shapes[0][0] * int(cfg["units"]) * (2 * RECURRENT[cls] + 3)
                for n, (cls, cfg, dirs) in steps)
    inner += sum(attention_inner(n) for n in nodes if n.cls == "MultiHeadAttention")
    graph.activation_bytes = 2 * 8 * batch_size * (sum(math.prod(n.shape) for n in nodes) + inner)
    longest = max((n.in_shapes[0][0] for n, _ in steps), default=0)
    if longest > limits.max_time_steps:
        raise LimitExceeded(f"a recurrent layer reads {longest:,} time steps, over the limit of "
                            f"{limits.max_time_steps:,}")
    if graph.parameters > limits.max_parameters:
        raise LimitExceeded(f"the model has {graph.parameters:,} parameters, over the limit of "
                            f"{limits.max_parameters:,} (GRADHEALTH_LIMITS__MAX_PARAMETERS raises it)")
    if graph.activation_bytes > limits.max_activation_bytes:
        fits = batch_size * limits.max_activation_bytes // graph.activation_bytes
        raise LimitExceeded(f"activations and their gradients would take about "
                            f"{graph.activation_bytes / 2**20:,.0f} MiB at batch {batch_size}, over the "
                            f"limit of {limits.max_activation_bytes / 2**20:,.0f} MiB"
                            + (f"; a batch of {fits} or fewer fits (--batch-size; batch_size over HTTP)"
                               if fits >= 1 else ""))
    return graph
