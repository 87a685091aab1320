"""peersweep19 (Defect4ML pairs): the one-unit softmax remedy simulated under a loss it did not fit
(d4ml086/092: a sigmoid re-simulated under binary cross-entropy on logits, a sigmoid applied twice,
read "not fixed"), and the healthy summary of a sigmoid per class under categorical cross-entropy
(d4ml099/100: "0 of the samples pass no gradient")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from gradhealth.analysis.importers.keras import check_keras
from gradhealth.analysis.module_check import check_module
from gradhealth.library import check_architecture
from tests.analysis.test_keras_import import _dense, _seq
from tests.analysis.test_output_loss_mismatch import _init_he


def _mismatch(doc: Any) -> Any:
    [f] = [f for f in doc.findings if f.code == "output_loss_mismatch"]
    return f


def _head(softmax: bool) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1)]
    return nn.Sequential(*layers, nn.Softmax(dim=-1)) if softmax else nn.Sequential(*layers)


@pytest.mark.parametrize("loss", ["binary_cross_entropy", "cross_entropy"])
def test_a_live_softmax_over_one_unit_is_fixed_by_its_logit_under_a_loss_on_logits(loss: str) -> None:
    # independently: the softmax over one unit passes exactly no gradient, the logit under
    # BCE-with-logits does (the loss a live module's binary_cross_entropy is)
    x = torch.randn(64, 8)
    model = _head(softmax=True)
    F.binary_cross_entropy(model(x).clamp(1e-7, 1 - 1e-7), torch.ones(64, 1)).backward()
    assert float(model[2].weight.grad.abs().sum()) == 0.0
    logit = _head(softmax=False)
    F.binary_cross_entropy_with_logits(logit(x), torch.randint(2, (64, 1)).float()).backward()
    assert float(logit[2].weight.grad.abs().sum()) > 0.0

    f = _mismatch(check_module(_head(softmax=True), x, loss=loss, seeds=2))
    assert f.severity == "error" and f.evidence.value == 1.0
    [r] = f.remedies
    assert r.id == "output_activation" and r.verified is not None
    # a sigmoid in its place was simulated under the loss's own sigmoid (0.726 of the samples read
    # "silent", not fixed, not recommended): the logit is the change, and it fixes it
    assert r.verified.fixed and r.recommended and r.verified.after == 0.0
    assert "nn.Sigmoid" not in r.snippet and "BCEWithLogitsLoss" in r.snippet
    if loss == "binary_cross_entropy":
        assert "return its logit" in r.change and "applied twice" in r.change
    # the network as the remedy leaves it: no mismatch
    assert not [g for g in check_module(_head(softmax=False), x, loss="binary_cross_entropy", seeds=2).findings
                if g.code == "output_loss_mismatch"]


@pytest.mark.parametrize("from_logits", [False, True])
def test_a_keras_softmax_over_one_unit_gets_the_change_its_loss_takes(tmp_path: Path, from_logits: bool) -> None:
    # Keras' binary_crossentropy on probabilities: Dense(1, sigmoid); on logits: Dense(1) linear
    cfg = _seq(_dense("d1", 32, "relu", _init_he()), _dense("out", 1, "softmax"), shape=[16])
    loss = {"class_name": "BinaryCrossentropy", "config": {"from_logits": from_logits}}
    path = tmp_path / "m.json"
    path.write_text(json.dumps({**cfg, "compile_config": {"loss": loss}}))
    [r] = _mismatch(check_keras(path, seeds=2)).remedies
    assert r.verified is not None and r.verified.fixed and r.verified.after == 0.0
    assert ("return its logit" in r.change) == from_logits
    assert ("with sigmoid" in r.change) == (not from_logits)


def test_a_keras_softmax_over_one_unit_under_categorical_cross_entropy_on_logits(tmp_path: Path) -> None:
    # the softmax Keras folds into the loss on logits is the one over the unit: binary cross-entropy
    # on its logit, not a sigmoid under the folded softmax (simulated so: "not fixed" at 0.726)
    cfg = _seq(_dense("d1", 32, "relu", _init_he()), _dense("out", 1, "softmax"), shape=[16])
    loss = {"class_name": "CategoricalCrossentropy", "config": {"from_logits": True}}
    path = tmp_path / "m.json"
    path.write_text(json.dumps({**cfg, "compile_config": {"loss": loss}}))
    [r] = _mismatch(check_keras(path, seeds=2)).remedies
    assert r.verified is not None and r.verified.fixed and r.verified.after == 0.0


def test_a_spec_unit_under_cross_entropy_on_probabilities_gets_its_sigmoid() -> None:
    # binary cross-entropy on probabilities of a raw linear unit clips most of it: the patch puts
    # the sigmoid its words name on the unit
    spec = {"input": {"shape": [8]}, "seeds": 2, "loss": {"type": "cross_entropy", "from_logits": False},
            "layers": [{"type": "linear", "out_features": 16, "activation": "relu"},
                       {"type": "linear", "out_features": 1}]}
    [r] = _mismatch(check_architecture(spec)).remedies
    assert {"op": "add", "path": "/layers/1/activation", "value": "sigmoid"} in r.patch
    assert r.verified is not None and r.verified.fixed and r.verified.after == 0.0


def test_the_healthy_summary_of_sigmoids_per_class_under_cross_entropy_says_what_the_finding_says() -> None:
    # d4ml100 fixed: a sigmoid per class under categorical cross-entropy on probabilities (Keras divides
    # them by their sum). The note's value is the clip's silent share, 0 here, which the summary read as
    # "0 of the samples pass no gradient"
    spec = {"input": {"shape": [20], "range": [0, 1]}, "seeds": 2, "batch_size": 32,
            "loss": {"type": "cross_entropy", "from_logits": False},
            "layers": [{"type": "linear", "out_features": 32, "activation": "relu", "init": "xavier_uniform"},
                       {"type": "linear", "out_features": 10, "activation": "sigmoid", "init": "xavier_uniform"}]}
    doc = check_architecture(spec)
    assert doc.status == "healthy" and _mismatch(doc).severity == "info"
    assert "pass no gradient" not in doc.summary
    assert "10 sigmoids, one per class" in doc.summary and "about half the softmax's gradient" in doc.summary
    # the "about half", independently: at logits 0 each logit's gradient through sigmoids divided by
    # their sum is the softmax cross-entropy's times 1 - s = 1/2
    z1 = torch.zeros(1, 10, dtype=torch.float64, requires_grad=True)
    s = torch.sigmoid(z1)
    F.nll_loss(torch.log(s / s.sum(-1, keepdim=True)), torch.tensor([3])).backward()
    z2 = torch.zeros(1, 10, dtype=torch.float64, requires_grad=True)
    F.cross_entropy(z2, torch.tensor([3])).backward()
    assert z1.grad is not None and z2.grad is not None
    assert torch.allclose(z1.grad, 0.5 * z2.grad)


_CONV = "import torch, torch.nn as nn; torch.manual_seed(0)\nconv = nn.Conv1d(4, 8, 4, padding='same')\n"
_RUNS = {
    "module": _CONV + ("from gradhealth import check_module\n"
                       "m = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(80, 3))\n"
                       "check_module(m, torch.randn(16, 4, 10), seeds=1)\n"),
    "spec": ("from gradhealth import check_architecture\n"
             "check_architecture({'input': {'shape': [4, 10]}, 'seeds': 1, 'layers': [{'type': 'conv1d', "
             "'out_channels': 8, 'kernel_size': 4, 'padding': 'same', 'activation': 'relu'}, {'type': 'flatten'}, "
             "{'type': 'linear', 'out_features': 3}]})\n"),
}


@pytest.mark.parametrize("door", sorted(_RUNS))
def test_torchs_note_on_same_padding_with_an_even_kernel_does_not_reach_the_users_stderr(door: str) -> None:
    # d4ml086: a Keras Conv1D of kernel 4 with padding='same' printed torch's UserWarning (a zero-padded
    # copy of the input) from the check's own files. torch warns once a process: each run is a fresh one
    import subprocess
    import sys

    plain = subprocess.run([sys.executable, "-c", _CONV + "conv(torch.randn(1, 4, 10))"],
                           capture_output=True, text=True, check=True)
    if "padding='same'" not in plain.stderr:
        pytest.skip("this torch does not warn of an even kernel under padding='same'")
    run = subprocess.run([sys.executable, "-c", _RUNS[door]], capture_output=True, text=True, check=True)
    assert "padding='same'" not in run.stderr and "UserWarning" not in run.stderr
