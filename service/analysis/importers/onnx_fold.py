"""Folding the control flow an exporter writes around shapes (torch-free: protobuf and numpy only).

torch's TorchScript exporter writes ``torch.hstack`` (and ``vstack``, ``cat`` of a list) as an
``If(Equal(Size(Shape(x)), 1))`` whose branches each hold one ``ConcatFromSequence``: the condition
is the rank of a tensor, which the graph's sizes settle, not its data. :func:`fold_control_flow`
evaluates every ``If`` condition that follows from shapes and constants alone (Shape, Size, Gather
on shapes, comparisons, logic, Cast, Constant...) and inlines the branch it takes (its nodes, its
outputs renamed to the If's, its initializers carried), nested Ifs included; sequences built and read
with constant positions (SequenceConstruct, SequenceAt, ConcatFromSequence) become plain tensors.
What is left (an If chosen by tensor values, a Loop, a Scan) is refused, naming what the condition
depends on. Stored tensors outside the file are never read here.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from typing import Any

import numpy as np

from gradhealth.analysis.importers import ModelError
from gradhealth.core.words import first_few

#: Values larger than this are not folded (conditions and shapes are a handful of numbers).
_SMALL = 1 << 12
#: Nesting levels folded (each pass inlines the Ifs whose conditions are known, then looks again).
_MAX_PASSES = 64
#: The reasons kept per tensor (a union over a big graph's weights would grow without bound).
_MAX_REASONS = 4

_COMPARE = {"Equal": np.equal, "Greater": np.greater, "GreaterOrEqual": np.greater_equal,
            "Less": np.less, "LessOrEqual": np.less_equal, "And": np.logical_and, "Or": np.logical_or,
            "Xor": np.logical_xor}
_ARITH = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Max": np.maximum, "Min": np.minimum}


def _label(node: Any) -> str:
    return f"{node.name or node.op_type} ({node.op_type})"


def _subgraphs(node: Any) -> list[Any]:
    return [g for a in node.attribute for g in ([a.g] if a.HasField("g") else []) + list(a.graphs)]


def _attr(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _opset(model: Any) -> int:
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def _dynamic_dims(graph: Any, dims: dict[str, list[int | None]]) -> list[str]:
    return [f"{name}[{k}]" for name, sizes in dims.items() for k, s in enumerate(sizes) if s is None]


def _inferred_dims(model: Any, dims: dict[str, list[int | None]]) -> dict[str, list[int | None]]:
    """Every tensor's sizes (None where unknown) by ONNX shape inference on the known input sizes."""
    import onnx

    from gradhealth.analysis.importers.onnx_static import _shapes_only

    m = _shapes_only(model, {})
    for inp in m.graph.input:
        for k, size in enumerate(dims.get(inp.name, [])):
            d = inp.type.tensor_type.shape.dim
            if size is not None and k < len(d):
                d[k].ClearField("dim_param")
                d[k].dim_value = size
    # inference is a help here: without it, what the file declares
    with contextlib.suppress(Exception):
        m = onnx.shape_inference.infer_shapes(m, strict_mode=False, data_prop=True)
    out: dict[str, list[int | None]] = {}
    for vi in (*m.graph.input, *m.graph.value_info, *m.graph.output):
        tt = vi.type.tensor_type
        if vi.type.HasField("tensor_type") and tt.HasField("shape"):
            out[vi.name] = [int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else None
                            for d in tt.shape.dim]
    for t in model.graph.initializer:
        out[t.name] = [int(d) for d in t.dims]
    for name, sizes in dims.items():
        if name in out and len(out[name]) == len(sizes):
            out[name] = [s if s is not None else o for s, o in zip(sizes, out[name], strict=True)]
    return out


