"""logsweep62: a table aligned with blanks (the PyTorch Mario tutorial's MetricLogger) refused as an
unknown format (u01), and an RL return on a large offset that fell 43 % and froze, under the half of its
start asked of a fall (u02: SB3 PPO on Mario, ep_rew_mean 2519-2572 then 1444)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from gradhealth.errors import UnknownLogFormat
from gradhealth.library import check_logs
from gradhealth.logs.check import diagnose
from gradhealth.logs.load import read_log
from gradhealth.logs.readers import textio
from gradhealth.logs.readers.native import READER as NATIVE
from tests.logs.readers.test_tensorboard import file_version_event, scalar_event, write_records
from tests.logs.test_detectors_real_runs import found, run_of

# --- u01: a table aligned with blanks -------------------------------------------------------------------

_MARIO_HEADER = (f"{'Episode':>8}{'Step':>8}{'Epsilon':>10}{'MeanReward':>15}{'MeanLength':>15}{'MeanLoss':>15}"
                 f"{'MeanQValue':>15}{'TimeDelta':>15}{'Time':>20}\n")


def _mario_log(tmp_path: Path, rows: int = 40, *, time_format: str = "%Y-%m-%dT%H:%M:%S") -> tuple[Path, list[float]]:
    """A MetricLogger file as the tutorial writes it (its format strings), a reward creeping up."""
    t0 = datetime(2023, 10, 14, 12, 36, 54)
    lines, rewards = [_MARIO_HEADER], []
    for i in range(rows):
        episode, step = 20 * (i + 1), 2000 * (i + 1)
        reward = round(600.0 + 3.0 * i, 3)
        rewards.append(reward)
        when = (t0 + timedelta(seconds=40 * i)).strftime(time_format)
        lines.append(f"{episode:8d}{step:8d}{0.9 * 0.999 ** i:10.3f}{reward:15.3f}{150.0 + i:15.3f}"
                     f"{1.0 / (i + 1):15.3f}{30.0 - 0.5 * i:15.3f}{40.123:15.3f}{when:>20}\n")
    path = tmp_path / "log"
    path.write_text("".join(lines))
    return path, rewards


def _series(run, name):  # noqa: ANN001, ANN202
    [s] = [s for s in run.series if s.name == name]
    return s


def test_a_mario_metric_logger_table_is_read_as_a_wide_table(tmp_path: Path) -> None:
    path, rewards = _mario_log(tmp_path)
    run = read_log(path)
    assert run.format == "native"
    reward = _series(run, "MeanReward")
    # stepped by its Step column (not Episode, not the row), every row a point, the values as written
    assert list(reward.steps) == [2000.0 * (i + 1) for i in range(40)]
    assert list(reward.values) == pytest.approx(rewards)
    assert _series(run, "MeanLoss").role == "loss"
    assert _series(run, "Episode").values[-1] == 800
    # the ISO timestamp column holds no series: left out with a note
    assert "Time" not in {s.name for s in run.series} and "TimeDelta" in {s.name for s in run.series}
    assert any(w.code == "skipped_values" and "'Time'" in w.message for w in run.warnings)


def test_a_timestamp_of_two_tokens_is_one_cell(tmp_path: Path) -> None:
    # "2023-10-14 12:36:54": the rows hold one token more than the header, the last two a date and time
    path, rewards = _mario_log(tmp_path, time_format="%Y-%m-%d %H:%M:%S")
    run = read_log(path)
    assert list(_series(run, "MeanReward").values) == pytest.approx(rewards)
    assert "Time" not in {s.name for s in run.series}


def test_an_aligned_table_steps_by_episode_or_by_row(tmp_path: Path) -> None:
    rows = ["Episode   Reward   Length   Loss"] + [f"{e:7d} {10.0 + e:8.2f} {100 + e:8d} {1 / e:6.3f}"
                                                   for e in range(1, 8)]
    (tmp_path / "ep.txt").write_text("\n".join(rows) + "\n")
    run = read_log(tmp_path / "ep.txt")
    assert list(_series(run, "Reward").steps) == list(range(1, 8))
    rows = ["reward   length   loss"] + [f"{10.0 + e:8.2f} {100 + e:8d} {1 / e:6.3f}" for e in range(1, 8)]
    (tmp_path / "rows.txt").write_text("\n".join(rows) + "\n")
    run = read_log(tmp_path / "rows.txt")
    assert list(_series(run, "loss").steps) == list(range(7))
    assert _series(run, "loss").values[0] == pytest.approx(1.0)


def test_a_real_run_flat_in_an_aligned_table_is_judged(tmp_path: Path) -> None:
    # logsweep62 u01's shape: 206 rows, a mean reward over the last episodes that never rises (704 -> 713)
    rng = np.random.default_rng(62)
    lines = [_MARIO_HEADER]
    for i in range(206):
        lines.append(f"{2500 + 50 * i:8d}{222 + 10_700 * i:8d}{0.8:10.3f}{705 + rng.normal(0, 15):15.3f}"
                     f"{200.0:15.3f}{1.0:15.3f}{20.0:15.3f}{80.0:15.3f}{'2023-10-14T12:36:54':>20}\n")
    (tmp_path / "log").write_text("".join(lines))
    doc = check_logs(tmp_path / "log")
    assert [f.code for f in doc.findings if f.code.startswith("reward")] == ["reward_plateau"]


@pytest.mark.parametrize("text", [
    # prose: names, and lines of words below them
    "The quick brown fox\njumps over the lazy dog\nand runs into the wood\nwhere it sleeps until noon\n",
    # rows of another width than the header
    "step loss acc lr\n1 0.5 0.9\n2 0.4 0.91\n3 0.3 0.92\n",
    # "key value" lines under a line of names: half of each line is names
    "training run started now\nstep 1 loss 0.9\nstep 2 loss 0.8\nstep 3 loss 0.7\n",
    # a header and only two rows
    "step loss acc\n1 0.5 0.9\n2 0.4 0.91\n",
])
def test_other_text_is_no_aligned_table(text: str) -> None:
    assert textio.aligned_header(text.encode()) is None
    assert NATIVE.sniff("log.txt", text.encode()) == 0.0


def test_prose_is_still_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("The quick brown fox\njumps over the lazy dog\nand runs into the wood\n"
                                        "where it sleeps until noon\n")
    with pytest.raises(UnknownLogFormat):
        read_log(tmp_path / "notes.txt")


@pytest.mark.parametrize(("name", "text", "series"), [
    # fastai's console table: aligned too, and the text reader's (its time column mm:ss)
    ("fit.log", "epoch     train_loss  valid_loss  accuracy  time\n"
     + "".join(f"{e:<9} {1.2 / (e + 1):.6f}    {1.0 / (e + 1) + 0.1:.6f}    {0.7 + 0.05 * e:.6f}  00:10\n"
               for e in range(6)), "valid_loss"),
    # a key=value console stays the text reader's
    ("train.log", "".join(f"step {s} loss {1 / s:.4f} lr 0.001\n" for s in range(1, 9)), "loss"),
])
def test_the_text_readers_tables_stay_its_own(tmp_path: Path, name: str, text: str, series: str) -> None:
    (tmp_path / name).write_text(text)
    run = read_log(tmp_path / name)
    assert run.format == "text" and series in {s.name for s in run.series}


# --- u02: a return on a large offset that fell by less than half its start ---------------------------------

def _ppo_return(tail_level: float = 1444.0) -> np.ndarray:
    """rollout/ep_rew_mean as u02 logs it (1,010 points): a 100-episode mean moving in steps, 2519 then
    2572.5 over the first tenth, then down to ``tail_level`` and frozen there (noise of 0.05)."""
    rng = np.random.default_rng(2)
    head = np.r_[np.full(32, 2519.0), np.full(47, 2572.5), np.full(31, 2216.7)]
    settle = np.linspace(2146.0, tail_level + 30, 90)
    tail = tail_level + np.round(rng.normal(0, 0.05, 1010 - 110 - 90), 1)
    return np.concatenate([head, settle, tail])


def test_a_return_on_an_offset_that_fell_43_percent_and_froze_collapsed() -> None:
    ret = _ppo_return()
    doc = diagnose(run_of(np.arange(1010) * 512.0 + 20992, rollout__ep_rew_mean=ret))
    [f] = found(doc, "reward_collapse")
    assert f.severity == "warning" and "fell from 2519" in f.summary and "standard errors" in f.summary
    # independently: the first tenth (101 points: 32 x 2519, 47 x 2572.5, 22 x 2216.7) has median 2519 and
    # MAD 53.5 (spread 1.4826 x 53.5 = 79.3); its points move in steps, one effective sample, so its
    # standard error is 1.2533 x 79.3 = 99.4; the fall to 1444 is 1075: 10.8 of them, 42.7 % of the start
    assert f.evidence.threshold == 0.25
    assert f.evidence.value == pytest.approx((2519 - 1444) / 2519, abs=1e-3)
    assert f.evidence.standard_errors == pytest.approx(1075 / (1.2533 * 1.4826 * 53.5), rel=2e-3)


def test_a_tensorboard_ppo_run_whose_return_fell_and_froze(tmp_path: Path) -> None:
    ret = _ppo_return()
    records = [file_version_event()] + [scalar_event("rollout/ep_rew_mean", float(v), 20992 + 512 * i)
                                        for i, v in enumerate(ret)]
    doc = check_logs(write_records(tmp_path / "events.out.tfevents.1695873155.host.1.0", records))
    assert [f.code for f in doc.findings if f.code.startswith("reward")] == ["reward_collapse"]


def test_a_fall_of_a_fifth_of_the_start_is_not_enough() -> None:
    # 2519 -> 2100 (17 %): far outside the noise, but under a quarter of the start
    doc = diagnose(run_of(np.arange(1010) * 512.0, rollout__ep_rew_mean=_ppo_return(2100.0)))
    assert not found(doc, "reward_collapse")


def test_a_noisy_return_that_falls_inside_its_noise_stays_quiet() -> None:
    # episode returns with a spread of 1,000 around 2,500, then around 1,800 (28 % lower, 0.7 of one
    # episode's spread): 10 standard errors of the first tenth's median are 10 x 1.2533 x 1000 / 10 = 1,253
    rng = np.random.default_rng(5)
    ret = np.r_[2500 + rng.normal(0, 1000, 500), 1800 + rng.normal(0, 1000, 500)]
    assert not found(diagnose(run_of(episode_reward=ret)), "reward_collapse")
    # and a 100-episode running mean of such episodes, wandering within its own noise
    episodes = 2500 + rng.normal(0, 1000, 1100)
    running = np.convolve(episodes, np.ones(100) / 100, mode="valid")[:1000]
    assert not found(diagnose(run_of(rollout__ep_rew_mean=running)), "reward_collapse")


def test_a_negative_return_that_fell_a_third_collapsed_and_one_near_zero_stays_quiet() -> None:
    rng = np.random.default_rng(8)
    # -100 +- 5 per episode, then -135 (35 % of the start, 7 episode spreads; the old rule wanted 50 %)
    ret = np.r_[-100 + rng.normal(0, 5, 600), np.linspace(-100, -135, 100), -135 + rng.normal(0, 5, 300)]
    [f] = found(diagnose(run_of(episode_reward=ret)), "reward_collapse")
    assert "fell from -100" in f.summary and f.evidence.threshold == 0.25
    # near 0: the early level's spread, not |start| (0.05), scales the fall: 0 +- 10, then -3
    ret = np.r_[0.05 + rng.normal(0, 10, 600), -3 + rng.normal(0, 10, 400)]
    assert not found(diagnose(run_of(episode_reward=ret)), "reward_collapse")
