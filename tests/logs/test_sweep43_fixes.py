"""What the forty-third log sweep (real logs from public repositories) found in the log check."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gradhealth.logs.check import diagnose, run_log_check
from gradhealth.logs.readers.text import line_values
from tests.logs.helpers import write
from tests.logs.test_detectors import run_of


def _her_table(epoch: int, success: float) -> str:
    rows = [("epoch", f"{epoch}"), ("stats_g/mean", "0.742563"), ("test/mean_Q", f"{-3.1 - epoch:.4f}"),
            ("test/success_rate", f"{success}"), ("train/episode", f"{100.0 * (epoch + 1)}")]
    rule = "-" * 46
    return "\n".join([rule, *(f"| {k:<18} | {v:<21} |" for k, v in rows), rule]) + "\n"


def test_baselines_tables_after_pages_of_set_up_output_are_read_by_their_step(tmp_path: Path) -> None:
    # OpenAI baselines' HER prints its tables (no sections, none of PPO2's keys) after 600 lines of
    # set-up: read as text, its config numbers became series
    preamble = "".join(f"  param_noise_actor/dense_{i}/kernel:0 <- actor/dense_{i}/kernel:0 + noise\n"
                       for i in range(600))
    tables = "".join(_her_table(e, 0.05 * e) for e in range(5, 17))  # resumed at epoch 5
    doc = run_log_check(write(tmp_path, "her_console.txt", "Logging to /tmp/openai-2018\n" + preamble + tables))
    assert doc.log.format == "sb3"
    success = next(s for s in doc.series if s.name == "test/success_rate")
    assert success.points == 12 and success.first_step == 5 and success.last_step == 16  # stepped by epoch


def test_tacotron2_prints_its_iteration_between_the_loss_name_and_the_loss() -> None:
    found, _ = line_values("Train loss 7082 0.412546 Grad Norm 1.326766 1.15s/it")
    assert dict(found)["step"] == "7082" and dict(found)["Train_loss"] == "0.412546"
    found, _ = line_values("Validation loss 7090:  0.495267  ")
    assert dict(found) == {"step": "7090", "Validation_loss": "0.495267"}
    # a loss and a count of something else keep their meaning
    assert dict(line_values("epoch 3 train loss 0.52")[0])["train_loss"] == "0.52"


def test_a_notes_file_whose_training_lines_start_600_lines_down_is_a_log(tmp_path: Path) -> None:
    prose = "".join(f"Set-up note {i}: cloned the repository and installed requirements.\n" for i in range(600))
    lines = "".join(f"Train loss {7000 + i} {0.6 * 0.995 ** i:.6f} Grad Norm {1.0 + 0.1 * (i % 3):.6f} 1.1s/it\n"
                    for i in range(60))
    path = write(tmp_path, "notes.md", "# Training Tacotron 2\n\n" + prose + "```\n" + lines + "```\n")
    for fmt in (None, "text"):
        doc = run_log_check(path, format=fmt)
        loss = next(s for s in doc.series if s.role == "loss")
        assert loss.points == 60 and loss.first_step == 7000


def _returns(peak_at: float, end_level: float, seed: int = 8) -> np.ndarray:
    # a DDPG return: -500 at first, climbing to 2,000, then (from peak_at) falling to end_level
    rng = np.random.default_rng(seed)
    n = 400
    t = np.arange(n) / n
    up = -500 + 2500 * np.clip(t / peak_at, 0, 1)
    down = np.where(t > peak_at, (2000 - end_level) * np.clip((t - peak_at) / 0.1, 0, 1), 0)
    return up - down + rng.normal(0, 150, n)


def test_a_return_that_climbs_and_falls_back_for_good_is_a_collapse() -> None:
    [f] = [f for f in diagnose(run_of(rollout__return=_returns(0.6, -300.0))).findings if f.code == "reward_collapse"]
    assert f.severity == "warning" and f.evidence.metric == "rollout/return"
    assert 0.5 < f.evidence.value < 1.2 and f.remedies[0].id == "early_stopping"


def test_a_return_that_levels_off_or_dips_and_recovers_is_no_collapse() -> None:
    assert not [f for f in diagnose(run_of(rollout__return=_returns(0.6, 1800.0))).findings
                if f.code == "reward_collapse"]  # a plateau a little under the peak
    dip = _returns(0.4, -300.0)
    dip[300:] = 2000 + np.random.default_rng(9).normal(0, 150, 100)  # down for a while, then back
    assert not [f for f in diagnose(run_of(rollout__return=dip)).findings if f.code == "reward_collapse"]
