"""What the ninety-fifth log sweep (committed text consoles) found in how a text log's runs and steps
are read: a resume line that froze every later mmcv point at its iteration (mmhuman3d_ormr_resume),
runs appended to one console merged by step (d2_cdfsod_tmux, plain reruns), and a run whose points all
share one step judged silently (cconvnet_lr0_sanity)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradhealth.logs.load import read_log
from tests.logs.helpers import by_name, write

_STAMP = "2023-07-21 16:20:17,169 - mmdet - INFO - "


def _mmcv_lines(epochs: range, n: int, every: int, loss) -> list[str]:  # noqa: ANN001 - loss(e, i) -> float
    return [f"{_STAMP}Epoch [{e}][{i}/{n}]\tlr: 1.000e-04, eta: 1 day, 1:17:10, time: 0.5, data_time: 0.01, "
            f"memory: 6986, loss_cls: {loss(e, i) / 2:.4f}, loss: {loss(e, i):.4f}"
            for e in epochs for i in range(every, n + 1, every)]


def test_mmcv_resume_line_does_not_freeze_the_later_points_at_its_iteration(tmp_path: Path) -> None:
    # (logsweep95 mmhuman3d_ormr_resume) "resumed epoch 3, iter 600" names a step and nothing else; every
    # "Epoch [e][i/n]" line after it places itself at e + i/n, as the same lines without the resume line are
    n, every = 200, 50

    def loss(e: int, i: int) -> float:
        return 2.0 * 0.9 ** (e + i / n)

    lines = _mmcv_lines(range(1, 4), n, every, loss)
    lines += [f"{_STAMP}load checkpoint from local path: work_dirs/epoch_3.pth",
              f"{_STAMP}resumed epoch 3, iter 600",
              f"{_STAMP}workflow: [('train', 1)], max: 12 epochs"]
    lines += _mmcv_lines(range(4, 7), n, every, loss)
    loss_series = by_name(read_log(write(tmp_path, "20230721_160721.log", "\n".join(lines) + "\n")))["loss"]
    expected = [e + i / n for e in range(1, 7) for i in range(every, n + 1, every)]
    assert len(loss_series.steps) == len(expected) == 24
    # (an epoch's last batch, i == n, sits a hair before the next epoch's start)
    assert [float(s) for s in loss_series.steps] == pytest.approx(expected, abs=1e-5)
    assert [round(float(v), 4) for v in loss_series.values] == [round(2.0 * 0.9 ** x, 4) for x in expected]


def test_mmcv_resume_line_first_in_the_log_places_nothing(tmp_path: Path) -> None:
    # the resumed launch's own log: the resume line comes before any epoch line
    n, every = 200, 50
    lines = [f"{_STAMP}resumed epoch 3, iter 600"] + _mmcv_lines(range(4, 7), n, every, lambda e, i: 1.0 / (e + i / n))
    loss_series = by_name(read_log(write(tmp_path, "resumed.log", "\n".join(lines) + "\n")))["loss"]
    assert [float(s) for s in loss_series.steps] == pytest.approx(
        [e + i / n for e in range(4, 7) for i in range(every, n + 1, every)], abs=1e-5)
