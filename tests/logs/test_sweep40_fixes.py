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


def _gpt_run(start: int, n: int, scale: float, *, blow_up: bool = False) -> list[str]:
    # build-nanogpt's console: "step 0049, loss: 5.888381, norm: 0.6488, lr: ..."
    lines = []
    for i in range(n):
        loss = 10.9 * (0.97 ** i) if not (blow_up and i > n // 2) else 10.9 * 0.97 ** (n // 2) * 1.3 ** (i - n // 2)
        lines.append(f"step {start + i:04d}, loss: {loss:.6f}, norm: {scale * (0.9 + 0.2 * (i % 3)):.4f}, "
                     f"lr: 6.0000e-04, time: 489.4ms\n")
    return lines


def test_runs_whose_bare_step_counter_starts_again_are_judged_each(tmp_path: Path) -> None:
    # three attempts pasted into one notes file, each from step 0 (the last logged from step 1);
    # only the second blows up. Read as one curve, each fresh start would sit beside the others'
    # late steps at the same step numbers
    text = "".join(_gpt_run(0, 50, 1.0) + ["```\n", "\n", "Second try\n", "```\n"]
                   + _gpt_run(0, 50, 1.0, blow_up=True) + ["```\n", "Final\n"] + _gpt_run(1, 60, 1.0))
    doc = run_log_check(write(tmp_path, "log.md", text))
    [w] = [w for w in doc.log.warnings if "runs appended" in w]
    assert "3 runs" in w and "step counter starting again" in w
    diverged = [f for f in doc.findings if f.code == "loss_divergence"]
    assert diverged and {f.evidence.metric for f in diverged} == {"run2/loss"}


def test_a_resumed_run_and_an_evaluation_counter_do_not_split_a_run(tmp_path: Path) -> None:
    lines = _gpt_run(0, 60, 1.0)
    # resumed from the checkpoint at step 40: the counter goes back, not to where the run began
    lines += [ln.replace("step 00", "step 00") for ln in _gpt_run(40, 40, 1.0)]
    doc = run_log_check(write(tmp_path, "resumed.log", "".join(lines)))
    assert not [w for w in doc.log.warnings if "runs appended" in w]
    # an evaluation that counts its own batches from 0 after every 20 training steps
    lines = []
    for k in range(5):
        lines += _gpt_run(20 * k, 20, 1.0)
        lines += [f"eval step {j}, loss: {3.0 - 0.1 * k + 0.01 * j:.4f}\n" for j in range(5)]
    doc = run_log_check(write(tmp_path, "eval.log", "".join(lines)))
    assert not [w for w in doc.log.warnings if "runs appended" in w]


def test_trials_of_other_settings_may_start_above_the_first(tmp_path: Path) -> None:
    # a grid's trials each start where their settings put them (1.18, then 1.43, 1.39): a fresh
    # start above the first trial's is a fresh start all the same
    text = "".join(
        _trial(f"('Dropout: 0.5', 'Size: {size}', 'Embed: 300')", [start * 0.9 ** i for i in range(8)],
               [1.7 - 0.01 * i for i in range(8)])
        for size, start in ((256, 1.18), (128, 1.43), (64, 1.39), (32, 1.45)))
    doc = run_log_check(write(tmp_path, "grid2.txt", text))
    [w] = [w for w in doc.log.warnings if "runs appended" in w]
    assert "4 runs" in w
