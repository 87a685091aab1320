"""An RL agent that never learns (``reward_plateau``): an episode return that stays where it started.

logsweep57: an A2C on BipedalWalker-v3 logged 46,706 episodes over 15,140 s to a Monitor CSV; the
medians of its tenths were -108.4, -102.3, -102.4 ... -102.3 (the walker falls in every episode) and
the log check said only "checked for NaN/Inf". The files here are synthetic, in the real formats:
SB3's ``Monitor`` CSV (``#{"t_start": ...}``, then ``r,l,t``) and its ``progress.csv``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gradhealth.library import check_logs


def _monitor(tmp_path: Path, returns: np.ndarray, *, lengths: np.ndarray | None = None,
             success: np.ndarray | None = None, env: str = "BipedalWalker-v3") -> Path:
    """A Monitor CSV of one row per episode (``r,l,t`` and ``is_success`` where given)."""
    n = len(returns)
    lengths = np.full(n, 57) if lengths is None else lengths
    head = "r,l,t" + (",is_success" if success is not None else "")
    rows = [f"{returns[i]:.6f},{int(lengths[i])},{0.33 * (i + 1):.6f}"
            + (f",{bool(success[i])}" if success is not None else "") for i in range(n)]
    path = tmp_path / "monitor.csv"
    path.write_text("#" + json.dumps({"t_start": 1650127719.7, "env_id": env}) + "\n" + head + "\n"
                    + "\n".join(rows) + "\n")
    return path


def _progress(tmp_path: Path, ep_rew_mean: np.ndarray, *, first_step: int = 2048) -> Path:
    """An SB3 ``progress.csv``: one row per PPO update of 2,048 steps, with its losses."""
    rng = np.random.default_rng(5)
    n = len(ep_rew_mean)
    lines = ["rollout/ep_rew_mean,rollout/ep_len_mean,time/iterations,time/total_timesteps,"
             "train/value_loss,train/policy_gradient_loss,train/learning_rate"]
    for i in range(n):
        lines.append(f"{ep_rew_mean[i]:.4g},{200 + 5 * rng.standard_normal():.1f},{i + 1},{first_step + 2048 * i},"
                     f"{abs(40 + 8 * rng.standard_normal()):.4f},{-0.01 + 0.003 * rng.standard_normal():.5f},0.0003")
    path = tmp_path / "progress.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _plateau(doc):  # noqa: ANN001, ANN202
    return [f for f in doc.findings if f.code == "reward_plateau"]


def _never_learns(n: int, seed: int = 0) -> np.ndarray:
    """A walker that falls every episode: returns around -105 (a -100 fall penalty plus a few points
    of shaping), drifting from -108 to -102 over the first fifth of the run, with a rare good episode."""
    rng = np.random.default_rng(seed)
    level = -108 + 6 * np.minimum(np.arange(n) / (0.2 * n), 1.0)
    r = level + 3 * rng.standard_normal(n)
    lucky = rng.random(n) < 0.002
    r[lucky] = rng.uniform(0, 200, int(lucky.sum()))
    return r


def test_a_return_that_never_rose_over_thousands_of_episodes_is_a_warning(tmp_path: Path) -> None:
    r = np.round(_never_learns(5000), 6)   # as the file prints them
    [f] = _plateau(check_logs(_monitor(tmp_path, r)))
    assert f.severity == "warning" and f.evidence.metric == "episode_return"
    ev = f.evidence.model_dump()
    # the start is the first tenth's median (or the first 20 episodes', where lower)
    start = min(np.median(r[:500]), np.median(r[:20]))
    assert abs(ev["start"] - start) < 1e-9
    assert -109 < start < -106
    # the band: a tenth of the start's size (the noise term is far smaller over 500-episode windows)
    assert abs(f.evidence.threshold - 0.1 * abs(start)) < 1e-9
    # the level rose by 6 (from -108 to -102): under the band, and the last fifth sits ~4-6 above the start
    assert 4 < f.evidence.value < 0.1 * abs(start)
    assert abs(ev["last"] - np.median(r[-1000:])) < 1e-9
    assert ev["episodes"] == 5000 and ev["points"] == 5000
    assert f.evidence.steps == [57, 57 * 5000]
    assert "5,000 episodes" in f.summary
    assert {x.id for x in f.remedies} == {"raise_learning_rate", "lower_learning_rate", "keep_exploring"}


def test_the_note_says_the_return_was_judged_where_it_was(tmp_path: Path) -> None:
    long = check_logs(_monitor(tmp_path, _never_learns(5000)))
    [note] = [f for f in long.findings if f.code == "insufficient_data"]
    assert "never rose" in note.summary and "NaN/Inf only" not in note.summary
    assert note.evidence.model_dump()["trend_judged"] == ["episode_return", "ep_rew_mean"]
    short = tmp_path / "short"
    short.mkdir()
    doc = check_logs(_monitor(short, _never_learns(400)))
    [note] = [f for f in doc.findings if f.code == "insufficient_data"]
    assert "NaN/Inf only" in note.summary and not _plateau(doc)


def test_a_time_out_return_pinned_at_one_negative_value_is_a_plateau(tmp_path: Path) -> None:
    # MountainCar under a failing DQN: -200 (the 200-step time-out) in every one of 1,500 episodes
    [f] = _plateau(check_logs(_monitor(tmp_path, np.full(1500, -200.0), lengths=np.full(1500, 200),
                                       env="MountainCar-v0")))
    assert f.evidence.value == 0 and f.evidence.model_dump()["start"] == -200


def test_a_mean_return_logged_per_update_is_judged_from_200_points(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    flat = -120 + 2 * rng.standard_normal(250)
    [f] = _plateau(check_logs(_progress(tmp_path, flat)))
    assert f.evidence.metric == "rollout/ep_rew_mean" and f.evidence.model_dump()["episodes"] is None
    short = tmp_path / "short"
    short.mkdir()
    assert not _plateau(check_logs(_progress(short, flat[:150])))   # 150 updates: too short to say


def test_an_excerpt_of_a_long_run_is_not_judged(tmp_path: Path) -> None:
    # a progress.csv resumed at 5e6 steps spanning 0.6e6 of them: a window of the run, not its start
    rng = np.random.default_rng(2)
    flat = 250 + 3 * rng.standard_normal(300)
    assert not _plateau(check_logs(_progress(tmp_path, flat, first_step=5_000_000)))
    # the same 300 updates from the run's start: never learnt
    whole = tmp_path / "whole"
    whole.mkdir()
    assert _plateau(check_logs(_progress(whole, flat)))


def _learning_curve(n: int, low: float, high: float, noise: float, seed: int, *, mid: float = 0.4,
                    width: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.arange(n) / n
    return low + (high - low) / (1 + np.exp(-(x - mid) / width)) + noise * rng.standard_normal(n)


def test_healthy_learning_curves_with_realistic_noise_stay_healthy(tmp_path: Path) -> None:
    cases = {
        # LunarLander: -200 -> +200, episodes scattering by 80
        "lunar": _learning_curve(3000, -200, 200, 80, 3),
        # Pendulum, a slow learner: -1200 -> -900 (25 %), episodes scattering by 150
        "pendulum": _learning_curve(2000, -1200, -900, 150, 4, mid=0.6, width=0.2),
        # a return near 0 that learns to 0.5 under noise of 1 (a small dense reward)
        "near_zero": _learning_curve(4000, 0.0, 0.5, 1.0, 5),
        # learnt inside the first tenth (-200 -> 150 over ~40 of 3,000 episodes), then held there: the
        # first tenth's median is already ~150, the first 20 episodes' ~-200
        "fast": _learning_curve(3000, -200, 150, 40, 6, mid=0.008, width=0.002),
        # the same over ~150 episodes
        "fast2": _learning_curve(3000, -200, 150, 40, 6, mid=0.03, width=0.004),
    }
    for name, r in cases.items():
        d = tmp_path / name
        d.mkdir()
        doc = check_logs(_monitor(d, r))
        assert not _plateau(doc), name
        assert not [f for f in doc.findings if f.severity in ("warning", "error")], name
        # judged (long enough, from the start), and found to rise
        [note] = [f for f in doc.findings if f.code == "insufficient_data"]
        assert "episode_return" in note.evidence.model_dump()["trend_judged"], name
    rising = tmp_path / "progress"
    rising.mkdir()
    assert not _plateau(check_logs(_progress(rising, _learning_curve(300, -150, 250, 10, 7))))


def test_a_task_solved_from_the_start_stays_healthy(tmp_path: Path) -> None:
    # CartPole-v1 with a trained policy: 500 (the cap) in ~95 % of 2,000 episodes, an occasional failure
    rng = np.random.default_rng(8)
    r = np.full(2000, 500.0)
    fail = rng.random(2000) < 0.05
    r[fail] = rng.integers(150, 499, int(fail.sum()))
    doc = check_logs(_monitor(tmp_path, r, lengths=r.astype(int), env="CartPole-v1"))
    assert not _plateau(doc)
    assert not [f for f in doc.findings if f.severity in ("warning", "error")]
    [note] = [f for f in doc.findings if f.code == "insufficient_data"]
    assert "episode_return" in note.evidence.model_dump()["trend_judged"]


def test_a_success_rate_at_its_ceiling_is_a_solved_task(tmp_path: Path) -> None:
    # a goal task already solved: 98 % successes from the first episode, a return flat around -4
    rng = np.random.default_rng(9)
    ok = rng.random(1500) < 0.98
    r = -4 + 0.5 * rng.standard_normal(1500)
    doc = check_logs(_monitor(tmp_path, r, success=ok, env="FetchReach-v1"))
    assert not _plateau(doc)
    [note] = [f for f in doc.findings if f.code == "insufficient_data"]
    assert "success_rate" in note.evidence.model_dump()["trend_judged"]
    # the same flat return, never succeeding, never learnt
    other = tmp_path / "failing"
    other.mkdir()
    assert _plateau(check_logs(_monitor(other, r - 46, success=np.zeros(1500, bool), env="FetchReach-v1")))


def _progress_with(tmp_path: Path, ep_rew_mean: np.ndarray, column: str, values: np.ndarray) -> Path:
    """:func:`_progress` with one more column (an exploration series) beside the return."""
    path = _progress(tmp_path, ep_rew_mean)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([f"{lines[0]},{column}"] + [f"{row},{v:.6g}" for row, v in zip(lines[1:], values,
                                                                                           strict=True)]) + "\n")
    return path


def test_a_plateau_offers_to_keep_exploring_first_where_the_logged_epsilon_decayed(tmp_path):
    # logsweep92 iqn_cartpole_stuck: a DQN stuck at its random policy's return was offered only the
    # learning rate raised and lowered; an epsilon decayed to nothing is what its README blamed
    n = 400
    rewards = -105 + 2 * np.random.default_rng(1).standard_normal(n)
    eps = np.maximum(0.0, 1.0 - np.arange(n) / 20)  # gone by the 20th update of 400
    (f,) = _plateau(check_logs(_progress_with(tmp_path, rewards, "rollout/exploration_rate", eps)))
    ids = [r.id for r in f.remedies]
    assert ids[0] == "keep_exploring", ids
    assert "rollout/exploration_rate went from 1 (" in f.remedies[0].change and "to 0 (" in f.remedies[0].change


def test_a_plateau_with_exploration_kept_is_not_told_to_explore(tmp_path):
    n = 400
    rewards = -105 + 2 * np.random.default_rng(1).standard_normal(n)
    eps = np.full(n, 0.3)  # still exploring at the end: the plateau's cause is elsewhere
    (f,) = _plateau(check_logs(_progress_with(tmp_path, rewards, "rollout/exploration_rate", eps)))
    assert "keep_exploring" not in [r.id for r in f.remedies]
    # without any exploration series, the remedy is offered last: a cause the log cannot show
    (g,) = _plateau(check_logs(_progress(tmp_path, rewards)))
    assert [r.id for r in g.remedies][-1] == "keep_exploring"
