"""What can be known about an ONNX file without torch: is it ONNX, is its graph a dataflow graph
(single assignment, every read defined, acyclic), which ops it uses, whether it refers to external
data, its parameter count, which input dimensions still need a size, and its estimated activation
memory.

The API process runs this at submission (it must never import torch: tests/test_boundary.py), so
an upload that could never be checked gets its 4xx before a job exists; the worker's importer
(:mod:`gradhealth.analysis.importers.onnx`) runs the same functions again, so the two cannot
disagree. Parsing is protobuf only (``ModelProto.FromString``): nothing in the file is executed.
"""

from __future__ import annotations

import functools
import heapq
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.onnx_fold import fold_control_flow
from gradhealth.analysis.plan import Limits
from gradhealth.analysis.timing import (  # noqa: F401  (re-exported: shared with the Keras and spec doors)
    CPU_MULTIPLY_ADDS_PER_S,
    GPU_SPEEDUP,
    PASSES_PER_SEED,
    simulation_seconds,
)
from gradhealth.core.numbers import parse_range
from gradhealth.core.saved_instead import saved_instead
from gradhealth.core.words import first_few
from gradhealth.errors import InputFormatError, LimitExceeded

#: Every op the interpreter has a builder for (keys of ``importers.onnx.OPS`` without the private
#: fused ones; tests/api/test_model_checks.py pins the two equal).
SUPPORTED_OPS: frozenset[str] = frozenset({
    "Abs", "Acos", "Acosh", "Add", "And", "ArgMax", "ArgMin", "Asin", "Asinh", "Atan", "Atanh", "AveragePool",
    "BatchNormalization", "Cast", "Ceil", "Celu",
    "Clip", "Concat", "Constant", "ConstantOfShape", "Conv", "ConvTranspose", "Cos", "Cosh", "CumSum",
    "DepthToSpace", "Div", "Dropout", "Einsum", "Elu", "Equal", "Erf", "Exp", "Expand", "Flatten", "Floor", "GRU",
    "Gather", "GatherElements", "Gelu", "Gemm", "GlobalAveragePool", "GlobalMaxPool", "Greater", "GreaterOrEqual",
    "GroupNormalization", "HardSigmoid", "HardSwish", "Identity", "InstanceNormalization", "IsInf", "IsNaN",
    "LSTM", "LayerNormalization", "LeakyRelu", "Less", "LessOrEqual", "Log", "LogSoftmax", "MatMul", "Max",
    "MaxPool", "Mean", "Min", "Mish", "Mod", "Mul", "Neg", "Not", "OneHot", "Or", "PRelu", "Pad", "Pow", "RNN",
    "Range", "Reciprocal", "ReduceL1", "ReduceL2", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
    "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare", "Relu", "Reshape",
    "Resize", "Round", "ScatterElements", "ScatterND", "Selu", "Shape", "Sigmoid", "Sign", "Sin", "Sinh", "Slice", "Softmax",
    "Softplus", "Softsign", "Split", "Sqrt", "Squeeze", "Sub", "Sum", "Tan", "Tanh", "ThresholdedRelu", "Tile",
    "TopK", "Transpose", "Trilu", "Unsqueeze", "Where", "Xor",
    # scikit-learn's elementwise preprocessors (skl2onnx writes a Scaler for every StandardScaler:
    # onnxsweep12 refused its Pipeline(StandardScaler(), MLPClassifier())), named with their domain
    "ai.onnx.ml::Binarizer", "ai.onnx.ml::Imputer", "ai.onnx.ml::Normalizer", "ai.onnx.ml::Scaler",
})

#: The first bytes of a file that is certainly not ONNX (a cheap, friendlier message than protobuf's).
_NOT_ONNX = {b"PK\x03\x04": "a zip archive", b"\x80\x02": "a pickle", b"\x80\x04": "a pickle",
             b"\x89HDF": "an HDF5 file", b"{": "JSON text"}


@dataclass
class Header:
    """The static facts of a parsed ONNX file."""

    model: Any  # onnx.ModelProto
    shapes: dict[str, list[int]]  # every graph input (not an initializer) -> its sizes
    elem_types: dict[str, int]  # ... -> its ONNX element type
    parameters: int
    activation_bytes: int
    #: the file listed its nodes out of topological order and they were sorted (:func:`check_structure`)
    reordered: bool = False
    #: ``Op (node name)`` of the nodes dropped as no part of the loss's output (:func:`prune_to`)
    pruned: tuple[str, ...] = ()
    #: where the loss is taken, when not at the first graph output (:func:`check_outputs`)
    loss_note: str | None = None
    #: the means the check took the loss at because the output is an action sampled around them
    #: (:func:`sampled_means`): a regression of the mean (mse) unless a loss is given
    sampled_means: tuple[str, ...] = ()
    #: how many If nodes on constants and shapes were folded to their branch (:func:`fold_control_flow`)
    folded_ifs: int = 0
    #: the graph has no batch axis and cannot take one (:func:`batch_axis`): why, run as one sample
    one_sample: str | None = None
    #: the graph had no batch axis and was given one (:func:`add_batch_axis`): the note saying so
    batch_note: str | None = None
    #: the batch is the check's choice (a dynamic batch the user gave no size for), not the user's
    batch_chosen: bool = False
    #: a legacy file with no opset, read as opset 1 and converted (:func:`legacy_opset`): the note saying so
    legacy_note: str | None = None


def parse(data: bytes, notes: list[str] | None = None) -> Any:
    """The ``onnx.ModelProto`` in ``data``; :class:`InputFormatError` when it is not an ONNX model.
    A legacy file with no opset is read as ONNX reads it (:func:`legacy_opset`), said in ``notes``."""
    import onnx
    from google.protobuf.message import DecodeError

    if not data:
        raise InputFormatError("not an ONNX model: the file is empty")
    for magic, what in _NOT_ONNX.items():
        if data.startswith(magic):
            raise InputFormatError(f"not an ONNX model: the file is {what}")
    # a Git LFS pointer or an HTML page saved as the .onnx (a repository's pointer, a hosting site's
    # page for the file): what it is and how to fetch the model, not protobuf's "Wire format was corrupt"
    instead = saved_instead(data[:4096], "the model")
    if instead is not None:
        raise InputFormatError(f"not an ONNX model: the file is {instead}")
    try:
        model = onnx.ModelProto.FromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise InputFormatError(f"not an ONNX model: the file is not an ONNX protobuf ({exc})") from None
    # each condition said on its own: onnxsweep30's legacy file with 14 nodes was told it had "no
    # graph, nodes or opset" when only its opset_import was missing
    if not model.HasField("graph"):
        raise InputFormatError("not an ONNX model: the file holds no graph")
    if not model.graph.node:
        raise InputFormatError("not an ONNX model: the file's graph has no nodes")
    if not model.opset_import:
        note = legacy_opset(model)
        if notes is not None:
            notes.append(note)
    return model


#: The opset a legacy file (IR version 1 or 2, which had no ``opset_import``) is declared once
#: :func:`legacy_opset` has rewritten what changed since opset 1: the first with numpy broadcasting
#: and with Reshape's shape as an input.
LEGACY_TARGET_OPSET = 7

#: Ops whose opset-1 meaning is their opset-7 one once the attributes later opsets dropped
#: (``consumed_inputs``, ``is_test``) are removed.
_LEGACY_SAME = frozenset({
    "Abs", "AveragePool", "BatchNormalization", "Ceil", "Concat", "Conv", "ConvTranspose", "Dropout", "Elu", "Exp",
    "Flatten", "Floor", "GlobalAveragePool", "GlobalMaxPool", "HardSigmoid", "Identity", "LeakyRelu", "Log",
    "LogSoftmax", "MatMul", "Max", "MaxPool", "Mean", "Min", "Neg", "Reciprocal", "Relu", "Selu", "Sigmoid",
    "Softmax", "Sqrt", "Squeeze", "Sum", "Tanh", "Transpose", "Gemm"})
#: Opset 1's binary ops, which broadcast a second operand only with ``broadcast=1``, aligned at ``axis``.
_LEGACY_BINARY = frozenset({"Add", "Sub", "Mul", "Div"})
_LEGACY_DROPPED = frozenset({"consumed_inputs", "is_test", "broadcast"})


def _exporter(model: Any) -> str:
    """``pytorch 0.2`` for a file's producer name and version, "" where it names none."""
    return " ".join(str(x) for x in (model.producer_name, model.producer_version) if x)


def legacy_opset(model: Any) -> str:
    """Give a file with no ``opset_import`` the opset ONNX says it has, in place, and return the note
    saying so; :class:`InputFormatError` where that cannot be done. A file of IR version 1 or 2
    (ONNX before opset_import existed: PyTorch 0.2's exports) is opset 1 of the default domain, the
    ONNX rule for such files. What changed since is rewritten (its attributes first given the
    ``type`` those files left out): opset 1's Reshape takes its shape as an attribute (made an
    input), its Add/Sub/Mul/Div broadcast a stored operand from ``axis`` (the operand's stored dims
    given trailing ones, so numpy broadcasting aligns it the same), and the attributes later opsets
    dropped are removed; the file is then opset :data:`LEGACY_TARGET_OPSET`. An op outside those
    (or of another domain) is refused, naming it. From IR version 3 on a file must declare its
    opsets, and one that does not is refused as such."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    made_by = f"; exported by {_exporter(model)}" if _exporter(model) else ""
    if model.ir_version >= 3:
        raise InputFormatError(
            f"not an ONNX model the check can read: the file (IR version {model.ir_version}{made_by}) declares "
            "no opset (its opset_import is empty), which ONNX requires from IR version 3 on, so which version "
            "of each op it means is unknown: re-export it with a current exporter, or set its opset with "
            "onnx.helper (model.opset_import.append(onnx.helper.make_opsetid('', N)) for the opset it was "
            "written for)")
    legacy = f"a legacy ONNX file (IR version {model.ir_version}, no opset_import{made_by})"
    fix = ("re-export it with a current exporter (torch.onnx.export), or try converting it (the converter needs "
           "every tensor's shape inferable): "
           "m = onnx.load(FILE); m.opset_import.append(onnx.helper.make_opsetid('', 1)); "
           "onnx.save(onnx.version_converter.convert_version(m, 13), 'current.onnx')")
    graph = model.graph
    _typed_attributes(graph)
    stored = {t.name: t for t in graph.initializer}
    # the rank of each tensor, from the input's declared shapes through opset 1's shape inference
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.ir_version = 3
    probe.opset_import.append(onnx.helper.make_opsetid("", 1))
    try:
        inferred = onnx.shape_inference.infer_shapes(probe)
        known = {v.name: len(v.type.tensor_type.shape.dim)
                 for v in [*inferred.graph.input, *inferred.graph.value_info]
                 if v.type.tensor_type.HasField("shape")}
    except Exception:  # noqa: BLE001  (what it cannot infer is refused below, by node)
        known = {}
    for t in graph.initializer:
        known.setdefault(t.name, len(t.dims))
    refused: list[str] = []
    for k, n in enumerate(graph.node):
        attrs = {a.name: a for a in n.attribute}
        # ranks where inference stopped (opset 1's shape functions are partial): the ops that keep
        # their first input's rank, and a Reshape's to its shape's
        if n.output and n.output[0] not in known and n.input and n.input[0] in known:
            if n.op_type == "Reshape" and "shape" in attrs:
                known[n.output[0]] = len(attrs["shape"].ints)
            elif n.op_type in _LEGACY_BINARY or n.op_type in _LEGACY_SAME - {"Flatten", "Gemm", "MatMul", "Squeeze",
                                                                              "Concat", "GlobalAveragePool",
                                                                              "GlobalMaxPool"}:
                known[n.output[0]] = known[n.input[0]]
        if n.domain not in ("", "ai.onnx"):
            refused.append(f"{_node_label(n, k)}: an op of domain {n.domain}, whose version the file does not say")
            continue
        if n.op_type in _LEGACY_BINARY and "broadcast" in attrs and attrs["broadcast"].i:
            b = stored.get(n.input[1])
            rank_a = known.get(n.input[0])
            if b is None or rank_a is None:
                refused.append(f"{_node_label(n, k)}: broadcasts {n.input[1]!r} in opset 1's way, by an axis")
                continue
            axis = int(attrs["axis"].i) if "axis" in attrs else rank_a - len(b.dims)
            trailing = rank_a - (axis % rank_a if rank_a else 0) - len(b.dims)
            if trailing > 0:
                value = numpy_helper.to_array(b)
                b.CopyFrom(numpy_helper.from_array(np.reshape(value, [*value.shape, *[1] * trailing]), b.name))
        elif n.op_type == "Reshape" and "shape" in attrs:
            name = f"{n.output[0]}__legacy_shape"
            graph.initializer.append(numpy_helper.from_array(np.array(list(attrs["shape"].ints), np.int64), name))
            n.input.append(name)
        elif n.op_type == "Concat" and "axis" not in attrs:
            n.attribute.append(onnx.helper.make_attribute("axis", 1))  # (opset 1's default, required from 4)
        elif n.op_type not in _LEGACY_SAME | _LEGACY_BINARY:
            refused.append(f"{_node_label(n, k)}: its opset-1 form is not read here")
            continue
        kept = [a for a in n.attribute if a.name not in _LEGACY_DROPPED and not (
            n.op_type in ("Add", "Sub", "Mul", "Div") and a.name == "axis") and not (
            n.op_type == "Reshape" and a.name == "shape")]
        del n.attribute[:]
        n.attribute.extend(kept)
    if refused:
        raise InputFormatError(f"{legacy}: ONNX reads it as opset 1, and the check cannot bring "
                               f"{first_few(refused, 3)} to a current opset: {fix}")
    model.ir_version = 3
    model.opset_import.append(onnx.helper.make_opsetid("", LEGACY_TARGET_OPSET))
    return (f"{legacy}: read as opset 1 of the default domain, as ONNX reads files before IR version 3, and "
            f"checked as its opset-{LEGACY_TARGET_OPSET} equivalent")


#: An attribute's type from the field that holds its value, for files that left ``type`` out.
_ATTRIBUTE_FIELDS = (("f", 1), ("i", 2), ("s", 3), ("t", 4), ("g", 5), ("floats", 6), ("ints", 7),
                     ("strings", 8), ("tensors", 9), ("graphs", 10))


def _typed_attributes(graph: Any) -> None:
    """Give every attribute of ``graph``'s nodes (and its subgraphs') the ``type`` of the field
    that holds its value, where the file left it UNDEFINED (IR versions before 2 had no such field);
    the version converter and the checker read the type, not the field."""
    for n in graph.node:
        for a in n.attribute:
            if not a.type:
                for slot, kind in _ATTRIBUTE_FIELDS:
                    if (a.HasField(slot) if slot in ("f", "i", "s", "t", "g") else len(getattr(a, slot))):
                        a.type = kind
                        break
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                _typed_attributes(g)


def _external(model: Any) -> list[Any]:
    """The tensors stored outside the file (initializers and node attributes)."""
    import onnx

    tensors = list(model.graph.initializer)
    for node in model.graph.node:
        for a in node.attribute:
            if a.HasField("t"):
                tensors.append(a.t)
            tensors.extend(a.tensors)
    return [t for t in tensors if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data)]


#: the inputs of each op that hold a layer's parameters (what ``--weights reinitialise`` redraws)
_PARAMETER_SLOTS: dict[str, frozenset[int]] = {
    "Conv": frozenset({1, 2}), "ConvTranspose": frozenset({1, 2}), "Gemm": frozenset({0, 1, 2}),
    "MatMul": frozenset({0, 1}), "BatchNormalization": frozenset({1, 2, 3, 4}),
    "LayerNormalization": frozenset({1, 2}), "InstanceNormalization": frozenset({1, 2}),
    "LSTM": frozenset({1, 2, 3}), "GRU": frozenset({1, 2, 3}), "RNN": frozenset({1, 2, 3}),
    "PRelu": frozenset({1}), "Gather": frozenset({0})}


def _not_parameters(graph: Any, names: list[str]) -> list[str]:
    """Those of ``names`` (stored tensors) that no layer reads as its parameters (a weight, a bias
    added to a MatMul's or convolution's output, a norm's scale, an embedding table): buffers such as
    a causal mask or a position table, which ``--weights reinitialise`` keeps as stored."""
    producer = {o: n.op_type for n in graph.node for o in n.output}
    params: set[str] = set()
    for n in graph.node:
        slots = _PARAMETER_SLOTS.get(n.op_type, frozenset()) if n.domain in ("", "ai.onnx") else frozenset()
        params.update(x for k, x in enumerate(n.input) if k in slots)
        if n.op_type == "Add" and len(n.input) == 2:
            for k in (0, 1):
                if producer.get(n.input[1 - k]) in ("MatMul", "Gemm", "Conv", "ConvTranspose"):
                    params.add(n.input[k])
    return [x for x in names if x not in params]


def external_data_refusal(model: Any, *, file_name: str | None = None, weights: str | None = None) -> str | None:
    """The refusal of a file whose tensors are stored outside it (None where none is): the
    tensors, the file(s) they point to, how to inline them, in the user's file name (``file_name``;
    onnxsweep22 kws.onnx was told of ``model.onnx``); with ``weights`` ``reinitialise``, which of
    them are no layer's parameter and are read as stored all the same (gpttt's causal masks)."""
    tensors = _external(model)
    if not tensors:
        return None
    stored = [t.name or "(unnamed tensor)" for t in tensors]
    locations = list(dict.fromkeys(
        e.value for t in tensors for e in t.external_data if e.key == "location" and e.value))
    shown = file_name or "model.onnx"
    where = (f"; the file points to {first_few([repr(v[:100]) for v in locations], 3)} for them" if locations
             else "")
    torch_way = ("torch.onnx.export(..., external_data=False), or "
                 if str(getattr(model, "producer_name", "")).lower() == "pytorch" else "")
    text = (f"{len(stored)} tensor(s) are stored outside the file as external data ({first_few(stored)}){where}, "
            "and the check does not follow file references")
    if weights == "reinitialise":
        kept = _not_parameters(model.graph, stored)
        text += ("; --weights reinitialise redraws the layers' weights, but "
                 + (f"{len(kept)} of these are no layer's parameter (buffers such as masks and position tables, "
                    f"which the network reads as stored): {first_few(kept)}, so their data is still needed"
                    if kept else "the check reads every stored tensor of the file before it redraws them"))
    return (text + "; save the model with every tensor inside it: " + torch_way
            + f"onnx.save(onnx.load({shown!r}), 'inline.onnx', save_as_external_data=False) (under 2 GB); or, "
            f"from the machine that holds the file and its data, `gradhealth check {shown} --external-data` "
            "reads them from beside it (with `--server URL` too, the CLI inlines them into what it sends)")


def _node_label(node: Any, k: int) -> str:
    """``name (Op)`` of the ``k``-th node, its position where the exporter left it unnamed."""
    return f"{node.name or f'#{k}'} ({node.op_type})"


def _outer_reads(graph: Any) -> set[str]:
    """The names a subgraph (an If branch, a Loop or Scan body) reads from the scopes around it:
    what it reads that none of its own inputs, initializers or nodes define, its nested bodies'
    reads included (ONNX lets a body see every name of the graphs it is inside)."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    defined |= {o for n in graph.node for o in n.output if o}
    reads = {i for n in graph.node for i in _node_reads(n)}
    reads |= {o.name for o in graph.output}
    return {r for r in reads if r and r not in defined}


def _node_reads(node: Any) -> list[str]:
    """A node's inputs, and for a node holding subgraphs the outer names its bodies read: both
    must be defined before it runs."""
    reads = [i for i in node.input if i]
    for a in node.attribute:
        for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
            reads.extend(sorted(_outer_reads(g) - set(reads)))
    return reads


