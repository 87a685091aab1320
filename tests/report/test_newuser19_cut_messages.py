"""newuser19 #4: a message shortened for a report (the JUnit `<skipped message>`, the SARIF
notification of a check that had nothing to judge) is cut between values and ends with "…", never
inside a value ("train/reward = )" read as a metric with an empty value)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gradhealth.core.words import shorten
from gradhealth.library import check_logs
from gradhealth.report import ReportContext, render


def test_shorten_keeps_whole_text_and_cuts_between_items() -> None:
    assert shorten("a = 1, b = 2", 12) == "a = 1, b = 2"
    items = ", ".join(f"metric_{k} = {k * 0.123456789:.9f}" for k in range(20))
    cut = shorten(items, 120)
    assert len(cut) <= 120 and cut.endswith(" …")
    kept = cut.removesuffix(" …").split(", ")
    # every item kept is whole: exactly the first items of the text
    assert kept == items.split(", ")[:len(kept)] and len(kept) >= 3
    # no item boundary in the second half: cut at a word, still never leaving "name =" dangling
    words = "word " * 40
    assert shorten(words, 50) == ("word " * 9).strip() + " …"
    assert shorten("x" * 100, 10) == "x" * 8 + " …"


def _summary_log(tmp_path: Path) -> Path:
    path = tmp_path / "wandb-summary.json"
    values = {f"train/metric_{k:02d}": 0.48890626430511475 + k for k in range(40)}
    path.write_text(json.dumps({**values, "_step": 1000}))
    return path


@pytest.mark.parametrize("fmt", ["junit", "sarif"])
def test_a_not_run_message_is_cut_between_values(tmp_path: Path, fmt: str) -> None:
    doc = check_logs(_summary_log(tmp_path))
    out = render(fmt, doc, ReportContext(source="wandb-summary.json"))
    if fmt == "junit":
        messages = [e.get("message") or "" for e in ET.fromstring(out).iter("skipped")]
    else:
        messages = [n["message"]["text"] for r in json.loads(out)["runs"] for inv in r["invocations"]
                    for n in inv.get("toolExecutionNotifications", [])]
    assert messages
    for m in messages:
        assert not re.search(r"=\s*[),]?$|= \)", m), m      # no name left without its value
        assert m.endswith("…)"), m  # said to be cut
        # each value shown is whole: the one the log holds (the old cut left "train/metric_01 = 1.4")
        shown = re.findall(r"(train/metric_\d+) = ([0-9.e+-]+)", m)
        assert shown
        for name, value in shown:
            assert float(value) == pytest.approx(0.48890626430511475 + int(name[-2:]), rel=1e-9)
