"""``--seeds`` and ``--device`` change only what is simulated; where every input is a training log
they would change nothing, so they are refused rather than dropped (errsweep6: a CI step passed
``--seeds 5`` to a log check and believed it applied)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradhealth.cli import main

LOG = "".join(f'{{"step": {i}, "loss": {1 / (i + 1):.4f}}}\n' for i in range(40))


@pytest.fixture
def log(tmp_path: Path) -> Path:
    (tmp_path / "run.jsonl").write_text(LOG)
    return tmp_path / "run.jsonl"


@pytest.mark.parametrize("flags, named", [(["--seeds", "5"], "--seeds applies"), (["--device", "cpu"], "--device applies"),
                                          (["--seeds", "2", "--device", "cpu"], "--seeds and --device apply")])
def test_a_simulation_flag_on_a_log_alone_is_refused(log: Path, flags: list[str], named: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(log), *flags]) == 2
    err = capsys.readouterr().err
    assert named in err and "training log" in err


def test_several_logs_are_refused_together(log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "other.jsonl").write_text(LOG)
    assert main(["check", str(log), str(tmp_path / "other.jsonl"), "--seeds", "3"]) == 2
    assert "the inputs are training logs" in capsys.readouterr().err


def test_with_a_spec_among_the_inputs_the_flag_applies_to_it(log: Path, tmp_path: Path) -> None:
    spec = tmp_path / "mlp.yaml"
    spec.write_text("name: mlp\ninput:\n  shape: [8, 4]\nlayers:\n  - type: linear\n    out_features: 4\n"
                    "  - type: activation\n    activation: relu\n  - type: linear\n    out_features: 2\n")
    assert main(["check", str(spec), str(log), "--seeds", "1", "--no-verify"]) in (0, 1)


def test_a_log_without_the_flags_is_checked(log: Path) -> None:
    assert main(["check", str(log)]) == 0
