"""tf.keras 2's ``TFOpLambda`` layers as the Keras layers they compute (torch-free, Keras-free).

tf.keras 2.4-2.15 writes a ``TFOpLambda`` (``SlicingOpLambda`` for ``x[...]``) for every raw tensor
operator or ``tf.*`` call in Functional code: ``x + res`` in the keras-io transformer examples is
``{"class_name": "TFOpLambda", "config": {"function": "__operators__.add"}}`` with its second
operand in the inbound node's kwargs (``{"y": ["multi_head_attention", 0, 0]}``). Unlike a
``Lambda``, its config is pure data: the function is a name in TensorFlow's API, not code. So the
common ones are rewritten here, before either door reads the config, as the Keras layer that
computes the same: ``__operators__.add`` -> ``Add``, ``math.multiply`` -> ``Multiply``,
``nn.relu`` -> ``Activation("relu")``, ``concat`` -> ``Concatenate``, ``reshape`` -> ``Reshape``...
with every tensor operand an inbound tensor in call order (a number operand, ``x * 0.5``, as a
Keras 3 op's argument, which the graph door reads). The rest keep their class and are refused
naming each function (:func:`unmapped_functions`); their tensor operands are still listed as
inbound tensors, so every layer a refused op reads is reached and named (the kwargs operand was
dropped before, which left the first block of a transformer unread and uncounted: kerassweep26).
"""

from __future__ import annotations

from typing import Any

from gradhealth.analysis.importers import keras_walk

__all__ = ["OP_CLASSES", "OPS_READ", "RANDOM_DRAW_ADVICE", "random_draw_advice", "tf_op_config",
           "unmapped_functions"]

#: Classes tf.keras writes for a raw TensorFlow op in a Functional model.
OP_CLASSES = ("TFOpLambda", "SlicingOpLambda")

#: Binary arithmetic: the op's name in TensorFlow's API -> the Keras merge layer.
_BINARY = {
    "__operators__.add": "Add", "math.add": "Add", "add": "Add",
    "math.subtract": "Subtract", "subtract": "Subtract", "__operators__.sub": "Subtract",
    "math.multiply": "Multiply", "multiply": "Multiply", "__operators__.mul": "Multiply",
    "math.truediv": "Divide", "math.divide": "Divide", "divide": "Divide", "truediv": "Divide",
    "__operators__.truediv": "Divide",
    "math.maximum": "Maximum", "maximum": "Maximum", "math.minimum": "Minimum", "minimum": "Minimum",
}
#: Elementwise activations: the op -> the Keras activation name (the same function).
_ACTIVATIONS = {
    "nn.relu": "relu", "nn.relu6": "relu6", "math.sigmoid": "sigmoid", "nn.sigmoid": "sigmoid",
    "sigmoid": "sigmoid", "math.tanh": "tanh", "nn.tanh": "tanh", "tanh": "tanh", "nn.elu": "elu",
    "nn.selu": "selu", "nn.silu": "silu", "nn.swish": "silu", "math.softplus": "softplus",
    "nn.softplus": "softplus", "math.softsign": "softsign", "nn.softsign": "softsign",
    "math.exp": "exponential", "exp": "exponential", "nn.gelu": "gelu", "nn.softmax": "softmax",
    "math.softmax": "softmax",
}
#: The other keyword each op may be given (with ``name``), and what it must be for the mapping to hold.
_SECOND = {"Add": "y", "Subtract": "y", "Multiply": "y", "Divide": "y", "Maximum": "y", "Minimum": "y"}
#: What the refusal says this door reads, for the user who wrote another op.
OPS_READ = ("+ - * / (tf.math.add, subtract, multiply, truediv, maximum, minimum, with a tensor or a "
            "number), elementwise activations (tf.nn.relu, tf.math.sigmoid, tf.math.tanh, tf.nn.softmax "
            "on the last axis ...), tf.concat, tf.reshape (batch axis kept) and tf.transpose (batch axis first)")


def _is_ref(value: Any) -> bool:
    """Whether ``value`` is tf.keras 2's tensor reference ``[layer, node, tensor(, kwargs)]``."""
    return (isinstance(value, list) and len(value) >= 3 and isinstance(value[0], str)
            and isinstance(value[1], int) and not isinstance(value[1], bool))


