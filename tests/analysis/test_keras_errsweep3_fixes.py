"""errsweep3 F1, F2 and F4 (the Keras door): a damaged ``.keras`` zip member, a weight dataset that
declares a huge shape, and malformed HDF5 weight layouts are refused with a 4xx naming the zip
member or the HDF5 path, before any weight data is read."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.keras import (
    check_keras,
    read_keras_training,
    read_keras_weights,
    stores_weights,
)
from gradhealth.analysis.plan import Limits
from gradhealth.errors import InputFormatError, LimitExceeded, LogError

CFG: dict[str, Any] = {"class_name": "Sequential", "config": {"name": "s", "layers": [
    {"class_name": "InputLayer", "config": {"batch_shape": [None, 8], "name": "in"}},
    {"class_name": "Dense", "config": {"name": "d1", "units": 4, "activation": "relu"}},
    {"class_name": "Dense", "config": {"name": "d2", "units": 3, "activation": "linear"}}]}}


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            z.writestr(name, data)
    return buf.getvalue()


def _h5(build: Callable[[h5py.File], None]) -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        build(f)
    return buf.getvalue()


def _keras(weights: Callable[[h5py.File], None]) -> bytes:
    return _zip([("config.json", json.dumps(CFG).encode()), ("model.weights.h5", _h5(weights))])


def _legacy(weights: Callable[[h5py.Group], None]) -> bytes:
    """A Keras 2 .h5: model_config plus a model_weights group ``weights`` fills."""
    def build(f: h5py.File) -> None:
        f.attrs["model_config"] = json.dumps(CFG)
        weights(f.create_group("model_weights"))
    return _h5(build)


# --- F1: a .keras entry that cannot be decompressed ------------------------------------------------

def _damaged(how: str, first: str = "config.json") -> bytes:
    """A .keras archive (``first`` the first entry) with that entry damaged ``how``."""
    other = "model.weights.h5" if first == "config.json" else "config.json"
    entries = {"config.json": json.dumps(CFG).encode(), "model.weights.h5": _h5(lambda f: None)}
    lead = [("a.txt", b"x")] if how == "local header" else []  # the archive still starts with PK\3\4
    b = bytearray(_zip([*lead, (first, entries[first] * 3), (other, entries[other])]))
    i = b.find(b"PK\x03\x04", 4 if lead else 0)
    j = b.find(b"PK\x01\x02") if not lead else b.find(b"PK\x01\x02", b.find(b"PK\x01\x02") + 4)
    if how == "encrypted":
        b[i + 6] |= 1
        b[j + 8] |= 1
    elif how in ("deflate64", "aes"):
        method = struct.pack("<H", 9 if how == "deflate64" else 99)
        b[i + 8:i + 10] = method
        b[j + 10:j + 12] = method
    elif how == "crc":
        b[i + 14] ^= 0xFF
        b[j + 16] ^= 0xFF
    elif how == "deflate data":
        start = i + 30 + struct.unpack("<H", b[i + 26:i + 28])[0] + struct.unpack("<H", b[i + 28:i + 30])[0]
        b[start:start + 20] = b"\xff" * 20
    elif how == "local header":
        b[i:i + 4] = b"XXXX"
    return bytes(b)


_REASONS = {"encrypted": "encrypted", "deflate64": r"compression method 9 \(deflate64\)",
            "aes": r"compression method 99 \(AES", "crc": "CRC", "deflate data": "compressed data is corrupt",
            "local header": "local header is damaged"}


@pytest.mark.parametrize("how", list(_REASONS))
def test_a_config_entry_that_cannot_be_decompressed_is_refused_naming_it(how: str) -> None:
    with pytest.raises(InputFormatError, match=rf"config\.json in the \.keras archive cannot be read: .*"
                                               rf"{_REASONS[how]}") as err:
        read_keras_training(_damaged(how))
    assert err.value.status == 400 and err.value.problems[0].pointer == "config.json"


@pytest.mark.parametrize("how", ["encrypted", "deflate64", "crc", "deflate data"])
def test_a_weights_entry_that_cannot_be_decompressed_is_refused_naming_it(how: str) -> None:
    data = _damaged(how, first="model.weights.h5")
    config = read_keras_training(data).config  # config.json itself is whole
    with pytest.raises(InputFormatError, match=r"model\.weights\.h5 in the \.keras archive cannot be read"):
        read_keras_weights(data, config)


def test_a_metadata_entry_that_cannot_be_decompressed_is_refused() -> None:
    b = bytearray(_zip([("metadata.json", b'{"keras_version": "3.3.0"}' * 5), ("config.json", json.dumps(CFG).encode())]))
    i, j = b.find(b"PK\x03\x04"), b.find(b"PK\x01\x02")
    b[i + 14] ^= 0xFF
    b[j + 16] ^= 0xFF
    with pytest.raises(InputFormatError, match=r"metadata\.json in the \.keras archive cannot be read.*CRC"):
        read_keras_training(bytes(b))


@pytest.mark.parametrize("how", ["encrypted", "aes", "crc", "local header"])
def test_the_model_door_answers_400_for_a_damaged_keras_zip(idle_api: Any, how: str) -> None:
    r = idle_api.post("/v1/checks/model", files={"file": ("m.keras", _damaged(how))})
    assert r.status_code == 400, r.text
    assert "config.json in the .keras archive cannot be read" in r.json()["detail"]


def test_the_log_archive_reader_keeps_its_messages(tmp_path: Path) -> None:
    """logs/archive.py reads members through the same helper, its refusals worded as before."""
    from gradhealth.logs.archive import extract
    from gradhealth.logs.readers.registry import ReadLimits

    for how, message in (("encrypted", r"the entry 'config\.json' is encrypted"),
                         ("crc", r"not a readable zip archive \(Bad CRC-32"),
                         ("deflate64", r"not a readable zip archive \(compression method 9")):
        path = tmp_path / f"{how}.zip"
        path.write_bytes(_damaged(how))
        dest = tmp_path / how
        dest.mkdir()
        with pytest.raises(LogError, match=message):
            extract(path, "zip", dest, ReadLimits())


# --- F2: a declared shape is checked before anything is read -----------------------------------------

@pytest.fixture
def nothing_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any read of a dataset's data fails the test (its metadata may be read)."""
    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("a dataset was read")
    for name in ("__array__", "__getitem__", "read_direct"):
        monkeypatch.setattr(h5py.Dataset, name, refuse)