def check_structure(graph: Any) -> bool:
    """Refuse (:class:`ModelError`, naming the node and tensor) a graph that is no dataflow graph:
    a name assigned twice across the graph inputs, initializers and node outputs (ONNX is single
    assignment; a second writer would silently make another model), a node input nothing defines
    (a graph input, an initializer, a node's output, or ``""``: an optional input left out), a node
    reading its own output, a graph output nothing produces, or a cycle. An acyclic graph listed out
    of order (ONNX requires topological order, but onnxruntime sorts such a file and runs it) is
    sorted in place, stably (a sorted graph keeps its order); returns whether it was reordered."""
    nodes = list(graph.node)
    # a name both a graph input and an initializer is one tensor (IR < 4 lists every weight as an
    # input, its initializer the default value)
    sources: dict[str, str] = {}
    for inp in graph.input:
        if inp.name in sources:
            raise ModelError(f"tensor {inp.name!r} is assigned more than once: it is declared twice "
                             "as a graph input (ONNX assigns each name once)")
        sources[inp.name] = "a graph input"
    seen_init: set[str] = set()
    for t in graph.initializer:
        if t.name in seen_init:
            raise ModelError(f"tensor {t.name!r} is assigned more than once: two initializers have "
                             "that name (ONNX assigns each name once)")
        seen_init.add(t.name)
        sources.setdefault(t.name, "an initializer")
    producer: dict[str, int] = {}
    for k, n in enumerate(nodes):
        for o in n.output:
            if not o:  # an optional output left out
                continue
            if o in producer or o in sources:
                first = (f"node {_node_label(nodes[producer[o]], producer[o])}" if o in producer
                         else sources[o])
                raise ModelError(f"tensor {o!r} is assigned more than once: by {first} and again by node "
                                 f"{_node_label(n, k)}; ONNX assigns each name once (single assignment), "
                                 "and which value a reader gets would be a guess")
            producer[o] = k
    reads = [_node_reads(n) for n in nodes]
    for k, n in enumerate(nodes):
        for i in reads[k]:
            if producer.get(i) == k:
                raise ModelError(f"node {_node_label(n, k)} reads its own output {i!r}: a cycle, which no "
                                 "dataflow graph has")
            if i not in producer and i not in sources:
                raise ModelError(f"node {_node_label(n, k)} reads {i!r}, which is not defined: no graph "
                                 "input, initializer or node produces it")
    for o in graph.output:
        if o.name not in producer and o.name not in sources:
            raise ModelError(f"graph output {o.name!r} is produced by no node (nor is it a graph input "
                             "or initializer)")
    # already in order (the usual case): every read made by an earlier node
    if all(producer.get(i, -1) < k for k in range(len(nodes)) for i in reads[k]):
        return False
    # Kahn's algorithm, always taking the earliest-listed ready node: a stable sort
    users: dict[int, list[int]] = {}
    waiting = [0] * len(nodes)
    for k in range(len(nodes)):
        for j in {producer[i] for i in reads[k] if i in producer}:
            users.setdefault(j, []).append(k)
            waiting[k] += 1
    ready = [k for k in range(len(nodes)) if not waiting[k]]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        k = heapq.heappop(ready)
        order.append(k)
        for u in users.get(k, []):
            waiting[u] -= 1
            if not waiting[u]:
                heapq.heappush(ready, u)
    if len(order) < len(nodes):
        raise ModelError("the graph has a cycle, so no node order computes it: "
                         + _cycle(nodes, reads, producer, set(order)))
    # copies: a message removed from a repeated field is not to be read afterwards
    sorted_nodes = [type(nodes[k])() for k in order]
    for copy, k in zip(sorted_nodes, order, strict=True):
        copy.CopyFrom(nodes[k])
    del graph.node[:]
    graph.node.extend(sorted_nodes)
    return True


def _cycle(nodes: list[Any], reads: list[list[str]], producer: dict[str, int], done: set[int]) -> str:
    """One cycle among the nodes a topological sort could not place, as ``a -(t)-> b ...``: every
    such node waits on another such one, so walking back from any of them repeats a node."""
    k = next(j for j in range(len(nodes)) if j not in done)
    path: list[tuple[int, str]] = []  # (node, the tensor it reads from the next one back)
    at: dict[int, int] = {}
    while k not in at:
        at[k] = len(path)
        tensor = next(i for i in reads[k] if i in producer and producer[i] not in done)
        path.append((k, tensor))
        k = producer[tensor]
    loop = path[at[k]:][::-1]  # producers first
    steps = [f"node {_node_label(nodes[j], j)} -({t!r})-> " for j, t in
             [(producer[t], t) for _, t in loop]]
    return "".join(steps) + f"node {_node_label(nodes[loop[-1][0]], loop[-1][0])}"


def elements(dims: Any) -> int:
    """The number of values a tensor of sizes ``dims`` holds, as an exact Python integer: numpy's
    int64 product wraps (errsweep E5: ``[2**32, 2**32]`` made 0, and passed every limit)."""
    return math.prod(int(d) for d in dims)


#: ONNX element types stored packed in ``raw_data``, and how many bits a value takes there (by
#: name: an older onnx package lacks the newer ones).
_PACKED_BITS = {"INT4": 4, "UINT4": 4, "FLOAT4E2M1": 4, "INT2": 2, "UINT2": 2, "FLOAT6E2M3": 6, "FLOAT6E3M2": 6}
#: ... and how many values one entry of ``int32_data`` holds (the 6-bit ones keep one an entry).
_PER_INT32 = {4: 2, 2: 4, 6: 1}


#: The typed value fields of a TensorProto, each of which must be empty when ``raw_data`` is set.
_TYPED_FIELDS = ("float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")


def _tensor_problem(t: Any) -> str | None:
    """What is wrong with the data of the stored tensor ``t`` (an initializer, a Constant's value),
    None when its element type is one ONNX defines and it holds exactly the values its dims need;
    what ``numpy_helper.to_array`` would otherwise fail on with a KeyError or a reshape error
    (errsweep E6). A tensor stored as external data is left to the external-data refusal."""
    import onnx
    from onnx import helper

    if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data):
        return None
    dims = [int(d) for d in t.dims]
    if any(d < 0 for d in dims):
        return f"its dims {dims} have a negative size"
    code = int(t.data_type)
    try:
        if code == onnx.TensorProto.UNDEFINED:
            raise KeyError(code)
        np_type = helper.tensor_dtype_to_np_dtype(code)
        field = helper.tensor_dtype_to_field(code)
    except (KeyError, ValueError, TypeError):
        return f"data type {code} is not an ONNX element type"
    name = onnx.TensorProto.DataType.Name(code)
    label = "string" if code == onnx.TensorProto.STRING else str(np_type)
    count = elements(dims)
    bits = _PACKED_BITS.get(name)
    if t.HasField("raw_data"):
        # ONNX: with raw_data set the typed fields must be empty; both would be read as one of them,
        # silently (errsweep9 #10: raw_data zeros beside float_data ones was taken without a word)
        also = [f for f in _TYPED_FIELDS if len(getattr(t, f, ()))]
        if also:
            return (f"it holds both raw_data and {', '.join(also)}; ONNX allows only one of them, "
                    "so which values it has is not defined (export it again)")
    if code != onnx.TensorProto.STRING and t.HasField("raw_data"):
        need = -(-count * bits // 8) if bits else count * np.dtype(np_type).itemsize
        have, what = len(t.raw_data), "bytes"
        field = "raw_data"
    else:
        complex_types = (onnx.TensorProto.COMPLEX64, onnx.TensorProto.COMPLEX128)
        need = (-(-count // _PER_INT32[bits]) if bits else 2 * count if code in complex_types else count)
        have, what = len(getattr(t, field)), "values"
    if have == need:
        return None
    return f"{field} holds {have} {what}, its dims {dims} of {label} need {need}"


def _not_numbers(t: Any) -> str | None:
    """Why the well-formed stored tensor ``t`` cannot take part in the check: the check computes
    on numbers, and a STRING tensor would reach the worker's ``to_array`` as an array of dtype
    ``object`` ("element type object is not a number type", errsweep6 H12); None for the rest."""
    import onnx

    if int(t.data_type) == onnx.TensorProto.STRING:
        return ("a STRING tensor (text), not numbers; the check computes on numeric tensors "
                "(float, int or bool)")
    return None


def check_tensor_data(graph: Any) -> None:
    """Refuse (:class:`ModelError`, naming the tensor) a stored tensor, initializer or a node's
    tensor attribute (a Constant's value), whose element type ONNX does not define, whose data
    is not what its dims need (``initializer 'fc.weight': raw_data holds 12 bytes, its dims [4, 4]
    of float32 need 64``), or that holds text, not numbers (``initializer 'W': a STRING tensor``).
    Checked before anything reads one (the worker's ``to_array``)."""
    for t in graph.initializer:
        problem = _tensor_problem(t) or _not_numbers(t)
        if problem:
            raise ModelError(f"initializer {t.name!r}: {problem}")
    for k, n in enumerate(graph.node):
        for a in n.attribute:
            for t in ([a.t] if a.HasField("t") else []) + list(a.tensors):
                problem = _tensor_problem(t) or _not_numbers(t)
                if problem:
                    raise ModelError(f"node {_node_label(n, k)}, attribute {a.name!r}: {problem}")


# --- attributes: their types, and the geometry of a sliding window ------------------------------

@functools.lru_cache(maxsize=1)
def _attribute_table() -> dict[str, dict[str, frozenset[int]]]:
    """op type -> attribute name -> the ``AttributeProto`` types ONNX's own op definitions give
    that attribute in any opset (a file whose opset is off by one still reads), for every op in
    :data:`SUPPORTED_OPS`: the table the registry's attributes are read against."""
    import onnx.defs

    table: dict[str, dict[str, set[int]]] = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain not in ("", "ai.onnx") or schema.name not in SUPPORTED_OPS:
            continue
        attrs = table.setdefault(schema.name, {})
        for name, attr in schema.attributes.items():
            attrs.setdefault(name, set()).add(int(attr.type))  # type: ignore[call-overload]  # the stub lacks __int__
    return {op: {name: frozenset(kinds) for name, kinds in attrs.items()} for op, attrs in table.items()}


#: Integer attributes ONNX defines as a flag, 0 or 1 (Gemm's transA, a reduction's keepdims ...):
#: any other value would be read as a guess (``bool(7)``).
_FLAGS = frozenset({"transA", "transB", "keepdims", "ceil_mode", "count_include_pad", "allowzero",
                    "noop_with_empty_axes", "select_last_index", "exclusive", "reverse", "upper", "largest",
                    "sorted", "detect_negative", "detect_positive", "linear_before_reset", "layout",
                    "input_forget"})


def _a(kind: str) -> str:
    """``a FLOAT``, ``an INT``: an attribute type's name with its article."""
    return f"{'an' if kind[0] in 'AEIOU' else 'a'} {kind}"


def attribute_value(node: Any, a: Any, label: str | None = None) -> Any:
    """The value of attribute ``a`` of ``node`` (``onnx.helper.get_attribute_value``), read only
    when its type is the one ONNX defines for that attribute of that op (:func:`_attribute_table`;
    an attribute ONNX does not define for the op is read as it is): :class:`ModelError` naming the
    node (``label``) and the attribute otherwise, e.g. ``node cst (Constant): attribute 'value' is a
    FLOAT, expected a TENSOR``, where reading ``a.t`` regardless would hand on an empty tensor
    (errsweep3 F5). A flag (:data:`_FLAGS`) must be 0 or 1. Every attribute the importer reads
    comes through here, as the submission's :func:`check_attributes` does."""
    import onnx

    label = label or _node_label(node, 0)
    kinds = onnx.AttributeProto.AttributeType
    kind = int(a.type)
    if kind == onnx.AttributeProto.UNDEFINED or kind not in kinds.values():
        raise ModelError(f"node {label}: attribute {a.name!r} has no type ONNX defines (type {kind})")
    expected = _attribute_table().get(node.op_type, {}).get(a.name)
    if expected and kind not in expected:
        want = " or ".join(_a(kinds.Name(k)) for k in sorted(expected))
        raise ModelError(f"node {label}: attribute {a.name!r} is {_a(kinds.Name(kind))}, expected {want}")
    value = onnx.helper.get_attribute_value(a)
    if a.name in _FLAGS and kind == onnx.AttributeProto.INT and value not in (0, 1):
        raise ModelError(f"node {label}: attribute {a.name!r} is {value}, must be 0 or 1")
    return value


def check_attributes(graph: Any) -> None:
    """Refuse (:class:`ModelError`, naming the node and the attribute) a node that gives one
    attribute twice (which one counts would be a guess: errsweep3 F16), or an attribute of a type
    other than the one its op defines, or a flag other than 0 or 1 (:func:`attribute_value`)."""
    for k, n in enumerate(graph.node):
        label = _node_label(n, k)
        seen: set[str] = set()
        for a in n.attribute:
            if a.name in seen:
                raise ModelError(f"node {label}: attribute {a.name!r} is given more than once (ONNX "
                                 "gives a node each attribute once; which one counts would be a guess)")
            seen.add(a.name)
            attribute_value(n, a, label)


#: The element types a ``Cast`` may go to that the import can simulate: the floating-point ones
#: (float, float16, double, bfloat16, the float8 kinds, float4) and these integers and bool
#: (int32, int64, bool, uint8, int8); :mod:`.onnx` reads them, a test pins the two alike.
FLOAT_ELEMENT_TYPES = frozenset({1, 10, 11, 16, 17, 18, 19, 20, 23})
INT_ELEMENT_TYPES = frozenset({6, 7, 9, 2, 3})


def element_type_name(code: int) -> str:
    """An ONNX element type's name as ONNX spells it (``STRING`` for 8, ``UNDEFINED`` for 0)."""
    import onnx

    try:
        return str(onnx.TensorProto.DataType.Name(int(code)))
    except ValueError:
        return f"element type {code}, which ONNX does not define"


def check_ops(graph: Any, known: dict[str, np.ndarray], ranks: dict[str, int] | None = None) -> None:
    """Refuse (:class:`ModelError`, naming the node) what a node's attributes or constant inputs
    already make impossible to run, before a job is queued: a ``Cast`` to an element type the check
    cannot simulate (a string, a complex, ``to=999``), a ``Reshape`` whose known target shape infers
    more than one dimension (two -1s), and the constant parameter inputs the ONNX operator does not
    define (:func:`_check_parameters`: a Reshape's target, Squeeze's and Unsqueeze's axes, Dropout's
    ratio, Slice's steps and axes). ``known``: :func:`_known_values` of the graph; ``ranks``: the
    rank of each tensor where it is declared or inferred (:func:`_estimate`). A ``Gather`` of a
    stored tensor at known indices outside its axis is refused too (:func:`_check_gather`)."""
    stored = {t.name: [int(d) for d in t.dims] for t in graph.initializer}
    for k, n in enumerate(graph.node):
        label = _node_label(n, k)
        if n.domain in ("", "ai.onnx"):
            _check_parameters(n, label, known, ranks or {})
            if n.op_type == "Gather":
                _check_gather(n, label, known, stored)
            if n.op_type == "Resize":
                from onnx import helper

                attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
                problem = resize_problem(attrs)
                scales = _input(n, 2, known)
                if problem is None and scales is not None and scales.size > 2:
                    # (the batch and channel axes' 1s are judged by the interpreter)
                    problem = resize_scale_problem(attrs, [float(v) for v in scales.ravel()[2:]])
                if problem is not None:
                    raise ModelError(f"unsupported ONNX ops: Resize (node {label}: {problem})")
        if n.op_type == "Cast":
            to = next((a.i for a in n.attribute if a.name == "to"), None)
            if to is None:
                raise ModelError(f"node {label}: attribute 'to' is missing (the element type to cast to)")
            if to not in FLOAT_ELEMENT_TYPES | INT_ELEMENT_TYPES:
                from onnx import TensorProto

                name = TensorProto.DataType.Name(to) if to in TensorProto.DataType.values() else "no ONNX type"
                raise ModelError(f"node {label}: casts to element type {to} ({name}); the check simulates "
                                 "floating-point and integer tensors only")
        elif n.op_type == "Reshape" and len(n.input) > 1 and n.input[1] in known:
            shape = known[n.input[1]]
            if int(np.sum(shape == -1)) > 1:
                raise ModelError(f"node {label}: its target shape {shape.astype(np.int64).tolist()} has "
                                 "more than one -1 (only one dimension can be inferred)")


#: ONNX Resize (mode, coordinate_transformation_mode, nearest_mode) -> F.interpolate's mode and
#: align_corners; the combinations torch exports, and those that compute the same. Here, torch-free,
#: so the API refuses another combination at submission, naming the node (errsweep6: refused only
#: inside the job, as "node ?"); the importer's Resize builder reads the same table.
RESIZE_MODES: dict[tuple[str, str, str], tuple[str, bool | None]] = {
    ("nearest", "asymmetric", "floor"): ("nearest", None),
    # tf2onnx's Keras UpSampling2D and tf.image.resize(method='nearest', half_pixel_centers) at opset
    # 11 (onnxsweep25): output i reads input floor((i + 0.5) / s), which is floor(i / s), asymmetric's,
    # exactly where every scale s is a whole number (i = q s + r, 0 <= r < s: (r + 0.5) / s < 1);
    # any other scale is refused (:data:`WHOLE_SCALES_ONLY`)
    ("nearest", "tf_half_pixel_for_nn", "floor"): ("nearest", None),
    ("linear", "half_pixel", ""): ("linear", False),
    ("linear", "pytorch_half_pixel", ""): ("linear", False),
    ("linear", "align_corners", ""): ("linear", True),
    ("cubic", "half_pixel", ""): ("bicubic", False),
    ("cubic", "pytorch_half_pixel", ""): ("bicubic", False),
    ("cubic", "align_corners", ""): ("bicubic", True),
}


#: The combinations of :data:`RESIZE_MODES` that compute the same as their torch mode only where every
#: resized axis grows by a whole-number factor (:func:`resize_scale_problem`).
WHOLE_SCALES_ONLY = frozenset({("nearest", "tf_half_pixel_for_nn", "floor")})


def resize_scale_problem(attrs: dict[str, Any], factors: Iterable[float]) -> str | None:
    """Why a Resize of these attributes cannot be simulated at these scale factors (one per resized
    axis: given as ``scales``, or output size / input size where ``sizes`` is given), else None:
    ``tf_half_pixel_for_nn`` with ``nearest_mode=floor`` reads input floor((i + 0.5) / s) for output
    i, asymmetric's floor(i / s) only for a whole-number s (at s = 1.5, output 1 reads input 1, not 0)."""
    key = resize_key(attrs)
    if key not in WHOLE_SCALES_ONLY:
        return None
    for axis, s in enumerate(factors, start=2):
        if not (s >= 1 and abs(s - round(s)) <= 1e-6 * s):
            return (f"mode={key[0]}, coordinate_transformation_mode={key[1]}, nearest_mode={key[2]} at scale "
                    f"{s:g} on axis {axis}: it reads input floor((i + 0.5) / s) for output i, which the "
                    "simulated nearest (asymmetric, floor: floor(i / s)) equals only for a whole-number scale "
                    "(each value repeated s times, Keras' UpSampling2D); at other scales it is another "
                    "resampling, which the check does not simulate")
    return None


def resize_key(attrs: dict[str, Any]) -> tuple[str, str, str]:
    """A Resize node's (mode, coordinate_transformation_mode, nearest_mode), ONNX's defaults filled."""
    def text(v: Any) -> str:
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)

    mode = text(attrs.get("mode", "nearest"))
    return (mode, text(attrs.get("coordinate_transformation_mode", "half_pixel")),
            text(attrs.get("nearest_mode", "round_prefer_floor")) if mode == "nearest" else "")


def resize_problem(attrs: dict[str, Any]) -> str | None:
    """Why the check cannot simulate a Resize of these attributes (by name), else None."""
    key = resize_key(attrs)
    if key not in RESIZE_MODES:
        supported = "; ".join(", ".join(k for k in combo if k) for combo in RESIZE_MODES)
        return ("mode={}, coordinate_transformation_mode={}{} (simulated: {})".format(
            key[0], key[1], f", nearest_mode={key[2]}" if key[2] else "", supported))
    if attrs.get("exclude_outside", 0) or attrs.get("antialias", 0) or attrs.get("axes") is not None:
        return "exclude_outside, antialias or axes"
    if key[0] == "cubic" and abs(float(attrs.get("cubic_coeff_a", -0.75)) + 0.75) > 1e-9:
        return "cubic_coeff_a other than -0.75 (torch's)"
    return None


def _check_gather(n: Any, label: str, known: dict[str, np.ndarray], stored: dict[str, list[int]]) -> None:
    """Refuse a Gather of a stored tensor (an embedding table, a constant) at known indices outside
    its ``axis``: ONNX allows ``[-size, size - 1]``. errsweep6's ``'ix' = [10^12, 0, 1, 2]`` into a
    [4, 3] table reached the job and was said as "'W': NoneType"."""
    if len(n.input) < 2 or n.input[0] not in stored:
        return
    indices = _input(n, 1, known)
    dims = stored[n.input[0]]
    if indices is None or not np.issubdtype(indices.dtype, np.integer) or not indices.size or not dims:
        return
    axis = int(_attr(n, "axis") or 0)
    if not -len(dims) <= axis < len(dims):
        return  # (check_axes names an axis out of range)
    size = dims[axis]
    bad = indices[(indices >= size) | (indices < -size)]
    if bad.size:
        raise ModelError(f"node {label}: index {int(bad[0])} of {n.input[1]!r} is outside axis {axis} of "
                         f"{n.input[0]!r} {dims} (indices run from {-size} to {size - 1})")


def _input(n: Any, i: int, known: dict[str, np.ndarray]) -> np.ndarray | None:
    """The known value (:func:`_known_values`) of node ``n``'s input ``i``, else None."""
    return known.get(n.input[i]) if len(n.input) > i and n.input[i] else None


def _attr(n: Any, name: str) -> Any:
    """Node ``n``'s attribute ``name`` as a Python value (types already checked), else None."""
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in n.attribute if a.name == name), None)


