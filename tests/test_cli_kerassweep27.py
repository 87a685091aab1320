"""kerassweep27: `--loss` takes every loss a model file's check takes (one list: the spec's loss types,
the model route's and check_onnx/check_keras's), where it offered cross_entropy and mse only while the
docs told Keras users to give binary_cross_entropy; `gradhealth fix` on a model file says what it
applies to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import pytest
import torch
from torch import nn

from gradhealth import check_onnx
from gradhealth.analysis.spec import LossType
from gradhealth.cli import main
from gradhealth.core.losses import LOSSES
from tests.analysis.onnx_models import export
from tests.analysis.test_keras_import import _dense, _seq


def test_the_loss_list_is_the_specs() -> None:
    assert set(LOSSES) == set(get_args(LossType))


@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_is_a_cli_choice_for_a_keras_file(tmp_path: Path, loss: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps(_seq(_dense("hidden", 8, "relu"), _dense("out", 1), shape=[6])))
    code = main(["check", str(path), "--loss", loss, "--seeds", "1", "--no-verify", "--no-progress",
                 "--format", "json"])
    out = capsys.readouterr()
    assert code in (0, 1), out.err
    assert json.loads(out.out)["simulation"]["loss"] == loss


def test_an_unknown_loss_is_refused_by_each_check_naming_the_list(tmp_path: Path) -> None:
    from gradhealth import check_keras
    from gradhealth.errors import GradHealthError

    with pytest.raises(GradHealthError, match="binary_cross_entropy"):
        check_keras(_seq(_dense("out", 1), shape=[3]), loss="bce", seeds=1)
    torch.manual_seed(0)
    data = export(nn.Sequential(nn.Linear(4, 1)), torch.randn(8, 4))
    with pytest.raises(GradHealthError, match="binary_cross_entropy"):
        check_onnx(data, loss="bce", seeds=1)


def test_binary_cross_entropy_given_for_an_onnx_sigmoid_head_is_the_implied_one() -> None:
    # given, it is taken on the logits before the file's sigmoid, as the loss the check implies is:
    # not BCE-with-logits over the sigmoid's probabilities (a second sigmoid)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1), nn.Sigmoid())
    data = export(net, torch.randn(8, 6))
    implied = check_onnx(data, seeds=2, verify=False)
    given = check_onnx(data, loss="binary_cross_entropy", seeds=2, verify=False)
    # (BCE on the file's sigmoid probabilities: the same gradients as BCE-with-logits before it)
    assert implied.simulation.loss == given.simulation.loss == "binary_cross_entropy (on probabilities)"
    assert [u.grad_norm for u in given.layers] == pytest.approx([u.grad_norm for u in implied.layers], rel=1e-9)
    assert not any(f.code == "output_loss_mismatch" for f in given.findings)


@pytest.mark.parametrize("suffix", [".json", ".onnx"])
def test_fix_refuses_a_model_file_in_words(tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]) -> None:
    # kerassweep27 catsdogs_cnn_json: `gradhealth fix model.json` answered with the spec schema's field errors
    # ("/input: Field required; /layers: Field required; /class_name: unknown field")
    path = tmp_path / f"model{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(_seq(_dense("hidden", 8, "relu"), _dense("out", 1, "sigmoid"), shape=[6])))
    else:
        torch.manual_seed(0)
        path.write_bytes(export(nn.Sequential(nn.Linear(4, 1), nn.Sigmoid()), torch.randn(8, 4)))
    assert main(["fix", str(path), "--remedy", "output_activation"]) == 2
    err = capsys.readouterr().err
    assert "applies a remedy's patch to an architecture spec" in err and "model file" in err
    assert "Field required" not in err
