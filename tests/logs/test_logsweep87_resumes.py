"""logsweep87 ssd_sign_mxnet: a console whose batch counter starts again every epoch, resumed from a
checkpoint (MXNet's ``Resume training ... from epoch 83``, then ``Epoch[83] Batch [20]`` after
``Epoch[84] Batch [80]``; or ``Epoch[149]`` again after ``Epoch[149]``). The epoch used to be dropped
from the step (read as a metric ``epoch``), every epoch's ``Batch [20]`` landing on step 20, and a false
``loss_spike`` "the run did not recover" followed. A resumed run stays placed at epoch + batch / N, the
resumed pass's values replacing the earlier pass's from where it starts again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gradhealth.logs.check import run_log_check
from gradhealth.logs.load import read_log
from tests.logs.helpers import by_name, write

_BATCHES = (20, 40, 60, 80)
_LENGTH = 100  # the largest batch, 80, plus the usual gap between lines, 20


def _mxnet(e: int, b: int | None, v: float) -> str:
    if b is None:
        return f"Epoch[{e}] Train-SmoothL1={v:.6f}"  # the epoch's summary, at its end
    return f"Epoch[{e}] Batch [{b}]\tSpeed: 14.8 samples/sec\tTrain-SmoothL1={v:.6f}"


def _worded(e: int, b: int | None, v: float) -> str:
    if b is None:
        return f"ep: {e}, Train-SmoothL1: {v:.6f}"
    return f"ep: {e}, batch: {b}, Train-SmoothL1: {v:.6f}"


def _loss(e: int, b: int, shift: float = 0.0) -> float:
    return round(10.0 / (1.0 + e + b / _LENGTH) + shift, 6)


def _pass(line: Callable[[int, int | None, float], str], epochs: range, shift: float,
          expected: dict[float, float]) -> list[str]:
    """Each epoch's batch lines and summary; what each place should hold once read into ``expected``."""
    out = []
    for e in epochs:
        for b in _BATCHES:
            v = _loss(e, b, shift)
            out.append(line(e, b, v))
            expected[round(e + b / _LENGTH, 6)] = v
        mean = round(sum(_loss(e, b, shift) for b in _BATCHES) / len(_BATCHES), 6)
        out.append(line(e, None, mean))
        expected[float(e)] = mean  # (a line without a step sits at its epoch)
    return out


@pytest.mark.parametrize("line", [_mxnet, _worded], ids=["mxnet", "ep_batch"])
def test_a_resume_that_repeats_earlier_epochs_keeps_the_epoch_in_the_step(tmp_path: Path, line) -> None:  # noqa: ANN001
    # epochs 0-7, then resumed from epoch 5 (the epoch goes back 7 -> 5) and run on to 11, its values
    # a little off the first pass's (a different data order): they replace the first pass's from epoch 5
    expected: dict[float, float] = {}
    first = _pass(line, range(8), 0.0, expected)
    resumed = _pass(line, range(5, 12), 0.01, expected)
    lines = ["Start training with (gpu(0)) from pretrained model", *first,
             "Resume training with (gpu(0)) from epoch 5", *resumed]
    log = read_log(write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    series = by_name(log)
    assert "epoch" not in series  # the epoch is the place, never a metric
    loss = series["Train-SmoothL1"]
    assert loss.step_unit == "epoch"
    assert dict(zip(map(float, loss.steps), map(float, loss.values), strict=True)) == pytest.approx(expected)
    assert len(loss.steps) == 12 * (len(_BATCHES) + 1)
    (over,) = [w for w in log.warnings if w.code == "overwritten_values"]
    resume_line = 2 + len(first) + 1  # the first line after "Resume training"
    assert f"line {resume_line}:" in over.message and "from 7 to 5" in over.message
    assert "Train-SmoothL1" in over.message


def test_a_resume_that_repeats_the_last_epoch_replaces_it(tmp_path: Path) -> None:
    # ssd_sign_mxnet's tail: epoch 9 logged, then "Resume training ... from epoch 9" twice, each
    # pass printing epoch 9 again (the epoch stays, its batch counter goes back)
    expected: dict[float, float] = {}
    lines = _pass(_mxnet, range(10), 0.0, expected)
    for k in (1, 2):
        lines.append("Resume training with (gpu(0),gpu(1)) from epoch 9")
        lines += _pass(_mxnet, range(9, 10), 0.05 * k, expected)
    path = write(tmp_path, "train.log", "\n".join(lines) + "\n")
    doc = run_log_check(path)
    loss = {s.name: s for s in doc.series}["Train-SmoothL1"]
    assert loss.points == 10 * (len(_BATCHES) + 1)
    assert loss.first_step == 0 and loss.last_step == pytest.approx(9.8)
    assert loss.last == pytest.approx(_loss(9, 80, 0.1))  # the last pass's (its summary sits at 9.0)
    assert not [f for f in doc.findings if f.code == "loss_spike" and f.severity != "info"]
    (over,) = [w for w in read_log(path).warnings if w.code == "overwritten_values"]
    assert "epoch 9 starts again" in over.message and "and 1 more" in over.message


def test_a_second_counter_in_every_epoch_is_no_resume(tmp_path: Path) -> None:
    # an evaluation pass counting its own batches in every epoch, at places training never logged:
    # not a run resumed over and over (no overwritten_values warning)
    lines = []
    for e in range(6):
        lines += [f"Epoch[{e}] Batch [{b}]\tTrain-loss={_loss(e, b):.6f}" for b in _BATCHES]
        lines += [f"Epoch[{e}] Batch [{b}]\tVal-loss={_loss(e, b, 0.5):.6f}" for b in (10, 30)]
    log = read_log(write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    assert not [w for w in log.warnings if w.code == "overwritten_values"]


def test_a_global_step_that_goes_back_on_a_resume_stays_the_step(tmp_path: Path) -> None:
    # a step counted on across epochs: a resume takes both back, and the step still places the lines
    lines = [f"epoch {s // 100} step {s} loss {1.0 / (1 + s / 100):.5f}" for s in range(0, 700, 20)]
    lines += [f"epoch {s // 100} step {s} loss {1.0 / (1 + s / 100) + 0.01:.5f}" for s in range(400, 900, 20)]
    loss = by_name(read_log(write(tmp_path, "train.log", "\n".join(lines) + "\n")))["loss"]
    assert loss.step_unit == "step" and float(max(loss.steps)) == 880.0
