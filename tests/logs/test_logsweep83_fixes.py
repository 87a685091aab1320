"""logsweep83: a console of several Keras ``model.fit`` runs with different epoch totals (``Epoch
1/100``, then ``Epoch 1/500`` twice, then ``Epoch 1/100`` again, each after its own ``Model:
"sequential_N"`` summary: keras_lstm_ukraine), and a logging-module console whose YAML config dump is
printed again by every later script appended to it (frcnn_voc)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gradhealth.logs.load import read_log


def _series(path: Path) -> dict:
    return {s.name: s for s in read_log(path).series}


# --- 1. Keras fits of different epoch totals, each after its model summary ---------------------

def _summary(name: str, params: int) -> list[str]:
    return [f'Model: "{name}"', "_" * 65, " Layer (type)                Output Shape              Param #   ",
            "=" * 65, f" dense (Dense)               (None, 44)                {params}      ", "=" * 65,
            f"Total params: {params:,}", f"Trainable params: {params:,}", "Non-trainable params: 0", "_" * 65]


def _fit(epochs: int, start: float, end: float) -> tuple[list[str], np.ndarray]:
    """A ``verbose=2`` fit whose loss falls geometrically from ``start`` to ``end``."""
    loss = np.round(start * (end / start) ** (np.arange(epochs) / (epochs - 1)), 4)
    out = []
    for e, v in enumerate(loss, 1):
        out += [f"Epoch {e}/{epochs}", f"7/7 - 0s - loss: {v:.4f} - accuracy: 0.5000 - 27ms/epoch - 4ms/step"]
    return out, loss


def test_keras_fits_of_different_epoch_totals_are_each_a_run_of_their_own(tmp_path: Path) -> None:
    # five fits: 100, 500, 500, 500 and 100 epochs; the last starts again at a total the first used
    plan = [(100, 3.15, 0.11), (500, 5.11, 0.31), (500, 5.01, 0.04), (500, 5.08, 0.25), (100, 5.89, 2.94)]
    lines, losses = ["character-based neural language model", "Vocabulary Size: 44"], []
    for k, (epochs, start, end) in enumerate(plan):
        fit, loss = _fit(epochs, start, end)
        lines += ["generated text follows", "", *_summary(f"sequential_{k}", 1000 + k), *fit]
        losses.append(loss)
    path = tmp_path / "ReadMe.txt"
    path.write_text("\n".join(lines) + "\n")
    log = read_log(path)
    series = {s.name: s for s in log.series}
    assert log.runs == [f"run{k}" for k in range(1, 6)]
    for k, loss in enumerate(losses, 1):
        s = series[f"run{k}/loss"]
        # every run whole and alone: its own epochs 1..N, its own values (never a later run's)
        assert list(s.steps) == list(range(1, len(loss) + 1))
        assert np.allclose(s.values, loss)
    # the model summary above each fit is its set-up, not a value of the run before it
    assert not [n for n in series if n.endswith("params")]
    assert not [w for w in log.warnings if "replaced" in w.message]


def test_keras_fits_back_at_an_earlier_total_without_summaries_keep_the_last_whole(tmp_path: Path) -> None:
    # 100, 500, then 100 epochs again, no model summary between (a fine-tune's stages): the last fit
    # is read whole, never spliced onto the 500-epoch one's later epochs; and since each fit counted
    # to its own total (logsweep96 #1), none was cut short or superseded: each is judged on its own
    fits = [_fit(100, 3.0, 0.1), _fit(500, 5.0, 0.3), _fit(100, 6.0, 2.9)]
    path = tmp_path / "fit.log"
    path.write_text("\n".join(line for fit, _ in fits for line in fit) + "\n")
    log = read_log(path)
    series = {s.name: s for s in log.series}
    assert log.runs == ["run1", "run2", "run3"]
    for k, (_, values) in enumerate(fits, 1):
        loss = series[f"run{k}/loss"]
        assert list(loss.steps) == list(range(1, len(values) + 1)) and np.allclose(loss.values, values)
    assert not [w for w in log.warnings if w.code in ("skipped_runs", "overwritten_values")]


def test_an_inner_epoch_loop_of_another_total_splits_nothing(tmp_path: Path) -> None:
    # an outer "Epoch e/20" whose every epoch runs an inner "epoch 1/3 .. 3/3" (a meta-learning
    # loop): the inner counter going back to 1 is no run's start, the outer one never does
    lines = []
    for e in range(1, 21):
        lines.append(f"Epoch {e}/20 - loss: {1.0 / e:.4f}")
        lines += [f"inner epoch {i}/3 - support_loss: {0.5 / i:.3f}" for i in range(1, 4)]
    path = tmp_path / "train.log"
    path.write_text("\n".join(lines) + "\n")
    log = read_log(path)
    assert not log.runs
    assert len({s.name: s for s in log.series}["loss"].values) == 20


# --- 2. a config dump printed again by each script appended to the log ---------------------------

_CONFIG = """{stamp} - INFO - {script} - 30 - Train config: DATA:
  classes: ['aeroplane', 'bicycle', 'bird']
  dir: dataset/VOC2007
  height: 416
  num_classes: 20
