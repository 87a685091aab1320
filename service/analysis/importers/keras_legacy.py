"""Keras 1 model files in Keras 2's terms (torch-free, Keras-free).

Keras 1 (2015-2017) named a layer's fields differently (``Dense(output_dim, init)``,
``LSTM(inner_activation, inner_init)``, ``Convolution1D(nb_filter, filter_length, border_mode)``,
``Dropout(p)``...) and stored an LSTM's gates as twelve separate arrays. Keras 2.0 read such files
by converting both when it loaded them (``keras/legacy/interfaces.py`` for the fields,
``preprocess_weights_for_loading`` in ``keras/engine/topology.py`` for the weights); the same
conversion is done here, as data, before the importers read the config:

* :func:`keras1_config`: a model config with every Keras 1 layer rewritten in Keras 2's names
  (classes such as ``Convolution1D`` -> ``Conv1D``, fields, values such as ``dim_ordering: th``
  -> ``data_format: channels_first``). What Keras 2 could not convert, or the importers have no
  Keras 2 equivalent for (``Merge`` of whole models, ``TimeDistributedDense``, a BatchNormalization
  ``mode`` other than 0...), is refused in one :class:`ModelError` naming the layer, its Keras 1
  field and that the file is Keras 1.
* :func:`keras1_weight_arrays`: a layer's stored Keras 1 arrays as Keras 2 stores them (an LSTM's
  ``W_i, U_i, b_i, W_c, ...`` -> kernel, recurrent kernel, bias in Keras 2's i, f, c, o order; a
  GRU's nine -> three; a ``Convolution1D`` kernel ``[k, 1, in, out]`` -> ``[k, in, out]``; a
  Theano-ordered ``Convolution2D`` kernel ``[out, in, kh, kw]`` -> ``[kh, kw, in, out]``), lazily:
  shapes are known before anything is read.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from gradhealth.analysis.importers import ModelError, keras_walk

__all__ = ["CUDNN_GATES", "cudnn_config", "cudnn_weight_arrays", "is_keras1", "keras1_config", "keras1_weight_arrays"]

_DIM_ORDERING = {"tf": "channels_last", "th": "channels_first"}
_CONSUME_LESS = {"cpu": 0, "mem": 1, "gpu": 2}
_PADDING = ("valid", "same", "causal")

_DENSE = (("output_dim", "units"), ("init", "kernel_initializer"), ("W_regularizer", "kernel_regularizer"),
          ("b_regularizer", "bias_regularizer"), ("W_constraint", "kernel_constraint"),
          ("b_constraint", "bias_constraint"), ("bias", "use_bias"))
_RECURRENT = (("output_dim", "units"), ("init", "kernel_initializer"), ("inner_init", "recurrent_initializer"),
              ("inner_activation", "recurrent_activation"), ("W_regularizer", "kernel_regularizer"),
              ("b_regularizer", "bias_regularizer"), ("U_regularizer", "recurrent_regularizer"),
              ("dropout_W", "dropout"), ("dropout_U", "recurrent_dropout"), ("consume_less", "implementation"))
_CONV_COMMON = (("nb_filter", "filters"), ("border_mode", "padding"), ("init", "kernel_initializer"),
                ("W_regularizer", "kernel_regularizer"), ("b_regularizer", "bias_regularizer"),
                ("W_constraint", "kernel_constraint"), ("b_constraint", "bias_constraint"), ("bias", "use_bias"),
                ("atrous_rate", "dilation_rate"))
_CONV1D = (*_CONV_COMMON, ("filter_length", "kernel_size"), ("subsample_length", "strides"))
_CONV2D = (*_CONV_COMMON, ("subsample", "strides"), ("dim_ordering", "data_format"))
_POOL1D = (("pool_length", "pool_size"), ("stride", "strides"), ("border_mode", "padding"))
_POOL2D = (("border_mode", "padding"), ("dim_ordering", "data_format"))
_ORDERING = (("dim_ordering", "data_format"),)
_RATE = (("p", "rate"),)

#: Keras 1 class -> (Keras 2 class, field conversions), as Keras 2.0's legacy interfaces did them.
_CLASSES: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "Dense": ("Dense", _DENSE),
    "SimpleRNN": ("SimpleRNN", _RECURRENT), "LSTM": ("LSTM", _RECURRENT), "GRU": ("GRU", _RECURRENT),
    "Convolution1D": ("Conv1D", _CONV1D), "AtrousConvolution1D": ("Conv1D", _CONV1D), "Conv1D": ("Conv1D", _CONV1D),
    "Convolution2D": ("Conv2D", _CONV2D), "AtrousConvolution2D": ("Conv2D", _CONV2D), "Conv2D": ("Conv2D", _CONV2D),
    "MaxPooling1D": ("MaxPooling1D", _POOL1D), "AveragePooling1D": ("AveragePooling1D", _POOL1D),
    "MaxPooling2D": ("MaxPooling2D", _POOL2D), "AveragePooling2D": ("AveragePooling2D", _POOL2D),
    "GlobalAveragePooling1D": ("GlobalAveragePooling1D", ()), "GlobalMaxPooling1D": ("GlobalMaxPooling1D", ()),
    "GlobalAveragePooling2D": ("GlobalAveragePooling2D", _ORDERING),
    "GlobalMaxPooling2D": ("GlobalMaxPooling2D", _ORDERING),
    "Dropout": ("Dropout", _RATE), "SpatialDropout1D": ("SpatialDropout1D", _RATE),
    "SpatialDropout2D": ("SpatialDropout2D", (*_RATE, *_ORDERING)),
    "SpatialDropout3D": ("SpatialDropout3D", (*_RATE, *_ORDERING)),
    "GaussianDropout": ("GaussianDropout", _RATE), "GaussianNoise": ("GaussianNoise", (("sigma", "stddev"),)),
    "Embedding": ("Embedding", (("init", "embeddings_initializer"), ("W_regularizer", "embeddings_regularizer"),
                                ("W_constraint", "embeddings_constraint"))),
    "PReLU": ("PReLU", (("init", "alpha_initializer"),)),
    "BatchNormalization": ("BatchNormalization", (("beta_init", "beta_initializer"),
                                                  ("gamma_init", "gamma_initializer"))),
    "UpSampling1D": ("UpSampling1D", (("length", "size"),)),
    "UpSampling2D": ("UpSampling2D", _ORDERING), "ZeroPadding2D": ("ZeroPadding2D", _ORDERING),
    "Cropping2D": ("Cropping2D", _ORDERING),
    "InputLayer": ("InputLayer", ()),
}
#: A functional Keras 1 ``Merge``'s mode -> the Keras 2 merge layer that computes it.
_MERGE_MODES = {"sum": "Add", "mul": "Multiply", "concat": "Concatenate", "ave": "Average", "max": "Maximum",
                "dot": "Dot"}
#: Keras 1 classes with no Keras 2 layer the importers read, and what to use.
_GONE = {
    "TimeDistributedDense": "Keras 2 has no TimeDistributedDense: TimeDistributed(Dense) computes it",
    "Highway": "Keras 2 has no Highway layer",
    "MaxoutDense": "Keras 2 has no MaxoutDense layer",
}
#: Fields only Keras 1 wrote (Embedding's output_dim and input_dim are Keras 2's too): one left
#: after the conversion is refused, never ignored.
KERAS1_FIELDS = frozenset({
    "output_dim", "init", "inner_init", "inner_activation", "W_regularizer", "U_regularizer", "b_regularizer",
    "W_constraint", "U_constraint", "b_constraint", "dropout_W", "dropout_U", "consume_less", "forget_bias_init",
    "nb_filter", "filter_length", "nb_row", "nb_col", "subsample", "subsample_length", "border_mode",
    "dim_ordering", "pool_length", "stride", "atrous_rate", "beta_init", "gamma_init", "p", "sigma",
    "input_dtype",
})
_KERAS2_ALSO = {"Embedding": {"output_dim"}}


def is_keras1(model: Any) -> bool:
    """Whether ``model`` (a Keras model config) was written by Keras 1: its ``keras_version`` says
    1.x, or a layer has a Keras 1 class or field."""
    version = model.get("keras_version") if isinstance(model, dict) else None
    if isinstance(version, str) and version.split(".")[0] == "1":
        return True
    return any(_keras1_layer(cls, cfg) for cls, cfg in _entries(model))


def _entries(value: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every ``(class_name, config)`` in ``value`` (layers, wrapped layers, nested models)."""
    return [(d["class_name"], d["config"]) for d in keras_walk.dicts(value)
            if isinstance(d.get("class_name"), str) and isinstance(d.get("config"), dict)]


