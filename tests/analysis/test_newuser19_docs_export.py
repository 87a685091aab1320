"""newuser19 #1: the ONNX export lines docs/models.md gives (the dynamo one with ``optimize=False`` and
the TorchScript variant), run as written on a small model, write one self-contained file (no
``model.onnx.data`` beside it) that the upload's own static check accepts; and every export call the
docs write out keeps ``external_data=False``, since torch's default writes the weights beside the file
and the upload refuses that."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from gradhealth.analysis.importers.onnx_static import read_header

ROOT = Path(__file__).resolve().parents[2]
MODELS_MD = (ROOT / "docs" / "models.md").read_text(encoding="utf-8")


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _dynamo_call() -> str:
    found = re.search(r'`(torch\.onnx\.export\(model, \(x,\), "model\.onnx",[^`]*dynamo=True[^`]*\))`',
                      _one_line(MODELS_MD))
    assert found, "docs/models.md no longer gives the dynamo export line"
    return found.group(1)


def _torchscript_call() -> str:
    found = re.search(r"with the TorchScript exporter, `([^`]*)`", _one_line(MODELS_MD))
    assert found, "docs/models.md no longer gives the TorchScript export options"
    return f'torch.onnx.export(model, (x,), "model.onnx", {found.group(1)})'


@pytest.mark.parametrize("call", [_dynamo_call, _torchscript_call], ids=["dynamo", "torchscript"])
def test_the_documented_export_writes_a_file_the_upload_accepts(call, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxscript")
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    # large enough that torch's default would store its weights outside the file
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 14 * 14, 10))
    x = torch.randn(2, 3, 16, 16)
    with warnings.catch_warnings():  # torch's notes on the legacy exporter and on training mode
        warnings.simplefilter("ignore")
        exec(compile(call(), "docs/models.md (export)", "exec"), {"torch": torch, "model": model, "x": x})  # noqa: S102
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    # the upload's own check (POST /v1/checks/model, torch-free): refuses external data, among others
    read_header((tmp_path / "model.onnx").read_bytes(), file_name="model.onnx")


def test_every_export_call_in_the_docs_keeps_the_data_inside_the_file() -> None:
    texts = {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8")
             for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}
    calls = [(name, m.group(0)) for name, text in texts.items()
             for m in re.finditer(r"torch\.onnx\.export\([^`]*\.onnx[^`]*\)", _one_line(text))]
    assert calls, "no export call found in the docs"
    assert [c for c in calls if "external_data=False" not in c[1]] == []
