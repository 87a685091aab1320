"""logsweep85: plain-text consoles whose values were dropped or misplaced. Sentence-style values
(PaddlePaddle's ``avg loss so far is X``, ``val mse is X``, ``Val acc is 99.17%``: prednet_paddle,
mbv2_liveness), ..."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gradhealth.logs.load import read_log


def _series(path: Path) -> dict:
    return {s.name: s for s in read_log(path).series}


# --- 1. <name> is <number> ----------------------------------------------------------------------

def test_sentence_values_of_known_metrics_are_read(tmp_path: Path) -> None:
    losses = 0.12 * 0.9 ** np.arange(8)
    lines = ["total sample is 93858, postive sample is 39370", "Starting epoch 0 current lr is 0.001"]
    for e, v in enumerate(losses):
        lines += [f"Epoch {e}, Step {s}, total used time {s * 0.27:.3f} (s), avg loss so far is {v:.6f}"
                  for s in (25, 50)]
        lines += [f"Epoch {e}, val loss is {v * 0.7:.6f}, val mse is {v * 0.3:.6f}.",
                  f"Epoch {e}: Val acc is {90 + e:.4f}%"]
    path = tmp_path / "train.log"
    path.write_text("\n".join(lines) + "\n")
    series = _series(path)
    # the training loss, a running average: 2 points an epoch, each epoch's value
    assert series["avg_loss"].role == "loss"
    assert np.allclose(series["avg_loss"].values, np.repeat(np.round(losses, 6), 2))
    assert np.allclose(series["val_loss"].values, np.round(losses * 0.7, 6))
    assert np.allclose(series["val_mse"].values, np.round(losses * 0.3, 6))
    assert np.allclose(series["val_acc"].values, 90 + np.arange(8))
    # prose with "is" and a number is no series ("total sample is 93858")
    assert not [n for n in series if "sample" in n]
