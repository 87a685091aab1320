"""newuser15 #6: the GitHub annotation of a model file's vanishing gradient said "Possible fixes, not
simulated (check without --no-verify to see which work)" although --no-verify was not given and one
remedy was verified to fix it on fresh weights; Code Quality named an unverified structural change as
its suggestion. The verified remedy is named; --no-verify is named only where it was given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gradhealth.cli import main
from tests.analysis.onnx_models import export, mlp


@pytest.fixture(scope="module")
def sigmoid_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("onnx") / "mlp.onnx"
    path.write_bytes(export(mlp(torch.nn.Sigmoid, depth=12), torch.randn(8, 64)))
    return path


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    main(["check", *args, "--seeds", "1"])
    return capsys.readouterr().out


def test_verified_check_names_the_verified_remedy(sigmoid_onnx: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads(_run([str(sigmoid_onnx), "--format", "json"], capsys))
    [f] = [f for f in doc["findings"] if f["code"] == "vanishing_gradient"]
    fixed = [r["id"] for r in f["remedies"] if (r.get("verified") or {}).get("fixed")]
    assert fixed, "the setting of the bug: a remedy verified to fix it (on fresh weights)"
    github = _run([str(sigmoid_onnx), "--format", "github"], capsys)
    line = next(x for x in github.splitlines() if "vanishing_gradient" in x)
    # (weights read as a fresh initialisation name it as the fix; a checkpoint's as a suggestion)
    assert "--no-verify" not in line
    assert f"Fix: {fixed[0]}:" in line or f"Suggested: {fixed[0]}:" in line
    quality = json.loads(_run([str(sigmoid_onnx), "--format", "codeclimate"], capsys))
    [issue] = [i for i in quality if i["check_name"] == "vanishing_gradient"]
    assert f"fix: {fixed[0]}:" in issue["description"] or f"suggested: {fixed[0]}:" in issue["description"]


def test_no_verify_still_says_so(sigmoid_onnx: Path, capsys: pytest.CaptureFixture[str]) -> None:
    github = _run([str(sigmoid_onnx), "--no-verify", "--format", "github"], capsys)
    line = next(x for x in github.splitlines() if "vanishing_gradient" in x)
    assert "check without --no-verify" in line