def _huge_kernel(n: int, units: int = 4) -> Callable[[h5py.File], None]:
    def build(f: h5py.File) -> None:  # declared, never written: a few hundred bytes in the file
        g = f.create_group("layers/dense/vars")
        g.create_dataset("0", shape=(n, units), dtype="f4", chunks=(min(n, 1000), units), compression="gzip")
        g.create_dataset("1", data=np.zeros(units, "f4"))
    return build


def test_a_kernel_declared_far_larger_than_the_config_builds_is_refused_unread(nothing_read: None) -> None:
    def build(f: h5py.File) -> None:
        g = f.create_group("layers/dense/vars")
        g.create_dataset("0", shape=(200_000, 200_000), dtype="f4", chunks=(1000, 1000), compression="gzip")
        g.create_dataset("1", data=np.zeros(4, "f4"))
    data = _keras(build)
    assert len(data) < 20_000
    with pytest.raises(ModelError, match=r"d1: stored weight of shape \[200000, 200000\] where the config "
                                         r"builds \[4, \?\] \(at model\.weights\.h5:/layers/dense/vars/0\)"):
        read_keras_weights(data, CFG)


def test_a_legacy_h5_kernel_of_a_huge_declared_shape_is_refused_unread(nothing_read: None) -> None:
    def weights(g: h5py.Group) -> None:
        g.attrs["layer_names"] = [b"d1"]
        d = g.create_group("d1")
        d.attrs["weight_names"] = [b"d1/kernel:0", b"d1/bias:0"]
        d.create_dataset("d1/kernel:0", shape=(200_000, 200_000), dtype="f4", chunks=(1000, 1000),
                         compression="gzip")
        d.create_dataset("d1/bias:0", data=np.zeros(4, "f4"))
    with pytest.raises(ModelError, match=r"/model_weights/d1/d1/kernel:0"):
        read_keras_weights(_legacy(weights), CFG)


def test_a_dataset_over_the_parameter_limit_is_refused_unread(nothing_read: None) -> None:
    # the shape the config fixes ([?, 4]) is kept: only the limit refuses it
    with pytest.raises(LimitExceeded, match=r"model\.weights\.h5:/layers/dense/vars/0 \(layer d1\) declares "
                                            r"8,000 values .* the limit is 1,000 parameters"):
        read_keras_weights(_keras(_huge_kernel(2000)), CFG, Limits(max_parameters=1000))


def test_datasets_whose_sum_is_over_the_parameter_limit_are_refused_unread(nothing_read: None) -> None:
    def build(f: h5py.File) -> None:
        _huge_kernel(200)(f)  # 800 values
        g = f.create_group("layers/dense_1/vars")
        g.create_dataset("0", shape=(4, 3), dtype="f4")
        g.create_dataset("1", shape=(3,), dtype="f4")
    with pytest.raises(LimitExceeded, match=r"declare 819 values in 4 arrays; the limit is 810"):
        read_keras_weights(_keras(build), CFG, Limits(max_parameters=810))


def test_reinitialise_reads_no_weight_data(nothing_read: None) -> None:
    assert stores_weights(_keras(_huge_kernel(10**8)), CFG)


def test_weights_within_the_limits_are_still_read() -> None:
    def build(f: h5py.File) -> None:
        _huge_kernel(8)(f)
        g = f.create_group("layers/dense_1/vars")
        g.create_dataset("0", data=np.ones((4, 3), "f4"))
        g.create_dataset("1", data=np.zeros(3, "f4"))
    found = read_keras_weights(_keras(build), CFG)
    assert found is not None and [a.shape for a in found["d2"]] == [(4, 3), (3,)]


# --- F4: malformed HDF5 weight layouts ----------------------------------------------------------------