def _check_parameters(n: Any, label: str, known: dict[str, np.ndarray], ranks: dict[str, int]) -> None:
    """Refuse (:class:`ModelError`, naming the node) a parameter that the op takes as an input (or
    an older opset's attribute) and that is known before running, where the ONNX operator does not
    define it: the interpreter would stop with Python's own words (``tuple index out of range``)
    or go on silently (a Dropout ratio of 2.5: errsweep5 G10). ``ranks``: the rank of the node's data
    input where it is known (as :func:`check_axes` reads it); what needs its sizes (a Squeeze of
    an axis longer than 1, a Reshape target of another size) is judged by the interpreter on the
    tensors themselves, named by node too: ONNX's shape inference can be a size off (a pool with
    ceil_mode), and a valid file must not be refused on its estimate."""
    where = f"node {label}"
    rank = ranks.get(n.input[0]) if n.input and n.input[0] else None
    if n.op_type == "Dropout":
        ratio = _input(n, 1, known)
        value = (float(ratio.ravel()[0]) if ratio is not None and ratio.size == 1
                 and np.issubdtype(ratio.dtype, np.number) else _attr(n, "ratio"))
        if value is not None and not 0 <= float(value) < 1:
            raise ModelError(f"{where}: ratio {float(value):g} is outside [0, 1) (the fraction of values "
                             "dropped)")
        return
    if n.op_type not in ("Reshape", "Squeeze", "Unsqueeze", "Slice"):
        return
    arg = _input(n, 1, known)
    if n.op_type == "Reshape":
        if arg is None or not np.issubdtype(arg.dtype, np.integer):
            return
        target = [int(d) for d in arg]
        allowzero = bool(_attr(n, "allowzero") or 0)
        bad = [d for d in target if d < -1]
        if bad:
            raise ModelError(f"{where}: its target shape {target} holds {bad[0]}; each size must be -1 (inferred), "
                             "0 (copied from the input) or positive")
        if allowzero and 0 in target and -1 in target:
            raise ModelError(f"{where}: its target shape {target} has both a 0 and a -1 with allowzero=1 "
                             "(the -1 cannot be inferred from an empty tensor)")
        past = next((i for i, d in enumerate(target) if d == 0 and rank is not None and i >= rank), None)
        if past is not None and not allowzero:
            raise ModelError(f"{where}: its target shape {target}: shape[{past}] = 0 copies a dimension its input "
                             f"{n.input[0]!r} (rank {rank}) does not have")
        return
    if n.op_type in ("Squeeze", "Unsqueeze"):
        attr = _attr(n, "axes")
        axes = [int(a) for a in attr] if attr is not None else (
            [int(a) for a in arg] if arg is not None and np.issubdtype(arg.dtype, np.integer) else None)
        if axes is None or not rank:
            return
        out = rank + len(axes) if n.op_type == "Unsqueeze" else rank
        off = [a for a in axes if not -out <= a < out]
        if off:
            raise ModelError(f"{where}: axes {axes} has {off[0]} out of range, its input {n.input[0]!r} has "
                             f"rank {rank} (axes -{out} to {out - 1})")
        if len({a % out for a in axes}) != len(axes):
            raise ModelError(f"{where}: axes {axes} names an axis more than once")
        return
    # Slice: a step of 0 never ends, and its axes are axes of its input
    steps, axes_v = _input(n, 4, known), _input(n, 3, known)
    if steps is not None and np.issubdtype(steps.dtype, np.integer) and (steps == 0).any():
        raise ModelError(f"{where}: its steps {steps.astype(np.int64).tolist()} hold a 0 (a slice steps at "
                         "least 1 either way)")
    if axes_v is not None and rank and np.issubdtype(axes_v.dtype, np.integer):
        off = [int(a) for a in axes_v if not -rank <= int(a) < rank]
        if off:
            raise ModelError(f"{where}: axes {axes_v.astype(np.int64).tolist()} has {off[0]} out of range, its "
                             f"input {n.input[0]!r} has rank {rank} (axes -{rank} to {rank - 1})")


def declared_outputs(graph: Any, shapes: dict[str, list[int]], model: Any = None
                     ) -> list[tuple[list[int | None], list[bool]] | None]:
    """Per graph output, (its declared shape, a fixed size as None where dynamic; per dimension,
    whether its fixed size holds for this run), or None where no shape is declared. The interpreter
    compares them with what the graph computes (:meth:`.onnx.OnnxModule.forward`).

    No fixed size holds where a batch size or input shape was given in place of a fixed one. Where
    the check filled a dynamic input dimension (the default batch of 16, ``--input-shape``), a fixed
    size holds only where ``model``'s shape inference computes the same size with every filled size
    doubled: a size that follows a filled one is the exporter's trace, not the file contradicting
    itself (ML-Agents' Hallway.onnx: a dynamic batch in, ``recurrent_out`` declared [1, 1, 128],
    its batch traced as 1; filesweep1 h07). Without ``model``, or where inference cannot follow the
    graph, no fixed size holds after a fill."""
    as_declared = True
    filled: set[str] = set()
    for inp in graph.input:
        given = shapes.get(inp.name)
        if given is None:
            continue
        dims = list(inp.type.tensor_type.shape.dim)
        if any(d.HasField("dim_value") and d.dim_value > 0 and (k >= len(given) or given[k] != d.dim_value)
               for k, d in enumerate(dims)):
            as_declared = False
        if len(dims) < len(given) or any(not (d.HasField("dim_value") and d.dim_value > 0) for d in dims):
            filled.add(inp.name)
    fixed = as_declared and not filled
    steady: dict[str, list[bool]] | None = None
    if as_declared and filled and model is not None and any(
            d.HasField("dim_value") and d.dim_value > 0
            for o in graph.output if o.type.HasField("tensor_type") for d in o.type.tensor_type.shape.dim):
        steady = _steady_dims(model, shapes, filled)
    out: list[tuple[list[int | None], list[bool]] | None] = []
    for o in graph.output:
        tt = o.type.tensor_type if o.type.HasField("tensor_type") else None
        if tt is None or not tt.HasField("shape"):
            out.append(None)
            continue
        dims_out = [int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim]
        holds = (steady or {}).get(o.name) or [fixed] * len(dims_out)
        out.append((dims_out, [h and d is not None for h, d in zip(holds, dims_out, strict=False)]
                    + [False] * (len(dims_out) - len(holds))))
    return out


def _steady_dims(model: Any, shapes: dict[str, list[int]], filled: set[str]) -> dict[str, list[bool]]:
    """Per graph output whose every dimension shape inference sizes, whether each size stays the same
    with the dynamic input dimensions of ``filled`` at their sizes in ``shapes`` and at twice them
    (doubled, a size that divides another still does); {} where inference cannot follow the graph."""
    import onnx

    doubled = dict(shapes)
    for inp in model.graph.input:
        if inp.name in filled:
            dims = list(inp.type.tensor_type.shape.dim)
            doubled[inp.name] = [size if k < len(dims) and dims[k].HasField("dim_value") and dims[k].dim_value > 0
                                 else 2 * size for k, size in enumerate(shapes[inp.name])]
    runs: list[dict[str, list[int]]] = []
    for sizes in (shapes, doubled):
        m = _shapes_only(model, sizes)
        # what the graph computes, not what the exporter wrote of its trace
        del m.graph.value_info[:]
        for o in m.graph.output:
            if o.type.HasField("tensor_type"):
                o.type.tensor_type.ClearField("shape")
        try:
            inferred = onnx.shape_inference.infer_shapes(m, strict_mode=False, data_prop=True)
        except Exception:  # an estimate: a graph it cannot follow keeps no fixed size
            return {}
        runs.append({o.name: [int(d.dim_value) if d.HasField("dim_value") else -1 for d in o.type.tensor_type.shape.dim]
                     for o in inferred.graph.output
                     if o.type.HasField("tensor_type") and o.type.tensor_type.HasField("shape")})
    first, second = runs
    return {name: [a == b and a > 0 for a, b in zip(dims, second[name], strict=True)]
            for name, dims in first.items() if name in second and len(second[name]) == len(dims)}


#: Ops that slide a window over the spatial dimensions of their first input.
_WINDOW_OPS = frozenset({"Conv", "ConvTranspose", "MaxPool", "AveragePool"})
_AUTO_PAD = ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER")


def _check_window(n: Any, label: str, weight: list[int] | None, rank: int | None) -> None:
    """The geometry of one :data:`_WINDOW_OPS` node (attributes already of their types): how many
    spatial dimensions it slides over (its stored weight's, else its input's rank's, else its
    attributes' lengths), and ``kernel_shape``, ``strides``, ``dilations``, ``pads``,
    ``output_padding`` and ``group`` as long as those need and in range, ``kernel_shape`` the
    weight's own window; torch would stop mid-simulation naming none of it (errsweep3 F13)."""
    attrs = {a.name: attribute_value(n, a, label) for a in n.attribute}
    conv = n.op_type in ("Conv", "ConvTranspose")
    where = f"node {label}"
    kernel = [int(v) for v in attrs["kernel_shape"]] if "kernel_shape" in attrs else None
    if not conv and kernel is None:
        raise ModelError(f"{where}: attribute 'kernel_shape' is required (the {n.op_type}'s window)")
    nd: int | None = None
    of = ""
    if conv and weight is not None:
        nd, of = len(weight) - 2, f"its weight {n.input[1]!r} of shape {weight}"
    elif rank is not None:
        nd, of = rank - 2, f"its input {n.input[0]!r} of rank {rank}"
    else:
        for name, per in (("kernel_shape", 1), ("strides", 1), ("dilations", 1), ("output_padding", 1),
                          ("pads", 2)):
            if name in attrs and len(attrs[name]) % per == 0:
                nd, of = len(attrs[name]) // per, f"its {name} {[int(v) for v in attrs[name]]}"
                break
    if nd is not None and not 1 <= nd <= 3:
        raise ModelError(f"{where}: {of} makes a {nd}-d window; 1-d to 3-d ones are simulated")
    for name, per, low in (("kernel_shape", 1, 1), ("strides", 1, 1), ("dilations", 1, 1),
                           ("pads", 2, 0), ("output_padding", 1, 0)):
        if name not in attrs:
            continue
        values = [int(v) for v in attrs[name]]
        if nd is not None and len(values) != per * nd:
            each = "a begin and an end" if per > 1 else "one"
            raise ModelError(f"{where}: {name} has {len(values)} value(s), needs {per * nd} ({each} per "
                             f"spatial dimension of {of})")
        bad = [v for v in values if v < low]
        if bad:
            raise ModelError(f"{where}: {name} {values} holds {bad[0]}; each must be at least {low}")
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode("utf-8", "replace") if isinstance(auto_pad, bytes) else str(auto_pad)
    if (auto_pad or "NOTSET") not in _AUTO_PAD:
        raise ModelError(f"{where}: auto_pad {auto_pad[:50]!r} is none of {', '.join(_AUTO_PAD)}")
    if conv and weight is not None and kernel is not None and kernel != weight[2:]:
        raise ModelError(f"{where}: kernel_shape {kernel} contradicts {of} (a {weight[2:]} window)")
    if conv:
        group = int(attrs.get("group", 1))
        if group < 1:
            raise ModelError(f"{where}: group {group}; it must be at least 1")
        if weight is not None and weight and weight[0] % group:
            channels = "input" if n.op_type == "ConvTranspose" else "output"
            raise ModelError(f"{where}: group {group} does not divide the {weight[0]} {channels} channels "
                             f"of {of}")


def check_windows(graph: Any, ranks: dict[str, int]) -> None:
    """:func:`_check_window` for every Conv, ConvTranspose, MaxPool and AveragePool node, with the
    shape of its weight where it is stored and the rank of its input where it is known."""
    stored = {t.name: [int(d) for d in t.dims] for t in graph.initializer}
    for k, n in enumerate(graph.node):
        if n.op_type in _WINDOW_OPS and n.domain in ("", "ai.onnx"):
            weight = stored.get(n.input[1]) if len(n.input) > 1 else None
            rank = ranks.get(n.input[0]) if n.input else None
            _check_window(n, _node_label(n, k), weight, rank or None)


#: ONNX's floating-point element types (FLOAT, DOUBLE, FLOAT16, BFLOAT16): a loss can be taken of these.
_FLOAT_ELEMS = frozenset({1, 11, 10, 16})


#: Ops whose outputs carry no gradient back to their inputs, whatever their type: random draws
#: (their value depends on an input's shape at most), shapes and sizes, and the integer or boolean
#: results of an index, a sample or a comparison. A tensor made only through them is a constant
#: to the loss.
_NO_GRADIENT_OPS = frozenset({
    "Constant", "RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike", "Bernoulli",
    "Multinomial", "Shape", "Size", "ConstantOfShape", "ArgMax", "ArgMin", "Less", "LessOrEqual",
    "Greater", "GreaterOrEqual", "Equal", "Not", "And", "Or", "Xor", "IsNaN", "IsInf", "NonZero",
    "Round", "Floor", "Ceil", "Sign"})
#: Ops whose (first) output is an index, a sample or a truth value made of a float tensor: the walk
#: back from a non-float output takes the loss at the float tensor they read (a policy's
#: ``Multinomial``/``ArgMax`` actions, a classifier's ``ArgMax`` label, ``TopK``'s indices).
_DISCRETE_OPS = frozenset({"ArgMax", "ArgMin", "Multinomial", "TopK", "Less", "LessOrEqual", "Greater",
                           "GreaterOrEqual", "Equal", "Round", "Floor", "Ceil", "Sign", "Cast"})
#: Ops a loss on logits reads through: the loss is taken at their input, the logits a softmax
#: makes probabilities of (a policy samples ``Multinomial(Log(Softmax(z)))``, acts ``ArgMax(Softmax(z))``).
_TO_PROBABILITIES = frozenset({"Softmax", "LogSoftmax", "Log"})
#: The name of the tensor the check adds where the loss reads several heads' logits at once.
JOINED_LOGITS = "gradhealth#logits"


def _computed(graph: Any, gradient: bool = True) -> set[str]:
    """The tensors a gradient can flow along from a graph input (not an initializer): those a node
    makes of at least one such tensor, other than through :data:`_NO_GRADIENT_OPS`. The rest
    (initializers, Constant nodes and what is made of them alone, random draws, shapes, indices)
    are constants to the loss. ``gradient=False``: every tensor made of an input at all (an action
    sampled from the logits too), but for Constant nodes. The graph is in topological order
    (:func:`check_structure`)."""
    init = {t.name for t in graph.initializer}
    live = {i.name for i in graph.input if i.name not in init}
    for n in graph.node:
        if n.op_type == "Constant" or gradient and n.op_type in _NO_GRADIENT_OPS:
            continue
        if any(i in live for i in n.input if i):
            live.update(o for o in n.output if o)
    return live


def _float_tensors(graph: Any) -> dict[str, bool]:
    """Whether each tensor of ``graph`` is a floating-point one, where it can be told: from a
    declared type (graph inputs, outputs, value_info, initializers), else from the op that makes it
    (a comparison's bool, an index's int64, a Cast's ``to``; an op of float inputs otherwise)."""
    known: dict[str, bool] = {}
    for v in (*graph.input, *graph.value_info, *graph.output):
        if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type:
            known[v.name] = v.type.tensor_type.elem_type in _FLOAT_ELEMS
    for t in graph.initializer:
        known[t.name] = t.data_type in _FLOAT_ELEMS
    for n in graph.node:
        outs = [o for o in n.output if o and o not in known]
        if not outs:
            continue
        if n.op_type == "Cast":
            to = next((a.i for a in n.attribute if a.name == "to"), 0)
            value = to in _FLOAT_ELEMS
        elif n.op_type == "Constant":
            t = next((a.t for a in n.attribute if a.name == "value" and a.HasField("t")), None)
            value = t is not None and t.data_type in _FLOAT_ELEMS or any(
                a.name in ("value_float", "value_floats") for a in n.attribute)
        elif n.op_type in ("ArgMax", "ArgMin", "Multinomial", "Shape", "Size", "NonZero", "Less", "LessOrEqual",
                           "Greater", "GreaterOrEqual", "Equal", "Not", "And", "Or", "Xor", "IsNaN", "IsInf"):
            value = False
        elif n.op_type == "TopK":
            known[n.output[0]] = known.get(n.input[0], True) if n.input else True
            if len(n.output) > 1 and n.output[1]:
                known[n.output[1]] = False
            continue
        else:
            reads = [known[i] for i in n.input if i in known]
            value = reads[0] if reads else True
        for o in outs:
            known[o] = value
    return known


def _logits_of(name: str, producer: dict[str, Any], computed: set[str]) -> str:
    """``name``, or the logits it was made of through :data:`_TO_PROBABILITIES` (``Log(Softmax(z))``
    gives z): a loss on logits, as the check takes its cross-entropy, reads them there."""
    while True:
        n = producer.get(name)
        if n is None or n.op_type not in _TO_PROBABILITIES or not n.input or n.input[0] not in computed:
            return name
        name = n.input[0]


#: Ops an output is post-processed with for display (``uint8(255 * sigmoid(x)[0])``), read back past
#: to the model's own output: a rescale or shift by a constant, a clip to the display range, a
#: layout change, and a pick of samples along the batch axis (:func:`_batch_pick`).
_DISPLAY_SCALE_OPS = frozenset({"Mul", "Div", "Add", "Sub", "Neg"})
_DISPLAY_LAYOUT_OPS = frozenset({"Clip", "Identity", "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten"})
#: The ops that make a layer of stored weights: a walk back for a pick of the batch axis ends there.
_LAYER_OPS = frozenset({"MatMul", "Gemm", "Conv", "ConvTranspose", "LSTM", "GRU", "RNN", "Einsum"})


@dataclass
class DisplayTail:
    """How a floating-point tensor read by a Cast to an integer (or a rounding) was read back past
    display post-processing (:func:`_display_source`): the tensor it starts from, the ops passed
    (``Mul by a constant``, ``Gather of sample 0 along the batch axis``), and, where the batch axis is
    picked before the output's activation, the node that picks it and the tensor it picks from."""
    start: str
    passed: list[str]
    lost_at: str | None = None
    lost_from: str | None = None


def _batch_pick(n: Any, computed: set[str], known: dict[str, np.ndarray]) -> str | None:
    """``Gather of sample 0 along the batch axis``: where node ``n`` keeps some samples of axis 0 (the
    batch axis every exporter puts first) at constant indices, dropping the axis or narrowing it
    (Gather, Slice, Squeeze of axis 0); None otherwise."""
    if not n.input or n.input[0] not in computed or any(i in computed for i in n.input[1:] if i):
        return None
    if n.op_type == "Gather" and int(_attr(n, "axis") or 0) == 0:
        index = _input(n, 1, known)
        which = (f"sample {int(index[0])}" if index is not None and index.size == 1
                 else "samples")
        return f"Gather of {which} along the batch axis"
    if n.op_type == "Slice":
        if len(n.input) > 3 and n.input[3]:
            axes = _input(n, 3, known)
            axes_list = [int(a) for a in axes] if axes is not None else []
        else:  # (opset < 10's attribute; none at all: the first len(starts) axes, axis 0 among them)
            axes_list = [int(a) for a in (_attr(n, "axes") or [0])]
        if 0 in axes_list:
            return "Slice along the batch axis"
    if n.op_type == "Squeeze":
        axes = _input(n, 1, known) if len(n.input) > 1 else None
        axes_list = [int(a) for a in axes] if axes is not None else list(_attr(n, "axes") or [])
        if 0 in axes_list:
            return "Squeeze of the batch axis"
    return None


def _display_op(n: Any, computed: set[str], known: dict[str, np.ndarray]) -> str | None:
    """What node ``n`` is as display post-processing of its one computed input (``Mul by a constant``,
    ``Clip``, a pick of the batch axis), else None (a layer, an activation, an op of two computed inputs)."""
    reads = [i for i in n.input if i and i in computed]
    if len(reads) != 1:
        return None
    if n.op_type in _DISPLAY_SCALE_OPS:
        # a rescale or shift: x * c, x / c, x + c, c - x (not c / x, which is no rescale)
        if n.op_type == "Div" and n.input[0] != reads[0]:
            return None
        return f"{n.op_type} by a constant" if n.op_type != "Neg" else "Neg"
    if n.op_type in _DISPLAY_LAYOUT_OPS and n.input[0] == reads[0]:
        return _batch_pick(n, computed, known) or n.op_type
    return _batch_pick(n, computed, known)


def _display_source(name: str, producer: dict[str, Any], computed: set[str],
                    known: dict[str, np.ndarray]) -> DisplayTail:
    """The tensor a loss is taken at for ``name``, the float tensor a Cast to an integer (or a
    rounding) reads: walking back past display post-processing (:func:`_display_op`: ``255 *``, a
    clip, a pick of sample 0 along the batch axis, a reshape) to the last tensor that still carries the
    batch axis and the model's own output activation (onnxsweep25: a decoder's canvas image
    ``uint8(255 * sigmoid(x)[0])`` was taken at ``255 * sigmoid(x)[0]``, which has no batch axis and a
    x255 scale; a binary cross-entropy there gave a gradient of 3e21). Where the batch axis is picked
    before the activation, no tensor has both: ``lost_at`` names the node that picks it."""
    passed: list[str] = []
    start = name
    while (n := producer.get(start)) is not None and (what := _display_op(n, computed, known)) is not None:
        passed.append(what)
        start = next(i for i in n.input if i and i in computed)
    tail = DisplayTail(start, passed)
    # a pick of the batch axis upstream of the tensor found, before any layer: the activation came after it
    todo, seen = [start], set()
    while todo:
        t = todo.pop(0)
        n = producer.get(t)
        if t in seen or n is None or n.op_type in _LAYER_OPS:
            continue
        seen.add(t)
        if _batch_pick(n, computed, known) is not None:
            tail.lost_at, tail.lost_from = (n.name or n.op_type), n.input[0]
            break
        todo.extend(i for i in n.input if i and i in computed)
    return tail


