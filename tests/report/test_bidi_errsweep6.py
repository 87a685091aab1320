"""errsweep6 #8: Unicode's bidi controls (U+202A-U+202E, U+2066-U+2069) in a user string (a run's
or spec's name, a layer, a series, the input's path) were copied into every report format, where
one visually reorders the rest of its line: a CI annotation, a code-scanning result. Each is now
written as its escape (``\\u202e``), the rest of the name kept."""

from __future__ import annotations

import json

import pytest

from gradhealth.report import FORMATS, ReportContext, render
from gradhealth.report.context import one_line
from tests.report.helpers import document, finding

BIDI = "".join(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
NAME = f"run\u202egpj.exe::error::x{BIDI}end"


def _doc(kind: str):
    f = finding("dead_units", "warning", f"dead units in {NAME}", layers=[NAME], metric=NAME,
                steps=[1, 2] if kind == "logs" else None)
    return document([f], kind=kind, name=NAME)


def test_one_line_writes_each_bidi_control_as_its_escape():
    assert one_line("a\u202eb\u2066c\u2069d") == "a\\u202eb\\u2066c\\u2069d"
    assert one_line("\u200e\u200f") == "\u200e\u200f"  # the marks reorder nothing: kept


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "json"])
@pytest.mark.parametrize("kind", ["architecture", "logs"])
def test_no_report_format_carries_a_bidi_control(fmt, kind):
    out = render(fmt, _doc(kind), ReportContext(source=f"in/{NAME}.yaml", layers=True))
    assert not [c for c in out if c in BIDI], fmt
    if fmt in ("sarif", "codeclimate"):
        out = json.dumps(json.loads(out))  # the escape is the string's own text, not JSON's
    assert "\\u202e" in out, fmt  # the name is kept, the control shown


def test_the_json_document_keeps_the_name_as_given():
    assert NAME in json.loads(render("json", _doc("logs"), ReportContext()))["name"]