def _keras1_layer(cls: str, cfg: dict[str, Any]) -> bool:
    if cls in _GONE or cls == "Merge" or cls.startswith(("Convolution", "AtrousConvolution")):
        return True
    if cls not in _CLASSES:  # a custom layer names its fields as it likes (the importers refuse it by class)
        return False
    return bool((set(cfg) & KERAS1_FIELDS) - _KERAS2_ALSO.get(cls, set()))


def keras1_config(model: Any) -> Any:
    """``model`` (a Keras model config in today's form, :func:`.keras.modern_config`) with its Keras 1
    layers in Keras 2's names (a new dict; ``model`` itself where it has none). Raises
    :class:`ModelError` naming every layer and Keras 1 field that cannot be converted."""
    if not isinstance(model, dict) or not any(_keras1_layer(c, f) for c, f in _entries(model)):
        return model
    version = model.get("keras_version")
    said = f"Keras {version}" if isinstance(version, str) else "Keras 1 (by its field names)"
    problems: list[str] = []
    out = copy.deepcopy(model)
    _convert_model(out, problems)
    if problems:
        raise ModelError(f"a {said} file: its config cannot be read in Keras 2's terms: " + "; ".join(problems[:20])
                         + (f"; and {len(problems) - 20} more" if len(problems) > 20 else ""))
    return out


