"""errsweep5: a text log line naming one name thousands of times (``loss: 1 loss: 1 ...``) is named
in time that grows with the repeats, not their square; more than MAX_LINE_VALUES values on a line
are refused as they are counted, at the line; a line longer than MAX_VALUES_LINE is skipped with a
note; a huge line costs the upload's format sniff nothing quadratic. No timings: the work is counted."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from gradhealth.errors import UploadTooLarge
from gradhealth.logs import load
from gradhealth.logs.readers import text
from gradhealth.logs.sniff import read_head, sniff


class _CountingSplits:
    """Stands in for text._SPLIT_BETWEEN, counting the characters its searches cover."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.scanned = 0

    def finditer(self, line: str, pos: int = 0, endpos: int | None = None):  # noqa: ANN201
        end = len(line) if endpos is None else min(endpos, len(line))
        self.scanned += max(0, end - pos)
        return self.pattern.finditer(line, pos, end)


def _work(monkeypatch: pytest.MonkeyPatch, repeats: int) -> tuple[int, int]:
    counter = _CountingSplits(text._SPLIT_BETWEEN)
    monkeypatch.setattr(text, "_SPLIT_BETWEEN", counter)
    found, _ = text._line_values("loss: 1 " * repeats)
    return len(found), counter.scanned


def test_repeated_name_work_grows_linearly(monkeypatch: pytest.MonkeyPatch) -> None:
    n1, w1 = _work(monkeypatch, 1000)
    n4, w4 = _work(monkeypatch, 4000)
    assert (n1, n4) == (1000, 4000)  # loss, loss_2, ..., loss_<n>: every value kept
    # linear: four times the repeats, about four times the characters searched (a square: 16x)
    assert w4 <= 5 * w1, (w1, w4)


def test_repeats_are_numbered_in_order() -> None:
    found, _ = text._line_values("loss: 1 loss: 2 loss_3: 9 loss: 3 loss: 4")
    assert dict(found) == {"loss": "1", "loss_2": "2", "loss_3": "9", "loss_4": "3", "loss_5": "4"}
    # a split named between two values of one name still names the later one
    found, _ = text._line_values("Train Loss: 11.2 | Acc: 0.04 | Val Loss: 10.9 | Acc: 0.06")
    assert dict(found)["val_Acc"] == "0.06"


def test_too_many_values_refused_as_counted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = 0
    real = text._repeated_name

    def counting(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(text, "_repeated_name", counting)
    with pytest.raises(text.LineTooWide):
        text._line_values("loss: 1 " * 20_000)
    assert calls < text.MAX_LINE_VALUES  # stopped at the limit, not after naming all 20,000
    path = tmp_path / "l.txt"
    path.write_text("loss: 1 " * 20_000)
    with pytest.raises(UploadTooLarge, match=r"l\.txt line 1: more than 10,000 values on one line"):
        load.read_log(path)


def test_repeated_line_reads_every_value(tmp_path: Path) -> None:
    path = tmp_path / "l.txt"
    path.write_text("loss: 1 " * 2500)
    log = load.read_log(path)
    assert len(log.series) == 2500


def test_line_longer_than_bound_is_skipped_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "run.log"
    rows = [f"step: {i} loss: {1 / i:.4f}\n" for i in range(1, 40)]
    path.write_text(rows[0] + "loss: 1 " * (text.MAX_VALUES_LINE // 8 + 10) + "\n" + "".join(rows[1:]))
    log = load.read_log(path)
    assert {s.name for s in log.series} == {"loss"}
    notes = [w for w in log.warnings if w.code == "skipped_line"]
    assert notes and "line 2:" in notes[0].message and "1,048,576" in notes[0].message


def test_sniff_of_one_huge_line_is_text(tmp_path: Path) -> None:
    path = tmp_path / "l.txt"
    path.write_text("loss: 1 " * 100_000)
    reader, score = sniff(path.name, read_head(path))
    assert reader is not None and reader.name == "text" and score > 0


def test_header_names_match_the_plain_pattern() -> None:
    # the restarts' header pattern reads each run of name characters once; it finds what the plain
    # pattern did
    plain = re.compile(rb"([A-Za-z_][\w.-]*)\s*[:=]\s*[-+]?\.?\d")
    rng = random.Random(5)
    for _ in range(20_000):
        s = bytes(rng.choice(b"ab1_.-:= +9") for _ in range(rng.randint(0, 14)))
        assert text._HEADER_NAME.findall(s) == plain.findall(s), s
