"""logsweep92: a per-batch loss converged near 0 read as swings over orders of magnitude, a logged
gradient norm of exactly 0 beside a falling loss read as a run that trains nothing, and a console
refused for a GBK banner on its first line whose training loss is a Train MSE (items t5_batch_loss,
encdec_gradnorm_zero, ant_transformer_gates)."""

from __future__ import annotations

import numpy as np

from gradhealth.logs.check import diagnose
from gradhealth.logs.detectors.oscillation import swings
from tests.logs.test_detectors_real_runs import found, run_of


def _batch_noise(n: int, sigma: float, seed: int) -> np.ndarray:
    """A per-batch loss: a smooth decay from 12 to 0.02 times independent lognormal batch noise."""
    rng = np.random.default_rng(seed)
    trend = 0.02 + 12.0 * np.exp(-np.arange(n) / (n / 20))
    return trend * np.exp(rng.normal(0.0, sigma, n))


def test_independent_batch_noise_near_zero_is_no_oscillation() -> None:
    # t5_batch_loss: 28 "swings up by 100x" between batches of 1e-4 and 0.3 gave loss_oscillation
    for seed in range(3):
        v = _batch_noise(3000, 1.3, seed)
        # the scatter alone makes many 100x legs on the 3-point medians (what the rule read)
        assert len(swings(v)) >= 2 * 3 + 1
        assert not found(diagnose(run_of(loss=v)), "loss_oscillation")


def test_waves_under_batch_noise_are_still_an_oscillation() -> None:
    # the same batch noise on a loss that rises and falls by e^7 (1,100x) in waves of 600 batches:
    # persistent swings, far above the scatter, stay a loss_oscillation
    n = 6000
    x = np.arange(n)
    rng = np.random.default_rng(1)
    v = np.exp(3.5 * np.sin(2 * np.pi * x / 600) - 4 + rng.normal(0.0, 1.0, n))
    [f] = found(diagnose(run_of(loss=v)), "loss_oscillation")
    assert f.evidence.value >= 3
    assert f.evidence.model_dump()["lag1_autocorrelation"] > 0.3