def _first_arg(node: Any) -> list[list[Any]]:
    """The tensor references of a node's first argument, in order (a single tensor, or a list of
    them for ``tf.concat``), each ``[layer, node, tensor, kwargs]``."""
    if _is_ref(node):
        return [node]
    out: list[list[Any]] = []
    if isinstance(node, list):
        for item in node:
            out += _first_arg(item)
    return out


def _refs(value: Any) -> list[list[Any]]:
    """Every tensor reference in ``value`` (a kwargs value), in order, as ``[layer, node, tensor]``."""
    if _is_ref(value):
        return [list(value[:3])]
    if isinstance(value, list):
        return [r for item in value for r in _refs(item)]
    if isinstance(value, dict):
        return [r for item in value.values() for r in _refs(item)]
    return []


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _keras3_ref(ref: list[Any]) -> dict[str, Any]:
    """A tf.keras 2 reference as the Keras 3 tensor the graph door reads in a call's args."""
    return {"class_name": "__keras_tensor__", "config": {"keras_history": [ref[0], ref[1], ref[2]]}}


def _mapped(function: str, node: Any) -> tuple[str, dict[str, Any], Any] | None:
    """(Keras class, its config fields, its inbound node) computing ``function`` on ``node``'s
    operands, or None where this module maps it to none."""
    entries = _first_arg(node)
    if not entries:
        return None
    kwargs = entries[0][3] if len(entries[0]) > 3 and isinstance(entries[0][3], dict) else {}
    given = {k: v for k, v in kwargs.items() if k != "name" and v is not None}
    first = [list(e[:3]) for e in entries]
    if entries[0][0] == "_CONSTANT_VALUE":  # a number first: 2.0 - x is written ["_CONSTANT_VALUE", -1, 2.0, kwargs]
        return None if len(entries) != 1 or _number(entries[0][2]) is None else _binary(
            function, [_number(entries[0][2])], given)
    if function in _BINARY:
        return None if len(first) != 1 else _binary(function, [first[0]], given)
    if function in _ACTIVATIONS:
        axis = given.pop("axis", -1)
        if len(first) != 1 or (function.endswith("softmax") and axis != -1):
            return None
        if function == "nn.gelu" and given.pop("approximate", False):
            return None
        if given:
            return None
        return "Activation", {"activation": _ACTIVATIONS[function]}, [[[*first[0], {}]]]
    if function == "concat":
        axis = given.pop("axis", None)
        if len(first) < 2 or given or not isinstance(axis, int) or isinstance(axis, bool) or axis == 0:
            return None
        return "Concatenate", {"axis": axis}, [[[*ref, {}] for ref in first]]
    if function == "reshape":
        shape = given.pop("shape", None)
        if (len(first) != 1 or given or not isinstance(shape, list) or len(shape) < 2
                or shape[0] not in (-1, None)
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in shape[1:])):
            return None
        return "Reshape", {"target_shape": shape[1:]}, [[[*first[0], {}]]]
    if function in ("compat.v1.transpose", "transpose", "linalg.matrix_transpose"):
        perm = given.pop("perm", None)
        if (len(first) != 1 or given or not isinstance(perm, list) or not perm or perm[0] != 0
                or sorted(perm) != list(range(len(perm)))):
            return None
        return "Permute", {"dims": perm[1:]}, [[[*first[0], {}]]]
    return None


def _binary(function: str, first: list[Any], given: dict[str, Any]) -> tuple[str, dict[str, Any], Any] | None:
    """A binary op with the first operand ``first[0]`` (a reference, or a number) and ``y`` in ``given``."""
    cls = _BINARY.get(function)
    if cls is None or set(given) != {_SECOND[cls]}:
        return None
    y = given[_SECOND[cls]]
    operands: list[Any] = [first[0], list(y[:3]) if _is_ref(y) else _number(y)]
    if operands[1] is None or all(not isinstance(o, list) for o in operands):
        return None  # a constant array (a stored tensor), or no tensor at all
    if all(isinstance(o, list) for o in operands):
        return cls, {}, [[[*o, {}] for o in operands]]
    # a number operand: the call's arguments in order, as Keras 3 writes `x + 3.0`
    return cls, {}, [{"args": [_keras3_ref(o) if isinstance(o, list) else o for o in operands], "kwargs": {}}]