class _Values:
    """What a graph's tensors are, where shapes and constants settle it; why not, elsewhere."""

    def __init__(self, model: Any, dims: dict[str, list[int | None]]) -> None:
        from onnx import numpy_helper

        graph = model.graph
        self.known: dict[str, np.ndarray] = {}
        self.partial: dict[str, list[int | None]] = {}  # a shape vector with sizes not yet known
        self.why: dict[str, frozenset[str]] = {}
        self.shapes = _inferred_dims(model, dims)
        dynamic = _dynamic_dims(graph, dims)
        self.dynamic = (f"the dynamic input dimension(s) {', '.join(dynamic[:4])}" if dynamic
                        else "sizes shape inference does not settle")
        for t in graph.initializer:
            if t.data_location != 1 and not len(t.external_data) and math.prod(t.dims) <= _SMALL:
                try:
                    self.known[t.name] = np.asarray(numpy_helper.to_array(t))
                    continue
                except Exception:  # a tensor whose data does not match its dims
                    pass
            self.why[t.name] = frozenset({f"the values of the stored tensor {t.name!r}"})
        for inp in graph.input:
            if inp.name not in self.known and inp.name not in self.why:
                self.why[inp.name] = frozenset({f"the values of input {inp.name!r}"})
        for node in graph.node:
            try:
                self._node(node)
            except Exception:  # a malformed constant or an op numpy cannot do: not folded
                for o in node.output:
                    self.known.pop(o, None)
                    self.why[o] = frozenset({f"node {_label(node)}, which the check does not evaluate"})

    def reasons(self, name: str) -> frozenset[str]:
        return self.why.get(name, frozenset({f"{name!r}, which nothing defines"}))

    def _unknown(self, node: Any, reasons: frozenset[str]) -> None:
        kept = frozenset(sorted(reasons)[:_MAX_REASONS])
        for o in node.output:
            self.why[o] = kept

    def _shape_reason(self, name: str) -> frozenset[str]:
        return frozenset({f"the shape of {name!r}, which depends on {self.dynamic}"})

    def _node(self, node: Any) -> None:
        from onnx import helper, numpy_helper

        op, ins = node.op_type, list(node.input)
        out = node.output[0] if node.output else ""
        if node.domain not in ("", "ai.onnx") or _subgraphs(node):
            why = frozenset().union(*(self.reasons(i) for i in ins if i and i not in self.known))
            self._unknown(node, why or frozenset({f"the result of node {_label(node)}"}))
            return
        if op == "Constant":
            for a in node.attribute:
                if a.name == "value" and math.prod(a.t.dims) <= _SMALL and not len(a.t.external_data):
                    self.known[out] = np.asarray(numpy_helper.to_array(a.t))
                elif a.name in ("value_int", "value_ints", "value_float", "value_floats"):
                    self.known[out] = np.asarray(helper.get_attribute_value(a))
            if out not in self.known:
                self._unknown(node, frozenset({f"node {_label(node)}, a constant the check does not read"}))
            return
        if op in ("Shape", "Size") and ins:
            src = ins[0]
            sizes = (list(self.known[src].shape) if src in self.known
                     else self.partial.get(src) if op == "Size" and src in self.partial
                     else self.shapes.get(src))
            if op == "Size" and src in self.partial:  # the rank of a shape vector's tensor
                self.known[out] = np.array(len(self.partial[src]), np.int64)
                return
            if sizes is None:
                self._unknown(node, frozenset({f"the shape of {src!r}, which shape inference does not settle"}))
                return
            if op == "Size":
                if all(s is not None for s in sizes):
                    self.known[out] = np.array(math.prod(s for s in sizes if s is not None), np.int64)
                else:
                    self._unknown(node, self._shape_reason(src))
                return
            rank = len(sizes)
            start, end = int(_attr(node, "start", 0)), _attr(node, "end", None)
            start = max(0, min(rank, start + rank if start < 0 else start))
            stop = rank if end is None else max(0, min(rank, int(end) + rank if int(end) < 0 else int(end)))
            part = sizes[start:stop]
            if all(s is not None for s in part):
                self.known[out] = np.array(part, np.int64)
            else:
                self.partial[out] = part
                self._unknown(node, self._shape_reason(src))
            return
        missing = [i for i in ins if i and i not in self.known]
        if op == "Gather" and ins and ins[0] in self.partial and len(ins) > 1 and ins[1] in self.known:
            idx = self.known[ins[1]].astype(np.int64)
            picked = np.array(self.partial[ins[0]], dtype=object)[idx]
            if all(v is not None for v in np.ravel(picked)):
                self.known[out] = np.asarray(picked.tolist(), np.int64)
                return
        if missing:
            self._unknown(node, frozenset().union(*(self.reasons(i) for i in missing)))
            return
        v = [self.known[i] if i else None for i in ins]
        r = self._evaluate(node, op, v)
        if r is None:
            self._unknown(node, frozenset({f"node {_label(node)}, which the check does not evaluate"}))
        elif np.asarray(r).size > _SMALL:
            self._unknown(node, frozenset({f"node {_label(node)}, a value too large to fold"}))
        else:
            self.known[out] = np.asarray(r)

    @staticmethod
    def _evaluate(node: Any, op: str, v: list[Any]) -> Any:
        from onnx import helper

        if op == "Identity":
            return v[0]
        if op in _COMPARE:
            return _COMPARE[op](v[0], v[1])
        if op == "Not":
            return np.logical_not(v[0])
        if op in _ARITH and len(v) == 2:
            return _ARITH[op](v[0], v[1])
        if op == "Div":
            if np.issubdtype(v[0].dtype, np.integer):
                return np.trunc(np.true_divide(v[0], v[1])).astype(v[0].dtype)
            return np.true_divide(v[0], v[1])
        if op == "Neg":
            return np.negative(v[0])
        if op == "Abs":
            return np.abs(v[0])
        if op == "Cast":
            return v[0].astype(helper.tensor_dtype_to_np_dtype(int(_attr(node, "to"))))
        if op == "Concat":
            return np.concatenate([np.atleast_1d(x) for x in v if x is not None], axis=int(_attr(node, "axis", 0)))
        if op == "Gather":
            return np.take(v[0], v[1].astype(np.int64), axis=int(_attr(node, "axis", 0)))
        if op in ("Unsqueeze", "Squeeze"):
            axes = _attr(node, "axes", None)
            axes = [int(a) for a in (v[1] if len(v) > 1 and v[1] is not None else axes if axes is not None else [])]
            if op == "Squeeze":
                return np.squeeze(v[0], axis=tuple(axes)) if axes else np.squeeze(v[0])
            rank = v[0].ndim + len(axes)
            return np.expand_dims(v[0], tuple(sorted(a + rank if a < 0 else a for a in axes)))
        if op == "Reshape":
            shape = [int(s) for s in v[1]]
            shape = [v[0].shape[k] if s == 0 else s for k, s in enumerate(shape)]
            return np.reshape(v[0], shape)
        if op == "ConstantOfShape":
            value = _attr(node, "value", None)
            from onnx import numpy_helper
            fill = numpy_helper.to_array(value).ravel() if value is not None else np.zeros(1, np.float32)
            if math.prod(int(s) for s in v[0]) > _SMALL:
                return None
            return np.full([int(s) for s in v[0]], fill[0], fill.dtype)
        if op == "Where":
            return np.where(v[0], v[1], v[2])
        if op == "Slice":
            starts, ends = v[1], v[2]
            axes = v[3] if len(v) > 3 and v[3] is not None else np.arange(len(starts))
            steps = v[4] if len(v) > 4 and v[4] is not None else np.ones(len(starts), np.int64)
            index = [slice(None)] * v[0].ndim
            for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
                index[int(a)] = slice(int(s), int(e), int(st))
            return v[0][tuple(index)]
        if op == "Range":
            return np.arange(v[0], v[1], v[2])
        return None


