"""logsweep98 mlx557_mixtral_ok: a text console states its planned length in its counters ("iters: 3000"
in mlx-lm's header, "Iter 110/3000", "step 110 of 3000", "Epoch 3/50"): the text reader keeps the largest
total, in the loss's own unit, so a plateau over an early part of the run is "flat so far"."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradhealth.library import check_logs
from gradhealth.logs.load import read_log

#: the mlx557 excerpt's train losses, iterations 10-110: a fall, then ~1.0-1.2
_LOSSES = [2.363, 1.508, 1.252, 1.372, 1.100, 1.113, 1.214, 0.996, 1.062, 1.111, 1.188]


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "train.log"
    path.write_text("\n".join(lines) + "\n")
    return path


def _mlx(tmp_path: Path, header: str = "Starting training..., iters: 3000") -> Path:
    return _write(tmp_path, [header, "Iter 1: Val loss 2.480, Val took 0.732s"] + [
        f"Iter {10 * (i + 1)}: Train loss {v:.3f}, Learning Rate 1.000e-05, It/sec 0.8" for i, v in enumerate(_LOSSES)])


@pytest.mark.parametrize("lines", [
    [f"Iter {10 * (i + 1)}/3000 | loss: {v}" for i, v in enumerate(_LOSSES)],
    [f"step {10 * (i + 1)} of 3000, loss {v}" for i, v in enumerate(_LOSSES)],
    # a header's total and a counter's: the largest is the run's length
    ["Total optimization steps = 1,500", *(f"Iter {10 * (i + 1)}/3000 | loss: {v}" for i, v in enumerate(_LOSSES))],
])
def test_a_counted_total_is_the_planned_length(tmp_path: Path, lines: list[str]) -> None:
    run = read_log(_write(tmp_path, lines))
    assert (run.planned_steps, run.planned_unit) == (3000, "step")


def test_mlx_header_plans_the_run_and_the_early_plateau_is_flat_so_far(tmp_path: Path) -> None:
    path = _mlx(tmp_path)
    run = read_log(path)
    assert (run.planned_steps, run.planned_unit) == (3000, "step")
    [f] = [f for f in check_logs(path).findings if f.code == "loss_plateau"]
    assert f.severity == "info"
    assert "flat so far" in f.summary and "step 110 of the 3,000 steps" in f.summary
    assert f.evidence.model_extra["planned_steps"] == 3000


def test_no_stated_length_is_no_plan(tmp_path: Path) -> None:
    run = read_log(_mlx(tmp_path, header="Starting training..."))
    assert run.planned_steps is None
    [f] = [f for f in check_logs(tmp_path / "train.log").findings if f.code == "loss_plateau"]
    assert "so far" not in f.summary


def test_epochs_counted_out_of_their_total(tmp_path: Path) -> None:
    lines = [f"Epoch {i + 1}/50 - loss: {v}" for i, v in enumerate(_LOSSES)]
    run = read_log(_write(tmp_path, lines))
    assert (run.planned_steps, run.planned_unit) == (50, "epoch")
    [f] = [f for f in check_logs(tmp_path / "train.log").findings if f.code == "loss_plateau"]
    assert "flat so far" in f.summary and "of the 50 epochs" in f.summary


def test_a_run_at_its_total_is_not_so_far(tmp_path: Path) -> None:
    # counted from 1 to its total, or from 0 to one short of it: the whole run
    for first in (1, 0):
        n = len(_LOSSES) - 1 + first
        lines = [f"Epoch {i + first}/{n} - loss: {v}" for i, v in enumerate(_LOSSES)]
        [f] = [f for f in check_logs(_write(tmp_path, lines)).findings if f.code == "loss_plateau"]
        assert "so far" not in f.summary


def test_a_batch_counted_within_its_epoch_is_no_planned_step(tmp_path: Path) -> None:
    # "Step [100/600]" counts an epoch's batches: the run plans 10 epochs, not 600 steps
    lines = [f"Epoch [{1 + i // 3}/10], Step [{100 * (1 + i % 3)}/300], Loss: {v}" for i, v in enumerate(_LOSSES)]
    run = read_log(_write(tmp_path, lines))
    assert run.first("loss") is not None and run.first("loss").step_unit == "epoch"  # type: ignore[union-attr]
    assert (run.planned_steps, run.planned_unit) == (10, "epoch")
