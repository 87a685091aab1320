"""The Keras door against hostile and malformed uploads, and a per-output loss of one output
(kerassweep7, batch 3): HDF5 files that refer to other files (external raw storage, virtual
datasets, external and soft links) are refused before any dataset is read; a layer size that is not
a positive integer is refused with its place in the config (not an OverflowError, not coerced); a
``.keras`` zip with entries outside its folder, Windows paths, links or duplicate names is refused
whole; a model of one output compiled with ``loss={"<output>": ...}`` is checked with that loss."""

from __future__ import annotations

import io
import json
import stat
import warnings
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.keras import (
    check_keras,
    keras_to_spec,
    read_keras,
    read_keras_training,
    read_keras_weights,
    translate_or_graph,
)
from gradhealth.analysis.importers.keras_graph import plan_keras_graph
from gradhealth.errors import InputFormatError
from tests.analysis.test_keras_import import _dense, _h5_keras2, _init, _keras3_zip, _layer, _seq

DATA = Path(__file__).resolve().parents[1] / "data" / "keras"


# --- HDF5 files that refer to other files ------------------------------------------------------------

def _small() -> tuple[dict[str, Any], dict[str, list[tuple[str, np.ndarray]]]]:
    cfg = _seq(_dense("dense", 8, "relu"), _dense("out", 1), shape=[4])
    rng = np.random.default_rng(0)
    stored = {"dense": [("kernel", rng.normal(0, 0.5, (4, 8)).astype(np.float32)), ("bias", np.zeros(8, np.float32))],
              "out": [("kernel", rng.normal(0, 0.3, (8, 1)).astype(np.float32)), ("bias", np.zeros(1, np.float32))]}
    return cfg, stored


def _tamper(h5: bytes, path: str, kind: str, tmp_path: Path) -> bytes:
    """``h5`` with the object at ``path`` (a (4, 8) float32 kernel, or a new name) replaced by one
    that refers to a file of this machine, which holds 3.0 everywhere."""
    secret = tmp_path / "secret.bin"  # a local file an upload must never be able to read
    np.full((4, 8), 3.0, "<f4").tofile(secret)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("w", data=np.full((4, 8), 3.0, np.float32))
    buf = io.BytesIO(h5)
    with h5py.File(buf, "r+") as f:
        if path in f:
            del f[path]
        if kind == "external":
            f.create_dataset(path, shape=(4, 8), dtype="<f4", external=[(str(secret), 0, 4 * 8 * 4)])
        elif kind == "virtual":
            layout = h5py.VirtualLayout(shape=(4, 8), dtype="<f4")
            layout[...] = h5py.VirtualSource(str(other), "w", shape=(4, 8))
            f.create_virtual_dataset(path, layout)
        elif kind == "external_link":
            f[path] = h5py.ExternalLink(str(other), "w")
        else:  # a soft link: to a dataset of the same file, still a reference the rule refuses
            f.create_dataset("elsewhere", data=np.full((4, 8), 3.0, np.float32))
            f[path] = h5py.SoftLink("/elsewhere")
    return buf.getvalue()


def _with_weights(archive: bytes, weights: bytes) -> bytes:
    zin = zipfile.ZipFile(io.BytesIO(archive))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item, weights if item.filename == "model.weights.h5" else zin.read(item))
    return out.getvalue()


_SAID = {"external": "stored in an external file", "virtual": "virtual dataset",
         "external_link": "external link", "soft_link": "soft link"}


@pytest.mark.parametrize("kind", list(_SAID))
@pytest.mark.parametrize("where", ["kernel", "elsewhere_in_the_file"])
def test_a_legacy_h5_that_refers_to_other_files_is_refused_before_reading(kind: str, where: str,
                                                                           tmp_path: Path) -> None:
    cfg, stored = _small()
    path = "model_weights/dense/dense/kernel:0" if where == "kernel" else "optimizer_weights/notes/x"
    data = _tamper(_h5_keras2(cfg, stored), path, kind, tmp_path)
    for read in (lambda: read_keras(data),  # the config alone (the CLI and the API read it first)
                 lambda: check_keras(data, seeds=1, verify=False)):
        with pytest.raises(InputFormatError) as err:
            read()
        assert f"/{path}" in err.value.detail and _SAID[kind] in err.value.detail
        assert [p.pointer for p in err.value.problems] == [f"/{path}"]


