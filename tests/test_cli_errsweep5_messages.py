"""errsweep5: the CLI on a local log over a read limit says "file too large", not "upload too large"
(nothing was uploaded), and names the limit's setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradhealth.cli import main


def test_a_local_log_over_the_series_limit_is_a_file_too_large(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "wide.csv"  # 10,001 columns besides the step: one more than GRADHEALTH_LOG_MAX_SERIES's 10,000
    log.write_text("step," + ",".join(f"c{i}" for i in range(10_001)) + "\n0," + ",".join("1" for _ in range(10_001)) + "\n")
    assert main(["check", str(log)]) == 2
    err = capsys.readouterr().err
    assert "file too large" in err and "upload too large" not in err, err
    assert "GRADHEALTH_LOG_MAX_SERIES" in err, err
