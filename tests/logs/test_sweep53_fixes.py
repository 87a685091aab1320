"""logsweep53: a CSV's train_G / train_D columns are a GAN's losses, and a table stepped by
`episode` is read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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


def _table(tmp_path: Path, header: str, rows: list[tuple[float, ...]]) -> Path:
    path = tmp_path / "metrics.csv"
    path.write_text(header + "\n" + "".join(",".join(f"{x:g}" for x in r) + "\n" for r in rows))
    return path


# a tiny transformer's CSV (logsweep53 12): the validation loss rose at each of the 5 evaluations
# after its best, +7.5 % in all, while the training loss fell 27 %
_TRAIN = [3.7405, 1.7939, 1.4477, 1.3118, 1.2279, 1.1517, 1.0929, 1.0297, 0.9680, 0.9054, 0.8362]
_VAL = [3.7688, 1.9217, 1.6383, 1.5600, 1.5079, 1.4986, 1.5084, 1.5094, 1.5449, 1.5846, 1.6111]


def test_five_rises_in_a_row_from_the_best_to_the_end_are_overfitting(tmp_path: Path) -> None:
    doc = check_logs(_table(tmp_path, "step,train_loss,val_loss",
                            [(500 * i, t, v) for i, (t, v) in enumerate(zip(_TRAIN, _VAL, strict=True))]))
    [f] = [f for f in doc.findings if f.code == "validation_divergence"]
    assert f.severity == "warning" and f.evidence.best_step == 2500
    assert f.evidence.value == pytest.approx((1.6111 - 1.4986) / 1.4986)


def test_four_rises_or_a_broken_run_of_rises_stay_below_the_five_percent_bar(tmp_path: Path) -> None:
    # the same levels with one evaluation falling back between the rises: no trend of rises in a row
    broken = [*_VAL[:8], 1.5050, *_VAL[9:]]
    doc = check_logs(_table(tmp_path, "step,train_loss,val_loss",
                            [(500 * i, t, v) for i, (t, v) in enumerate(zip(_TRAIN, broken, strict=True))]))
    assert not [f for f in doc.findings if f.severity in ("warning", "error")]
    # four rises of 7.5 % in all: under the 10 % that four rises alone needed, but (logsweep65) far
    # out of this smooth series' evaluation noise while the training loss fell 1.15 -> 0.84: a
    # sustained rise, a warning
    doc = check_logs(_table(tmp_path, "step,train_loss,val_loss",
                            [(500 * i, t, v) for i, (t, v) in enumerate(zip(_TRAIN[1:], _VAL[1:], strict=True))
                             if i != 5]))
    [f] = [f for f in doc.findings if f.severity in ("warning", "error")]
    assert f.code == "validation_divergence" and f.evidence.rises_in_a_row == 4
    assert f.evidence.value == pytest.approx((1.6111 - 1.4986) / 1.4986) and f.evidence.noise_margin >= 3


def test_a_task_metric_of_the_same_evaluations_still_improving_excuses_the_rise(tmp_path: Path) -> None:
    # Lightning's self.log("mAP") beside val_loss (logsweep50 01): logged at exactly the
    # evaluations' steps, fewer than the training loss's, so it is that evaluation's metric though
    # it has no val_ prefix
    def table(metric: list[float]) -> Path:
        rows = [f"{s},{np.interp(s, np.arange(11) * 500, _TRAIN):.4f},,\n" for s in range(0, 5000, 100) if s % 500]
        rows += [f"{500 * i},{t},{v},{m}\n" for i, (t, v, m) in enumerate(zip(_TRAIN, _VAL, metric, strict=True))]
        path = tmp_path / "metrics.csv"
        path.write_text("step,train_loss,val_loss,mAP\n" + "".join(sorted(rows, key=lambda r: int(r.split(",")[0]))))
        return path
    rising = [0.60 + 0.02 * i for i in range(11)]
    doc = check_logs(table(rising))
    assert not [f for f in doc.findings if f.severity in ("warning", "error")]
    # the same metric stuck since the loss's best excuses nothing
    doc = check_logs(table([min(m, 0.70) for m in rising]))
    assert [f.severity for f in doc.findings if f.code == "validation_divergence"] == ["warning"]


def test_a_metric_in_every_row_of_a_per_epoch_table_is_no_evaluation_of_its_own(tmp_path: Path) -> None:
    # one row per epoch (YOLOv5's results.csv): every column shares the steps, so a metric is not
    # known to be the validation loss's evaluation, and a rising one excuses nothing
    rows = [(500 * i, t, v, 0.60 + 0.02 * i) for i, (t, v) in enumerate(zip(_TRAIN, _VAL, strict=True))]
    doc = check_logs(_table(tmp_path, "step,train_loss,val_loss,map_score", rows))
    assert [f.severity for f in doc.findings if f.code == "validation_divergence"] == ["warning"]
