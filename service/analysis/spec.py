"""The architecture spec: a small declarative description of a network.

The field names here are public contract (clients, CI files and dashboards depend
on them): add fields freely, rename none. The JSON Schema is generated from
these models (:func:`spec_json_schema`).

Example::

    input: {shape: [784]}
    batch_size: 64
    seeds: 3
    loss: {type: cross_entropy, classes: 10}
    layers:
      - {type: linear, out_features: 256, activation: sigmoid, init: {scheme: normal, std: 0.05}, repeat: 20}
      - {type: linear, out_features: 10}
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from gradhealth.analysis.activations import SATURATING as SATURATING  # re-exported: spec vocabulary
from gradhealth.analysis.activations import Activation
from gradhealth.errors import InputFormatError, Problem, SpecError

InitScheme = Literal[
    "default", "normal", "uniform", "xavier_normal", "xavier_uniform",
    "kaiming_normal", "kaiming_uniform", "he_normal", "he_uniform",
    "lecun_normal", "orthogonal", "zeros",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class InitSpec(_Strict):
    """Weight initialisation. A plain string is shorthand for ``{scheme: <string>}``.

    ``normal`` draws N(0, std^2); ``uniform`` draws U(-bound, bound); ``xavier_*``
    give Var = gain^2 * 2/(fan_in + fan_out) (Glorot & Bengio 2010); ``kaiming_*``
    (He et al. 2015) give Var = 2/fan_in for the ReLU family (the gain follows the
    layer's activation); ``lecun_normal`` gives Var = 1/fan_in; ``orthogonal``
    a (semi-)orthogonal matrix times ``gain``; ``default`` keeps PyTorch's own.
    """

    scheme: InitScheme = "default"
    std: float | None = Field(default=None, gt=0, description="standard deviation for `normal`")
    bound: float | None = Field(default=None, gt=0, description="half-width for `uniform`")
    gain: float | None = Field(default=None, gt=0, description="gain for xavier_* and orthogonal")

    @model_validator(mode="after")
    def _needs_parameters(self) -> InitSpec:
        if self.scheme == "normal" and self.std is None:
            raise ValueError("scheme 'normal' needs `std` (a number > 0)")
        if self.scheme == "uniform" and self.bound is None:
            raise ValueError("scheme 'uniform' needs `bound` (a number > 0)")
        return self


class BiasInit(_Strict):
    """Bias initialisation: ``zeros``, ``constant`` (value), ``normal`` (std) or PyTorch's ``default``."""

    scheme: Literal["default", "zeros", "constant", "normal"] = "default"
    value: float = 0.0
    std: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _needs_std(self) -> BiasInit:
        if self.scheme == "normal" and self.std is None:
            raise ValueError("scheme 'normal' needs `std` (a number > 0)")
        return self


def _coerce_scheme(value: Any) -> Any:
    return {"scheme": value} if isinstance(value, str) else value


InitField = Annotated[InitSpec, Field(default_factory=InitSpec)]
Norm = Literal["batchnorm", "layernorm"]


class _LayerBase(_Strict):
    repeat: int = Field(default=1, ge=1, description="stack this many copies in sequence")


class _WeightLayer(_LayerBase):
    activation: Activation = "identity"
    negative_slope: float = Field(default=0.01, ge=0, description="slope of leaky_relu for x < 0")
    init: InitField
    bias: bool = True
    bias_init: BiasInit = Field(default_factory=BiasInit)
    norm: Norm | None = Field(default=None, description="normalise the pre-activation")

    _coerce_init = field_validator("init", "bias_init", mode="before")(
        lambda cls, v: _coerce_scheme(v)
    )


class LinearLayer(_WeightLayer):
    type: Literal["linear"]
    out_features: int = Field(ge=1)


class _ConvLayer(_WeightLayer):
    @model_validator(mode="after")
    def _same_needs_stride_1(self) -> _ConvLayer:
        if self.padding == "same" and self.stride != 1:  # type: ignore[attr-defined]  # both fields are declared by the Conv1d/Conv2d subclasses
            raise ValueError("padding 'same' needs stride 1; give the padding as a number instead")
        return self


class Conv1dLayer(_ConvLayer):
    type: Literal["conv1d"]
    out_channels: int = Field(ge=1)
    kernel_size: int = Field(ge=1)
    stride: int = Field(default=1, ge=1)
    padding: int | Literal["same"] = 0


class Conv2dLayer(_ConvLayer):
    type: Literal["conv2d"]
    out_channels: int = Field(ge=1)
    kernel_size: int = Field(ge=1)
    stride: int = Field(default=1, ge=1)
    padding: int | Literal["same"] = 0


class PoolLayer2d(_LayerBase):
    type: Literal["maxpool2d", "avgpool2d"]
    kernel_size: int = Field(ge=1)
    stride: int | None = Field(default=None, ge=1)


class FlattenLayer(_LayerBase):
    type: Literal["flatten"]


class EmbeddingLayer(_LayerBase):
    type: Literal["embedding"]
    embedding_dim: int = Field(ge=1)
    init: InitField

    _coerce_init = field_validator("init", mode="before")(lambda cls, v: _coerce_scheme(v))


class NormLayer(_LayerBase):
    type: Literal["batchnorm", "layernorm"]


class DropoutLayer(_LayerBase):
    type: Literal["dropout"]
    p: float = Field(default=0.1, ge=0, lt=1)


class ActivationLayer(_LayerBase):
    type: Literal["activation"]
    activation: Activation
    negative_slope: float = Field(default=0.01, ge=0)


class RecurrentLayer(_LayerBase):
    """``rnn`` / ``lstm`` / ``gru`` over a ``[seq_len, features]`` input.

    ``forget_bias`` (lstm only) sets the forget-gate bias: a number (1 or more
    opens the gate at the start; Gers et al. 2000) or ``chrono`` (Tallec &
    Ollivier 2018: b_f ~ log U(1, seq_len - 1), b_i = -b_f).
    """

    type: Literal["rnn", "lstm", "gru"]
    hidden_size: int = Field(ge=1)
    num_layers: int = Field(default=1, ge=1)
    nonlinearity: Literal["tanh", "relu"] = "tanh"
    output: Literal["last", "sequence"] = "last"
    init: InitField
    recurrent_init: InitField
    bias_init: BiasInit = Field(default_factory=BiasInit)
    forget_bias: float | Literal["chrono"] | None = None

    _coerce_init = field_validator("init", "recurrent_init", "bias_init", mode="before")(
        lambda cls, v: _coerce_scheme(v)
    )

    @model_validator(mode="after")
    def _forget_bias_only_lstm(self) -> RecurrentLayer:
        if self.forget_bias is not None and self.type != "lstm":
            raise ValueError(f"`forget_bias` applies to lstm only (this layer is {self.type})")
        if self.nonlinearity != "tanh" and self.type != "rnn":
            raise ValueError(f"`nonlinearity` applies to rnn only (this layer is {self.type})")
        return self


class SequencePoolLayer(_LayerBase):
    type: Literal["pool"]
    mode: Literal["mean", "last"] = "mean"


class TransformerEncoderLayer(_LayerBase):
    """A stack of ``num_layers`` encoder layers over a ``[seq_len, d_model]`` input.

    ``norm_first: true`` is Pre-LN (with a final LayerNorm), ``false`` is Post-LN
    (Xiong et al. 2020).
    """

    type: Literal["transformer_encoder"]
    d_model: int = Field(ge=1)
    heads: int = Field(ge=1)
    ff_width: int = Field(ge=1)
    num_layers: int = Field(default=1, ge=1)
    norm_first: bool = False
    dropout: float = Field(default=0.0, ge=0, lt=1)
    activation: Literal["relu", "gelu"] = "relu"

    @model_validator(mode="after")
    def _heads_divide(self) -> TransformerEncoderLayer:
        if self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by heads ({self.heads})")
        return self


class ResidualBlock(_LayerBase):
    """``x + scale * f(x)`` where ``f`` is the block's ``layers``; ``f`` must keep the shape."""

    type: Literal["residual"]
    layers: list[Layer] = Field(min_length=1)
    scale: float = Field(default=1.0, gt=0, description="branch multiplier (e.g. 1/sqrt(depth))")


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
    vocab_size: int = Field(ge=2)
    seq_len: int = Field(ge=1)


class InputSpec(_Strict):
    """The synthetic input: a ``shape`` (without the batch dimension) or ``tokens``.

    Sequences are ``[seq_len, features]``. ``vocab_size``/``seq_len`` may also be
    given directly here as shorthand for ``tokens``.
    """

    shape: list[int] | None = Field(default=None, min_length=1, max_length=3)
    tokens: Tokens | None = None
    distribution: Literal["normal", "uniform"] = "normal"
    scale: float = Field(default=1.0, gt=0, description="std of `normal`, half-width of `uniform`")

    @model_validator(mode="before")
    @classmethod
    def _lift_tokens(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("vocab_size" in data or "seq_len" in data):
            data = dict(data)
            data["tokens"] = {k: data.pop(k) for k in ("vocab_size", "seq_len") if k in data}
        return data

    @field_validator("shape")
    @classmethod
    def _positive(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and any(d < 1 for d in v):
            raise ValueError(f"every dimension must be >= 1 (got {v})")
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> InputSpec:
        if (self.shape is None) == (self.tokens is None):
            raise ValueError("give exactly one of `shape` (e.g. [784]) or `tokens` ({vocab_size, seq_len})")
        return self


class LossSpec(_Strict):
    """``cross_entropy`` on random labels (``classes`` defaults to the output width), ``mse``
    against a standard-normal target, or ``sum`` of the outputs. A plain string works too."""

    type: Literal["cross_entropy", "mse", "sum"] = "cross_entropy"
    classes: int | None = Field(default=None, ge=2)


class Spec(_Strict):
    """An architecture to check."""

    name: str | None = Field(default=None, description="free text shown in reports")
    input: InputSpec
    layers: list[Layer] = Field(min_length=1)
    batch_size: int = Field(default=64, ge=1)
    seeds: int = Field(default=3, ge=1, le=32, description="independent initialisations to average over")
    loss: LossSpec = Field(default_factory=LossSpec)
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
        parts.append(str(part).replace("~", "~0").replace("/", "~1"))
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
    fields = set(Spec.model_fields) if len(loc) == 1 else _field_names(_Strict)
    close = difflib.get_close_matches(key, sorted(fields), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else "check the spelling against the spec reference"


def _message(err: ErrorDetails) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "union_tag_invalid":
        expected = err.get("ctx", {}).get("expected_tags", "")
        return f"unknown layer type {err['input'].get('type')!r}; allowed: {expected}"
    if err["type"] == "literal_error":
        return f"{msg} (got {err['input']!r})"
    if err["type"] == "extra_forbidden":
        return "unknown field; " + _did_you_mean(tuple(err["loc"]))
    if err["type"] in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        return f"{msg} (got {err['input']!r})"
    return msg


def parse_spec(data: Any) -> Spec:
    """Validate a decoded spec; raise :class:`SpecError` naming every bad field by JSON pointer."""
    if not isinstance(data, dict):
        raise InputFormatError(f"the spec must be a mapping/object, got {type(data).__name__}")
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        problems: list[Problem] = []
        for err in exc.errors():
            pointer = _pointer(tuple(err["loc"]), data)
            if err["type"] == "missing":  # the field is absent, so the walk cannot reach it
                pointer += "/" + str(err["loc"][-1])
            problems.append(Problem(pointer, _message(err)))
        # One problem per pointer: unions report a failure per alternative.
        unique = list(dict.fromkeys(problems))
        detail = "; ".join(str(p) for p in unique[:5])
        if len(unique) > 5:
            detail += f"; and {len(unique) - 5} more"
        raise SpecError(detail, unique) from None


def load_spec_text(text: str, *, content_type: str | None = None) -> dict[str, Any]:
    """Decode spec text as JSON or YAML (YAML is a superset; JSON errors are reported as such)."""
    stripped = text.lstrip()
    is_json = (content_type or "").endswith("json") or stripped.startswith("{")
    try:
        data = json.loads(text) if is_json else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise InputFormatError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InputFormatError(f"invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise InputFormatError("the spec must be a JSON object / YAML mapping at the top level")
    return data