def _float_sources(name: str, producer: dict[str, Any], computed: set[str], floats: dict[str, bool],
                   reached: set[str], known: dict[str, np.ndarray] | None = None,
                   tails: dict[str, DisplayTail] | None = None) -> list[str]:
    """The last floating-point tensors that feed the non-float tensor ``name``: walking back through
    what only moves indices (Concat, Reshape, Squeeze...) to each op of :data:`_DISCRETE_OPS` and the
    computed float tensor it reads, taken at the logits (:func:`_logits_of`). In graph order, once each.
    With ``known`` (:func:`_known_values`), a float tensor a Cast or a rounding reads is first read back
    past display post-processing (:func:`_display_source`), each such walk put in ``tails`` by the
    tensor found."""
    found: list[str] = []

    def follow(n: Any) -> list[str]:
        reads = [i for i in n.input if i and i in reached]
        if n.op_type not in _DISCRETE_OPS:
            return reads
        onward = []
        for i in reads:
            if floats.get(i, True) and i in producer and i in computed:  # (an input itself feeds no layer)
                if known is not None and n.op_type in ("Cast", "Round", "Floor", "Ceil"):
                    tail = _display_source(i, producer, computed, known)
                    if tail.passed or tail.lost_at:
                        if tails is not None:
                            tails[tail.start] = tail
                        i = tail.start
                logits = _logits_of(i, producer, computed)
                if logits not in found:
                    found.append(logits)
            else:
                onward.append(i)
        return onward

    _walk_back(name, producer, follow)
    return found