def _convert_model(model: dict[str, Any], problems: list[str]) -> None:
    cfg = model.get("config")
    layers = cfg.get("layers") if isinstance(cfg, dict) else None
    for layer in layers if isinstance(layers, list) else []:
        if isinstance(layer, dict):
            _convert_layer(layer, problems)


def _convert_layer(layer: dict[str, Any], problems: list[str]) -> None:
    """Rewrite one ``{class_name, config}`` entry (and what it wraps or nests) in place."""
    cls, cfg = layer.get("class_name"), layer.get("config")
    if not isinstance(cls, str) or not isinstance(cfg, dict):
        return
    name = str(cfg.get("name", cls))
    if cls in ("Sequential", "Model", "Functional"):
        _convert_model(layer, problems)
        return
    if cls in ("Bidirectional", "TimeDistributed"):
        inner = cfg.get("layer")
        if isinstance(inner, dict):
            _convert_layer(inner, problems)
        return
    if cls in _GONE:
        problems.append(f"{name} ({cls}): a Keras 1 layer that cannot be converted ({_GONE[cls]})")
        return
    if cls == "Merge":
        _convert_merge(layer, cfg, name, problems)
        return
    new_cls, renames = _CLASSES.get(cls, (cls, ()))
    for old, new in (*renames, ("input_dtype", "dtype")):  # any layer's: Keras 2's Layer took both
        if old not in cfg:
            continue
        value = cfg.pop(old)
        if new in cfg and cfg[new] != value:
            problems.append(f"{name} ({cls}): both the Keras 1 field {old} and the Keras 2 field {new}")
            continue
        cfg[new] = value
    layer["class_name"] = new_cls
    _convert_values(new_cls, cfg, name, cls, problems)
    left = sorted((set(cfg) & KERAS1_FIELDS) - _KERAS2_ALSO.get(new_cls, set())) if cls in _CLASSES else []
    for old in left:
        problems.append(f"{name} ({cls}): the Keras 1 field {old} ({str(cfg[old])[:40]}) has no Keras 2 equivalent "
                        "the check reads")


