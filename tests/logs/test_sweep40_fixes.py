"""What the fortieth log sweep (real logs from public repositories) found in the log check: runs of
a grid search told apart only by the header line naming each one's settings."""

from __future__ import annotations

from pathlib import Path

from gradhealth.logs.check import run_log_check
from tests.logs.helpers import write


def _trial(header: str, losses: list[float], val: list[float]) -> str:
    # the Keras 1 verbose=2 layout one grid search printed: "103s:loss:2.4089:acc:...:val_loss:..."
    return header + "\n" + "".join(f"103s:loss:{v:.4f}:acc:{0.3 + i / 50:.4f}:val_loss:{w:.4f}:val_acc:0.5\n"
                                   for i, (v, w) in enumerate(zip(losses, val, strict=True)))


_FALLING = [2.4 * 0.88 ** i for i in range(18)]
_VAL_GOOD = [2.1 * 0.9 ** i + 0.3 for i in range(18)]
_VAL_RISING = [1.35 + 0.02 * (i - 6) ** 2 for i in range(18)]  # lowest at epoch 7, then up by +50 %


def test_runs_told_apart_only_by_a_settings_header_are_judged_each(tmp_path: Path) -> None:
    text = (_trial("(cell_type:GRU:Dropout:0.5:Size:256:Recurrent:0.2:optimizer:adadelta)", _FALLING, _VAL_GOOD)
            + _trial("(cell_type:LSTM:Dropout:0.6:Size:512:Recurrent:0.2:optimizer:rmsprop)", _FALLING, _VAL_RISING)
            + _trial("(cell_type:GRU:Dropout:0.1:Size:128:Recurrent:0.0:optimizer:rmsprop)", _FALLING, _VAL_GOOD))
    doc = run_log_check(write(tmp_path, "grid.txt", text))
    [w] = [w for w in doc.log.warnings if "runs appended" in w]
    assert "3 runs" in w and "header line" in w and "run2 (line 20)" in w
    # one curve would read each trial's fresh start (0.3 -> 2.4) as the loss going up
    assert not [f for f in doc.findings if f.code == "loss_divergence"]
    [f] = [f for f in doc.findings if f.code == "validation_divergence"]
    assert f.evidence.metric == "run2/val_loss"


def test_a_line_printed_every_epoch_does_not_split_the_run(tmp_path: Path) -> None:
    # "lr: ..." before each epoch's loss lines: the loss goes on from where it was, one run
    lines = []
    for epoch in range(8):
        lines.append(f"lr: {0.1 * 0.9 ** epoch:.5f}\n")
        lines += [f"loss: {2.3 * 0.97 ** (epoch * 10 + i) + (0.05 if i == 0 else 0):.4f}\n" for i in range(10)]
    doc = run_log_check(write(tmp_path, "epochs.log", "".join(lines)))
    assert not [w for w in doc.log.warnings if "runs appended" in w]
    assert next(s for s in doc.series if s.name == "loss").points == 80


def test_one_loss_jump_after_a_recurring_line_is_not_a_new_run(tmp_path: Path) -> None:
    # a checkpoint line every 20 steps; once, the loss is thrown back to where it began (a blow-up,
    # not a fresh model): most of that line's places go on where the loss was, so one run
    lines, v = [], 2.3
    for k in range(6):
        lines.append(f"saved checkpoint: step={k * 20}\n")
        for i in range(20):
            v = 2.2 if (k == 3 and i == 0) else v * 0.97
            lines.append(f"step {k * 20 + i} loss: {v:.4f}\n")
    doc = run_log_check(write(tmp_path, "ckpt.log", "".join(lines)))
    assert not [w for w in doc.log.warnings if "runs appended" in w]
