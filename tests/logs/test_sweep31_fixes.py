"""What the thirty-first log sweep found (committed RL logs): progress files stepped by an epoch, by
episodes or by a script's own count were refused, a Stable-Baselines3 row with a blank step stopped
the read, and stable-baselines 2's KL tag was not read as the policy's KL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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


def test_a_loss_that_blew_up_at_its_first_update_and_never_came_back_diverges(tmp_path: Path) -> None:
    # 7.12 at step 0, 198 at the next point, then 65-143: running medians smooth the first point away
    later = [198.6, 119.2, 89.0, 144.2, 126.3, 115.6, 84.1, 65.0, 79.5, 81.8, 97.1, 77.9, 91.5, 81.8, 93.2]
    lines = [f'{{"step": {5 * k}, "loss": {v}}}' for k, v in enumerate([7.12, *later])]
    doc = diagnose(read_log(write(tmp_path, "train.jsonl", "\n".join(lines) + "\n")))
    assert _codes(doc) == {"loss_divergence": "error"}  # and no plateau beside it
    [f] = doc.findings
    assert f.evidence.value == pytest.approx(65.0 / 7.12)


def test_a_loss_that_came_back_near_its_start_is_not_that() -> None:
    import numpy as np

    from gradhealth.logs.detectors.divergence import _never_back_to_start
    from gradhealth.logs.series import RunLog, Series

    v = np.array([7.12, 30.0, 25.0, 20.0, 15.0, 12.0, 10.0, 8.0, 7.0, 6.0])  # back under 3x its start
    s = Series(name="loss", role="loss", steps=np.arange(10.0), values=v)
    assert _never_back_to_start(s, s.steps, v, RunLog(format="csv", source="x", series=[s])) == []


def test_a_noisy_loss_at_chance_whose_fall_its_interval_does_not_bear_out_is_a_plateau(tmp_path: Path) -> None:
    # a probe at ln 11 with accuracy 1/11: the last half's Theil-Sen trend reads 3% down, its interval
    # reaches a rise (noise of +-0.4 around 2.95); at chance that is no learning (logsweep31)
    import math

    rows = [f"{2.95 + 0.4 * math.sin(k * 2.1) - 0.006 * k},{1 / 11 + 0.01 * math.cos(k)},{k // 2},{50 * k + 49}"
            for k in range(28)]
    doc = diagnose(read_log(write(tmp_path, "metrics.csv", "train_loss,train_acc,epoch,step\n" + "\n".join(rows) + "\n")))
    [f] = [f for f in doc.findings if f.code == "loss_plateau"]
    assert f.severity == "warning" and "chance for about 11 classes" in f.summary


def test_a_count_joined_to_its_counter_by_a_hyphen_is_the_epoch(tmp_path: Path) -> None:
    # STgram-MFN's "INFO:utils:Epoch-151\tloss:11.51105" (logsweep32: placed by line order, 0-34)
    lines = [f"INFO:utils:Epoch-{e}\tloss:{11.5 - 0.01 * (e - 151):.5f}" for e in range(151, 172)]
    lines.insert(3, "INFO:utils:saved checkpoint-step-1000.pt")  # a name, not a count
    s = by_name(read_log(write(tmp_path, "train.log", "\n".join(lines) + "\n")))
    np.testing.assert_array_equal(s["loss"].steps, np.arange(151, 172))
