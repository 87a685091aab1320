"""The architecture spec: a small declarative description of a network.

The field names here are public contract (clients, CI files and dashboards depend
on them): add fields freely, rename none. The JSON Schema is generated from
these models (:func:`spec_json_schema`) and says what the server enforces, except
where JSON Schema cannot (``d_model`` divisible by ``heads`` is in its description).

Example::

    input: {shape: [784]}
    batch_size: 64
    seeds: 3
    loss: {type: cross_entropy, classes: 10}
    layers:
      - {type: linear, out_features: 256, activation: sigmoid, init: {scheme: normal, std: 0.05}, repeat: 20}
      - {type: linear, out_features: 10}

Specs come from strangers, so reading one is bounded before pydantic sees it
(:func:`load_spec_text`, :func:`parse_spec`): at most :data:`MAX_NODES` values with YAML
aliases expanded (counted while composing, so an alias bomb never expands), at most
:data:`MAX_DEPTH` levels of nesting, and only JSON values (finite numbers, valid Unicode text
without NUL). Numbers are strict (``true`` is not ``1``) and bounded: integers by
:data:`MAX_INT`; scales, standard deviations, gains and bias constants by :data:`MAX_SCALE`;
``negative_slope`` by 1. YAML numbers are YAML 1.2's (core schema): ``1:30`` is text and ``010`` is
ten. Messages quote at most :data:`QUOTE_CHARS` characters of the input.
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PrivateAttr,
    Strict,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, core_schema
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from gradhealth.analysis.activations import SATURATING as SATURATING  # re-exported: spec vocabulary
from gradhealth.analysis.activations import Activation
from gradhealth.analysis.limits import (
    DEFAULT_MAX_SEEDS as DEFAULT_MAX_SEEDS,  # re-exported: seeds' maximum
)
from gradhealth.core.losses import LOSS_ALIASES
from gradhealth.core.numbers import MAX_RANGE, range_problem
from gradhealth.core.pointers import escape, pointer_of, too_deep_path
from gradhealth.core.words import first_few
from gradhealth.errors import InputFormatError, Problem, SpecError

#: Values in a spec (mapping keys included) after YAML aliases are expanded. Fifty times the
#: default layer limit (2,000 units), so any spec the limits allow fits with room for its fields,
#: while an alias bomb (10^6 layers from 560 bytes) is refused after reading this many.
MAX_NODES = 100_000
#: Levels of nesting (mappings and lists): about thirty nested blocks. Deeper input would only
#: exhaust the parsers' recursion.
MAX_DEPTH = 64
#: The largest integer accepted anywhere: 2^53 - 1, the largest every JSON reader keeps exactly
#: (RFC 7493). The resource limits refuse sizes far below it, with a better message.
MAX_INT = 2**53 - 1
#: The largest scale, standard deviation, gain, bias constant or residual multiplier: far past any
#: trained network, and small enough that float64 arithmetic on it stays finite.
MAX_SCALE = 100.0
#: The smallest positive scale, standard deviation, bound, gain or multiplier (``init.std``,
#: ``variance_scaling``'s ``scale``, ``input.scale``, a residual ``scale`` ...): 1e-30, 28 orders of
#: magnitude below any trained network's. Below it the numbers the check derives stop being normal
#: floats: a subnormal ``scale: 5e-324`` over a fan of 8 gave a std of 0, and torch's
#: ``trunc_normal_`` divided by it (errsweep6). From 1e-30 on, a variance (at least 1e-60) over any
#: fan up to 2^53 stays a normal float64 (above 2.2e-308), and the std drawn, at least 1e-23, a
#: normal float32 (above 1.2e-38).
MIN_SCALE = 1e-30
#: How much of a user's input a message may quote.
QUOTE_CHARS = 200
#: At most this many problems are reported for one spec (the first ones in document order).
MAX_PROBLEMS = 50

#: An integer: strict (booleans and strings are not numbers) and at most MAX_INT.
Int = Annotated[int, Strict(), Field(le=MAX_INT)]
#: A number: strict (booleans are not numbers; integers are fine) and finite (model config).
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
Text = Annotated[str, Strict()]

InitScheme = Literal[
    "default", "normal", "uniform", "xavier_normal", "xavier_uniform",
    "kaiming_normal", "kaiming_uniform", "he_normal", "he_uniform",
    "lecun_normal", "orthogonal", "zeros", "variance_scaling", "truncated_normal", "identity",
    "glorot_normal", "glorot_uniform",
]

BiasScheme = Literal["default", "zeros", "constant", "normal"]
#: mae and huber (delta 1) are regression losses against a standard-normal target, as mse.
LossType = Literal["cross_entropy", "mse", "sum", "binary_cross_entropy", "mae", "huber"]


@dataclass(frozen=True)
class _OrString:
    """JSON Schema of a model that also accepts a string shorthand (``init: kaiming_normal``):
    the model or one of ``names`` (the schemes that need no parameters)."""

    names: tuple[str, ...]
    meaning: str

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        shorthand = {"type": "string", "enum": list(self.names), "description": self.meaning}
        return {"anyOf": [handler(schema), shorthand]}


def _when(field: str, values: list[Any], then: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema: ``then`` applies where ``field`` is present and one of ``values``."""
    return {"if": {"required": [field], "properties": {field: {"enum": values}}}, "then": then}


def _needs(field: str) -> dict[str, Any]:
    """JSON Schema: ``field`` is present and not null."""
    return {"required": [field], "properties": {field: {"not": {"type": "null"}}}}


class _Strict(BaseModel):
    # allow_inf_nan=False: JSON has no NaN or Infinity (and PostgreSQL's JSON columns refuse them).
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


class InitSpec(_Strict):
    """Weight initialisation. A plain string is shorthand for ``{scheme: <string>}``.

    ``normal`` draws N(0, std^2); ``uniform`` draws U(-bound, bound); ``xavier_*``
    give Var = gain^2 * 2/(fan_in + fan_out) (Glorot & Bengio 2010); ``kaiming_*``
    (He et al. 2015) give Var = 2/fan_in whatever the layer's activation, as torch's
    ``kaiming_normal_`` and Keras' ``he_normal`` do (2/((1 + a^2) fan_in) for ``leaky_relu``
    of slope a; ``gain`` replaces sqrt(2)); ``lecun_normal`` gives Var = 1/fan_in; ``orthogonal``
    a (semi-)orthogonal matrix times ``gain``; ``identity`` the identity times ``gain`` (a
    convolution's: the Dirac kernel that passes each channel through; IRNN's recurrent init, Le
    et al. 2015); ``default`` keeps PyTorch's own.
    """

    model_config = ConfigDict(json_schema_extra={"allOf": [
        _when("scheme", ["normal", "truncated_normal"], _needs("std")),
        _when("scheme", ["uniform"], _needs("bound"))]})

    scheme: InitScheme = "default"
    std: Float | None = Field(default=None, ge=MIN_SCALE, le=MAX_SCALE,
                              description="standard deviation for `normal` and `truncated_normal` (at most 100)")
    bound: Float | None = Field(default=None, ge=MIN_SCALE, le=MAX_SCALE,
                                description="half-width for `uniform` (at most 100)")
    gain: Float | None = Field(default=None, ge=MIN_SCALE, le=MAX_SCALE,
                               description="gain for xavier_*, orthogonal and identity (at most 100)")
    # Keras' VarianceScaling (the family of its glorot_*, he_* and lecun_* initialisers).
    scale: Float = Field(default=1.0, ge=MIN_SCALE, le=MAX_SCALE,
                         description="`variance_scaling`: Var = scale / fan (at most 100)")
    mode: Literal["fan_in", "fan_out", "fan_avg"] = Field(
        default="fan_in", description="`variance_scaling`: which fan")
    distribution: Literal["truncated_normal", "untruncated_normal", "uniform"] = Field(
        default="truncated_normal",
        description="`variance_scaling`: a normal cut at 2 std (its std raised so the variance "
                    "is still scale / fan, as Keras does), a plain normal, or a uniform")
    stacked: Bool = Field(default=False, description=(
        "recurrent layers: initialise the gates' stacked weight as one matrix (Keras' "
        "convention) instead of each gate's block; transformer_encoder: the attention's packed "
        "query/key/value projection as one matrix (PyTorch's convention) instead of three"))

    @field_validator("scheme", mode="after")
    @classmethod
    def _keras_glorot(cls, scheme: str) -> str:
        # Keras' names for the Glorot inits are the xavier_* schemes (newuser16 #4: he_normal was
        # accepted and Keras' own default, glorot_uniform, refused)
        return _VALUE_ALIASES["scheme"].get(scheme, scheme)

    @model_validator(mode="after")
    def _needs_parameters(self) -> InitSpec:
        if self.scheme in ("normal", "truncated_normal") and self.std is None:
            raise ValueError(f"scheme '{self.scheme}' needs `std` (a number > 0)")
        if self.scheme == "uniform" and self.bound is None:
            raise ValueError("scheme 'uniform' needs `bound` (a number > 0)")
        return self


class BiasInit(_Strict):
    """Bias initialisation: ``zeros``, ``constant`` (value), ``normal`` (std) or PyTorch's ``default``."""

    model_config = ConfigDict(json_schema_extra={"allOf": [_when("scheme", ["normal"], _needs("std"))]})

    scheme: BiasScheme = "default"
    value: Float = Field(default=0.0, ge=-MAX_SCALE, le=MAX_SCALE,
                         description="the bias of `constant` (-100 to 100)")
    std: Float | None = Field(default=None, ge=MIN_SCALE, le=MAX_SCALE, description="for `normal` (at most 100)")

    @model_validator(mode="after")
    def _needs_std(self) -> BiasInit:
        if self.scheme == "normal" and self.std is None:
            raise ValueError("scheme 'normal' needs `std` (a number > 0)")
        return self


def _coerce_scheme(value: Any) -> Any:
    return {"scheme": value} if isinstance(value, str) else value