def _rename_graph(graph: Any, names: dict[str, str]) -> None:
    """Rename reads and writes in ``graph`` and the bodies inside it (no body may redefine an outer
    name in ONNX, so every occurrence is the same tensor)."""
    for n in graph.node:
        for k, i in enumerate(n.input):
            if i in names:
                n.input[k] = names[i]
        for k, o in enumerate(n.output):
            if o in names:
                n.output[k] = names[o]
        for g in _subgraphs(n):
            _rename_graph(g, names)
    for vi in (*graph.input, *graph.output, *graph.value_info):
        if vi.name in names:
            vi.name = names[vi.name]
    for t in graph.initializer:
        if t.name in names:
            t.name = names[t.name]


def _defined(graph: Any) -> set[str]:
    names = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    for n in graph.node:
        names.update(o for o in n.output if o)
        for g in _subgraphs(n):
            names |= _defined(g)
    return names


def _inline(node: Any, branch: Any, taken: set[str]) -> tuple[list[Any], list[Any], list[Any]]:
    """The nodes, initializers and value infos that stand for ``node`` (an If) taking ``branch``."""
    import onnx
    from onnx import helper

    body = onnx.GraphProto()
    body.CopyFrom(branch)
    names: dict[str, str] = {}
    used = set(taken)
    for name in sorted(_defined(body)):
        if name in taken:  # a name the graph around it has (two branches may reuse names)
            k = 1
            while f"{name}__{k}" in used:
                k += 1
            names[name] = f"{name}__{k}"
            used.add(names[name])
    tails: list[Any] = []
    produced = {o for n in body.node for o in n.output if o}
    claimed: set[str] = set()
    for out, branch_out in zip(node.output, [o.name for o in body.output], strict=False):
        if not out:
            continue
        if branch_out in produced and branch_out not in claimed:
            names[branch_out] = out  # the branch's node writes the If's output itself
            claimed.add(branch_out)
        else:  # an outer name, a branch initializer, or a tensor given as two outputs
            tails.append(helper.make_node("Identity", [names.get(branch_out, branch_out)], [out],
                                          name=f"{node.name or 'If'}/{out}"))
    _rename_graph(body, names)
    # a branch's outputs renamed above were declared for the branch: the If's output keeps its own
    infos = [vi for vi in body.value_info if vi.name not in set(node.output)]
    return list(body.node) + tails, list(body.initializer), infos


