"""logsweep83 leftovers (frcnn_voc, keras_lstm_ukraine): one-off size prints read as series.

- frcnn_voc: "Number of training samples: 5011" / "Number of validation samples: 4952", printed again
  by a later script appended to the log after training began, became the series ``samples`` and
  ``eval_samples`` (one point each).
- keras_lstm_ukraine: "Max Sequence Length: 3" after a model's generated text became ``eval_Length``; a
  line of that text starting with "test" had switched the reader into an evaluation's block.

Every log here is synthetic, written in the tools' own formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gradhealth.logs.load import read_log

from .helpers import by_name, write

_HEAD = "2024-05-27 08:46:53 - INFO - train.py - 43 - "


def _epochs_console(losses: list[float], after: list[str]) -> str:
    """A logging-module console counting its epochs ("EPOCH 3 of 30" then "EPOCH loss: x"), its
    start-up prints of the data's size before the first epoch, and ``after`` its last epoch (a later
    script appended to the same log)."""
    lines = [f"{_HEAD}Number of training samples: 5011", f"{_HEAD}Number of validation samples: 4952"]
    for e, v in enumerate(losses, 1):
        lines += [f"{_HEAD}", f"EPOCH {e} of 30", f"{_HEAD}", f"EPOCH loss: {v}"]
    return "\n".join([*lines, *after]) + "\n"


_SIZES = [f"{_HEAD}Number of training samples: 5011", f"{_HEAD}Number of validation samples: 4952",
          "Max Sequence Length: 3", "Vocabulary size: 3000", "num_train_samples = 5011", "Total params: 1,234"]


def test_size_prints_after_training_began_are_no_series(tmp_path: Path) -> None:
    losses = [round(0.54 * 0.96 ** e, 4) for e in range(10)]
    s = by_name(read_log(write(tmp_path, "train.log", _epochs_console(losses, _SIZES))))
    assert list(s) == ["EPOCH_loss"]
    assert list(s["EPOCH_loss"].steps) == list(range(1, 11))
    assert np.allclose(s["EPOCH_loss"].values, losses)


def test_a_one_line_measurement_after_training_is_still_read(tmp_path: Path) -> None:
    # a final evaluation's one line, and counts that measure (not "how many" of the data): kept
    losses = [round(0.54 * 0.96 ** e, 4) for e in range(10)]
    after = ["Test accuracy: 0.9125", "Correct samples: 950", "Episode length: 200"]
    s = by_name(read_log(write(tmp_path, "train.log", _epochs_console(losses, after))))
    assert s["eval_Test_accuracy"].values[-1] == 0.9125
    assert s["samples"].values[-1] == 950.0 and s["length"].values[-1] == 200.0


_PROSE = ("test launch unarmed ballistic missile demonstrate readiness nuclear provide relief indefinitely "
          "wherever necessary people much nice best")


def test_generated_prose_starting_with_an_evaluation_word_opens_no_evaluation(tmp_path: Path) -> None:
    lines: list[str] = []
    for e in range(1, 6):
        lines += [f"Epoch {e}/5", f"7/7 - 0s - loss: {1.0 / e:.4f} - accuracy: 0.5000 - 27ms/epoch - 4ms/step"]
    # the model's generated text, then a line of the script's own: a value, no evaluation's
    lines += ["win end soon talk used military", _PROSE, "perplexity: 12.5"]
    s = by_name(read_log(write(tmp_path, "ReadMe.txt", "\n".join(lines) + "\n")))
    assert "eval_perplexity" not in s
    assert s["perplexity"].values[-1] == 12.5
    assert np.allclose(s["loss"].values, [1.0 / e for e in range(1, 6)], atol=1e-4)


def test_a_short_evaluation_heading_still_opens_one(tmp_path: Path) -> None:
    lines: list[str] = []
    for e in range(1, 6):
        lines += [f"Epoch {e}/5", f"7/7 - 0s - loss: {1.0 / e:.4f} - accuracy: 0.5000 - 27ms/epoch - 4ms/step",
                  "Evaluating on the held-out validation set of the corpus...", f"loss: {2.0 / e:.4f}"]
    s = by_name(read_log(write(tmp_path, "train.log", "\n".join(lines) + "\n")))
    assert s["eval_loss"].role == "val_loss"
    assert np.allclose(s["eval_loss"].values, [2.0 / e for e in range(1, 6)], atol=1e-4)
