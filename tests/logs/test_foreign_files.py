"""Files that are no training log but are often sent as one (newuser14 #3, #4): a PyTorch checkpoint,
a pickle, NumPy arrays, a Keras model, an image. They are refused saying what they are and where to
check them, before a job is queued (the upload's 415) and before any member of a checkpoint's zip is
extracted; and a binary file no one names is refused without searching its megabytes line by line
for a console's lines (a 4 MB .npy took 15-25 s to refuse)."""

from __future__ import annotations

import io
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from gradhealth.errors import UnknownLogFormat
from gradhealth.logs import archive, load, sniff
from gradhealth.logs.readers.text import READER as TEXT


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _files(tmp: Path) -> dict[str, tuple[Path, str]]:
    """(file, what its refusal must name) for each kind, written as their own tools write them."""
    out: dict[str, tuple[Path, str]] = {}
    torch.save({"w": torch.randn(8, 8)}, tmp / "ckpt.pt")
    out["torch_zip"] = (tmp / "ckpt.pt", "PyTorch checkpoint")
    torch.save({"w": torch.randn(4)}, tmp / "old.pth", _use_new_zipfile_serialization=False)
    out["torch_legacy"] = (tmp / "old.pth", "pickle")
    np.save(tmp / "arr.npy", np.random.default_rng(0).standard_normal(1000))
    out["npy"] = (tmp / "arr.npy", "NumPy array")
    np.savez(tmp / "arrs.npz", a=np.ones(3), b=np.zeros(2))
    out["npz"] = (tmp / "arrs.npz", "NumPy arrays")
    out["keras"] = (_zip(tmp / "m.keras", {"metadata.json": b"{}", "config.json": b"{}",
                                           "model.weights.h5": b"\x89HDF\r\n\x1a\n"}), "Keras model")
    (tmp / "model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(600))
    out["hdf5"] = (tmp / "model.h5", "HDF5")
    (tmp / "loss.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(600))
    out["png"] = (tmp / "loss.png", "PNG image")
    header = b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}'
    (tmp / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    out["safetensors"] = (tmp / "model.safetensors", "safetensors")
    return out


@pytest.mark.parametrize("kind", ["torch_zip", "torch_legacy", "npy", "npz", "keras", "hdf5", "png", "safetensors"])
def test_a_file_that_is_no_log_is_named_in_its_refusal(tmp_path, kind):
    path, named = _files(tmp_path)[kind]
    for call in (load.read_log, load.detect):
        with pytest.raises(UnknownLogFormat, match=named) as e:
            call(path)
        assert str(e.value).startswith(f"{path.name} is ")
        assert "not a training log" in str(e.value)


def test_a_checkpoints_zip_is_never_extracted(tmp_path, monkeypatch):
    """Its members (a pickle among them) are judged by the names in the central directory only."""
    path, _ = _files(tmp_path)["torch_zip"]

    def extract(*args: object, **kwargs: object) -> None:
        raise AssertionError("a checkpoint was extracted")

    monkeypatch.setattr(archive, "extract", extract)
    with pytest.raises(UnknownLogFormat, match="never loaded here"):
        load.read_log(path)


def test_an_archive_of_logs_with_other_files_is_still_read(tmp_path):
    """A zip of a run folder is no model because it holds a config.json or an array beside its logs."""
    rows = "".join(f"{s},{2.0 / (1 + s):.5f}\n" for s in range(60))
    path = _zip(tmp_path / "run.zip", {"run/config.json": b"{}", "run/metrics.csv": ("step,loss\n" + rows).encode(),
                                       "run/embeddings.npy": b"\x93NUMPY" + bytes(100)})
    assert load.detect(path) == "zip"
    assert load.read_log(path).first("loss") is not None


def test_an_archive_that_holds_no_log_is_called_an_archive(tmp_path):
    path = _zip(tmp_path / "stuff.zip", {"notes/readme.md": b"hello\n", "notes/data.bin": os.urandom(300)})
    with pytest.raises(UnknownLogFormat, match="no file in this archive is a log format"):
        load.read_log(path)


def test_binary_bytes_are_not_searched_for_a_consoles_lines(tmp_path, monkeypatch):
    """Random bytes (an array's floats, a file of no known kind): each 64 KB window past the head is
    seen to be binary, and the text reader's search of a window is never run on one."""
    calls: list[int] = []
    real = TEXT.sniff_within

    def counted(filename: str, window: bytes) -> float:
        calls.append(len(window))
        return real(filename, window)

    monkeypatch.setattr(type(TEXT), "sniff_within", lambda self, f, w: counted(f, w))
    path = tmp_path / "blob.bin"
    path.write_bytes(np.random.default_rng(1).standard_normal(200_000).tobytes())  # 1.6 MB of float64
    with pytest.raises(UnknownLogFormat, match="not a log format"):
        load.read_log(path)
    assert calls == []


def test_a_console_after_a_long_dump_is_still_found_past_the_head(tmp_path):
    """The search the binary check guards: a text log whose first training line is past its head
    (an environment and config dump of 100 KB) is still read, with non-ASCII text in the dump."""
    dump = "".join(f"env.setting_{i} = 'é ü {i}' plain words here\n" for i in range(2500))
    lines = "".join(f"Epoch [1][{s}/500] lr: 1.000e-02, loss: {2.0 / (1 + s / 50):.4f}\n" for s in range(10, 500, 10))
    path = tmp_path / "train.log"
    path.write_text(dump + lines, encoding="utf-8")
    assert len(dump.encode()) > sniff.HEAD_BYTES
    assert load.detect(path) == "text"
    assert load.read_log(path).first("loss") is not None


def test_the_binary_window_test_against_its_bound():
    text = ("loss: 0.5 — naïve ünïcode step 3\n" * 2000).encode()
    assert not sniff.binary_window(text)
    assert sniff.binary_window(bytes(4096))  # NUL padding
    blob = io.BytesIO()
    blob.write(os.urandom(65536))
    assert sniff.binary_window(blob.getvalue())
    # a text window with a few stray bytes stays text: under an eighth of its bytes
    mixed = bytearray(text[:8000])
    mixed[::20] = b"\x01" * len(mixed[::20])
    assert not sniff.binary_window(bytes(mixed))


@pytest.mark.parametrize(("name", "text"), [
    ("net.yaml", "# a spec\nname: mlp\ninput:\n  shape: [16]\nlayers:\n  - {type: linear, out_features: 4}\n"),
    ("net.yml", "{input: {shape: [16]}, layers: [{type: linear, out_features: 4}]}\n"),
    ("net.json", '{"name": "mlp", "input": {"shape": [16]},\n "layers": [{"type": "linear", "out_features": 4}]}'),
])
def test_an_architecture_spec_is_pointed_at_the_architecture_route(tmp_path, name, text):
    # newuser16 #9: the log route gave a spec the generic 415, the model route the way to go
    path = tmp_path / name
    path.write_text(text)
    for call in (load.read_log, load.detect):
        with pytest.raises(UnknownLogFormat, match="architecture spec") as e:
            call(path)
        assert str(e.value).startswith(f"{name} is ") and "POST /v1/checks/architecture" in str(e.value)


def test_a_log_with_an_input_column_is_still_read(tmp_path):
    # only a file no reader takes is named a spec: a table naming `input` and `layers` is a log
    path = tmp_path / "metrics.csv"
    path.write_text("step,loss,input,layers\n" + "".join(f"{i},{1 / (i + 1)},1,2\n" for i in range(30)))
    assert {s.name for s in load.read_log(path).series} >= {"loss", "input", "layers"}