def tf_op_config(model: Any) -> Any:
    """``model`` (a Keras model config) with every ``TFOpLambda`` that computes what a Keras layer
    computes rewritten as that layer (a new dict; ``model`` itself where it has none). The layer
    keeps its name and gets ``_tf_function`` (the op's name) in its config; an op mapped to none
    keeps its class, its operands listed as inbound tensors."""
    return keras_walk.rewritten(model, _is_op, _convert)


def _is_op(value: dict[str, Any]) -> bool:
    cls = value.get("class_name")
    return (isinstance(cls, str) and cls in OP_CLASSES and isinstance(value.get("config"), dict)
            and isinstance(value.get("inbound_nodes"), list))


def _convert(value: dict[str, Any]) -> None:
    cfg, nodes = value["config"], value["inbound_nodes"]
    function = str(cfg.get("function") or "")
    mapped = _mapped(function, nodes[0]) if len(nodes) == 1 and value["class_name"] == "TFOpLambda" else None
    cfg["_tf_function"] = function
    if mapped is None:
        # refused by its class; every tensor it reads listed (a kwargs operand too), so the
        # layers before it are reached and named with it
        refs = [r for node in nodes for r in _refs(node) if r[0] != "_CONSTANT_VALUE"]
        value["inbound_nodes"] = [[[*r, {}] for r in refs]] if refs else nodes
        return
    cls, fields, node = mapped
    value["class_name"] = cls
    value["config"] = {"name": cfg.get("name", value.get("name")), "trainable": cfg.get("trainable", True),
                       "dtype": cfg.get("dtype"), **fields, "_tf_function": function}
    value["inbound_nodes"] = node


def unmapped_functions(functions: list[str]) -> str:
    """The reason a TFOpLambda was refused, naming each op (``tf.math.reduce_mean x2``)."""
    counts: dict[str, int] = {}
    for f in functions:
        counts[f] = counts.get(f, 0) + 1
    named = ", ".join(f"tf.{f}" + (f" x{n}" if n > 1 else "") for f, n in counts.items())
    return (f"a TensorFlow op this door maps to no Keras layer ({named}, or its operands are not "
            f"ones it maps); the ops read are {OPS_READ}" + random_draw_advice(functions))


#: What a refusal of a random draw written as tf ops advises (a VAE's reparameterisation,
#: ``z_mean + tf.exp(0.5 * z_log_var) * tf.random.normal(tf.shape(z_mean))``): the draw has no weights
#: and carries no gradient, so the network worth checking is the encoder up to the layers it reads
RANDOM_DRAW_ADVICE = ("; {ops} is a random draw, which is not simulated: where it is a VAE's sampling "
                      "(z = z_mean + exp(0.5 * z_log_var) * tf.random.normal(tf.shape(z_mean))), check the "
                      "encoder up to z_mean and z_log_var, a model cut at those layers "
                      "(keras.Model(inputs, [z_mean, z_log_var]) saved as a file of its own), and the decoder "
                      "as a model that takes the latent as its input")


def random_draw_advice(functions: list[str]) -> str:
    """The advice for a refusal whose ops include a random draw (``tf.random.normal``,
    ``tf.random.uniform``, TF 1's ``tf.compat.v1.random_normal``...): check the encoder up to what
    the sampling reads (:data:`RANDOM_DRAW_ADVICE`); empty where there is none."""
    draws = list(dict.fromkeys(f for f in functions if _is_random(f)))
    return RANDOM_DRAW_ADVICE.format(ops=" and ".join(f"tf.{f}" for f in draws)) if draws else ""


def _is_random(function: str) -> bool:
    """Whether the TensorFlow op named ``function`` (as a TFOpLambda names it) draws random numbers."""
    parts = function.split(".")
    return "random" in parts[:-1] or parts[-1].startswith(("random_", "truncated_normal"))
