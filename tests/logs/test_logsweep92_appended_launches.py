"""Consoles appended to on every launch (logsweep92 madqn_sessions, problems 2 and 5): an RL script's
``Episode i/10 | ... | Loss: x`` lines under a ``Training Session Started: <time>`` banner, run again
and again into the same file. The episode counted out of its total is the line's step, a launch that
counts from episode 1 again is a run of its own (as ``Epoch 1/10`` again is), a banner that opened the
first launch and opens a later one where the counter starts again starts that run at the banner (also
where the counter alone would not split: the same total, or one-episode launches), and a banner where
the counter goes on splits nothing. A console of runs that are not complete trials says why only the
last is judged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gradhealth.logs.check import run_log_check
from gradhealth.logs.load import read_log
from gradhealth.logs.readers.text import line_values
from tests.logs.helpers import by_name, write


@pytest.mark.parametrize("line", ["Episode 3/10 | Deliveries: 3 | Collisions: 0 | Loss: 2.4 | eps: 0.100",
                                  "Episode: 3/10 | Loss: 2.4"])
def test_an_episode_counted_out_of_its_total_is_the_step(line: str) -> None:
    values = dict(line_values(line)[0])
    assert values["step"] == "3" and values["Loss"] == "2.4"


def _session(level: float, episodes: int, banner: str | None) -> list[str]:
    """One launch: a loss decaying from ``level`` by 10% an episode."""
    head = ["", "=" * 40, banner, "=" * 40] if banner is not None else []
    return [*head, *(f"Episode {k}/{episodes} | Deliveries: 3 | Collisions: 0 | Loss: {level * 0.9 ** k:.4f}"
                     for k in range(1, episodes + 1)), "FINAL RESULTS (Online DQN Learning)"]


def test_launches_counting_their_episodes_again_are_runs_of_their_own(tmp_path: Path) -> None:
    # two launches, a loss decaying in each, the second at 10x the first's level: read by line they were
    # one run whose loss jumped 10x and stayed there (a loss_divergence); each is healthy on its own
    levels = (2.0, 25.0)  # (no banner: the counter alone tells the launches apart)
    text = "\n".join(line for level in levels for line in _session(level, 10, None)) + "\n"
    log = read_log(write(tmp_path, "train_log.txt", text))
    assert log.runs == ["run1", "run2"]
    series = by_name(log)
    for k, level in enumerate(levels, 1):
        loss = series[f"run{k}/Loss"]
        assert list(loss.steps) == list(range(1, 11))
        np.testing.assert_allclose(loss.values, [level * 0.9 ** e for e in range(1, 11)], rtol=1e-3)
    doc = run_log_check(write(tmp_path, "again.txt", text))
    assert not [f for f in doc.findings if f.code == "loss_divergence"]


def test_a_banner_that_opened_the_first_launch_starts_each_later_one(tmp_path: Path) -> None:
    # one-episode launches (each "Episode 1/1") and then 10-episode ones, each under its banner: the
    # counter alone never goes back below 1, so only the banner tells the one-episode launches apart
    sessions = [(2.06, 1), (35.9, 1), (0.63, 1), (1.7, 10), (28.9, 10)]
    lines: list[str] = []
    banners = []
    for k, (level, n) in enumerate(sessions):
        banners.append(len(lines) + 3)  # (1-based: the banner is the third line of its block)
        lines += _session(level, n, f"Training Session Started: 2026-02-03 15:{30 + k:02d}:00")
    log = read_log(write(tmp_path, "train_log.txt", "\n".join(lines) + "\n"))
    assert log.runs == [f"run{k}" for k in range(1, 6)]
    [note] = [w for w in log.warnings if w.code == "several_runs"]
    assert all(f"run{k + 1} (line {at if k else 1})" in note.message for k, at in enumerate(banners))
    series = by_name(log)
    assert series["run2/Loss"].values[0] == pytest.approx(35.9 * 0.9, rel=1e-3)
    assert list(series["run5/Loss"].steps) == list(range(1, 11))


def test_a_banner_splits_a_step_counter_starting_again_at_the_same_total(tmp_path: Path) -> None:
    # "iter: i/N" back at 1 of the same total: the counter alone reads it as one run (a total that
    # comes back); the banner that opened the first launch, printed again there, makes it a second
    lines: list[str] = []
    for k, level in enumerate((3.0, 9.0)):
        lines += [f"==== Run {k + 1} ====", "loading data"]
        lines += [f"iter: {i}/20 loss: {level * 0.95 ** i:.4f}" for i in range(1, 21)]
    log = read_log(write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    assert log.runs == ["run1", "run2"]
    assert "run2 (line 23)" in next(w.message for w in log.warnings if w.code == "several_runs")
    np.testing.assert_allclose(by_name(log)["run2/loss"].values, [9.0 * 0.95 ** i for i in range(1, 21)], rtol=1e-3)


@pytest.mark.parametrize("case", ["counter_goes_on", "banner_not_opening"])
def test_a_banner_alone_splits_nothing(tmp_path: Path, case: str) -> None:
    # a banner where the counter goes on (a resumed launch: episodes 11-20 after 1-10), or worded lines
    # before a counter starting again that did not open the first launch: one run, as before
    if case == "counter_goes_on":
        lines = ["Training Session Started: 2026-02-03 15:30:00"]
        lines += [f"Episode {k}/20 | Loss: {2.0 * 0.95 ** k:.4f}" for k in range(1, 11)]
        lines += ["Training Session Started: 2026-02-03 15:31:00"]
        lines += [f"Episode {k}/20 | Loss: {2.0 * 0.95 ** k:.4f}" for k in range(11, 21)]
    else:
        lines = [f"iter: {i}/20 loss: {3.0 * 0.95 ** i:.4f}" for i in range(1, 21)]
        lines += ["Evaluating on the test set"]
        lines += [f"iter: {i}/20 loss: {3.0 * 0.95 ** i:.4f}" for i in range(1, 4)]
    log = read_log(write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    assert log.runs == [] and not [w for w in log.warnings if w.code in ("several_runs", "skipped_runs")]


def test_runs_not_each_judged_say_why(tmp_path: Path) -> None:
    # a run cut short at epoch 6 of 30, then a fresh start that runs 10: not complete trials, so the
    # last is read, and the note says why the earlier one is not judged
    lines = [f"Epoch {e:02d} | Train Loss: {1.0 * 0.9 ** e:.4f}" for e in range(1, 7)]
    lines += [f"Epoch {e:02d} | Train Loss: {1.2 * 0.9 ** e:.4f}" for e in range(1, 11)]
    log = read_log(write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    [note] = [w for w in log.warnings if w.code == "skipped_runs"]
    assert "the last one, from line 7, is read" in note.message
    assert "not each judged" in note.message and "cut short and superseded" in note.message
    assert "stopped before its own total" in note.message


@pytest.mark.parametrize("heading", ["Epoch {e} starting", "Start epoch", "Training step {e}:"])
def test_an_epochs_heading_is_no_launch_banner(tmp_path: Path, heading: str) -> None:
    # a heading printed before every epoch, and before the first, whose steps count from 1 again each
    # epoch: the epochs of one run, never a run each
    lines: list[str] = []
    for e in range(1, 5):
        lines.append(heading.format(e=e))
        lines += [f"iter: {i}/10 loss: {2.0 * 0.97 ** (10 * e + i):.4f}" for i in range(1, 11)]
    log = read_log(write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    assert log.runs == [] and not [w for w in log.warnings if w.code in ("several_runs", "skipped_runs")]