#: The schemes a bare string may name: the ones that need no parameter.
_PLAIN_INIT = tuple(s for s in get_args(InitScheme) if s not in ("normal", "uniform", "truncated_normal"))
_PLAIN_BIAS = tuple(s for s in get_args(BiasScheme) if s != "normal")
InitField = Annotated[InitSpec, _OrString(_PLAIN_INIT, "shorthand for {scheme: <name>}"),
                      Field(default_factory=InitSpec)]
BiasField = Annotated[BiasInit, _OrString(_PLAIN_BIAS, "shorthand for {scheme: <name>}"),
                      Field(default_factory=BiasInit)]
Norm = Literal["batchnorm", "layernorm"]
#: leaky_relu's slope for x < 0: 0 is ReLU, 1 the identity; beyond 1 it is no longer leaky.
NegativeSlope = Annotated[Float, Field(ge=0, le=1, description="slope of leaky_relu for x < 0 (0 to 1)")]


class _LayerBase(_Strict):
    repeat: Int = Field(default=1, ge=1, description="stack this many copies in sequence")


class _WeightLayer(_LayerBase):
    activation: Activation = "identity"
    negative_slope: NegativeSlope = 0.01
    init: InitField
    bias: Bool = True
    bias_init: BiasField
    norm: Norm | None = Field(default=None, description="normalise the pre-activation")

    _coerce_init = field_validator("init", "bias_init", mode="before")(
        lambda cls, v: _coerce_scheme(v)
    )


class LinearLayer(_WeightLayer):
    type: Literal["linear"]
    out_features: Int = Field(ge=1)


class _ConvLayer(_WeightLayer):
    model_config = ConfigDict(json_schema_extra={"allOf": [
        _when("padding", ["same"], {"properties": {"stride": {"const": 1}}})]})

    @model_validator(mode="after")
    def _same_needs_stride_1(self) -> _ConvLayer:
        if self.padding == "same" and self.stride != 1:  # type: ignore[attr-defined]  # both fields are declared by the Conv1d/Conv2d subclasses
            raise ValueError("padding 'same' needs stride 1; give the padding as a number instead")
        return self


Padding = Annotated[Int, Field(ge=0)] | Literal["same"]


class Conv1dLayer(_ConvLayer):
    type: Literal["conv1d"]
    out_channels: Int = Field(ge=1)
    kernel_size: Int = Field(ge=1)
    stride: Int = Field(default=1, ge=1)
    padding: Padding = 0


class Conv2dLayer(_ConvLayer):
    type: Literal["conv2d"]
    out_channels: Int = Field(ge=1)
    kernel_size: Int = Field(ge=1)
    stride: Int = Field(default=1, ge=1)
    padding: Padding = 0


class PoolLayer2d(_LayerBase):
    type: Literal["maxpool2d", "avgpool2d"]
    kernel_size: Int = Field(ge=1)
    stride: Int | None = Field(default=None, ge=1)


class FlattenLayer(_LayerBase):
    type: Literal["flatten"]


class EmbeddingLayer(_LayerBase):
    type: Literal["embedding"]
    embedding_dim: Int = Field(ge=1)
    init: InitField

    _coerce_init = field_validator("init", mode="before")(lambda cls, v: _coerce_scheme(v))


class NormLayer(_LayerBase):
    type: Literal["batchnorm", "layernorm"]


class DropoutLayer(_LayerBase):
    type: Literal["dropout"]
    p: Float = Field(default=0.1, ge=0, lt=1)


class ActivationLayer(_LayerBase):
    type: Literal["activation"]
    activation: Activation
    negative_slope: NegativeSlope = 0.01


class RecurrentLayer(_LayerBase):
    """``rnn`` / ``lstm`` / ``gru`` over a ``[seq_len, features]`` input.

    ``forget_bias`` (lstm only) sets the forget-gate bias: a number (1 or more
    opens the gate at the start; Gers et al. 2000) or ``chrono`` (Tallec &
    Ollivier 2018: b_f ~ log U(1, seq_len - 1), b_i = -b_f). ``nonlinearity`` is
    for rnn only (lstm and gru have fixed gates).
    """

    model_config = ConfigDict(json_schema_extra={"allOf": [
        _when("type", ["rnn", "gru"], {"properties": {"forget_bias": {"type": "null"}}}),
        _when("type", ["lstm", "gru"], {"properties": {"nonlinearity": {"const": "tanh"}}}),
        _when("type", ["rnn"], {"properties": {"recurrent_activation": {"const": "sigmoid"}}}),
        _when("type", ["rnn", "lstm"], {"properties": {"reset_after": {"const": True}}}),
    ]})

    type: Literal["rnn", "lstm", "gru"]
    hidden_size: Int = Field(ge=1)
    num_layers: Int = Field(default=1, ge=1)
    nonlinearity: Literal["tanh", "relu"] = Field(default="tanh", description="rnn only")
    output: Literal["last", "sequence"] = "last"
    bidirectional: Bool = Field(
        default=False, description="a second layer reads the sequence backwards; the two are "
        "concatenated (2 * hidden_size features; `last` is each direction's final state)")
    init: InitField
    recurrent_init: InitField
    bias_init: BiasField
    forget_bias: Annotated[Float, Field(ge=-MAX_SCALE, le=MAX_SCALE)] | Literal["chrono"] | None = Field(
        default=None, description="lstm only: the forget-gate bias (-100 to 100) or `chrono`")
    recurrent_activation: Literal["sigmoid", "hard_sigmoid", "hard_sigmoid_keras2"] = Field(
        default="sigmoid", description="lstm and gru: the gates' activation. `hard_sigmoid` is "
        "clip(x/6 + 1/2, 0, 1) (PyTorch's Hardsigmoid, Keras 3); `hard_sigmoid_keras2` is "
        "clip(0.2x + 1/2, 0, 1), the default of Keras 2.2 and earlier LSTM and GRU layers")
    reset_after: Bool = Field(
        default=True, description="gru only: the reset gate multiplies the recurrent product "
        "(PyTorch's GRU, Keras 2.3+); false: it multiplies h before the product (Cho et al. 2014, "
        "the default of Keras 2.2 and earlier)")

    _coerce_init = field_validator("init", "recurrent_init", "bias_init", mode="before")(
        lambda cls, v: _coerce_scheme(v)
    )

    @model_validator(mode="after")
    def _forget_bias_only_lstm(self) -> RecurrentLayer:
        if self.forget_bias is not None and self.type != "lstm":
            raise ValueError(f"`forget_bias` applies to lstm only (this layer is {self.type})")
        if self.nonlinearity != "tanh" and self.type != "rnn":
            raise ValueError(f"`nonlinearity` applies to rnn only (this layer is {self.type})")
        if self.recurrent_activation != "sigmoid" and self.type == "rnn":
            raise ValueError("`recurrent_activation` applies to lstm and gru only (an rnn has no gates)")
        if not self.reset_after and self.type != "gru":
            raise ValueError(f"`reset_after` applies to gru only (this layer is {self.type})")
        return self


class SequencePoolLayer(_LayerBase):
    """``pool``: over a sequence ``[seq_len, features]``, the mean, the max or the last step of
    each feature; over a convolution's output (``[channels, length]`` or ``[channels, height,
    width]``), global pooling: the mean (global average pooling) or the max of each channel."""

    type: Literal["pool"]
    mode: Literal["mean", "last", "max"] = Field(
        default="mean", description="mean or max over time or space; last: a sequence's last step")


class TransformerEncoderLayer(_LayerBase):
    """A stack of ``num_layers`` encoder layers over a ``[seq_len, d_model]`` input.

    ``norm_first: true`` is Pre-LN (with a final LayerNorm), ``false`` is Post-LN
    (Xiong et al. 2020). ``d_model`` must be divisible by ``heads``.

    ``init`` initialises every weight matrix of each layer: the attention's input projection (as
    three ``[d_model, d_model]`` matrices, query, key and value, as separate projections are; one
    ``[3 d_model, d_model]`` matrix with ``stacked: true``), its output projection and both
    feed-forward Linears; ``bias_init`` their biases. ``residual_init_scale`` then multiplies the
    two that write into the residual stream (the output projection and the second feed-forward
    Linear): GPT-2's 1/sqrt(2 * n_layer). The defaults keep PyTorch's
    ``nn.TransformerEncoderLayer`` init (xavier_uniform of the packed input projection,
    kaiming_uniform(a=sqrt(5)) of the Linears).
    """

    type: Literal["transformer_encoder"]
    # JSON Schema has no "divisible by another field": the description says it, the server checks it.
    d_model: Int = Field(ge=1, description="model width; must be divisible by `heads`")
    heads: Int = Field(ge=1, description="attention heads; must divide `d_model`")
    ff_width: Int = Field(ge=1)
    num_layers: Int = Field(default=1, ge=1)
    norm_first: Bool = False
    dropout: Float = Field(default=0.0, ge=0, lt=1)
    activation: Literal["relu", "gelu"] = "relu"
    init: InitField = Field(description=(
        "every weight matrix of each layer: attention in_proj (query, key and value as three "
        "[d_model, d_model] matrices; one matrix with `stacked: true`), out_proj and both "
        "feed-forward Linears; `default` keeps PyTorch's"))
    bias_init: BiasField = Field(description="the biases of those four projections; `default` keeps PyTorch's")
    residual_init_scale: Float = Field(
        default=1.0, ge=MIN_SCALE, le=MAX_SCALE,
        description="multiplies the initial weights of out_proj and the second feed-forward Linear, the "
                    "two that write into the residual stream (GPT-2: 1/sqrt(2 * n_layer), 0.2041 for "
                    "12 layers; at most 100)")

    _coerce_init = field_validator("init", "bias_init", mode="before")(lambda cls, v: _coerce_scheme(v))

    @model_validator(mode="after")
    def _heads_divide(self) -> TransformerEncoderLayer:
        if self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by heads ({self.heads})")
        return self


