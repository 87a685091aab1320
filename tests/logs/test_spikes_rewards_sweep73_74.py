"""logsweep73/74 log diagnoses:
1. (73 u02) a Keras LSTM whose loss fell from 1.09 to ~0.1 and rose again after spikes read "the
   run never learnt", its first and last tenths' medians called where the loss began and ended;
2. (74 u08) four recovered loss spikes, "the largest" named by raw value (2.4x) not by ratio (23x);
3. (74 u01, u10) SB3 PPO tails at 20M steps, ep_rew_mean frozen at 0, eval 0: healthy, no note;
4. (74 u01, u07) the table a console tail begins inside made bare ``loss``, ``ep_rew_mean`` series;
5. (74 u07) ep_rew_mean 0.975 -> 0 over 14 updates: no reward_collapse (20 points asked).
Each log is written here in the form the tool reads (Keras' CSVLogger, a step/loss TSV, SB3's
console tables)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gradhealth.library import check_logs
from gradhealth.logs.detectors.explosion import no_progress
from gradhealth.logs.load import read_log
from gradhealth.logs.thresholds import LogThresholds


def _of(doc, code: str) -> list:  # noqa: ANN001
    return [f for f in doc.findings if f.code == code]


def _keras_csv(path: Path, loss: np.ndarray, accuracy: np.ndarray | None = None) -> Path:
    """What tf.keras.callbacks.CSVLogger writes: a header, then one row per epoch."""
    head = "epoch,accuracy,loss" if accuracy is not None else "epoch,loss"
    rows = [f"{i},{accuracy[i]:.6f},{x:.6f}" if accuracy is not None else f"{i},{x:.6f}" for i, x in enumerate(loss)]
    path.write_text("\n".join([head, *rows]) + "\n")
    return path


# --- 1: a loss that learnt and rose again is not "never learnt" ---------------------------------

def _learnt_then_rose(rng: np.random.Generator) -> np.ndarray:
    """200 epochs: 1.09 falling to ~0.1 within the first tenth (its median ~0.33), then ~0.12 over
    epochs 40-140, rising to 0.5 at the end; recovered spikes at epochs 60, 100 and 170."""
    n = 200
    loss = np.empty(n)
    loss[:20] = 1.09 * np.exp(-np.arange(20) / 8.0)
    loss[20:140] = 0.12
    loss[140:] = np.linspace(0.12, 0.5, 60)
    loss = loss * np.exp(0.03 * rng.standard_normal(n))
    loss[[60, 100, 170]] = [5.0, 8.0, 9.0]
    return loss


def test_a_loss_that_fell_well_below_its_start_and_rose_again_learnt(tmp_path: Path) -> None:
    loss = _learnt_then_rose(np.random.default_rng(3))
    # independently: the first tenth's median is above 0.15, the last tenth's median above it
    assert np.median(loss[-20:]) > np.median(loss[:20]) > 0.15
    path = _keras_csv(tmp_path / "training.log", loss)
    assert no_progress(read_log(path), LogThresholds()) is None
    [spike] = _of(check_logs(path), "loss_spike")
    assert "never learnt" not in spike.summary and "no_progress" not in (spike.evidence.model_extra or {})


def test_an_accuracy_that_rose_clearly_is_learning_whatever_the_loss(tmp_path: Path) -> None:
    # a loss whose running level never gets 10 % under its first tenth's (~0.5), ending at 0.55 with
    # recovered spikes, while the accuracy climbs 0.50 -> 0.80: the error 0.5 -> 0.2, learnt
    rng = np.random.default_rng(5)
    n = 200
    loss = np.full(n, 0.5)
    loss[150:] = 0.55
    loss = loss * np.exp(0.02 * rng.standard_normal(n))
    loss[[60, 120]] = [4.0, 5.0]
    accuracy = np.clip(np.linspace(0.5, 0.8, n) + 0.005 * rng.standard_normal(n), 0, 1)
    stuck = no_progress(read_log(_keras_csv(tmp_path / "no_acc.log", loss)), LogThresholds())
    assert stuck is not None  # the loss alone: no lower than its start
    path = _keras_csv(tmp_path / "training.log", loss, accuracy)
    assert no_progress(read_log(path), LogThresholds()) is None


def test_the_words_say_which_medians_the_figures_are(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    n = 200
    loss = 1.0 * np.exp(0.03 * rng.standard_normal(n))
    loss[[50, 90, 130]] = [6.0, 7.0, 8.0]
    path = _keras_csv(tmp_path / "training.log", loss)
    [spike] = _of(check_logs(path), "loss_spike")
    stuck = spike.evidence.no_progress
    assert f"last tenth's median {stuck['level']:.4g} is no lower than its first tenth's median {stuck['start']:.4g}" \
        in spike.summary
    assert abs(stuck["level"] - float(np.median(loss[-20:]))) < 1e-5
    assert abs(stuck["start"] - float(np.median(loss[:20]))) < 1e-5


# --- 2: the largest spike is the one that stands out most ---------------------------------------

def test_the_largest_spike_is_named_by_its_ratio_to_the_rolling_median(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    steps = np.arange(0, 4570, 10)
    loss = (4.2 * np.exp(-steps / 900) + 0.02) * np.exp(0.01 * rng.standard_normal(len(steps)))
    at = {1500: 2.4, 2600: 3.5, 3800: 9.5, 4200: 23.0}  # multiples of the curve there
    i = {s: int(np.searchsorted(steps, s)) for s in at}
    for s, k in at.items():
        loss[i[s]] *= k
    path = tmp_path / "loss.tsv"
    path.write_text("step\tloss\n" + "".join(f"{s}\t{x:.4f}\n" for s, x in zip(steps, loss, strict=True)))
    [spike] = _of(check_logs(path), "loss_spike")
    assert max(at, key=lambda s: loss[i[s]]) == 1500  # the highest spike is the 2.4x one
    assert f"the largest {loss[i[4200]]:.3g} at step 4200" in spike.summary
    assert abs(spike.evidence.value - loss[i[4200]]) < 1e-3
    assert 18 < spike.evidence.max_ratio < 28 and f"({spike.evidence.max_ratio:.3g}x its rolling median)" in spike.summary


# --- 3-5: SB3 console tails -----------------------------------------------------------------------

def _table(rows: list[tuple[str, str]]) -> list[str]:
    width = max(len(k) for k, _ in rows) + 4
    rule = "-" * (width + 17)
    return [rule, *(f"| {k:<{width}} | {v:<12} |" for k, v in rows), rule]


def _train(i: int) -> list[tuple[str, str]]:
    return [("train/", ""), ("   approx_kl", f"{0.0015 + 1e-5 * i:.6g}"), ("   learning_rate", "0.00025"),
            ("   loss", f"{-0.02 - 1e-4 * i:.4g}"), ("   n_updates", str(78000 + 4 * i)),
            ("   value_loss", f"{2e-9 * (1 + i % 3):.3g}")]


def _sb3_tail(path: Path, rewards: list[float], *, fragment_step: bool = True, eval_reward: str = "0") -> Path:
    """The last tables of an SB3 PPO verbose=1 log: the file begins inside a table (its top rule and
    ``rollout/`` header cut off), then one table per update, an eval table and the last rollout."""
    start = 19_987_456
    lines = []
    if fragment_step:
        lines += [f"|    ep_rew_mean          | {rewards[0]:<12g} |", "| time/                   |              |",
                  f"|    total_timesteps      | {start:<12} |"]
        lines += [f"| {k:<23} | {v:<12} |" for k, v in _train(0)]
    else:
        lines += [f"| {k:<23} | {v:<12} |" for k, v in _train(0)[2:]]
    first = 1 if fragment_step else 0
    for i, r in enumerate(rewards[first:], start=first):
        lines += _table([("rollout/", ""), ("   ep_len_mean", "120"), ("   ep_rew_mean", f"{r:g}"), ("time/", ""),
                         ("   iterations", str(19519 + i)), ("   total_timesteps", str(start + 1024 * i)), *_train(i)])
    end = start + 1024 * len(rewards)
    lines += [f"Eval num_timesteps={end}, episode_reward={eval_reward} +/- 0.00", "Episode length: 120.00 +/- 0.00"]
    lines += _table([("eval/", ""), ("   mean_ep_length", "120"), ("   mean_reward", eval_reward), ("time/", ""),
                     ("   total_timesteps", str(end)), *_train(len(rewards))])
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_table_a_tail_begins_inside_gets_its_sections_from_the_whole_tables(tmp_path: Path) -> None:
    run = read_log(_sb3_tail(tmp_path / "train.log", [0.0] * 14))
    names = {s.name for s in run.series}
    assert not names & {"ep_rew_mean", "loss", "learning_rate", "value_loss"}
    rew = next(s for s in run.series if s.name == "rollout/ep_rew_mean")
    assert len(rew) == 14 and float(rew.steps[0]) == 19_987_456
    # a fragment with no step is not placed at step 0
    run = read_log(_sb3_tail(tmp_path / "cut.log", [0.0] * 14, fragment_step=False))
    loss = next(s for s in run.series if s.name == "train/loss")
    assert float(loss.steps[0]) >= 19_987_456 and "loss" not in {s.name for s in run.series}
    assert any(w.code == "skipped_values" for w in run.warnings)


def test_a_return_frozen_at_one_value_with_the_evaluation_as_flat_never_rose(tmp_path: Path) -> None:
    doc = check_logs(_sb3_tail(tmp_path / "train.log", [0.0] * 14))
    [plateau] = _of(doc, "reward_plateau")
    assert plateau.severity == "warning" and "exactly 0 at every one of its 14 logged points" in plateau.summary
    # above 0 with the evaluation at 0 (u10): no cap held
    doc = check_logs(_sb3_tail(tmp_path / "u10.log", [0.016] * 14))
    assert [f.severity for f in _of(doc, "reward_plateau")] == ["warning"]
    # a cap the evaluation reaches too (CartPole's 500) is solved, not frozen
    doc = check_logs(_sb3_tail(tmp_path / "solved.log", [500.0] * 14, eval_reward="500"))
    assert not _of(doc, "reward_plateau")


def test_a_reward_that_varies_on_a_tail_is_not_judged_and_a_note_says_so(tmp_path: Path) -> None:
    rewards = [0.0, 0.01, 0.0, 0.02, 0.0, 0.0, 0.01, 0.0, 0.0, 0.01, 0.0, 0.02, 0.0, 0.01]
    doc = check_logs(_sb3_tail(tmp_path / "train.log", rewards))
    assert not _of(doc, "reward_plateau") and not _of(doc, "reward_collapse")
    [note] = _of(doc, "insufficient_data")
    assert note.severity == "info" and "rollout/ep_rew_mean (the log opens at step 19987456" in note.summary
    assert doc.status == "healthy"


def test_a_short_return_that_collapses_is_a_collapse(tmp_path: Path) -> None:
    rewards = [0.976, 0.976, 0.975, 0.974, 0.975, 0.974, 0.9, 0.72, 0.48, 0.25, 0.08, 0.0, 0.0, 0.0]
    doc = check_logs(_sb3_tail(tmp_path / "train.log", rewards, eval_reward="0"))
    [collapse] = _of(doc, "reward_collapse")
    assert collapse.severity == "warning" and "to 0 over the last 3 of 14 points" in collapse.summary
    assert "where the log begins" in collapse.summary
