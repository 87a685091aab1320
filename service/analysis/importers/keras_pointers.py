"""Where in a Keras file each part of its translated spec came from, so a refusal of that spec names
the user's file, not the spec the importer made of it.

The spec door (:func:`.keras._translate`) turns each Keras layer into spec layers and records, per
spec layer pointer (``/layers/0``), an :class:`Origin`: the Keras layer's name, class, config and
JSON pointer in the file (``/config/layers/1``). The input's sizes are recorded too
(``/input/shape/0`` -> ``/config/layers/0/config/batch_shape/1``). When ``parse_spec`` or
``make_plan`` refuse the translated spec (:class:`~gradhealth.errors.SpecError`,
:class:`~gradhealth.errors.LimitExceeded`), :func:`relocated` rewrites each problem: its pointer
into the Keras config where a spec field maps to a Keras key (the spec's ``p`` is a Dropout's
``rate``, ``out_features`` a Dense's ``units``), else to the Keras layer with the message saying it
is about that layer's translation; the spec's unit names (``layers[0].linear``) in the text become
the Keras layer's name. Pointers with no Keras counterpart (``/batch_size``, ``/seeds``: options,
not the file) are kept.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from gradhealth.core.pointers import escape
from gradhealth.errors import Problem, SpecError


class Origin(NamedTuple):
    """The Keras layer a spec layer (or the spec's input) was translated from."""

    name: str  # the Keras layer's name
    cls: str  # its class_name
    cfg: dict[str, Any]  # its config
    layout: str  # the layout of its input (vector, sequence, image, channels or tokens)
    where: str = ""  # JSON pointer of the layer object in the file (/config/layers/1), or of the value
    exact: bool = False  # ``where`` is the very value (an input size), not the layer object


Origins = dict[str, Origin]

#: a spec field -> the Keras config key it was read from (a tuple: the first one present)
Keys = dict[str, str | tuple[str, ...]]
_RECURRENT: Keys = {"hidden_size": "units", "output": "return_sequences", "init": "kernel_initializer",
              "recurrent_init": "recurrent_initializer", "bias_init": "bias_initializer",
              "nonlinearity": "activation", "recurrent_activation": "recurrent_activation",
              "reset_after": "reset_after", "forget_bias": "unit_forget_bias"}
_WEIGHTED: Keys = {"activation": "activation", "bias": "use_bias", "init": "kernel_initializer",
             "bias_init": "bias_initializer", "negative_slope": "activation"}
_DROPOUT: Keys = {"p": "rate"}
_POOL: Keys = {"kernel_size": "pool_size", "stride": ("strides", "pool_size")}
#: Keras class -> spec field -> the Keras config key it was read from
FIELDS: dict[str, Keys] = {
    "Dense": {"out_features": "units", **_WEIGHTED},
    "Conv1D": {"out_channels": "filters", "kernel_size": "kernel_size", "stride": "strides",
               "padding": "padding", **_WEIGHTED},
    "Conv2D": {"out_channels": "filters", "kernel_size": "kernel_size", "stride": "strides",
               "padding": "padding", **_WEIGHTED},
    "MaxPooling2D": _POOL, "AveragePooling2D": _POOL,
    "Dropout": _DROPOUT, "SpatialDropout1D": _DROPOUT, "SpatialDropout2D": _DROPOUT,
    "SpatialDropout3D": _DROPOUT, "GaussianDropout": _DROPOUT,
    "SimpleRNN": _RECURRENT, "LSTM": _RECURRENT, "GRU": _RECURRENT,
    "Bidirectional": {field: f"layer/config/{key}" for field, key in _RECURRENT.items() if isinstance(key, str)},
    "Embedding": {"embedding_dim": "output_dim", "init": "embeddings_initializer"},
    "Activation": {"activation": "activation"},
    "LeakyReLU": {"negative_slope": ("negative_slope", "alpha")},
    "ReLU": {"negative_slope": "negative_slope"},
    "PReLU": {"negative_slope": "alpha_initializer"},
}


def keras_key(origin: Origin, field: str) -> str | None:
    """The config key (relative, ``config/rate``) the spec's ``field`` of a layer translated from
    ``origin`` was read from, or None when no one key says it."""
    key = FIELDS.get(origin.cls, {}).get(field)
    if key is None:
        return None
    if isinstance(key, tuple):  # the first one the config gives, else the first (where to add it)
        key = next((k for k in key if k in origin.cfg), key[0])
    return "config/" + "/".join(escape(part) for part in key.split("/"))


def _nearest(pointer: str, origins: Origins) -> tuple[str, Origin] | None:
    """The longest spec pointer of ``origins`` that is ``pointer`` or a parent of it."""
    while True:
        if pointer in origins:
            return pointer, origins[pointer]
        if "/" not in pointer.strip("/"):
            return None
        pointer = pointer.rsplit("/", 1)[0]


def describe(origin: Origin) -> str:
    """How a message names the Keras layer: ``Dropout layer 'dropout_1'``, ``InputLayer 'input'``."""
    if origin.cls == "model":  # a shape the model itself states (build_input_shape)
        return f"the input of model {origin.name!r}"
    return f"{origin.cls} {origin.name!r}" if origin.cls.endswith("Layer") else f"{origin.cls} layer {origin.name!r}"


def relocate(problem: Problem, origins: Origins, base: str = "/config/layers") -> Problem:
    """``problem`` (about the translated spec) pointed into the Keras file, naming its layer."""
    pointer = problem.pointer
    message = problem.message
    if pointer and message.startswith(f"{pointer}: "):  # a message that starts with its own pointer
        message = message[len(pointer) + 2:]
    message = rename(message, origins)
    if pointer == "/layers":
        return Problem(base, f"the translated model: {message}")
    found = _nearest(pointer, origins) if pointer.startswith(("/layers/", "/input")) else None
    if found is None:
        if pointer.startswith("/layers/"):
            return Problem(pointer, f"the translated spec (not a place in the Keras file): {message}")
        return Problem(pointer, message)
    spec_pointer, origin = found
    rest = pointer[len(spec_pointer):].strip("/")
    if origin.exact:  # an input size: that very value of the file
        return Problem(origin.where, f"{describe(origin)}: {message}")
    if not rest:
        return Problem(origin.where, f"{describe(origin)}: {message}")
    field, _, deeper = rest.partition("/")
    key = keras_key(origin, field)
    if key is not None and not deeper:
        return Problem(f"{origin.where}/{key}", f"{describe(origin)}: {message}")
    if key is not None:  # e.g. init/std: the initializer, which the spec reads a field of
        return Problem(f"{origin.where}/{key}", f"{describe(origin)}, as translated (its `{rest}`): {message}")
    return Problem(origin.where, f"the translated layer of Keras layer {origin.name!r} ({origin.cls}), "
                                 f"at its `{rest}`: {message}")


#: A spec unit name: layers[2].residual.layers[0].linear, with a copy's #k
_UNIT = re.compile(r"(?<![\w\].])((?:layers\[\d+\]\.[a-z0-9_]+\.)*layers\[\d+\]\.[a-z0-9_]+)(#\d+)?")
#: A spec layer pointer inside a message: /layers/0, /layers/2/layers/1
_POINTER = re.compile(r"(?<![\w/])((?:/layers/\d+)+)(?![\w/])")


def rename(text: str, origins: Origins) -> str:
    """``text`` with the spec's unit names and layer pointers replaced by the Keras layers'."""

    def unit(match: re.Match[str]) -> str:
        pointer = "".join(f"/layers/{i}" for i in re.findall(r"layers\[(\d+)\]", match.group(1)))
        origin = origins.get(pointer)
        if origin is None:
            return match.group(0)
        return f"{origin.name!r} ({origin.cls})" + (match.group(2) or "")

    def pointer(match: re.Match[str]) -> str:
        origin = origins.get(match.group(1))
        return origin.where if origin is not None and origin.where else match.group(0)

    return _POINTER.sub(pointer, _UNIT.sub(unit, text))


def relocated(exc: SpecError, origins: Origins | None, base: str = "/config/layers") -> SpecError:
    """``exc`` (a refusal of the translated spec) with every problem pointed into the Keras file
    (:func:`relocate`); the same type (a :class:`LimitExceeded` stays one). ``exc`` itself when
    nothing in it is about the translation (``/device``, ``/seeds``)."""
    if not origins:
        return exc
    problems = [relocate(p, origins, base) for p in exc.problems]
    if problems == exc.problems:
        detail = rename(exc.detail, origins)
        if detail == exc.detail:
            return exc
    else:
        detail = "; ".join(str(p) for p in problems[:5])
        if len(problems) > 5:
            detail += f"; and {len(problems) - 5} more"
    return type(exc)(detail, problems)