class ResidualBlock(_LayerBase):
    """``x + scale * f(x)`` where ``f`` is the block's ``layers``; ``f`` must keep the shape."""

    type: Literal["residual"]
    layers: list[Layer] = Field(min_length=1)
    scale: Float = Field(default=1.0, ge=MIN_SCALE, le=MAX_SCALE,
                         description="branch multiplier (e.g. 1/sqrt(depth); at most 100)")


class SequentialBlock(_LayerBase):
    """A plain group of layers, so a group can be repeated as a unit."""

    type: Literal["block"]
    layers: list[Layer] = Field(min_length=1)


Layer = Annotated[
    LinearLayer | Conv1dLayer | Conv2dLayer | PoolLayer2d | FlattenLayer | EmbeddingLayer | NormLayer | DropoutLayer | ActivationLayer | RecurrentLayer | SequencePoolLayer | TransformerEncoderLayer | ResidualBlock | SequentialBlock,
    Field(discriminator="type"),
]
ResidualBlock.model_rebuild()
SequentialBlock.model_rebuild()

#: The layers with a weight, an init and an activation: every `_WeightLayer` in the union, so a
#: new weight layer joins by subclassing it.
WEIGHT_LAYERS: tuple[type[_WeightLayer], ...] = tuple(
    c for c in get_args(get_args(Layer)[0]) if issubclass(c, _WeightLayer)
)


class Tokens(_Strict):
    vocab_size: Int = Field(ge=2, description="token ids are drawn from [0, vocab_size)")
    seq_len: Int = Field(ge=1, description="tokens per sample")


_SHORTHAND = ("vocab_size", "seq_len")


def _input_schema(schema: dict[str, Any]) -> None:
    """Say in the schema what the validators enforce: exactly one of ``shape``, ``tokens`` or the
    ``vocab_size``/``seq_len`` shorthand (the shorthand's two fields together), and no default
    that would fill in an invalid input (``shape: null`` with ``tokens: null``)."""
    props = schema["properties"]
    for name in ("shape", "tokens"):
        props[name].pop("default", None)
    tokens = Tokens.model_json_schema()["properties"]
    for name in _SHORTHAND:
        props[name] = {k: v for k, v in tokens[name].items() if k != "title"}
        props[name]["description"] = f"shorthand for `tokens.{name}` ({tokens[name]['description']})"
    # Exactly one of shape / tokens / the shorthand, written as if/then/not rather than a oneOf of
    # partial schemas: client generators (openapi-python-client) read a oneOf as a union of types,
    # cannot make one of these fragments, and then drop the whole Spec and the endpoint with it.
    def given(name: str) -> dict[str, Any]:  # present and not null (null means absent here)
        return {"required": [name], "properties": {name: {"not": {"type": "null"}}}}

    schema["allOf"] = [
        {"if": given("shape"), "then": {"not": {"anyOf": [given("tokens"), given("vocab_size")]}}},
        {"if": given("tokens"), "then": {"not": given("vocab_size")}},
        {"if": {"not": {"anyOf": [given("shape"), given("tokens")]}},
         "then": {"allOf": [given(name) for name in _SHORTHAND]}},
    ]
    schema["dependentRequired"] = {"vocab_size": ["seq_len"], "seq_len": ["vocab_size"]}


#: An end of ``input.range`` or ``loss.target_range``: its bound (±MAX_RANGE) stated in the JSON
#: Schema too, so clients and generated requests know it; the values are checked by
#: :func:`_bounded_range`, whose message names the field and the rule (low < high among them).
RangeEnd = Annotated[float, Strict(), WithJsonSchema({"type": "number", "minimum": -MAX_RANGE, "maximum": MAX_RANGE})]


def _bounded_range(cls: Any, value: tuple[float, float] | None) -> tuple[float, float] | None:
    """``input.range`` and ``loss.target_range``: :func:`~gradhealth.core.numbers.range_problem`'s
    rule (finite, low < high, within ±MAX_RANGE), refused at the field's own pointer with the value."""
    if value is not None and (problem := range_problem(*value)) is not None:
        raise ValueError(problem)
    return value