def _convert_values(cls: str, cfg: dict[str, Any], name: str, old_cls: str, problems: list[str]) -> None:
    """The values Keras 2 reads differently: dim_ordering's, consume_less's, a kernel's rows and
    columns, forget_bias_init, the input's size and length, a BatchNormalization's mode."""
    where = f"{name} ({old_cls})"
    if "data_format" in cfg:
        order = cfg["data_format"]
        if order in _DIM_ORDERING:
            cfg["data_format"] = _DIM_ORDERING[order]
        elif order in (None, "default"):
            cfg.pop("data_format")
    if isinstance(cfg.get("padding"), str) and cls not in ("ZeroPadding2D",) and cfg["padding"] not in _PADDING:
        problems.append(f"{where}: the Keras 1 field border_mode {cfg['padding']!r} (Keras 2 has valid and same)")
    if "implementation" in cfg and cfg["implementation"] in _CONSUME_LESS:
        cfg["implementation"] = _CONSUME_LESS[cfg["implementation"]]
    if cls == "Conv2D" and ("nb_row" in cfg or "nb_col" in cfg):
        rows, cols = cfg.pop("nb_row", None), cfg.pop("nb_col", None)
        cfg["kernel_size"] = [rows, cols]
    if cls in ("Conv1D",) and isinstance(cfg.get("kernel_size"), int):
        cfg["kernel_size"] = [cfg["kernel_size"]]
    if cls in ("Conv1D",) and isinstance(cfg.get("strides"), int):
        cfg["strides"] = [cfg["strides"]]
    if cls in ("MaxPooling1D", "AveragePooling1D") and "strides" in cfg and cfg["strides"] is None:
        cfg["strides"] = cfg.get("pool_size")  # Keras 1's stride None: the pool's length
    if cls == "LSTM" and "forget_bias_init" in cfg:
        value = cfg.pop("forget_bias_init")
        if value in ("one", "ones"):
            cfg["unit_forget_bias"] = True
        elif value in ("zero", "zeros"):
            cfg["unit_forget_bias"] = False  # the initialiser's bias, as Keras 1 drew it
        else:
            problems.append(f"{where}: the Keras 1 field forget_bias_init {value!r} (Keras 2 has unit_forget_bias, "
                            "a forget-gate bias of one or none)")
    if cls == "GRU":
        cfg.setdefault("reset_after", False)  # Keras 1's GRU applies the reset gate before the product
    if cls == "BatchNormalization" and "mode" in cfg:
        mode = cfg.pop("mode")
        if mode not in (0, None):
            problems.append(f"{where}: the Keras 1 field mode {mode!r} (Keras 2 kept only mode 0, "
                            "feature-wise normalisation with moving statistics)")
    if cls == "Embedding" and "dropout" in cfg:
        rate = cfg.pop("dropout")
        if rate not in (0, 0.0, None):
            problems.append(f"{where}: the Keras 1 field dropout {rate!r} (whole-word dropout, which Keras 2 "
                            "dropped; SpatialDropout1D after the Embedding is its equivalent)")
    if cls in ("Dense", "Conv1D", "SimpleRNN", "LSTM", "GRU") and "input_dim" in cfg:
        dim, length = cfg.pop("input_dim"), cfg.pop("input_length", None)
        if dim is not None and "batch_input_shape" not in cfg:
            cfg["batch_input_shape"] = [None, dim] if cls == "Dense" else [None, length, dim]