def _sequences(model: Any) -> None:
    """Sequences built and read with constant positions, as plain tensors: SequenceConstruct's
    elements read by SequenceAt (an Identity), SequenceLength (a Constant) and ConcatFromSequence (a
    Concat, of Unsqueezed elements with ``new_axis``); the SequenceConstruct goes once nothing reads it."""
    from onnx import helper, numpy_helper

    graph = model.graph
    unsqueeze_input = _opset(model) >= 13
    consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer
                                     if math.prod(t.dims) <= 16 and t.data_location != 1}
    seqs: dict[str, list[str]] = {}
    nodes: list[Any] = []
    for n in graph.node:
        if n.op_type == "Constant" and n.output:
            t = _attr(n, "value", None)
            if t is not None and math.prod(t.dims) <= 16:
                consts[n.output[0]] = numpy_helper.to_array(t)
            elif _attr(n, "value_int", None) is not None:
                consts[n.output[0]] = np.array(_attr(n, "value_int"))
        if n.op_type == "SequenceConstruct" and n.domain in ("", "ai.onnx"):
            seqs[n.output[0]] = [i for i in n.input]
        elif n.op_type == "SequenceAt" and n.input[0] in seqs and n.input[1] in consts:
            items = seqs[n.input[0]]
            k = int(np.ravel(consts[n.input[1]])[0])
            if -len(items) <= k < len(items):
                nodes.append(helper.make_node("Identity", [items[k]], list(n.output), name=n.name))
                continue
        elif n.op_type == "SequenceLength" and n.input[0] in seqs:
            nodes.append(helper.make_node("Constant", [], list(n.output), name=n.name, value=numpy_helper.from_array(
                np.array(len(seqs[n.input[0]]), np.int64))))
            continue
        elif n.op_type == "ConcatFromSequence" and n.input[0] in seqs and seqs[n.input[0]]:
            axis, new_axis = int(_attr(n, "axis", 0)), int(_attr(n, "new_axis", 0))
            items = seqs[n.input[0]]
            if new_axis:
                lifted = []
                for k, item in enumerate(items):
                    name = f"{n.output[0]}/unsqueezed_{k}"
                    if unsqueeze_input:
                        axes = f"{n.output[0]}/axes"
                        if k == 0:
                            nodes.append(helper.make_node("Constant", [], [axes], name=axes,
                                                          value=numpy_helper.from_array(np.array([axis], np.int64))))
                        nodes.append(helper.make_node("Unsqueeze", [item, axes], [name], name=name))
                    else:
                        nodes.append(helper.make_node("Unsqueeze", [item], [name], name=name, axes=[axis]))
                    lifted.append(name)
                items = lifted
            nodes.append(helper.make_node("Concat", items, list(n.output), name=n.name, axis=axis))
            continue
        nodes.append(n)
    read = {o.name for o in graph.output}
    for n in nodes:
        read.update(n.input)
        for g in _subgraphs(n):
            from gradhealth.analysis.importers.onnx_static import _outer_reads
            read |= _outer_reads(g)
    nodes = [n for n in nodes if not (n.op_type == "SequenceConstruct" and n.output[0] not in read)]
    if len(nodes) != len(graph.node) or any(a is not b for a, b in zip(nodes, graph.node, strict=False)):
        copies = [type(n)() for n in nodes]
        for c, n in zip(copies, nodes, strict=True):
            c.CopyFrom(n)
        del graph.node[:]
        graph.node.extend(copies)