class InputSpec(_Strict):
    """The synthetic input: exactly one of a ``shape`` (without the batch dimension) or ``tokens``.

    Sequences are ``[seq_len, features]``. ``vocab_size`` and ``seq_len`` may also be
    given directly here, together, as shorthand for ``tokens``.
    """

    model_config = ConfigDict(json_schema_extra=_input_schema)

    shape: list[Annotated[Int, Field(ge=1)]] | None = Field(
        default=None, min_length=1, max_length=3, description="dimensions, each at least 1")
    tokens: Tokens | None = None
    distribution: Literal["normal", "uniform"] = "normal"
    scale: Float = Field(default=1.0, ge=MIN_SCALE, le=MAX_SCALE,
                         description="std of `normal`, half-width of `uniform` (at most 100)")
    range: tuple[RangeEnd, RangeEnd] | None = Field(
        default=None,
        description="[low, high]: the inputs drawn uniform in this range (the data's, [0, 1] for pixels scaled "
                    "to [0, 1]) in place of `distribution` and `scale`; a model file's --input-range. Not with "
                    "`tokens`")

    _range_bounded = field_validator("range")(_bounded_range)

    @model_validator(mode="before")
    @classmethod
    def _lift_tokens(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(k in data for k in _SHORTHAND):
            if data.get("tokens") is not None:
                raise ValueError("give `tokens` or its shorthand `vocab_size`/`seq_len`, not both")
            data = dict(data)
            data["tokens"] = {k: data.pop(k) for k in _SHORTHAND if k in data}
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> InputSpec:
        if (self.shape is None) == (self.tokens is None):
            raise ValueError("give exactly one of `shape` (e.g. [784]) or `tokens` ({vocab_size, seq_len})")
        if self.range is not None and self.tokens is not None:
            raise ValueError("range applies to float inputs (`shape`); token ids are drawn below vocab_size")
        return self


class LossSpec(_Strict):
    """``cross_entropy`` on random labels (``classes`` defaults to the output width), ``mse``,
    ``mae`` or ``huber`` against a standard-normal target, ``binary_cross_entropy`` against random
    0/1 targets, or ``sum`` of the outputs. A plain string works too."""

    type: LossType = "cross_entropy"
    classes: Int | None = Field(default=None, ge=2)
    from_logits: bool = Field(
        default=True,
        description="false: the last layer's outputs are taken for probabilities, as Keras takes them with "
                    "from_logits=False (its default): cross_entropy divides them by their sum and clips them to "
                    "[1e-7, 1 - 1e-7], binary_cross_entropy clips them; mse and sum take no logits and ignore "
                    "it. A model whose last layer does not give probabilities is then reported "
                    "(output_loss_mismatch)")
    target_range: tuple[RangeEnd, RangeEnd] | None = Field(
        default=None,
        description="mse, mae, huber: [low, high], the range the training targets lie in, where known (a Keras "
                    "file compiled with an accuracy metric has 0/1 labels: [0, 1]). A bounded output activation "
                    "(sigmoid, tanh) is judged on the share of that range it cannot reach; without it, on "
                    "standard-normal targets. The simulated targets stay standard normal")

    _target_range_bounded = field_validator("target_range")(_bounded_range)


#: The largest learning rate a spec may give: far past any rate that trains (the check exists to
#: flag such rates, and buggy models compiled with 1e3 or 1e4 are real), small enough that one
#: step stays finite in float64.
MAX_LR = 1e6


class OptimizerSpec(_Strict):
    """The optimizer and learning rate of training, for the first step's update-to-weight ratio
    (``large_updates``): its first step from each seed's initial gradients, ||delta W|| / ||W|| per
    layer (computed in closed form: the weights stay as built). Without it that finding is not
    checked."""

    type: Literal["sgd", "adam", "adamw", "rmsprop", "adadelta", "nadam", "adagrad"] = Field(
        description="torch.optim's SGD, Adam, AdamW, RMSprop, Adadelta, NAdam or Adagrad (Keras' have the "
                    "same first step)")
    lr: Float = Field(ge=-MAX_LR, le=MAX_LR, description="the learning rate (at most 1e6 in size); one at or "
                                                           "below 0 is the finding negative_learning_rate")
    momentum: Float = Field(default=0.0, ge=0, lt=1, description="sgd and rmsprop (else ignored)")
    nesterov: bool = Field(default=False, description="sgd with momentum > 0: Nesterov momentum (else ignored)")
    weight_decay: Float = Field(default=0.0, ge=0, le=MAX_SCALE,
                                description="L2 (sgd, adam, rmsprop) or decoupled (adamw) weight decay")
    alpha: Float = Field(default=0.99, gt=0, lt=1, validation_alias=AliasChoices("alpha", "rho"),
                         description="rmsprop's and adadelta's smoothing constant (Keras' rho, which "
                                     "is accepted as its name too; torch's defaults: 0.99 for rmsprop, "
                                     "0.9 for adadelta when absent; else ignored)")
    eps: Float | None = Field(default=None, gt=0, le=1,
                              description="adam, adamw, rmsprop, adadelta, nadam, adagrad: torch's default "
                                          "when absent")
    initial_accumulator: Float = Field(default=0.0, ge=0, le=MAX_SCALE,
                                       description="adagrad: the squared-gradient sum's start (torch's "
                                                   "initial_accumulator_value, default 0; Keras' 0.1)")
    warmup_steps: Int = Field(default=0, ge=0,
                              description="steps over which the rate warms up to lr (torch's LinearLR, "
                                          "Hugging Face's get_linear_schedule_with_warmup, timm's warmup); "
                                          "large_updates judges the step at lr, and a warning there is a note "
                                          "where the run warms up to it")
    clip_norm: Float | None = Field(default=None, gt=0, le=MAX_LR,
                                    description="the gradient clipping training applies: each weight's gradient "
                                                "norm at most this (Keras' clipnorm). Applied to the first step the "
                                                "update sizes are judged on, and a gradient_clipping remedy "
                                                "names this clipping instead of proposing a new one")
    global_clip_norm: Float | None = Field(default=None, gt=0, le=MAX_LR,
                                           description="the total gradient norm clipped at this (Keras' "
                                                       "global_clipnorm, torch's clip_grad_norm_); applied, "
                                                       "as clip_norm")
    clip_value: Float | None = Field(default=None, gt=0, le=MAX_LR,
                                     description="each gradient element clipped to [-v, v] (Keras' clipvalue, "
                                                 "torch's clip_grad_value_); applied, as clip_norm")
    #: a torch optimizer that a warm-up scheduler started below its rate (its ``lr`` under its
    #: ``initial_lr``) while no scheduler or length was given: it warms up over steps it does not show,
    #: so ``warmup_steps`` stays 0 rather than a made-up length (newuser10 #4). Not a spec field.
    _warmup_unknown: bool = PrivateAttr(default=False)

    @property
    def warms_up(self) -> bool:
        """Whether the run warms up to ``lr``: ``warmup_steps`` declared, or an unknown length."""
        return self.warmup_steps > 0 or self._warmup_unknown


class Spec(_Strict):
    """An architecture to check."""

    name: Text | None = Field(default=None, description="free text shown in reports")
    input: InputSpec
    layers: list[Layer] = Field(min_length=1)
    batch_size: Int = Field(default=64, ge=1)
    # The resource limit (Limits.max_seeds, a setting) is the only check, with the only message;
    # the schema documents its default so that editors flag a count the default service refuses.
    seeds: Int = Field(default=3, ge=1, json_schema_extra={"maximum": DEFAULT_MAX_SEEDS},
                       description="independent initialisations to average over; at most the service's "
                                   f"seeds limit (GRADHEALTH_LIMITS__MAX_SEEDS, {DEFAULT_MAX_SEEDS} by default)")
    loss: Annotated[LossSpec, _OrString(get_args(LossType), "shorthand for {type: <name>}")] = Field(
        default_factory=LossSpec)
    optimizer: OptimizerSpec | None = Field(
        default=None, description="the training optimizer: checks the first step's update-to-weight ratio")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["float64", "float32"] = Field(
        default="float64",
        description="float64 by default: float32 gradients underflow to exact zero over long chains",
    )

    @field_validator("loss", mode="before")
    @classmethod
    def _loss_string(cls, v: Any) -> Any:
        return {"type": v} if isinstance(v, str) else v


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema of the spec, generated from the pydantic models."""
    return Spec.model_json_schema()


# --- reading untrusted text ------------------------------------------------------------------------

EMPTY = "the spec is empty: send a JSON object or YAML mapping with `input` and `layers`"
#: Characters of an integer literal worth converting: 2^63 has 19 digits, and Python refuses to
#: convert more than 4,300 (int_max_str_digits) with a ValueError no caller expects.
_INT_CHARS = 24
_LONGEST_KEY = 100
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = QUOTE_CHARS
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6
_REPR.maxlevel = 3


@dataclass(frozen=True)
class _Overlong:
    """An integer literal too long to convert; reported at its field as out of range."""

    digits: int


def _quote(value: Any) -> str:
    """A bounded repr of user input: never more than QUOTE_CHARS characters, however large."""
    text = _REPR.repr(value)
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 1] + "…"


def _clip(text: str, limit: int = 2 * QUOTE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_int(literal: str) -> int | _Overlong:
    return int(literal) if len(literal) <= _INT_CHARS else _Overlong(len(literal.lstrip("-")))


def _where(mark: Any) -> str:
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""


def _mark_position(mark: Any) -> tuple[int, int] | None:
    """The (line, column) :func:`_where` names, for the error's ``position``: a problem document's
    ``errors[]`` item and a CI report place it there (newuser16 #6)."""
    return (mark.line + 1, mark.column + 1) if mark is not None else None


def _no_repeated_key(keys: list[tuple[str, Any]]) -> None:
    """Refuse a mapping that names a key twice (JSON and YAML readers keep the last silently: a
    `batch_size` given twice would be checked at a value the user did not mean)."""
    seen: set[str] = set()
    for key, mark in keys:
        if key in seen:
            raise _RepeatedKey(key, mark)
        seen.add(key)


class _RepeatedKey(InputFormatError):
    """A mapping that names ``key`` twice, at its second naming (``mark``: YAML's; None from JSON's
    object hook, which knows no place: :func:`load_spec_text` finds it in the text). The error
    carries the line and column its message names, as a syntax error does (newuser16 #6)."""

    def __init__(self, key: str, mark: Any, position: tuple[int, int] | None = None) -> None:
        if position is None:
            position = _mark_position(mark)
        where = f" (line {position[0]}, column {position[1]})" if position is not None else ""
        super().__init__(f"the key {_clip(str(key))!r} appears twice in one mapping{where}; "
                         "a spec names each field once", position=position)
        self.key = key


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``' object hook: the object, refused where it names a key twice."""
    _no_repeated_key([(k, None) for k, _ in pairs])
    return dict(pairs)


def _json_repeated_key_at(text: str) -> tuple[int, int] | None:
    """(line, column) of the repeated key ``json.loads`` refuses first in ``text``: its second
    naming, in the first object to close that names a key twice (the object hook runs as each
    object closes, so an inner object's repeat is found before its parent's). None where the text
    cannot be walked (it parsed up to the hook, so only a stack too deep for this walk)."""
    decoder = json.JSONDecoder()

    def ws(i: int) -> int:
        while i < len(text) and text[i] in " \t\n\r":
            i += 1
        return i

    def walk(i: int) -> tuple[int, int | None]:  # (end of the value at i, offset of a repeated key)
        i = ws(i)
        if text[i] not in "{[":
            return decoder.raw_decode(text, i)[1], None
        closing, seen, repeated = ("}" if text[i] == "{" else "]"), set(), None
        i = ws(i + 1)
        while text[i] != closing:
            if closing == "}":
                key, after = json.decoder.scanstring(text, i + 1)  # type: ignore[attr-defined]  # the scanner json itself uses; typeshed omits it
                if key in seen and repeated is None:
                    repeated = i
                seen.add(key)
                i = ws(ws(after) + 1)  # past the colon
            i, inner = walk(i)
            if inner is not None:
                return i, inner
            i = ws(i)
            if text[i] == ",":
                i = ws(i + 1)
        return i + 1, repeated

    try:
        found = walk(0)[1]
    except (ValueError, IndexError, RecursionError):
        return None
    if found is None:
        return None
    before = text[:found]
    return before.count("\n") + 1, found - (before.rfind("\n") + 1) + 1


class _CountingComposer(Composer):  # its parser (pure or libyaml) comes from the loader's other bases
    """A composer that counts values while composing (the YAML loaders below put it before their
    composer).

    An alias adds the expanded size of the node it repeats (known once that node is composed), so
    nesting aliases cannot multiply past ``max_nodes`` unnoticed: the bomb is refused while its
    text is read, before anything expands it. Nesting depth is bounded the same way, before the
    composer's recursion could run out of stack.
    """

    def _start_counting(self, max_nodes: int) -> None:
        self.max_nodes = max_nodes
        self._values = 0
        self._aliases = 0
        self._open = 0  # containers being composed around the current node
        self._sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth) when expanded

    def _count(self, values: int, mark: Any) -> None:
        self._values += values
        if self._values > self.max_nodes:
            if self._aliases:
                raise InputFormatError(
                    f"YAML aliases expand the spec beyond the budget of {self.max_nodes} values"
                    f"{_where(mark)}; write the layers out, or use `repeat` instead of aliases",
                    position=_mark_position(mark))
            raise InputFormatError(f"the spec holds more than {self.max_nodes} values{_where(mark)}",
                                   position=_mark_position(mark))

    def _nest(self, depth: int, mark: Any) -> None:
        if depth > MAX_DEPTH:
            raise InputFormatError(f"the spec is nested more than {MAX_DEPTH} levels deep{_where(mark)}",
                                   position=_mark_position(mark))

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[attr-defined]  # the loader's parser
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)  # the anchored node itself, shared
            if id(node) not in self._sizes:  # anchored on an ancestor still being composed
                raise InputFormatError(f"a YAML alias{_where(event.start_mark)} repeats a node that "
                                       "contains itself; a spec must be a tree",
                                       position=_mark_position(event.start_mark))
            self._aliases += 1
            values, depth = self._sizes[id(node)]
            self._count(values, event.start_mark)
            self._nest(self._open + depth, event.start_mark)
            return node
        self._count(1, event.start_mark)
        if not isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            node = super().compose_node(parent, index)
            self._sizes[id(node)] = (1, 0)
            return node
        self._nest(self._open + 1, event.start_mark)
        self._open += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._open -= 1
        if isinstance(node, yaml.MappingNode):
            _no_repeated_key([(k.value, k.start_mark) for k, _ in node.value
                              if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge"])
        children = [c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) else list(
            getattr(node, "value", ()))
        sizes = [self._sizes[id(c)] for c in children]
        self._sizes[id(node)] = (1 + sum(s[0] for s in sizes), 1 + max((s[1] for s in sizes), default=0))
        return node


class _SpecLoader(_CountingComposer, yaml.SafeLoader):
    """``SafeLoader`` that counts values while composing (:class:`_CountingComposer`), in pure Python."""

    def __init__(self, stream: str, max_nodes: int = MAX_NODES) -> None:
        yaml.SafeLoader.__init__(self, stream)
        self._start_counting(max_nodes)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int | _Overlong:  # type: ignore[override]  # an over-long literal becomes a marker, reported at its field
        """An integer as YAML 1.2's core schema writes one (:data:`_YAML12_INT`: decimal, ``0o17``,
        ``0x1F``); another form under an explicit ``!!int`` tag is a YAML error at its place."""
        literal = str(self.construct_scalar(node))
        if _YAML12_INT.fullmatch(literal) is None:
            raise yaml.constructor.ConstructorError(
                None, None, f"{_clip(literal, QUOTE_CHARS)!r} is not a YAML 1.2 integer "
                "(decimal, 0o octal or 0x hexadecimal)", node.start_mark)
        digits = literal[2:] if literal[:2] in ("0o", "0x") else literal.lstrip("+-")
        if len(digits) > _INT_CHARS:
            return _Overlong(len(digits))
        if literal.startswith("0o"):
            return int(digits, 8)
        return int(digits, 16) if literal.startswith("0x") else int(literal)


#: YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution) numbers. PyYAML resolves
#: YAML 1.1's, which read ``1:30`` as 90 (base 60), ``010`` as 8 (octal), ``0b11`` and ``1_000`` as
#: integers and ``1e-3`` as text; a spec's numbers are strict, so those would be silent surprises.
_YAML12_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_YAML12_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                           r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)")
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
# the inherited resolvers less YAML 1.1's numbers (bool, null, timestamp, merge and value stay)
_SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _NUMBER_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
# ints before floats: "10" matches both, and is an integer
_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(f"^(?:{_YAML12_INT.pattern})$"), list("-+0123456789"))
_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(f"^(?:{_YAML12_FLOAT.pattern})$"), list("-+.0123456789"))
_SpecLoader.add_constructor("tag:yaml.org,2002:int", _SpecLoader.construct_yaml_int)