def _walk_back(name: str, producer: dict[str, Any], follow: Callable[[Any], Iterable[str]]) -> None:
    """Visit the node that makes ``name``, then those making the tensors ``follow(node)`` names of each
    node visited, breadth first, each node once (graph inputs and stored tensors have none)."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        t = todo.pop(0)
        if t in seen or t not in producer:
            continue
        seen.add(t)
        todo.extend(follow(producer[t]))


#: Ops that draw random values: an action sampled around a policy's mean (``mu + sigma * noise``).
RANDOM_OPS = frozenset({"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike"})
#: Ops a noise term is made with while it stays ``scale * noise + shift`` (affine in the draw): a
#: Gaussian's ``exp(log_std) * RandomNormalLike(mu)``, torch's ``normal(zeros, ones)`` as
#: ``RandomNormalLike(zeros) * ones + zeros``.
_AFFINE_NOISE_OPS = frozenset({"Mul", "Div", "Add", "Sub", "Neg", "Expand", "Reshape", "Identity", "Cast",
                               "Unsqueeze", "Squeeze", "Flatten", "Tile"})
#: Ops a sampled action goes through on its way out, read back to the sample (a clip to the action
#: range, a rescale by a constant, SAC's tanh squash, a reshape).
_SAMPLE_TAIL_OPS = frozenset({"Clip", "Mul", "Div", "Add", "Sub", "Neg", "Tanh", "Reshape", "Identity", "Cast",
                              "Unsqueeze", "Squeeze", "Flatten", "Concat"})


def _noisy(graph: Any) -> set[str]:
    """Every tensor made, through any op, of a random draw (:data:`RANDOM_OPS`)."""
    noisy: set[str] = set()
    for n in graph.node:
        if n.op_type in RANDOM_OPS and n.domain in ("", "ai.onnx") or any(i in noisy for i in n.input if i):
            noisy.update(o for o in n.output if o)
    return noisy


def _affine_noise(name: str, producer: dict[str, Any], noisy: set[str]) -> bool:
    """Whether the noisy tensor ``name`` is a draw scaled and shifted by tensors that are no draw
    themselves (``sigma * eps``): walked back through :data:`_AFFINE_NOISE_OPS` to random ops only."""
    todo, seen = [name], set()
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        n = producer.get(t)
        if n is None:
            return False
        if n.op_type in RANDOM_OPS:
            continue
        reads = [i for i in n.input if i and i in noisy]
        if n.op_type not in _AFFINE_NOISE_OPS or not reads:
            return False
        # a product of two draws, a division by one, a shape made of one: no longer scale * noise
        if n.op_type == "Mul" and len(reads) > 1 or n.op_type not in ("Mul", "Add", "Sub") and reads != [n.input[0]]:
            return False
        todo.extend(reads)
    return True


def _through_broadcast(name: str, producer: dict[str, Any], computed: set[str]) -> str:
    """``name``, or the computed tensor an Expand or Identity only broadcasts or renames (SB3's
    ``Expand(action_net(x))``)."""
    while True:
        n = producer.get(name)
        if n is None or n.op_type not in ("Expand", "Identity") or not n.input or n.input[0] not in computed:
            return name
        name = n.input[0]


def sampled_means(graph: Any, name: str, producer: dict[str, Any] | None = None,
                  computed: set[str] | None = None) -> tuple[list[str], list[str]] | None:
    """Where ``name`` is a sample drawn around a mean (a continuous policy's action,
    ``Clip(mu + exp(log_sigma) * RandomNormalLike(mu))``): (the means, the random nodes' labels),
    walking back from ``name`` through the action's tail (:data:`_SAMPLE_TAIL_OPS`: a clip, a
    rescale, a tanh) to each ``mean + noise`` (an Add, or a Sub of the noise) whose noise is a draw
    scaled and shifted by what is no draw (:func:`_affine_noise`) and whose other operand carries a
    gradient: the deterministic action, which the policy gradient trains through the mean. None
    where ``name`` depends on no random op, or on one it cannot follow back so (a sample fed on
    through a layer, a Gumbel noise's logs); the random op is then refused (:func:`noise_hint`)."""
    noisy = _noisy(graph)
    if name not in noisy:
        return None
    producer = producer if producer is not None else {o: n for n in graph.node for o in n.output if o}
    computed = computed if computed is not None else _computed(graph)
    means: list[str] = []
    todo, seen = [name], set()
    while todo:
        t = todo.pop(0)
        if t in seen:
            continue
        seen.add(t)
        n = producer.get(t)
        if n is None or n.op_type in RANDOM_OPS:
            return None  # the draw itself, with no mean added to it
        reads = [i for i in n.input if i and i in noisy]
        others = [i for i in n.input if i and i not in noisy]
        if n.op_type in ("Add", "Sub") and len(reads) == 1 and len(others) == 1 and others[0] in computed \
                and (n.op_type == "Add" or n.input[1] == reads[0]):
            if not _affine_noise(reads[0], producer, noisy):
                return None
            mean = _through_broadcast(others[0], producer, computed)
            if mean not in means:
                means.append(mean)
        elif n.op_type in _SAMPLE_TAIL_OPS and reads and (n.op_type in ("Concat", "Clip") or len(reads) == 1):
            todo.extend(reads)
        else:
            return None
    drawn = [_node_label(n, k) for k, n in enumerate(graph.node) if n.op_type in RANDOM_OPS
             and any(o in noisy for o in n.output)]
    return (means, drawn) if means else None


def noise_hint(graph: Any) -> str:
    """For a refusal of the random ops left in ``graph``: how to go on (``--loss-at``), naming the
    tensors that carry a gradient which the draws are combined with (a mean, a scale), else the
    tensors the draws are shaped like. Empty where no random op is left."""
    randoms = [n for n in graph.node if n.op_type in RANDOM_OPS]
    if not randoms:
        return ""
    noisy = _noisy(graph)
    computed = _computed(graph)
    means: list[str] = []
    scales: list[str] = []
    for n in graph.node:
        if n.op_type in RANDOM_OPS or not any(i in noisy for i in n.input if i):
            continue
        for i in n.input:
            if i and i not in noisy and i in computed:
                (means if n.op_type in ("Add", "Sub") else scales).append(i)
    shaped = [i for n in randoms for i in n.input if i and i in computed]
    candidates = list(dict.fromkeys(means + scales + shaped))
    named = ", ".join(repr(c) for c in candidates[:4]) + (" ..." if len(candidates) > 4 else "")
    where = ", ".join(f"{n.op_type} (node {n.name or '?'})" for n in randoms[:3])
    return (f"; {where} draws random values, which the check does not simulate, and the tensor the loss is "
            "taken at depends on them: take the loss before the draw with --loss-at TENSOR (`loss_at` over HTTP)"
            + (f", e.g. {named} (what the draw is combined with)" if candidates else ", a tensor computed "
               "before the draw (a policy's action mean)")
            + " (without --loss-at, an output sampled as mean + scale * noise is taken at its mean)"
            + _after_draw(graph, noisy))


def _after_draw(graph: Any, noisy: set[str]) -> str:
    """``; the 2 layers after the draw (a decoder: node ...) cannot be checked through it ...``:
    said where layers with stored weights read the draw (a VAE's decoder after its reparameterisation,
    onnxsweep23), since every --loss-at the refusal offers lies before it."""
    init = {t.name for t in graph.initializer}
    after = [n for n in graph.node if n.op_type not in RANDOM_OPS and any(i in noisy for i in n.input if i)
             and any(i in init for i in n.input[1:] if i)
             and n.op_type in ("MatMul", "Gemm", "Conv", "ConvTranspose", "LSTM", "GRU", "RNN", "Einsum")]
    if not after:
        return ""
    shown = ", ".join(n.name or n.op_type for n in after[:3]) + (" ..." if len(after) > 3 else "")
    return (f"; the {len(after)} layer(s) after the draw ({shown}, a decoder) cannot be checked through it: "
            "every such tensor is before them; to check them, export them as a model of their own (the "
            "decoder, taking the sampled latent as its input) and check that file too")


def _outputs_listed(graph: Any) -> str:
    return ", ".join(repr(o.name) for o in graph.output[:8]) + (" ..." if len(graph.output) > 8 else "")


def check_outputs(graph: Any, output: str | None = None) -> tuple[list[str], str | None]:
    """:func:`_choose_outputs`' tensors and note."""
    chosen, note, _ = _choose_outputs(graph, output)
    return chosen, note


def _choose_outputs(graph: Any, output: str | None = None) -> tuple[list[str], str | None, bool]:
    """The tensors the check takes its loss of, and a note saying where when the check chose a
    tensor that is not the first graph output (None otherwise). Several are joined into one
    (:func:`join_logits`).

    ``output``: the user's choice (``--loss-at NAME``), a graph output or any value a node computes;
    refused (:class:`ModelError`) when no tensor has that name (listing the graph's outputs), when
    no gradient reaches a layer from it (an input, an initializer, a constant) or it is no
    floating-point tensor. Otherwise the first graph output that is a floating-point tensor computed
    from the inputs (initializers, Constant nodes and what is made of them alone are never the
    loss's), or the tensor a ``ZipMap`` (``ai.onnx.ml``) turns into a sequence of maps, and of a
    binary classifier's two columns ``[1 - p, p]`` the ``p`` (:func:`_binary_probability`). Every
    skl2onnx classifier lists its int64 label first and its probabilities second (onnxsweep11).
    Where no output is such a tensor, the computed outputs that are indices, samples or truth values
    (ArgMax, TopK's indices, Multinomial, a comparison, a Cast to an integer) are walked back to
    the floating-point tensors they are made of, taken at the logits a Softmax reads
    (:func:`_float_sources`): a policy's actions to its action logits (onnxsweep14: Unity ML-Agents
    brains, whose float outputs are constants and whose actions are Multinomial/ArgMax samples).
    A float output sampled around a mean (a continuous policy's ``mu + sigma * RandomNormalLike``)
    is taken at the mean (:func:`sampled_means`, onnxsweep15). The third value: whether it was."""
    producer = {o: n for n in graph.node for o in n.output if o}
    computed = _computed(graph)
    reached = _computed(graph, gradient=False)
    floats = _float_tensors(graph)
    if output is not None:
        init = {t.name for t in graph.initializer}
        inputs = {i.name for i in graph.input if i.name not in init}
        if output not in producer and output not in init and output not in inputs:
            raise ModelError(f"loss_at {output!r}: the graph has no tensor of that name; its outputs are "
                             f"{_outputs_listed(graph)} (any value a node computes may be named too)", parameter="loss_at")
        if output in reached and output not in inputs and (output not in computed or not floats.get(output, True)):
            sources = _float_sources(output, producer, computed, floats, reached)
            hint = f"; the floating-point tensor it is made of is {sources[0]!r}" if sources else ""
            raise ModelError(f"loss_at {output!r} is no floating-point tensor with a gradient (an index, a sample "
                             f"or a truth value), and no loss has a gradient there{hint}", parameter="loss_at")
        if output not in computed:
            what = ("a graph input" if output in inputs else "an initializer" if output in init
                    else "made of constants alone (initializers, Constant nodes)")
            raise ModelError(f"loss_at {output!r} is {what}: no gradient would reach any layer from it; "
                             f"name a tensor computed from the inputs (the graph's outputs are {_outputs_listed(graph)})", parameter="loss_at")
        return [output], (None if graph.output and graph.output[0].name == output
                          else f"the loss is taken at {output!r}, as asked"), False
    if not graph.output:
        raise ModelError("the graph has no output: the check takes its loss of the first graph output")
    problem: str | None = None
    constants: list[str] = []
    discrete: list[str] = []
    for out in graph.output:
        if not out.type.HasField("tensor_type") and out.type.WhichOneof("value") is not None:
            zipmap = producer.get(out.name)
            if zipmap is not None and zipmap.op_type == "ZipMap" and zipmap.input and zipmap.input[0] in producer:
                return [_binary_probability(graph, zipmap.input[0], producer)], None, False
            problem = problem or (f"graph output {out.name!r} is a {out.type.WhichOneof('value').replace('_type', '')}, "
                                  "not a tensor")
            continue
        if out.name not in reached or out.name not in producer:  # (an input passed through: no layer)
            constants.append(out.name)
            continue
        elem = out.type.tensor_type.elem_type if out.type.HasField("tensor_type") else 0
        if elem and elem not in _FLOAT_ELEMS or not floats.get(out.name, True) or out.name not in computed:
            discrete.append(out.name)
            continue
        sampled = sampled_means(graph, out.name, producer, computed)
        if sampled is not None:
            # a continuous policy's action, drawn around its mean: the loss at the mean, as the policy
            # gradient's mean path trains it, the draw (no op the check simulates) dropped (onnxsweep15:
            # ML-Agents' Walker and SB3's Gaussian PPO were refused for their RandomNormalLike)
            means, drawn = sampled
            shown = ", ".join(repr(m) for m in means)
            return means, (f"graph output {out.name!r} is an action sampled around a mean (mean + scale * noise, "
                           f"drawn by {', '.join(drawn[:3])}); the loss is taken at the mean {shown}, the "
                           "deterministic action, as the policy gradient trains it through the mean, and the "
                           "sampling branch is dropped"
                           f"{' (joined along the last axis, one head each)' if len(means) > 1 else ''}; "
                           "--loss-at NAME chooses another"), True
        name = _binary_probability(graph, out.name, producer)
        first = graph.output[0].name == out.name
        return [name], (None if first else f"the loss is taken at graph output {out.name!r}, the first "
                        "floating-point one computed from the inputs"), False
    known = _known_values(graph) if discrete else {}
    for out in discrete:
        tails: dict[str, DisplayTail] = {}
        sources = _float_sources(out, producer, computed, floats, reached, known, tails)
        lost = [tails[s] for s in sources if s in tails and tails[s].lost_at]
        if lost:
            t = lost[0]
            made = producer[t.start].op_type if t.start in producer else "?"
            raise ModelError(
                f"graph output {out!r} is {_elem_name(graph, out, floats, producer, reached)}, display "
                f"post-processing of the model's output ({_passed(t.passed)}, then {_cut_ops(out, producer, reached)}); "
                f"read back past it, the loss would be at {t.start!r} ({made}), but node {t.lost_at} keeps only "
                f"some samples of the batch axis before it, so no tensor carries both the batch axis and the output's "
                f"activation for a loss to be taken at: name the tensor to take it at with --loss-at NAME (`loss_at` "
                f"over HTTP), e.g. {t.lost_from!r} (before the pick, the batch kept; the layers after it are then "
                "not checked), or export the model without the display tail")
        if sources:
            shown = ", ".join(repr(s) for s in sources)
            made = next((n.op_type for n in graph.node if sources[0] in n.input and n.op_type in _TO_PROBABILITIES), "")
            walked = [tails[s] for s in sources if s in tails]
            if walked and len(sources) == 1:
                last = producer[sources[0]].op_type if sources[0] in producer else "?"
                own = f"the logits of the model's own {made}" if made else f"the model's own output (its {last})"
                return sources, (f"no graph output is a floating-point tensor computed from the inputs ({out!r} is "
                                 f"{_elem_name(graph, out, floats, producer, reached)}); the loss is taken at {shown}, "
                                 f"{own}, batch axis and activation kept: {out!r} is "
                                 f"display post-processing of it ({_passed(walked[0].passed)}, then "
                                 f"{_cut_ops(out, producer, reached)}), and a loss on that post-processed tensor "
                                 "would not be the one the model was trained with; --loss-at NAME chooses another"), False
            return sources, (f"no graph output is a floating-point tensor computed from the inputs ({out!r} is "
                             f"{_elem_name(graph, out, floats, producer, reached)}); the loss is taken at {shown}, the "
                             f"{'logits' if made in ('Softmax', 'LogSoftmax', 'Log') else 'floating-point tensor'} "
                             f"that {out!r} is computed from (through {_cut_ops(out, producer, reached)})"
                             f"{' (joined along the last axis, one head each)' if len(sources) > 1 else ''}; "
                             "--loss-at NAME chooses another"), False
    for out in graph.output:
        # no tensor a gradient reaches: as before, the first float output a node other than a
        # Constant makes (a single op's output, a constant-sized tensor), whose check then says what
        # reaches no layer; never an initializer or a Constant's value
        n = producer.get(out.name)
        elem = out.type.tensor_type.elem_type if out.type.HasField("tensor_type") else -1
        if n is not None and n.op_type != "Constant" and (elem == 0 or elem in _FLOAT_ELEMS):
            return [_binary_probability(graph, out.name, producer)], None, False
    init = {t.name for t in graph.initializer}
    said = []
    for out in constants[:3]:
        what = ("a graph input that no node computes" if out in {i.name for i in graph.input} and out not in init
                else "an initializer that no node computes" if out not in producer
                else f"made of constants alone ({producer[out].op_type} of initializers or Constant nodes, or "
                     "of an op that passes no gradient)")
        said.append(f"graph output {out!r} is {what}, and no gradient would reach any layer from it")
    for out in discrete[:3]:
        said.append(f"graph output {out!r} is {_elem_name(graph, out, floats, producer, reached)}, and no floating-point "
                    "tensor a node computes from the inputs feeds it")
    if problem:
        said.append(problem)
    raise ModelError(f"{'; '.join(said)}: the check takes its loss at a floating-point tensor computed from the "
                     "inputs, and no graph output is one or is made of one; name the tensor to take it at with "
                     "--loss-at NAME (`loss_at` over HTTP), a graph output or an internal value (a layer's logits)")


def _passed(ops: list[str]) -> str:
    """The display ops a walk back passed, in graph order (``Gather of sample 0 along the batch axis,
    Mul by a constant``), each once."""
    return ", ".join(dict.fromkeys(reversed(ops))) or "none"


def _named_list(names: list[str], most: int = 4) -> str:
    shown = ", ".join(repr(n) for n in names[:most])
    return f"graph output {shown}" if len(names) == 1 else f"graph outputs {shown}" + (" ..." if len(names) > most else "")


def _cut_ops(name: str, producer: dict[str, Any], reached: set[str]) -> str:
    """``ArgMax, Equal and Cast, which pass no gradient``: the ops of :data:`_DISCRETE_OPS` between
    ``name`` and the floating-point tensors it is made of, in the order met walking back (a TF1
    graph's ``accuracy:0``, ReduceMean(Cast(Equal(ArgMax, ArgMax))), read "sampled or indexed" before)."""
    ops: list[str] = []

    def follow(n: Any) -> list[str]:
        if n.op_type in _DISCRETE_OPS and n.op_type not in ops:
            ops.append(n.op_type)
        return [i for i in n.input if i and i in reached]

    _walk_back(name, producer, follow)
    if not ops:
        return "ops that pass no gradient"
    shown = ops[0] if len(ops) == 1 else f"{', '.join(ops[:-1])} and {ops[-1]}"
    return f"{shown}, which pass{'es' if len(ops) == 1 else ''} no gradient"


def _elem_name(graph: Any, name: str, floats: dict[str, bool], producer: dict[str, Any] | None = None,
               reached: set[str] | None = None) -> str:
    import onnx

    out = next((o for o in graph.output if o.name == name), None)
    elem = out.type.tensor_type.elem_type if out is not None and out.type.HasField("tensor_type") else 0
    if elem and elem in onnx.TensorProto.DataType.values() and elem not in _FLOAT_ELEMS:
        return "declared " + onnx.TensorProto.DataType.Name(elem)
    if producer is not None and reached is not None:
        # what was found, not a guess at it: a float metric made through comparisons has no gradient
        return f"a tensor made through {_cut_ops(name, producer, reached)}"
    return "no floating-point tensor with a gradient (a sample, an index or a truth value)"


def join_logits(graph: Any, names: list[str]) -> str:
    """The one tensor the loss is taken of: ``names[0]``, or where the walk back found several (a
    policy's branches, each its own softmax) a Concat of them along the last axis that the check adds
    (:data:`JOINED_LOGITS`), so the loss reaches every head."""
    import onnx

    if len(names) == 1:
        return names[0]
    graph.node.append(onnx.helper.make_node("Concat", list(names), [JOINED_LOGITS], name=JOINED_LOGITS, axis=-1))
    return JOINED_LOGITS


def _scalar_one(graph: Any, name: str, producer: dict[str, Any]) -> bool:
    """Whether ``name`` is a stored or Constant tensor holding the single value 1."""
    from onnx import numpy_helper

    tensor = next((t for t in graph.initializer if t.name == name), None)
    node = producer.get(name)
    if tensor is None and node is not None and node.op_type == "Constant":
        tensor = next((a.t for a in node.attribute if a.name == "value" and a.HasField("t")), None)
    if tensor is None or elements(tensor.dims) != 1:
        return False
    try:
        return bool(float(numpy_helper.to_array(tensor).reshape(-1)[0]) == 1.0)
    except (ValueError, TypeError):
        return False


def _binary_probability(graph: Any, name: str, producer: dict[str, Any]) -> str:
    """``p`` where ``name`` is ``Concat([1 - p, p], axis=-1)``, the two columns a binary classifier's
    probabilities are written as (skl2onnx does so for every binary classifier): the loss is then the
    binary cross-entropy of ``p``'s sigmoid, as the classifier was trained (a cross-entropy over the two
    columns would read probabilities as logits); ``name`` otherwise."""
    concat = producer.get(name)
    if concat is None or concat.op_type != "Concat" or len(concat.input) != 2:
        return name
    axis = next((a.i for a in concat.attribute if a.name == "axis"), None)
    if axis not in (1, -1):
        return name
    sub = producer.get(concat.input[0])
    p = concat.input[1]
    if (sub is None or sub.op_type != "Sub" or len(sub.input) != 2 or sub.input[1] != p
            or not _scalar_one(graph, sub.input[0], producer)):
        return name
    return p


#: The most bytes the dense forms of a file's sparse initializers may take together. A sparse tensor
#: is a compression (20 bytes can declare 2e8 values), and the dense form is allocated at submission
#: in the API process, so it is bounded as a moderate upload is, below the 800 MB of float32 values
#: the parameter limit (2e8) allows.
MAX_SPARSE_DENSE_BYTES = 256 << 20


def densify_sparse(graph: Any, limits: Limits) -> None:
    """Replace, in place, each of the graph's ``sparse_initializer`` entries (ONNX SparseTensorProto:
    ``values`` of NNZ elements at ``indices``, either NNZ linear positions or an [NNZ, rank] table of
    coordinates, in a tensor of ``dims``) by the dense initializer it stands for. Refused by name
    (:class:`ModelError`): a negative dimension, indices that are not integers, of another count than
    the values or outside the dims, a position given twice; dims declaring more values than
    :attr:`Limits.max_parameters` (:class:`LimitExceeded`, from the dims alone, before anything is
    allocated)."""
    if not len(graph.sparse_initializer):
        return
    from onnx import numpy_helper

    dense = []
    total = 0
    for st in graph.sparse_initializer:
        name = st.values.name or "(unnamed)"
        dims = [int(d) for d in st.dims]
        where = f"sparse initializer {name!r} (dims {dims})"
        if any(d < 0 for d in dims):
            raise ModelError(f"{where}: a negative dimension")
        count = elements(dims)
        if count > limits.max_parameters:
            raise LimitExceeded(f"{where} declares {count} values, over the parameter limit of "
                                f"{limits.max_parameters} (GRADHEALTH_LIMITS__MAX_PARAMETERS)")
        if any(t.data_location == 1 for t in (st.values, st.indices)):
            raise ModelError(f"{where}: its values or indices are stored outside the file as external data, "
                             "and the check does not follow file references")
        try:
            values = np.asarray(numpy_helper.to_array(st.values)).reshape(-1)
            indices = np.asarray(numpy_helper.to_array(st.indices))
        except (ValueError, TypeError, KeyError) as e:
            raise ModelError(f"{where}: its values or indices cannot be read ({e})") from None
        if indices.dtype.kind not in "iu":
            raise ModelError(f"{where}: its indices are {indices.dtype}, not integers")
        if indices.ndim == 2 and indices.shape[1] == len(dims) and len(dims) > 1:
            if ((indices < 0) | (indices >= np.asarray(dims))).any():
                raise ModelError(f"{where}: an index lies outside its dims")
            flat = np.ravel_multi_index(tuple(indices.T.astype(np.int64)), dims) if len(indices) else indices[:, 0]
        elif indices.ndim == 1:
            flat = indices.astype(np.int64)
            if ((flat < 0) | (flat >= count)).any():
                raise ModelError(f"{where}: an index lies outside its {count} values")
        else:
            raise ModelError(f"{where}: indices of shape {list(indices.shape)}: expected [NNZ] or [NNZ, {len(dims)}]")
        if len(flat) != len(values):
            raise ModelError(f"{where}: {len(flat)} indices for {len(values)} values")
        if len(np.unique(flat)) != len(flat):
            raise ModelError(f"{where}: a position is given twice")
        total += count * values.dtype.itemsize
        if total > MAX_SPARSE_DENSE_BYTES:
            raise LimitExceeded(f"{where}: the sparse initializers take {total} bytes as dense tensors, over the "
                                f"limit of {MAX_SPARSE_DENSE_BYTES} bytes; store large weights as dense initializers")
        full = np.zeros(count, dtype=values.dtype)
        full[flat] = values
        dense.append(numpy_helper.from_array(full.reshape(dims), st.values.name))
    del graph.sparse_initializer[:]
    graph.initializer.extend(dense)


def check_has_weights(graph: Any, folded: int = 0) -> None:
    """Refuse a graph (as :func:`read_header` leaves it: pruned to the loss's output, its Ifs
    folded, ``folded`` of them) whose output reads no stored floating-point tensor (an initializer or
    a Constant node's value): it has no weight, so there is no gradient to check. An If on a constant
    folded to ``Relu(x)`` (errsweep6) reached the job and failed with torch's "element 0 of tensors
    does not require grad". The model route runs it at submission and the check before simulating
    (not :func:`read_header`, which also reads weightless graphs for their shapes); the check then
    refuses a graph whose stored floats are all constants rather than weights, in the same words."""
    read = {i for n in graph.node for i in n.input if i}
    stored = [t for t in graph.initializer if t.name in read and t.data_type in FLOAT_ELEMENT_TYPES]
    constants = [n for n in graph.node if n.op_type == "Constant" and any(
        a.name in ("value", "sparse_value", "value_float", "value_floats") for a in n.attribute)]
    if not stored and not constants:
        ops = ", ".join(dict.fromkeys(n.op_type for n in graph.node)) or "none"
        ifs = (f", after {folded} If node(s) on constants and shapes folded to the branch they take" if folded
               else "")
        raise ModelError(f"the model has no weights: its output is computed from its inputs alone (ops: {ops}{ifs}), "
                         "with no stored floating-point tensor, so there is no gradient to check; export the "
                         "model with its parameters")


def prune_to(graph: Any, name: str) -> list[str]:
    """Keep, of ``graph``, the output ``name`` (:func:`check_outputs`' choice) and the nodes it depends
    on, before any op is checked: a label tail (ArgMax, ArrayFeatureExtractor, ZipMap, the label's
    Casts) or another head the loss never reads is neither simulated nor refused for its ops. The
    labels (``Op (node name)``) of the nodes dropped, in graph order."""
    import onnx

    producer = {o: k for k, n in enumerate(graph.node) for o in n.output if o}
    needed: set[int] = set()
    todo = [name]
    while todo:
        k = producer.get(todo.pop())
        if k is None or k in needed:
            continue
        needed.add(k)
        todo.extend(_node_reads(graph.node[k]))
    dropped = [_node_label(n, k) for k, n in enumerate(graph.node) if k not in needed]
    kept_output = next((o for o in graph.output if o.name == name), None)
    if kept_output is None:
        info = next((v for v in graph.value_info if v.name == name), None)
        kept_output = info if info is not None and info.type.HasField("tensor_type") else \
            onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
    output = onnx.ValueInfoProto()
    output.CopyFrom(kept_output)
    if dropped:
        kept = []
        for k, n in enumerate(graph.node):
            if k in needed:
                copy = onnx.NodeProto()
                copy.CopyFrom(n)
                kept.append(copy)
        del graph.node[:]
        graph.node.extend(kept)
    if len(graph.output) != 1 or graph.output[0].name != name:
        del graph.output[:]
        graph.output.append(output)
    return dropped


def check_stored_values(graph: Any, parameters: int, limits: Limits) -> None:
    """Refuse (:class:`LimitExceeded`) a graph whose stored tensors, the initializers
    (``parameters``) and the tensors in node attributes (a Constant's value) together, declare more
    values than :attr:`Limits.max_parameters`, from their dims alone (:func:`elements`: exact), before
    the data of any is read: the worker makes each a float32 or int64 array, so a packed INT4
    constant would take sixteen times its bytes (errsweep3 F2)."""
    held: list[tuple[str, int]] = []
    for k, n in enumerate(graph.node):
        for a in n.attribute:
            for t in ([a.t] if a.HasField("t") else []) + list(a.tensors):
                if all(d >= 0 for d in t.dims):  # (a negative size is refused by name later)
                    held.append((f"node {_node_label(n, k)}, attribute {a.name!r}", elements(t.dims)))
    total = parameters + sum(count for _, count in held)
    if total > limits.max_parameters:
        where, count = max(held, key=lambda h: h[1])
        raise LimitExceeded(f"the model stores {total} values ({parameters} parameters, and constants in node "
                            f"attributes: {where} alone declares {count}), over the limit of "
                            f"{limits.max_parameters} (GRADHEALTH_LIMITS__MAX_PARAMETERS)")


#: Ops with an ``axis`` attribute over their first input, and how far past that input's rank r it
#: may reach: (low, high) allows -(r + low) to r - 1 + high (Flatten's axis may be r; OneHot's
#: counts in its output, one rank more).
_AXIS_RANGE: dict[str, tuple[int, int]] = {
    "Softmax": (0, 0), "LogSoftmax": (0, 0), "Concat": (0, 0), "Gather": (0, 0), "GatherElements": (0, 0),
    "ScatterElements": (0, 0), "Split": (0, 0), "ArgMax": (0, 0), "ArgMin": (0, 0), "TopK": (0, 0),
    "LayerNormalization": (0, 0), "Flatten": (0, 1), "OneHot": (1, 1),
}
#: Ops whose ``axes`` attribute (older opsets; newer ones take an input) lists axes of their first input.
_AXES_OPS = frozenset({"Squeeze", "Unsqueeze", "ReduceL1", "ReduceL2", "ReduceLogSumExp", "ReduceMax",
                       "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare"})


def check_axes(graph: Any, ranks: dict[str, int]) -> None:
    """Refuse (:class:`ModelError`, naming the node and the attribute) an ``axis``, ``axes`` or
    Transpose ``perm`` attribute out of range for the rank of the tensor it applies to, where that
    rank is known (``ranks``: declared or inferred); torch would raise an IndexError mid-simulation
    (errsweep E7: Softmax axis=99, Transpose perm=[5, 0]), or a modulo would silently pick another
    axis. Rank-0 inputs are left to the simulation."""
    import onnx

    for k, n in enumerate(graph.node):
        if not n.input or not n.input[0]:
            continue
        r = ranks.get(n.input[0])
        if r is None and n.op_type == "Concat":
            r = next((ranks[i] for i in n.input if i in ranks), None)
        if not r:
            continue
        where = f"node {_node_label(n, k)}"
        of = f"its input {n.input[0]!r} has rank {r}"
        for a in n.attribute:
            if n.op_type in _AXIS_RANGE and a.name == "axis":
                if a.type != onnx.AttributeProto.INT:
                    raise ModelError(f"{where}: attribute 'axis' must be an integer")
                low, high = _AXIS_RANGE[n.op_type]
                if not -(r + low) <= a.i <= r - 1 + high:
                    raise ModelError(f"{where}: axis {a.i} is out of range, {of} (axis -{r + low} to "
                                     f"{r - 1 + high})")
            elif n.op_type in _AXES_OPS and a.name == "axes":
                if a.type != onnx.AttributeProto.INTS:
                    raise ModelError(f"{where}: attribute 'axes' must be a list of integers")
                out = r + len(a.ints) if n.op_type == "Unsqueeze" else r
                bad = [int(x) for x in a.ints if not -out <= x <= out - 1]
                if bad:
                    raise ModelError(f"{where}: axes {list(a.ints)} has {bad[0]} out of range, {of} "
                                     f"(axes -{out} to {out - 1})")
            elif n.op_type == "Transpose" and a.name == "perm":
                if a.type != onnx.AttributeProto.INTS:
                    raise ModelError(f"{where}: attribute 'perm' must be a list of integers")
                perm = [int(x) for x in a.ints]
                if len(perm) != r or not all(-r <= x < r for x in perm) \
                        or sorted(x % r for x in perm) != list(range(r)):
                    raise ModelError(f"{where}: perm {perm} is not a permutation of the {r} axes of "
                                     f"its input {n.input[0]!r} (each of 0 to {r - 1} once)")


#: Ops whose output size is set by the values of their inputs, not by their shapes: a constant
#: argument can ask for any size at all from a file of a few bytes.
_SIZED_BY_VALUE = ("ConstantOfShape", "Expand", "Tile", "Range")
#: The largest stored integer tensor read as a value here (shapes, repeats and bounds are short).
_SMALL = 1 << 12
#: Bytes the estimate counts for a value: float64, and its gradient.
BYTES_PER_VALUE = 16
#: ONNX's integer element types (uint8 to uint64).
_INT_DATA = frozenset({2, 3, 4, 5, 6, 7, 12, 13})


def _known_values(graph: Any) -> dict[str, np.ndarray]:
    """Values known without running anything: small initializers, ``Constant`` nodes, and what
    ``Identity``, ``Cast``, ``Concat``, ``Reshape``, ``Squeeze`` and ``Unsqueeze`` make of them (the
    ways an exporter writes a shape), raveled: only the numbers matter to the sizes read from them."""
    from onnx import helper, numpy_helper

    values: dict[str, np.ndarray] = {}
    for t in graph.initializer:
        if elements(t.dims) <= _SMALL and t.data_location != 1:  # (not external data)
            try:
                values[t.name] = np.asarray(numpy_helper.to_array(t)).ravel()
            except Exception:  # a tensor whose data does not match its dims: read nothing from it
                continue
    for n in graph.node:
        ins = [i for i in n.input if i]
        try:
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value" and elements(a.t.dims) <= _SMALL:
                        values[n.output[0]] = np.asarray(numpy_helper.to_array(a.t)).ravel()
                    elif a.name in ("value_int", "value_ints", "value_float", "value_floats"):
                        values[n.output[0]] = np.asarray(helper.get_attribute_value(a)).ravel()
            elif n.op_type in ("Identity", "Cast", "Reshape", "Squeeze", "Unsqueeze") and ins \
                    and ins[0] in values:
                values[n.output[0]] = values[ins[0]]
            elif n.op_type == "Concat" and ins and all(i in values for i in ins):
                values[n.output[0]] = np.concatenate([values[i] for i in ins])
        except Exception:  # a malformed constant: nothing known from it
            continue
    return values


def value_sized_outputs(graph: Any, values: dict[str, np.ndarray]) -> list[tuple[str, str, int]]:
    """``(node, tensor, at least how many values)`` for each :data:`_SIZED_BY_VALUE` node whose
    arguments are known constants: ConstantOfShape's shape, Expand's shape (the output broadcasts to
    it at least), Tile's repeats (times its input where that is known), Range's count (``values``:
    :func:`_known_values` of the graph)."""
    out: list[tuple[str, str, int]] = []
    for k, n in enumerate(graph.node):
        ins = list(n.input)
        if n.op_type not in _SIZED_BY_VALUE or not n.output or not ins:
            continue
        count: int | None = None
        if n.op_type in ("ConstantOfShape", "Expand", "Tile"):
            arg = ins[0] if n.op_type == "ConstantOfShape" else (ins[1] if len(ins) > 1 else "")
            v = values.get(arg)
            if v is not None and v.size and np.issubdtype(v.dtype, np.integer) and (v >= 0).all():
                count = math.prod(int(d) for d in v)
                if n.op_type == "Tile" and ins[0] in values:
                    count *= int(values[ins[0]].size)
        elif len(ins) == 3 and all(i in values and values[i].size == 1 for i in ins):
            start, limit, delta = (float(values[i][0]) for i in ins)
            if delta != 0 and math.isfinite(start) and math.isfinite(limit) and math.isfinite(delta):
                count = max(math.ceil((limit - start) / delta), 0)
        if count is not None:
            out.append((_node_label(n, k), n.output[0], count))
    return out


def inline_external(data: bytes, folder: Path, max_bytes: int = 1 << 30) -> bytes:
    """``data`` with its external tensors read into it from files in ``folder`` (the file's own
    folder): torch's exporter writes the weights beside the model by default (``model.onnx.data``).
    Only a plain relative name inside ``folder`` is read (no absolute path, no ``..``, no link out
    of it), and at most ``max_bytes`` in all; anything else is left external, for the header to
    refuse by name. A file without external tensors comes back as it was."""
    import onnx

    model = parse(data)
    tensors = [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if not tensors:
        return data
    root = folder.resolve()
    total = len(data)
    refused: list[str] = []
    for t in tensors:
        info = {e.key: e.value for e in t.external_data}
        location = info.get("location", "")
        # (judged on the name first: a path that leaves the folder is not even looked up)
        if not location or Path(location).is_absolute() or ".." in Path(location).parts:
            refused.append(f"{t.name} at {location[:100]!r} (not a plain file name)")
            continue
        target = (root / location).resolve()
        if target.parent != root:
            refused.append(f"{t.name} at {location[:100]!r} (a link or folder out of the model's folder)")
            continue
        if not target.is_file():
            refused.append(f"{t.name} at {location[:100]!r} (no such file beside the model)")
            continue
        offset, length = int(info.get("offset", 0) or 0), info.get("length")
        size = int(length) if length else target.stat().st_size - offset
        total += size
        if offset < 0 or size < 0 or total > max_bytes:
            raise LimitExceeded(f"the model's external data is over {max_bytes} bytes")
        with target.open("rb") as fh:
            fh.seek(offset)
            raw = fh.read(size)
        if len(raw) != size:
            continue
        t.raw_data = raw
        del t.external_data[:]
        t.data_location = onnx.TensorProto.DEFAULT
    if refused:
        raise ModelError(f"{len(refused)} external tensor(s) cannot be read: {first_few(refused, 3)}; external "
                         "data is read only from files named plainly in the model's own folder")
    return bytes(model.SerializeToString())


def onnx_opset() -> int:
    """The newest default-domain opset the installed onnx package defines."""
    import onnx

    return int(onnx.defs.onnx_opset_version())


def _calls(nodes: Iterable[Any]) -> Iterable[Any]:
    """Every node of ``nodes`` and of the subgraphs (If branches, Loop bodies) in their attributes."""
    for n in nodes:
        yield n
        for a in n.attribute:
            if a.HasField("g"):
                yield from _calls(a.g.node)
            for g in a.graphs:
                yield from _calls(g.node)


def _function_plan(model: Any) -> tuple[dict[tuple[str, str], int], set[tuple[str, str]]]:
    """For the functions ``model`` defines (``model.functions``, by (domain, name)): how many
    nodes each one's calls expand to once inlined (functions it calls inlined too), for those that
    can be inlined; and those that cannot: a function that calls itself, directly or through
    others (ONNX forbids it), or calls one that does. Counted without inlining anything, so a file
    of functions calling functions twice over, 2^60 nodes inlined, is refused by its count."""
    defined = {(f.domain, f.name): f for f in model.functions}
    callees = {key: [(n.domain, n.op_type) for n in _calls(f.node)] for key, f in defined.items()}
    size: dict[tuple[str, str], int] = {}
    cyclic: set[tuple[str, str]] = set()
    state: dict[tuple[str, str], int] = {}  # 1: on the path being walked, 2: done
    for root in defined:  # depth-first, with a stack of its own: a chain of functions may be long
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(callees[root]))]
        while stack:
            key, it = stack[-1]
            callee = next(it, None)
            if callee is None:
                stack.pop()
                state[key] = 2
                inner = [c for c in callees[key] if c in defined]
                if key in cyclic or any(c in cyclic for c in inner):
                    cyclic.add(key)
                else:
                    size[key] = sum(size[c] if c in defined else 1 for c in callees[key])
            elif callee in defined and state.get(callee) == 1:  # a cycle: every function on it
                at = next(k for k, (on, _) in enumerate(stack) if on == callee)
                cyclic.update(on for on, _ in stack[at:])
            elif callee in defined and callee not in state:
                state[callee] = 1
                stack.append((callee, iter(callees[callee])))
    return size, cyclic