def _construct(node: Any) -> str:
    """What made an If, where its branches say: torch's exporter writes hstack/vstack/cat of a list so."""
    ops = {n.op_type for g in _subgraphs(node) for n in g.node}
    if "ConcatFromSequence" in ops:
        return ("torch.onnx.export writes torch.hstack, torch.vstack and torch.cat of a list as an If on "
                "the rank, with a ConcatFromSequence in each branch")
    return ""


#: the converters of Keras / TensorFlow models, whose Loop is a recurrent layer's while_loop
TENSORFLOW_PRODUCERS = ("tf2onnx", "keras2onnx", "onnxmltools")


def _loop_advice(producer: str) -> str:
    """How to export a model without a Loop or Scan node, in the terms of the tool that wrote the
    file (its ``producer_name``): a Keras recurrent layer that tf2onnx wrote as a while_loop (onnxsweep22
    water_gru was told of torch.jit.script), or torch's exporter."""
    if producer.lower().startswith(TENSORFLOW_PRODUCERS):
        return (f"the file was converted by {producer}, which writes a Keras recurrent layer as a while_loop "
                "(Loop) where it cannot rewrite it as an ONNX LSTM/GRU node: build the layer with unroll=True "
                "(a fixed sequence length), which exports every step as plain ops, or keep the stock LSTM/GRU "
                "layers with their default activations, which tf2onnx rewrites as ONNX LSTM/GRU nodes (both "
                "are simulated)")
    return ("export the loop unrolled (tracing unrolls a loop of fixed length; a loop under torch.jit.script "
            "or a torch while_loop/scan exports as a Loop or Scan node)")