_CSpecLoader: Any = None
if getattr(yaml, "__with_libyaml__", False):
    from yaml._yaml import CParser

    class _CSpecLoaderClass(_CountingComposer, CParser, SafeConstructor, Resolver):
        """:class:`_SpecLoader` on libyaml's events: the same composer, constructors and resolvers
        (YAML 1.2 numbers), with the scanning and parsing (most of the pure-Python loader's time)
        done in C. Used where PyYAML was built with libyaml (``yaml.__with_libyaml__``)."""

        yaml_implicit_resolvers = _SpecLoader.yaml_implicit_resolvers
        yaml_constructors = _SpecLoader.yaml_constructors
        construct_yaml_int = _SpecLoader.construct_yaml_int  # type: ignore[assignment]  # as _SpecLoader's

        def __init__(self, stream: str, max_nodes: int = MAX_NODES) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self._start_counting(max_nodes)

    _CSpecLoader = _CSpecLoaderClass


def _scalar_problem(value: Any) -> str | None:
    """What is wrong with a leaf of the decoded document, if anything (None: a JSON value)."""
    if value is None or isinstance(value, bool | str) and not isinstance(value, str):
        return None
    if isinstance(value, str):
        bad = _BAD_TEXT.search(value)
        if bad is None:
            return None
        if bad.group() == "\x00":
            return "contains a NUL character, which cannot be stored; remove it"
        return (f"is not valid Unicode text: it holds a lone surrogate {bad.group()!a} "
                f"(at character {bad.start()}); send UTF-8 text")
    if isinstance(value, _Overlong) or isinstance(value, int) and abs(value) > MAX_INT:
        digits = value.digits if isinstance(value, _Overlong) else int(value.bit_length() * math.log10(2)) + 1
        return f"out of range: an integer of {digits} digits (at most {MAX_INT} is accepted)"
    if isinstance(value, int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "must be a finite number (a spec, JSON or YAML, holds no NaN or Infinity)"
    if isinstance(value, bytes | bytearray):
        return "binary data (YAML !!binary) is not accepted here: give text"
    return (f"a YAML {type(value).__name__} is not accepted: a spec holds only JSON values "
            "(text, numbers, booleans, null, lists and mappings)")


def _integral(value: Any) -> Any:
    """``value`` with every float that has no fraction made an int: JSON Schema counts ``3.0`` as an
    integer (and JSON writers that keep every number a float send it so), while the strict models
    refuse a float where an int belongs. Numbers stay numbers: a float field takes an int. Called
    after :func:`_inspect`, so the depth is bounded."""
    if type(value) is float and value.is_integer() and abs(value) <= MAX_INT:
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def _inspect(data: Any, max_nodes: int = MAX_NODES) -> list[Problem]:
    """Bound and check a decoded document before validation, without recursion.

    Raises :class:`InputFormatError` past ``max_nodes`` values or MAX_DEPTH levels (a dict built in
    Python may share or even contain itself; the budget stops the walk either way). Returns the
    values JSON cannot hold (non-finite numbers, huge integers, bytes, dates, bad text, non-text
    keys), each at its pointer.
    """
    problems: list[Problem] = []
    stack: list[tuple[Any, tuple[Any, ...], int]] = [(data, (), 0)]
    seen = 0
    while stack:
        value, path, depth = stack.pop()
        seen += 1
        if seen > max_nodes:
            raise InputFormatError(f"the spec holds more than {max_nodes} values (the fixed budget a spec is "
                                   f"read within), the last counted at {_clip(pointer_of(path))}",
                                   pointer=pointer_of(path))
        if isinstance(value, dict | list | tuple):
            depth += 1
            if depth > MAX_DEPTH:
                raise InputFormatError(f"the spec is nested more than {MAX_DEPTH} levels deep, at "
                                       f"{_clip(pointer_of(path))}", pointer=pointer_of(path))
        if isinstance(value, dict):
            children: list[tuple[Any, tuple[Any, ...], int]] = []
            for key, item in value.items():
                seen += 1
                if not isinstance(key, str):
                    problems.append(Problem(pointer_of(path), f"keys must be text, not {_quote(key)}"))
                elif len(key) > _LONGEST_KEY or _BAD_TEXT.search(key):
                    problems.append(Problem(pointer_of(path), f"the key {_quote(key)} is not a field name "
                                            "(too long, or not valid Unicode text)"))
                else:
                    children.append((item, (*path, key), depth))
            stack.extend(reversed(children))  # popped in document order
        elif isinstance(value, list | tuple):
            stack.extend((item, (*path, i), depth) for i, item in reversed(list(enumerate(value))))
        elif (problem := _scalar_problem(value)) is not None:
            problems.append(Problem(pointer_of(path), problem))
    return problems


def _pointer(loc: tuple[Any, ...], data: Any) -> str:
    """Turn a pydantic error location into a JSON pointer into ``data``.

    Pydantic puts union tags and model names (``linear``, ``InitSpec``) into the
    location; they are not keys of the user's document, so walk the document and
    keep only the parts that exist in it.
    """
    parts: list[str] = []
    node = data
    for part in loc:
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node) or isinstance(node, dict) and part in node:
            node = node[part]
        else:
            continue
        parts.append(escape(part))
    return "/" + "/".join(parts) if parts else ""


def _field_names(model: type[BaseModel]) -> set[str]:
    """The field names of ``model`` and of every model derived from it."""
    names = set(model.model_fields)
    for sub in model.__subclasses__():
        names |= _field_names(sub)
    return names


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    """A "did you mean" for an unknown key: the spec's top-level fields for a top-level key, any
    spec field deeper down (the nearest by difflib), or the pointer to the reference."""
    import difflib

    key = str(loc[-1])
    if len(loc) > 1 and (owners := _owners(key)):
        # a real field in the wrong place: suggesting its own spelling back would say nothing
        return f"{key!r} is a field of {' and '.join(owners)}, not of this object"
    if len(loc) > 1 and key in _FRAMEWORK_NAMES:
        return f"did you mean {_FRAMEWORK_NAMES[key]!r}? ({key!r} is its name in Keras or PyTorch)"
    fields = set(Spec.model_fields) if len(loc) == 1 else _field_names(_Strict)
    close = difflib.get_close_matches(key, sorted(fields), n=1, cutoff=0.6)
    if close and close[0] == key:
        # a field of some other object (a constant bias_init's value), not of this one
        return f"{key!r} is not a field of this object (see the spec reference)"
    return field_hint(key, fields) or "check the spelling against the spec reference"


def _unknown_field_message(loc: tuple[Any, ...]) -> str:
    """newuser10 #13: an unknown key's message: a "did you mean" among the fields of the object
    it is in, where one is near (else :func:`_did_you_mean`'s), and those fields, at every level
    of the spec (``/layers/1/kind`` of a pool: ``unknown field (allowed: mode, repeat, type)``)."""
    key = str(loc[-1])
    fields = fields_at(Spec, loc[:-1])
    if not fields:
        return "unknown field; " + _did_you_mean(loc)
    if len(loc) > 1 and (key in _FRAMEWORK_NAMES or key in _field_names(_Strict)):
        hint = _did_you_mean(loc)  # a framework's name for a field, or a field of another object
    else:
        hint = field_hint(key, fields)
    return unknown_field_words(hint, fields, 16)


def unknown_field_words(hint: str, fields: Sequence[str], most: int) -> str:
    """``unknown field; <hint> (allowed: <the first ``most`` of fields>)``, without the hint where
    it is empty: the spec's unknown keys and the HTTP API's request bodies say it alike."""
    shown = first_few(fields, most)
    return f"unknown field; {hint} (allowed: {shown})" if hint else f"unknown field (allowed: {shown})"


def fields_at(root: Any, loc: Sequence[Any]) -> list[str]:
    """The field names (sorted; a field's alias where it has one) of the object at pydantic error
    location ``loc`` inside a value of type ``root`` (a :class:`Spec`, an API request body's model,
    ``X | None``): list indexes and union tags (a layer's ``type``, or the name pydantic gives the
    member it tried) are followed; empty where the walk loses the object."""
    models: list[type[BaseModel]] = _spec_models(root)
    for part in loc:
        if isinstance(part, int):
            continue  # a list item: the models found for the list already are its items'
        inner = [m for model in models for m in _spec_models(_field_annotation(model, str(part)))]
        if inner:
            models = inner
            continue
        # a union tag (a layer's type) or the name pydantic gives the member it tried
        tagged = [m for m in models if part == m.__name__ or part in _type_tags(m)]
        if not tagged:
            return []
        models = tagged
    return sorted({info.alias or name for model in models for name, info in model.model_fields.items()})


