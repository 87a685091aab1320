"""logsweep98: a plateau note over the first part of a longer planned run says "flat so far"
(mlx557_mixtral_ok: 110 of 3000 iterations); HF Trainer console dicts with no step name their
epoch, not "step 0" (modernbert_hf_console_nan: every record says epoch 0.53)."""

from __future__ import annotations

import json
from pathlib import Path

from gradhealth.library import check_logs

#: the mlx557 excerpt's train losses, iterations 10-110: a fall, then ~1.0-1.2
_LOSSES = [2.363, 1.508, 1.252, 1.372, 1.100, 1.113, 1.214, 0.996, 1.062, 1.111, 1.188]


def _trainer_state(tmp_path: Path, max_steps: int | None) -> Path:
    state: dict[str, object] = {"log_history": [{"step": 10 * (i + 1), "loss": v, "epoch": 0.01 * (i + 1)}
                                                for i, v in enumerate(_LOSSES)]}
    if max_steps is not None:
        state["max_steps"] = max_steps
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps(state))
    return path


def test_a_plateau_early_in_a_planned_run_is_flat_so_far(tmp_path: Path) -> None:
    doc = check_logs(_trainer_state(tmp_path, 3000))
    [f] = [f for f in doc.findings if f.code == "loss_plateau"]
    assert f.severity == "info"
    assert "flat so far" in f.summary and "step 110 of the 3,000 steps" in f.summary
    assert f.evidence.model_extra["planned_steps"] == 3000


def test_a_plateau_at_the_planned_end_is_not_so_far(tmp_path: Path) -> None:
    for max_steps in (110, None):  # the run ended where the log does, or the log states no length
        doc = check_logs(_trainer_state(tmp_path, max_steps))
        [f] = [f for f in doc.findings if f.code == "loss_plateau"]
        assert "so far" not in f.summary
        assert "planned_steps" not in f.evidence.model_extra


def test_stepless_console_dicts_name_their_epoch(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_text("".join(
        f"{{'loss': {loss}, 'grad_norm': nan, 'learning_rate': 9.77e-06, 'epoch': 0.53}}\n"
        for loss in (0.2051, 0.0, 0.0)))
    doc = check_logs(path)
    nonfinite = next(f for f in doc.findings if f.code == "nonfinite")
    assert "record 1 (epoch 0.53)" in nonfinite.summary and "step 0" not in nonfinite.summary
    # three lines of a run at epoch 0.53 are no 3-step run
    short = [f for f in doc.findings if f.code == "insufficient_data"]
    assert short and all("run itself is" not in f.explanation for f in short)