@pytest.mark.parametrize("kind", list(_SAID))
def test_a_keras3_weights_file_that_refers_to_other_files_is_refused(kind: str, tmp_path: Path) -> None:
    cfg, stored = _small()
    archive = _keras3_zip(cfg, stored)
    weights = zipfile.ZipFile(io.BytesIO(archive)).read("model.weights.h5")
    data = _with_weights(archive, _tamper(weights, "layers/dense/vars/0", kind, tmp_path))
    for read in (lambda: read_keras_weights(data, cfg), lambda: check_keras(data, seeds=1, verify=False)):
        with pytest.raises(InputFormatError) as err:
            read()
        assert "/layers/dense/vars/0" in err.value.detail and _SAID[kind] in err.value.detail


def test_the_cli_refuses_external_storage_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gradhealth.cli import main

    cfg, stored = _small()
    path = tmp_path / "model.h5"
    path.write_bytes(_tamper(_h5_keras2(cfg, stored), "model_weights/dense/dense/kernel:0", "external", tmp_path))
    assert main(["check", str(path), "--no-verify", "--seeds", "1"]) == 2
    assert "/model_weights/dense/dense/kernel:0" in capsys.readouterr().err


def test_plain_hdf5_files_are_still_read() -> None:
    for name in ("preact_resnet", "three_heads"):
        for ext in ("h5", "keras"):
            data = (DATA / f"{name}.{ext}").read_bytes()
            assert read_keras_weights(data, read_keras(data)[0])


# --- sizes that are not positive integers ---------------------------------------------------------------

_BAD_SIZES = [float("inf"), float("-inf"), float("nan"), 64.7, 64.0, True, "64", 0, -3, 2**40, None]


@pytest.mark.parametrize("value", _BAD_SIZES, ids=repr)
def test_a_size_that_is_not_a_positive_integer_is_refused_with_its_place(value: Any) -> None:
    cfg = _seq(_dense("hidden", 8, "relu"), _dense("out", 1), shape=[4])
    cfg["config"]["layers"][1]["config"]["units"] = value
    for door in (keras_to_spec, translate_or_graph, plan_keras_graph):
        with pytest.raises(InputFormatError) as err:
            door(cfg)
        assert [p.pointer for p in err.value.problems] == ["/config/layers/1/config/units"]
        assert "hidden (Dense)" in err.value.detail and "units" in err.value.detail


def _conv(**cfg: Any) -> dict[str, Any]:
    return _layer("Conv2D", "conv", **{"filters": 4, "kernel_size": [3, 3], "strides": [1, 1], "padding": "valid",
                                       "activation": "relu", "kernel_initializer": _init("HeNormal"),
                                       "bias_initializer": _init("Zeros"), **cfg})


def _lstm(units: Any) -> dict[str, Any]:
    return _layer("LSTM", "lstm", units=units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                  kernel_initializer=_init("GlorotUniform"), recurrent_initializer=_init("Orthogonal"),
                  bias_initializer=_init("Zeros"), unit_forget_bias=True, return_sequences=False)


@pytest.mark.parametrize(("model", "pointer"), [
    (_seq(_conv(kernel_size=[3, 2.5]), _layer("Flatten", "f"), _dense("out", 1), shape=[8, 8, 3]),
     "/config/layers/1/config/kernel_size/1"),
    (_seq(_conv(kernel_size=[3, True]), _layer("Flatten", "f"), _dense("out", 1), shape=[8, 8, 3]),
     "/config/layers/1/config/kernel_size/1"),
    (_seq(_conv(filters="4"), _layer("Flatten", "f"), _dense("out", 1), shape=[8, 8, 3]),
     "/config/layers/1/config/filters"),
    (_seq(_lstm(16.0), _dense("out", 1), shape=[10, 4]), "/config/layers/1/config/units"),
    (_seq(_layer("Bidirectional", "bi", layer={"class_name": "LSTM", "config": _lstm(float("inf"))["config"]}),
          _dense("out", 1), shape=[10, 4]), "/config/layers/1/config/layer/config/units"),
    (_seq(_layer("Embedding", "emb", input_dim=100, output_dim=float("inf")), _layer("Flatten", "f"),
          _dense("out", 1), shape=[6]), "/config/layers/1/config/output_dim"),
    (_seq({"class_name": "Sequential", "config": {"name": "inner", "layers": [_dense("deep", 64.7)]}},
          _dense("out", 1), shape=[4]), "/config/layers/1/config/layers/0/config/units"),
    (_seq(_dense("d", 8), _layer("Reshape", "r", target_shape=[2, 4.0]), _layer("Flatten", "f"), _dense("out", 1),
          shape=[4]), "/config/layers/2/config/target_shape/1"),
], ids=["kernel_float", "kernel_bool", "filters_string", "lstm_float", "bidirectional_inf", "embedding_inf",
        "nested_model", "reshape_float"])
def test_every_size_field_is_checked_before_use(model: dict[str, Any], pointer: str) -> None:
    with pytest.raises(InputFormatError) as err:
        translate_or_graph(model)
    assert [p.pointer for p in err.value.problems] == [pointer]


