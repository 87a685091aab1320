"""What the twenty-seventh log sweep found: the Informer family's console (Autoformer, FEDformer,
PatchTST, Time-Series-Library), with its "Vali Loss" and its "Steps: 225" that counts an epoch's steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gradhealth.logs.check import diagnose
from gradhealth.logs.load import read_log
from gradhealth.logs.series import classify
from tests.logs.helpers import by_name, write


def _informer(epochs: int, vali: list[float]) -> str:
    lines = []
    for e in range(1, epochs + 1):
        train = 0.4 * 0.85 ** e
        for i in (100, 200):
            lines += [f"\titers: {i}, epoch: {e} | loss: {train * (1.05 - i / 2000):.7f}",
                      f"\tspeed: 0.1788s/iter; left time: {165.5 / e:.4f}s"]
        lines += [f"Epoch: {e} cost time: 40.37169551849365",
                  f"Epoch: {e}, Steps: 225 | Train Loss: {train:.7f} Vali Loss: {vali[e - 1]:.7f} "
                  f"Test Loss: {vali[e - 1] * 1.02:.7f}",
                  "Updating learning rate to 5e-05"]
    return "\n".join(lines) + "\n"


def test_vali_loss_is_a_validation_loss() -> None:
    assert classify("Vali_Loss")[0] == "val_loss" and classify("vali_loss")[0] == "val_loss"


def test_an_epochs_step_count_is_not_its_position(tmp_path: Path) -> None:
    vali = [0.3 * 0.9 ** e for e in range(10)]
    s = by_name(read_log(write(tmp_path, "informer.log", _informer(10, vali))))
    train = s["Train_Loss"]
    assert train.step_unit == "epoch"
    np.testing.assert_array_equal(train.steps, np.arange(1, 11))
    assert s["Vali_Loss"].role == "val_loss"
    np.testing.assert_allclose(s["Vali_Loss"].values, vali, rtol=1e-6)


def test_an_informer_run_whose_validation_loss_rises_is_overfitting(tmp_path: Path) -> None:
    vali = [0.2, 0.15, 0.13, 0.12, 0.125, 0.14, 0.16, 0.18, 0.2, 0.22, 0.24, 0.26]
    report = diagnose(read_log(write(tmp_path, "informer.log", _informer(12, vali))))
    assert "validation_divergence" in {f.code for f in report.findings if f.severity == "warning"}