def _convert_merge(layer: dict[str, Any], cfg: dict[str, Any], name: str, problems: list[str]) -> None:
    """A functional Keras 1 ``merge([a, b], mode=...)``: the Keras 2 merge layer of its mode."""
    if cfg.get("layers"):
        problems.append(f"{name} (Merge): a Keras 1 Merge of whole models (Sequential branches) cannot be "
                        "converted; build the model with the functional API and a merge layer (Add, Concatenate...)")
        return
    mode = cfg.get("mode", "sum")
    if cfg.get("mode_type", "raw") != "raw" or mode not in _MERGE_MODES:
        problems.append(f"{name} (Merge): the Keras 1 field mode {str(mode)[:40]!r} cannot be converted "
                        f"(sum, mul, concat, ave, max and dot can)")
        return
    new: dict[str, Any] = {"name": cfg.get("name", name), "trainable": cfg.get("trainable", True)}
    if mode == "concat":
        new["axis"] = cfg.get("concat_axis", -1)
    if mode == "dot":
        axes = cfg.get("dot_axes", -1)
        new["axes"] = axes
        new["normalize"] = False
    layer["class_name"] = _MERGE_MODES[mode]
    layer["config"] = new


# --- weights -----------------------------------------------------------------------------------

class LegacyArray:
    """A Keras 2 array made of a layer's Keras 1 datasets (h5py datasets, or arrays), read only
    when indexed with ``[()]``: ``shape``, ``dtype`` and ``name`` are known from their metadata,
    so the importer checks it against the config before anything is read."""

    def __init__(self, parts: Sequence[Any], how: str, shape: tuple[int, ...]) -> None:
        self.parts = list(parts)
        self.how = how  # "concat" | "conv1d" | "conv1d_th" | "conv2d_th"
        self.shape = shape
        self.dtype = self.parts[0].dtype
        self.name = self.parts[0].name if len(self.parts) == 1 else (
            f"{self.parts[0].name} (with {len(self.parts) - 1} more, joined as Keras 2 does)")

    def __getitem__(self, key: Any) -> np.ndarray:
        arrays = [np.asarray(p[()]) for p in self.parts]
        if self.how == "concat":
            out = np.concatenate(arrays, axis=-1)
        elif self.how == "conv1d":  # [k, 1, in, out] -> [k, in, out]
            out = arrays[0][:, 0, :, :]
        elif self.how == "conv1d_th":  # Keras 1.1's Theano ordering [out, in, k, 1] -> [k, in, out]
            out = np.transpose(arrays[0], (2, 3, 1, 0))[:, 0, :, :]
        else:  # conv2d_th: [out, in, kh, kw] -> [kh, kw, in, out]
            out = np.transpose(arrays[0], (2, 3, 1, 0))
        return out[key]


def _shape(ds: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in ds.shape)