def _field_annotation(model: type[BaseModel], name: str) -> Any:
    field = model.model_fields.get(name) or next(
        (f for f in model.model_fields.values() if f.alias == name), None)
    return field.annotation if field is not None else None


def _type_tags(model: type[BaseModel]) -> tuple[str, ...]:
    tag = model.model_fields.get("type")
    return tuple(str(t) for t in get_args(tag.annotation)) if tag is not None else ()


def _spec_models(tp: Any) -> list[type[BaseModel]]:
    """The pydantic models a field's annotation may hold (through ``Annotated``, unions, lists and
    dicts)."""
    if isinstance(tp, type):
        return [tp] if issubclass(tp, BaseModel) else []
    return [m for arg in get_args(tp) for m in _spec_models(arg)]


def field_hint(key: str, fields: Iterable[str]) -> str:
    """``did you mean 'clip_threshold'?`` for an unknown key ``key`` among ``fields``: the nearest
    by difflib (ratio 0.6 or more), ``""`` where none is near. The spec's unknown fields and the
    HTTP API's request bodies (gradhealth.api.problems) say it alike."""
    import difflib

    close = difflib.get_close_matches(key, sorted(set(fields) - {key}), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


#: Keras' and PyTorch's names for spec fields, which spelling distance would not find ("units" is
#: nearer "init" than "out_features").
_FRAMEWORK_NAMES = {
    "units": "out_features", "filters": "out_channels", "rate": "p",
    "in_features": "(none: the spec works out each layer's inputs)", "input_dim": "(none: the top-level input)",
    "kernel_initializer": "init", "bias_initializer": "bias_init", "hidden_dim": "hidden_size",
    "num_heads": "heads", "nhead": "heads", "d_ff": "ff_width", "dim_feedforward": "ff_width",
    "lstm_units": "hidden_size", "dropout_rate": "p",
}


def _owners(key: str) -> list[str]:
    """Where ``key`` is a field: "the spec's top level" and the layer types that have it."""
    owners = ["the spec's top level"] if key in Spec.model_fields else []
    types: list[str] = []
    stack: list[type[BaseModel]] = [_Strict]
    while stack:
        model = stack.pop()
        stack.extend(model.__subclasses__())
        tag = model.model_fields.get("type")
        if model is not Spec and key in model.model_fields and tag is not None:
            types.extend(str(t) for t in get_args(tag.annotation))
    if types:
        owners.append("layers of type " + ", ".join(sorted(set(types))))
    return owners


def _layer_types() -> list[str]:
    """Every layer ``type`` the spec takes, in the union's order."""
    return [str(t) for c in get_args(get_args(Layer)[0]) for t in get_args(c.model_fields["type"].annotation)]


def _no_type_message(value: Any) -> str:
    """A layer without a usable ``type`` (pydantic: "Unable to extract tag using discriminator
    'type'", errsweep6): that it needs one, the types it may have, and a key that looks like
    ``type`` (``"type\u00a0"``, ``"Type"``) quoted."""
    types = ", ".join(repr(t) for t in _layer_types())
    if not isinstance(value, dict):
        return f"a layer is an object with a `type` (one of {types}), not {_quote(value)}"
    near = next((k for k in value if isinstance(k, str) and k != "type"
                 and "".join(k.split()).lower().strip("_-\"'") == "type"), None)
    hint = f"; the key {near!r} is not `type` (it has other characters)" if near is not None else ""
    return f"the layer has no `type`; give one of {types}{hint}"


def _residual_scale_message(err: ErrorDetails) -> str:
    """Why a residual ``scale`` under 1e-30 is refused: it is a fixed multiplier of the branch, not a
    standard deviation (specsweep14 P5: ReZero's alpha = 0 read "underflow to a standard deviation
    of 0"). At 0 the branch's output and every gradient into its weights are multiplied by 0: the
    block is the identity and its weights never train in this static spec, while ReZero's and
    SkipInit's alpha is a learnable parameter that starts at 0 (its own gradient, F(x) . dL/dy,
    moves it), which the spec cannot express."""
    value = err.get("input")
    bounds = f"at least {MIN_SCALE:g} (and at most {MAX_SCALE:g})"
    if isinstance(value, int | float) and not isinstance(value, bool) and value == 0:
        return (f"must be greater than 0, {bounds}: a residual scale is a fixed multiplier of the branch, and at 0 "
                "it cuts the branch out: its output and the gradient into its weights are multiplied by 0, so the "
                "block is the identity and its weights never train. A learnable scale that starts at 0 (ReZero's or "
                "SkipInit's alpha) is not expressible here; to check the branches' gradients as such a network "
                "starts to learn, give a small fixed scale in its place (e.g. 0.01, at most 1/sqrt(number of "
                "blocks) as De & Smith 2020 advise), or leave the residual blocks out to check the skip path alone"
                f"{input_echo(err)}")
    return (f"must be greater than 0, {bounds}: a residual scale is a multiplier of the branch, x + scale * f(x); "
            "a negative one flips the branch's sign, which its weights' signs already do: give its size"
            f"{input_echo(err)}")


def _message(err: ErrorDetails) -> str:
    msg = _clip(str(err["msg"]).removeprefix("Value error, "))
    if err["type"] == "union_tag_invalid":
        expected = err.get("ctx", {}).get("expected_tags", "")
        tag = err["input"].get("type") if isinstance(err["input"], dict) else err["input"]
        hint = _value_hint(tag, expected, "type")
        return f"unknown layer type {_quote(tag)}; allowed: {expected}{'; ' + hint if hint else ''}"
    if err["type"] == "union_tag_not_found":
        return _no_type_message(err["input"])
    if err["type"] == "extra_forbidden":
        return _unknown_field_message(tuple(err["loc"]))
    if err["type"] == "too_long" and tuple(err["loc"])[-1:] == ("shape",) and isinstance(err["input"], list):
        return _shape_too_long_message(err["input"])
    if (err["type"] == "int_type" and tuple(err["loc"])[-1:] in (("kernel_size",), ("stride",), ("padding",))
            and isinstance(err["input"], list | tuple)):
        return _per_dimension_message(str(err["loc"][-1]), list(err["input"]))
    if (err["type"] == "greater_than_equal" and err.get("ctx", {}).get("ge") == MIN_SCALE
            and tuple(err["loc"])[-2:] == ("residual", "scale")):
        return _residual_scale_message(err)
    if err["type"] == "greater_than_equal" and err.get("ctx", {}).get("ge") == MIN_SCALE:
        # pydantic writes 1e-30 as 0.000000000000000000000000000001
        return (f"must be greater than 0: at least {MIN_SCALE:g} (and at most {MAX_SCALE:g}), as smaller scales "
                f"underflow to a standard deviation of 0{input_echo(err)}")
    if err["type"] in {"literal_error", "greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        hint = ""
        if err["loc"] and err["loc"][-1] == "activation" and str(err["input"]).lower() in ("softmax", "log_softmax"):
            hint = ("; a softmax output belongs to the loss: leave the last layer's activation out (identity) and "
                    "use loss cross_entropy, which applies it")
        loc = tuple(err["loc"])
        if (err["type"] == "literal_error" and not hint and loc[-1:] == ("scheme",)
                and any(k in ("init", "recurrent_init") for k in loc) and _squash(str(err["input"])).rstrip("_")
                in _CONSTANT_WEIGHT_NAMES):
            # specsweep10 inv_constant_ones_init: nn.init.ones_ written as {scheme: constant, value: 1}
            hint = ("; a spec has no constant weight init: `constant` is a bias_init scheme only, and `zeros` the one "
                    "constant weight init (every weight equal, the symmetric-weights case, is otherwise not "
                    "expressible); to check a module initialised so (nn.init.ones_, constant_), pass the module to "
                    "gradhealth.check_module")
        if err["type"] == "literal_error" and not hint:
            found = _value_hint(err["input"], str(err.get("ctx", {}).get("expected", "")), str(err["loc"][-1]))
            hint = f"; {found}" if found else ""
        return f"{msg}{input_echo(err)}{hint}"
    return msg + input_echo(err)


def _shape_too_long_message(shape: list[Any]) -> str:
    """An input shape of 4 or more dimensions: mostly one that includes the batch dimension, often
    channels-last as TensorFlow and images store it ([32, 224, 224, 3]); pydantic's "at most 3
    items" said neither (specsweep11 #5). The shape is one example's, channels-first."""
    head = (f"{len(shape)} dimensions, at most 3: `shape` is one example's, without the batch dimension "
            "(`batch_size` sets that), channels-first ([C, H, W] for an image, [C, L] for a 1-d signal, "
            "[seq_len, features] for a sequence)")
    dims = [d for d in shape[1:] if isinstance(d, int) and not isinstance(d, bool)]
    if len(shape) != 4 or len(dims) != 3:
        return head
    h, w, c = dims
    if c < min(h, w):  # channels last: [N, H, W, C]
        return f"{head}; {_quote(shape)} reads as [batch, H, W, C]: drop the batch and put channels first, [{c}, {h}, {w}]"
    return f"{head}; {_quote(shape)} reads as [batch, C, H, W]: drop the batch, {_quote(dims)}"


def _per_dimension_message(field: str, value: list[Any]) -> str:
    """A list where a conv's ``kernel_size``/``stride``/``padding`` takes one integer: the spec's
    convolutions use the same value along every spatial axis (square kernels); pydantic's "Input should
    be a valid integer" did not say so (specsweep11 #5)."""
    what = {"kernel_size": "non-square kernels are", "stride": "a stride per axis is",
            "padding": "a padding per side or axis is"}[field]
    ints = [v for v in value if isinstance(v, int) and not isinstance(v, bool)]
    same = len(ints) == len(value) > 0 and len(set(ints)) == 1
    fix = (f"write `{field}: {ints[0]}`" if same else
           "write one integer (the nearest square one) to check the network's gradient flow approximately")
    return (f"one integer, the same along every spatial axis: {what} not supported in a spec "
            f"(got {_quote(value)}); {fix}")


#: Pydantic error types whose message names no value of the caller's to echo (missing, unknown
#: field, an unknown layer type answered in full above, invalid JSON) or is our validators' own
#: words, which quote what they need.
_NO_ECHO = frozenset({"missing", "extra_forbidden", "union_tag_invalid", "value_error", "assertion_error",
                      "json_invalid"})

#: Words in a field's location whose value is never echoed back (a webhook's secret, an API key).
_SECRET_WORDS = ("secret", "password", "token", "key")


def input_echo(err: Any) -> str:
    """`` (got VALUE)``: the bad value of a validation error, bounded (:func:`_quote`), after its
    message, for every kind of error that has one: a wrong type too (newuser11 #10: ``out_features:
    "wide"`` read "Input should be a valid integer" while a bad enum or a negative size said what it
    got); '' where the message names none (:data:`_NO_ECHO`), the value is a list or mapping, or the
    field holds a secret."""
    if err.get("type") in _NO_ECHO or not isinstance(err.get("input", ...), bool | int | float | str | None):
        return ""  # (a list or mapping where a value belongs is said by the message; its repr is noise)
    if any(word in str(part).lower() for part in err.get("loc", ()) for word in _SECRET_WORDS):
        return ""
    return f" (got {_quote(err['input'])})"


#: Well-known other names of enumerated values (PyTorch's, Keras', papers'), where each stands for
#: one allowed value only; a name that stands for several (``kaiming``: normal or uniform) is
#: answered with all of them by :func:`_value_hint`'s prefix rule instead.
#: A loss's other names are the one table every door's did-you-mean reads (:data:`.core.losses.LOSS_ALIASES`,
#: keyed squashed as :func:`_squash` squashes).
_VALUE_ALIASES: dict[str, dict[str, str]] = {"type": {
    **LOSS_ALIASES,
    "dense": "linear", "fully_connected": "linear", "fc": "linear",
    "multiheadattention": "transformer_encoder", "transformerencoderlayer": "transformer_encoder",
}, "scheme": {"glorot_normal": "xavier_normal", "glorot_uniform": "xavier_uniform"},
    "activation": {"logistic": "sigmoid", "linear": "identity", "none": "identity", "lrelu": "leaky_relu"},
    # a GPU is CUDA here: ``gpu`` is one letter from ``cpu``, the opposite of what is meant (newuser14 #8)
    "device": {"gpu": "cuda", "cuda:0": "cuda", "nvidia": "cuda", "gpu0": "cuda", "gpu:0": "cuda"}}


def _squash(text: str) -> str:
    return re.sub(r"[\s_\-]+", "", text.casefold())


#: What a constant weight init is called where a user copies one in (torch's ``ones_``/``constant_``,
#: Keras' ``Ones``/``Constant``), squashed (:func:`_squash`).
_CONSTANT_WEIGHT_NAMES = frozenset({"constant", "ones", "one", "const", "full", "fill"})


def _value_hint(value: object, expected: str, field: str = "") -> str:
    """A "did you mean" for an enumerated value that is not one of ``expected`` (pydantic's
    ``'a', 'b' or 'c'``), newuser8 P11: the same spelling without case, ``_`` or ``-``
    (``LeakyReLU``); a well-known other name (:data:`_VALUE_ALIASES`, by ``field``: ``bce``, ``glorot_uniform``);
    every value it is the family of (``kaiming`` -> ``kaiming_normal`` or ``kaiming_uniform``); else
    the nearest by difflib (``sigmod`` -> ``sigmoid``). ``""`` where nothing is near."""
    import difflib

    if not isinstance(value, str) or not value.strip():
        return ""
    allowed = re.findall(r"'([^']*)'", expected)
    if not allowed:
        return ""
    key = value.strip()
    squashed = _squash(key)
    same = [a for a in allowed if _squash(a) == squashed]
    # a shorthand (``init: glorot_uniform``, ``loss: bce``) is the value of its object's field
    field = {"init": "scheme", "recurrent_init": "scheme", "loss": "type", "optimizer": "type"}.get(field, field)
    aliases = _VALUE_ALIASES.get(field, {})
    alias = aliases.get(key.casefold()) or aliases.get(squashed)
    family = [a for a in allowed if _squash(a).startswith(squashed) and len(squashed) >= 2
              and a.casefold().startswith(key.casefold().replace("-", "_") + "_")]
    close = difflib.get_close_matches(key.casefold(), allowed, n=2, cutoff=0.6)
    picks = same or ([alias] if alias in allowed else []) or family or close
    if not picks or picks == [key]:
        return ""
    return "did you mean " + " or ".join(repr(p) for p in picks) + "?"


def _spec_error(problems: list[Problem]) -> SpecError:
    unique = list(dict.fromkeys(problems))  # one problem per pointer: unions report one per branch
    detail = "; ".join(str(p) for p in unique[:5])
    if len(unique) > 5:
        detail += f"; and {len(unique) - 5} more"
    return SpecError(detail, unique[:MAX_PROBLEMS])


def parse_spec(data: Any) -> Spec:
    """Validate a decoded spec; raise :class:`SpecError` naming every bad field by JSON pointer.

    The document is bounded and checked for non-JSON values first (:class:`InputFormatError` past
    MAX_NODES values or MAX_DEPTH levels), so validation only ever sees a small plain tree.
    """
    if not isinstance(data, dict):
        raise InputFormatError(f"the spec must be a mapping/object, got {type(data).__name__}")
    if problems := _inspect(data):
        raise _spec_error(problems)
    try:
        return Spec.model_validate(_integral(data))
    except ValidationError as exc:
        found: list[Problem] = []
        for err in exc.errors(include_url=False):
            pointer = _pointer(tuple(err["loc"]), data)
            if err["type"] == "missing":  # the field is absent, so the walk cannot reach it
                pointer += "/" + str(err["loc"][-1])
            found.append(Problem(pointer, _message(err)))
        raise _spec_error(found) from None


def parse_optimizer(text: str) -> dict[str, Any]:
    """An ``optimizer`` given on its own, as JSON text (a model check's option: an ONNX file does
    not say how it is trained): the spec's dict of it, or :class:`SpecError` naming each bad field
    by its pointer inside it (``/lr``)."""
    example = 'expected JSON like {"type": "adam", "lr": 0.001}'
    if len(text) > 1000:
        raise SpecError(f"over 1000 characters; {example}", [Problem("", "too long")])
    try:
        value = json.loads(text)
    except ValueError:
        raise SpecError(f"not JSON; {example}", [Problem("", "not JSON")]) from None
    if not isinstance(value, dict):
        raise SpecError(f"not a JSON object; {example}", [Problem("", "not an object")])
    try:
        return OptimizerSpec.model_validate(value).model_dump(exclude_defaults=True)
    except ValidationError as exc:
        found = [Problem("".join(f"/{p}" for p in err["loc"]), _message(err))
                 for err in exc.errors(include_url=False)]
        raise _spec_error(found) from None


_QUOTED_KEY = re.compile(r'\s*\{\s*"')


def _json_too_deep(text: str) -> InputFormatError:
    """The refusal of JSON ``text`` nested past the parser's stack: where it first opens a container
    past MAX_DEPTH levels (one pass that stops there, building nothing), said as :func:`_inspect` says
    it for a document it can walk, that pointer its ``errors[].pointer`` (newuser18 #4: null)."""
    path = too_deep_path(text, MAX_DEPTH)
    where = "" if path is None else f", at {_clip(pointer_of(path))}"
    return InputFormatError(f"the spec is nested more than {MAX_DEPTH} levels deep{where}",
                            pointer=None if path is None else pointer_of(path))


#: libyaml's parser (as the plainest loader built on it), where PyYAML was built with it
#: (``yaml.__with_libyaml__``); else None.
_CParser: Any = getattr(yaml, "CBaseLoader", None) if getattr(yaml, "__with_libyaml__", False) else None


def _precheck_yaml(text: str, max_nodes: int) -> None:
    """Refuse YAML text that is over the value budget or nested too deep by its events alone, read
    with libyaml's C parser, before :class:`_SpecLoader` composes it in pure Python: a 1 MB spec of
    100,000 keys cost 3 s of the pure-Python loader (held under the GIL, so every other request
    waited too) before it was refused, and costs a fraction of that here (errsweep6 #4). Aliases
    are not expanded here (each counts once): the composing loader still counts them. Text the C
    parser finds invalid, or that passes, is left to the composing loader, whose messages are the
    ones the user reads; without libyaml nothing is checked here."""
    if _CParser is None:
        return
    parser = _CParser(text)
    values = depth = 0
    try:
        while (event := parser.get_event()) is not None:
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise InputFormatError(f"the spec is nested more than {MAX_DEPTH} levels deep"
                                           f"{_where(event.start_mark)}", position=_mark_position(event.start_mark))
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
                continue
            elif not isinstance(event, yaml.ScalarEvent):
                continue  # stream and document events; aliases are counted when composed
            values += 1
            if values > max_nodes:
                raise InputFormatError(f"the spec holds more than {max_nodes} values{_where(event.start_mark)}",
                                       position=_mark_position(event.start_mark))
    except yaml.YAMLError:
        return  # the composing loader reports it, in its words
    finally:
        parser.dispose()


#: Text up to this many characters whose YAML libyaml refuses is read again by the pure-Python
#: loader, for its messages (which name the opening of an unclosed flow mapping, a NUL's line and
#: column); longer text gets libyaml's message, so that invalid text costs no more than valid.
_PURE_MESSAGE_CHARS = 64 * 1024


def _load_yaml(text: str, max_nodes: int) -> Any:
    _precheck_yaml(text, max_nodes)
    if _CSpecLoader is not None:
        loader = _CSpecLoader(text, max_nodes)
        try:
            return loader.get_single_data()
        except yaml.YAMLError as exc:
            # libyaml stops at 1,000 levels; the pure loader refuses the 65th level as it reaches it
            # (cheap: it reads lazily), naming where
            if len(text) > _PURE_MESSAGE_CHARS and "nesting depth" not in str(exc):
                raise
        finally:
            loader.dispose()
    loader = _SpecLoader(text, max_nodes)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _yaml_or_none(text: str, max_nodes: int) -> dict[str, Any] | None:
    """``text`` read as YAML where that gives a mapping, else None (its JSON error is the one to report)."""
    try:
        data = _load_yaml(text, max_nodes)
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def reads_as_yaml(text: str, max_nodes: int = MAX_NODES) -> bool:
    """Whether ``text`` (no JSON) reads as a YAML mapping, within the reader's bounds."""
    try:
        return _yaml_or_none(text, max_nodes) is not None
    except InputFormatError:  # too deep or too large as YAML too: the JSON error says enough
        return False


def yaml_hint(text: str, max_nodes: int = MAX_NODES, *, declared_by: str = "content_type") -> str:
    """What to add to the JSON error of text declared JSON that reads as a YAML mapping (newuser7:
    a YAML spec sent as application/json got a bare "invalid JSON at line 1, column 1"). Nothing
    for text written as JSON (an object whose first key is quoted): YAML reads a JSON object with a
    trailing comma too, and telling its writer to declare YAML hid the broken place (specsweep11 #5).
    ``declared_by`` is how the text was declared JSON: ``"content_type"`` (HTTP) or ``"file_name"``
    (a ``.json`` file at the CLI), which says what to change."""
    if _QUOTED_KEY.match(text) or not reads_as_yaml(text, max_nodes):
        return ""
    how = ("rename the file to .yaml" if declared_by == "file_name"
           else "declare it as YAML (Content-Type: application/yaml, or a .yaml file)")
    return f"; the text reads as a YAML mapping: {how} or write the spec as JSON"


def _json_trailing_comma(text: str, pos: int) -> str:
    """A note on a JSON error at ``pos`` that is a ``}`` or ``]`` right after a comma, JSON's most
    common break (YAML, JavaScript and Python allow the trailing comma; JSON does not), naming the
    comma's line and column; empty otherwise."""
    if pos >= len(text) or text[pos] not in "}]":
        return ""
    before = text[:pos].rstrip()
    if not before.endswith(","):
        return ""
    at = len(before) - 1
    line, column = text.count("\n", 0, at) + 1, at - (text.rfind("\n", 0, at) + 1) + 1
    return (f"; a trailing comma at line {line}, column {column} before `{text[pos]}`: "
            "JSON allows none, remove it")


#: Contexts of a YAML error that open something a closing character ends: where the reader
#: stopped is past the mistake, which is the opening left unclosed.
_UNCLOSED = ("while parsing a flow mapping", "while parsing a flow sequence", "while scanning a quoted scalar")


def _reader_error(position: int, code: int, text: str) -> str:
    """A character YAML does not allow (NUL, other control characters), at its line and column:
    PyYAML's own words ("unacceptable character #x0000 ... position 27") spanned two lines and
    gave no line or column (errsweep5)."""
    before = text[:position]
    line, column = before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1
    kind = "control character" if code < 0x20 or 0x7F <= code <= 0x9F else "character"
    what = "a NUL character (0x00)" if code == 0 else f"the {kind} U+{code:04X}"
    return (f"invalid YAML at line {line}, column {column}: {what}, which YAML text may not hold "
            "(a binary file, or text cut with its bytes): remove it")


def _yaml_error(exc: yaml.YAMLError, text: str | None = None) -> str:
    """The message of a YAML reader's error, at the place to fix. PyYAML's ``MarkedYAMLError`` has
    where it stopped (``problem_mark``) and what it was reading there (``context_mark``): a flow
    mapping, flow sequence or quoted scalar opened on an earlier line and not closed is named at its
    opening, with where the reader stopped after it (newuser9 P12: ``input: {shape: [784]`` was
    reported at line 2, column 1, not at its ``{`` at line 1, column 8); another context is added
    after the problem."""
    if isinstance(exc, yaml.reader.ReaderError) and isinstance(exc.character, int) and text is not None:
        return _reader_error(exc.position, exc.character, text)
    mark = getattr(exc, "problem_mark", None)
    problem = str(getattr(exc, "problem", None) or exc)
    context = getattr(exc, "context", None)
    opened = getattr(exc, "context_mark", None)
    if mark is None:
        return f"invalid YAML: {_clip(problem)}"
    at = f"line {mark.line + 1}, column {mark.column + 1}"
    if context is None or opened is None:
        return f"invalid YAML at {at}: {_clip(problem)}"
    start = f"line {opened.line + 1}, column {opened.column + 1}"
    if context in _UNCLOSED and opened.line < mark.line:
        what = context.removeprefix("while parsing ").removeprefix("while scanning ")
        return f"invalid YAML at {start}: {what} opened there is not closed; at {at}: {_clip(problem)}"
    return f"invalid YAML at {at}: {_clip(problem)} ({_clip(str(context))} at {start})"


def _yaml_position(exc: yaml.YAMLError, text: str | None = None) -> tuple[int, int] | None:
    """(line, column) of the place :func:`_yaml_error` names first: an unclosed opening's, else
    where the reader stopped; None where PyYAML gives no mark. Reports place the error there, as a
    located problem is placed (newuser14 #7: the annotation sat on the file, the message named line 1,
    column 8)."""
    if isinstance(exc, yaml.reader.ReaderError) and isinstance(exc.character, int) and text is not None:
        before = text[:exc.position]
        return before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return None
    opened = getattr(exc, "context_mark", None)
    if getattr(exc, "context", None) in _UNCLOSED and opened is not None and opened.line < mark.line:
        return opened.line + 1, opened.column + 1
    return mark.line + 1, mark.column + 1


#: a YAML key: a name followed by a colon and a space or the end (``input:``, ``out_features: 2``)
_YAML_KEY = re.compile(r"[A-Za-z_][\w.-]*:(?=[ \t]|$)")


def collapsed_hint(text: str) -> str:
    """What to add to the error of YAML text that arrived as one line holding several ``key:``
    pairs, or a ``#`` comment with keys after it: a file sent with ``curl -d @file``, which drops
    its newlines, so the first comment swallows the whole spec ("the spec is empty") or the keys
    run together ("mapping values are not allowed here", newuser15 #2). Empty where the text has
    more than one line or reads as anything else."""
    body = text.strip()
    if "\n" in body or "\r" in body:
        return ""
    keys = len(_YAML_KEY.findall(body))
    if keys < 2 and not (body.startswith("#") and keys >= 1):
        return ""
    return (f"; the body is one line of {len(text.encode())} bytes holding several `key:` pairs: `curl -d @file` "
            "removes a file's newlines (and a leading # comment then swallows the rest); send the file with "
            "`curl --data-binary @file`")


def load_spec_text(text: str, *, content_type: str | None = None,
                   max_nodes: int = MAX_NODES, declared_by: str = "content_type") -> dict[str, Any]:
    """Decode spec text as JSON or YAML (YAML is a superset; JSON errors are reported as such).

    Bounded for untrusted text: YAML aliases are counted while composing (at most ``max_nodes``
    values once expanded) and nesting stops at MAX_DEPTH levels, so neither an alias bomb nor deep
    nesting can stall or crash the reader; both are :class:`InputFormatError`. A UTF-8 byte-order
    mark at the start (Windows PowerShell 5's ``Set-Content -Encoding utf8`` writes one) is dropped,
    as the CLI's other readers drop it: JSON's reader refused it with Python's advice "decode using
    utf-8-sig" and the text was told to declare itself YAML (errsweep5). ``declared_by`` says how
    ``content_type`` was decided (``"file_name"``: from a file's extension, at the CLI), for the
    advice of a JSON error.
    """
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise InputFormatError(EMPTY)
    declared = (content_type or "").lower()
    # JSON where declared, or undeclared text that opens like a JSON object; YAML where declared (a
    # flow mapping, "{input: {shape: [16]}, ...}", opens like JSON too), or when undeclared text that
    # opens with "{" is no JSON but is YAML
    is_json = declared.endswith("json") or ("yaml" not in declared and text.lstrip().startswith("{"))
    try:
        if is_json:
            try:
                data = json.loads(text, parse_int=_json_int, object_pairs_hook=_unique_object)
            except json.JSONDecodeError:
                if declared or _QUOTED_KEY.match(text):
                    raise  # JSON by its look: a quoted first key ('{"input":\n oops}' is broken JSON)
                data = _yaml_or_none(text, max_nodes)
                if data is None:
                    raise
        else:
            data = _load_yaml(text, max_nodes)
    except _RepeatedKey as exc:
        if exc.position is not None:
            raise
        raise _RepeatedKey(exc.key, None, _json_repeated_key_at(text)) from None
    except json.JSONDecodeError as exc:
        raise InputFormatError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
                               f"{_json_trailing_comma(text, exc.pos)}"
                               f"{yaml_hint(text, max_nodes, declared_by=declared_by) if declared else ''}",
                               position=(exc.lineno, exc.colno)) from None
    except yaml.YAMLError as exc:
        raise InputFormatError(_yaml_error(exc, text) + collapsed_hint(text),
                               position=_yaml_position(exc, text)) from None
    except RecursionError:  # JSON nested past the interpreter's stack: the YAML reader stops sooner
        raise _json_too_deep(text) from None
    if data is None:  # only comments, or an empty document
        raise InputFormatError(EMPTY + collapsed_hint(text))
    if not isinstance(data, dict):
        raise InputFormatError("the spec must be a JSON object / YAML mapping at the top level"
                               + collapsed_hint(text))
    _inspect(data, max_nodes)  # JSON has no aliases, but may still be too deep or too large
    return data
