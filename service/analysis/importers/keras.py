"""Keras model configs -> architecture spec dicts (torch-free, Keras-free).

Reads what users of Keras have: a ``model.to_json()`` config, a ``.keras`` archive (a zip whose
``config.json`` is that config) and a legacy ``.h5`` file (the config is the HDF5 root attribute
``model_config``, read with h5py). Nothing is ever loaded through Keras or TensorFlow: a Keras
file can name Python functions (``Lambda`` layers, custom objects) and loading it through Keras
could run them. Here a config is only data, translated layer by layer into the spec language, so
the simulation checks the model as Keras would initialise it:

* initialisers keep Keras' formulas: ``GlorotUniform`` is ``xavier_uniform``; the other
  variance-scaling ones (``HeNormal``, ``GlorotNormal``, ``LecunNormal``, ``HeUniform``...) become
  the spec's ``variance_scaling`` with Keras' scale, mode and distribution (the normal ones are
  *truncated* at two standard deviations, with the std divided by .87962566103423978 so the
  variance is still scale / fan); ``RandomNormal``/``RandomUniform``/``TruncatedNormal`` keep their
  numbers. Recurrent kernels are initialised as Keras does, over the gates' stacked matrix
  (``stacked: true``), not gate by gate: Keras' orthogonal recurrent kernel is one
  ``[units, gates * units]`` matrix with orthonormal rows.
* Keras is channels-last and the spec channels-first: an image input ``(H, W, C)`` is the spec's
  ``[C, H, W]`` (the statistics of a randomly initialised network do not depend on the order).
* the loss comes from the file's training/compile config when there is one, else from the output
  layer: softmax -> cross-entropy, one sigmoid unit -> binary cross-entropy, linear -> MSE. The
  output's softmax/sigmoid is folded into the loss (as ``from_logits`` does), which leaves the
  gradients unchanged.

Weights stored in a file (``.h5``: Keras 2's ``model_weights`` groups; ``.keras``: Keras 3's
``model.weights.h5``, both read with h5py) are used with ``weights: as_given`` (the default when a
file has them): they go into the network the translated spec builds, in torch's layouts, and that
network is simulated as the ONNX door simulates a file's weights (:func:`_check_stored` says why).
``weights: reinitialise`` judges the architecture as Keras initialises it.
Everything that cannot be translated is collected and refused in ONE :class:`ModelError`.

An upload never makes the importer read another file (:class:`InputFormatError` before anything is
read): an HDF5 dataset with external storage, a virtual dataset, an external or soft link
(:func:`_open_h5`), and a ``.keras`` zip entry outside the archive's folder, a link or a name given
twice (:func:`_open_archive`) are refused; so is a layer size that is not a positive integer
(:func:`.keras_graph.check_config_sizes`), with its place in the config. A zip entry that cannot be
decompressed (encrypted, deflate64 or AES, corrupt data, a bad CRC or local header) is an
:class:`InputFormatError` naming it (:func:`_member`); stored weights are checked from their HDF5
metadata before any is read: the file's structure (names, groups, numeric datasets, by HDF5 path),
each dataset's shape against its layer's config and the sizes against the parameter limit
(:func:`_read_found`).
"""

from __future__ import annotations

import copy
import io
import json
import math
import re
import stat
import zipfile
from collections.abc import Container, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.keras_pointers import Origin, Origins, relocated
from gradhealth.analysis.quiet import quiet_run_notes
from gradhealth.core.losses import loss_problem
from gradhealth.core.numbers import parse_range, range_problem
from gradhealth.core.saved_instead import saved_instead
from gradhealth.core.strict_json import DuplicateKey, json_depth, strict_loads
from gradhealth.core.zipmembers import ZipMemberError, read_member
from gradhealth.errors import GradHealthError, InputFormatError, LimitExceeded, Problem, SpecError

__all__ = ["is_keras_config", "keras_loss", "keras_optimizer", "keras_to_spec", "read_keras",
           "KerasTraining", "read_keras_training", "read_keras_weights", "sniff_keras", "stores_weights",
           "translate_or_graph", "translation_reads_weights", "unread_weights_entry"]

#: The largest config text read (a config of thousands of layers is a few MB).
MAX_CONFIG_BYTES = 16 * 2**20
#: Keras' truncated normal keeps |x| <= 2 std; this is the std of N(0, 1) cut there, by which
#: Keras divides so the variance is still scale / fan (keras.initializers.VarianceScaling).
TRUNCATION_STD = 0.87962566103423978
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

SUPPORTED = (
    "InputLayer", "Dense", "Conv1D", "Conv2D", "MaxPooling2D", "AveragePooling2D", "Flatten",
    "Dropout", "BatchNormalization", "LayerNormalization", "Activation", "ReLU", "LeakyReLU",
    "Softmax", "SimpleRNN", "LSTM", "GRU", "Bidirectional", "Embedding", "Add",
    "GlobalAveragePooling1D", "GlobalMaxPooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
    "PReLU", "ELU", "ThresholdedReLU", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "GaussianDropout", "GaussianNoise", "Masking", "Identity", "ActivityRegularization",
)
#: Layers refused whatever their config, with the reason (named in the one error with the others).
REFUSED = {
    # SELU's dropout sets dropped units to -alpha' and rescales by a = ((1-p)(1 + p alpha'^2))^-1/2:
    # its Jacobian's mean square a^2 (1-p) is not inverted dropout's 1 / (1-p), and the spec has
    # no layer with that scale.
    "AlphaDropout": "AlphaDropout (SELU's dropout: dropped units set to -alpha' and an affine "
                    "rescale) changes gradients in a way the spec's dropout cannot express",
    # a Lambda's function is Python code in the file, which is never run; one whose shapes make
    # a parameter-free stand-in obvious is simulated as that (keras_graph.lambda_stand_in), the
    # rest refused with this after their own reason; the usual one-input Lambda rescales
    "Lambda": "a Lambda layer's function is code, which is never run from a file; a Lambda is stood in "
              "for only where its shapes make the stand-in obvious (one input and an output of its "
              "shape, or none declared: the identity; several inputs of the output's shape: their sum); an input "
              "normalisation such as `lambda x: x / 255 - 0.5` is Rescaling(1/255, offset=-0.5)",
}
#: Layers translated to no spec layer: exactly the identity for the simulated network.
_SKIPPED = ("InputLayer", "Identity", "GaussianNoise", "Masking", "ActivityRegularization")
_DROPOUTS = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
             "GaussianDropout")
#: The smallest ReLU max_value (ReLU6's is 6) read as a plain ReLU: a standard normal
#: pre-activation exceeds 3 with probability 0.13%, so the clip hardly ever binds at
#: initialisation; a lower cap (hard-sigmoid-like) zeroes the gradient of many units.
MIN_RELU_CAP = 3.0
_GLOBAL_POOLS = ("GlobalAveragePooling1D", "GlobalMaxPooling1D", "GlobalAveragePooling2D",
                 "GlobalMaxPooling2D")

# Keras activation name -> spec activation. softmax is only allowed on the output (folded into
# the loss).
_ACTIVATIONS = {
    "linear": "identity", None: "identity", "relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh",
    "elu": "elu", "selu": "selu", "gelu": "gelu", "swish": "silu", "silu": "silu",
    "softplus": "softplus", "leaky_relu": "leaky_relu",
}
_LOSSES = {
    "categoricalcrossentropy": "cross_entropy", "sparsecategoricalcrossentropy": "cross_entropy",
    "binarycrossentropy": "binary_cross_entropy", "meansquarederror": "mse", "mse": "mse",
    "meanabsoluteerror": "mae", "mae": "mae", "huber": "huber", "huberloss": "huber",
}


# --- reading files ---------------------------------------------------------------------------

def not_a_config_message(data: Any) -> str:
    """Why ``data`` (a decoded config) is not a Keras model config :func:`is_keras_config` reads, in
    words: for a subclassed model (a ``class_name`` other than Sequential, Functional or Model, as
    ``model.save()`` writes a ``keras.Model`` subclass: ``{"class_name": "VAE", "config": {}}``), the
    class found, that such a file saves no layer graph, and what to do instead (kerassweep25
    vae_fashion_keras was refused with "it needs `class_name` ... and `config.layers`" alone)."""
    cls = data.get("class_name") if isinstance(data, dict) else None
    if isinstance(cls, str) and cls not in ("Sequential", "Functional", "Model"):
        cfg = data.get("config")
        held = (f"its config holds {', '.join(f'`{k}`' for k in list(cfg)[:6])}" if isinstance(cfg, dict) and cfg
                else "its config is empty")
        registered = data.get("registered_name")
        named = f" (registered_name {registered})" if isinstance(registered, str) and registered != cls else ""
        return (f"not a Keras model config: class_name is {cls[:80]}{named}, not Sequential or Functional, and "
                f"{held}, with no `config.layers`: a subclassed keras.Model saves no layer graph, only what its "
                "get_config() returns, since the layers its call() runs are Python code. Save a Functional or "
                "Sequential model instead (a VAE's encoder and decoder each as a Functional model), or check "
                "the model as a live module (gradhealth.check_module) or as a spec (docs/models.md)")
    return "not a Keras model config: it needs `class_name` (Sequential or Functional) and `config.layers`"


def is_keras_config(data: Any) -> bool:
    """Whether a decoded JSON value is a Keras model config (``model.to_json()`` output, also as a
    JSON string: ``json.dump(model.to_json(), f)``)."""
    if isinstance(data, str) and data.lstrip().startswith("{") and len(data) <= MAX_CONFIG_BYTES:
        try:
            data = json.loads(data)
        except (ValueError, RecursionError):
            return False
    try:
        data = modern_config(data)
    except ModelError:  # a Keras 1 config with a layer that cannot be converted: still a Keras config
        data = modern_config(data, _depth=1)
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        return False
    return data.get("class_name") in ("Sequential", "Functional", "Model") and isinstance(
        data["config"].get("layers"), list)


def modern_config(data: Any, *, _name: str = "sequential", _depth: int = 0) -> Any:
    """``data`` with a Keras <= 2.2.2 Sequential config (``config`` the bare list of layers, as
    AUTOTRAINER-era files store it) in today's form, ``config: {layers: [...]}``; else unchanged.
    Models nested in the model as its layers are read the same way, to any depth (Keras <= 2.1's
    ``Sequential([Sequential([...]), ...])`` stores the inner one as a bare list too, with no name:
    it is named ``sequential_<i>`` by its place ``i`` among its model's layers, counted from 1).
    A Keras 1 model's layers are converted to Keras 2's names as Keras 2.0 did when it loaded one
    (:func:`.keras_legacy.keras1_config`)."""
    if not isinstance(data, dict) or _depth > 64:
        return data
    cfg = data.get("config")
    if data.get("class_name") == "Sequential" and isinstance(cfg, list):
        cfg = _LegacyConfig(name=data.get("name", _name), layers=cfg)
    layers = cfg.get("layers") if isinstance(cfg, dict) else None
    if isinstance(cfg, dict) and isinstance(layers, list) and data.get("class_name") in _MODEL_CLASSES:
        taken = {str((lay.get("config") or {}).get("name")) for lay in layers
                 if isinstance(lay, dict) and isinstance(lay.get("config"), dict)}
        read = [modern_config(lay, _name=_free_name(f"sequential_{i + 1}", taken), _depth=_depth + 1)
                if isinstance(lay, dict) and lay.get("class_name") in _MODEL_CLASSES else lay
                for i, lay in enumerate(layers)]
        if any(new is not old for new, old in zip(read, layers, strict=True)):
            cfg = type(cfg)({**cfg, "layers": read})  # a _LegacyConfig stays one (its pointers)
    data = data if cfg is data.get("config") else {**data, "config": cfg}
    if _depth == 0:
        from gradhealth.analysis.importers.keras_legacy import cudnn_config, keras1_config
        from gradhealth.analysis.importers.keras_tfops import tf_op_config

        data = keras1_config(data)  # a Keras 1 file's layers in Keras 2's names (ModelError if it cannot be)
        data = cudnn_config(data)  # CuDNNLSTM/CuDNNGRU as the LSTM/GRU that computes the same
        data = tf_op_config(data)  # tf.keras 2's TFOpLambda (`x + y`, tf.nn.relu) as the Keras layer it is
    return data


#: Classes of a Keras model (also as a layer of another: :data:`.keras_graph.MODELS`).
_MODEL_CLASSES = ("Sequential", "Functional", "Model")