def keras1_weight_arrays(cls: str, cfg: dict[str, Any], datasets: list[Any]) -> list[Any]:
    """A layer's datasets as stored by Keras 1 -> the arrays Keras 2 stores for its converted
    config (``cls``/``cfg``: Keras 2's), as :class:`LegacyArray` where they differ; unchanged where
    Keras 1 stored them as Keras 2 does (Dense, Embedding, BatchNormalization...) or where the
    shapes are not Keras 1's (the importer's own shape check then words the mismatch)."""
    if cls == "Bidirectional":
        inner = cfg.get("layer")
        if isinstance(inner, dict) and isinstance(inner.get("config"), dict) and len(datasets) % 2 == 0:
            half = len(datasets) // 2
            one = str(inner.get("class_name"))
            return (keras1_weight_arrays(one, inner["config"], datasets[:half])
                    + keras1_weight_arrays(one, inner["config"], datasets[half:]))
        return datasets
    if cls == "TimeDistributed":
        inner = cfg.get("layer")
        if isinstance(inner, dict) and isinstance(inner.get("config"), dict):
            return keras1_weight_arrays(str(inner.get("class_name")), inner["config"], datasets)
        return datasets
    gates = {"LSTM": (0, 6, 3, 9), "GRU": (0, 3, 6)}.get(cls)  # Keras 1's i, c, f, o -> Keras 2's i, f, c, o
    if gates is not None and len(datasets) == 3 * len(gates):
        out = []
        for role in range(3):  # kernel, recurrent kernel, bias
            parts = [datasets[g + role] for g in gates]
            shapes = [_shape(p) for p in parts]
            if len({s[:-1] for s in shapes}) != 1 or any(len(s) != len(shapes[0]) for s in shapes):
                return datasets  # not Keras 1's gate blocks: refused by the shape check
            out.append(LegacyArray(parts, "concat", (*shapes[0][:-1], sum(s[-1] for s in shapes))))
        return out
    if cls == "Conv1D" and datasets and len(_shape(datasets[0])) == 4:
        shape = _shape(datasets[0])
        filters = cfg.get("filters")
        if shape[1] == 1:  # [k, 1, in, out]
            return [LegacyArray(datasets[:1], "conv1d", (shape[0], shape[2], shape[3])), *datasets[1:]]
        if shape[3] == 1 and (filters is None or shape[0] == filters):  # Theano: [out, in, k, 1]
            return [LegacyArray(datasets[:1], "conv1d_th", (shape[2], shape[1], shape[0])), *datasets[1:]]
    if cls == "Conv2D" and cfg.get("data_format") == "channels_first" and datasets:
        shape = _shape(datasets[0])
        if len(shape) == 4:  # [out, in, kh, kw] -> [kh, kw, in, out]
            return [LegacyArray(datasets[:1], "conv2d_th", (shape[2], shape[3], shape[1], shape[0])),
                    *datasets[1:]]
    return datasets


# --- Keras 2.1-2.3's CuDNN layers ----------------------------------------------------------------
#: The GPU-only recurrent layers of Keras 2.1-2.3 and tf.keras 1 -> the layer that computes the
#: same function and the fields they fix: CuDNNLSTM is an LSTM (tanh, sigmoid gates), CuDNNGRU a
#: GRU with the reset gate after the recurrent product (cuDNN's cell), neither with dropout.
_CUDNN: dict[str, tuple[str, dict[str, Any]]] = {
    "CuDNNLSTM": ("LSTM", {}),
    "CuDNNGRU": ("GRU", {"reset_after": True}),
}
#: CuDNN class -> its gate blocks (the stored bias holds the input's and the recurrent's: 2x).
CUDNN_GATES = {"CuDNNLSTM": 4, "CuDNNGRU": 3}


def cudnn_config(model: Any) -> Any:
    """``model`` (a Keras model config) with every ``CuDNNLSTM``/``CuDNNGRU`` as the ``LSTM``/``GRU``
    that computes the same (a new dict; ``model`` itself where it has none), marked ``_cudnn`` (its
    class) so its stored weights are read in cuDNN's layout (:func:`cudnn_weight_arrays`).

    A constant bias initializer (``Zeros``, ``Ones``, ``Constant``) is doubled: the CuDNN layer
    draws the input's and the recurrent's bias from it and adds them."""
    return keras_walk.rewritten(model, _is_cudnn, _convert_cudnn)


def _is_cudnn(value: dict[str, Any]) -> bool:
    cls = value.get("class_name")
    return isinstance(cls, str) and cls in _CUDNN and isinstance(value.get("config"), dict)


def _convert_cudnn(value: dict[str, Any]) -> None:
    cls, cfg = value["class_name"], value["config"]
    new_cls, fixed = _CUDNN[cls]
    value["class_name"] = new_cls
    cfg.update({"activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True,
                "dropout": 0.0, "recurrent_dropout": 0.0, **fixed, "_cudnn": cls})
    cfg["bias_initializer"] = _doubled(cfg.get("bias_initializer"))