def inline_functions(model: Any, limits: Limits) -> int:
    """Inline the calls of the functions ``model`` defines (``model.functions``: onnxscript's, or
    ``torch.onnx.export(..., dynamo=True)`` keeping modules as functions) into its graph, in place,
    with ``onnx.inliner``: the file is then checked as the ops those functions are made of. A
    function that calls itself (directly or through others) is left a call, refused later by name
    as a function (:func:`function_hint`) unless the loss does not read it. The nodes the inlined
    graph would have are counted first and refused over the node limit (a file of functions each
    calling the one before twice is 2^n nodes). The count of calls inlined (0: nothing changed)."""
    if not len(model.functions):
        return 0
    size, cyclic = _function_plan(model)
    calls = [(n.domain, n.op_type) for n in _calls(model.graph.node)]
    inlinable = [key for key in size if key not in cyclic]
    called = [c for c in calls if c in size and c not in cyclic]
    if not called:
        return 0
    nodes = sum(size.get(c, 1) if c in size and c not in cyclic else 1 for c in calls)
    most = NODES_PER_UNIT * limits.max_units
    if nodes > most:
        shown = f"{nodes:,}" if nodes < 10**15 else f"about 10^{len(str(nodes)) - 1}"
        raise LimitExceeded(f"the graph's calls of the functions the file defines (model.functions) expand to "
                            f"{shown} nodes once inlined, over the limit of {most} ({NODES_PER_UNIT} per layer of "
                            f"the {limits.max_units}-layer limit, GRADHEALTH_LIMITS__MAX_UNITS)")
    import onnx.inliner

    # the inliner refuses a file with any recursive function, called or not: those are set aside
    # (their calls left as they are: onnx.inliner passes over a call of no function it holds)
    recursive = [f for f in model.functions if (f.domain, f.name) in cyclic]
    kept = [f for f in model.functions if (f.domain, f.name) not in cyclic]
    del model.functions[:]
    model.functions.extend(kept)
    try:
        inlined = onnx.inliner.inline_local_functions(model)
    except Exception as exc:  # (onnx's checker errors): refused in its words, naming the functions
        names = ", ".join(f"{d}::{n}" for d, n in inlinable[:NAMED_NODES])
        raise ModelError(f"the functions the file defines (model.functions: {names}) could not be inlined: "
                         f"{str(exc)[:300]}") from None
    inlined.functions.extend(recursive)
    model.CopyFrom(inlined)
    return len(called)


def function_hint(model: Any, missing: list[str]) -> str:
    """What to add to the unsupported-ops refusal where an op is a function the file defines
    (``model.functions``) that was not inlined (:func:`inline_functions`): it calls itself."""
    defined = {f"{f.domain}::{f.name}" for f in model.functions}
    named = [m.split(" (")[0] for m in missing if m.split(" (")[0] in defined]
    if not named:
        return ""
    return (f"; {', '.join(named)} {'is a function' if len(named) == 1 else 'are functions'} the file defines "
            "(model.functions), not an op: functions are inlined before the check, but one that calls itself "
            "(directly or through another function) cannot be, as ONNX forbids recursive functions; export the "
            "model without it")


def op_key(node: Any) -> str:
    """A node's op as :data:`SUPPORTED_OPS` and the interpreter's registry name it: the op type in
    the default domain, ``domain::Op`` in any other (``ai.onnx.ml::Scaler``)."""
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"


def unsupported(model: Any, supported: frozenset[str] | set[str] = SUPPORTED_OPS) -> list[str]:
    """``Op (node name)`` for each op the interpreter has no builder for, in the order met; an op of
    more than :data:`NAMED_NODES` nodes names that many and counts the rest (``ConvInteger (52 nodes:
    a, b, c and 49 more)``: onnxsweep23's quantised MobileNetV2 listed all 106 on one 8.8 KB line)."""
    nodes: dict[str, list[str]] = {}
    for n in model.graph.node:
        if op_key(n) not in supported:
            nodes.setdefault(op_key(n), []).append(n.name or "?")
    out = []
    for op, names in nodes.items():
        if len(names) == 1:
            out.append(f"{op} (node {names[0]})")
        elif len(names) <= NAMED_NODES:
            out.append(f"{op} ({len(names)} nodes: {', '.join(names)})")
        else:
            out.append(f"{op} ({len(names)} nodes: {', '.join(names[:NAMED_NODES])} and "
                       f"{len(names) - NAMED_NODES} more)")
    return out


#: The ops of a quantised graph: onnxruntime's static (QDQ pairs, QLinear*) and dynamic
#: (DynamicQuantizeLinear, MatMulInteger, ConvInteger) quantisation, a QAT export's fake-quant pairs,
#: and the com.microsoft fused kernels quantisation writes.
QUANTISED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger",
                           "ConvInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QGemm",
                           "QAttention", "QuantizeBFP", "DequantizeBFP"})


def _quantised(op: str) -> bool:
    return op in QUANTISED_OPS or op.startswith("QLinear")


def quantised_hint(graph: Any, supported: frozenset[str] | set[str] = SUPPORTED_OPS) -> str:
    """For a refusal naming a quantised graph's ops (:data:`QUANTISED_OPS`, ``QLinear*``): what to
    check instead and why (onnxsweep24: a QDQ export and a quantize_dynamic file were refused naming
    only their ops). Empty where no unsupported op is a quantisation's."""
    ops = [n.op_type for n in graph.node if op_key(n) not in supported and _quantised(n.op_type)]
    if not ops:
        return ""
    return ("; this is a quantised graph (" + ", ".join(dict.fromkeys(ops)) + "): its weights and activations "
            "are rounded to integers, and rounding has no gradient (training through it, as quantisation-aware "
            "training does, passes the float model's gradient straight through), so the gradients to check are "
            "the float model's: check the model from before quantisation (the ONNX export before "
            "onnxruntime's quantize_dynamic or quantize_static, or a quantisation-aware model exported "
            "with its fake quantisation disabled or before convert)")


#: scikit-learn's estimators in the ``ai.onnx.ml`` domain (skl2onnx, onnxmltools), by what they are.
_ML_TREES = frozenset({"TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble"})
_ML_LINEAR = frozenset({"LinearClassifier", "LinearRegressor", "SVMClassifier", "SVMRegressor"})


def sklearn_hint(graph: Any, supported: frozenset[str] | set[str] = SUPPORTED_OPS) -> str:
    """For a refusal naming ``ai.onnx.ml`` ops (a scikit-learn model exported by skl2onnx): why a
    gradient check does not apply and what can be checked, in the quantised refusal's style
    (onnxsweep25: TreeEnsembleClassifier and LinearClassifier were refused naming the op alone).
    Empty where no unsupported op is of that domain."""
    ops = list(dict.fromkeys(n.op_type for n in graph.node
                             if n.domain == "ai.onnx.ml" and op_key(n) not in supported))
    if not ops:
        return ""
    said = []
    trees = [op for op in ops if op in _ML_TREES]
    linear = [op for op in ops if op in _ML_LINEAR]
    other = [op for op in ops if op not in _ML_TREES and op not in _ML_LINEAR]
    if trees:
        said.append(f"{' and '.join(trees)} {'is a tree ensemble' if len(trees) == 1 else 'are tree ensembles'} "
                    "(a random forest, gradient-boosted trees): its output is made of threshold splits, piecewise constant in its inputs, so it has no gradient at all, and "
                    "it is grown split by split, not trained by gradient descent")
    if linear:
        said.append(f"{' and '.join(linear)} {'is a linear or kernel model' if len(linear) == 1 else 'are linear or kernel models'} (LogisticRegression, LinearSVC, SVC, "
                    "Ridge): scikit-learn fits it with its own solver (lbfgs, liblinear, libsvm) on a convex "
                    "objective, one layer with no depth for a gradient to vanish or explode through")
    if other:
        said.append(f"{', '.join(other)} {'is' if len(other) == 1 else 'are'} a pipeline's feature encoding, "
                    "no layer with weights")
    return ("; this is a scikit-learn model (ai.onnx.ml ops, as skl2onnx or onnxmltools export one), not a neural "
            "network of layers trained by backpropagation: " + "; ".join(said) + "; so a gradient check does not "
            "apply to it (a scikit-learn MLPClassifier or MLPRegressor, which skl2onnx exports as MatMul and Add "
            "layers, can be checked)")


#: What writes an op outside the ONNX standard into the default domain, and how to re-export.
_NONSTANDARD_SOURCES = {
    "Erfc": "tf2onnx writes it for Keras' exact GELU (gelu(approximate=False)): re-export with "
            "gelu(approximate=True), or with a converter version that writes Erf",
}


def nonstandard_hint(graph: Any, supported: frozenset[str] | set[str] = SUPPORTED_OPS) -> str:
    """For a refusal: the unsupported ops of the default domain that are no operator of the ONNX
    standard at all (``onnx.defs.has`` false: ``onnx.checker`` rejects the file and onnxruntime
    would not load it), so the file is invalid, not an op the check lacks (onnxsweep28
    qs_deeptrans: tf2onnx's Erfc). Empty where there is none, or onnx is not installed."""
    try:
        from onnx import defs
    except ImportError:  # (torch-free submission without onnx: the ops are listed as they are)
        return ""
    ops = list(dict.fromkeys(n.op_type for n in graph.node if n.domain in ("", "ai.onnx")
                             and op_key(n) not in supported and not defs.has(n.op_type)))
    if not ops:
        return ""
    how = "; ".join(f"{op}: {_NONSTANDARD_SOURCES[op]}" for op in ops if op in _NONSTANDARD_SOURCES)
    return (f"; {', '.join(ops)} {'is no operator' if len(ops) == 1 else 'are no operators'} of the ONNX standard "
            "(in its default domain): the file is not valid ONNX (onnx.checker rejects it, onnxruntime would not "
            "load it), whatever wrote it; re-export the model with standard ops"
            + (f" ({how})" if how else ""))


def unsupported_refusal(model: Any, missing_ops: list[str],
                        supported: frozenset[str] | set[str] = SUPPORTED_OPS) -> str:
    """The refusal of a graph with ops the interpreter has no builder for. Where the ops say what the
    model is (a quantised graph: :func:`quantised_hint`; a scikit-learn model: :func:`sklearn_hint`),
    that reason leads and the ops follow it: the list of ops is no reason, and a tree ensemble's
    refusal that opened on its pipeline's ArrayFeatureExtractor and OneHotEncoder read as an op the
    check merely lacks (onnxsweep27 titanic_tree). Otherwise the ops lead, with what to do where
    something can be done (a recursive function, random ops)."""
    ops = ", ".join(missing_ops)
    reason = (f"{quantised_hint(model.graph, supported)}{sklearn_hint(model.graph, supported)}"
              f"{nonstandard_hint(model.graph, supported)}")
    rest = f"{function_hint(model, missing_ops)}{noise_hint(model.graph)}"
    if reason:
        return f"{reason.removeprefix('; ')}; its unsupported ONNX ops: {ops}{rest}"
    return f"unsupported ONNX ops: {ops}{rest}"


#: How many nodes of one unsupported op a refusal names before it counts the rest.
NAMED_NODES = 3


def activation_bytes(model: Any, shapes: dict[str, list[int]]) -> int:
    """Estimated bytes of the inputs and of every intermediate tensor and its gradient in float64, from
    ONNX shape inference on the declared input sizes (protobuf-only; unknown shapes count as nothing)."""
    return _estimate(model, shapes)[0]


def _shapes_only(model: Any, shapes: dict[str, list[int]]) -> Any:
    """A copy of ``model`` for shape inference, its graph inputs of the sizes ``shapes`` gives.
    Shapes only: the weights become declared inputs of their shape (without them inference cannot
    size a Gemm's output, and the estimate would count the graph's output alone). Small integer
    tensors keep their values: they are shapes, repeats and bounds, which data propagation needs
    to size a ConstantOfShape, Expand, Tile or Reshape (onnxsweep6: ConstantOfShape of a stored
    [1e5, 1e5] counted as nothing, then allocated 80 GB)."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    declared = {i.name for i in m.graph.input}
    kept = [t for t in m.graph.initializer
            if t.data_type in _INT_DATA and elements(t.dims) <= _SMALL]
    kept_names = {t.name for t in kept}
    for t in m.graph.initializer:
        if t.name not in declared and t.name not in kept_names:
            m.graph.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    kept_copies = [onnx.TensorProto() for _ in kept]
    for copy, t in zip(kept_copies, kept, strict=True):
        copy.CopyFrom(t)
    del m.graph.initializer[:]
    m.graph.initializer.extend(kept_copies)
    for inp in m.graph.input:
        if inp.name in shapes:
            dims = inp.type.tensor_type.shape.dim
            for k, size in enumerate(shapes[inp.name]):
                if k < len(dims):
                    dims[k].ClearField("dim_param")
                    dims[k].dim_value = size
    return m


def _estimate(model: Any, shapes: dict[str, list[int]], sized: list[tuple[str, int, list[int]]] | None = None
              ) -> tuple[int, tuple[str, int] | None, dict[str, int]]:
    """:func:`activation_bytes`, the largest tensor a node makes: (its name, its bytes), and the
    rank of every tensor whose rank is declared or inferred (for :func:`check_axes`). ``sized``, where
    given, gets (name, bytes, sizes) of every tensor counted after the inputs."""
    import onnx

    declared = {i.name for i in model.graph.input}
    m = _shapes_only(model, shapes)
    # the graph's own inputs, as the simulation makes them (float64 or int64: 8 bytes a value), count
    # whatever the nodes after them (onnxsweep5: [16, 64, 2e9] read by a ReduceMean was estimated at
    # 19 kB and then allocated)
    weights = {t.name for t in model.graph.initializer}
    total = sum(elements(d.dim_value for d in i.type.tensor_type.shape.dim) * 8
                for i in m.graph.input if i.name in declared and i.name not in weights
                and all(d.HasField("dim_value") for d in i.type.tensor_type.shape.dim))
    ranks = {t.name: len(t.dims) for t in model.graph.initializer}
    ranks.update((i.name, len(i.type.tensor_type.shape.dim)) for i in m.graph.input
                 if i.type.tensor_type.HasField("shape"))
    try:
        inferred = onnx.shape_inference.infer_shapes(m, strict_mode=False, data_prop=True)
    except Exception:  # inference is an estimate: a graph it cannot follow counts its inputs alone
        return total, None, ranks
    largest: tuple[str, int] | None = None
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        if vi.type.tensor_type.HasField("shape"):
            ranks.setdefault(vi.name, len(vi.type.tensor_type.shape.dim))
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            size = math.prod(int(d.dim_value) for d in dims) * BYTES_PER_VALUE
            total += size
            if sized is not None:
                sized.append((vi.name, size, [int(d.dim_value) for d in dims]))
            if largest is None or size > largest[1]:
                largest = (vi.name, size)
    return total, largest, ranks


#: The batch a dynamic first dimension takes when no batch size is given.
DEFAULT_BATCH = 16


def multiply_adds(model: Any, shapes: dict[str, list[int]]) -> int:
    """Multiply-adds of one forward pass at the input sizes ``shapes``, from the inferred shapes: the
    Conv, ConvTranspose, MatMul and Gemm nodes, which hold nearly all of a network's arithmetic (each
    output value of a Conv is in_channels/group x kernel products; each input value of a
    ConvTranspose scatters out_channels/group x kernel; a MatMul's or Gemm's output value is its inner
    size). What the simulation's time is estimated from (:func:`simulation_seconds`); 0 where the
    shapes cannot be inferred."""
    import onnx

    m = _shapes_only(model, shapes)
    try:
        inferred = onnx.shape_inference.infer_shapes(m, strict_mode=False, data_prop=True)
    except Exception:  # an estimate: a graph inference cannot follow counts nothing
        return 0
    sizes: dict[str, list[int]] = {}
    for vi in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if vi.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            sizes[vi.name] = [int(d.dim_value) for d in dims]
    for t in model.graph.initializer:
        sizes.setdefault(t.name, [int(d) for d in t.dims])
    total = 0
    for node in model.graph.node:
        ins = [sizes.get(i) for i in node.input]
        out = sizes.get(node.output[0]) if node.output else None
        if len(ins) < 2 or ins[0] is None or ins[1] is None:
            continue
        x, w = ins[0], ins[1]
        if node.op_type == "Conv" and out is not None and len(w) >= 2:
            total += math.prod(out) * math.prod(w[1:])
        elif node.op_type == "ConvTranspose" and len(w) >= 2:
            total += math.prod(x) * math.prod(w[1:])
        elif node.op_type == "MatMul" and out is not None and x:
            total += math.prod(out) * x[-1]
        elif node.op_type == "Gemm" and out is not None and len(x) == 2:
            trans = any(a.name == "transA" and a.i for a in node.attribute)
            total += math.prod(out) * x[0 if trans else 1]
    return total



#: Nodes an ONNX graph may have per measured layer the limits allow (:attr:`Limits.max_units`)
NODES_PER_UNIT = 10


def _largest_producers(sized: list[tuple[str, int, list[int]]], graph: Any, most: int = 3) -> str:
    """``; most of it: 16 Softmax outputs of [1, 4, 5000, 5000] (e.g. node ...), ...``: the tensors
    :func:`_estimate` counted, grouped by the op that makes them and their sizes, the largest
    groups first; empty where none is known."""
    maker = {o: (n, k) for k, n in enumerate(graph.node) for o in n.output if o}
    groups: dict[tuple[str, tuple[int, ...]], list[Any]] = {}
    for name, size, dims in sized:
        if name not in maker:
            continue
        node, k = maker[name]
        group = groups.setdefault((node.op_type, tuple(dims)), [0, 0, _node_label(node, k)])
        group[0] += size
        group[1] += 1
    if not groups:
        return ""
    top = heapq.nlargest(most, groups.items(), key=lambda item: item[1][0])
    return "; most of it: " + ", ".join(
        f"{count} {op} output{'s' if count > 1 else ''} of {list(dims)} ({total} bytes; e.g. node {label})"
        for (op, dims), (total, count, label) in top)


#: Activation memory past any machine's (a pebibyte): a limit raised to it is no advice, the
#: declared sizes are what is wrong.
IMPOSSIBLE_BYTES = 2**50


def _raised(act: int) -> int:
    """A limit over ``act`` bytes, rounded up to a whole GiB: the setting that lets it run."""
    return -(-act // (1 << 30)) * (1 << 30)


def _length_refused(model: Any, shapes: dict[str, list[int]], proposed: dict[str, list[int]]) -> str | None:
    """Where the graph takes its input sizes ``shapes`` but not ``proposed``: ONNX's strict shape
    inference's complaint (a stored positional table of 5,000 rows added to 3,198 tokens: "Incompatible
    dimensions"); None where it takes both or inference cannot tell (it fails on ``shapes`` too)."""
    import onnx

    def refusal(sizes: dict[str, list[int]]) -> str | None:
        try:
            onnx.shape_inference.infer_shapes(_shapes_only(model, sizes), strict_mode=True, data_prop=True)
        except Exception as exc:  # (onnx raises InferenceError, or a checker's ValidationError)
            text = " ".join(str(exc).split())
            # onnx's "(op_type:Add, node name: /Add): [ShapeInferenceError] Incompatible dimensions": the first
            first = re.search(r"\(op_type:(\w+), node name: ([^)]*)\): \[\w+\] ([^()]*)", text)
            return (f"node {first[2]} ({first[1]}): {first[3].strip()}" if first
                    else text[:200] or type(exc).__name__)
        return None

    return None if refusal(shapes) is not None else refusal(proposed)