def _free_name(name: str, taken: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``... the first that no layer in ``taken`` has."""
    k, free = 1, name
    while free in taken:
        k += 1
        free = f"{name}_{k}"
    return free


class _LegacyConfig(dict[str, Any]):
    """The ``config`` :func:`modern_config` made of a Keras <= 2.2.2 Sequential's bare layer list: a
    plain dict that remembers its layers are at ``/config/<i>`` in the file (:func:`_layers_base`)."""


def sniff_keras(head: bytes) -> str | None:
    """``"keras"`` (zip), ``"h5"`` (HDF5) or ``"json"`` (a Keras config) from a file's first bytes,
    else None. A JSON guess is confirmed only once the whole text is parsed."""
    if head.startswith(b"PK\x03\x04"):
        return "keras"
    if head.startswith(HDF5_MAGIC):
        return "h5"
    text = head.lstrip()
    if text.startswith(b"{") and b"class_name" in head:
        return "json"
    if text.startswith(b'"{') and b"class_name" in head:
        return "json"  # json.dump(model.to_json(), f): the config as a JSON string
    return None


#: The most digits an integer in a Keras config is read with: sizes, seeds and counts have at most
#: 20 (an unsigned 64-bit seed); Python refuses to convert more than 4,300 in its own words.
_MAX_INT_DIGITS = 30


#: The deepest a Keras config's JSON may nest: a model's config nests about a dozen levels
#: (model -> layers -> layer -> config -> initializer, inbound nodes), each nested model a few more,
#: and nested models are refused past a few (see check_config_sizes); far below the ~1,000 levels at
#: which Python's JSON decoder runs out of recursion.
MAX_CONFIG_DEPTH = 200


class _OverlongInt(ValueError):
    """An integer in a config too long to be a size, a seed or a count."""


def _config_int(literal: str) -> int:
    if len(literal.lstrip("-")) > _MAX_INT_DIGITS:
        raise _OverlongInt(f"an integer of {len(literal.lstrip('-')):,} digits ({literal[:12]}...): "
                           "no size, seed or count in a Keras config is that long")
    return int(literal)


def _json(text: bytes | str, where: str) -> dict[str, Any]:
    if len(text) > MAX_CONFIG_BYTES:
        raise InputFormatError(f"{where} is over {MAX_CONFIG_BYTES // 2**20} MB")
    # counted before parsing: Python's decoder recurses per level and fails past about a thousand
    # in its own words (errsweep8 #4: "maximum recursion depth exceeded" for valid JSON)
    depth = json_depth(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    if depth > MAX_CONFIG_DEPTH:
        raise InputFormatError(f"{where} is nested {depth:,} levels deep, more than the {MAX_CONFIG_DEPTH} "
                               "levels a Keras model config is read to (a model's config nests about a dozen, "
                               "a few more per nested model)")
    try:
        # json.loads keeps the last of a repeated key silently (a layer's class_name twice is two
        # configs in one): the strict reading refuses it, naming its pointer
        data = strict_loads(text, parse_int=_config_int)
        if isinstance(data, str) and data.lstrip().startswith("{"):
            # json.dump(model.to_json(), f) writes the config as one JSON string: read the string
            data = strict_loads(data, parse_int=_config_int)
    except (_OverlongInt, DuplicateKey) as exc:
        raise InputFormatError(f"{where}: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise InputFormatError(f"{where} is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise InputFormatError(f"{where} is not a JSON object")
    return data


#: A zip entry name that is not a plain relative path: a drive letter (``C:``) or a backslash, which
#: Windows reads as a separator.
_WINDOWS_PATH = re.compile(r"^[A-Za-z]:|\\")


def _entry_problem(info: zipfile.ZipInfo) -> str | None:
    """Why one entry of a ``.keras`` archive is refused, or None. An extractor (or another reader of
    the same upload) would write such a name outside its folder or follow it as a link."""
    name = info.filename
    if stat.S_ISLNK(info.external_attr >> 16):  # a link is a file reference: never followed
        return "is a symbolic link"
    if name.startswith("/"):
        return "is an absolute path"
    if _WINDOWS_PATH.search(name):
        return "has a drive letter or a backslash (a Windows path)"
    if ".." in name.split("/"):
        return "has a '..' component (a path out of the archive's folder)"
    return None


#: The most a ``.keras`` entry may expand over its compressed size, once it is past
#: :data:`ZIP_RATIO_FLOOR_BYTES`: a zip bomb's. Weights are floats, which deflate hardly at all (a
#: trained model.weights.h5 compresses by about 1.1x; zero biases and HDF5's padding by a few more),
#: so 200, the logs' archive limit, leaves a wide margin. 300 MB of zeros deflates 1000 to 1
#: (errsweep6: decompressed whole in the job, then "file signature not found").
MAX_ZIP_RATIO = 200
#: An entry expanding to less than this is not judged by its ratio (a small config of repeated
#: keys compresses well and is no bomb).
ZIP_RATIO_FLOOR_BYTES = 2**20


def _member_limit(info: zipfile.ZipInfo) -> int:
    """The most bytes the entry may decompress to, whatever its header declares: the ratio's bound
    over its compressed size (and never less than the floor)."""
    return max(ZIP_RATIO_FLOOR_BYTES, MAX_ZIP_RATIO * max(info.compress_size, 1))


def _size_problem(info: zipfile.ZipInfo) -> str | None:
    """Why an entry read from a ``.keras`` archive is refused by its declared sizes alone (before
    any byte is decompressed), or None: over the limit for its kind, or a compression ratio over
    :data:`MAX_ZIP_RATIO`."""
    limit = {"config.json": MAX_CONFIG_BYTES, "metadata.json": MAX_CONFIG_BYTES}.get(info.filename, MAX_WEIGHTS_BYTES)
    if info.file_size > limit:
        return (f"{info.filename} declares {info.file_size:,} bytes uncompressed, over the limit of "
                f"{limit:,} ({limit // 2**20} MB)")
    if info.file_size > _member_limit(info):
        return (f"{info.filename} declares {info.file_size:,} bytes from {info.compress_size:,} compressed, a "
                f"ratio over {MAX_ZIP_RATIO} (a zip bomb's: weights compress by little)")
    return None


def _open_archive(data: bytes) -> zipfile.ZipFile:
    """The ``.keras`` zip in ``data``, every entry of its central directory vetted first (only
    config.json, metadata.json and model.weights.h5 are read, but the archive is refused whole):
    an absolute path, a ``..`` component, a Windows path or a link is a hostile archive, and a name
    given twice is one that readers resolve differently (Python's zipfile reads the last
    ``config.json``, others the first), so which model is checked would depend on the reader."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, EOFError):
        raise InputFormatError("not a .keras archive: the zip cannot be read") from None
    problems: list[Problem] = []
    seen: set[str] = set()
    for info in zf.infolist():
        why = _entry_problem(info)
        # "config.json", "./config.json" and "a//b" name the same file once extracted
        key = "/".join(part for part in info.filename.split("/") if part not in ("", "."))
        if why is None and key in seen:
            why = "is a duplicate name (readers disagree on which of the entries is the file)"
        seen.add(key)
        if why is not None:
            problems.append(Problem(info.filename, f"entry {info.filename!r} {why}"))
    if problems:
        zf.close()
        shown = "; ".join(p.message for p in problems[:10]) + (
            f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise InputFormatError(f"the .keras archive is refused: {shown}", problems)
    # the entries the check reads, by their declared sizes and ratio, before any is decompressed
    # (the worker read a 300 MB bomb whole first: errsweep6); _member then caps what comes out
    sized = [Problem(i.filename, why) for i in zf.infolist()
             if i.filename in _READ_ENTRIES and (why := _size_problem(i)) is not None]
    if sized:
        zf.close()
        raise LimitExceeded("the .keras archive is refused: " + "; ".join(p.message for p in sized), sized)
    return zf


#: The entries of a ``.keras`` archive the check reads.
_READ_ENTRIES = frozenset({"config.json", "metadata.json", "model.weights.h5"})


def _member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """At most ``limit`` bytes of the ``.keras`` entry ``info`` (:func:`.zipmembers.read_member`):
    an entry that cannot be decompressed (encrypted, a method such as deflate64 or AES, corrupt
    data, a CRC mismatch, a damaged local header) is an :class:`InputFormatError` naming it."""
    try:
        # never more than the ratio allows over the compressed size, whatever the header declared
        # (zipfile stops at the declared size; a size that lies is cut here and fails its CRC)
        cap = _member_limit(info) + 1
        blob = read_member(zf, info, min(limit, cap))
        if len(blob) >= cap:
            raise LimitExceeded(f"{info.filename} in the .keras archive expands past {cap - 1:,} bytes from "
                                f"{info.compress_size:,} compressed, a ratio over {MAX_ZIP_RATIO}",
                                [Problem(info.filename, "compression ratio over the limit")])
        return blob
    except ZipMemberError as exc:
        raise InputFormatError(f"{exc.member} in the .keras archive cannot be read: {exc.reason}",
                               [Problem(exc.member, exc.reason)]) from None


def _read_zip(data: bytes) -> tuple[dict[str, Any], Any]:
    with _open_archive(data) as zf:
        try:
            info = zf.getinfo("config.json")
        except KeyError:
            raise InputFormatError("not a .keras archive: it has no config.json") from None
        if info.file_size > MAX_CONFIG_BYTES:
            raise InputFormatError(f"config.json is over {MAX_CONFIG_BYTES // 2**20} MB")
        text = _member(zf, info, MAX_CONFIG_BYTES + 1)  # at most the limit, whatever the header declared
        version = _zip_keras_version(zf)
    config = _json(text, "config.json")
    if version is not None:
        config.setdefault("keras_version", version)  # where model.to_json() puts it
    return config, config.get("compile_config")


def _zip_keras_version(zf: zipfile.ZipFile) -> str | None:
    """``keras_version`` from a .keras archive's metadata.json (Keras 2.13+ wrote the format too),
    or None where it has none, or one that is not a small plain JSON file."""
    try:
        info = zf.getinfo("metadata.json")
    except KeyError:
        return None
    if info.file_size > 65536:  # (a link entry: refused with the archive, _open_archive)
        return None
    raw = _member(zf, info, 65537)  # an entry that cannot be decompressed: a broken archive
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    version = meta.get("keras_version") if isinstance(meta, dict) else None
    return version if isinstance(version, str) else None


def _file_references(root: Any) -> list[Problem]:
    """Every place in the open HDF5 file ``root`` where reading would read another file: a dataset
    whose raw data is in external files, a virtual dataset (mapped from datasets that can be in
    other files), an external link, a soft link (or a link of a user-defined class). Only link
    records and dataset creation properties are read: no link is followed, no dataset read."""
    import h5py

    problems: list[Problem] = []
    seen: set[Any] = {h5py.h5o.get_info(root.id).addr}
    stack: list[tuple[Any, str]] = [(root, "")]
    while stack:
        group, path = stack.pop()
        for name in group:  # the group's link names, as stored (iterating follows nothing)
            where = f"{path}/{name}"
            try:
                link = group.get(name, getlink=True)
            except (TypeError, KeyError, OSError, ValueError):  # a link class h5py cannot name
                link = None
            if not isinstance(link, h5py.HardLink):
                kind = ("an external link to " + repr(f"{link.filename}:{link.path}")
                        if isinstance(link, h5py.ExternalLink) else
                        "a soft link to " + repr(link.path) if isinstance(link, h5py.SoftLink)
                        else "a link of a user-defined class")
                problems.append(Problem(where, f"{where} is {kind}"))
                continue
            obj = group[name]  # a hard link: an object of this file (opened, nothing read)
            if isinstance(obj, h5py.Dataset):
                if obj.is_virtual:
                    problems.append(Problem(where, f"{where} is a virtual dataset (its data is mapped "
                                                   "from other datasets, which can be other files)"))
                elif obj.id.get_create_plist().get_external_count() > 0:
                    problems.append(Problem(where, f"{where} is a dataset whose data is stored in an "
                                                   "external file"))
            elif isinstance(obj, h5py.Group):
                key = h5py.h5o.get_info(obj.id).addr  # hard links can make cycles: each group once
                if key not in seen:
                    seen.add(key)
                    stack.append((obj, where))
    return problems


@contextmanager
def _open_h5(data: bytes, what: str) -> Iterator[Any]:
    """``data`` opened as an HDF5 file (h5py) for reading, refused before anything is read from it
    when it refers to other files (:func:`_file_references`): an upload is never a way to read a
    file of the machine that checks it (kerassweep7: an external-storage kernel read /etc/passwd
    as float32 weights). Raises :class:`InputFormatError` naming every such dataset and link, and
    lets h5py's own errors (OSError...) through to the caller, which words them."""
    import h5py

    with h5py.File(io.BytesIO(data), "r") as f:
        problems = _file_references(f)
        if problems:
            shown = "; ".join(p.message for p in problems[:10]) + (
                f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
            raise InputFormatError(f"{what} refers to other files, which are never read from an upload "
                                   f"(external storage, virtual datasets and links are refused): {shown}",
                                   problems)
        yield f


def _read_h5(data: bytes) -> tuple[dict[str, Any], Any]:
    try:
        with _open_h5(data, "the .h5 file") as f:
            raw = f.attrs.get("model_config")
            training = f.attrs.get("training_config")
            version = f.attrs.get("keras_version")
    except OSError as exc:
        raise InputFormatError(f"not a readable HDF5 file: {str(exc)[:200]}") from None
    if raw is None:
        raise InputFormatError("the HDF5 file has no `model_config` attribute: not a Keras .h5 model "
                               "(a save_weights() file holds weights only; check the file model.save() "
                               "writes, or the model.to_json() config)")

    def text(value: Any, name: str) -> str:
        if isinstance(value, str):
            try:  # h5py hands a variable-length string's bad bytes back as surrogate escapes
                value.encode("utf-8")
                return value
            except UnicodeEncodeError:
                value = value.encode("utf-8", "surrogateescape")
        if not isinstance(value, bytes):
            return str(value)
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:  # (h5py returns a variable-length string attribute as bytes)
            raise InputFormatError(f"the HDF5 attribute `{name}` is not UTF-8 text: byte {exc.start} is "
                                   f"0x{value[exc.start]:02x} ({exc.reason}); Keras writes it as UTF-8 JSON") from None

    config = _json(text(raw, "model_config"), "model_config")
    if version is not None and isinstance(config, dict):
        config.setdefault("keras_version", text(version, "keras_version"))  # where model.to_json() puts it
    return config, _json(text(training, "training_config"), "training_config") if training is not None else None


def read_keras(data: bytes) -> tuple[dict[str, Any], str | dict[str, Any] | None]:
    """The model config and the spec loss (:func:`keras_loss`) the file's training/compile config
    names (or None) of a Keras JSON config, ``.keras`` archive or ``.h5`` file, told apart by
    content."""
    training = read_keras_training(data)
    return training.config, training.loss


class KerasTraining(NamedTuple):
    """What a Keras file says: its model config, the spec loss (:func:`keras_loss`) and spec
    ``optimizer`` (:func:`keras_optimizer`) it was compiled with (None where it names none or one
    without a spec equivalent), and the name of a compiled loss the check does not simulate."""

    config: dict[str, Any]
    loss: str | dict[str, Any] | None
    optimizer: dict[str, Any] | None
    unsimulated_loss: str | None = None
    #: a model of several outputs compiled with a loss for each (a list in the outputs' order, or a
    #: dict by output layer name): each output's spec loss (None: one the check does not simulate)
    output_losses: list[str | dict[str, Any] | None] | dict[str, str | dict[str, Any] | None] | None = None
    #: compiled losses the check does not use, each said in the document's summary (never dropped
    #: silently): an entry naming no output, a loss of one output the check does not simulate
    loss_notes: tuple[str, ...] = ()
    #: the name of the optimizer the file was compiled with where :func:`keras_optimizer` has no
    #: spec equivalent for it (Ftrl, Lion, a registered class of the user's, a rate not read): the
    #: check says so instead of "no optimizer given"
    unknown_optimizer: str | None = None


#: The largest ``model.weights.h5`` (declared, uncompressed) that submission opens to refuse its
#: file references (external links, external storage, virtual datasets) before a job exists: a
#: cheap read; a larger one is vetted by the job, before any of it is used, with the same words.
UPLOAD_H5_VET_BYTES = 64 * 2**20


def vet_keras_archive(data: bytes) -> None:
    """Submission's checks of a ``.keras`` upload beyond its config (torch-free): every entry as
    :func:`_open_archive` vets it (names, links, declared sizes and compression ratio), and a
    ``model.weights.h5`` of at most :data:`UPLOAD_H5_VET_BYTES` opened to refuse what it refers to
    outside itself (errsweep6: an external link inside it was refused only in the job)."""
    if sniff_keras(data[:4096]) != "keras":
        return
    with _open_archive(data) as zf:
        try:
            info = zf.getinfo("model.weights.h5")
        except KeyError:
            return
        if info.file_size > UPLOAD_H5_VET_BYTES:
            return
        blob = _member(zf, info, UPLOAD_H5_VET_BYTES + 1)
    try:
        with _open_h5(blob, "model.weights.h5"):
            pass
    except OSError as exc:
        raise InputFormatError(f"model.weights.h5 cannot be read: {str(exc)[:200]}") from None


def read_keras_training(data: bytes) -> KerasTraining:
    """:func:`read_keras`, with the compiled optimizer and any loss the check does not simulate."""
    kind = sniff_keras(data[:4096])
    if kind == "keras":
        config, training = _read_zip(data)
    elif kind == "h5":
        config, training = _read_h5(data)
    elif kind == "json":
        config = _json(data, "the Keras config")
        training = config.get("compile_config") or config.get("training_config")
    elif (instead := saved_instead(data[:4096], "the model")) is not None:
        # a Git LFS pointer or an HTML page saved under the model's name: said as what it is
        raise InputFormatError(f"not a Keras model: the file is {instead}")
    else:
        raise InputFormatError("not a Keras model: expected a model.to_json() config, a .keras zip "
                               "or an .h5 file")
    config = modern_config(config)
    if not is_keras_config(config):
        raise InputFormatError(not_a_config_message(config))
    loss = training.get("loss") if isinstance(training, dict) else None
    compiled = training.get("optimizer_config") or training.get("optimizer") if isinstance(training, dict) else None
    loss, per_output, notes = _split_loss(loss, _outputs(config))
    spec_loss = with_label_targets(keras_loss(loss), training)
    optimizer = keras_optimizer(compiled, config.get("keras_version"))
    return KerasTraining(config, spec_loss, optimizer,
                         _loss_name(loss) if spec_loss is None and per_output is None else None, per_output,
                         tuple(notes), keras_optimizer_label(compiled) if optimizer is None else None)


def _outputs(config: dict[str, Any]) -> list[tuple[str, str]]:
    """The outputs of a Keras model config as ``(name, layer)``: the name a per-output loss is keyed
    by (the key of ``outputs={...}``, else the output layer's name) and the layer that computes it.
    A Sequential has one, its last layer; empty where the config does not say."""
    from gradhealth.analysis.importers.keras_graph import endpoints

    cfg: dict[str, Any] = config["config"] if isinstance(config.get("config"), dict) else {}
    if config.get("class_name") == "Sequential":
        layers = [lay for lay in cfg.get("layers") or [] if isinstance(lay, dict)
                  and lay.get("class_name") != "InputLayer"]
        last = str((layers[-1].get("config") or {}).get("name", "")) if layers else ""
        return [(last, last)] if last else []
    named = cfg.get("output_layers")
    if isinstance(named, dict):  # keras.Model(inputs, outputs={"price": ...}): losses by these keys
        return [(str(key), endpoints([value])[0]) for key, value in named.items() if endpoints([value])]
    return [(name, name) for name in endpoints(named)]


def _split_loss(loss: Any, outputs: list[tuple[str, str]]
                ) -> tuple[Any, list[Any] | dict[str, Any] | None, list[str]]:
    """A compiled ``loss`` as ``(the model's one loss as Keras wrote it, each output's spec loss,
    notes on what is not used)``. Keras takes a loss per output as a list (in the outputs' order) or
    a dict by output name, also for a model of ONE output (``loss={"dense_1": "binary_crossentropy"}``):
    that output's entry is then the model's loss, as a plain ``loss="binary_crossentropy"`` is
    (kerassweep7 q02: the spec door dropped it and guessed MSE). Entries that name no output, and
    outputs' losses the check does not simulate, are said in ``notes``, never dropped silently."""
    per_dict = isinstance(loss, dict) and bool(loss) and "class_name" not in loss and "config" not in loss
    per_list = isinstance(loss, list) and len(loss) > 1
    if not per_dict and not per_list:
        return loss, None, []
    notes: list[str] = []
    if per_list and len(outputs) == 1:
        return None, None, [f"a list of {len(loss)} losses for a model of one output ({outputs[0][0]}) is not "
                            "used: the loss was chosen from the output layer; give loss to choose it"]
    if per_list:
        if outputs and len(loss) != len(outputs):
            notes.append(f"{len(loss)} compiled losses for {len(outputs)} outputs: only the first "
                         f"{min(len(loss), len(outputs))} are used, in the outputs' order")
        per: list[Any] = [keras_loss(x) for x in loss]
        names = [name for name, _ in outputs] or [str(k) for k in range(len(loss))]
        notes += [f"the loss {_loss_name(x)} of output {name} is not one the check simulates: that "
                  "output's loss was chosen from its layer" for name, x, spec in zip(names, loss, per, strict=False)
                  if spec is None and _loss_name(x)]
        return None, per, notes
    layer_of = {name: layer for name, layer in outputs} | {layer: layer for _, layer in outputs}
    unknown = [str(k) for k in loss if str(k) not in layer_of]
    if len(outputs) == 1:
        name, layer = outputs[0]
        mine = [k for k in loss if str(k) in (name, layer)] or (list(loss) if len(loss) == 1 else [])
        if mine:  # this output's entry is the model's loss
            unused = [str(k) for k in loss if k != mine[0]]
            if unused:
                notes.append(f"the compiled losses of {', '.join(unused)} name no output of the model "
                             f"(its output: {name}) and are not used")
            return loss[mine[0]], None, notes
        return None, None, [f"the compiled losses of {', '.join(unknown)} name no output of the model "
                            f"(its output: {name}): the loss was chosen from the output layer; give loss "
                            "to choose it"]
    per_name: dict[str, Any] = {}
    for key, value in loss.items():
        if outputs and str(key) not in layer_of:
            continue  # named in the note below
        layer = layer_of.get(str(key), str(key))  # the check names an output by its layer
        per_name[layer] = keras_loss(value)
        if per_name[layer] is None and _loss_name(value):
            notes.append(f"the loss {_loss_name(value)} of output {key} is not one the check simulates: "
                         "that output's loss was chosen from its layer")
    if unknown and outputs:
        notes.append(f"the compiled losses of {', '.join(unknown)} name no output of the model (its outputs: "
                     f"{', '.join(name for name, _ in outputs)}) and are not used")
    return None, per_name, notes


def _loss_name(loss: Any) -> str | None:
    """The name of a single compiled loss (``"poisson"``, ``{"class_name": "Hinge"}``), else None."""
    if isinstance(loss, list) and len(loss) == 1:
        loss = loss[0]
    if isinstance(loss, dict):
        loss = loss.get("class_name")
    return loss if isinstance(loss, str) and loss.strip() else None


#: Keras optimizers whose first step is the spec's: Adamax's first step is Adam's (m = g and
#: u = |g|, so lr * g / |g|). Keras' defaults where the config leaves a value out.
_OPTIMIZERS = {"sgd": "sgd", "adam": "adam", "adamw": "adamw", "adamax": "adam", "rmsprop": "rmsprop",
               "adadelta": "adadelta", "nadam": "nadam", "adagrad": "adagrad"}
_KERAS_LR = {"sgd": 0.01}  # every other one defaults to 0.001 (Keras 2's Adadelta: 1.0, given in its files)
_KERAS_RHO = {"rmsprop": 0.9, "adadelta": 0.95}


def keras_optimizer(value: Any, keras_version: Any = None) -> dict[str, Any] | None:
    """The spec ``optimizer`` of a serialised Keras optimizer (``compile(optimizer=...)`` as the
    file stores it: a name, or ``{class_name, config}`` from Keras 2 or 3), or None where it has no
    spec equivalent (Ftrl, Lion...: their first steps differ from the spec's) or the
    learning rate cannot be read. A schedule's ``initial_learning_rate`` is the first step's.

    Keras 3 applies ``weight_decay`` decoupled, as AdamW does, in every optimizer: Adam with a
    weight decay is the spec's ``adamw``. Clipping (``clipnorm``, ``global_clipnorm``,
    ``clipvalue``) is recorded as the spec's ``clip_norm``, ``global_clip_norm``, ``clip_value``:
    not simulated (it does not change Adam's first step, lr times the gradient's sign, and rarely
    binds for SGD at init), but the report shows it and a clipping remedy names it.
    ``keras_version`` (the file's) picks the defaults of the Keras that wrote it: standalone
    Keras before 2.4 started Adagrad's accumulator at 0, tf.keras and Keras 3 at 0.1."""
    name, cfg = _optimizer_name(value)
    kind = _OPTIMIZERS.get(name)
    if kind is None:
        return None
    rate = cfg.get("learning_rate", cfg.get("lr", _KERAS_LR.get(name, 0.001)))
    if isinstance(rate, dict):  # a LearningRateSchedule: its first step's rate
        sched: dict[str, Any] = rate["config"] if isinstance(rate.get("config"), dict) else {}
        values = sched.get("values")  # PiecewiseConstantDecay: values[0] up to its first boundary
        rate = sched.get("initial_learning_rate", values[0] if isinstance(values, list) and values else None)
    lr, rho = _real(rate), _real(cfg.get("rho", _KERAS_RHO.get(kind, 0.9)))
    if lr is None or (kind in _KERAS_RHO and rho is None):
        return None  # a rate (or a rho) that is not a number: nothing to measure
    # (a rate at or below 0 is kept: negative_learning_rate is the finding)
    out: dict[str, Any] = {"type": kind, "lr": lr}
    decay, momentum, eps = _real(cfg.get("weight_decay")), _real(cfg.get("momentum")), _real(cfg.get("epsilon", 1e-7))
    if decay is not None and decay > 0:
        out["weight_decay"] = decay
        if kind == "adam":
            out["type"] = "adamw"
    elif kind == "adamw":
        out["weight_decay"] = 0.004  # Keras' AdamW default
    if kind in ("sgd", "rmsprop") and momentum is not None and 0 < momentum < 1:
        out["momentum"] = momentum
        if kind == "sgd":
            out["nesterov"] = bool(cfg.get("nesterov", False))
    if kind in _KERAS_RHO:
        out["alpha"] = rho
    if kind != "sgd" and eps is not None and 0 < eps <= 1:
        out["eps"] = eps
    if kind == "adagrad":
        start = _real(cfg.get("initial_accumulator_value", 0.0 if _standalone_keras(keras_version) else 0.1))
        if start is not None and start >= 0:
            out["initial_accumulator"] = start
    for key, field in (("clipnorm", "clip_norm"), ("global_clipnorm", "global_clip_norm"), ("clipvalue", "clip_value")):
        clip = _real(cfg.get(key))  # None (Keras' default), or a number; one <= 0 or inf clips nothing read
        if clip is not None and 0 < clip <= 1e6:
            out[field] = clip
    return out


def _optimizer_name(value: Any) -> tuple[str, dict[str, Any]]:
    """:func:`_name_of` for a serialised optimizer, whatever Keras wrote it: the registration
    package before ``>`` is dropped (TF 2.11-2.15 save their optimizers as ``Custom>Adam``, a
    registered class as ``package>Name``), and Keras 3's ``registered_name`` is read where its
    ``class_name`` names no optimizer of :data:`_OPTIMIZERS` (``module`` says where the class lives,
    not what it computes, so it is not read)."""
    name, cfg = _name_of(value)
    candidates = [name]
    if isinstance(value, dict) and isinstance(value.get("registered_name"), str):
        candidates.append(value["registered_name"].lower().replace("_", ""))
    for candidate in candidates:
        bare = candidate.rsplit(">", 1)[-1].strip()
        if bare in _OPTIMIZERS:
            return bare, cfg
    return name.rsplit(">", 1)[-1].strip() if name else name, cfg


def keras_optimizer_label(value: Any) -> str | None:
    """The name a serialised Keras optimizer goes by in the file (``Custom>Adam``, ``Ftrl``, a
    registered ``package>Name``), for saying which one was not simulated; None where ``value``
    names none (no optimizer compiled)."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, dict):
        for key in ("class_name", "registered_name"):
            name = value.get(key)
            if isinstance(name, str) and name.strip():
                return name.strip()
        return "of no class name"
    return None


def _standalone_keras(version: Any) -> bool:
    """Whether ``version`` (a file's ``keras_version``) is standalone Keras before 2.4, whose
    optimizers' defaults differ from tf.keras's (Adagrad's accumulators started at zeros)."""
    parts = str(version).split(".") if isinstance(version, str) else []
    try:
        return len(parts) >= 2 and (int(parts[0]), int(parts[1])) < (2, 4)
    except ValueError:
        return False


def gru_reset_after(config: dict[str, Any], stored: Weights | None = None) -> dict[str, Any]:
    """``config`` (in today's form, :func:`modern_config`) with ``reset_after`` given to every GRU
    whose config leaves it out: Keras before 2.1 (and Keras 1) had no such option and computed the
    original GRU (reset gate applied to the state before the recurrent product, one bias of [3u]),
    and standalone Keras kept that as its default to 2.3; tf.keras 2 and Keras 3 default to the
    reset-after layout ([2, 3u] bias). Where the file stores the layer's weights, their bias says
    which cell computed them ([3u]: False, [2, 3u]: True); else the Keras that wrote the file
    decides (:func:`_standalone_keras`; a config of no known version: today's True)."""
    default = not _standalone_keras(config.get("keras_version"))

    def walk(entry: Any, key: str | None, depth: int) -> Any:
        if not isinstance(entry, dict) or depth > 64:
            return entry
        cls, cfg = entry.get("class_name"), entry.get("config")
        if not isinstance(cfg, dict):
            return entry
        name = str(cfg.get("name", "")) if key is None else key  # a wrapper stores its layer's weights
        if cls == "GRU" and "reset_after" not in cfg:
            bias = (stored or {}).get(name)
            arrays = list(bias) if bias is not None else []
            ndim = np.ndim(arrays[2]) if len(arrays) >= 3 and cfg.get("use_bias", True) else None
            return {**entry, "config": {**cfg, "reset_after": ndim == 2 if ndim in (1, 2) else default}}
        if cls in ("Bidirectional", "TimeDistributed") and isinstance(cfg.get("layer"), dict):
            inner = walk(cfg["layer"], name, depth + 1)
            return entry if inner is cfg["layer"] else {**entry, "config": {**cfg, "layer": inner}}
        layers = cfg.get("layers")
        if cls in _MODEL_CLASSES and isinstance(layers, list):
            read = [walk(lay, None, depth + 1) for lay in layers]
            if any(new is not old for new, old in zip(read, layers, strict=True)):
                return {**entry, "config": type(cfg)({**cfg, "layers": read})}
        return entry

    return walk(config, None, 0)


def _real(value: Any) -> float | None:
    """``value`` as a float when a config holds a number there (a bool is not one), else None."""
    return None if isinstance(value, bool) or not isinstance(value, int | float) else float(value)


def keras_loss(loss: Any) -> str | dict[str, Any] | None:
    """The spec loss of a Keras loss (a name or a serialised loss object); None if unknown.

    A cross-entropy says which it takes: ``{"type": ..., "from_logits": False}`` on probabilities
    (the default of Keras' names and classes), ``{"type": ..., "from_logits": True}`` on logits,
    which a softmax/sigmoid output then goes through twice (:func:`_fold_output`)."""
    logits = False
    if isinstance(loss, dict):
        cfg = loss.get("config")
        logits = isinstance(cfg, dict) and cfg.get("from_logits") is True
        loss = loss.get("class_name") or cfg
    if isinstance(loss, list) and len(loss) == 1:
        return keras_loss(loss[0])
    if not isinstance(loss, str):
        return None
    kind = _LOSSES.get(loss.lower().replace("_", ""))
    if kind in ("cross_entropy", "binary_cross_entropy"):
        return {"type": kind, "from_logits": logits}
    return kind


#: Compiled metrics that compare the outputs with 0/1 labels (normalised: lower case, no
#: underscores). Keras' ``accuracy`` under a regression loss is binary (one output) or categorical
#: (one-hot targets) accuracy; ``sparse_categorical_accuracy`` takes class indices, not 0/1.
_LABEL_METRICS = frozenset({"accuracy", "acc", "binaryaccuracy", "categoricalaccuracy"})


def _metric_names(value: Any, depth: int = 0) -> set[str]:
    """The normalised names in a compiled ``metrics`` value: names, serialised metric objects
    (their class and configured name, and a wrapper's ``fn``), lists per output, dicts by output."""
    if depth > 4:
        return set()
    if isinstance(value, str):
        return {value.lower().replace("_", "")}
    if isinstance(value, list | tuple):
        return set().union(*(_metric_names(v, depth + 1) for v in value)) if value else set()
    if isinstance(value, dict):
        if "class_name" in value:
            cfg = value.get("config")
            cfg = cfg if isinstance(cfg, dict) else {}
            return _metric_names([value.get("class_name"), cfg.get("name"), cfg.get("fn")], depth + 1)
        return _metric_names(list(value.values()), depth + 1)
    return set()


def with_label_targets(loss: str | dict[str, Any] | None, training: Any) -> str | dict[str, Any] | None:
    """A regression loss compiled beside an accuracy metric: its targets are 0/1 labels, so the
    spec loss says ``target_range: [0, 1]`` (a sigmoid output then reaches every target)."""
    kind = loss_type(loss)
    if kind not in ("mse", "mae", "huber") or not isinstance(training, dict):
        return loss
    names = _metric_names([training.get("metrics"), training.get("weighted_metrics")])
    if not names & _LABEL_METRICS:
        return loss
    return {**(loss if isinstance(loss, dict) else {"type": kind}), "target_range": [0.0, 1.0]}


def parse_target_range(text: str, name: str = "--target-range") -> tuple[float, float]:
    """``LO,HI`` (where a regression's targets lie) as a pair; :class:`InputFormatError` naming
    ``name`` otherwise."""
    return parse_range(text, name, "0,1 for 0/1 labels", InputFormatError)


def with_target_range(loss: str | dict[str, Any] | None, target_range: tuple[float, float] | None
                      ) -> str | dict[str, Any] | None:
    """``loss`` with the range its regression targets lie in (``--target-range``; ``target_range``
    over HTTP) as the spec's ``loss.target_range``; a range given for any other loss (or none) is
    refused, never dropped: only a regression loss has targets a bounded output may not reach."""
    if target_range is None:
        return loss
    kind = loss_type(loss)
    if kind not in ("mse", "mae", "huber"):
        raise InputFormatError(
            f"target_range applies to a regression loss (mse, mae, huber), and this model's loss is "
            f"{kind or 'the one its output implies (none compiled)'}: give --loss mse (loss=mse) with it, or "
            "leave the range out")
    low, high = target_range
    return {**(loss if isinstance(loss, dict) else {"type": kind}), "target_range": [float(low), float(high)]}


def loss_type(loss: str | dict[str, Any] | None) -> str | None:
    """The type of a spec loss given as a name or as ``{"type": ...}``."""
    return loss.get("type") if isinstance(loss, dict) else loss


# --- translating -------------------------------------------------------------------------------

#: Keras' initializer aliases (normalised by :func:`_name_of`, suffixes removed) -> the class each
#: names: Keras 3's ``keras.initializers`` ALL_OBJECTS_DICT and Keras 2's (``one``, ``zero``,
#: ``normal``, ``uniform``; ``random_normal`` is already ``randomnormal`` once normalised).
_INITIALIZER_ALIASES = {"zero": "zeros", "one": "ones", "normal": "randomnormal", "uniform": "randomuniform"}


def _initializer(value: Any) -> tuple[str, dict[str, Any]]:
    """:func:`_name_of` for an initializer, as the class it names (one of
    :data:`.keras_graph.INITIALIZERS` for every built-in: Keras 3's ``OrthogonalInitializer``,
    Keras 2's ``Orthogonal`` and a hand-written ``orthogonal`` are all ``orthogonal``): Keras 3 writes some class names with an ``Initializer`` suffix (an LSTM's
    default ``OrthogonalInitializer``, ``IdentityInitializer``), tf.keras 2 some with ``V2``
    (``GlorotUniformV2``), and both read the aliases of :data:`_INITIALIZER_ALIASES`."""
    name, cfg = _name_of(value)
    for suffix in ("v2", "initializer"):
        name = name.removesuffix(suffix) or name
    return _INITIALIZER_ALIASES.get(name, name), cfg


def reinitialise_only(what: str) -> str:
    """The refusal of an initializer (``what``, with its layer's key) that cannot be drawn: it is
    needed only where the weights are drawn, never for the file's own weights (the default)."""
    from gradhealth.analysis.importers.keras_graph import INITIALIZERS

    return (f"{what} cannot be drawn here (supported: {', '.join(INITIALIZERS)} and their Keras "
            "aliases); it is needed only to draw the weights (--weights reinitialise, `weights: "
            "reinitialise` over HTTP, or a config with no weights): check the file's stored weights "
            "instead (--weights as_given, the default for a file that has them)")


def _name_of(value: Any) -> tuple[str, dict[str, Any]]:
    """A serialised Keras object (string, or ``{class_name, config}``): its normalised class name
    (lower case, no underscores) and its config."""
    if isinstance(value, str):
        return value.lower().replace("_", ""), {}
    if isinstance(value, dict):
        cfg = value.get("config")
        if isinstance(cfg, str):  # Keras 3 serialises activations as {class_name: function, config: name}
            return cfg.lower().replace("_", ""), {}
        return str(value.get("class_name", "")).lower().replace("_", ""), cfg if isinstance(cfg, dict) else {}
    return "", {}


def activation_written(value: Any) -> str:
    """The activation a Keras layer config names, as the file writes it (``"my_swish"``, never
    normalised: a refusal quotes it so): every form Keras serialises one in. ``None``: linear (Keras'
    own reading of no activation); a string: that name (Keras 2 and 3); Keras 3's function object
    ``{"module": ..., "class_name": "function", "config": "relu", "registered_name": ...}``: its
    ``config`` (a custom one's too: ``"custom_act"``); a layer object (Keras 2's ``{"class_name":
    "LeakyReLU", "config": {...}}``, Keras 3's with ``module``): its class name. Anything else (a
    number, an object with no ``class_name``, a function object whose ``config`` is no name) is no
    activation Keras writes: ValueError naming the value, never read as linear (errsweep8 #1: such a
    Dense was simulated as a linear layer and the model reported healthy)."""
    if value is None:
        return "linear"
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        cls, cfg = value.get("class_name"), value.get("config")
        if cls == "function" and isinstance(cfg, str):
            return cfg
        if isinstance(cls, str) and cls and cls != "function" and isinstance(cfg, dict | None):
            return cls
    shown = repr(value)
    raise ValueError(f"activation {shown if len(shown) <= 80 else shown[:77] + '...'} is not an activation as "
                     "Keras writes one (a name such as \"relu\", or an object with `class_name` and `config`)")


def activation_key(value: Any) -> str:
    """:func:`activation_written` normalised for matching (lower case, no underscores): ``leakyrelu``."""
    return activation_written(value).lower().replace("_", "")


def keras3_names(model: dict[str, Any]) -> bool:
    """Whether names such as ``hard_sigmoid`` in ``model`` mean Keras 3's functions: a file of
    Keras 3 or later, or of no known version (Keras 3 writes none into a model's own config)."""
    version = model.get("keras_version")
    return not (isinstance(version, str) and version.split(".")[0] in ("1", "2"))


#: A BatchNormalization's initialisers and Keras' defaults, the values the spec's batchnorm starts at.
_BN_DEFAULTS = {"gamma_initializer": 1.0, "beta_initializer": 0.0, "moving_mean_initializer": 0.0,
                "moving_variance_initializer": 1.0}


def _is_constant(value: Any, number: float) -> bool:
    """Whether the initialiser ``value`` (absent: Keras' default, which the caller passes) draws
    ``number`` everywhere: Zeros, Ones or a Constant of it."""
    if value is None:
        return True
    name, cfg = _initializer(value)
    if name in ("zeros", "ones"):
        return (name == "ones") == (number == 1.0) and number in (0.0, 1.0)
    if name == "constant":
        try:
            return bool(np.all(np.asarray(cfg.get("value", 0.0), dtype=np.float64) == number))
        except (TypeError, ValueError):
            return False
    return False


class _Translator:
    def __init__(self, stored: Weights | None = None, keras3: bool = True, draws: bool | None = None) -> None:
        self.keras3 = keras3  # keras3_names()
        self.problems: list[str] = []
        self.stored = stored  # the file's weights (weights: as_given), read by PReLU
        # whether the weights are drawn from the config's initialisers (reinitialise; None: where
        # no stored weights are given); otherwise they are the file's and an initialiser the spec
        # cannot express is no reason to refuse: the spec gets Keras' default in its place
        self.draws = stored is None if draws is None else draws
        self.on_input = True  # no layer translated yet: the next one reads the model's input

    def fail(self, layer: str, message: str) -> None:
        self.problems.append(f"{layer}: {message}")

    # initialisers ---------------------------------------------------------------------------
    def _undrawable(self, layer: str, what: str, placeholder: dict[str, Any]) -> dict[str, Any] | None:
        """An initialiser the spec cannot express: refused where the weights are drawn from it
        (:func:`reinitialise_only` names the flag), else ``placeholder`` (never drawn from: the
        stored weights replace every one)."""
        if self.draws:
            self.fail(layer, reinitialise_only(what))
            return None
        return placeholder

    def init(self, value: Any, layer: str, stacked: bool = False, default: str = "glorot_uniform"
             ) -> dict[str, Any] | None:
        name, cfg = _initializer(value if value is not None else default)
        extra = {"stacked": True} if stacked else {}
        scale = {"glorotuniform": (1.0, "fan_avg", "uniform"), "glorotnormal": (1.0, "fan_avg", "truncated_normal"),
                 "henormal": (2.0, "fan_in", "truncated_normal"), "heuniform": (2.0, "fan_in", "uniform"),
                 "lecunnormal": (1.0, "fan_in", "truncated_normal"), "lecununiform": (1.0, "fan_in", "uniform")}
        placeholder = ({"scheme": "orthogonal", "gain": 1.0, **extra} if default == "orthogonal"
                       else {"scheme": "xavier_uniform", **extra})
        if name == "glorotuniform":
            return {"scheme": "xavier_uniform", **extra}  # identical: U(+-sqrt(6 / (fan_in + fan_out)))
        if name in scale:
            s, mode, dist = scale[name]
            return {"scheme": "variance_scaling", "scale": s, "mode": mode, "distribution": dist, **extra}
        if name == "variancescaling":
            dist = cfg.get("distribution", "truncated_normal")
            dist = "truncated_normal" if dist == "normal" else dist
            return {"scheme": "variance_scaling", "scale": float(cfg.get("scale", 1.0)),
                    "mode": cfg.get("mode", "fan_in"), "distribution": dist, **extra}
        if name in ("randomnormal", "truncatednormal"):
            if float(cfg.get("mean", 0.0)) != 0.0:
                return self._undrawable(layer, f"initializer {name} with a non-zero mean", placeholder)
            scheme = "truncated_normal" if name == "truncatednormal" else "normal"
            return {"scheme": scheme, "std": float(cfg.get("stddev", 0.05)), **extra}
        if name == "randomuniform":
            lo, hi = float(cfg.get("minval", -0.05)), float(cfg.get("maxval", 0.05))
            if lo != -hi or hi <= 0:
                return self._undrawable(layer, f"initializer RandomUniform({lo}, {hi}), not symmetric about 0,",
                                        placeholder)
            return {"scheme": "uniform", "bound": hi, **extra}
        if name in ("orthogonal", "identity"):  # Keras' Identity(gain): IRNN's recurrent kernel
            return {"scheme": name, "gain": float(cfg.get("gain", 1.0)), **extra}
        if name == "zeros":
            return {"scheme": "zeros", **extra}
        return self._undrawable(layer, f"initializer {name or value!r}", placeholder)

    def bias(self, value: Any, layer: str) -> dict[str, Any] | None:
        name, cfg = _initializer(value if value is not None else "zeros")
        if name == "zeros":
            return {"scheme": "zeros"}
        if name == "ones":
            return {"scheme": "constant", "value": 1.0}
        if name == "constant":
            return {"scheme": "constant", "value": float(cfg.get("value", 0.0))}
        if name == "randomnormal":
            return {"scheme": "normal", "value": float(cfg.get("mean", 0.0)), "std": float(cfg.get("stddev", 0.05))}
        return self._undrawable(layer, f"bias initializer {name or value!r}", {"scheme": "zeros"})

    def activation(self, value: Any, layer: str) -> str:
        try:
            name = activation_key(value)
        except ValueError as exc:
            self.fail(layer, str(exc))
            return "identity"
        if name == "relu6":  # the clip at 6 hardly ever binds at initialisation (see MIN_RELU_CAP)
            return "relu"
        if name in ("softmax", "sigmoid", "relu", "tanh", "elu", "selu", "gelu", "swish", "silu",
                    "softplus", "linear", "leakyrelu"):
            return {"softmax": "softmax", "leakyrelu": "leaky_relu"}.get(name, _ACTIVATIONS.get(name, name))
        self.fail(layer, f"activation {activation_written(value)!r} is not supported")
        return "identity"

    # layers -----------------------------------------------------------------------------------
    def layer(self, cls: str, cfg: dict[str, Any], layout: str) -> list[dict[str, Any]]:
        """Spec layers of one Keras layer, given the layout of its input (vector, sequence,
        image, channels or tokens)."""
        name = str(cfg.get("name", cls))
        if cfg.get("data_format") == "channels_first":
            # every spec layer is channels-last here (a pool over the other axis, a transposed
            # convolution): the graph door runs it so (keras_graph._channels_last)
            self.fail(name, "data_format channels_first is read by the graph door")
        if cls == "Dense":
            if layout in ("image", "channels"):
                self.fail(name, "Dense on a convolution's output without Flatten is not supported "
                                "(Keras applies it to the channels, the spec to the last axis)")
            act = self.activation(cfg.get("activation"), name)
            out: dict[str, Any] = {"type": "linear", "out_features": int(cfg["units"]), "activation": act,
                                   "bias": bool(cfg.get("use_bias", True))}
            return [self._weights(out, cfg, name)]
        if cls in ("Conv1D", "Conv2D"):
            rank = 1 if cls == "Conv1D" else 2
            kernel, strides = self._square(cfg.get("kernel_size"), name), self._square(cfg.get("strides", 1), name)
            dil = self._square(cfg.get("dilation_rate", 1), name)
            if dil != 1 or int(cfg.get("groups", 1)) != 1:
                self.fail(name, "dilated or grouped convolutions are not supported")
            if rank == 1 and layout in ("sequence", "tokens"):
                # Keras convolves (timesteps, features) along its timesteps, features the channels; the
                # spec's conv1d reads [channels, length]: the graph door reads it (kerassweep6: an
                # Embedding's output was convolved along its features, silently where the two sizes match)
                self.fail(name, "Conv1D on a sequence (timesteps, features) is read by the graph door")
            padding = cfg.get("padding", "valid")
            if padding not in ("valid", "same") or (padding == "same" and strides != 1):
                self.fail(name, f"padding {padding!r} with strides {strides} is not supported")
            out = {"type": f"conv{rank}d", "out_channels": int(cfg["filters"]), "kernel_size": kernel,
                   "stride": strides, "padding": 0 if padding == "valid" else "same",
                   "activation": self.activation(cfg.get("activation"), name),
                   "bias": bool(cfg.get("use_bias", True))}
            return [self._weights(out, cfg, name)]
        if cls in ("MaxPooling2D", "AveragePooling2D"):
            if cfg.get("padding", "valid") != "valid":
                self.fail(name, "pooling with padding 'same' is not supported")
            pool = self._square(cfg.get("pool_size", 2), name)
            stride = cfg.get("strides")
            return [{"type": "maxpool2d" if cls.startswith("Max") else "avgpool2d", "kernel_size": pool,
                     "stride": pool if stride is None else self._square(stride, name)}]
        if cls in _GLOBAL_POOLS:
            if cfg.get("keepdims"):
                self.fail(name, "keepdims=True is not supported (the spec's pool gives a vector)")
            over = ("image",) if cls.endswith("2D") else ("sequence", "channels")
            if layout not in over:
                self.fail(name, f"{cls} needs {'a Conv2D' if cls.endswith('2D') else 'a sequence or a Conv1D'}"
                                "'s output before it")
            return [{"type": "pool", "mode": "max" if "Max" in cls else "mean"}]
        if cls == "Flatten":
            return [{"type": "flatten"}]
        if cls in _DROPOUTS:
            # Dropout with a noise_shape and SpatialDropout (whole channels dropped) share one mask
            # over some axes, but each element is still kept with probability 1 - p and scaled by
            # 1 / (1 - p): the same per-element marginal, so the same mean and mean square of every
            # gradient as the spec's element-wise dropout. GaussianDropout multiplies by
            # N(1, p / (1 - p)): the mean (1) and variance (p / (1 - p)) of inverted dropout's
            # factor, so again the same first and second moments of the gradients.
            return [{"type": "dropout", "p": float(cfg.get("rate", 0.0))}]
        if cls in _SKIPPED:
            return self._skipped(cls, cfg, name, layout)
        if cls == "Lambda":  # only one _stand_ins made the identity reaches here; its code is never run
            return []
        if cls == "BatchNormalization":
            # the spec's batchnorm starts at Keras' defaults (gamma 1, beta 0, moving statistics 0
            # and 1); other initialisers (beta -3 before a ReLU: every unit dead) are drawn by the
            # graph door, as it draws every layer's (keras_torch._INIT_KEYS)
            changed = [key for key, default in _BN_DEFAULTS.items()
                       if not _is_constant(cfg.get(key), default)]
            if changed:
                self.fail(name, f"BatchNormalization with {', '.join(changed)} other than Keras' default "
                                "is read by the graph door")
            return [{"type": "batchnorm"}]
        if cls == "LayerNormalization":
            axis = cfg.get("axis", -1)
            if layout in ("image", "channels") and axis not in (-1, [-1]):
                # the spec's layernorm of a convolution's output is over its channels at each position
                self.fail(name, f"LayerNormalization over axis {axis} of a convolution's output is not supported "
                                "(over its channels, axis -1, is)")
            return [{"type": "layernorm"}]
        if cls in ("Activation", "LeakyReLU", "Softmax"):
            if cls == "Activation":
                act = self.activation(cfg.get("activation"), name)
            else:
                act = {"LeakyReLU": "leaky_relu", "Softmax": "softmax"}[cls]
            out = {"type": "activation", "activation": act}
            if act == "leaky_relu":  # Keras 3 says negative_slope, Keras 2 alpha; both default 0.3
                slope = cfg.get("negative_slope", cfg.get("alpha", 0.3))
                out["negative_slope"] = self._slope(slope, name, "negative_slope")
            return [out]
        if cls in ("ReLU", "PReLU", "ELU", "ThresholdedReLU"):
            return self._rectifier(cls, cfg, name)
        if cls in ("SimpleRNN", "LSTM", "GRU"):
            return [self._recurrent(cls, cfg, name, layout)]
        if cls == "Bidirectional":
            return self._bidirectional(cfg, name, layout)
        if cls == "Embedding":
            init = self.init(cfg.get("embeddings_initializer", "uniform"), name)
            return [{"type": "embedding", "embedding_dim": int(cfg["output_dim"]), "init": init,
                     "_vocab": int(cfg["input_dim"])}]
        self.fail(name, f"layer {cls} is not supported")
        return []

    def _slope(self, value: Any, layer: str, what: str) -> float:
        """A leaky_relu slope, within the spec's bounds (0: ReLU, to 1: the identity)."""
        try:
            slope = float(value)
        except (TypeError, ValueError):
            self.fail(layer, f"{what} {value!r} is not a number")
            return 0.0
        if not 0.0 <= slope <= 1.0:
            self.fail(layer, f"{what} {slope:g} is outside 0..1: a slope below 0 or above 1 for "
                             "x < 0 is not a leaky ReLU, which the spec cannot express")
            return 0.0
        return slope

    def _relu(self, slope: float) -> dict[str, Any]:
        if slope == 0.0:
            return {"type": "activation", "activation": "relu"}
        return {"type": "activation", "activation": "leaky_relu", "negative_slope": slope}

    def _rectifier(self, cls: str, cfg: dict[str, Any], name: str) -> list[dict[str, Any]]:
        """``ReLU``, ``PReLU``, ``ELU`` and ``ThresholdedReLU`` layers: the spec's relu,
        leaky_relu or elu where they compute the same function (at initialisation), else refused
        with the reason."""
        if cls == "ReLU":
            # Keras: max_value if x >= max_value, x if threshold <= x, negative_slope * (x -
            # threshold) below. Every key is read, none ignored.
            threshold = float(cfg.get("threshold") or 0.0)
            if threshold != 0.0:
                self.fail(name, f"ReLU with threshold {threshold:g} is not supported (the spec's "
                                "ReLU bends at 0)")
            cap = cfg.get("max_value")
            if cap is not None and float(cap) < MIN_RELU_CAP:
                self.fail(name, f"ReLU with max_value {float(cap):g} is not supported: a cap below "
                                f"{MIN_RELU_CAP:g} clips many unit-scale pre-activations (zero "
                                "gradient there), which the spec's ReLU cannot express")
            # A cap of MIN_RELU_CAP or more (ReLU6) is read as the plain ReLU, as the ONNX door
            # measures Relu6 / Clip(0, 6) (graph.ACTIVATION_MODULES): units below 0 are dead as in
            # a ReLU, and the clip hardly ever binds on unit-scale pre-activations at
            # initialisation.
            slope = self._slope(cfg.get("negative_slope") or 0.0, name, "negative_slope")
            return [self._relu(slope)]
        if cls == "ELU":
            alpha = float(cfg.get("alpha", 1.0))
            if alpha != 1.0:  # the spec's (and torch's default) elu is alpha * (e^x - 1), alpha = 1
                self.fail(name, f"ELU with alpha {alpha:g} is not supported (the spec's elu has "
                                "alpha 1)")
            return [{"type": "activation", "activation": "elu"}]
        if cls == "ThresholdedReLU":
            theta = float(cfg.get("theta", 1.0))  # x if x > theta else 0: theta 0 is the ReLU
            if theta != 0.0:
                self.fail(name, f"ThresholdedReLU with theta {theta:g} is not supported (it jumps "
                                "from 0 to theta at x = theta; the spec's ReLU bends at 0)")
            return [self._relu(0.0)]
        return [self._relu(self._prelu_alpha(cfg, name))]

    def _prelu_alpha(self, cfg: dict[str, Any], name: str) -> float:
        """The slope of a PReLU (max(x, 0) + alpha * min(x, 0), alpha learnt per unit): one
        number for every unit, as the spec's leaky_relu has, or refused. The file's alpha when it
        stores weights (weights: as_given), else the alpha Keras initialises."""
        if self.stored is not None:
            arrays = self.stored.get(name)
            if not arrays:
                self.fail(name, "the file stores no weights (alpha) for this PReLU layer")
                return 0.0
            alpha = np.asarray(arrays[0], dtype=np.float64)
            if alpha.size == 0 or not np.all(alpha == alpha.flat[0]):
                spread = f"{alpha.min():g}..{alpha.max():g}" if alpha.size else "none"
                self.fail(name, f"PReLU with stored alpha that differs between units ({spread}) "
                                "is not supported: the network is not one (leaky) ReLU, and the "
                                "spec's leaky_relu has one slope")
                return 0.0
            return self._slope(alpha.flat[0], name, "stored PReLU alpha")
        init, icfg = _initializer(cfg.get("alpha_initializer", "zeros"))
        if init == "zeros":  # Keras' default: at initialisation a PReLU IS a ReLU
            return 0.0
        if init == "ones":
            return 1.0
        if init == "constant":
            # a number, or a nested list of one per unit
            value = np.asarray(icfg.get("value", 0.0), dtype=np.float64)
            if value.size == 0 or not np.all(value == value.flat[0]):
                self.fail(name, "PReLU with a non-uniform Constant alpha is not supported (the "
                                "spec's leaky_relu has one slope)")
                return 0.0
            return self._slope(value.flat[0], name, "PReLU alpha")
        self.fail(name, f"PReLU with alpha_initializer {init or '?'} is not supported: a random "
                        "alpha gives every unit its own slope, which the spec's leaky_relu (one "
                        "slope) cannot express; use Zeros or Constant")
        return 0.0

    def _skipped(self, cls: str, cfg: dict[str, Any], name: str,
                 layout: str) -> list[dict[str, Any]]:
        """Layers that are the identity for the simulated network: no spec layer, or refused
        where they are not."""
        # Masking hides the timesteps whose features all equal mask_value from the recurrent
        # layers after it. The synthetic inputs are continuous (normal), so no timestep equals
        # it and the mask hides nothing: the identity. Deeper in the network features can be
        # exactly 0 (a ReLU's), so only a Masking of the model's input is skipped.
        if cls == "Masking" and (not self.on_input or layout == "tokens"):
            self.fail(name, "Masking is supported on the model's (float) input only: deeper, "
                            "a timestep's features can equal mask_value (a ReLU's zeros) and "
                            "hiding it changes the recurrent gradients")
        # ActivityRegularization computes the identity; its penalty (l1 * sign(x) + 2 * l2 * x
        # added to this output's gradient) is no term of the simulated loss, and
        # activity_penalty_notes has the document say it was left out.
        # GaussianNoise adds N(0, stddev^2) in training: its Jacobian is the identity, so it
        # passes gradients through unchanged. It does add stddev^2 to the variance of the next
        # layer's input, which the spec cannot add; for the usual stddev (well under the
        # unit-scale signal) that moves the figures after it by a few percent, not by the
        # orders of magnitude a vanishing or exploding diagnosis rests on. Identity (Keras 3)
        # and InputLayer compute nothing.
        return []

    def _square(self, value: Any, layer: str) -> int:
        values = value if isinstance(value, list | tuple) else [value]
        if len(set(values)) != 1 or not isinstance(values[0], int):
            self.fail(layer, f"non-square sizes {value!r} are not supported")
            return 1
        return int(values[0])

    def _weights(self, out: dict[str, Any], cfg: dict[str, Any], name: str) -> dict[str, Any]:
        out["init"] = self.init(cfg.get("kernel_initializer"), name)
        if out["bias"]:
            out["bias_init"] = self.bias(cfg.get("bias_initializer"), name)
        if out["activation"] == "leaky_relu":
            out["negative_slope"] = 0.2  # Keras 3's leaky_relu activation function default
        return out

    def _bidirectional(self, cfg: dict[str, Any], name: str, layout: str) -> list[dict[str, Any]]:
        """``Bidirectional(LSTM/GRU/SimpleRNN)``, concatenated: the spec's ``bidirectional``
        recurrent layer (Keras' backward layer is a copy of the forward one's config)."""
        from gradhealth.analysis.importers.keras_graph import recurrent_cell

        try:  # the graph door's own reading of it
            cls, inner_cfg, _ = recurrent_cell("Bidirectional", cfg)
        except ValueError as exc:
            self.fail(name, str(exc))
            return []
        out = self._recurrent(cls, inner_cfg, name, layout)
        out["bidirectional"] = True
        return [out]

    def _recurrent(self, cls: str, cfg: dict[str, Any], name: str, layout: str) -> dict[str, Any]:
        from gradhealth.analysis.importers.keras_graph import recurrent_gates, spec_gate

        kind = {"SimpleRNN": "rnn", "LSTM": "lstm", "GRU": "gru"}[cls]
        if layout != "sequence":
            self.fail(name, f"{cls} needs a sequence input (timesteps, features)")
        try:  # the cells the graph door builds too (gradhealth.analysis.cells)
            act, gate, reset_after = recurrent_gates(cls, cfg)
        except ValueError as exc:
            self.fail(name, str(exc))
            act, gate, reset_after = "tanh", "sigmoid", True
        if kind != "rnn" and (act != "tanh" or gate not in ("sigmoid", "hard_sigmoid")):
            # the spec's cells are tanh with a (hard) sigmoid gate; the graph door's take the rest
            self.fail(name, f"{cls} with activation {act} and recurrent_activation {gate.split('/')[0]} is "
                            "read by the graph door")
            act, gate = "tanh", "sigmoid"
        if cfg.get("go_backwards"):  # the spec's recurrent layers read forwards; the graph door reverses
            self.fail(name, f"{cls} with go_backwards is read by the graph door")
        out: dict[str, Any] = {
            "type": kind, "hidden_size": int(cfg["units"]),
            "output": "sequence" if cfg.get("return_sequences") else "last",
            "init": self.init(cfg.get("kernel_initializer"), name, stacked=True),
            "recurrent_init": self.init(cfg.get("recurrent_initializer"), name, stacked=True, default="orthogonal"),
            "bias_init": self.bias(cfg.get("bias_initializer"), name),
        }
        if kind == "rnn":
            out["nonlinearity"] = act
        elif gate != "sigmoid":
            out["recurrent_activation"] = spec_gate(gate, self.keras3)
        if not reset_after:
            out["reset_after"] = False
        if kind == "lstm" and cfg.get("unit_forget_bias", True):
            # Keras: the bias initialiser, then the forget gate's block set to 1.
            bias = out["bias_init"] or {}
            if (bias.get("scheme") not in ("zeros", "constant") or bias.get("value", 0.0) != 0.0) and self.draws:
                self.fail(name, reinitialise_only("unit_forget_bias with a non-zero bias initializer"))
            out["forget_bias"] = 1.0
        return out


def _input_shape(layers: list[dict[str, Any]], config: dict[str, Any]) -> list[Any] | None:
    for layer in layers:
        cfg = layer.get("config") or {}
        for key in ("batch_shape", "batch_input_shape"):
            if isinstance(cfg.get(key), list):
                return list(cfg[key][1:])
        build = layer.get("build_config") or {}
        if isinstance(build.get("input_shape"), list):
            return list(build["input_shape"][1:])
        if layer.get("class_name") != "InputLayer":
            break
    shape = config.get("build_input_shape")
    return list(shape[1:]) if isinstance(shape, list) else None


def with_input_shapes(model: dict[str, Any], shapes: dict[str, list[int]] | None) -> dict[str, Any]:
    """``model`` with the sizes ``shapes`` gives (input name -> sizes, with or without the batch
    size first) in place of its dynamic dimensions (``None``: a variable-length sequence). The name
    is an ``InputLayer``'s, or ``input`` for a model with one input. A size that contradicts a
    fixed one, or a name that is no input, is an :class:`InputFormatError`."""
    if not shapes:
        return model
    model = copy.deepcopy(modern_config(model))
    layers = (model.get("config") or {}).get("layers") or []
    holders = [lay for lay in layers if isinstance(lay, dict) and lay.get("class_name") == "InputLayer"]
    if not holders and layers and isinstance(layers[0], dict):
        holders = [layers[0]]  # a Sequential gives its input shape on its first layer
    by_name = {str((lay.get("config") or {}).get("name")): lay for lay in holders}
    for name, dims in shapes.items():
        layer = by_name.get(name) or (holders[0] if name == "input" and len(holders) == 1 else None)
        if layer is None:
            raise InputFormatError(f"--input-shape {name}: the model's inputs are "
                                   f"{', '.join(by_name) or 'unnamed'}" + (" (or `input`)" if len(holders) == 1 else ""), parameter="input_shapes")
        cfg = layer.setdefault("config", {})
        key = next((k for k in ("batch_shape", "batch_input_shape") if isinstance(cfg.get(k), list)), None)
        if key is None and layer is layers[0] and unstated_input(model):
            # an unbuilt Sequential states no shape to contradict: the sizes are one sample's
            cfg["batch_input_shape"] = [None, *dims]
            continue
        if key is None:
            raise InputFormatError(f"--input-shape {name}: this input states no shape to fill in", parameter="input_shapes")
        old = list(cfg[key][1:])
        given = list(dims[1:]) if len(dims) == len(old) + 1 else list(dims)
        if len(given) != len(old):
            raise InputFormatError(f"--input-shape {name}: {len(dims)} sizes for an input of shape "
                                   f"{['None' if d is None else d for d in old]}", parameter="input_shapes")
        for i, (was, new) in enumerate(zip(old, given, strict=True)):
            if isinstance(was, int) and was != new:
                raise InputFormatError(f"--input-shape {name}: dimension {i + 1} is {was} in the model, not {new}", parameter="input_shapes")
        cfg[key] = [None, *given]
    return model


#: The length a dynamic time axis (a variable-length sequence: ``Input(shape=(None, 20))``,
#: ``input_shape=[None, 1]``, an Embedding without ``input_length``) is checked at, when the file
#: gives none (kerassweep12: 8 of 10 refusals were such files). 32 steps: a GRU(512) over the 1,344
#: steps its tutorial reads took 60 s on two cores, over 32 about 2 s. (A gated cell is judged by
#: its per-step factor against default gates, whatever the length: the length chosen here decides
#: no severity.)
DEFAULT_STEPS = 32
#: The size of a dynamic spatial axis (an image of None x None pixels): CIFAR's, which five
#: stride-2 stages still reduce to 1 x 1.
DEFAULT_SPATIAL = 32


def _input_slots(model: dict[str, Any]) -> list[tuple[str, dict[str, Any], str, list[dict[str, Any]]]]:
    """Where each input of ``model`` (today's form) states its shape: (input name, the dict holding
    it, its key, the layers that read the input), in the places :func:`_input_shape` reads."""
    cfg = model.get("config") or {}
    layers = [lay for lay in cfg.get("layers") or [] if isinstance(lay, dict)]
    slots: list[tuple[str, dict[str, Any], str, list[dict[str, Any]]]] = []
    if model.get("class_name") == "Sequential":
        if not layers:
            return []
        first = layers[0]
        is_input = first.get("class_name") == "InputLayer"
        readers = layers[1:2] if is_input else [first]
        holder: dict[str, Any] = first["config"] if isinstance(first.get("config"), dict) else {}
        name = str(holder.get("name", "input"))
        key = next((k for k in ("batch_shape", "batch_input_shape") if isinstance(holder.get(k), list)), None)
        if key is not None:
            return [(name, holder, key, readers)]
        build = first.get("build_config")
        if isinstance(build, dict) and isinstance(build.get("input_shape"), list):
            return [(name, build, "input_shape", readers)]
        if isinstance(cfg.get("build_input_shape"), list):
            return [(name, cfg, "build_input_shape", readers)]
        return []
    for lay in layers:
        if lay.get("class_name") != "InputLayer" or not isinstance(lay.get("config"), dict):
            continue
        holder = lay["config"]
        name = str(holder.get("name") or lay.get("name"))
        key = next((k for k in ("batch_shape", "batch_input_shape") if isinstance(holder.get(k), list)), None)
        if key is not None:
            slots.append((name, holder, key, [r for r in layers if name in _inbound(r)]))
    return slots


def unstated_input(model: dict[str, Any]) -> bool:
    """Whether ``model`` (today's form) is a Sequential saved unbuilt: no InputLayer, no input shape
    on its first layer, no ``build_config`` or ``build_input_shape`` (Keras 3's
    ``Sequential([Embedding(...), ...])`` saved before it saw data)."""
    if not isinstance(model, dict) or model.get("class_name") != "Sequential":
        return False
    cfg = model.get("config")
    layers = cfg.get("layers") if isinstance(cfg, dict) else None
    if not (isinstance(layers, list) and layers and isinstance(layers[0], dict)):
        return False
    if layers[0].get("class_name") in ("Sequential", "Model", "Functional"):
        return False  # a nested model states its input inside it (a Keras 2.1 bare-list Sequential's first layer)
    return not _input_slots(model)


#: Where a first layer's stored kernel says the width of the input it reads, and that input's
#: rank without the batch: Dense [in, out] reads [in]; an RNN [in, k*units] reads [steps, in];
#: ConvND [k..., in, out] reads [N dynamic axes, in] (the steps or pixels filled as any dynamic axis).
_KERNEL_READS = {"Dense": (0, 1), "SimpleRNN": (0, 2), "LSTM": (0, 2), "GRU": (0, 2),
                 "Conv1D": (-2, 2), "Conv2D": (-2, 3), "Conv3D": (-2, 4)}
#: The flag's placeholder and an example for the input a first layer of that class reads.
_INPUT_EXAMPLES = {"Dense": ("<features>", "784"), "SimpleRNN": ("<steps>x<features>", "32x8"),
                   "LSTM": ("<steps>x<features>", "32x8"), "GRU": ("<steps>x<features>", "32x8"),
                   "Conv1D": ("<steps>x<channels>", "128x1"), "Conv2D": ("<height>x<width>x<channels>", "32x32x3"),
                   "Conv3D": ("<frames>x<height>x<width>x<channels>", "16x32x32x3")}


def needs_stored_input_width(model: dict[str, Any]) -> bool:
    """Whether ``model`` states no input shape (:func:`unstated_input`) and only its first layer's
    stored kernel can say the width of its input (not an Embedding, whose token ids need none)."""
    model = modern_config(model)
    return unstated_input(model) and model["config"]["layers"][0].get("class_name") != "Embedding"


def _state_input(model: dict[str, Any], stored: Weights | None) -> str | None:
    """Give an unbuilt Sequential's first layer (:func:`unstated_input`, ``model`` a copy to change)
    the input shape it reads, with its dynamic axes left None for :func:`with_default_sizes`: token
    ids [None] before an Embedding; the width its stored kernel gives (:data:`_KERNEL_READS`) before
    a Dense, RNN or convolution. The note's words on a width read from a kernel (None for token
    ids); a :class:`ModelError` naming the flag to pass (with an example) where neither says."""
    first = model["config"]["layers"][0]
    cls = str(first.get("class_name"))
    cfg = first.setdefault("config", {})
    name = str(cfg.get("name", cls))
    if cls == "Embedding":
        cfg["batch_input_shape"] = [None, None]
        return None
    arrays = (stored or {}).get(name)
    kernel = arrays[0] if arrays and cls in _KERNEL_READS else None
    if kernel is not None and np.ndim(kernel) >= 2:
        axis, rank = _KERNEL_READS[cls]
        width = int(np.shape(kernel)[axis])
        cfg["batch_input_shape"] = [None, *([None] * (rank - 1)), width]
        return f"{width} features, from its stored kernel"
    marks, example = _INPUT_EXAMPLES.get(cls, ("<sizes>", "32x8"))
    why = ("its stored weights do not say the width of its input" if cls in _KERNEL_READS and stored
           else "the file stores no weights to read its input's width from" if cls in _KERNEL_READS
           else f"a first {cls} layer does not say the input's sizes")
    raise ModelError(f"input: the config states no input shape (a Sequential saved unbuilt, with no Input) "
                     f"and {name} ({cls}) reads it: {why}; give one sample's sizes with "
                     f"--input-shape input={marks} (e.g. --input-shape input={example}; "
                     "`input_shapes` over HTTP)")


def with_default_sizes(model: dict[str, Any], stored: Weights | None = None) -> tuple[dict[str, Any], str | None]:
    """``model`` with each dynamic (``None``) non-batch input dimension given a size, and the
    document's note saying which were assumed (None where none was), as the batch size is.

    Keras saves every variable-length model so (``Input(shape=(None,))``, ``input_shape=[None, 1]``,
    an Embedding without ``input_length``): a token axis read by an Embedding takes its
    ``input_length`` where it states one, else :data:`DEFAULT_STEPS`; the time axis of a
    (steps, features) input (and the frame axis of a (frames, h, w, channels) one)
    :data:`DEFAULT_STEPS`; a spatial axis :data:`DEFAULT_SPATIAL`. A dynamic feature or channel
    axis (the last) sizes the weights of the layer that reads it: no size can be assumed, and it is
    a :class:`ModelError` naming that layer. ``--input-shape`` (:func:`with_input_shapes`, applied
    first) sets any of them.

    A Sequential saved unbuilt states no input shape at all (:func:`unstated_input`): an Embedding
    first reads token ids, [None] filled as above; a Dense, RNN or convolution first reads the width
    its kernel in ``stored`` (the file's weights) has; otherwise a :class:`ModelError` names the
    ``--input-shape`` to give, with an example."""
    model = modern_config(model)
    if not is_keras_config(model):
        return model, None
    unstated = unstated_input(model)
    width = None
    if unstated:
        model = copy.deepcopy(model)
        width = _state_input(model, stored)
    slots = _input_slots(model)
    if not unstated and not any(d is None for _, holder, key, _ in slots for d in holder[key][1:]):
        return model, None
    model = copy.deepcopy(model)
    slots = _input_slots(model)
    said: list[str] = []
    refused: list[str] = []
    single = len(slots) == 1
    for name, holder, key, readers in slots:
        dims = list(holder[key][1:])
        if not unstated and not any(d is None for d in dims):
            continue
        tokens = next((r for r in readers if r.get("class_name") == "Embedding"), None)
        reader = str(((readers[0].get("config") or {}).get("name") if readers else None) or "the model")
        filled: list[Any] = []
        kinds: set[str] = set()
        marks: list[str] = []  # the flag's placeholder per dimension
        for i, d in enumerate(dims):
            marks.append(str(d) if d is not None else "<tokens>" if tokens is not None
                         else "<features>" if i == len(dims) - 1
                         else "<pixels>" if len(dims) == 3 or (len(dims) == 4 and i > 0) else "<steps>")
            if d is not None:
                filled.append(d)
            elif tokens is not None:
                length = (tokens.get("config") or {}).get("input_length")
                ok = isinstance(length, int) and not isinstance(length, bool) and length >= 1
                filled.append(length if ok else DEFAULT_STEPS)
                kinds.add(f"{length} tokens, the Embedding's input_length" if ok else f"{DEFAULT_STEPS} tokens")
            elif i == len(dims) - 1:
                filled.append(None)  # the features (channels): they size the reader's weights
            elif len(dims) == 3 or (len(dims) == 4 and i > 0):
                filled.append(DEFAULT_SPATIAL)
                kinds.add(f"{DEFAULT_SPATIAL} pixels a side")
            else:
                filled.append(DEFAULT_STEPS)
                kinds.add(f"{DEFAULT_STEPS} time steps")
        flag = f"--input-shape {'input' if single else name}={'x'.join(marks)}"
        if filled and filled[-1] is None and tokens is None:
            refused.append(f"input {name}: the last dimension of its shape {_shown(dims)} (the features "
                           f"{reader} reads, which size its weights) is dynamic and cannot be assumed; "
                           f"give it ({flag})")
            continue
        holder[key] = [holder[key][0], *filled]
        if unstated:  # no shape to have been dynamic: where each size came from
            said.append(f"{name} {_shown(filled)} ({', '.join([*([width] if width else []), *sorted(kinds)])}; "
                        f"{flag} to choose)")
        else:
            said.append(f"{name} {_shown(filled)} for {_shown(dims)} ({', '.join(sorted(kinds))}; {flag} to choose)")
    if refused:
        raise ModelError("; ".join(refused) + " (`input_shapes` over HTTP)")
    lead = ("the file states no input shape (a Sequential saved unbuilt): assumed " if unstated
            else "assumed input sizes the file leaves dynamic: ")
    note = (lead + "; ".join(said)) if said else None
    return model, note


def _shown(dims: list[Any]) -> str:
    """A shape as the user wrote it, ``None`` for a dynamic size: ``[None, 20]``."""
    return "[" + ", ".join("None" if d is None else str(d) for d in dims) + "]"


def _layout(cls: str, cfg: dict[str, Any], layout: str) -> str:
    """The layout after a layer (vector, sequence, image, channels or tokens)."""
    if cls == "Embedding":
        return "sequence"
    if cls in ("SimpleRNN", "LSTM", "GRU"):
        return "sequence" if cfg.get("return_sequences") else "vector"
    if cls == "Bidirectional":
        return _layout(str((cfg.get("layer") or {}).get("class_name")),
                       (cfg.get("layer") or {}).get("config") or {}, layout)
    if cls == "Flatten" or cls in _GLOBAL_POOLS:
        return "vector"
    if cls == "Conv2D":
        return "image"
    if cls == "Conv1D":
        return "channels"
    return layout


def _inbound(layer: dict[str, Any]) -> list[str]:
    """The names of the layers feeding a Functional layer (Keras 2 and Keras 3 layouts)."""
    from gradhealth.analysis.importers.keras_graph import _tensors

    return [name for name, _ in _tensors(layer.get("inbound_nodes") or [], [])]


def _stand_ins(model: dict[str, Any]) -> tuple[dict[str, tuple[str, list[str]]], list[tuple[str, str]]]:
    """The spec door's reading of a model's ``Lambda`` layers (whose code is never run), from the
    shapes the file declares: ({name: (stand-in, the layers it reads)}, [(name, why not)]).
    :func:`.keras_graph.lambda_stand_in` decides; the graph door decides the same from the shapes
    it infers, so a Lambda refused here for want of declared shapes (a Keras 2 file) is read there."""
    from gradhealth.analysis.importers.keras_graph import (
        declared_shape,
        keras_tensor_shapes,
        lambda_stand_in,
    )

    layers = [lay for lay in (model.get("config") or {}).get("layers") or [] if isinstance(lay, dict)]
    if not any(lay.get("class_name") == "Lambda" for lay in layers):
        return {}, []
    sequential = model.get("class_name") == "Sequential"
    reads = {} if sequential else keras_tensor_shapes(model)
    stood: dict[str, tuple[str, list[str]]] = {}
    refused: list[tuple[str, str]] = []
    for k, lay in enumerate(layers):
        if lay.get("class_name") != "Lambda":
            continue
        cfg = lay.get("config") or {}
        name = str(lay.get("name") or cfg.get("name", "?"))
        if sequential:  # Keras 3 writes each layer's input shape in its build_config
            before = layers[k - 1] if k else {}
            shape = declared_shape((lay.get("build_config") or {}).get("input_shape"), batch=True)
            if shape is None and not k:  # the first layer of a Keras 2 Sequential: its own input shape
                shape = declared_shape(cfg.get("batch_input_shape") or cfg.get("batch_shape"), batch=True)
            if shape is None and before.get("class_name") == "InputLayer":
                shape = declared_shape((before.get("config") or {}).get("batch_shape"), batch=True)
            after = layers[k + 1] if k + 1 < len(layers) else {}
            read = declared_shape((after.get("build_config") or {}).get("input_shape"), batch=True)
            in_shapes, srcs = [shape], [str((before.get("config") or {}).get("name", "input"))]
            read_as = [read] if read is not None else []
        else:
            nodes = lay.get("inbound_nodes") or []
            if len(nodes) != 1:
                refused.append((name, f"it is called {len(nodes)} times"))
                continue
            tensors: list[Any] = []
            _keras_tensors(nodes[0], tensors)
            in_shapes = [declared_shape(((t.get("config") or {}).get("shape")), batch=True) for t in tensors]
            srcs = [src for src, _ in _tensors_of(nodes[0])]
            if len(srcs) != len(in_shapes):
                in_shapes = [None] * max(len(srcs), 1)  # Keras 2: no shapes declared
            read_as = reads.get((name, 0), [])
        kind, why = lambda_stand_in(in_shapes, cfg.get("output_shape"), read_as)
        if kind is None:
            refused.append((name, why))
        else:
            stood[name] = (kind, srcs)
    return stood, refused


def _keras_tensors(value: Any, out: list[Any]) -> None:
    """Every Keras 3 tensor reference in ``value``, in order."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            out.append(value)
            return
        for item in value.values():
            _keras_tensors(item, out)
    elif isinstance(value, list):
        for item in value:
            _keras_tensors(item, out)


def _tensors_of(node: Any) -> list[tuple[str, int]]:
    from gradhealth.analysis.importers.keras_graph import _tensors

    return _tensors(node, [])


def _sequential_order(model: dict[str, Any], tr: _Translator,
                      sums: Container[str] = ()) -> list[dict[str, Any] | list[Any]]:
    """The layers of a Functional graph as a chain, with identity-skip ``Add`` nodes (and the
    Lambda layers whose stand-in is the sum, ``sums``) turned into ``["residual", [branch
    layers...], add's name]`` items."""
    cfg = model["config"]
    layers = {str(lay.get("name") or (lay.get("config") or {}).get("name")): lay for lay in cfg["layers"]}
    from gradhealth.analysis.importers.keras_graph import endpoints

    inputs, outputs = endpoints(cfg.get("input_layers")), endpoints(cfg.get("output_layers"))
    if len(inputs) != 1 or len(outputs) != 1:
        tr.fail(model.get("class_name", "model"), "only models with one input and one output are supported")
        return []
    start, used = inputs[0], set()

    def ancestors(node: str) -> set[str]:
        seen, stack = set(), [node]
        while stack:
            n = stack.pop()
            if n in seen or n not in layers:
                continue
            seen.add(n)
            stack.extend(_inbound(layers[n]))
        return seen

    def chain(node: str, stop: str) -> list[Any]:
        items: list[Any] = []
        while node != stop:
            if node not in layers or node in used:
                tr.fail(node, "the graph is not a chain with identity-skip residual blocks")
                return items
            used.add(node)
            lay, srcs = layers[node], _inbound(layers[node])
            if lay.get("class_name") == "Add" or node in sums:
                if len(srcs) != 2:
                    tr.fail(node, "Add of other than two tensors is not supported")
                    return items
                a, b = srcs
                skip, branch = (a, b) if a in ancestors(b) else (b, a) if b in ancestors(a) else (None, None)
                if skip is None or branch is None:
                    tr.fail(node, "Add whose inputs are not x and f(x) (e.g. a projection shortcut) is not "
                                  "supported: the spec's residual block needs an identity skip")
                    return items
                items.insert(0, ["residual", chain(branch, skip), node])
                node = skip
                continue
            if len(srcs) != 1:
                tr.fail(node, f"{lay.get('class_name')} with {len(srcs)} inputs is not supported")
                return items
            items.insert(0, lay)
            node = srcs[0]
        return items

    order = chain(outputs[0], start)
    unused = sorted(set(layers) - used - {start})
    if unused:
        tr.fail(", ".join(unused), "layers not on the path from the input to the output are not supported")
    return [layers[start], *order]


def keras_to_spec(model: dict[str, Any], loss: str | dict[str, Any] | None = None, *, seeds: int = 3,
                  batch_size: int = 64, stored: Weights | None = None,
                  optimizer: dict[str, Any] | None = None) -> dict[str, Any]:
    """Translate a Keras model config (``model.to_json()`` decoded) into a spec dict.

    ``loss`` (a spec loss type) overrides the one inferred from the output layer. ``stored``: the
    file's weights where they will be used (:func:`read_keras_weights`; see
    :func:`translation_reads_weights`). ``optimizer``: the spec's ``optimizer``
    (:func:`keras_optimizer`). Raises :class:`ModelError` naming every layer that cannot be
    translated, in one message, and :class:`InputFormatError` when the value is not a Keras config
    at all.
    """
    return _translate(gru_reset_after(modern_config(model), stored), loss, seeds=seeds, batch_size=batch_size,
                      stored=stored, optimizer=optimizer, base=_layers_base(model))[0]


def translation_reads_weights(model: dict[str, Any]) -> bool:
    """Whether translating ``model`` depends on its stored weights (a PReLU's slope is its stored
    alpha; the input width of a Sequential saved unbuilt, :func:`needs_stored_input_width`), so that a check before the job (the API's) must read them to decide as the job will."""
    layers = (model.get("config") or {}).get("layers") if isinstance(model, dict) else None
    return (any(isinstance(lay, dict) and lay.get("class_name") == "PReLU" for lay in layers or [])
            or (is_keras_config(modern_config(model)) and needs_stored_input_width(model)))


def _layers_base(model: Any) -> str:
    """The JSON pointer of a Keras model's layer list in its file: ``/config/layers``, or
    ``/config`` for a Keras <= 2.2.2 Sequential (:func:`modern_config`)."""
    legacy = isinstance(model, dict) and isinstance(model.get("config"), list | _LegacyConfig)
    return "/config" if legacy else "/config/layers"


def _input_origin(items: list[dict[str, Any]], config: dict[str, Any], base: str,
                  index: dict[int, int]) -> tuple[str, str, str] | None:
    """Where :func:`_input_shape` read the input shape: (the JSON pointer of that list, whose item
    0 is the batch size, the Keras layer's name, its class); None where it read none."""
    for layer in items:
        cfg = layer.get("config") or {}
        cls = str(layer.get("class_name"))
        where = f"{base}/{index[id(layer)]}" if id(layer) in index else base
        name = str(cfg.get("name", cls))
        for key in ("batch_shape", "batch_input_shape"):
            if isinstance(cfg.get(key), list):
                return f"{where}/config/{key}", name, cls
        if isinstance((layer.get("build_config") or {}).get("input_shape"), list):
            return f"{where}/build_config/input_shape", name, cls
        if layer.get("class_name") != "InputLayer":
            break
    if isinstance(config.get("build_input_shape"), list):
        return "/config/build_input_shape", str(config.get("name", "model")), "model"
    return None


def _translate(model: dict[str, Any], loss: str | dict[str, Any] | None = None, *, seeds: int = 3,
               batch_size: int = 64, stored: Weights | None = None,
               optimizer: dict[str, Any] | None = None,
               base: str = "/config/layers", draws: bool | None = None) -> tuple[dict[str, Any], Origins]:
    """:func:`keras_to_spec`, and which Keras layer each spec layer came from (by pointer), with its
    place in the file (``base``: the pointer of the file's layer list, :func:`_layers_base`); the
    input's sizes too (``/input/shape/0`` -> the Keras ``batch_shape`` entry).
    ``stored``: the file's weights when they will be used (a PReLU's slope is its stored alpha).
    ``draws``: whether the weights will be drawn from the config's initialisers (None: where
    ``stored`` is None), the one case an initialiser the spec cannot express is refused."""
    from gradhealth.analysis.importers.keras_graph import check_config_sizes, unsupported_message

    if not is_keras_config(model):
        raise InputFormatError(not_a_config_message(model))
    malformed = [f"{base}/{i}" for i, lay in
                 enumerate(model["config"]["layers"])
                 if not isinstance(lay, dict) or not isinstance(lay.get("config", {}), dict)]
    if malformed:  # each layer is {class_name, config: {...}}; anything else is not a Keras file
        raise InputFormatError("not a Keras model config: these layers are not an object with a "
                               "`config` object: " + ", ".join(malformed[:20]))
    check_config_sizes(model)  # the translation int()s sizes: Infinity raised, 64.7 and true coerced
    tr = _Translator(stored, keras3_names(model), draws)
    cfg = model["config"]
    stood, refused = _stand_ins(model)  # Lambda layers: a stand-in from their shapes, or refused
    unsupported = [(str(lay.get("class_name")), str((lay.get("config") or {}).get("name", "?")))
                   for lay in cfg["layers"] if lay.get("class_name") not in SUPPORTED
                   and not (lay.get("class_name") == "Lambda"
                            and str(lay.get("name") or (lay.get("config") or {}).get("name")) in stood)]
    if unsupported:
        raise ModelError(unsupported_message(unsupported, refused, SUPPORTED, nested=False))
    items: list[Any] = (list(cfg["layers"]) if model["class_name"] == "Sequential"
                        else _sequential_order(model, tr, {n for n, (kind, _) in stood.items() if kind in ("sum", "assumed_sum")}))
    shape = _input_shape([i for i in items if isinstance(i, dict)], cfg)
    if shape is None:
        tr.fail("input", "the config has no input shape (build the model or give it an Input); give one "
                         "sample's sizes with --input-shape input=<sizes> (e.g. --input-shape input=784 for "
                         "784 features; `input_shapes` over HTTP)")
    elif any(not isinstance(d, int) or d < 1 for d in shape):
        tr.fail("input", f"dynamic dimensions in the input shape {shape} are not supported; "
                         "give the model a fixed input shape or the sizes to use (--input-shape input=32x41; `input_shapes` over HTTP)")
    index = {id(lay): i for i, lay in enumerate(cfg["layers"])}  # a layer's place in the file
    first = _first_kind(items)
    layout = ("tokens" if first == "Embedding" else "image" if shape and len(shape) == 3
              else "channels" if shape and len(shape) == 2 and first == "Conv1D"
              else "sequence" if shape and len(shape) == 2 else "vector")

    def translate(seq: list[Any], layout: str) -> tuple[list[dict[str, Any]], str]:
        out: list[dict[str, Any]] = []
        for item in seq:
            if isinstance(item, list):
                body, layout = translate(item[1], layout)
                if body:
                    out.append({"type": "residual", "layers": body})
                else:  # no layers, or identities only: x + x, which no spec layer is
                    tr.fail(str(item[2]), "Add of x and x (a branch of no layers, or of identity "
                                          "layers only) is not supported")
                continue
            cls = item.get("class_name")
            if cls == "InputLayer":
                continue
            made = tr.layer(str(cls), item.get("config") or {}, layout)
            tr.on_input = False
            for lay in made:  # which Keras layer each spec layer is (names, stored weights, refusals)
                lay["_keras"] = Origin(str((item.get("config") or {}).get("name", cls)), str(cls),
                                       item.get("config") or {}, layout,
                                       f"{base}/{index[id(item)]}" if id(item) in index else base)
            out.extend(made)
            layout = _layout(str(cls), item.get("config") or {}, layout)
        return out, layout

    layers, _ = translate(items, layout)
    spec_loss = _fold_output(layers, loss, tr)
    for lay in _walk(layers):
        if lay.get("activation") == "softmax":
            tr.fail("softmax", "softmax is supported on the output layer only")
    if tr.problems:
        raise ModelError("cannot translate the Keras model: " + "; ".join(tr.problems))
    spec: dict[str, Any] = {"name": cfg.get("name"), "layers": layers, "seeds": seeds,
                            "batch_size": batch_size, "loss": spec_loss}
    if optimizer is not None:
        spec["optimizer"] = optimizer
    origins: Origins = {}

    def strip(seq: list[dict[str, Any]], prefix: str) -> None:
        for i, lay in enumerate(seq):
            if "_keras" in lay:
                origins[f"{prefix}/layers/{i}"] = lay.pop("_keras")
            strip(lay.get("layers", []), f"{prefix}/layers/{i}")

    strip(layers, "")
    vocab = [lay.pop("_vocab") for lay in _walk(layers) if "_vocab" in lay]
    if vocab:
        spec["input"] = {"tokens": {"vocab_size": vocab[0], "seq_len": shape[0] if shape else 1}}
    elif shape and layout in ("channels", "image"):
        spec["input"] = {"shape": [shape[-1], *shape[:-1]]}  # channels-last -> channels-first
    else:
        spec["input"] = {"shape": shape}
    _input_origins(spec, origins, _input_origin([i for i in items if isinstance(i, dict)], cfg, base, index),
                   channels_first=layout in ("channels", "image"))
    return spec, origins


def _input_origins(spec: dict[str, Any], origins: Origins, found: tuple[str, str, str] | None, *,
                   channels_first: bool) -> None:
    """Add to ``origins`` where each of the spec's input sizes is in the Keras file: the spec's
    ``/input/shape/i`` is the Keras shape's entry i + 1 (after the batch size), channels-first
    from channels-last for a convolution's input; ``/input/tokens/seq_len`` is entry 1, and the
    vocabulary the Embedding's ``input_dim``."""
    tokens = spec["input"].get("tokens")
    if tokens is not None:
        embedding = next((o for o in origins.values() if o.cls == "Embedding"), None)
        if embedding is not None:
            origins["/input/tokens/vocab_size"] = embedding._replace(
                where=f"{embedding.where}/config/input_dim", exact=True)
    if found is None:
        return
    where, name, cls = found
    whole = Origin(name, cls, {}, "", where, exact=True)
    origins["/input"] = whole
    if tokens is not None:
        origins["/input/tokens/seq_len"] = whole._replace(where=f"{where}/1")
        return
    shape = spec["input"].get("shape") or []
    origins["/input/shape"] = whole
    for i in range(len(shape)):
        keras = (len(shape) if i == 0 else i) if channels_first else i + 1  # [C, H, W] <- [H, W, C]
        origins[f"/input/shape/{i}"] = whole._replace(where=f"{where}/{keras}")


def _first_kind(items: list[Any]) -> str:
    """The class of the first layer that decides how the input is read (past identities)."""
    for item in items:
        if isinstance(item, dict) and item.get("class_name") not in (*_SKIPPED, *_DROPOUTS):
            return str(item.get("class_name"))
    return ""


def _walk(layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for lay in layers:
        out.append(lay)
        out.extend(_walk(lay.get("layers", [])))
    return out


#: Spec layers that pass the values before them on with their meaning unchanged (their shape or
#: their training-time noise aside): what ends a model after its output activation and leaves that
#: activation the output's (a Keras ``Dense(1)`` -> ``Activation('sigmoid')`` -> ``Dropout``).
_PASS_ON_TYPES = ("dropout", "flatten")


#: Keras layers that pass their input's values on with their meaning unchanged (their shape or
#: training-time noise aside): an output activation before them is still the output's.
_PASS_ON_CLASSES = ("Reshape", "Flatten", *_DROPOUTS, *_SKIPPED)


def passes_values(cls: str, cfg: dict[str, Any]) -> bool:
    """Whether a Keras layer of class ``cls`` (config ``cfg``) passes its input's values on with
    their meaning unchanged: a Reshape, Flatten, Dropout (any kind), an identity (Identity, noise,
    masking), an Activation whose activation is linear. The loss a model implies is read from
    the activation before such layers (:func:`output_head` for the spec door)."""
    if cls == "Activation":
        try:
            return activation_key(cfg.get("activation")) == "linear"
        except ValueError:  # refused by either door, naming the value
            return False
    return cls in _PASS_ON_CLASSES


def _passes_on(layer: dict[str, Any]) -> bool:
    """Whether spec ``layer`` passes its input's values on with their meaning unchanged (a dropout,
    a flatten, an identity activation: :data:`_PASS_ON_TYPES`)."""
    return layer.get("type") in _PASS_ON_TYPES or (layer.get("type") == "activation"
                                                   and layer.get("activation") in (None, "identity"))


def _width(layer: dict[str, Any]) -> Any:
    return layer.get("out_features") or layer.get("hidden_size") or layer.get("out_channels")


def output_head(layers: list[dict[str, Any]]) -> tuple[int, Any]:
    """(the index of the layer whose activation makes a spec's output, the output's width where the
    layers say it): the last layer, or the last before layers that pass its values on unchanged in
    meaning (:func:`_passes_on`). A standalone activation layer's width is the layer's it squashes,
    through elementwise layers (activations, dropouts). A flatten after a convolution's squash
    makes its channels part of a longer row: not looked through (the squash is then no longer over
    the output's last axis)."""
    head = len(layers) - 1
    while head > 0 and _passes_on(layers[head]):
        head -= 1
    k = head
    while k > 0 and _width(layers[k]) is None and layers[k].get("type") in ("activation", "dropout"):
        k -= 1
    width = _width(layers[k]) if layers else None
    flattened = any(lay.get("type") == "flatten" for lay in layers[head + 1:])
    if flattened and layers and "out_channels" in layers[k]:
        return len(layers) - 1, None
    return head, width


def _fold_output(layers: list[dict[str, Any]], loss: str | dict[str, Any] | None,
                 tr: _Translator) -> str | dict[str, Any]:
    """The loss of the model, with the output's softmax/sigmoid folded into it. A loss Keras
    computes on probabilities (``from_logits: false``) stays so only where there is no such
    activation to fold: the output is then not probabilities, which the check measures. The
    output's activation is the last one before layers that pass values on (:func:`output_head`:
    ``Dense(1)`` then ``Activation('sigmoid')`` implies binary cross-entropy, as
    ``Dense(1, activation='sigmoid')`` does)."""
    at, width = output_head(layers)
    last = layers[at] if layers else {}
    act = last.get("activation")
    kind = loss_type(loss)
    if kind is None:
        kind = loss = ("cross_entropy" if act == "softmax" else
                       "binary_cross_entropy" if act == "sigmoid" and width == 1 else "mse")
    if act == "softmax" and kind == "cross_entropy" or act == "sigmoid" and kind == "binary_cross_entropy":
        if isinstance(loss, dict) and loss.get("from_logits") is True:
            # the spec folds the activation into the loss and has no way to say it runs twice
            tr.fail("output", f"{act} output under a loss compiled on logits (from_logits=True)")
            return kind
        if last.get("type") == "activation":
            layers.pop(at)
            below = layers[at - 1].get("activation") if at > 0 else None
            if below in ("softmax", "sigmoid"):
                # a second squash over one: the spec would read the first as the output's own under
                # a loss on logits; the graph door names both layers and the loss the file compiled
                tr.fail("output", f"{act} layer over a {below} output")
        else:
            last["activation"] = "identity"
        return kind
    if act == "softmax":
        tr.fail("output", f"softmax output with loss {kind} is not supported")
    return loss if loss is not None else kind


# --- stored weights ------------------------------------------------------------------------------

#: The largest weights file read from a ``.keras`` archive (the plan's parameter limit refuses far
#: smaller models; this only bounds what is decompressed before the plan is made).
MAX_WEIGHTS_BYTES = 1 << 30
Weights = dict[str, list[np.ndarray]]


class StoredWeights(dict[str, list[np.ndarray]]):
    """:data:`Weights` as :func:`read_keras_weights` reads them, with ``looked``: by the name of a
    layer the file gives no arrays for, where they were looked for and what the file has there."""

    looked: dict[str, str] = {}  # noqa: RUF012  (replaced per instance, never mutated)


def no_weights(weights: Weights, name: str, default: str = "the file stores no weights for this layer") -> str:
    """Why layer ``name`` has no weights in ``weights``: what the file holds where they were looked
    for, where :func:`read_keras_weights` found arrays there under other names; else ``default``
    (the file stores none for it: no group, or one that holds nothing)."""
    return str(getattr(weights, "looked", {}).get(name) or default)


def _snake(name: str) -> str:
    """keras.src.utils.naming.to_snake_case: how Keras 3 names a layer's group in .weights.h5."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


#: numpy dtype kinds a stored weight may have: float, signed and unsigned integer, bool (Keras 3
#: stores a seed generator's state as integers); read as float64 when loaded.
_NUMERIC_KINDS = "fiub"


def _h5_path(prefix: str, obj: Any) -> str:
    """Where ``obj`` is, for a refusal: its HDF5 path, after the archive entry it is in."""
    return f"{prefix}{obj.name}"


def _refuse(where: str, what: str) -> InputFormatError:
    return InputFormatError(f"{where}: {what}", [Problem(where, what)])


class _PathGroup:
    """A group of a ``model.weights.h5`` saved by Keras on Windows, rebuilt from its paths: there
    the saving library joins an object's path with ``\\`` (``os.path.join``) and HDF5 splits only
    on ``/``, so an LSTM's cell is the top-level group ``_layer_checkpoint_dependencies\\lstm\\cell``
    (its ``vars`` under ``/``), a sibling of ``..\\lstm``, not inside it. The groups of this tree
    are the paths' parts with either separator; the datasets are the file's own (their names, the
    file's, still say where they are). It answers what the readers ask of an h5py group."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.children: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.children.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.children

    def __iter__(self) -> Iterator[str]:
        return iter(self.children)

    def __getitem__(self, key: str) -> Any:
        return self.children[key]


def _split_paths(f: Any, prefix: str) -> Any:
    """``f``, or where any of its names holds a ``\\`` (a file saved on Windows, in part or whole:
    a path the saving library joined with ``\\``), a :class:`_PathGroup` tree of it with both
    ``\\`` and ``/`` read as separators, so a layer's groups are found the same way wherever the
    file was saved (its RNN's ``cell``, a Bidirectional's ``forward_layer``, a nested model's layers)."""
    import h5py

    names: list[tuple[str, Any]] = []
    f.visititems(lambda n, obj: names.append((n, obj)) if isinstance(obj, h5py.Dataset) else None)
    if not any("\\" in n for n, _ in names):
        return f
    root = _PathGroup("/")
    for path, obj in names:
        *parents, leaf = [p for p in re.split(r"[\\/]", path) if p]
        node: Any = root
        for part in parents:
            child = node.children.get(part)
            if child is None:
                child = node.children[part] = _PathGroup(f"{node.name.rstrip('/')}/{part}")
            if not isinstance(child, _PathGroup):  # a dataset where the path needs a group
                raise _refuse(f"{prefix}/{path}", "a weight array where another array's path has a group "
                                    f"({node.name.rstrip('/')}/{part})")
            node = child
        if leaf in node.children:  # a\\b/0 and a/b/0: the same place named twice
            raise _refuse(f"{prefix}/{path}", f"a second array at {node.name.rstrip('/')}/{leaf} (the file names "
                                "it with both separators)")
        node.children[leaf] = obj
    return root


def _is_group(obj: Any) -> bool:
    import h5py

    return isinstance(obj, h5py.Group | _PathGroup)


def _group(obj: Any, prefix: str, role: str) -> Any:
    """``obj`` when it is an HDF5 group, else an :class:`InputFormatError` naming its path."""
    if not _is_group(obj):
        raise _refuse(_h5_path(prefix, obj), f"a dataset where a group is expected ({role})")
    return obj


def _dataset(obj: Any, prefix: str) -> Any:
    """``obj`` when it is a weight array: an HDF5 dataset of numbers with a dataspace (nothing of
    it is read); else an :class:`InputFormatError` naming its path and what it is."""
    import h5py

    where = _h5_path(prefix, obj)
    if not isinstance(obj, h5py.Dataset):
        raise _refuse(where, "a group, not a weight array (a dataset of numbers)")
    dtype = obj.dtype
    if dtype.kind not in _NUMERIC_KINDS:
        kind = ("a string dataset" if dtype.kind in "SUO" or h5py.check_string_dtype(dtype) is not None
                else "a compound (record) dataset" if dtype.names else f"a dataset of type {dtype}")
        raise _refuse(where, f"{kind}, not a number array")
    if obj.shape is None:
        raise _refuse(where, "an empty dataset (a null dataspace), not a weight array")
    return obj


def _attr_list(obj: Any, name: str, prefix: str = "") -> list[str]:
    """A list attribute as Keras writes it: whole, or split over ``name0``, ``name1``... when it
    is over HDF5's 64 kB attribute limit (keras' save_attributes_to_hdf5_group). Anything else
    (a number, a lone string, a list of numbers) is an :class:`InputFormatError` naming it."""
    import h5py

    keys = [name] if name in obj.attrs else []
    while not keys or keys[0] != name:  # name0, name1, ... while there are such
        if f"{name}{len(keys)}" not in obj.attrs:
            break
        keys.append(f"{name}{len(keys)}")
    names: list[str] = []
    for key in keys:
        value = obj.attrs[key]
        if isinstance(value, h5py.Empty):  # an empty list, as h5py may store one
            continue
        where = f"{_h5_path(prefix, obj)} attribute {key}"
        if not isinstance(value, np.ndarray) or value.ndim != 1:
            what = (f"an array of shape {list(value.shape)}" if isinstance(value, np.ndarray)
                    else "a single string" if isinstance(value, bytes | str)
                    else f"a number ({str(value)[:40]})" if isinstance(value, int | float | np.number)
                    else f"a {type(value).__name__}")
            raise _refuse(where, f"{what}, not a list of names")
        for item in value.tolist():
            if not isinstance(item, bytes | str):
                raise _refuse(where, f"holds {str(item)[:40]!r}, not a name (a string)")
            names.append(item.decode(errors="replace") if isinstance(item, bytes) else item)
    return names


#: The layers' datasets a file stores, by layer name, in ``layer.weights`` order (nothing read yet).
_Found = dict[str, list[Any]]


def _arrays_keras3(group: Any, prefix: str) -> list[Any]:
    """A Keras 3 layer group's variables in ``layer.weights`` order: its own ``vars/0, 1, ...``
    then its sub-objects' (an RNN's ``cell``; a Bidirectional's forward, then backward layer)."""
    out: list[Any] = []
    own = group.get("vars")
    if own is not None:
        own = _group(own, prefix, "a layer's variables")
        out += [_dataset(own[k], prefix) for k in sorted(own, key=lambda k: int(k) if k.isdigit() else -1)]
    # an RNN's cell; a Bidirectional's directions; a MultiHeadAttention's projections in order
    # (tf.keras 2.13/2.14 name them by their private attributes: _query_dense...)
    first = ("cell", "forward_layer", "backward_layer", "query_dense", "key_dense", "value_dense",
             "output_dense", "_query_dense", "_key_dense", "_value_dense", "_output_dense")
    rest = [k for k in first if k in group] + sorted(k for k in group if k not in first and k != "vars")
    for key in rest:
        if _is_group(group[key]):
            out += _arrays_keras3(group[key], prefix)
    return out


def _held(group: Any, limit: int = 6) -> list[str]:
    """The names of the arrays under ``group``, relative to it (a few), for a refusal that says
    what the file has where a layer's weights were looked for."""
    out: list[str] = []
    stack: list[tuple[str, Any]] = [("", group)]
    while stack and len(out) <= limit:
        path, node = stack.pop()
        groups = []
        for key in sorted(node):
            child = node[key]
            if _is_group(child):
                groups.append((f"{path}{key}/", child))
            else:
                out.append(f"{path}{key}")
        stack.extend(reversed(groups))  # the first group's next, in name order
    return out


def _look(looked: dict[str, str] | None, name: str, prefix: str, parent: Any, key: str, group: Any) -> None:
    """Record in ``looked`` what the file has where layer ``name``'s weights were looked for
    (``key`` under ``parent``) when it gave no array for it but holds others there. (A group that
    holds nothing, or none at all: the file does store no weights for the layer.)"""
    if looked is None or group is None:
        return
    held = _held(group)
    if held:
        looked[name] = (f"no weights found for this layer where Keras keeps them (vars/0, vars/1...: a "
                        f"layer's, or its cell's, forward_layer's...) under {prefix}{parent.name.rstrip('/')}/{key}; "
                        f"it holds {', '.join(held[:6])}" + (" ..." if len(held) > 6 else ""))


def _weights_keras3(f: Any, config: dict[str, Any], prefix: str, looked: dict[str, str] | None = None) -> _Found:
    """``model.weights.h5`` of a Keras 3 ``.keras`` archive: ``layers/<snake_case class>[_k]/vars/i``
    (Keras 3 addresses a layer by its class and position, not its name)."""
    # saved on Windows (Keras 2.15's .keras): the top-level names are "layers\\conv2d", one
    # group each, with "/" only below them
    layers = _layer_groups(f, "layers", prefix)
    if layers is None:
        return {}
    out: _Found = {}
    used: dict[str, int] = {}
    cfg = config.get("config") if isinstance(config, dict) else None
    for lay in (cfg.get("layers") if isinstance(cfg, dict) else None) or []:
        if not isinstance(lay, dict):
            continue
        cls = str(lay.get("class_name", ""))
        name = str((lay.get("config") or {}).get("name", cls))
        key = _snake(cls)
        used[key] = used.get(key, -1) + 1
        key = key if used[key] == 0 else f"{key}_{used[key]}"
        group = layers.get(key) if key in layers else layers.get(name)
        if group is None:
            continue
        group = _group(group, prefix, f"layer {name}")
        if cls in ("Sequential", "Functional", "Model") and isinstance(lay.get("config"), dict):
            out.update(_weights_keras3(group, {"config": lay["config"]}, prefix, looked))  # by its own layers
            continue
        arrays = _arrays_keras3(group, prefix)
        if arrays:
            out[name] = arrays
        else:
            _look(looked, name, prefix, layers, key if key in layers else name, group)
    return out


#: Where tf.keras 2.13 (and keras 2.14) ``.keras`` archives keep the model's layers in
#: ``model.weights.h5``: the ``Functional._layer_checkpoint_dependencies`` attribute that its
#: saving_lib walked first, not Keras 3's ``layers``.
_TF213_LAYERS = "_layer_checkpoint_dependencies"


def _layer_groups(f: Any, top: str, prefix: str) -> Any:
    """The group ``top`` of ``f`` holding one group per layer (an archive saved on Windows, whose
    top-level groups are named ``top\\<layer>``, read through :func:`_split_paths`); None where
    there is none."""
    layers = f.get(top)
    return None if layers is None else _group(layers, prefix, "the model's layers")


def _weights_tf213(f: Any, config: dict[str, Any], prefix: str, looked: dict[str, str] | None = None) -> _Found:
    """``model.weights.h5`` of a tf.keras 2.13 / keras 2.14 ``.keras`` archive:
    ``_layer_checkpoint_dependencies/<snake_case class>[_k]/vars/i`` (an LSTM's under ``.../cell``).

    That saving_lib named the layers of ``model._layer_checkpoint_dependencies``, a dict that lists
    a layer with weights twice (``layer_with_weights-i`` and ``layer-j``) and one without once; the
    second listing takes a name (``dense_1``) but saves nothing, as the layer was already saved. So
    a model's Dense layers are ``dense``, ``dense_2``, ``dense_4``... where a weightless Dropout
    takes one name. Every layer saves exactly one group (an empty ``vars`` for a weightless one),
    so the k-th group of a class, by its index, is the k-th layer of that class in the config:
    read that way, the file itself says which gaps there are."""
    layers = _layer_groups(f, _TF213_LAYERS, prefix)
    if layers is None:
        return {}
    out: _Found = {}
    seen: dict[str, int] = {}
    cfg = config.get("config") if isinstance(config, dict) else None
    for lay in (cfg.get("layers") if isinstance(cfg, dict) else None) or []:
        if not isinstance(lay, dict):
            continue
        cls = str(lay.get("class_name", ""))
        if cls == "InputLayer":  # a Sequential's model.layers leaves it out; it has no weights either way
            continue
        name = str((lay.get("config") or {}).get("name", cls))
        key = _snake(cls)
        # the groups of this class: "dense" (index 0) and "dense_<k>", in index order
        groups = sorted((0 if g == key else int(g[len(key) + 1:]), g) for g in layers
                        if g == key or g.startswith(key + "_") and g[len(key) + 1:].isdigit())
        k = seen.get(key, 0)
        seen[key] = k + 1
        if k >= len(groups):
            continue
        group = _group(layers[groups[k][1]], prefix, f"layer {name}")
        if cls in ("Sequential", "Functional", "Model") and isinstance(lay.get("config"), dict):
            out.update(_weights_tf213(group, {"config": lay["config"]}, prefix, looked))  # by its own layers
            continue
        arrays = _arrays_keras3(group, prefix)
        if arrays:
            out[name] = arrays
        else:
            _look(looked, name, prefix, layers, groups[k][1], group)
    return out


def _weights_keras2(f: Any, prefix: str, looked: dict[str, str] | None = None) -> _Found:
    """A Keras 2 ``.h5`` (``model.save``: group ``model_weights``; ``save_weights``: the root): each
    layer group lists its weights in order in ``weight_names`` (``dense/kernel:0``), paths inside
    the group (``model_weights/dense/dense/kernel:0``)."""
    root = _group(f.get("model_weights", f), prefix, "the model's weights")
    out: _Found = {}
    for name in _attr_list(root, "layer_names", prefix):
        group = root.get(name)
        if group is None:
            continue
        group = _group(group, prefix, f"layer {name}, named in layer_names")
        listed = _attr_list(group, "weight_names", prefix)
        read = [(n, _dataset(group[n], prefix)) for n in listed if n in group]
        if read:
            out[name] = [array for _, array in read]
        elif looked is not None and (held := _held(group)):
            looked[name] = (f"no weights found for this layer: {prefix}{group.name} holds {', '.join(held[:6])}" + (" ..." if len(held) > 6 else "")
                            + (f", but its weight_names lists {', '.join(listed[:6])}" if listed
                               else ", but its weight_names lists none"))
        for n, array in read:  # a nested model's are its layers': inner/kernel:0, outer/inner/kernel
            inner = n.split("/")[-2] if "/" in n else name
            if inner != name:
                out.setdefault(inner, []).append(array)
    return out


def _class_entries(value: Any) -> Iterator[dict[str, Any]]:
    """Every ``{"class_name": ..., "config": {...}}`` in ``value``, depth first, nested models'
    layers and wrapped layers too (the config's own depth is bounded when it is read)."""
    if isinstance(value, list):
        for v in value:
            yield from _class_entries(v)
    elif isinstance(value, dict):
        if "class_name" in value and isinstance(value.get("config"), dict):
            yield value
        for v in value.values():
            yield from _class_entries(v)


def _layer_configs(config: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every layer of ``config`` (nested models' too) by name: ``(class, config)``; a name given
    to layers of different configs is left out (which one a weight group is cannot be told)."""
    found: dict[str, tuple[str, dict[str, Any]] | None] = {}
    for entry in _class_entries(config):
        cfg = entry["config"]
        if isinstance(entry["class_name"], str) and "name" in cfg:
            name, mine = str(cfg["name"]), (entry["class_name"], cfg)
            found[name] = mine if found.get(name, mine) == mine else None
    return {k: v for k, v in found.items() if v is not None}


#: The dims of one stored array as a layer's config fixes them (None: not known from the config
#: alone, such as a Dense kernel's input size), and how the loader transposes it into torch's
#: layout (``"T"``: reversed; ``"conv"``: [out, in, k...]; ``""``: unchanged), so a refusal shows
#: the shapes as :func:`_load_weights` does.
class _Want(NamedTuple):
    dims: tuple[int | None, ...] | None  # None: any shape
    layout: str = ""


def _size(value: Any) -> int | None:
    """A positive integer size from a config, else None (unknown: checked with the config)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _expected(cls: str, cfg: dict[str, Any]) -> list[_Want] | None:
    """The arrays a layer of class ``cls`` stores, in order, as far as its config fixes their
    shapes; None for a class whose arrays are not checked here (the loaders check them)."""
    if cls == "Dense":
        units = _size(cfg.get("units"))
        return [_Want((None, units), "T")] + ([_Want((units,))] if cfg.get("use_bias", True) else [])
    if cls in ("Conv1D", "Conv2D"):
        rank = 1 if cls == "Conv1D" else 2
        k = cfg.get("kernel_size")
        ks = [k] * rank if isinstance(k, int) else list(k) if isinstance(k, list | tuple) else [None] * rank
        filters = _size(cfg.get("filters"))
        kernel = tuple(_size(v) for v in ks) if len(ks) == rank else (None,) * rank
        return [_Want((*kernel, None, filters), "conv")] + ([_Want((filters,))] if cfg.get("use_bias", True) else [])
    if cls == "Embedding":
        return [_Want((_size(cfg.get("input_dim")), _size(cfg.get("output_dim"))))]
    if cls in ("SimpleRNN", "LSTM", "GRU"):
        units = _size(cfg.get("units"))
        width = units * {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[cls] if units is not None else None
        bias = (_Want((2, width)) if cls == "GRU" and cfg.get("reset_after") is True else
                _Want(None) if cls == "GRU" and "reset_after" not in cfg else _Want((width,)))
        return [_Want((None, width), "T"), _Want((units, width), "T")] + ([bias] if cfg.get("use_bias", True) else [])
    if cls == "Bidirectional":
        inner = cfg.get("layer")
        if isinstance(inner, dict) and isinstance(inner.get("config"), dict):
            one = _expected(str(inner.get("class_name")), inner["config"])
            return None if one is None else one + one
    return None


def _torch_shape(shape: tuple[int | None, ...], layout: str) -> tuple[int | None, ...]:
    if layout == "T":
        return shape[::-1]
    if layout == "conv" and len(shape) >= 2:
        return (shape[-1], shape[-2], *shape[:-2])
    return shape


def _shape_problem(ds: Any, want: _Want) -> str | None:
    """How the dataset's declared shape differs from ``want`` (its metadata only), or None."""
    shape = tuple(int(d) for d in ds.shape)
    if want.dims is None:
        return None
    if len(shape) == len(want.dims) and all(w is None or w == d for d, w in zip(shape, want.dims, strict=True)):
        return None
    # in torch's layout, as _load_weights words a mismatch it finds after reading
    built = ["?" if d is None else d for d in _torch_shape(want.dims, want.layout)]
    stored = list(_torch_shape(shape, want.layout)) if len(shape) == len(want.dims) else list(shape)
    return f"stored weight of shape {stored} where the config builds [{', '.join(map(str, built))}]"


def _read_found(found: _Found, config: dict[str, Any], limits: Any, prefix: str) -> Weights:
    """The arrays of ``found``, read only once every dataset's metadata passed: its declared shape
    against the shape its layer's config implies (a [200000, 200000] kernel where the config
    builds [8, 4] is a :class:`ModelError`, not 160 GB read), each dataset's and all datasets'
    element counts against ``limits.max_parameters`` and their bytes against
    :data:`MAX_WEIGHTS_BYTES` (:class:`LimitExceeded`). A gzip-compressed dataset of a declared
    shape is a few hundred bytes in the file whatever its size: the file's size bounds nothing."""
    layers = _layer_configs(config)
    problems: list[Problem] = []
    sizes: dict[str, tuple[int, int]] = {}  # path -> (elements, bytes): a nested model's arrays twice
    for name, datasets in found.items():
        cls, cfg = layers.get(name, ("", {}))
        for ds, want in zip(datasets, _expected(cls, cfg) or [], strict=False):
            why = _shape_problem(ds, want)
            if why is not None:
                problems.append(Problem(_h5_path(prefix, ds), f"{name}: {why} (at {_h5_path(prefix, ds)})"))
    if problems:  # the most specific refusal first: the config says what each array must be
        raise ModelError("the stored weights do not fit the config: " + "; ".join(p.message for p in problems[:20])
                         + (f"; and {len(problems) - 20} more" if len(problems) > 20 else ""), problems)
    for name, datasets in found.items():
        for ds in datasets:
            count = math.prod(int(d) for d in ds.shape)  # exact: numpy's int64 product can wrap
            sizes[ds.name] = (count, count * ds.dtype.itemsize)
            if count > limits.max_parameters:
                raise LimitExceeded(
                    f"{_h5_path(prefix, ds)} (layer {name}) declares {count:,} values "
                    f"(shape {[int(d) for d in ds.shape]}); the limit is {limits.max_parameters:,} parameters "
                    "(GRADHEALTH_LIMITS__MAX_PARAMETERS)",
                    [Problem(_h5_path(prefix, ds), f"{count:,} values over the parameter limit")])
    total, nbytes = sum(c for c, _ in sizes.values()), sum(b for _, b in sizes.values())
    if total > limits.max_parameters:
        raise LimitExceeded(f"the stored weights declare {total:,} values in {len(sizes):,} arrays; the limit is "
                            f"{limits.max_parameters:,} parameters (GRADHEALTH_LIMITS__MAX_PARAMETERS)")
    if nbytes > MAX_WEIGHTS_BYTES:
        raise LimitExceeded(f"the stored weights declare {nbytes:,} bytes; the limit is "
                            f"{MAX_WEIGHTS_BYTES:,} bytes")
    read: dict[str, np.ndarray] = {}
    out: Weights = {}
    for name, datasets in found.items():
        for ds in datasets:
            if ds.name not in read:
                try:
                    read[ds.name] = np.asarray(ds[()])
                except (OSError, ValueError, TypeError) as exc:  # a corrupt chunk, a filter h5py lacks
                    raise _refuse(_h5_path(prefix, ds), f"cannot be read: {str(exc)[:200]}") from None
            out.setdefault(name, []).append(read[ds.name])
    return out


def read_keras_weights(data: bytes, config: dict[str, Any], limits: Any = None) -> Weights | None:
    """The weights a Keras file stores, by layer name in ``layer.weights`` order (kernel, bias;
    gamma, beta, moving mean, moving variance; kernel, recurrent kernel, bias...), read with h5py
    only; None when the file stores none (a JSON config, an archive without weights).

    The file's structure is checked as it is walked (attributes that are lists of names, groups
    that are groups, weights that are datasets of numbers: :class:`InputFormatError` naming the
    HDF5 path) and every dataset's declared shape and size before any is read
    (:func:`_read_found`, against ``limits``: the service's when None)."""
    if limits is None:
        from gradhealth.settings import get_settings

        limits = get_settings().limits
    with _stored_datasets(data, config) as (found, prefix, looked):
        if not found:
            return None
        out = StoredWeights(_read_found(found, config, limits, prefix))
        out.looked = looked
        return out


def stores_weights(data: bytes, config: dict[str, Any]) -> bool:
    """Whether the Keras file ``data`` stores weights for ``config``'s layers (:func:`read_keras_weights`
    would return some), its structure checked as there but no dataset read."""
    with _stored_datasets(data, config) as (found, _, _):
        return bool(found)


def _keras1_file(f: Any, config: dict[str, Any]) -> bool:
    """Whether the open .h5 file ``f`` was saved by Keras 1 (its ``keras_version`` attribute, or
    the config's)."""
    version = f.attrs.get("keras_version", config.get("keras_version") if isinstance(config, dict) else None)
    if isinstance(version, bytes):
        version = version.decode(errors="replace")
    return isinstance(version, str) and version.split(".")[0] == "1"


def _keras1_found(found: _Found, config: dict[str, Any]) -> _Found:
    """A Keras 1 file's datasets as Keras 2 stores them for the converted config
    (:func:`.keras_legacy.keras1_weight_arrays`: an LSTM's twelve gate arrays joined into three, a
    Convolution1D kernel's unit axis dropped...), still unread, so they are checked as Keras 2's are."""
    from gradhealth.analysis.importers.keras_legacy import keras1_weight_arrays

    layers = _layer_configs(modern_config(config))
    return {name: keras1_weight_arrays(*layers.get(name, ("", {})), datasets) for name, datasets in found.items()}


def _cudnn_found(found: _Found, config: dict[str, Any]) -> _Found:
    """A CuDNNLSTM's or CuDNNGRU's datasets (Keras 2.1-2.3, tf.keras 1) as the LSTM/GRU it is read
    as stores them (:func:`.keras_legacy.cudnn_weight_arrays`), still unread."""
    from gradhealth.analysis.importers.keras_legacy import cudnn_weight_arrays

    layers = _layer_configs(modern_config(config))
    if not any(cfg.get("_cudnn") or "_cudnn" in str(cfg.get("layer", "")) for _, cfg in layers.values()):
        return found
    return {name: cudnn_weight_arrays(*layers.get(name, ("", {})), datasets) for name, datasets in found.items()}


@contextmanager
def _stored_datasets(data: bytes, config: dict[str, Any]) -> Iterator[tuple[_Found, str, dict[str, str]]]:
    """The weight datasets of the Keras file ``data`` by layer (nothing read), with the prefix that
    names the file they are in and, by layer, where the file was looked in for a layer it gives no
    arrays for and what it has there, while the HDF5 file is open; an empty dict where it stores none."""
    looked: dict[str, str] = {}
    import h5py

    kind = sniff_keras(data[:4096])
    if kind == "h5":
        try:
            with _open_h5(data, "the .h5 file") as f:
                found = _weights_keras2(f, "", looked)
                if _keras1_file(f, config):
                    found = _keras1_found(found, config)
                found = _cudnn_found(found, config)
                yield found, "", looked
        except (OSError, KeyError, ValueError) as exc:
            raise InputFormatError(f"the .h5 weights cannot be read: {str(exc)[:200]}") from None
        return
    if kind != "keras":
        yield {}, "", looked
        return
    with _open_archive(data) as zf:
        try:
            info = zf.getinfo("model.weights.h5")
        except KeyError:
            info = None
        if info is not None and info.file_size > MAX_WEIGHTS_BYTES:
            raise InputFormatError(f"model.weights.h5 is over {MAX_WEIGHTS_BYTES // 2**20} MB")
        blob = _member(zf, info, MAX_WEIGHTS_BYTES + 1) if info is not None else b""
    if not blob:
        yield {}, "", looked
        return
    prefix = "model.weights.h5:"
    try:
        with _open_h5(blob, "model.weights.h5") as f:
            tree = _split_paths(f, prefix)  # saved on Windows: "\\" as a separator too
            found = (_weights_keras3(tree, config, prefix, looked) or _weights_tf213(tree, config, prefix, looked)
                     or _weights_keras2(f, prefix, looked))
            arrays: list[str] = []
            f.visititems(lambda n, obj: arrays.append(n) if isinstance(obj, h5py.Dataset) else None)
            # the compiled metrics' and the optimizer's state are no layer's: not counted nor shown
            arrays = [a for a in arrays if not a.startswith(("metrics", "optimizer"))]
            if not found and arrays:
                # weights that are there but match no layer must not quietly become an initialised
                # network; weights: reinitialise reads none of them (check_keras)
                shown = ", ".join(arrays[:4]) + (" ..." if len(arrays) > 4 else "")
                raise InputFormatError(f"model.weights.h5 stores {len(arrays)} arrays ({shown}) that match no "
                                       "layer of the model's config; check the architecture alone with "
                                       "weights: reinitialise")
            yield found, prefix, looked
    except (OSError, KeyError, ValueError) as exc:
        raise InputFormatError(f"model.weights.h5 cannot be read: {str(exc)[:200]}") from None


def _flatten_permutation(shape: tuple[int, ...]) -> np.ndarray:
    """For a channels-first shape (C, ...): perm[i] = the Keras (channels-last) flat index of the
    element torch's flatten puts at i. A Dense after Flatten reads its kernel rows through it."""
    c, rest = shape[0], shape[1:]
    # exact Python integers: numpy's int64 product of untrusted sizes wraps ([2**32, 2**32] -> 0)
    keras_order = np.arange(math.prod(int(d) for d in shape)).reshape(*rest, c)
    return keras_order.transpose(len(rest), *range(len(rest))).reshape(-1)


def _load_weights(net: Any, origins: Origins, weights: Weights) -> list[str]:
    """Copy the stored weights into the network the translated spec built (Keras' layouts to
    torch's); the problems found (missing layers, shape mismatches), none when all went in."""
    import torch
    from torch import nn

    from gradhealth.analysis.model import RecurrentUnit, SimpleUnit

    problems: list[str] = []
    perm: np.ndarray | None = None  # set by a Flatten of channels-last features, until used

    def put(param: Any, value: np.ndarray, layer: str) -> None:
        if param is None:
            return
        if tuple(param.shape) != value.shape:
            problems.append(f"{layer}: stored weight of shape {list(value.shape)} where the config "
                            f"builds {list(param.shape)}")
            return
        with torch.no_grad():
            param.copy_(torch.from_numpy(np.ascontiguousarray(value, dtype=np.float64)))

    for unit in net.units():
        origin = origins.get(unit.plan.pointer)
        if origin is None:
            continue
        name, cls, cfg, layout = origin.name, origin.cls, origin.cfg, origin.layout
        if cls == "Flatten" and layout in ("image", "channels"):
            perm = _flatten_permutation(tuple(unit.plan.in_shape))
            continue
        arrays = weights.get(name)
        if cls not in ("Dense", "Conv1D", "Conv2D", "BatchNormalization", "LayerNormalization",
                       "Embedding", "SimpleRNN", "LSTM", "GRU", "Bidirectional"):
            continue
        if not arrays:
            problems.append(f"{name}: {no_weights(weights, name)}")
            continue
        if isinstance(unit, SimpleUnit):
            mod: Any = unit.module  # a Linear, Conv, Embedding or norm, as the layer kind built it
            if cls == "Dense":
                kernel = arrays[0]
                if perm is not None and kernel.shape[0] == perm.size:
                    kernel = kernel[perm]
                put(mod.weight, kernel.T, name)
                put(mod.bias, arrays[1] if len(arrays) > 1 else np.zeros(kernel.shape[1]), name)
                perm = None
            elif cls in ("Conv1D", "Conv2D"):  # Keras [k..., in, out] -> torch [out, in, k...]
                k = arrays[0]
                put(mod.weight, k.transpose(k.ndim - 1, k.ndim - 2, *range(k.ndim - 2)), name)
                put(mod.bias, arrays[1] if len(arrays) > 1 else np.zeros(k.shape[-1]), name)
            elif cls == "Embedding":
                put(mod.weight, arrays[0], name)
            else:  # gamma (if scale), beta (if center), then a BatchNorm's moving statistics
                it = iter(arrays)
                gamma = next(it) if cfg.get("scale", True) else None
                beta = next(it) if cfg.get("center", True) else None
                n = int(mod.weight.shape[0])
                if perm is not None and n == perm.size:
                    gamma, beta = (None if v is None else v[perm] for v in (gamma, beta))
                put(mod.weight, np.ones(n) if gamma is None else gamma, name)
                put(mod.bias, np.zeros(n) if beta is None else beta, name)
                mod.eps = float(cfg.get("epsilon", 1e-3))  # Keras' default, not torch's 1e-5
                if isinstance(mod, nn.BatchNorm1d | nn.BatchNorm2d):
                    stats = list(it)
                    if len(stats) == 2:  # unused in a training step, kept for completeness
                        put(mod.running_mean, stats[0], name)
                        put(mod.running_var, stats[1], name)
        elif isinstance(unit, RecurrentUnit):
            if cls == "Bidirectional":  # the forward layer's arrays, then the backward layer's
                inner = str((cfg.get("layer") or {}).get("class_name"))
                if len(arrays) != 6:
                    problems.append(f"{name}: expected two directions' kernel, recurrent kernel "
                                    f"and bias, found {len(arrays)} arrays")
                    continue
                load_recurrent(unit.rnn, inner, arrays[:3], name, put, problems)
                load_recurrent(unit.rnn, inner, arrays[3:], name, put, problems, "_reverse")
            else:
                load_recurrent(unit.rnn, cls, arrays, name, put, problems)
    return problems


def load_recurrent(rnn: Any, cls: str, arrays: list[np.ndarray], name: str, put: Any,
                    problems: list[str], suffix: str = "") -> None:
    """Keras' kernel [in, g*u], recurrent kernel [u, g*u], bias -> torch's [g*u, in], [g*u, u].
    LSTM gates are i, f, c, o in both; a GRU's are z, r, h in Keras and r, z, n in torch; a GRU
    with reset_after stores its input and recurrent biases as the rows of a [2, 3u] bias."""
    if len(arrays) != 3:
        problems.append(f"{name}: expected kernel, recurrent kernel and bias, found {len(arrays)} arrays")
        return
    kernel, recurrent, bias = arrays
    gates = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[cls]
    order = [1, 0, 2] if cls == "GRU" else list(range(gates))

    def torch_order(m: np.ndarray) -> np.ndarray:  # gate blocks along the last axis, reordered
        parts = np.split(m, gates, axis=-1)
        return np.concatenate([parts[i] for i in order], axis=-1)

    p = {k: getattr(rnn, f"{k}_l0{suffix}") for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    put(p["weight_ih"], torch_order(kernel).T, name)
    put(p["weight_hh"], torch_order(recurrent).T, name)
    if bias.ndim == 2:  # GRU reset_after: [input bias; recurrent bias]
        put(p["bias_ih"], torch_order(bias[0]), name)
        put(p["bias_hh"], torch_order(bias[1]), name)
    else:
        put(p["bias_ih"], torch_order(bias), name)
        put(p["bias_hh"], np.zeros(bias.shape[-1]), name)


@quiet_run_notes
def check_keras(source: bytes | str | Path | dict[str, Any], *, loss: str | None = None,
                seeds: int | None = None, batch_size: int | None = None, device: str | None = None,
                verify: bool | None = None, weights: str | None = None, settings: Any = None,
                progress: Any = None, optimizer: dict[str, Any] | None = None,
                input_shapes: dict[str, list[int]] | None = None,
                target_range: tuple[float, float] | None = None,
                input_range: tuple[float, float] | None = None, file_name: str | None = None) -> Any:
    """The check of a Keras model: a config dict, a file's bytes, or a path.

    ``file_name``: the file's own name where ``source`` is its bytes: a ``.h5`` or ``.keras`` name
    over a bare JSON architecture is said to hold no weights (:func:`json_named_as_weights`).

    ``input_range``: where the float inputs lie, (low, high): drawn uniform in it instead of
    N(0, 1) (the spec's ``input.range`` in the spec door, :attr:`.graph.InputSpec.uniform` in the
    graph door); an Embedding's token ids keep their own draw.

    ``target_range``: where a regression loss's targets lie, (low, high): the spec's
    ``loss.target_range`` (:func:`with_target_range`; refused for a loss that is not mse, mae or huber).

    ``input_shapes``: sizes for the inputs' dynamic dimensions (:func:`with_input_shapes`), e.g.
    ``{"input": [32, 41]}`` for a variable-length sequence of 41 features.

    ``optimizer``: the spec ``optimizer`` to check the first step of (``large_updates``); None:
    the optimizer the file was compiled with, where it names one the spec has.

    ``weights``: ``as_given`` (the weights an ``.h5`` or ``.keras`` file stores),
    ``reinitialise`` (Keras' initialisers, as the config names them, drawn from each seed: the
    architecture itself), or None: ``as_given`` when the file stores weights, else
    ``reinitialise``. The document's summary says which were used. Raises :class:`ModelError` /
    :class:`InputFormatError` before anything runs (``as_given`` for a file without weights, or
    with weights that do not fit the config, is a :class:`ModelError`).
    """
    from gradhealth.analysis.importers.keras_graph import stand_in_note
    from gradhealth.core.keras_snippets import in_keras
    from gradhealth.library import check_architecture
    from gradhealth.settings import get_settings

    if weights not in (None, "as_given", "reinitialise"):
        raise ModelError(f"weights must be as_given or reinitialise, not {weights!r}")
    if isinstance(loss, str) and (problem := loss_problem(loss)) is not None:
        # (the graph door would have taken any other name for a plain sum)
        raise ModelError(f"loss: {problem}")
    if input_range is not None:
        if (problem := range_problem(*input_range)) is not None:
            raise ModelError(f"input_range {problem}")
        input_range = (float(input_range[0]), float(input_range[1]))
    stored: Weights | None = None
    unsimulated = output_losses = unknown_optimizer = None
    notes: tuple[str, ...] = ()
    if isinstance(source, dict):
        config, file_loss = source, None
    else:
        data = Path(source).read_bytes() if isinstance(source, str | Path) else source
        training = read_keras_training(data)
        config, file_loss, compiled = training.config, training.loss, training.optimizer
        output_losses = None if loss else training.output_losses  # a loss given replaces the file's
        unsimulated = None if loss else training.unsimulated_loss  # a loss given replaces the file's
        notes = () if loss else training.loss_notes
        unknown_optimizer = None if optimizer else training.unknown_optimizer  # one given replaces the file's
        optimizer = optimizer or compiled
        settings = settings if settings is not None else get_settings()
        # reinitialise: the file's weights are not used, so neither matched nor read (a weights
        # file this reader cannot map is no reason to refuse the architecture)
        if weights != "reinitialise":
            stored = read_keras_weights(data, config, settings.limits)
    # a .keras archive whose weights entry is not one this reader reads (Keras 3's model.weights.npz):
    # said, never taken for a config alone; None where the weights used are the file's or drawn by request
    unread = (unread_weights_entry(data) if stored is None and weights != "reinitialise"
              and not isinstance(source, dict) else None)
    if weights == "as_given" and stored is None:
        if unread is not None:
            raise ModelError(f"weights: as_given, but {unread}; use weights: reinitialise to check the "
                             "architecture at Keras' initialisers")
        raise ModelError("weights: as_given, but the file stores no weights (a config only); "
                         "use weights: reinitialise to check the architecture as Keras builds it")
    unread_note = f" [{unread}; checked at Keras' initialisers]" if unread is not None else ""
    base = _layers_base(config)  # where the file's layers are, for refusals that point into it
    given_loss = with_target_range(loss or file_loss, target_range)
    config = with_input_shapes(config, input_shapes)
    widths = stored  # an unbuilt Sequential's input width is its first kernel's, whichever weights are used
    if widths is None and not isinstance(source, dict) and needs_stored_input_width(config):
        widths = read_keras_weights(data, config, settings.limits)
    config, assumed = with_default_sizes(config, widths)  # what --input-shape left dynamic
    notes = (assumed, *notes) if assumed else notes
    notes = (*notes, *activity_penalty_notes(config))  # the one part of the model's loss not simulated
    config, carried = stateless(config)  # a stateful layer: its window, as the same layer stateless
    notes = (*notes, *carried)
    settings = settings if settings is not None else get_settings()

    def translated(batch: int) -> tuple[dict[str, Any] | None, Origins | None, Any]:
        spec, origins, graph = translate_or_graph(config, given_loss, seeds=seeds or 3, batch_size=batch,
                                                  stored=stored, optimizer=optimizer, limits=settings.limits,
                                                  input_range=input_range)
        if spec is not None and input_range is not None and "shape" in spec["input"]:
            spec["input"]["range"] = list(input_range)  # token ids (an Embedding's input) keep their draw
        return spec, origins, graph

    given_batch, given_seeds = batch_size is not None, seeds is not None
    try:
        spec, origins, graph = translated(batch_size or DEFAULT_BATCH)
    except LimitExceeded as too_big:
        # a default batch the limits refuse: the smallest the checks need may fit (a 300x300
        # input under 96 filters of 11x11 takes 15 GB at 64)
        if batch_size is not None or "batch" not in too_big.detail:
            raise
        spec, origins, graph = translated(MIN_DEFAULT_BATCH)
        batch_size, shrunk = MIN_DEFAULT_BATCH, (f" [batch {MIN_DEFAULT_BATCH}, chosen for this model: the default "
                                                 f"{DEFAULT_BATCH} samples' activations would be over the limits; set "
                                                 "--batch-size (CLI) or batch_size (HTTP) to choose]")
    else:
        shrunk = ""
    if batch_size is None:
        batch_size, shrunk = _batch_within_budget(spec, graph, settings.limits)
        if shrunk:
            spec, origins, graph = translated(batch_size)
    # the time the defaults would take, from the model's multiply-adds (as the ONNX door's): past the
    # budget the batch and seeds the user did not give are lowered (onnxsweep29 #1 follow-up: a large
    # Keras U-Net was still a slow run with nothing said before it)
    timing = _fit_time(spec, graph, batch_size, seeds, batch_free=not given_batch, seeds_free=not given_seeds,
                       device=device, limits=settings.limits)
    seeds = timing.seeds
    if timing.batch != batch_size:
        batch_size = timing.batch
        spec, origins, graph = translated(batch_size)
    timed = f" [{timing.note}]" if timing.note else ""
    # the estimate, before a simulation it matters for (the spec door says its own where it runs the spec)
    if progress is not None and timing.worth_saying and (graph is not None or stored is not None):
        progress(0.0, timing.start_line(file_name or (Path(source).name if isinstance(source, str | Path)
                                                      else "the model")))
    # Lambda layers simulated by a stand-in (their code never run): said first among the notes
    stood = graph.stand_ins if graph is not None else [
        (name, kind, srcs) for name, (kind, srcs) in _stand_ins(modern_config(config))[0].items()]
    lambda_note = stand_in_note(stood)
    notes = (lambda_note, *notes) if lambda_note else notes
    if graph is not None:
        from gradhealth.analysis.importers.keras_torch import check_keras_graph

        with _assumed_shapes_named(config, graph, stood):
            doc = check_keras_graph(graph, loss=given_loss, stored=stored, seeds=seeds or 3,
                                    batch_size=batch_size, device=device, verify=verify,
                                    settings=settings, progress=progress, optimizer=optimizer,
                                    output_losses=output_losses, input_range=input_range)
        doc.summary += shrunk + timed + unread_note
        return in_keras(_loss_note(doc, unsimulated, notes, unknown_optimizer))
    assert spec is not None and origins is not None
    if stored is None:
        with keras_located(origins, base):
            doc = check_architecture(spec, seeds=seeds, device=device, verify=verify, settings=settings,
                                     progress=progress)
        doc = _renamed(doc, _keras_names(spec, origins))
        # which weights were used, as the graph door says it: a config alone, or a file's weights
        # left unused (reinitialise), both get Keras' initialisers
        doc.summary = f"{doc.summary} [weights: Keras' initialisers, drawn per seed]"
        doc.summary += shrunk + timed + unread_note
        named = file_name if file_name is not None else (Path(source).name if isinstance(source, str | Path) else None)
        if named is not None and not isinstance(source, dict) and json_named_as_weights(named, data):
            # a name that promises weights over model.to_json() text (onnxsweep29 aloukik_json_h5): a
            # CI user who thinks they committed trained weights reads "healthy" as about them
            doc.summary += (f" [{named} holds no weights: it is a JSON architecture (model.to_json()), not "
                            f"{'HDF5' if named.lower().endswith(('.h5', '.hdf5')) else 'a .keras archive'}, "
                            "so it was checked at a fresh initialisation, not as trained]")
        return in_keras(_loss_note(doc, unsimulated, notes, unknown_optimizer))
    with keras_located(origins, base), _assumed_shapes_named(config, None, stood):
        doc = _check_stored(spec, origins, stored, device=device, verify=verify, settings=settings,
                            progress=progress)
    doc.summary += timed
    return in_keras(_loss_note(doc, unsimulated, notes, unknown_optimizer))


#: The entries of a ``.keras`` archive that are Keras' own and hold no weights (config.json,
#: metadata.json; a preprocessing layer's vocabulary under assets/)
_ARCHIVE_NON_WEIGHTS = ("config.json", "metadata.json")
#: Suffixes of an archive entry that stores arrays: an entry so named (or named ``*weights*``) other
#: than model.weights.h5 is a weights entry this reader does not read (:func:`unread_weights_entry`)
_WEIGHTS_LIKE_SUFFIXES = (".h5", ".hdf5", ".npz", ".npy", ".pkl", ".pickle", ".safetensors", ".bin", ".ckpt",
                          ".pt", ".pth")


def unread_weights_entry(data: bytes) -> str | None:
    """Why the weights a ``.keras`` archive holds were not read, naming the entry, where it holds
    a weights entry but no ``model.weights.h5`` (the only one read); None otherwise (an ``.h5``, a
    JSON config, an archive with model.weights.h5 or with no weights entry at all).

    Keras 3 can save the weights as ``model.weights.npz`` (its NpzIOStore): numpy's ``savez`` of
    nested dicts, so object arrays that only a pickle load restores, and a pickle runs code, so
    this tool never loads one. Without these words the archive read as a config alone, checked at
    fresh initialisers with nothing said of the file's weights (kerassweep30 W1)."""
    if sniff_keras(data[:4096]) != "keras":
        return None
    with _open_archive(data) as zf:
        # as stored: model.weights.h5 is read by that exact name (_stored_datasets), "./model.weights.h5" is not
        names = [i.filename for i in zf.infolist() if not i.is_dir()]
    if "model.weights.h5" in names:
        return None
    unread = [n for n in names if n not in _ARCHIVE_NON_WEIGHTS and not n.startswith("assets/")
              and ("weights" in n.rsplit("/", 1)[-1].lower() or n.lower().endswith(_WEIGHTS_LIKE_SUFFIXES))]
    if not unread:
        return None
    npz = [n for n in unread if n.lower().endswith(".npz")]
    if npz:
        return (f"{npz[0]} was not read: Keras' npz weights are pickled object arrays, which this tool never "
                "loads (a pickle can run code); only model.weights.h5 is read from a .keras archive")
    shown = ", ".join(unread[:3]) + (f" and {len(unread) - 3} more" if len(unread) > 3 else "")
    return (f"{shown} {'was' if len(unread) == 1 else 'were'} not read: the only weights entry read from a "
            ".keras archive is model.weights.h5")


#: The file names that promise stored weights: an HDF5 file (``model.save('m.h5')``) or a ``.keras`` archive.
WEIGHTS_SUFFIXES = (".h5", ".hdf5", ".keras")


def json_named_as_weights(name: str | None, data: bytes) -> bool:
    """Whether a file named like a weights file (:data:`WEIGHTS_SUFFIXES`) is JSON text, a bare
    architecture (``model.to_json()`` saved under an ``.h5`` name): it holds no weights."""
    return bool(name) and str(name).lower().endswith(WEIGHTS_SUFFIXES) and data.lstrip()[:1] == b"{"


@contextmanager
def _assumed_shapes_named(config: dict[str, Any], graph: Any,
                          stood: Sequence[tuple[str, str, Sequence[str]]]) -> Iterator[None]:
    """Re-raise stored weights that do not fit the config, where a layer they belong to reads a
    Lambda whose output's shape was assumed (its input's: :func:`.keras_graph.lambda_stand_in`),
    naming that Lambda too: the stored kernel says the Lambda changes the shape."""
    try:
        yield
    except ModelError as exc:
        if "do not fit the config" not in exc.detail:
            raise
        said = []
        for name, readers in _assumed_readers(config, graph, stood).items():
            named = [r for r in readers if re.search(rf"(?<![\w#]){re.escape(r)}(?![\w#])", exc.detail)]
            if named:
                said.append(f"{', '.join(named)} reads Lambda {name}, which declares no output_shape and was "
                            f"assumed to keep its input's shape: the stored weights of {named[0]} say "
                            f"{name} changes it (its code is never run); give {name} its output_shape")
        if not said:
            raise
        raise ModelError(f"{exc.detail} ({'; '.join(said)})", exc.problems) from None


def _assumed_readers(config: dict[str, Any], graph: Any,
                     stood: Sequence[tuple[str, str, Sequence[str]]]) -> dict[str, list[str]]:
    """The Lambda layers whose output's shape was assumed -> the layers that read them."""
    assumed = [name for name, kind, _ in stood if kind in ("assumed", "assumed_sum")]
    if not assumed:
        return {}
    if graph is not None:
        return {a: [n.name for n in graph.nodes if a in n.inputs] for a in assumed}
    model = modern_config(config)
    layers = [lay for lay in (model.get("config") or {}).get("layers") or [] if isinstance(lay, dict)]
    names = [str(lay.get("name") or (lay.get("config") or {}).get("name")) for lay in layers]
    if model.get("class_name") == "Sequential":
        return {a: names[names.index(a) + 1:names.index(a) + 2] if a in names else [] for a in assumed}
    return {a: [n for n, lay in zip(names, layers, strict=True) if a in _inbound(lay)] for a in assumed}


def _regularizer_penalty(value: Any) -> tuple[float, float] | None:
    """(l1, l2) of a Keras regularizer config (``"l2"``, ``{"class_name": "L1L2", "config":
    {...}}``), None for none; Keras' defaults (0.01) where a name gives no factor. A regularizer
    of another kind is read as (nan, nan): a penalty of unknown size."""
    if value is None:
        return None
    name, cfg = _name_of(value)
    defaults = {"l1": (0.01, 0.0), "l2": (0.0, 0.01), "l1l2": (0.0, 0.0)}
    if name not in defaults:
        return (math.nan, math.nan)
    d1, d2 = defaults[name] if isinstance(value, dict) or name != "l1l2" else (0.01, 0.01)
    try:
        return float(cfg.get("l1", d1) or 0.0), float(cfg.get("l2", d2) or 0.0)
    except (TypeError, ValueError):
        return (math.nan, math.nan)


def stateless(config: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """``config`` with every ``stateful`` recurrent layer made stateless, and the note saying so.

    A stateful layer (a time-series tutorial's ``batch_input_shape [1, 36, 1]``) starts each batch
    from the state the previous batch left; backpropagation still stops at the batch's window (the
    carried state is a constant to it), so the gradient a check measures is exactly that of the
    same layer with ``stateful=False`` over the window, except for the state the window starts
    from: every simulated window starts from zeros, as the first batch of each epoch (after
    ``reset_states()``) does. Both doors check that equivalent (kerassweep28 kim_rnn)."""
    if not any(e["config"].get("stateful") for e in _class_entries(config)):
        return config, ()
    config = copy.deepcopy(config)
    names = []
    for entry in _class_entries(config):
        if entry["config"].get("stateful"):
            entry["config"]["stateful"] = False
            names.append(str(entry["config"].get("name", entry["class_name"])))
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    return config, (f"stateful layers checked as their stateless equivalent: {shown} (stateful=True carries "
                    "the last state from one batch into the next, but backpropagation stops at the batch's "
                    "window, so the gradient measured is that of stateful=False over the window; the state "
                    "carried across batches is not simulated: every window starts from zeros)",)


def activity_penalty_notes(config: dict[str, Any]) -> tuple[str, ...]:
    """The document's note that the activity penalties of ``config`` (ActivityRegularization
    layers and layers' ``activity_regularizer``, nested models' too) are not simulated: both doors
    read those layers as the identity, and the penalty's gradient (l1 * sign(x) + 2 * l2 * x of the
    penalised output, added to its gradient) is left out of the layers before it."""
    found: dict[str, str] = {}
    for entry in _class_entries(config):
        cfg = entry["config"]
        name = str(cfg.get("name", entry.get("class_name")))
        if entry.get("class_name") == "ActivityRegularization":
            penalty = _regularizer_penalty({"class_name": "L1L2", "config": cfg})
        else:
            penalty = _regularizer_penalty(cfg.get("activity_regularizer"))
        if penalty is not None and any(p != 0.0 for p in penalty):  # nan: of unknown size
            l1, l2 = penalty
            found.setdefault(name, "an unknown penalty" if math.isnan(l1) else f"l1={l1:g}, l2={l2:g}")
    if not found:
        return ()
    named = ", ".join(f"{n} ({p})" for n, p in list(found.items())[:10]) + (" ..." if len(found) > 10 else "")
    return (f"activity penalty not simulated: {named}; those outputs pass unchanged and the "
            "penalty's gradient (l1 * sign(x) + 2 * l2 * x, added to the output's) is left out",)


def _loss_note(doc: Any, unsimulated: str | None, notes: tuple[str, ...] = (),
               unknown_optimizer: str | None = None) -> Any:
    """``doc`` with its summary saying that the file's compiled loss was not simulated, and what
    else of the compiled losses was not used (:attr:`KerasTraining.loss_notes`); its
    ``simulation.optimizer_unknown`` naming the file's compiled optimizer where the check has no
    equivalent of it (:attr:`KerasTraining.unknown_optimizer`)."""
    if unknown_optimizer and doc.simulation is not None and doc.simulation.optimizer is None:
        doc.simulation.optimizer_unknown = unknown_optimizer
    if unsimulated:
        doc.summary += (f" [the file's loss {unsimulated} is not one the check simulates: the loss was chosen "
                        "from the output layer; give loss to choose it]")
    for note in notes:
        doc.summary += f" [{note}]"
    return doc


#: The batch a Keras model is checked with when none is given, unless its activations would take
#: more than :data:`ACTIVATION_BUDGET`: then the largest power of two under it, at least
#: :data:`MIN_DEFAULT_BATCH` (what dead_units needs). A 128x128 U-Net's 64 samples in float64 took
#: 2.9 GB and 100 s on two cores, for the same diagnosis a batch of 8 gives.
DEFAULT_BATCH = 64
ACTIVATION_BUDGET = 512 * 2**20
MIN_DEFAULT_BATCH = 8


def _batch_within_budget(spec: dict[str, Any] | None, graph: Any, limits: Any) -> tuple[int, str]:
    """(the default batch for a model translated at :data:`DEFAULT_BATCH`, the summary's note
    when it had to be smaller)."""
    from gradhealth.analysis.plan import make_plan
    from gradhealth.analysis.spec import parse_spec

    if graph is not None:
        used = int(graph.activation_bytes)
    else:
        try:
            used = make_plan(parse_spec(spec), limits).activation_bytes
        except GradHealthError:
            return DEFAULT_BATCH, ""  # the check itself says what is wrong, at the batch it was given
    if used <= ACTIVATION_BUDGET:
        return DEFAULT_BATCH, ""
    batch = DEFAULT_BATCH
    while batch > MIN_DEFAULT_BATCH and used * batch / DEFAULT_BATCH > ACTIVATION_BUDGET:
        batch //= 2
    # both spellings of the setting: the CLI's flag and the HTTP field (kerassweep28)
    return batch, (f" [batch {batch}, chosen for this model: the default {DEFAULT_BATCH} samples' activations "
                   f"would take {used / 2**30:.1f} GB; set --batch-size (CLI) or batch_size (HTTP) to choose]")


def _fit_time(spec: dict[str, Any] | None, graph: Any, batch: int, seeds: int | None, *, batch_free: bool,
              seeds_free: bool, device: str | None, limits: Any) -> Any:
    """The batch and seeds a translated Keras model is simulated at within the time budget
    (:func:`gradhealth.analysis.timing.fit_time`, as an ONNX file's), from its multiply-adds: the
    graph's (:func:`.keras_graph.graph_multiply_adds`) or the translated spec's plan's; the batch
    not below :data:`MIN_DEFAULT_BATCH`."""
    from gradhealth.analysis.plan import make_plan, multiply_adds
    from gradhealth.analysis.spec import parse_spec
    from gradhealth.analysis.timing import DEFAULT_SEEDS, fit_time

    if graph is not None:
        per_sample = int(graph.multiply_adds)
    else:
        try:
            per_sample = multiply_adds(make_plan(parse_spec(spec), limits))
        except GradHealthError:
            per_sample = 0  # the check itself says what is wrong
    return fit_time(per_sample * batch, batch, seeds or DEFAULT_SEEDS, batch_free=batch_free,
                    seeds_free=seeds_free, device=device, budget=limits.simulation_seconds,
                    floor_batch=MIN_DEFAULT_BATCH)


def translate_or_graph(config: dict[str, Any], loss: str | dict[str, Any] | None = None, *, seeds: int = 3,
                       batch_size: int = 64, stored: Weights | None = None,
                       optimizer: dict[str, Any] | None = None, limits: Any = None,
                       input_range: tuple[float, float] | None = None, draws: bool | None = None,
                       ) -> tuple[dict[str, Any] | None, Origins | None, Any]:
    """How a Keras model is checked: ``(spec, origins, None)`` where the spec language expresses
    it (a chain with identity-skip residual blocks: the spec check, remedies as spec patches), else
    ``(None, None, graph)`` (:func:`.keras_graph.plan_keras_graph`: concatenations, projection
    shortcuts, depthwise convolutions, squeeze-and-excitation, checked as a graph). Torch-free, so
    the API decides before a job exists. Raises :class:`ModelError` with both reasons when neither
    reads it, :class:`LimitExceeded` when the graph is over ``limits``.

    A translated spec is validated and planned here (over ``limits``, the defaults when None): a
    refusal (:class:`SpecError`, :class:`LimitExceeded`) points into the Keras file and names its
    layer (:func:`.keras_pointers.relocated`), not into the spec the importer made of it.

    ``input_range``: the raw inputs' range (``--input-range``): the graph keeps the input's own
    preprocessing (Rescaling, Normalization) and applies it to them, where without it the
    simulated inputs stand for the data already normalised and it is skipped.

    ``draws``: whether the weights will be drawn from the config's initialisers (``reinitialise``;
    None: where ``stored`` is None). Only then is an initialiser neither door can draw refused
    (:func:`reinitialise_only`): the file's own weights need none."""
    from gradhealth.analysis.importers.keras_graph import plan_keras_graph
    from gradhealth.analysis.plan import make_plan
    from gradhealth.analysis.spec import parse_spec

    base = _layers_base(config)
    config = modern_config(config)  # both doors read today's form of a Keras 2.2 Sequential
    config = gru_reset_after(config, stored)  # both doors build the GRU cell that wrote the weights
    config, _ = stateless(config)  # check_keras says so; the API's pre-check takes it too
    config, _ = with_default_sizes(config, stored)  # check_keras says which it assumed (the API's pre-check too)
    try:
        spec, origins = _translate(config, loss, seeds=seeds, batch_size=batch_size, stored=stored,
                                   optimizer=optimizer, base=base, draws=draws)
    except ModelError as spec_error:
        try:
            return None, None, plan_keras_graph(config, batch_size=batch_size, limits=limits, stored=stored,
                                              input_range=input_range, draws=draws)
        except ModelError as graph_error:
            # the supported classes once: the graph door's (the spec door's are a subset of them, so
            # a class the graph door refuses is refused as a spec too)
            said = str(spec_error).split("; supported: ")[0]
            if said.startswith("unsupported Keras layers: ") and str(graph_error).startswith(said[:26]):
                said = "refused too"
            # each cause once: the spec door's that the graph door already gave are not repeated
            # (kerassweep28: every stateful layer's cause was said twice)
            causes = [c.split(": ", 1)[-1] for c in said.removeprefix("cannot translate the Keras model: ").split("; ")]
            if all(c and c in str(graph_error) for c in causes):
                raise ModelError(str(graph_error)) from None
            if not str(graph_error).startswith("unsupported Keras layers: "):
                # the graph door read every class and found what is wrong in the model itself (a pool
                # that does not fit its input): the spec door's reason, a limit of the translation it
                # stopped at first (padding 'same' with strides 3), read as a second fault to fix
                # (peersweep21 nl_inv_filter_size); kept, marked as the secondary one
                said = said.removeprefix("cannot translate the Keras model: ")
                raise ModelError(f"{graph_error} (secondary, a limit of the spec translation tried first, which the "
                                 f"graph check reads: {said})") from None
            raise ModelError(f"{graph_error} (as a spec: {said})") from None
    with keras_located(origins, base):
        make_plan(parse_spec(spec), limits)
    return spec, origins, None


@contextmanager
def keras_located(origins: Origins | None, base: str = "/config/layers") -> Iterator[None]:
    """Re-raise a refusal of a translated spec (:class:`SpecError`, :class:`LimitExceeded`) pointed
    into the Keras file, naming its layers (:func:`.keras_pointers.relocated`)."""
    try:
        yield
    except SpecError as exc:
        moved = relocated(exc, origins, base)
        if moved is exc:
            raise
        raise moved from None


def _keras_names(spec: dict[str, Any], origins: Origins) -> dict[str, str]:
    """The spec check's unit names (``layers[3].lstm``) -> the Keras layer names they come from,
    so both ``weights`` modes name layers as the user's model does. A Keras layer that became
    several units (copies, a stack's tail) keeps the spec's suffix: ``enc#1``, ``enc.linear``."""
    from gradhealth.analysis.plan import make_plan
    from gradhealth.analysis.remedies import names_of
    from gradhealth.analysis.spec import parse_spec

    units = [u for top in make_plan(parse_spec(spec)).units for u in top.walk()]
    by_pointer: dict[str, list[Any]] = {}
    for unit in units:
        by_pointer.setdefault(unit.pointer, []).append(unit)
    names: dict[str, str] = {}
    for pointer, group in by_pointer.items():
        origin = origins.get(pointer)
        if origin is None:
            continue
        for unit in group:
            # the spec's own name is "<prefix>layers[i].<type>" plus "#k" or ".<tail>"
            base = f"layers[{pointer.rsplit('/', 1)[-1]}].{unit.layer.type}"
            suffix = unit.name.rsplit(base, 1)[-1] if base in unit.name else ""
            names[unit.name] = origin[0] if len(group) == 1 else f"{origin[0]}{suffix or '.' + unit.kind}"
    # and the spec entries a remedy's change names by their pointer (``layers[3]``: "use relu ... in
    # layers[0], layers[1]"), which the Keras snippet names too (kerassweep26)
    for pointer, origin in origins.items():
        entry = names_of([pointer])
        if entry and entry not in names and origin:
            names[entry] = origin[0]
    # a spec layer named bare, as a remedy's change names the layer its patch edits (``end layers[14]
    # with no activation``, kerassweep27: an Activation('sigmoid') layer, which is no unit of its own)
    for pointer, origin in origins.items():
        if re.fullmatch(r"(/layers/\d+)+", pointer):
            names.setdefault(re.sub(r"/layers/(\d+)", r".layers[\1]", pointer).lstrip("."), origin[0])
    return names


def _renamed(doc: Any, names: dict[str, str]) -> Any:
    """``doc`` with every renamed unit's name replaced, as a whole value (layers, evidence, time
    steps, points) and inside text (summaries, explanations), leaving everything else as it was."""
    if not names:
        return doc
    import re

    # Longest first, and never inside a longer name (layers[1].lstm in layers[1].lstm#1, layers[0] in
    # layers[3].layers[0]).
    pattern = re.compile(r"(?<![\w.\]])(?:" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
                         + r")(?![\w#\[]|\.\w)")

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return names.get(value) or pattern.sub(lambda m: names[m.group(0)], value)
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    return type(doc).model_validate(walk(doc.model_dump(mode="json")))


def _check_stored(spec: dict[str, Any], origins: Origins, stored: Weights, *, device: str | None,
                  verify: bool | None, settings: Any, progress: Any) -> Any:
    """The check of the translated network with the file's weights (float inputs drawn uniform in
    the spec's ``input.range`` where it has one, as the spec simulation draws them).

    Why this path: the spec simulation draws every seed's weights from the spec's initialisers
    (the spec language has no notion of given weights), while the graph simulation behind the
    ONNX door's ``weights: as_given`` runs a network with the weights it has, on deep copies, and
    verifies remedies (re-initialisation, activation swaps, chrono bias) on copies. So the stored
    weights go into the very network the translated spec builds (the same modules, shapes and
    layouts as the ``reinitialise`` check) and that network goes through the graph simulation: no
    change to the spec language or to either simulator. Layers are named by their Keras names."""
    import torch

    from gradhealth.analysis.freshinit import fresh_init, fresh_note
    from gradhealth.analysis.graph import GraphRun, InputSpec
    from gradhealth.analysis.model import Unit, build_network
    from gradhealth.analysis.module_check import diagnose, on_synthetic_inputs
    from gradhealth.analysis.plan import make_plan
    from gradhealth.analysis.simulate import squashed_output
    from gradhealth.analysis.spec import parse_spec
    from gradhealth.devices import require_cuda_if_asked
    from gradhealth.settings import get_settings

    settings = settings if settings is not None else get_settings()
    parsed = parse_spec(spec)
    plan = make_plan(parsed, settings.limits)  # refused over the limits, before allocating
    require_cuda_if_asked(device or parsed.device)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(0)  # every weight is overwritten below; the seed only fixes the rest
        net = build_network(plan).double()
    problems = _load_weights(net, origins, stored)
    if problems:
        raise ModelError("the stored weights do not fit the config: " + "; ".join(problems))
    n = parsed.batch_size
    tokens = parsed.input.tokens
    inputs = ([InputSpec((n, tokens.seq_len), torch.int64, tokens.vocab_size)] if tokens is not None
              else [InputSpec((n, *plan.input_shape), uniform=parsed.input.range)])

    def names(copy: torch.nn.Module) -> dict[torch.nn.Module, tuple[str, str]]:
        out = {m: (k or type(m).__name__, f"module:{k}") for k, m in copy.named_modules()}
        for unit in [m for m in copy.modules() if isinstance(m, Unit)]:  # parents first
            origin = origins.get(unit.plan.pointer)
            if origin is not None:
                for m in unit.modules():  # a nested unit's own modules are renamed after it
                    out[m] = (origin[0], f"layer:{origin[0]}")
        return out

    # the bounded regression output judged as the reinitialised check's spec judges it, on the
    # same targets: the output/loss pairing does not depend on the weights
    # stored weights that are an init's draw (saved before training): an initialisation (onnxsweep24)
    fresh = fresh_init(net)
    # a bounded last layer (a sigmoid or tanh) under a loss on logits that applies another squash
    # over it (a sigmoid head under SparseCategoricalCrossentropy(from_logits=True)): the floor the
    # spec's own check measures (:func:`.simulate.squashed_output`), which this run of the same
    # network lost, so the stored weights read healthy (kerassweep29 cad_sigmoid_from_logits)
    squashed, _ = squashed_output(plan)
    run = GraphRun(net, inputs, parsed.loss.type, parsed.seeds, None, names, optimizer=parsed.optimizer,
                   from_logits=parsed.loss.from_logits, bounded_regression=True, squashed=squashed,
                   target_range=parsed.loss.target_range, checkpoint=fresh is None)
    doc = diagnose(run, name=parsed.name, device=device, thresholds=settings.thresholds,
                   verify=settings.verify_remedies if verify is None else verify,
                   parameters=plan.parameters, activation_bytes=plan.activation_bytes,
                   progress=progress, budget=settings.limits.max_verify_seconds)
    doc.summary = f"{doc.summary} [weights: as stored in the file]{' [' + fresh_note(fresh) + ']' if fresh else ''}"
    return on_synthetic_inputs(doc, parsed.input.range)