def _doubled(init: Any) -> Any:
    """A constant initializer of twice the value (the sum of the two biases it fills); another as it is."""
    name = init if isinstance(init, str) else init.get("class_name") if isinstance(init, dict) else None
    cfg = (init.get("config") if isinstance(init, dict) else None) or {}
    if name in ("Zeros", "zeros", "zero"):
        return init
    if name in ("Ones", "ones", "one"):
        return {"class_name": "Constant", "config": {"value": 2.0}}
    if name in ("Constant", "constant") and isinstance(cfg.get("value"), int | float) \
            and not isinstance(cfg.get("value"), bool):
        return {"class_name": "Constant", "config": {"value": 2.0 * float(cfg["value"])}}
    return init


class CudnnArray(LegacyArray):
    """One of a CuDNN layer's stored arrays as the LSTM/GRU it is read as stores it, read lazily
    (Keras' ``_convert_rnn_weights``): the input kernel's gate blocks are cuDNN's row-major
    [units, in] matrices written into Keras' [in, units] block (each block ``k.T.reshape(k.shape,
    order="F")``), the recurrent kernel's blocks are transposed, an LSTM's two biases [8u] are
    summed to [4u], a GRU's [6u] is its [2, 3u] (input's, recurrent's)."""

    def __init__(self, part: Any, how: str, gates: int, shape: tuple[int, ...]) -> None:
        super().__init__([part], how, shape)
        self.gates = gates
        self.name = f"{part.name} (cuDNN's layout, read as Keras' LSTM/GRU's)"

    def __getitem__(self, key: Any) -> np.ndarray:
        a = np.asarray(self.parts[0][()])
        if self.how == "cudnn_kernel":
            out = np.hstack([k.T.reshape(k.shape, order="F") for k in np.hsplit(a, self.gates)])
        elif self.how == "cudnn_recurrent":
            out = np.hstack([k.T for k in np.hsplit(a, self.gates)])
        elif self.how == "cudnn_bias_sum":
            out = np.sum(np.split(a, 2, axis=0), axis=0)
        else:  # cudnn_bias_rows
            out = a.reshape(2, -1)
        return out[key]


def cudnn_weight_arrays(cls: str, cfg: dict[str, Any], datasets: list[Any]) -> list[Any]:
    """A layer's stored arrays as the LSTM/GRU :func:`cudnn_config` reads a CuDNN layer as stores
    them (:class:`CudnnArray`); unchanged for other layers, or where the shapes are not a CuDNN
    layer's (the importer's shape check then words the mismatch)."""
    if cls in ("Bidirectional", "TimeDistributed"):
        inner = cfg.get("layer")
        if not (isinstance(inner, dict) and isinstance(inner.get("config"), dict)):
            return datasets
        one = str(inner.get("class_name"))
        if cls == "Bidirectional" and len(datasets) % 2 == 0:
            half = len(datasets) // 2
            return (cudnn_weight_arrays(one, inner["config"], datasets[:half])
                    + cudnn_weight_arrays(one, inner["config"], datasets[half:]))
        return cudnn_weight_arrays(one, inner["config"], datasets)
    source = cfg.get("_cudnn")
    gates = CUDNN_GATES.get(source) if isinstance(source, str) else None
    if gates is None or len(datasets) != 3:
        return datasets
    kernel, recurrent, bias = datasets
    k, r, b = _shape(kernel), _shape(recurrent), _shape(bias)
    units = r[0] if len(r) == 2 else 0
    if not (units and len(k) == 2 and k[1] == gates * units and r[1] == gates * units
            and b == (2 * gates * units,)):
        return datasets
    return [CudnnArray(kernel, "cudnn_kernel", gates, k), CudnnArray(recurrent, "cudnn_recurrent", gates, r),
            CudnnArray(bias, "cudnn_bias_sum", gates, (gates * units,)) if gates == 4
            else CudnnArray(bias, "cudnn_bias_rows", gates, (2, gates * units))]
