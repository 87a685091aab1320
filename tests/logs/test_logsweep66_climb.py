"""logsweep66 u04 (Keras' cifar10 example, keras-team/keras#5239): the training loss fell to its
lowest at epoch 4, then rose at each of the five epochs after it, +13 %, while the validation loss
rose beside it. That is no overfitting (the training loss rose too) but the optimisation going
backwards: a loss_divergence warning, not validation_divergence (whose summary said "while loss fell
from 1.22 to 1.21", a median reaching back into the descent) nor a loss_plateau note. The logs here
are synthetic, written in Keras 1's console format.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from gradhealth.core.document import Finding
from gradhealth.library import check_logs
from tests.logs.helpers import write


def _keras1(tmp_path: Path, train: list[float], val: list[float]) -> Path:
    """Keras 1's console: one progress line per epoch, the epoch's mean loss beside the evaluation."""
    lines = []
    for i, (t, v) in enumerate(zip(train, val, strict=True), 1):
        lines.append(f"Epoch {i}/100")
        lines.append(f"50000/50000 [==============================] - 16s - loss: {t:.4f} - acc: {1 - t / 4:.4f} "
                     f"- val_loss: {v:.4f} - val_acc: {1 - v / 4:.4f}")
    return write(tmp_path, "console.log", "\n".join(lines) + "\n")


def _codes(path: Path) -> dict[str, Finding]:
    return {f.code: f for f in check_logs(path).findings}


# both epoch means fall to epoch 5, then rise at each of the five epochs after it
_TRAIN_UP = [1.8000, 1.4200, 1.2600, 1.1800, 1.1500, 1.1610, 1.1900, 1.2300, 1.2650, 1.2950]
_VAL_UP = [1.5000, 1.2100, 1.0800, 1.0200, 1.0000, 1.0400, 1.0800, 1.1300, 1.1500, 1.1700]


def test_training_and_validation_losses_rising_together_are_a_divergence_not_overfitting(tmp_path: Path) -> None:
    found = _codes(_keras1(tmp_path, _TRAIN_UP, _VAL_UP))
    assert "validation_divergence" not in found
    assert "loss_plateau" not in found  # the rise is judged, not noted as "less than loss_divergence needs"
    f = found["loss_divergence"]
    assert f.severity == "warning"
    assert f.evidence.minimum == pytest.approx(1.15) and f.evidence.minimum_step == 5
    assert f.evidence.final == pytest.approx(1.295) and f.evidence.rises_in_a_row == 5
    assert f.evidence.value == pytest.approx(1.295 / 1.15 - 1)  # +12.6 %
    # the noise of one point from the whole series' second differences, 1.4826 MAD / sqrt 6
    noise = 1.4826 * float(np.median(np.abs(np.diff(_TRAIN_UP, 2)))) / math.sqrt(6)
    assert f.evidence.noise == pytest.approx(noise)
    assert f.evidence.noise_margin == pytest.approx((1.295 - 1.15) / (noise * math.sqrt(2)))
    assert "rose at each of its last 5 points" in f.summary and "+12.6%" in f.summary
    assert [r.id for r in f.remedies][0] == "lower_learning_rate"
    assert "early_stopping" not in [r.id for r in f.remedies]


def test_validation_rising_while_training_falls_is_overfitting_still(tmp_path: Path) -> None:
    train = [1.8000, 1.4200, 1.2600, 1.1800, 1.1500, 1.1200, 1.0900, 1.0600, 1.0300, 1.0000]
    found = _codes(_keras1(tmp_path, train, _VAL_UP))
    assert "loss_divergence" not in found
    f = found["validation_divergence"]
    assert f.severity == "warning"
    # the training loss over the same stretch as the validation loss's rise: epoch 5 -> epoch 10
    assert "val_loss rose from its lowest 1 (epoch 5) to 1.17 (epoch 10" in f.summary
    assert "while loss fell from 1.15 to 1" in f.summary


def test_training_loss_rising_beside_the_validation_rise_is_no_overfitting(tmp_path: Path) -> None:
    # a training loss that fell to 1.15 just after the validation loss's best, then rose to 1.24, not
    # at every epoch: its levels (medians of 3 epochs) 1.17 -> 1.22, +4 %, about 5 times their noise.
    # No overfitting; the median of the 3 training points up to the validation loss's best (1.26,
    # 1.18, 1.15 -> 1.18) read it as "fell from 1.18 to ..." where the raw points did not fall.
    train = [1.8000, 1.4200, 1.2600, 1.1800, 1.1500, 1.1700, 1.2000, 1.1900, 1.2200, 1.2400]
    val = [1.5000, 1.2100, 1.0800, 1.0000, 1.0200, 1.0400, 1.0800, 1.1300, 1.1500, 1.1700]
    found = _codes(_keras1(tmp_path, train, val))
    assert "validation_divergence" not in found
    # the rise is the training loss's to report (short of a divergence: a note)
    assert found["loss_plateau"].severity == "info" and "loss rose" in found["loss_plateau"].summary


def test_a_training_loss_that_holds_within_its_noise_beside_a_rising_validation_loss_is_overfitting(
        tmp_path: Path) -> None:
    # fitted: the training loss holds at 0.300 +- 0.002 from epoch 4 on while the validation loss rises
    # +30 %; its end (0.302) is above its level at the validation loss's best (0.300) by 0.7 %, about
    # its noise, which a strict "fell" called no overfitting
    train = [1.2000, 0.6000, 0.3100, 0.3000, 0.3010, 0.2990, 0.3000, 0.3020, 0.3000, 0.3010, 0.3020, 0.3030,
             0.3010]
    val = [1.1000, 0.8000, 0.6000, 0.5000, 0.4600, 0.4500, 0.4700, 0.4900, 0.5100, 0.5300, 0.5500, 0.5700,
           0.5900]
    f = _codes(_keras1(tmp_path, train, val))["validation_divergence"]
    assert f.severity == "warning"
    # its lowest level over the stretch (0.299, epochs 5-7) and its level over the last three (0.302);
    # the summary quotes the file's points at the best and at the end
    assert "while loss held (0.299 -> 0.301)" in f.summary


def test_a_noisy_per_batch_loss_with_a_similar_small_climb_at_its_end_is_no_divergence(tmp_path: Path) -> None:
    # 300 per-batch losses falling from 4 to 2, scattering by 8 % of their level; the last six are
    # the run's lowest point and five rises after it, +13 %: within 1 of the batches' own noise
    rng = np.random.default_rng(66)
    n = 300
    level = 2.0 + 2.0 * np.exp(-np.arange(n) / 40)
    v = level * (1 + 0.08 * rng.standard_normal(n))
    v[-6:] = [1.55, 1.57, 1.60, 1.63, 1.67, 1.75]
    assert int(np.argmin(v)) == n - 6 and bool(np.all(np.diff(v[-6:]) > 0))
    lines = [f"iter {i * 10}: loss {x:.4f}, time 120.00ms" for i, x in enumerate(v)]
    doc = check_logs(write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    assert not [f for f in doc.findings if f.code == "loss_divergence"]
    assert not [f for f in doc.findings if f.severity in ("warning", "error")]
