"""What the ninety-fifth log sweep (committed text consoles) found in how a text log's runs and steps
are read: a resume line that froze every later mmcv point at its iteration (mmhuman3d_ormr_resume),
runs appended to one console merged by step (d2_cdfsod_tmux, plain reruns), and a run whose points all
share one step judged silently (cconvnet_lr0_sanity)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradhealth.logs.check import run_log_check
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


def _plain_run(start: float, factor: float, steps: range) -> list[str]:
    return [f"step {s} loss {start * factor ** (k / 10):.4f}" for k, s in enumerate(steps)]


def test_a_rerun_appended_to_a_console_is_a_run_of_its_own_whatever_its_loss_does(tmp_path: Path) -> None:
    # (logsweep95 #1, repro plain_two_runs_50) `python train.py >> train.log` twice: the first run falls
    # 8 -> 1.7, the second starts near where the first ended (2.0, no jump back to 8) and climbs 55x.
    # Merged by step the two interleave into an "oscillation"; split, the second run diverged
    lines = _plain_run(8.0, 0.73, range(0, 500, 10)) + _plain_run(2.0, 2.27, range(0, 500, 10))
    doc = run_log_check(write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    [w] = [w for w in doc.log.warnings if "runs appended" in w]
    assert "2 runs" in w and "run2 (line 51)" in w
    assert {s.name: s.points for s in doc.series if s.name.endswith("loss")} == {"run1/loss": 50, "run2/loss": 50}
    codes = {(f.code, f.evidence.metric) for f in doc.findings}
    assert ("loss_divergence", "run2/loss") in codes
    assert not [f for f in doc.findings if f.code == "loss_oscillation"]


def _d2_launch(losses: list[float]) -> list[str]:
    lines = ["[12/22 22:29:34 d2.engine.train_loop]: Starting training from iteration 0"]
    lines += [f"[12/22 22:29:54 d2.utils.events]:  eta: 0:02:30  iter: {20 * k + 19}  total_loss: {v:.4g}  "
              f"loss_cls: {v / 2:.4g}  time: 0.8241  data_time: 0.0461  lr: 3.9962e-05  max_mem: 1200M"
              for k, v in enumerate(losses)]
    return lines


def test_detectron2_launches_appended_to_one_capture_are_each_judged(tmp_path: Path) -> None:
    # (logsweep95 d2_cdfsod_tmux) each launch counts "iter: 19, 39, ..." again from its first iteration
    first = [7.1 * 0.93 ** k for k in range(10)]
    second = [4.0 * 1.35 ** k for k in range(10)]   # 4.0 -> 53: the second launch diverges
    path = write(tmp_path, "my_train_log.txt", "\n".join(_d2_launch(first) + _d2_launch(second)) + "\n")
    doc = run_log_check(path)
    [w] = [w for w in doc.log.warnings if "runs appended" in w]
    assert "2 runs" in w
    by = by_name(read_log(path))
    assert [float(v) for v in by["run2/total_loss"].values] == pytest.approx([float(f"{v:.4g}") for v in second])
    assert [float(s) for s in by["run1/total_loss"].steps] == [20 * k + 19 for k in range(10)]
    assert any(f.code == "loss_divergence" and f.evidence.metric == "run2/total_loss" for f in doc.findings)
    assert not [f for f in doc.findings if f.code == "loss_oscillation"]


@pytest.mark.parametrize("epoch_line", ["Epoch {e}", "Start epoch", "=== epoch {e} ==="])
def test_a_step_counter_starting_again_each_epoch_stays_one_run(tmp_path: Path, epoch_line: str) -> None:
    # the counter goes back to 0 every epoch, with a heading naming the epoch before each: one run
    lines: list[str] = []
    for e in range(1, 5):
        lines.append(epoch_line.format(e=e))
        lines += [f"step {i} loss {2.0 * 0.97 ** (10 * e + i / 10):.4f}" for i in range(0, 100, 10)]
    log = read_log(write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    assert not [w for w in log.warnings if w.code in ("several_runs", "skipped_runs")]
    assert not any(s.name.startswith("run") for s in log.series)


def test_a_step_counter_starting_again_beside_its_epoch_stays_one_run(tmp_path: Path) -> None:
    lines = [f"Epoch {e} step {i} loss {2.0 * 0.97 ** (10 * e + i / 10):.4f}" for e in range(1, 5) for i in range(0, 100, 10)]
    log = read_log(write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    assert not [w for w in log.warnings if w.code in ("several_runs", "skipped_runs")]


def test_a_run_resumed_from_a_checkpoint_step_stays_one_run(tmp_path: Path) -> None:
    # the counter goes back to the checkpoint's step 300, not to where the run began
    lines = _plain_run(8.0, 0.8, range(0, 500, 10)) + _plain_run(3.0, 0.95, range(300, 800, 10))
    log = read_log(write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    assert not [w for w in log.warnings if w.code in ("several_runs", "skipped_runs")]


def _mmdet_lines(date: str, epoch_batches: list[tuple[int, int]], loss) -> list[str]:  # noqa: ANN001
    return [f"{date} 19:25:44,459 - mmdet - INFO - Epoch [{e}][{i}/5455]\tlr: 4.983e-04, eta: 8:02:25, "
            f"time: 0.443, data_time: 0.05, memory: 3500, loss_cls: {loss(k) / 2:.4f}, loss: {loss(k):.4f}"
            for k, (e, i) in enumerate(epoch_batches)]


def test_an_mmdet_run_started_again_within_its_first_epoch_is_a_run_of_its_own(tmp_path: Path) -> None:
    # (logsweep95 mmdet_cascade_nan_readme) the NaN run stopped inside epoch 1 ([1][50] .. [1][950]); the
    # fixed run counts from [1][50/5455] again: a fresh start, never one run "resumed from a checkpoint"
    # whose NaN values the later ones replace
    failed = _mmdet_lines("2021-01-25", [(1, i) for i in range(50, 1000, 50)],
                          lambda k: 1.4 * 0.95 ** k if k < 5 else float("nan"))
    fixed = _mmdet_lines("2021-01-27", [(e, i) for e in (1, 2, 3) for i in range(50, 5455, 500)],
                         lambda k: 1.4 * 0.97 ** k)
    doc = run_log_check(write(tmp_path, "train.log", "\n".join(failed + fixed) + "\n"))
    warned = " ".join(doc.log.warnings)
    assert "2 runs appended" in warned and "from line 20" in warned
    [f] = [f for f in doc.findings if f.code == "nonfinite"]
    assert "line 6:" in f.summary and "run 1 of 2" in f.summary
    assert not [w for w in doc.log.warnings if "resumed from a checkpoint" in w]


def test_a_loss_whose_points_all_share_one_step_is_never_a_silent_healthy(tmp_path: Path) -> None:
    # (logsweep95 cconvnet_lr0_sanity, renamed to loss) a config line names "step : 1" once; the
    # "epoch.batch..." counter after it is no step the reader reads, so all 60 loss points sit at step 1:
    # the trend checks had one place to judge, and the log must say so instead of passing
    lines = ["Cropped Step: crop border step                             : 1     [DEFAULT]", "=" * 25]
    lines += [f"1.{b}... loss:  {0.5 + 0.03 * (-1) ** b:.6f}, 0.1 (1.409 sec)" for b in range(1, 61)]
    doc = run_log_check(write(tmp_path, "train_output.txt", "\n".join(lines) + "\n"))
    [f] = [f for f in doc.findings if f.code == "insufficient_data"]
    assert f.severity == "warning"
    assert f.evidence.value == 1.0 and "60 points" in f.summary and "1 distinct step" in f.summary
    assert doc.status != "healthy"
