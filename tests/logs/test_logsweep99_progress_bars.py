"""logsweep99 cyclegan_train.log: a console whose tqdm bars redraw one line with carriage returns.

- The bar's frames were counted as repeated lines and explained as "one message printed twice (two
  logging handlers, ...)": they are progress-bar refreshes, said so; a real duplicated line keeps its
  wording.
- CycleGAN's ``(epoch: 1, iters: 100, ...)`` sat at epoch 1.0549 in an epoch of 180 iterations: the
  checkpoint line ``saving the model at the end of epoch 5, iters 900`` (the run's total count) set the
  epoch's length. A line naming a position and no value says nothing of the length, and the epoch's
  bar (``Epoch 2/200:  52%|...| 93/180``) states it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gradhealth.logs.load import read_log
from tests.logs.helpers import by_name, write

_IMAGES = 180      # "The number of training images = 180", batch size 1: 180 iterations an epoch
_PRINT_FREQ = 100  # a loss line every 100 iterations in all, its "iters" counted within the epoch


def _loss(total: int) -> float:
    return round(2.0 - total / 2000, 3)


def _bar(epoch: int) -> str:
    frames = [f"Epoch {epoch}/200: {100 * i // _IMAGES:3d}%|{'#' * (10 * i // _IMAGES):<10}| {i}/{_IMAGES} "
              f"[00:{i % 60:02d}<01:00,  1.01s/it]" for i in range(_IMAGES + 1)]
    return "\r" + "\r".join(frames)


def _cyclegan(epochs: int, *, bars: bool = True, saves: bool = True) -> tuple[str, dict[float, float]]:
    """A pytorch-CycleGAN-and-pix2pix console (train.py's loop) and each loss line's place, the
    fractional epoch e + iters / 180 its loss belongs at."""
    lines = ["----------------- Options ---------------", "               batch_size: 1",
             f"               print_freq: {_PRINT_FREQ}", f"The number of training images = {_IMAGES}"]
    expected: dict[float, float] = {}
    total = 0
    for epoch in range(1, epochs + 1):
        for it in range(1, _IMAGES + 1):
            total += 1
            if total % _PRINT_FREQ == 0:
                v = _loss(total)
                lines.append(f"[Rank 0] (epoch: {epoch}, iters: {it}, time: 1.283, data: 0.043) , D_A: 0.136, "
                             f"G_A: {v}, cycle_A: 0.998")
                # (the epoch's last iteration stays in it, as a bar's 180/180 does)
                expected[round(epoch + it / _IMAGES, 6) - (1e-6 if it == _IMAGES else 0.0)] = v
        if bars:
            lines.append(_bar(epoch))
        lines.append("learning rate 0.0002000 -> 0.0002000")
        if saves and epoch % 5 == 0:
            lines.append(f"saving the model at the end of epoch {epoch}, iters {total}")
        lines.append(f"End of epoch {epoch} / 200 \t Time Taken: 182 sec")
    return "\n".join(lines) + "\n", expected


def test_a_line_iters_are_placed_in_the_epoch_length_its_bar_states(tmp_path: Path) -> None:
    text, expected = _cyclegan(12)
    log = read_log(write(tmp_path, "train.log", text))
    g_a = by_name(log)["G_A"]
    assert g_a.step_unit == "epoch"
    # (epoch: 1, iters: 100) is 100/180 of epoch 1: 1.5556, not 1.0549
    assert dict(zip(map(float, g_a.steps), map(float, g_a.values), strict=True)) == pytest.approx(expected)
    assert float(g_a.steps[0]) == pytest.approx(1 + 100 / 180, abs=1e-6)


def test_a_checkpoint_line_naming_the_total_count_does_not_set_the_epoch_length(tmp_path: Path) -> None:
    # no bar states the length: the placement is what the loss lines alone imply, whatever the
    # "saving the model ... iters 900" lines say (the run's total count, 5 epochs of 180)
    with_saves, expected = _cyclegan(12, bars=False)
    without, _ = _cyclegan(12, bars=False, saves=False)
    placed = [by_name(read_log(write(tmp_path, f"{name}.log", text)))["G_A"]
              for name, text in (("with", with_saves), ("without", without))]
    assert list(map(float, placed[0].steps)) == pytest.approx(list(map(float, placed[1].steps)))
    # each line in its own epoch, in the order the log printed them
    assert [math.floor(x) for x in placed[0].steps] == [math.floor(e) for e in expected]


def test_progress_bar_refreshes_are_no_message_printed_twice(tmp_path: Path) -> None:
    epochs = 3
    text, _ = _cyclegan(epochs)
    lines = text.split("\n")[:-1]  # (not splitlines(): a bar's frames stay on their line)
    dup_at = next(i for i, line in enumerate(lines) if "iters:" in line)
    lines.insert(dup_at + 1, lines[dup_at])  # one loss line printed twice: file line dup_at + 2
    log = read_log(write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    notes = [w for w in log.warnings if w.code == "repeated_lines"]
    twice = [w for w in notes if "printed twice" in w.message]
    bars = [w for w in notes if "progress-bar refreshes" in w.message]
    assert len(twice) == 1 and len(bars) == 1
    assert "1 line(s)" in twice[0].message and twice[0].where == f"line {dup_at + 2}"
    # each bar line: 181 frames (0/180 ... 180/180), the first read, the 180 after it redraws of it
    first_bar = next(i for i, line in enumerate(lines) if line.startswith("\r")) + 1
    assert f"{epochs * _IMAGES:,} progress-bar refreshes" in bars[0].message
    assert f"on {epochs} line(s)" in bars[0].message and bars[0].where == f"line {first_bar}"
    assert "printed twice" not in bars[0].message