def _fitting_length(model: Any, sized: list[tuple[str, int, list[int]]], shapes: dict[str, list[int]],
                    act: int, limit: int) -> str:
    """``; a length of about N along input[k] would fit ...``: the longest size of the first input's
    longest dimension after the batch under which the estimate fits, each tensor scaled by the power
    of that length its sizes hold (an attention map of [L, L] with the square: onnxsweep11's 5000
    tokens, 20 GB, fit at about 3200); empty where no input has such a length or nothing scales."""
    name, dims = next(iter(shapes.items()), ("", []))
    if len(dims) < 2 or max(dims[1:]) < 2:
        return ""
    axis = 1 + max(range(len(dims) - 1), key=lambda k: dims[1 + k])
    length = dims[axis]
    if dims[1:].count(length) > 1:  # an image's height and width: no one length to shorten
        return ""
    counted = sum(size for _, size, _ in sized)
    # (the inputs, not in ``sized``, scale with the length once)
    terms = [(size, sum(d == length for d in sizes)) for _, size, sizes in sized] + [(max(act - counted, 0), 1)]

    def at(n: int) -> float:
        return sum(size * (n / length) ** power for size, power in terms)

    if at(length - 1) >= act:  # nothing grows with it
        return ""
    low, high = 0, length
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if at(mid) <= limit else (low, mid)
    if low < 1:
        return ""
    shown = "x".join(str(low if k == axis else d) for k, d in enumerate(dims))
    refused = _length_refused(model, shapes, {**shapes, name: [low if k == axis else d for k, d in enumerate(dims)]})
    if refused is not None:
        # the graph fixes that length (onnxsweep23: a stored [1, 5000, 64] positional table added to
        # the tokens; the suggested 3198 then failed with torch's raw shape error): no length to suggest
        return (f"; the graph fixes {name}[{axis}] at {length} (a shorter length, {low}, would fit, but the "
                f"graph does not take it: {refused}), so it cannot be checked shorter without exporting "
                "the model at a shorter length")
    return (f"; a length of about {low} along {name}[{axis}] ({length} now) would fit: --input-shape "
            f"{name}={shown} (the graph's shapes take it)")


def _fold_dims(graph: Any, input_shapes: dict[str, list[int]] | None, batch_size: int | None
               ) -> dict[str, list[int | None]]:
    """Each graph input's sizes as far as they are settled before the checks below: given, the batch
    size, declared; None for a size still open (a dynamic batch the check may choose is not settled)."""
    init_names = {t.name for t in graph.initializer}
    dims: dict[str, list[int | None]] = {}
    for inp in graph.input:
        if inp.name in init_names:
            continue
        given = (input_shapes or {}).get(inp.name) or []
        sizes: list[int | None] = []
        for k, d in enumerate(inp.type.tensor_type.shape.dim):
            sizes.append(int(given[k]) if k < len(given) else batch_size if k == 0 and batch_size
                         else int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else None)
        dims[inp.name] = sizes
    return dims


#: Ops that act on each element alone (extra inputs: scalars or per-feature constants): a leading
#: axis added to their input is carried through as a batch (:func:`batch_axis`).
_PER_ELEMENT = frozenset({
    "Relu", "LeakyRelu", "Elu", "Selu", "Celu", "Gelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
    "Softplus", "Softsign", "Mish", "ThresholdedRelu", "Exp", "Log", "Abs", "Neg", "Sqrt", "Reciprocal",
    "Erf", "Sin", "Cos", "Floor", "Ceil", "Round", "Sign", "Identity", "Cast", "Clip", "Dropout", "PRelu",
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Where", "Equal", "Greater", "Less",
    "GreaterOrEqual", "LessOrEqual", "Not", "And", "Or", "IsNaN", "IsInf"})
#: Ops whose ``axis`` attribute, counted from the front, moves one place when a leading axis is added.
_AXIS_OPS = frozenset({"Softmax", "LogSoftmax", "Concat"})


@dataclass
class Unbatched:
    """A graph with no batch axis (:func:`batch_axis`): its one-sample inputs, what shows it, and
    whether a leading batch axis can be added to them (``blocker`` None) or not (the node that
    cannot take one)."""

    #: (input name, its size, ``name (Op)`` of the node whose weight reads it whole, the weight's dims)
    inputs: list[tuple[str, int, str, list[int]]]
    blocker: str | None
    #: node index -> its ``axis`` attribute once the leading axis is added (Softmax, Concat)
    axes: dict[int, int]
    #: every tensor that carries the added axis
    lifted: set[str]
    #: the inputs among ``inputs`` whose only axis the file declares dynamic, with its dim_param
    #: (the size taken from the weight that reads it whole)
    dynamic: dict[str, str] = field(default_factory=dict)

    def why(self) -> str:
        name, size, reader, dims = self.inputs[0]
        more = (f" (and {', '.join(n for n, *_ in self.inputs[1:])})" if len(self.inputs) > 1 else "")
        if name in self.dynamic:
            # the file named the axis (``batch_size``), so the note says why it is read otherwise
            return (f"the graph has no batch axis: input {name} [{self.dynamic[name]}]{more} is one sample of "
                    f"{size} features, its only axis (declared dynamic, {self.dynamic[name]!r}) read whole by node "
                    f"{reader}'s weight {dims}, which fixes its size (--input-shape {name}={size} says so)")
        return (f"the graph has no batch axis: input {name} [{size}]{more} is one sample, its only axis "
                f"read whole by node {reader}'s weight {dims}")


#: The size an example ``--input-shape`` shows for a dynamic dimension other than the batch.
EXAMPLE_SIZE = 128


_SUM_NAME = re.compile(r"[A-Za-z_][\w.]*")


def sum_terms(dim_param: str) -> list[str] | None:
    """The terms of a dim_param that is a sum of other dims' names and integers (an exporter's
    ``past_sequence_length + sequence_length``, ``past_sequence_length+1``), each a name or the
    digits of an integer; None for a plain name or anything else (only ``+`` is read, nothing is
    evaluated)."""
    if "+" not in dim_param:
        return None
    terms = [t.strip() for t in dim_param.split("+")]
    if not all(t.isdigit() or _SUM_NAME.fullmatch(t) for t in terms):
        return None
    return terms


def _named_sizes(graph: Any, input_shapes: dict[str, list[int]] | None, batch_size: int | None) -> dict[str, int]:
    """The size each plain dim_param takes where an input's sizes settle it: given as an input shape,
    or the batch (given or the default) of a dynamic first axis."""
    init_names = {t.name for t in graph.initializer}
    sizes: dict[str, int] = {}
    for inp in graph.input:
        if inp.name in init_names:
            continue
        given = (input_shapes or {}).get(inp.name) or []
        for k, d in enumerate(inp.type.tensor_type.shape.dim):
            if d.HasField("dim_value") or not d.dim_param or sum_terms(d.dim_param) is not None:
                continue
            if k < len(given):
                sizes.setdefault(d.dim_param, int(given[k]))
            elif k == 0:
                sizes.setdefault(d.dim_param, batch_size or DEFAULT_BATCH)
    return sizes


def _dim_param(graph: Any, name: str, k: int) -> str:
    inp = next(i for i in graph.input if i.name == name)
    return str(inp.type.tensor_type.shape.dim[k].dim_param)


def _shape_example(graph: Any, missing: list[str], input_shapes: dict[str, list[int]] | None,
                   batch_size: int | None) -> str:
    """`` (e.g. --input-shape tokens=16x128, 128 standing for seq_len: ...)`` for the dynamic
    dimensions ``missing`` (``"name[k] (dim_param)"``): an example built from each input's own name,
    rank and fixed sizes, its batch the one given or the default, each other dynamic size a stand-in
    named by its dim_param (onnxsweep24: a [batch, seq_len] token input was shown the image-shaped
    32x3x224x224, a rank it does not have). A dim the file declares as a sum of others
    (``past_sequence_length + sequence_length``, a KV-cache decoder's attention mask) is shown as the
    sum of the sizes shown for its terms (onnxsweep28 cappgpt: 128 for the sum as for each term, and
    the pasted example failed inside the graph)."""
    order = list(dict.fromkeys(m.split("[")[0] for m in missing))
    named = _named_sizes(graph, input_shapes, batch_size)
    examples: list[str] = []
    standing: list[str] = []
    sums: list[str] = []
    stood = False

    def stand_in(label: str) -> int:
        nonlocal stood
        if label in named:
            return named[label]
        stood = True
        if label and label != "unknown" and label not in standing:
            standing.append(label)
        return EXAMPLE_SIZE

    for name in order:
        given = (input_shapes or {}).get(name) or []
        sizes: list[str] = []
        for k, declared in enumerate(_declared(graph, name)):
            if k < len(given):
                sizes.append(str(given[k]))
            elif declared > 0:
                sizes.append(str(declared))
            elif k == 0:
                sizes.append(str(batch_size or DEFAULT_BATCH))
            else:
                param = _dim_param(graph, name, k)
                terms = sum_terms(param)
                if terms is None:
                    sizes.append(str(stand_in(param or "unknown")))
                    continue
                total = sum(int(t) if t.isdigit() else stand_in(t) for t in terms)
                sizes.append(str(total))
                sums.append(f"{name}[{k}] ({param}) is their sum, {total}")
        examples.append(f"--input-shape {name}={'x'.join(sizes)}")
    summed = f", {'; '.join(sums)}" if sums else ""
    if not stood:
        return f" (e.g. {' '.join(examples)}{summed})"
    stand = " and ".join(standing) or "each dynamic size"
    return f" (e.g. {' '.join(examples)}, {EXAMPLE_SIZE} standing for {stand}{summed}: give your data's sizes)"


def sum_dims_note(graph: Any, input_shapes: dict[str, list[int]] | None, batch_size: int | None) -> str:
    """For a graph that fails on a size mismatch: its inputs whose declared dims are sums of other
    dims (``attention_mask[1] (past_sequence_length + sequence_length) is 128``), each with the sum
    the other inputs' sizes make where they settle every term; "" for a graph with none. A KV-cache
    decoder's mask given the size of one term fails at an Add deep inside the graph that names no
    input (onnxsweep28 cappgpt)."""
    init_names = {t.name for t in graph.initializer}
    named = _named_sizes(graph, input_shapes, batch_size)
    said: list[str] = []
    wrong = False
    for inp in graph.input:
        if inp.name in init_names:
            continue
        given = (input_shapes or {}).get(inp.name) or []
        for k, d in enumerate(inp.type.tensor_type.shape.dim):
            terms = sum_terms(d.dim_param) if not d.HasField("dim_value") and d.dim_param else None
            if terms is None:
                continue
            size = int(given[k]) if k < len(given) else None
            item = f"{inp.name}[{k}] ({d.dim_param})" + (f" is {size}" if size is not None else "")
            if all(t.isdigit() or t in named for t in terms):
                total = sum(int(t) if t.isdigit() else named[t] for t in terms)
                parts = " + ".join(t if t.isdigit() else str(named[t]) for t in terms)
                if size is not None and size != total:
                    wrong = True
                    item += f", but the other inputs' sizes make it {parts} = {total}"
            said.append(item)
    if not said:
        return ""
    head = "the file declares input sizes as sums of other sizes: "
    tail = (": give each the sum of its terms' sizes" if wrong
            else " (a size mismatch inside may come from these: each must be the sum of its terms' sizes)")
    return "; " + head + ", ".join(said) + tail


_FAILED_NODE = re.compile(r"\bnode (.+?) \((\w+)\)")


def chosen_sizes_hint(graph: Any, message: str, input_shapes: dict[str, list[int]] | None,
                      batch_size: int | None) -> str:
    """For a graph that fails on a size mismatch at run time (``message``, which names the node as
    ``node NAME (Op)``): the inputs that node reads (directly or through any nodes before it) whose
    sizes the check chose, a dynamic axis it filled with the default batch, with the
    ``--input-shape`` to give; "" where the user gave every size it reads. A 1-D input declared
    ``[batch_size]`` whose first consumer reads it whole was run as a batch of 16 scalars and failed
    with torch's bare "mat1 and mat2 shapes cannot be multiplied" (onnxsweep30 snake_1500)."""
    found = _FAILED_NODE.search(message)
    if found is None:
        return ""
    node = next((n for n in graph.node if n.name == found[1]), None)
    if node is None:
        return ""
    init_names = {t.name for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output if o}
    # every graph input the failing node depends on
    reads: set[str] = set()
    todo, seen = list(node.input), set()
    while todo:
        t = todo.pop()
        if not t or t in seen:
            continue
        seen.add(t)
        if t in producer:
            todo.extend(producer[t].input)
        else:
            reads.add(t)
    said: list[str] = []
    for inp in graph.input:
        if inp.name in init_names or inp.name not in reads:
            continue
        given = (input_shapes or {}).get(inp.name) or []
        dims = inp.type.tensor_type.shape.dim
        chosen = [k for k, d in enumerate(dims) if k >= len(given) and not (d.HasField("dim_value") and d.dim_value > 0)]
        if 0 not in chosen or batch_size:
            continue
        param = dims[0].dim_param or "dynamic"
        weight = _contracted(graph, node) if len(dims) == 1 else None
        size = (f"{weight[0]}" if weight is not None else "N")
        why = (f" (node {found[1]}'s stored {weight[1]!r} reads {weight[0]} features)" if weight is not None
               else ", N its size in your data")
        said.append(f"input {inp.name}'s first axis ({param!r}) was taken as the batch (the check chose its size); if it is "
                    f"not a batch, give its size: --input-shape {inp.name}="
                    + "x".join([size] + [str(int(d.dim_value)) if d.dim_value > 0 else "N" for d in dims[1:]])
                    + why)
    return "; " + "; ".join(said) if said else ""


def _contracted(graph: Any, node: Any) -> tuple[int, str] | None:
    """(the size, the weight's name) a MatMul's or Gemm's stored 2-D weight contracts its first operand's
    last axis with; None for another node or a computed weight."""
    stored = {t.name: list(t.dims) for t in graph.initializer}
    w = node.input[1] if len(node.input) > 1 else ""
    dims = stored.get(w) or []
    if len(dims) != 2 or node.op_type not in ("MatMul", "Gemm"):
        return None
    trans_b = node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute)
    return int(dims[1] if trans_b else dims[0]), w


#: Ops whose output has their (first) input's shape, passed through by :func:`pinned_sizes`.
_SAME_SHAPE = frozenset({"Relu", "Sigmoid", "Tanh", "LeakyRelu", "Elu", "Selu", "Softplus", "Softsign", "Abs",
                         "Neg", "Exp", "Log", "Sqrt", "Identity", "Cast", "Dropout", "Clip", "HardSigmoid",
                         "Erf", "Reciprocal"})
_ELEMENTWISE = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"})


