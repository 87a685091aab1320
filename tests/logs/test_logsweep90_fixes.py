"""logsweep90: consoles pasted in GitHub issues. The PyTorch examples' MNIST console (``Train Epoch: E
[i/N (p%)]\\tLoss: x`` plus a ``Test set:`` line per epoch) read one point per epoch
(siasteg_chance_plateau), DeepSpeed's timing breakdown ``step: 2.08`` read as the step and ``[Rank 0]``
as a series (deepspeed_fp16_overflow_nan), and NVIDIA tacotron2's ``Train iter  16 loss ...`` not read
as a step, its ``OVERFLOW! Skipping step.`` lines counted among the steps (tacotron2_fp16_ok)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gradhealth.library import check_logs
from gradhealth.logs.load import read_log

from .helpers import by_name, write

# --- 1. the MNIST console's [i/N] position, with a test line each epoch ---------------------------


def _mnist(epochs: int, *, test: bool) -> tuple[str, list[float]]:
    """A console in the PyTorch examples' MNIST style: 5 batch lines an epoch (samples seen out of
    60000) and, with ``test``, the test set's line after each epoch; and the positions written."""
    lines: list[str] = []
    where: list[float] = []
    for e in range(1, epochs + 1):
        for i in range(0, 60000, 12000):
            lines.append(f"Train Epoch: {e} [{i}/60000 ({100 * i // 60000}%)]\tLoss: {2.3026 + 0.0001 * (i % 3):.6f}")
            where.append(e + i / 60000)
        if test:
            lines += ["", "Test set: Average loss: 2.3026, Accuracy: 1135/10000 (11%)", ""]
    return "\n".join(lines) + "\n", where


def test_mnist_console_keeps_every_batch_line_beside_the_test_lines(tmp_path: Path) -> None:
    text, where = _mnist(4, test=True)
    log = read_log(write(tmp_path, "train.log", text))
    loss = by_name(log)["Loss"]
    # every batch line a point, at epoch + i/N (the epoch's N: 60000 samples)
    assert len(loss) == 20
    np.testing.assert_allclose(loss.steps, where, atol=1e-6)
    assert loss.epoch_length == 60000
    assert len(by_name(log)["eval_Average_loss"]) == 4


def test_mnist_console_at_chance_is_a_plateau_with_or_without_test_lines(tmp_path: Path) -> None:
    # stuck at ln 10 = 2.3026 (10 classes) for 4 epochs: 20 points, enough to judge
    for test in (True, False):
        codes = {f.code for f in check_logs(write(tmp_path, f"t{test}.log", _mnist(4, test=test)[0])).findings}
        assert "loss_plateau" in codes, (test, codes)


# --- 2. DeepSpeed's timing breakdown: "step: 2.08" is a time, "[Rank 0]" a process ---------------

def test_deepspeed_timing_step_is_no_step_and_rank_no_series(tmp_path: Path) -> None:
    lines = []
    for n in (10, 11, 12):
        lines.append(f"steps: {n} loss: {7.5 - 0.1 * (n - 10):.2f} iter time (s): 34.9 samples/sec: 73.1")
        lines.append(f"[2022-02-15 18:51:45,706] [INFO] [logging.py:69:log_dist] [Rank 0] rank=0 time (ms) | "
                     f"forward: 9298.00 | backward: 23461.01 | step: 2.{n:02d}")
    series = by_name(read_log(write(tmp_path, "ds.log", "\n".join(lines) + "\n")))
    assert list(series["loss"].steps) == [10, 11, 12]
    # the timings sit at the step logged before them, never at 2.10, 2.11, ...
    assert list(series["forward"].steps) == [10, 11, 12]
    assert "Rank" not in series and "rank" not in series


def test_tacotron_train_iter_is_the_step(tmp_path):
    """logsweep90: NVIDIA Tacotron 2's 'Train iter  16 loss 49.3 Grad Norm 10.8 3.22s/it' read its steps
    as line numbers (the split word before the counter made it a name of its own)."""
    steps = [16, 18, 19, 25, 31]
    path = tmp_path / "train.log"
    path.write_text("".join(f"Train iter {s:>8} loss {50 - s:.6f} Grad Norm {s / 2:.6f} 3.22s/it\n" for s in steps))
    run = read_log(path)
    loss = run.first("loss")
    assert loss is not None and [int(x) for x in loss.steps] == steps
    assert [round(v, 6) for v in loss.values] == [50.0 - s for s in steps]