def test_a_keras_file_with_units_infinity_exits_2_naming_the_field(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from gradhealth.cli import main

    cfg = _seq(_dense("dense", 8, "relu"), _dense("dense_1", 1), shape=[4])
    text = json.dumps(cfg).replace('"units": 8', '"units": Infinity')  # Python's json reads the token
    path = tmp_path / "inf.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", text)
    assert main(["check", str(path), "--no-verify", "--seeds", "1"]) == 2  # not 3, "internal error"
    err = capsys.readouterr().err
    assert "/config/layers/1/config/units" in err and "dense (Dense)" in err


# --- .keras archives with hostile entries -----------------------------------------------------------------

def _archive(extra: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    cfg = _seq(_dense("dense", 8, "relu"), _dense("out", 1), shape=[4])
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of a duplicate name as it writes one
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("metadata.json", json.dumps({"keras_version": "3.6.0"}))
            zf.writestr("config.json", json.dumps(cfg))
            for name, data in extra:
                zf.writestr(name, data)
    return buf.getvalue()


def _link(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: the mode is in the high bits of external_attr
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


_OTHER = json.dumps(_seq(_dense("dense", 64, "sigmoid"), _dense("out", 1), shape=[16])).encode()


@pytest.mark.parametrize(("entry", "said"), [
    ("../../../tmp/pwned.txt", "'..'"), ("assets/../../pwned.txt", "'..'"), ("/etc/abs.txt", "absolute"),
    ("..\\pwned.txt", "Windows"), ("C:/pwned.txt", "Windows"), ("assets\\vocab.txt", "Windows"),
    ("config.json", "duplicate"), ("./config.json", "duplicate"), (_link("assets/vocab.txt"), "link"),
], ids=["dotdot", "dotdot_inside", "absolute", "backslash_dotdot", "drive", "backslash", "duplicate",
        "duplicate_dot", "symlink"])
def test_an_archive_with_a_hostile_entry_is_refused_naming_it(entry: str | zipfile.ZipInfo, said: str) -> None:
    data = _archive([(entry, _OTHER if "config" in str(entry) else b"/etc/passwd")])
    name = entry.filename if isinstance(entry, zipfile.ZipInfo) else entry
    for read in (lambda: read_keras(data), lambda: read_keras_weights(data, {}),
                 lambda: check_keras(data, seeds=1, verify=False)):
        with pytest.raises(InputFormatError) as err:
            read()
        assert repr(name) in err.value.detail and said in err.value.detail


def test_an_archive_with_ordinary_extra_entries_is_read() -> None:
    data = _archive([("assets/", b""), ("assets/vocab.txt", b"a\nb\n")])
    assert read_keras(data)[0]["config"]["layers"][1]["config"]["units"] == 8


# --- a per-output loss of a model with one output ---------------------------------------------------------

def _linear_bce(loss: Any) -> bytes:
    """kerassweep7 b09 / q02: a Dense(1) linear output compiled with binary cross-entropy."""
    cfg = _seq(_dense("dense", 32, "relu", init=_init("HeNormal")), _dense("dense_1", 1), shape=[10])
    return _keras3_zip({**cfg, "compile_config": {"loss": loss, "optimizer": "adam"}}, {})


def _loud(doc: Any) -> set[str]:
    return {f.code for f in doc.findings if f.severity in ("warning", "error")}


@pytest.mark.parametrize("loss", [{"dense_1": "binary_crossentropy"}, {"output_0": "binary_crossentropy"},
                                  [{"class_name": "BinaryCrossentropy", "config": {"from_logits": False}}]])
def test_one_outputs_entry_is_the_models_loss(loss: Any) -> None:
    plain = _linear_bce("binary_crossentropy")
    assert read_keras_training(_linear_bce(loss)).loss == read_keras_training(plain).loss == {
        "type": "binary_cross_entropy", "from_logits": False}
    found = _loud(check_keras(_linear_bce(loss), seeds=1, verify=False))
    assert found == _loud(check_keras(plain, seeds=1, verify=False)) and "output_loss_mismatch" in found


def test_per_output_losses_that_are_not_used_are_said() -> None:
    # one output, two entries of which neither names it: not guessed between, said
    doc = check_keras(_linear_bce({"a": "mse", "b": "binary_crossentropy"}), seeds=1, verify=False)
    assert "the compiled losses of a, b name no output of the model (its output: dense_1)" in doc.summary
    # several outputs (the three_heads file): an entry naming no output, a loss not simulated
    archive = (DATA / "three_heads.keras").read_bytes()
    config = json.loads(zipfile.ZipFile(io.BytesIO(archive)).read("config.json"))
    config["compile_config"]["loss"] = {"kind": "categorical_crossentropy", "size": "poisson",
                                        "aux": "binary_crossentropy", "extra": "mse"}
    zin, out = zipfile.ZipFile(io.BytesIO(archive)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item, json.dumps(config) if item.filename == "config.json" else zin.read(item))
    training = read_keras_training(out.getvalue())
    assert training.output_losses == {"kind": {"type": "cross_entropy", "from_logits": False}, "size": None,
                                      "aux": {"type": "binary_cross_entropy", "from_logits": False}}
    doc = check_keras(out.getvalue(), seeds=1, batch_size=8, verify=False)
    assert "the loss poisson of output size is not one the check simulates" in doc.summary
    assert "the compiled losses of extra name no output of the model" in doc.summary


def test_losses_keyed_by_a_dict_outputs_names_reach_their_layers() -> None:
    # keras.Model(inputs, outputs={"price": p, "category": c}) is compiled with losses by those keys
    config = {"class_name": "Functional", "config": {
        "name": "m", "layers": [], "output_layers": {"price": ["p", 0, 0], "category": ["c", 0, 0]}},
        "compile_config": {"loss": {"price": "mse", "category": "binary_crossentropy"}}}
    training = read_keras_training(json.dumps(config).encode())
    assert training.output_losses == {"p": "mse", "c": {"type": "binary_cross_entropy", "from_logits": False}}
    assert training.loss_notes == ()


# --- a weights entry this reader does not read ------------------------------------------------------------


class _Touch:
    """A pickle that, loaded, creates ``path``: what a pickled npz entry can run on a reader that loads it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return Path.touch, (str(self.path),)  # type: ignore[return-value]


def _npz_archive(marker: Path, entry: str = "model.weights.npz") -> bytes:
    """A Keras 3 archive whose weights are saved as Keras' NpzIOStore saves them (numpy's savez of
    object arrays, which only a pickle load restores), one of them a payload that touches ``marker``."""
    buf = io.BytesIO()
    np.savez(buf, **{"layers/dense/vars": np.array([_Touch(marker)], dtype=object)})
    return _archive([(entry, buf.getvalue())])


def test_npz_weights_are_said_unread_and_never_loaded(tmp_path: Path) -> None:
    """Keras 3's model.weights.npz is never unpickled: the check runs at Keras' initialisers and the
    summary says the file's weights were not read, and why, so no one takes it for a trained check."""
    marker = tmp_path / "ran"
    doc = check_keras(_npz_archive(marker), seeds=1, verify=False)
    assert "model.weights.npz was not read" in doc.summary and "pickle" in doc.summary
    assert "Keras' initialisers" in doc.summary
    assert not marker.exists()


def test_npz_weights_under_weights_as_given_are_refused_with_the_same_words(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(ModelError) as err:
        check_keras(_npz_archive(marker), seeds=1, verify=False, weights="as_given")
    assert "model.weights.npz was not read" in str(err.value) and "pickle" in str(err.value)
    assert not marker.exists()


def test_another_unknown_weights_entry_is_said_unread(tmp_path: Path) -> None:
    doc = check_keras(_npz_archive(tmp_path / "ran", entry="model.weights.safetensors"), seeds=1, verify=False)
    assert "model.weights.safetensors was not read" in doc.summary
    assert "model.weights.h5" in doc.summary  # the entry that is read, named
    with pytest.raises(ModelError):
        check_keras(_npz_archive(tmp_path / "ran", entry="model.weights.safetensors"), seeds=1, verify=False,
                    weights="as_given")


def test_an_archive_with_no_weights_entry_or_asked_to_reinitialise_says_nothing_of_one(tmp_path: Path) -> None:
    plain = check_keras(_archive([("assets/vocab.txt", b"a\nb\n")]), seeds=1, verify=False)
    assert "not read" not in plain.summary
    fresh = check_keras(_npz_archive(tmp_path / "ran"), seeds=1, verify=False, weights="reinitialise")
    assert "not read" not in fresh.summary and not (tmp_path / "ran").exists()


def test_the_cli_never_runs_an_npz_pickle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gradhealth.cli import main

    marker = tmp_path / "ran"
    path = tmp_path / "model.keras"
    path.write_bytes(_npz_archive(marker))
    assert main(["check", str(path), "--seeds", "1", "--no-verify"]) == 0
    assert "model.weights.npz was not read" in capsys.readouterr().out
    assert main(["check", str(path), "--seeds", "1", "--no-verify", "--weights", "as_given"]) == 2
    assert "model.weights.npz was not read" in capsys.readouterr().err
    assert not marker.exists()
