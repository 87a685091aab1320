"""Fixes from logsweep97 (RL, boosting and misnamed consoles)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gradhealth.logs.check import diagnose
from gradhealth.logs.load import read_log
from tests.logs.helpers import by_name, write


def _agent_csv(n: int = 120, critic=None, reward: bool = True) -> str:  # noqa: ANN001 - a callable or None
    """A baselines-DDPG-style progress.csv: an actor's loss (-Q, growing negative as Q grows), a
    critic's TD loss, and (with ``reward``) the rollouts' return climbing."""
    critic = critic or (lambda i: 150.0 + 40.0 * i)
    head = "total/steps,train/loss_actor,train/loss_critic" + (",rollout/return" if reward else "") + "\n"
    rows = []
    for i in range(n):
        row = f"{2000 * (i + 1)},{-20.0 * (i + 1)},{critic(i)}"
        if reward:
            row += f",{-4800 + 30 * i}"
        rows.append(row + "\n")
    return head + "".join(rows)


def test_actor_and_critic_losses_are_never_summed(tmp_path: Path) -> None:
    # logsweep97 rl_ddpg_baselines: train/loss_actor (-Q ~ -2000) + train/loss_critic (TD ~ 5000)
    # was read as one "train/loss (sum of loss_actor, loss_critic)"
    log = read_log(write(tmp_path, "progress.csv", _agent_csv()))
    names = by_name(log)
    assert not any("sum of" in name for name in names)
    # the run is on its own rollouts: the critic's TD loss is the loss judged, the actor's stays apart
    assert [s.name for s in log.by_role("loss")] == ["train/loss_critic"]
    assert names["train/loss_actor"].role == "metric"
    note = [w.message for w in log.warnings if w.code == "derived_loss"]
    assert len(note) == 1 and "critic" in note[0] and "train/loss_actor" in note[0]


def test_agent_losses_without_a_reward_are_left_apart(tmp_path: Path) -> None:
    # no episode return: not known to be an agent's rollouts, so no loss is chosen and nothing summed
    log = read_log(write(tmp_path, "progress.csv", _agent_csv(reward=False)))
    assert not log.by_role("loss")
    assert not any("sum of" in s.name for s in log.series)
    codes = {(f.code, f.severity) for f in diagnose(log).findings}
    assert ("insufficient_data", "info") in codes


def test_policy_value_entropy_losses_of_an_a2c_are_not_summed(tmp_path: Path) -> None:
    text = "time/total_timesteps,train/policy_loss,train/value_loss,train/entropy_loss,rollout/ep_rew_mean\n" + "".join(
        f"{500 * (i + 1)},{-0.01 * ((-1) ** i)},{50.0 + i},{-1.4 + 0.002 * i},{10 + i}\n" for i in range(100))
    log = read_log(write(tmp_path, "progress.csv", text))
    assert not any("sum of" in s.name for s in log.series)
    assert [s.name for s in log.by_role("loss")] == ["train/value_loss"]


def test_the_critic_loss_is_judged_as_an_agents_loss(tmp_path: Path) -> None:
    # a TD loss that grows 4x as the returns grow is the targets' scale (no finding on it) ...
    calm = diagnose(read_log(write(tmp_path, "progress.csv", _agent_csv(critic=lambda i: 100.0 * (1 + 3 * i / 119)))))
    assert not [f for f in calm.findings if f.severity != "info" and f.code != "insufficient_data"]
    # ... one that goes NaN (Q divergence past float range) is an error on the critic's loss
    blown = diagnose(read_log(write(tmp_path, "p2.csv", _agent_csv(critic=lambda i: float("nan") if i > 100 else 100.0))))
    assert [(f.code, f.severity) for f in blown.findings if f.code == "nonfinite"] == [("nonfinite", "error")]
    assert "train/loss_critic" in str([f.evidence for f in blown.findings if f.code == "nonfinite"])


def test_yolo_parts_are_still_summed(tmp_path: Path) -> None:
    text = "epoch,train/box_loss,train/cls_loss,train/dfl_loss\n" + "".join(
        f"{e},{1 / (e + 1)},{2 / (e + 1)},{3 / (e + 1)}\n" for e in range(12))
    log = read_log(write(tmp_path, "results.csv", text))
    (loss,) = log.by_role("loss")
    np.testing.assert_allclose(loss.values, [6 / (e + 1) for e in range(12)])


# --- reward_collapse: a collapse that begins late or partly recovers (logsweep97 rl_ppo_invpendulum_collapse)

def _rewards(levels: list[tuple[int, float]], noise: float, seed: int = 0):  # noqa: ANN202 - a RunLog
    """An SB3-style run of mean returns: piecewise-linear through ``levels`` ((point, level) pairs),
    plus independent Gaussian noise of standard deviation ``noise``."""
    from gradhealth.logs.series import RunLog, make_series

    at, lv = zip(*levels, strict=True)
    n = at[-1] + 1
    v = np.interp(np.arange(n), at, lv) + np.random.default_rng(seed).normal(0.0, noise, n)
    return RunLog(source="progress.csv", format="native",
                  series=[make_series("rollout/ep_rew_mean", np.arange(1, n + 1) * 1024, v)])


def _collapses(run) -> list:  # noqa: ANN001
    from gradhealth.logs.detectors.rl import reward_collapse
    from gradhealth.logs.thresholds import LogThresholds

    return [f for f in reward_collapse(run, LogThresholds()) if f.code == "reward_collapse"]


def test_a_late_collapse_that_partly_recovers_is_reported() -> None:
    # the sweep's shape: 10 -> 980 by 60% of the run, crash to 250 by 85%, regrowth to 600; the last
    # fifth opens above the halfway mark (495), so the whole-last-fifth test cannot see it
    run = _rewards([(0, 10), (120, 980), (150, 900), (180, 250), (216, 600)], noise=15.0)
    (f,) = _collapses(run)
    ev = f.evidence
    assert 950 < ev.peak < 1000 and ev.trough < 400
    # at the end a quarter of the gain or more is still lost: (peak - last) / (peak - start)
    assert ev.value == pytest.approx((ev.peak - ev.last) / (ev.peak - ev.start))
    assert ev.value >= 0.25


def test_a_collapse_that_starts_in_the_last_fifth_is_reported() -> None:
    # peak held until 82% of the run, then down to the start's level with no recovery
    run = _rewards([(0, 0), (60, 500), (170, 500), (185, 30), (200, 30)], noise=10.0)
    (f,) = _collapses(run)
    assert f.evidence.value > 0.5


def test_ordinary_noise_and_a_recovered_dip_are_no_collapse() -> None:
    for seed in range(20):
        # a climb then a noisy plateau whose noise is a fifth of the gain: healthy
        assert not _collapses(_rewards([(0, 0), (80, 500), (300, 500)], noise=100.0, seed=seed)), seed
    # a dip under halfway for a tenth of the run that recovers to within a quarter of the gain
    assert not _collapses(_rewards([(0, 0), (60, 500), (120, 500), (130, 150), (150, 150), (165, 470),
                                    (220, 480)], noise=10.0))
    # a fall to half held only for a few points (one window of bad episodes), then back
    assert not _collapses(_rewards([(0, 0), (60, 500), (150, 500), (155, 100), (160, 500), (200, 500)], noise=10.0))