MODEL:
  ANCHORS_PER_SCLAE: 3
  STRIDES: [8, 16, 32]
RANDOM_SEED: 44
TRAIN:
  batch_size: 8
  device: cuda:0
  epochs: 30
  lr: 0.01
  weight_decay: 0.0001"""


def test_a_config_dump_printed_again_by_later_runs_is_no_series(tmp_path: Path) -> None:
    losses = [round(0.54 * 0.96 ** e, 4) for e in range(10)]
    lines = [_CONFIG.format(stamp="2024-05-26 16:04:40", script="train.py")]
    for e, v in enumerate(losses, 1):
        lines += ["2024-05-26 16:04:46 - INFO - train.py - 65 - ", f"EPOCH {e} of 30",
                  "2024-05-26 16:25:29 - INFO - train.py - 128 - ", f"EPOCH loss: {v}"]
    # the run stops at epoch 11; inference scripts append their own dump of the same config
    lines += ["2024-05-26 19:30:33 - INFO - train.py - 65 - ", "EPOCH 11 of 30"]
    lines += [_CONFIG.format(stamp=f"2024-05-27 0{k}:14:54", script="inference.py") for k in range(5)]
    path = tmp_path / "train.log"
    path.write_text("\n".join(lines) + "\n")
    log = read_log(path)
    series = {s.name: s for s in log.series}
    assert list(series) == ["EPOCH_loss"]
    assert list(series["EPOCH_loss"].steps) == list(range(1, 11))
    assert np.allclose(series["EPOCH_loss"].values, losses)
    assert not log.warnings


def test_values_printed_one_per_line_under_a_heading_are_still_read(tmp_path: Path) -> None:
    # an epoch's metrics one per line below a heading ending in a colon: a loss among them (no config)
    lines = []
    for e in range(1, 7):
        lines += [f"Epoch {e} results:", f"  epoch: {e}", f"  loss: {1.0 / e:.4f}", "  mode: train",
                  f"  acc: {0.1 * e:.2f}"]
    path = tmp_path / "metrics.log"
    path.write_text("\n".join(lines) + "\n")
    series = _series(path)
    assert np.allclose(series["loss"].values, [1.0 / e for e in range(1, 7)], atol=1e-4)
    assert np.allclose(series["acc"].values, [0.1 * e for e in range(1, 7)])


# --- 3. an epoch that goes back once, then many lines at it: one return, the names replaced -------

def test_a_return_to_the_first_epoch_is_counted_once_and_names_what_it_replaces(tmp_path: Path) -> None:
    lines = []
    for e in range(1, 12):
        lines += [f"EPOCH {e} of 30", f"EPOCH loss: {1.0 / e:.4f}"]
    # the epoch goes back to 1 once; five lines follow at it (each used to count as a return)
    lines += ["EPOCH 1 of 30", *[f"EPOCH loss: {0.9 - 0.1 * k:.4f}" for k in range(5)]]
    path = tmp_path / "train.log"
    path.write_text("\n".join(lines) + "\n")
    (over,) = [w for w in read_log(path).warnings if w.code == "overwritten_values"]
    assert "resumed from a checkpoint?" in over.message and "times" not in over.message
    assert "the values of EPOCH_loss logged at epochs 1 to 11" in over.message
