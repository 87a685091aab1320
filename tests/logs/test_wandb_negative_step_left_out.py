"""errsweep9 #3: a W&B history record whose HistoryStep.num is 2^64 - 1 (read as the int64 -1) among
steps 0..29 was kept at step -1: it sorted first and made step 0 look like a loss spike. It is left out,
with the step_order note naming its byte and unsigned value."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gradhealth.logs import load
from tests.logs.test_errsweep9_fixes import _WANDB_HEADER, _wandb_history, _wandb_record


def test_a_negative_wandb_step_among_steps_from_0_is_left_out_with_a_note(tmp_path: Path) -> None:
    out = bytearray(_WANDB_HEADER)
    for i in range(30):
        out += _wandb_record(1, _wandb_history(i, "loss", repr(1.0 / (i + 1))))
    bad_at = len(out)
    out += _wandb_record(1, _wandb_history(2**64 - 1, "loss", "0.5"))
    path = tmp_path / "run-abc.wandb"
    path.write_bytes(bytes(out))
    log = load.read_log(path)
    [loss] = [s for s in log.series if s.name == "loss"]
    assert loss.steps.tolist() == list(range(30))
    assert np.allclose(loss.values, [1.0 / (i + 1) for i in range(30)])
    [note] = [w for w in log.warnings if w.code == "step_order"]
    assert f"byte {bad_at}" in note.message and "left out" in note.message
