"""With nothing simulated (``--no-verify``, as the pre-commit hooks run), a GitHub annotation does
not present the first remedy by kind of change as "the" fix: newuser6 saw `Fix: xavier_init` on a
spec whose verified check shows xavier_init fixes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradhealth.cli import main
from tests.helpers import example


def test_an_unverified_check_lists_possible_fixes_not_one_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "deep.json"
    spec.write_text(json.dumps(example("deep_sigmoid_mlp")))
    main(["check", str(spec), "--no-verify", "--seeds", "1", "--format", "github"])
    out = capsys.readouterr().out
    assert "Possible fixes, not simulated" in out and "Fix: " not in out
    main(["check", str(spec), "--seeds", "1", "--format", "github"])
    assert "Fix: " in capsys.readouterr().out      # verified: the best verified fix is named
