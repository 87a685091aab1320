"""logsweep53: a CSV's train_G / train_D columns are a GAN's losses, and a table stepped by
`episode` is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradhealth.library import check_logs
from gradhealth.logs.series import gan_part


@pytest.mark.parametrize("name,part", [("train_G", "G"), ("train_D", "D"), ("run2/train_G", "G"),
                                       ("training_D", "D"), ("run1/loss_D", "D")])
def test_the_split_and_the_run_are_not_part_of_a_gan_loss_name(name: str, part: str) -> None:
    assert gan_part(name) == part


@pytest.mark.parametrize("name", ["train_L1", "train_loss", "run1", "val_G_x", "train_d_model"])
def test_other_names_stay_no_gan_part(name: str) -> None:
    assert gan_part(name) is None


def test_a_gan_table_of_train_g_and_train_d_is_judged_as_a_gan(tmp_path: Path) -> None:
    path = tmp_path / "training_log.csv"
    rows = "".join(f"{e},{4.9 - 0.03 * e:.3f},{0.2 + 0.002 * e:.3f},{18.6 + 0.08 * e:.2f}\n" for e in range(1, 101))
    path.write_text("epoch,train_G,train_D,val_PSNR\n" + rows)
    doc = check_logs(path)
    assert doc.status == "healthy"
    [f] = [f for f in doc.findings if f.code == "insufficient_data"]
    assert f.severity == "info" and "GAN" in f.summary


def test_a_table_stepped_by_episode_is_read(tmp_path: Path) -> None:
    path = tmp_path / "a2c_log.csv"
    rows = "".join(f"{i},{-800 + 3 * i},{0.01 * (i % 7)},{6000 / (1 + i)}\n" for i in range(200))
    path.write_text("episode,total_reward,actor_loss,critic_loss\n" + rows)
    doc = check_logs(path)
    assert doc.status == "healthy" and doc.log.format == "native"
    assert doc.log.points == 600  # 3 series of 200 episodes


def test_a_mean_reward_printed_in_two_words_is_the_return_the_rl_check_judges(tmp_path: Path) -> None:
    # ML-Agents' console ("Mean Reward: 2.3. Std of Reward: 1.1."): the key was read as "Reward", a
    # metric no RL rule knows, so a return that climbed to 70 and fell to 0.2 was healthy
    rewards = [2.3, 4.1, 5.4, 6.5, 8.0, 12, 25, 70, 68, 66, 60, 52, 40, 31, 22, 15, 9, 5, 2, 0.9, 0.4, 0.3, 0.2, 0.2]
    path = tmp_path / "mlagents.txt"
    path.write_text("".join(f"Step: {1000 * (i + 1)}. Time Elapsed: {10 * i} s Mean Reward: {r}. Std of Reward: 1.1.\n"
                            for i, r in enumerate(rewards)))
    doc = check_logs(path)
    [f] = [f for f in doc.findings if f.code == "reward_collapse"]
    assert f.severity == "warning" and f.evidence.metric == "Mean_Reward"
