"""What the thirty-first log sweep found (committed RL logs): progress files stepped by an epoch, by
episodes or by a script's own count were refused, a Stable-Baselines3 row with a blank step stopped
the read, and stable-baselines 2's KL tag was not read as the policy's KL."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gradhealth.logs.check import diagnose
from gradhealth.logs.load import read_log
from tests.logs.helpers import by_name, write


def _codes(doc) -> dict[str, str]:  # noqa: ANN001 - a Diagnosis
    return {f.code: f.severity for f in doc.findings}


def test_baselines_her_progress_by_epoch_is_read_as_an_agents_run(tmp_path: Path) -> None:
    header = "test/mean_Q,epoch,train/episode,test/episode,test/success_rate,train/success_rate"
    rows = [f"{-1.5 - 0.1 * e},{e},{100.0 * (e + 1)},{20.0 * (e + 1)},{0.07 + 0.02 * e},{0.06 + 0.02 * e}"
            for e in range(10)]
    log = read_log(write(tmp_path, "progress.csv", "\n".join([header, *rows]) + "\n"))
    s = by_name(log)
    np.testing.assert_array_equal(s["test/success_rate"].steps, np.arange(10))
    doc = diagnose(log)
    assert _codes(doc) == {"insufficient_data": "info"}  # an agent's run: no loss, not "no log"


def test_a_dqn_scripts_own_step_count_is_its_step(tmp_path: Path) -> None:
    rows = [f"{e},{0.5},{-21.0 + e},{-21.0 + 0.5 * e},{1000 * (e + 1)}" for e in range(12)]
    text = "episode,episode time,episode_reward,running_reward,steps_done\n" + "\n".join(rows) + "\n"
    s = by_name(read_log(write(tmp_path, "progress.csv", text)))
    np.testing.assert_array_equal(s["episode_reward"].steps, 1000 * np.arange(1, 13))


def test_a_row_with_a_blank_step_takes_the_step_of_the_row_before(tmp_path: Path) -> None:
    # SB3's off-policy logger: rollout rows carry time/episodes, train rows (the losses) leave it blank
    lines = ["rollout/ep_rew_mean,time/episodes,train/critic_loss,train/actor_loss"]
    for e in range(1, 9):
        lines += [f"{-50.0 + e},{4 * e},,", f",,{1.0 / e},{-0.5 * e}"]
    log = read_log(write(tmp_path, "progress.csv", "\n".join(lines) + "\n"))
    s = by_name(log)
    np.testing.assert_array_equal(s["train/critic_loss"].steps, 4 * np.arange(1, 9))
    assert any(w.code == "placed_by_order" and "blank" in w.message for w in log.warnings)


def test_stable_baselines_2s_kl_tag_is_the_policys_kl(tmp_path: Path) -> None:
    # stable-baselines 2's PPO1 TensorBoard scalars, KL exactly 0 at every update: the policy never moved
    # (its losses written at full precision, so a KL printed 0.0 is 0, not a small KL rounded)
    rows = [f"{k + 1},{0.5046623349189758 - 0.000123456789 * k!r},-0.3496512770652771,{1e-9 * (-1) ** k!r},"
            f"{0.8543136119842529 - 0.000123456789 * k!r},0.0,0.0003000000142492354,{0.05 * k}" for k in range(28)]
    text = ("step,loss/loss,loss/entropy_loss,loss/policy_gradient_loss,loss/value_function_loss,"
            "loss/approximate_kullback-leibler,input_info/learning_rate,episode_reward\n" + "\n".join(rows) + "\n")
    doc = diagnose(read_log(write(tmp_path, "ppo1.csv", text)))
    [f] = [f for f in doc.findings if f.code == "small_updates"]
    assert f.severity == "warning" and "never moved" in f.summary