def pinned_sizes(graph: Any, name: str, rank: int, axis0: bool = False) -> dict[int, tuple[int, str]]:
    """The sizes of input ``name``'s axes after the first (of ``rank``) that the graph's stored
    tensors fix, by axis: (size, why). Followed from the input through ops that keep its shape, an
    axis is fixed by a stored tensor it meets elementwise (a [1, F] mean it broadcasts with: F) or
    contracts with (a MatMul's stored [F, M] weight, a Gemm's B: its last axis is F). tf2onnx writes
    every dim of a Keras model's inputs dynamic (``unk__7``) where the graph fixes the features
    (onnxsweep26 hdd_risk: Normalization's [1, 65] constants and a [65, 512] MatMul weight).
    ``axis0``: the first axis too, where a weight contracts it (a rank-1 input's only axis, which a
    MatMul's stored [F, M] weight reads whole); a broadcast never fixes it (a batch broadcasts)."""
    stored = {t.name: list(t.dims) for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    stored[n.output[0]] = list(a.t.dims)
    readers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    found: dict[int, tuple[int, str]] = {}
    todo, seen = [name], {name}
    while todo:
        tensor = todo.pop()
        for n in readers.get(tensor, []):
            label = f"{n.op_type} node {n.name}" if n.name else f"a {n.op_type} node"
            if n.op_type in _SAME_SHAPE and n.input[0] == tensor:
                follow = True
            elif n.op_type in _ELEMENTWISE and len(n.input) == 2:
                other = n.input[1] if n.input[0] == tensor else n.input[0]
                dims = stored.get(other) or []
                follow = other in stored and len(dims) <= rank
                for k, d in enumerate(dims):
                    axis = rank - len(dims) + k
                    if follow and axis >= 1 and d > 1 and axis not in found:
                        found[axis] = (int(d), f"the stored {other!r} {dims} it meets in {label}")
            elif n.op_type == "MatMul" and n.input[0] == tensor and len(stored.get(n.input[1], [])) == 2:
                dims = stored[n.input[1]]
                if rank > 1 or axis0:
                    found.setdefault(rank - 1, (int(dims[0]),
                                                f"the stored {n.input[1]!r} {dims} it contracts with in {label}"))
                follow = False
            elif (n.op_type == "Gemm" and n.input[0] == tensor and rank == 2 and len(stored.get(n.input[1], [])) == 2
                  and not any(a.name == "transA" and a.i for a in n.attribute)):
                dims = stored[n.input[1]]
                trans_b = any(a.name == "transB" and a.i for a in n.attribute)
                found.setdefault(1, (int(dims[1] if trans_b else dims[0]),
                                     f"the stored {n.input[1]!r} {dims} it contracts with in {label}"))
                follow = False
            else:
                follow = False
            if follow and n.output and n.output[0] not in seen:
                seen.add(n.output[0])
                todo.append(n.output[0])
    return found


def _declared(graph: Any, name: str) -> list[int]:
    """Input ``name``'s declared sizes, 0 for a dynamic one."""
    inp = next(i for i in graph.input if i.name == name)
    return [int(d.dim_value) if d.HasField("dim_value") else 0 for d in inp.type.tensor_type.shape.dim]


def batch_axis(graph: Any, opset: int | None,
               input_shapes: dict[str, list[int]] | None = None) -> Unbatched | None:
    """Whether the graph takes one sample with no batch axis: an input of rank 1 and fixed size that
    a MatMul reads as its first operand against a stored 2-D weight of that many rows (``x @ W``
    with x [164] and W [164, 64]: the weight consumes the input's only axis, so it is no batch, as
    an RL policy exported with ``torch.randn(n_obs)`` has it; onnxsweep23 read its features as "batch
    164"). None for a graph with a batch axis. Walks on from those inputs to see whether every node
    after them would take a leading batch axis unchanged: elementwise ops whose other operands are
    stored vectors or scalars, a MatMul on a stored 2-D weight, Softmax/LogSoftmax (opset 13+) and a
    Concat of such tensors (their front-counted ``axis`` moved one place); the first node that would
    not is ``blocker``. A rank-1 input whose only axis is declared dynamic counts as one of a size
    the stored weight fixes (:func:`pinned_sizes`: the exporter named the axis a batch, but the
    weight reads it whole), unless ``input_shapes`` gives its size (then that size)."""
    stored_rank: dict[str, int] = {t.name: len(t.dims) for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.output:
            for a in n.attribute:
                if a.name == "value":  # (its dims alone: the header checks the value after)
                    stored_rank[n.output[0]] = len(a.t.dims)
                elif a.name in ("value_float", "value_int"):
                    stored_rank[n.output[0]] = 0
                elif a.name in ("value_floats", "value_ints"):
                    stored_rank[n.output[0]] = 1
    init_names = {t.name for t in graph.initializer}
    rank1 = {}
    dynamic: dict[str, str] = {}
    for inp in graph.input:
        dims = inp.type.tensor_type.shape.dim
        if inp.name in init_names or len(dims) != 1:
            continue
        given = (input_shapes or {}).get(inp.name)
        if given is not None and len(given) == 1:
            # a size the user gave a 1-D input: one sample of that many features, as if declared so
            rank1[inp.name] = int(given[0])
        elif dims[0].HasField("dim_value") and dims[0].dim_value > 0:
            rank1[inp.name] = int(dims[0].dim_value)
        elif dims[0].HasField("dim_value") and dims[0].dim_value != -1:
            continue  # a 0 or negative size, refused as such by read_header
        elif given is None:
            # its only axis declared dynamic (torch's dynamic_axes={'input': {0: 'batch_size'}} on a
            # 1-D example, onnxsweep30 snake_1500) but read whole by a stored weight, which fixes its
            # size: features, not a batch of scalars
            pinned = pinned_sizes(graph, inp.name, 1, axis0=True).get(0)
            if pinned is not None:
                rank1[inp.name] = pinned[0]
                dynamic[inp.name] = dims[0].dim_param or "dynamic"
    if not rank1:
        return None
    weights = {t.name: list(t.dims) for t in graph.initializer if len(t.dims) == 2}
    # the tensors carrying each rank-1 input's only axis, through per-element ops, and their rank
    rank: dict[str, int] = dict.fromkeys(rank1, 1)
    origin: dict[str, str] = {name: name for name in rank1}
    found: dict[str, tuple[str, list[int]]] = {}
    blocker: str | None = None
    axes: dict[int, int] = {}
    for k, n in enumerate(graph.node):
        ins = [i for i in n.input if i]
        carried = [i for i in ins if i in rank]
        if not carried:
            continue
        label = _node_label(n, k)
        others = [i for i in ins if i not in rank]
        r = rank[carried[0]]
        ok = True
        if n.op_type == "MatMul":
            w = n.input[1] if len(n.input) > 1 else ""
            ok = n.input[0] in rank and w not in rank and stored_rank.get(w) == 2
            if ok and r == 1 and w in weights and origin[n.input[0]] not in found:
                found[origin[n.input[0]]] = (label, weights[w])
        elif n.op_type in _PER_ELEMENT:
            if any(i not in stored_rank for i in others):
                # combined elementwise with what another input computes (a conditioning vector added to
                # a batch's features): a vector shared across that input's batch, and the graph has one
                return None
            ranks = {rank[i] for i in carried}
            ok = len(ranks) == 1 and all(stored_rank.get(i, 99) <= r for i in others)
        elif n.op_type in _AXIS_OPS:
            if n.op_type != "Concat" and (opset is None or opset < 13):
                ok = False  # before 13 the softmax flattens from its axis on: the batch would join the features
            ok = ok and not others and len({rank[i] for i in carried}) == 1
            axis = next((int(a.i) for a in n.attribute if a.name == "axis"), -1)
            if ok and axis >= 0:
                axes[k] = axis + 1
        else:
            ok = False
        if not ok:
            blocker = blocker or label
            continue
        for o in n.output:
            if o:
                rank[o] = r
                origin[o] = origin[carried[0]]
    if not found:
        return None
    inputs = [(name, rank1[name], *found[name]) for name in rank1 if name in found]
    return Unbatched(inputs, blocker, axes, set(rank), {n: p for n, p in dynamic.items() if n in found})


def add_batch_axis(graph: Any, plan: Unbatched) -> None:
    """Give the graph the batch axis it lacks, in place (:func:`batch_axis` found every node after
    its one-sample inputs takes one): those inputs and the declared shapes of the tensors they reach
    get a leading dynamic axis ``batch`` (filled as a dynamic batch is), and the front-counted axes
    move one place."""
    from onnx import helper

    for vi in [*graph.input, *graph.output, *graph.value_info]:
        if vi.name in plan.lifted and vi.type.tensor_type.HasField("shape"):
            shape = vi.type.tensor_type.shape
            old = []
            for d in shape.dim:
                copy = type(d)()
                copy.CopyFrom(d)
                old.append(copy)
            del shape.dim[:]
            shape.dim.add().dim_param = "batch"
            for d in old:
                shape.dim.add().CopyFrom(d)
    for k, axis in plan.axes.items():
        node = graph.node[k]
        kept = [a for a in node.attribute if a.name != "axis"]
        del node.attribute[:]
        node.attribute.extend([*kept, helper.make_attribute("axis", axis)])


def read_header(data: bytes, *, input_shapes: dict[str, list[int]] | None = None,
                batch_size: int | None = None, limits: Limits | None = None,
                max_bytes: int = 1 << 30,
                supported: frozenset[str] | set[str] = SUPPORTED_OPS, output: str | None = None,
                file_name: str | None = None, weights: str | None = None) -> Header:
    """Everything refused before a tensor is made, in the order a user would fix it: not ONNX
    (:class:`InputFormatError`), control flow, a graph that is no dataflow graph
    (:func:`check_structure`; one listed out of order is sorted), no output to take a loss of
    (:func:`check_outputs`), external data, unsupported ops (every one named, with its node), an
    opset below 1, the parameter count (exact: :func:`elements`) and the values stored in all
    (:func:`check_stored_values`), a stored tensor of an unknown element type or of data not the
    size of its dims (:func:`check_tensor_data`), an attribute given twice or of the wrong type
    (:func:`check_attributes`), a ConstantOfShape, Expand, Tile or Range whose constant arguments
    ask for more than the memory limit, dynamic dimensions without a size, an axis or perm out of
    range for its input's rank (:func:`check_axes`), a window's geometry (:func:`check_windows`)
    (:class:`ModelError`), the activation memory (:class:`LimitExceeded`).

    ``input_shapes`` gives sizes by input name; ``batch_size`` fills a dynamic first dimension (and
    replaces a fixed one). Without it a dynamic first dimension, the batch both torch's and tf2onnx's
    exporters leave dynamic by default, is :data:`DEFAULT_BATCH`, or the largest batch (2 or more)
    whose activations fit the limit. ``file_name`` (the user's) and ``weights`` word the
    external-data refusal (:func:`external_data_refusal`)."""
    limits = limits or Limits()
    if len(data) > max_bytes:
        raise LimitExceeded(f"the model file is {len(data)} bytes, over the limit of {max_bytes}")
    parsed_notes: list[str] = []
    model = parse(data, parsed_notes)
    # the functions the file defines are inlined, so it is checked as the ops they are made of
    # (errsweep8 #5: a local::MyRelu of one Relu was refused as an "unsupported op")
    inline_functions(model, limits)
    # a sparse initializer (values at indices) is read as the dense tensor it stands for, within the
    # parameter limit; it was reported as a read of nothing ("'W', which is not defined": errsweep6)
    densify_sparse(model.graph, limits)
    # a graph that is no dataflow graph (a name written twice, a read of nothing, a cycle) is
    # refused by name here, before the worker's interpreter would trip over it
    reordered = check_structure(model.graph)
    # an If whose condition shapes and constants settle (torch.onnx.export's torch.hstack: an If on
    # a tensor's rank, onnxsweep20 h08) is inlined to the branch it takes; an If chosen by tensor
    # values, a Loop or a Scan is refused naming what it depends on
    folded = fold_control_flow(model, _fold_dims(model.graph, input_shapes, batch_size))
    # no output, or none a node computes as a floating-point tensor: nothing to take a loss of
    # (errsweep3 F13); the nodes the loss does not read are dropped before their ops are checked
    # (onnxsweep11: skl2onnx's label tail, ZipMap and ArrayFeatureExtractor, refused its classifiers)
    chosen, loss_note, sampled = _choose_outputs(model.graph, output)
    pruned = prune_to(model.graph, join_logits(model.graph, chosen))
    refusal = external_data_refusal(model, file_name=file_name, weights=weights)
    if refusal is not None:
        raise ModelError(refusal)
    missing_ops = unsupported(model, supported)
    if missing_ops:
        raise ModelError(unsupported_refusal(model, missing_ops, supported))
    graph = model.graph
    init_names = {t.name for t in graph.initializer}
    # a graph with no batch axis (an input [164] read whole by its first layer's weight): given one
    # where every node after it takes one, else run as the one sample it is (onnxsweep23: the
    # features were read as "batch 164", a fixed 164 overwritten by --batch-size)
    opset = next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    plan = batch_axis(graph, opset, input_shapes)
    one_sample: str | None = None
    dynamic = plan.dynamic if plan is not None else {}
    for name, size, *_ in plan.inputs if plan is not None else []:
        if name in dynamic or len((input_shapes or {}).get(name) or []) == 1:
            # the size the weight fixes, or the one the user gave the sample, is the declared one from
            # here on (the batch axis added in front, or one sample): as a file declaring [F] is checked
            next(i for i in graph.input if i.name == name).type.tensor_type.shape.dim[0].dim_value = size
            if name in (input_shapes or {}):
                input_shapes = {k: v for k, v in (input_shapes or {}).items() if k != name}
    if plan is not None and plan.blocker is None:
        add_batch_axis(graph, plan)
    elif plan is not None:
        one_sample = plan.why() + (f", and node {plan.blocker} would not take a batch axis added in front")
        if batch_size not in (None, 1):
            raise ModelError(f"--batch-size {batch_size} cannot be simulated: {one_sample}, so the graph runs one "
                             "sample at a time; leave --batch-size (batch_size over HTTP) out (each seed then runs one sample), or export "
                             "the model with a batch axis (an example input of shape [1, "
                             f"{plan.inputs[0][1]}] with its first axis dynamic) to check it over a batch")
    # a stored tensor of a negative size is no tensor (numpy would read a -1 as "infer" and reshape
    # the data to fit: onnxsweep5's [64, -64] became 64 x 64)
    negative = [f"{t.name} {list(t.dims)}" for t in graph.initializer if any(d < 0 for d in t.dims)]
    if negative:
        raise ModelError(f"stored tensor(s) with a negative dimension: {first_few(negative, 3)}")
    newest = onnx_opset()
    ahead = [f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import
             if o.domain in ("", "ai.onnx") and o.version > newest]
    if ahead:
        raise ModelError(f"the model declares opset {ahead[0]}, newer than the {newest} this check knows; "
                         "export it with an opset it knows (torch.onnx.export(..., opset_version=17))")
    # opsets count from 1: a 0 or negative one names no version of any op (errsweep3 F16)
    below = [f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import if o.version < 1]
    if below:
        raise ModelError(f"the model declares opset {below[0]}; opset versions start at 1")
    params = sum(elements(t.dims) for t in graph.initializer)
    if params > limits.max_parameters:
        raise LimitExceeded(f"the model has {params} parameters, over the limit of {limits.max_parameters} "
                            "(GRADHEALTH_LIMITS__MAX_PARAMETERS)")
    # an element type ONNX does not define, or data of another size than the dims (errsweep E6):
    # refused by name here, not met by the worker's to_array as a KeyError or reshape error
    # constants count too, from their dims, before any tensor's data is read (errsweep3 F2)
    check_stored_values(graph, params, limits)
    check_tensor_data(graph)
    # an attribute given twice, or of another type than its op's (a FLOAT Constant value: errsweep3
    # F5), refused by node and name here, not met by the worker as a TypeError
    check_attributes(graph)
    # every node is an op call per step and seed: a chain of 50,000 Relus in a 1 MB file held a
    # worker for minutes (apisweep2); a spec's layers are bounded by max_units, a graph's nodes by
    # NODES_PER_UNIT times that (a transformer layer exports as a few dozen nodes)
    if len(graph.node) > NODES_PER_UNIT * limits.max_units:
        raise LimitExceeded(f"the graph has {len(graph.node)} nodes, over the limit of "
                            f"{NODES_PER_UNIT * limits.max_units} ({NODES_PER_UNIT} per layer of the "
                            f"{limits.max_units}-layer limit, GRADHEALTH_LIMITS__MAX_UNITS)")
    # A constant argument can ask a ConstantOfShape, Expand, Tile or Range for any size, whatever the
    # inputs: counted as the estimate counts a tensor (float64, with its gradient), by node.
    known = _known_values(graph)  # (read once: the sizes here and check_ops below)
    for label, tensor, count in value_sized_outputs(graph, known):
        if count * BYTES_PER_VALUE > limits.max_activation_bytes:
            raise LimitExceeded(f"node {label} would make {tensor!r} of {count} values, about "
                                f"{count * BYTES_PER_VALUE} bytes with its gradient, over the activation "
                                f"memory limit of {limits.max_activation_bytes} bytes")
    unknown = sorted(set(input_shapes or {}) - {i.name for i in graph.input if i.name not in init_names})
    if unknown:
        inputs = ", ".join(repr(i.name) for i in graph.input if i.name not in init_names)
        raise ModelError(f"input shapes given for inputs the graph does not have: {', '.join(unknown)}; "
                         f"its inputs are {inputs or 'none'}", parameter="input_shapes")
    shapes: dict[str, list[int]] = {}
    elem_types: dict[str, int] = {}
    missing: list[str] = []
    invalid: list[str] = []  # sizes the file declares that no tensor has (0, negative)
    defaulted: set[str] = set()  # inputs whose dynamic batch took DEFAULT_BATCH
    batch_only = True  # every dimension missing is a first one: a batch size would do
    inferred: list[str] = []  # dynamic sizes the stored tensors fix (pinned_sizes), said in a note
    for inp in graph.input:
        if inp.name in init_names:
            continue
        tt = inp.type.tensor_type
        given = (input_shapes or {}).get(inp.name)
        dims: list[int] = []
        pinned: dict[int, tuple[int, str]] | None = None
        for k, d in enumerate(tt.shape.dim):
            if (k > 0 and not (given is not None and k < len(given)) and not d.HasField("dim_value")
                    and one_sample is None):
                pinned = pinned_sizes(graph, inp.name, len(tt.shape.dim)) if pinned is None else pinned
                if k in pinned:
                    size, why = pinned[k]
                    dims.append(size)
                    inferred.append(f"{inp.name}[{k}] ({d.dim_param or 'dynamic'}) is {size}, fixed by {why}")
                    continue
            # (-1 is how some converters write a dimension they do not know: dynamic, as a missing one)
            if d.HasField("dim_value") and d.dim_value <= 0 and d.dim_value != -1 and not (
                    given is not None and k < len(given)):
                invalid.append(f"{inp.name}[{k}] = {d.dim_value}")
            if given is not None and k < len(given):
                dims.append(int(given[k]))
            elif k == 0 and batch_size and one_sample is None:
                dims.append(batch_size)
            elif d.HasField("dim_value") and d.dim_value > 0:
                dims.append(int(d.dim_value))
            elif k == 0 and one_sample is None:
                dims.append(DEFAULT_BATCH)
                defaulted.add(inp.name)
            else:
                missing.append(f"{inp.name}[{k}] ({d.dim_param or 'unknown'})")
                batch_only = batch_only and k == 0
        shapes[inp.name] = dims
        elem_types[inp.name] = tt.elem_type
    # an input the check cannot draw (text, complex numbers, no type): refused here, before a job
    # exists, by name and type (errsweep8: a STRING input failed in the job as "element type 8")
    undrawable = [f"{name} ({element_type_name(elem)})" for name, elem in elem_types.items()
                  if elem not in FLOAT_ELEMENT_TYPES | INT_ELEMENT_TYPES]
    if undrawable:
        raise ModelError(f"graph input{'s' if len(undrawable) > 1 else ''} of a type the check cannot draw "
                         f"samples of: {', '.join(undrawable[:NAMED_NODES])}; it draws floating-point, integer "
                         "and boolean inputs (a model taking text takes the token ids a tokenizer makes: "
                         "export it from the ids on)")
    if invalid:
        raise ModelError("input dimensions declared 0 or negative: " + ", ".join(invalid[:5])
                         + "; give the input shapes (NAME=1x3x32x32)")
    if missing and one_sample is not None:
        # no batch axis: a dynamic first size is no batch either (a policy's n_moves), and is asked for
        example = next(m.split("[")[0] for m in missing)
        raise ModelError(f"dynamic dimensions without a size: {', '.join(missing)}; {one_sample}, so these "
                         "are no batch size: give them as input shapes (e.g. --input-shape "
                         f"{example}={'x'.join(str(d) if d > 0 else '8' for d in _declared(graph, example))})")
    if missing:
        raise ModelError("dynamic dimensions without a size: " + ", ".join(missing)
                         + ("; give the batch size (--batch-size 32; `batch_size` over HTTP) or the "
                            "input shapes" if batch_only else "; give them as input shapes")
                         + _shape_example(graph, missing, input_shapes, batch_size))
    act, largest, ranks = _estimate(model, shapes)
    # an axis or perm out of the range of its input's rank (errsweep E7), before any tensor is made
    check_axes(graph, ranks)
    # a Cast to a type no tensor here has; a Reshape, Squeeze, Unsqueeze, Dropout or Slice whose
    # constant inputs the op does not define (errsweep5 G10)
    check_ops(graph, known, ranks)
    # a window's strides, pads, dilations, group or kernel_shape that no convolution or pool has
    check_windows(graph, ranks)
    reduced: str | None = None
    if act > limits.max_activation_bytes and defaulted:
        # the default batch was the check's choice, not the user's: take the largest that fits
        fits = DEFAULT_BATCH * limits.max_activation_bytes // act
        if fits >= 2:
            for name in defaulted:
                shapes[name][0] = int(fits)
            # said, with why: the dead and saturated units are judged over the batch's samples
            # (onnxsweep26 genomic: simulated at batch 10 where the docs say 16, unsaid)
            reduced = (f"simulated at batch {int(fits)}, not the default {DEFAULT_BATCH}: at {DEFAULT_BATCH} the "
                       f"activations and their gradients would take about {act} bytes, over the limit of "
                       f"{limits.max_activation_bytes} (GRADHEALTH_LIMITS__MAX_ACTIVATION_BYTES); fewer samples "
                       "judge dead or saturated units less surely (--batch-size sets the batch)")
            act, largest, _ = _estimate(model, shapes)
    if act > limits.max_activation_bytes:
        first = next(iter(shapes.values()), [])
        batch = first[0] if first else 1
        fits = batch * limits.max_activation_bytes // act
        maker = {o: _node_label(n, k) for k, n in enumerate(graph.node) for o in n.output if o}
        # one tensor over the limit by itself: name the node that makes it
        alone = (f"; {largest[0]!r}, made by node {maker[largest[0]]}, alone takes about {largest[1]} bytes"
                 if largest is not None and largest[1] > limits.max_activation_bytes and largest[0] in maker
                 else "")
        way = (f"; a batch of {fits} or fewer fits (--batch-size; batch_size over HTTP)" if 1 <= fits < batch
               else "")
        if not way and not alone:
            # the batch is 1 already and no tensor is too big alone (onnxsweep11: 16 attention maps of
            # [1, 4, 5000, 5000] over 5000 tokens): what takes the memory, and the length that fits
            sized: list[tuple[str, int, list[int]]] = []
            _estimate(model, shapes, sized)
            way = _largest_producers(sized, graph) + _fitting_length(model, sized, shapes, act,
                                                                     limits.max_activation_bytes)
        if act > IMPOSSIBLE_BYTES:
            # past any machine's memory: no setting is the fix, the declared sizes are (errsweep8: a 2^62
            # input dimension was told to raise the limit to 590295810358705651712 bytes)
            declared = "; ".join(f"{n} {s}" for n, s in list(shapes.items())[:NAMED_NODES])
            fix = (f"; that is more memory than any machine has: the sizes are impossibly large (inputs: "
                   f"{declared[:300]}): fix the shapes the file declares, or give the sizes to use "
                   "(--input-shape NAME=1x3x32x32; input_shapes over HTTP)")
        else:
            fix = (f"; or raise the limit (GRADHEALTH_LIMITS__MAX_ACTIVATION_BYTES={_raised(act)} "
                   "where the machine has the memory)")
        raise LimitExceeded(f"activations and their gradients would take about {act} "
                            f"bytes, over the limit of {limits.max_activation_bytes}" + alone + way + fix)
    lifted = (f"{plan.why()}; every node after it takes a batch axis added in front, so it is simulated "
              f"over a batch of {next(iter(shapes[n][0] for n, *_ in plan.inputs))} such samples stacked "
              "along it" if plan is not None and plan.blocker is None else None)
    told = (f"dynamic size{'s' if len(inferred) > 1 else ''} taken from the graph: {'; '.join(inferred)} "
            "(--input-shape sets another)") if inferred else None
    batch_note = "; ".join(n for n in (told, lifted, reduced) if n is not None) or None
    return Header(model, shapes, elem_types, params, act, reordered, tuple(pruned), loss_note,
                  tuple(chosen) if sampled else (), folded, one_sample=one_sample, batch_note=batch_note,
                  batch_chosen=bool(defaulted), legacy_note=parsed_notes[0] if parsed_notes else None)


#: A dimension's size: positive and under 2**31, in both spellings of a shape (``x=8x3x32x32`` and
#: ``{"x": [8, 3, 32, 32]}``); protobuf's ``dim_value`` and every size the checks compute hold it.
MAX_SIZE = 2**31 - 1


def parse_input_range(text: str, name: str = "--input-range") -> tuple[float, float]:
    """``LO,HI`` (where a model file's float inputs lie, ``0,1`` for pixels scaled to [0, 1]) as a
    pair; :class:`ModelError` naming ``name`` otherwise."""
    return parse_range(text, name, "0,1 for pixels in [0, 1]", ModelError)


def _size(text: str, where: str) -> int:
    """One size of an input shape's text as an int, 1..MAX_SIZE; :class:`InputFormatError` naming
    it otherwise. Checked before ``int()``: ``str.isdigit()`` also takes '²' and '١', which int()
    refuses, and int() refuses over 4300 digits (errsweep6 H1)."""
    part = text.strip()
    if not (part.isascii() and part.isdigit()):
        raise InputFormatError(f"{where}: size {part[:40]!r} is not a whole number in the digits 0-9; "
                               "expected NAME=1x3x32x32 (positive sizes)")
    digits = part.lstrip("0") or "0"
    if len(digits) > len(str(MAX_SIZE)):
        shown = digits if len(digits) <= 40 else f"{digits[:40]}... ({len(digits)} digits)"
        raise InputFormatError(f"{where}: size {shown} out of range (1..2^31-1)")
    size = int(digits)
    if not 1 <= size <= MAX_SIZE:
        raise InputFormatError(f"{where}: size {size} out of range (1..2^31-1)")
    return size


def parse_input_shape(text: str) -> tuple[str, list[int]]:
    """``NAME=1x3x32x32`` (or ``NAME=1,3,32,32``) -> (name, sizes); :class:`InputFormatError` otherwise
    (each size ASCII digits, 1..2^31-1, the same bound as :func:`input_shapes_from`)."""
    name, sep, dims = text.rpartition("=")
    sizes = [p for p in re.split(r"[x,]", dims.strip()) if p.strip()] if sep else []
    where = f"input shape {text[:60]!r}{'...' if len(text) > 60 else ''}"
    if not name.strip() or not sizes:
        raise InputFormatError(f"{where}: expected NAME=1x3x32x32 (positive sizes)")
    return name.strip(), [_size(p, where) for p in sizes]


def input_shapes_from(value: Any) -> dict[str, list[int]]:
    """A JSON object name -> list of positive ints, checked; :class:`InputFormatError` otherwise."""
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and v
            and all(isinstance(d, int) and not isinstance(d, bool) and 0 < d <= MAX_SIZE for d in v)
            for k, v in value.items()):
        raise InputFormatError("input_shapes: expected a JSON object of input name -> list of positive "
                               'integers (1..2^31-1), e.g. {"x": [8, 3, 32, 32]}')
    return {k: list(v) for k, v in value.items()}