def _layer(names: list[bytes], fill: Callable[[h5py.Group], None]) -> Callable[[h5py.Group], None]:
    def weights(g: h5py.Group) -> None:
        g.attrs["layer_names"] = [b"d1"]
        d = g.create_group("d1")
        d.attrs["weight_names"] = names
        fill(d)
    return weights


_LEGACY: dict[str, tuple[Callable[[h5py.Group], None], str]] = {
    "layer_names an int": (lambda g: g.attrs.__setitem__("layer_names", 5),
                           r"/model_weights attribute layer_names: a number \(5\), not a list of names"),
    "layer_names of numbers": (lambda g: g.attrs.__setitem__("layer_names", [1, 2]),
                               r"/model_weights attribute layer_names: holds '1', not a name"),
    "weight_names a string": (lambda g: (g.attrs.__setitem__("layer_names", [b"d1"]),
                                         g.create_group("d1").attrs.__setitem__("weight_names", "k")),
                              r"/model_weights/d1 attribute weight_names: a single string"),
    "weight a group": (_layer([b"sub"], lambda d: d.create_group("sub")),
                       r"/model_weights/d1/sub: a group, not a weight array"),
    "compound weight": (_layer([b"k"], lambda d: d.create_dataset("k", data=np.zeros((8, 4), [("a", "f4"), ("b", "i4")]))),
                        r"/model_weights/d1/k: a compound \(record\) dataset, not a number array"),
    "string weight": (_layer([b"k"], lambda d: d.create_dataset("k", data=np.array([b"abc"] * 32).reshape(8, 4))),
                      r"/model_weights/d1/k: a string dataset, not a number array"),
    "layer a dataset": (lambda g: (g.attrs.__setitem__("layer_names", [b"d1"]), g.create_dataset("d1", data=[1.0])),
                        r"/model_weights/d1: a dataset where a group is expected"),
}


@pytest.mark.parametrize("case", list(_LEGACY))
def test_malformed_legacy_weights_are_refused_naming_the_hdf5_path(case: str) -> None:
    weights, message = _LEGACY[case]
    data = _legacy(weights)
    with pytest.raises(InputFormatError, match=message) as err:
        read_keras_weights(data, CFG)
    assert err.value.status == 400
    with pytest.raises(InputFormatError, match=message):  # the job's path: the same refusal
        check_keras(data, seeds=1, verify=False)


def test_model_weights_that_is_a_dataset_is_refused() -> None:
    def build(f: h5py.File) -> None:
        f.attrs["model_config"] = json.dumps(CFG)
        f.create_dataset("model_weights", data=[1.0])
    with pytest.raises(InputFormatError, match=r"/model_weights: a dataset where a group is expected"):
        read_keras_weights(_h5(build), CFG)


_KERAS3: dict[str, tuple[Callable[[h5py.File], None], str]] = {
    "layers a dataset": (lambda f: f.create_dataset("layers", data=np.zeros(3)),
                         r"model\.weights\.h5:/layers: a dataset where a group is expected"),
    "layer a dataset": (lambda f: f.create_dataset("layers/dense", data=np.zeros(3)),
                        r"model\.weights\.h5:/layers/dense: a dataset where a group is expected \(layer d1\)"),
    "vars a dataset": (lambda f: f.create_dataset("layers/dense/vars", data=np.zeros(3)),
                       r"model\.weights\.h5:/layers/dense/vars: a dataset where a group is expected"),
    "var a group": (lambda f: f.create_group("layers/dense/vars/0"),
                    r"model\.weights\.h5:/layers/dense/vars/0: a group, not a weight array"),
    "string var": (lambda f: f.create_dataset("layers/dense/vars/0", data=np.array([b"x"] * 32).reshape(8, 4)),
                   r"model\.weights\.h5:/layers/dense/vars/0: a string dataset"),
    "complex var": (lambda f: f.create_dataset("layers/dense/vars/0", data=np.zeros((8, 4), np.complex64)),
                    r"model\.weights\.h5:/layers/dense/vars/0: a dataset of type complex64, not a number array"),
}


@pytest.mark.parametrize("case", list(_KERAS3))
def test_malformed_keras3_weights_are_refused_naming_the_hdf5_path(case: str) -> None:
    build, message = _KERAS3[case]
    with pytest.raises(InputFormatError, match=message):
        read_keras_weights(_keras(build), CFG)


def test_a_conv_kernel_of_the_wrong_rank_is_refused_before_loading() -> None:
    """The loader transposes a Conv kernel by its rank: a 1-D one was a numpy error (a 500)."""
    cfg = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 8, 8, 3], "name": "in"}},
        {"class_name": "Conv2D", "config": {"name": "c", "filters": 5, "kernel_size": [3, 3]}}]}}

    def weights(g: h5py.Group) -> None:
        g.attrs["layer_names"] = [b"c"]
        d = g.create_group("c")
        d.attrs["weight_names"] = [b"k", b"b"]
        d.create_dataset("k", data=np.zeros(7, "f4"))
        d.create_dataset("b", data=np.zeros(5, "f4"))
    with pytest.raises(ModelError, match=r"c: stored weight of shape \[7\] where the config builds \[5, \?, 3, 3\]"):
        read_keras_weights(_legacy(weights), cfg)