def fold_control_flow(model: Any, dims: dict[str, list[int | None]]) -> int:
    """Inline, in place, every ``If`` whose condition shapes and constants settle (``dims``: each graph
    input's sizes, None where the check does not know them yet), and resolve static sequences;
    returns how many Ifs were folded. Raises :class:`ModelError` for the control flow left: an If
    chosen by tensor values (naming them), a Loop or Scan."""
    graph = model.graph
    folded = 0
    if not any(_subgraphs(n) or n.op_type.startswith("Sequence") or n.op_type == "ConcatFromSequence"
               for n in graph.node):
        return 0
    values: _Values | None = None
    for _ in range(_MAX_PASSES):
        _sequences(model)
        if not any(n.op_type == "If" and n.domain in ("", "ai.onnx") for n in graph.node):
            break
        values = _Values(model, dims)
        # the names a branch must not reuse: the graph's own and those of the other nodes' bodies
        inside = Counter(name for n in graph.node for g in _subgraphs(n) for name in _defined(g))
        taken = {i.name for i in graph.input} | {t.name for t in graph.initializer}
        taken |= {o for n in graph.node for o in n.output if o}
        nodes: list[Any] = []
        changed = False
        for n in graph.node:
            cond = n.input[0] if n.op_type == "If" and n.input else None
            known = values.known.get(cond) if cond else None
            if known is None or np.asarray(known).size != 1:
                nodes.append(n)
                continue
            branch = _attr(n, "then_branch" if bool(np.ravel(known)[0]) else "else_branch")
            if branch is None or len(branch.input) or len(branch.sparse_initializer):
                nodes.append(n)
                continue
            own = Counter(name for g in _subgraphs(n) for name in _defined(g))
            body, inits, infos = _inline(n, branch, taken | {k for k, c in inside.items() if c > own[k]})
            taken |= {o for b in body for o in b.output} | {t.name for t in inits}
            nodes.extend(body)
            graph.initializer.extend(inits)
            graph.value_info.extend(infos)
            folded += 1
            changed = True
        if not changed:
            break
        copies = [type(n)() for n in nodes]
        for c, n in zip(copies, nodes, strict=True):
            c.CopyFrom(n)
        del graph.node[:]
        graph.node.extend(copies)
        values = None
    _sequences(model)
    flow = [n for n in graph.node if _subgraphs(n)]
    if not flow:
        return folded
    ifs = [n for n in flow if n.op_type == "If"]
    loops = [n for n in flow if n.op_type != "If"]
    parts: list[str] = []
    if ifs:
        values = values or _Values(model, dims)
        reasons = sorted(frozenset().union(*(values.reasons(n.input[0]) for n in ifs if n.input)))
        labels = [_label(n) for n in ifs]
        named = first_few(labels)
        what = " and ".join(reasons[:_MAX_REASONS]) or "nothing the check can evaluate"
        shape_only = all(r.startswith("the shape of") for r in reasons)
        part = (f"the condition{'s' if len(ifs) > 1 else ''} of {named} depend{'' if len(ifs) > 1 else 's'} on "
                f"{what}")
        if shape_only:
            part += ("; give those sizes (--input-shape NAME=16x3x32x32, --batch-size; input_shapes over HTTP) "
                     "and an If on shapes alone is folded to the branch it takes")
        elif not any(r.startswith("the values of") for r in reasons):
            part += ("; the check folds an If whose condition shapes and constants settle through Shape, Size, "
                     "Gather, Slice, Concat, arithmetic, comparisons, logic and Cast")
        else:
            part += ("; the check simulates one path through the graph, and an If chosen by tensor values has "
                     "two (an If on shapes and constants alone is folded to its branch): export the model "
                     "with the branch fixed, as tracing does (an `if` on a tensor's values under "
                     "torch.jit.script, or torch.cond, keeps both branches)")
        construct = next((c for c in map(_construct, ifs) if c), "")
        if construct:
            part += f" ({construct})"
        parts.append(part)
    if loops:
        labels = [_label(n) for n in loops]
        named = first_few(labels)
        parts.append(f"{named} run{'' if len(loops) > 1 else 's'} a loop body, which is not simulated; "
                     + _loop_advice(str(getattr(model, "producer_name", "") or "")))
    raise ModelError("control flow is not simulated: " + "; ".join(parts))
