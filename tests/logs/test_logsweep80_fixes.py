"""logsweep80: console logs of an RL agent in the DQN/Udacity style (``Episode N  Frame F  Average100
Score: x``, u03), an ImageNet-style evaluation printed every 10 batches (``Test: [240/242] ... Loss
3.1 (3.4)``, h02), batch losses printed with no batch index (``Epoch 1 - Batch loss: 12.13``, h01) and
a labelled list of metrics (``Validation BLEU: BLEU-1 71.65, BLEU-2 65.76, ...``)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gradhealth.library import check_logs
from gradhealth.logs.load import read_log


def _series(path: Path) -> dict:
    return {s.name: s for s in read_log(path).series}


# --- 1. an RL console: Episode / Frame counters and a score that is the episode return ----------

def _dqn_console(tmp_path: Path, early: float, late: float, episodes: int = 600) -> tuple[Path, np.ndarray]:
    """CartPole under a DQN that never learns: each episode's score drawn around ``early`` for the
    first 50 episodes and ``late`` after; printed as the mean of the last 100 (``Average100``),
    carriage returns between the episodes and a newline every 100th, as the script prints them."""
    rng = np.random.default_rng(3)
    scores = np.concatenate([rng.normal(early, 3.0, 50), rng.normal(late, 3.0, episodes - 50)])
    frame = 0
    out = []
    means = []
    for e in range(1, episodes + 1):
        frame += max(8, int(scores[e - 1]))
        mean = float(np.mean(scores[max(0, e - 100):e]))
        means.append(mean)
        out.append(f"Episode {e}\tFrame {frame} \tAverage100 Score: {mean:.2f}")
        out.append("\n" if e % 100 == 0 else "\r")
    path = tmp_path / "training.log"
    path.write_text("Using  cpu\nIQN(\n  (head): Linear(in_features=4, out_features=512, bias=True)\n)\n" + "".join(out))
    return path, np.round(np.array(means), 2)


def test_an_episode_and_frame_console_is_read_as_an_rl_run(tmp_path: Path) -> None:
    path, means = _dqn_console(tmp_path, 22.0, 22.0)
    series = _series(path)
    score = series["Average100_Score"]
    # the frames are the x axis, the episodes a series of their own, the score every episode's mean
    assert len(score.steps) == 600
    assert score.steps[0] > 0 and np.all(np.diff(score.steps) > 0)
    assert np.allclose(score.values, means)
    assert list(series["Episode"].values[:3]) == [1.0, 2.0, 3.0]
    found = {f.code: f for f in check_logs(path).findings}
    assert "reward_plateau" in found
    assert found["reward_plateau"].evidence.metric == "Average100_Score"
    assert found["insufficient_data"].severity == "info"  # a run of rewards, not "nothing to judge"


def test_a_return_that_never_rose_and_ends_below_its_start_is_a_plateau(tmp_path: Path) -> None:
    # the first 50 episodes' mean 25, then the random policy's 21.5: the last fifth 11% below the start
    # (more than the band of 10% of it), less than reward_collapse's 25%: still "never rose"
    path, means = _dqn_console(tmp_path, 25.0, 21.5)
    found = {f.code: f for f in check_logs(path).findings}
    plateau = found["reward_plateau"]
    head = means[:60]  # the first tenth of 600 points
    assert math.isclose(plateau.evidence.start, min(float(np.median(head)), float(np.median(means[:20]))),
                        rel_tol=1e-9)
    assert plateau.evidence.last < plateau.evidence.start - plateau.evidence.threshold
    assert "reward_collapse" not in found


def test_a_supervised_score_is_no_return(tmp_path: Path) -> None:
    # no episode counter: an F1 score stuck over 300 epochs is a metric, never the agent's return
    lines = [f"epoch {e} loss {1.0 / (e + 1):.4f} F1 score: {0.5 + 0.001 * (e % 3):.4f}\n" for e in range(300)]
    path = tmp_path / "train.log"
    path.write_text("".join(lines))
    codes = {f.code for f in check_logs(path).findings}
    assert "reward_plateau" not in codes


# --- 2. an evaluation pass printed every 10 batches: its last report is the pass's --------------

def _wsdan_log(tmp_path: Path, epochs: int = 12) -> tuple[Path, list[float]]:
    """The WS-DAN script's console: ``Epoch: [e][i/250]`` every 10 batches, a ``cos_sim_loss`` term
    in both loops, and a ``Test: [i/242]`` pass printed every 10 batches (its last at 240/242)."""
    lines = []
    last_avgs = []
    for e in range(epochs):
        for i in range(0, 250, 10):
            loss = 9.0 * math.exp(-(e * 25 + i / 10) / 60) + 0.4
            lines.append(f"Epoch: [{e}][{i}/250]\tTime 1.158 (1.175)\tData 0.364 (0.370)\tLoss {loss:.4f} ({loss:.4f})\n")
            lines.append(f"cos_sim_loss  {0.28:.3f} ({0.281:.3f})\n")
        for i in range(0, 242, 10):
            avg = 3.0 + 0.1 * e + i / 2420   # the running average over the pass so far
            lines.append(f"Test: [{i}/242]\tTime 0.604 (0.604)\tLoss {avg + 1:.4f} ({avg:.4f})\n")
            lines.append("Prec@1     37.500 (19.208)\tPrec@5     66.667 (37.569)\n")
            lines.append(f"cos_sim_loss  {0.1 + 0.03 * e:.3f} ({0.1 + 0.03 * e:.3f})\n")
        last_avgs.append(round(3.0 + 0.1 * e + 240 / 2420, 4))
    path = tmp_path / "train.log"
    path.write_text("Dataset Name:bird, Train:[5994], Val:[5794]\n" + "".join(lines))
    return path, last_avgs


def test_an_evaluation_printed_every_ten_batches_is_the_validation_loss(tmp_path: Path) -> None:
    path, last_avgs = _wsdan_log(tmp_path)
    series = _series(path)
    val = series["eval_Loss"]
    assert val.role == "val_loss"
    assert np.allclose(val.values, last_avgs)  # each pass's last running average (240/242)
    assert len(series["Loss"].values) == 12 * 25  # the training prints alone
    # the regulariser printed in both loops is a metric on both sides, not a validation loss
    assert series["cos_sim_loss"].role == "metric"
    assert series["eval_cos_sim_loss"].role == "metric"
    for f in check_logs(path).findings:
        if f.code == "validation_divergence":
            assert f.evidence.metric == "eval_Loss"


# --- 3. batch losses with no batch index, a labelled list of BLEU scores -------------------------

def _t5_log(tmp_path: Path, batch: dict[tuple[int, int], float]) -> Path:
    """The T5 script's logging: ``Epoch k - Batch loss: x`` for each of 40 batches, the epoch's
    average, and every other epoch its validation and dev BLEU and a best-model line."""
    lines = []
    for e in range(1, 7):
        losses = []
        for b in range(40):
            loss = batch.get((e, b), 2.0 * math.exp(-((e - 1) * 40 + b) / 60) + 0.05)
            losses.append(loss)
            lines.append(f"2025-03-02 05:16:20,962 - INFO - Epoch {e} - Batch loss: {loss:.4f}\n")
        lines.append(f"2025-03-02 05:24:38,655 - INFO - Epoch {e} - Average Train Loss: {np.nanmean(losses):.4f}\n")
        if e % 2 == 0:
            lines.append(f"2025-03-02 05:34:00,482 - INFO - Epoch {e} - Validation BLEU: BLEU-1 {70 + e:.2f}, "
                         f"BLEU-2 {65 + e:.2f}, BLEU-3 46.57, BLEU-4 31.75\n")
            lines.append(f"2025-03-02 05:34:01,370 - INFO - Epoch {e} - New best model saved with BLEU-2: {65 + e:.2f}\n")
            lines.append(f"2025-03-02 05:34:22,147 - INFO - Epoch {e} - Dev BLEU: BLEU-1 {60 + e:.2f}, "
                         "BLEU-2 59.46, BLEU-3 43.86, BLEU-4 32.20\n")
    path = tmp_path / "train.log"
    path.write_text("".join(lines))
    return path


def test_each_batch_loss_is_a_point_within_its_epoch(tmp_path: Path) -> None:
    path = _t5_log(tmp_path, {(3, 17): 40.0})
    series = _series(path)
    batch = series["Batch_loss"]
    assert len(batch.values) == 6 * 40
    assert float(np.max(batch.values)) == 40.0   # the spike inside epoch 3 is a point of its own
    assert batch.steps[0] == 1.0 and math.isclose(float(batch.steps[1]), 1 + 1 / 41)  # 40 batches + the average
    assert len(series["Train_Loss"].values) == 6


def test_a_nan_inside_an_epoch_is_seen(tmp_path: Path) -> None:
    path = _t5_log(tmp_path, {(4, 5): math.nan, (4, 6): math.nan})
    found = {f.code: f for f in check_logs(path).findings}
    assert found["nonfinite"].severity == "error"
    # named where it is within epoch 4 (the 6th of its 44 lines: 4 + 5/44), not at "epoch 4"
    assert "Batch_loss at epoch 4.114" in found["nonfinite"].summary


def test_labelled_bleu_lists_are_evaluation_metrics_and_a_best_epoch_is_no_series(tmp_path: Path) -> None:
    series = _series(_t5_log(tmp_path, {}))
    assert list(series["val_BLEU-2"].values) == [67.0, 69.0, 71.0]
    assert list(series["dev_BLEU-1"].values) == [62.0, 64.0, 66.0]
    assert list(series["best_BLEU-2"].values) == [67.0, 69.0, 71.0]
    assert not any("epoch" in name.lower() for name in series)
