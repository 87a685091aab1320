"""logsweep60's validation misses: a short validation loss rising beside a falling task metric of
the same evaluation (u03, an AllenNLP classifier), a rise out of its noise but under the 3 noises a
warning needs (u02, a DNABERT-2 fine-tune), and the noise of the evaluations after the best
estimated without counting the rise itself. The logs here are synthetic, in the formats' own shape.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import theilslopes

from gradhealth.core.document import Finding
from gradhealth.library import check_logs

# ten epochs: the validation loss lowest at epoch 1 and ending ~6 % above its smoothed best
# (0.686, the mean of the first two, against the last three's median 0.730), under the 10 % rule
_VAL = [0.700, 0.672, 0.705, 0.722, 0.735, 0.712, 0.716, 0.721, 0.730, 0.745]
_TRAIN = [0.52, 0.43, 0.40, 0.39, 0.385, 0.38, 0.378, 0.376, 0.375, 0.373]


def _allennlp(folder: Path, accuracy: list[float]) -> Path:
    """An AllenNLP serialization folder: one metrics_epoch_<N>.json per epoch."""
    folder.mkdir()
    for e, (tl, vl, va) in enumerate(zip(_TRAIN, _VAL, accuracy, strict=True)):
        (folder / f"metrics_epoch_{e}.json").write_text(json.dumps({
            "epoch": e, "training_loss": tl, "training_accuracy": 0.7 + 0.02 * e,
            "validation_loss": vl, "validation_accuracy": va}))
    return folder


def _divergence(path: Path) -> list[Finding]:
    return [f for f in check_logs(path).findings if f.code == "validation_divergence"]


def test_a_short_rise_beside_a_falling_task_metric_of_the_same_evaluation_is_overfitting(tmp_path: Path) -> None:
    accuracy = [0.780, 0.805, 0.790, 0.770, 0.760, 0.775, 0.772, 0.755, 0.750, 0.735]
    [f] = _divergence(_allennlp(tmp_path / "run", accuracy))
    assert f.severity == "warning"
    # the rise judged is that of the levels: (median of the last 3) / (mean of the first two) - 1
    assert f.evidence.value == pytest.approx(0.730 / ((0.700 + 0.672) / 2) - 1)
    assert 0.05 <= f.evidence.value < 0.10 and f.evidence.threshold == pytest.approx(0.05)
    assert f.evidence.best == pytest.approx(0.672) and f.evidence.best_step == 1
    # the corroborating metric: best 0.805 at epoch 1, last 0.735 (-8.7 %), last three's median -6.8 %
    assert f.evidence.task_metric == "validation_accuracy"
    assert f.evidence.task_metric_best == pytest.approx(0.805) and f.evidence.task_metric_last == pytest.approx(0.735)
    assert "validation_accuracy ends at 0.735" in f.summary


def test_the_same_rise_beside_a_task_metric_that_holds_stays_quiet(tmp_path: Path) -> None:
    # one signal only: a ~6 % rise over ten evaluations is within what a noisy loss does
    accuracy = [0.780, 0.800, 0.802, 0.799, 0.803, 0.801, 0.804, 0.802, 0.800, 0.803]
    assert _divergence(_allennlp(tmp_path / "run", accuracy)) == []


def _trainer_state(path: Path, eval_loss: list[float], accuracy: list[float]) -> Path:
    """A Hugging Face trainer_state.json: a training loss every 100 steps, an evaluation every 200."""
    history: list[dict[str, float]] = []
    train = np.geomspace(0.46, 0.03, 2 * len(eval_loss))
    for k, (vl, va) in enumerate(zip(eval_loss, accuracy, strict=True)):
        history.append({"step": 200 * k + 100, "loss": round(float(train[2 * k]), 4)})
        history.append({"step": 200 * k + 200, "loss": round(float(train[2 * k + 1]), 4)})
        history.append({"step": 200 * k + 200, "eval_loss": vl, "eval_accuracy": va})
    path.write_text(json.dumps({"global_step": 200 * len(eval_loss), "log_history": history}))
    return path


def _noise_of(x: np.ndarray) -> float:
    """The noise of one evaluation, computed independently: SciPy's Theil-Sen slope, then the
    successive differences of the residuals as 1.4826 MAD / sqrt(2)."""
    slope = theilslopes(x, np.arange(len(x)))[0]
    res = x - slope * np.arange(len(x))
    return 1.4826 * float(np.median(np.abs(np.diff(res)))) / math.sqrt(2)


def test_a_rise_out_of_its_noise_but_under_three_noises_is_a_note(tmp_path: Path) -> None:
    vv = np.array([0.330, 0.270, 0.281, 0.245, 0.318, 0.290, 0.268, 0.300, 0.310, 0.311, 0.304])
    accuracy = list(np.round(np.linspace(0.89, 0.94, len(vv)), 4))
    [f] = _divergence(_trainer_state(tmp_path / "trainer_state.json", vv.tolist(), accuracy))
    assert f.severity == "info" and "may be noise" in f.summary
    # the smoothed best: 3-point medians (2-point means at the ends), lowest at index 2
    sm = np.array([np.median(vv[max(0, i - 1):i + 2]) for i in range(len(vv))])
    i = int(np.argmin(sm))
    assert i == 2
    best, last = float(np.median(vv[1:4])), float(np.median(vv[-3:]))
    noise = max(1.4826 * float(np.median(np.abs(vv - sm))), _noise_of(vv[i:]))
    assert f.evidence.noise == pytest.approx(noise)
    assert f.evidence.value == pytest.approx(last / best - 1) and f.evidence.value >= 0.10
    # between the one-sided 95 % band (1.64) and the warning's 3 noises
    margin = (last - best) / (noise * math.sqrt(2 / 3))
    assert f.evidence.noise_margin == pytest.approx(margin) and 1.64 <= margin < 3
    assert f.evidence.best == pytest.approx(0.245) and f.evidence.best_step == 800
    # the accuracy still improving is named: over-confidence is the likelier reading
    assert f.evidence.task_metric == "eval_accuracy"


def test_the_noise_after_the_best_does_not_count_a_steady_rise() -> None:
    from gradhealth.logs.detectors.validation import _noise_after

    rng = np.random.default_rng(0)
    # a straight rise has no noise, however steep (raw differences read its slope as noise)
    assert _noise_after(0.5 + 0.01 * np.arange(12)) == pytest.approx(0.0, abs=1e-12)
    # white noise of 0.1 reads as 0.1 with or without a rise under it (median over many draws)
    flat = [_noise_after(0.1 * rng.standard_normal(10)) for _ in range(2000)]
    rising = [_noise_after(0.1 * rng.standard_normal(10) + 0.2 * np.arange(10)) for _ in range(2000)]
    assert float(np.median(flat)) == pytest.approx(0.1, rel=0.05)
    assert float(np.median(rising)) == pytest.approx(0.1, rel=0.05)
