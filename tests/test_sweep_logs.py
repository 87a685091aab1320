"""bench/sweep_logs.py: a folder's findings kept per file, and two sweeps compared."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from sweep_logs import compare, sweep  # noqa: E402


def test_a_sweep_keeps_findings_and_refusals_and_a_compare_names_what_changed(tmp_path: Path) -> None:
    (tmp_path / "nan.csv").write_text("step,loss\n" + "".join(f"{i},{'nan' if i > 8 else 1.0 / (i + 1)}\n"
                                                              for i in range(12)))
    (tmp_path / "notes.md").write_text("# not a log\n")
    (tmp_path / "junk.txt").write_text("no numbers here at all\n")
    before = sweep([tmp_path])
    assert str(tmp_path / "notes.md") not in before
    assert ["nonfinite", "error"] in [f[:2] for f in before[str(tmp_path / "nan.csv")]]
    assert before[str(tmp_path / "junk.txt")][0] == "ERR"
    assert compare(before, before) == []
    (tmp_path / "nan.csv").write_text("step,loss\n" + "".join(f"{i},{1.0 / (i + 1)}\n" for i in range(12)))
    [changed] = compare(before, sweep([tmp_path]))
    assert changed.startswith(str(tmp_path / "nan.csv")) and "nonfinite" in changed
