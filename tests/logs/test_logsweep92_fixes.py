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


def test_a_zero_grad_norm_beside_a_falling_loss_is_a_misplaced_measurement() -> None:
    # encdec_gradnorm_zero: "Grad Norm: 0.0000" at all 31 points while the loss fell 10.26 -> 8.1 gave
    # a zero_gradient error saying the run trains nothing
    steps = np.arange(0, 3100, 100, dtype=float)
    loss = 8.0 + 2.26 * np.exp(-steps / 800)  # 10.26 -> 8.05
    [f] = found(diagnose(run_of(steps, loss=loss, grad_norm=np.zeros(len(steps)))), "zero_gradient")
    assert f.severity == "warning"
    assert "zero_grad" in f.explanation and "trains nothing" not in f.explanation
    assert f.evidence.model_dump()["loss_from"] == loss[0]
    # a loss that does not move (noise around a level) with the same norms: nothing trains, an error
    flat = 10.26 + np.random.default_rng(0).normal(0.0, 0.01, len(steps))
    [g] = found(diagnose(run_of(steps, loss=flat, grad_norm=np.zeros(len(steps)))), "zero_gradient")
    assert g.severity == "error" and "trains nothing" in g.explanation


def test_a_two_word_norm_keeps_both_words() -> None:
    from gradhealth.logs.readers.text import pairs

    # "Grad Norm: 0.0000" was read as "Norm", beside "Train Loss" read as "Train_Loss"
    assert dict(pairs("Iteration 100/10000, Loss: 10.0921, Grad Norm: 0.0000")) == {
        "Iteration": "100", "Loss": "10.0921", "Grad_Norm": "0.0000"}
    assert dict(pairs("Epoch 3, Train MSE: 0.08, Param Norm: 12.5")) == {
        "Epoch": "3", "Train_MSE": "0.08", "Param_Norm": "12.5"}


def _console(banner: bytes, at: int) -> bytes:
    lines = [f"Epoch {e:02d} | Train MSE: {0.08 / e:.6f} | Gate Loss: {0.39 + 0.001 * e:.4f} | "
             f"Val MSE: {0.03 / e:.6f}".encode() for e in range(1, 11)]
    return b"\n".join([*lines[:at], banner, *lines[at:]]) + b"\n"


def test_a_gbk_banner_on_the_first_line_is_replaced_as_further_down(tmp_path) -> None:  # noqa: ANN001
    from gradhealth.logs.load import read_log

    # ant_transformer_gates: a GBK config banner on line 1 refused the file ("line 1 is not UTF-8"),
    # the same bytes on line 31 were replaced with a note
    banner = ">>> [Config] 校验通过, 设备: CPU".encode("gbk")
    for at in (0, 1, 5):
        path = tmp_path / f"gbk{at}.log"
        path.write_bytes(_console(banner, at))
        run = read_log(path)
        notes = [w for w in run.warnings if w.code == "replaced_bytes"]
        assert notes and f"line {at + 1}:" in notes[0].message
        # the training loss is the training split's MSE, not the auxiliary gate loss
        loss = run.first("loss")
        assert loss is not None and loss.name == "Train_MSE"
        assert np.allclose(loss.values, [0.08 / e for e in range(1, 11)], atol=5e-7)


def test_a_training_split_error_is_the_training_loss() -> None:
    from gradhealth.logs.derive import add_named_loss

    for name in ("Train_MSE", "train_rmse", "train_mae", "Train NLL"):
        run = add_named_loss(run_of(**{name: np.linspace(1.0, 0.5, 10), "Gate_Loss": np.full(10, 0.4),
                                       "Val_MSE": np.linspace(1.1, 0.6, 10)}))
        loss = run.first("loss")
        assert loss is not None and loss.name == name
