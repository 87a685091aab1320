"""GitHub workflow commands: caps per kind, most severe first, a closing notice, escaping."""

from __future__ import annotations

import re

from gradhealth.report import ReportContext, github_commands, render, write_step_summary

from .helpers import document, finding

COMMAND = re.compile(r"^::(error|warning|notice)(?: ([^:]*))?::(.*)$")


def unescape(s: str) -> str:
    return (
        s.replace("%2C", ",")
        .replace("%3A", ":")
        .replace("%0A", "\n")
        .replace("%0D", "\r")
        .replace("%25", "%")
    )


def parse(line: str) -> tuple[str, dict[str, str], str]:
    m = COMMAND.match(line)
    assert m, line
    props = dict(p.split("=", 1) for p in m.group(2).split(",")) if m.group(2) else {}
    return m.group(1), {k: unescape(v) for k, v in props.items()}, unescape(m.group(3))


def many(errors: int, warnings: int, infos: int):
    codes = ["saturation", "dead_units", "vanishing_gradient"]
    fs = [finding(codes[i % 3], "info", f"info {i}") for i in range(infos)]
    fs += [finding(codes[i % 3], "warning", f"warning {i}") for i in range(warnings)]
    fs += [finding(codes[i % 3], "error", f"error {i}") for i in range(errors)]
    return document(fs)


def test_25_findings_are_capped_per_kind_most_severe_first():
    doc = many(errors=12, warnings=8, infos=5)
    lines = [parse(x) for x in github_commands(doc, ReportContext(source="s.yaml"))]
    kinds = [k for k, _, _ in lines]
    assert kinds[:10] == ["error"] * 10
    assert kinds[10:18] == ["warning"] * 8
    # 5 informational findings + the closing notice: notices stay within 10.
    assert kinds[18:] == ["notice"] * 6
    assert all(kinds.count(k) <= 10 for k in ("error", "warning", "notice"))
    assert [m for k, _, m in lines[:10]] == [f"error {i}" for i in range(10)]
    assert lines[-1][2].startswith("2 more finding(s)")


def test_the_closing_notice_fits_within_the_notice_cap():
    doc = many(errors=0, warnings=0, infos=25)
    lines = [parse(x) for x in github_commands(doc, ReportContext())]
    assert len(lines) == 10 and all(k == "notice" for k, _, _ in lines)
    assert lines[-1][2].startswith("16 more finding(s)")  # 9 shown + 16 = 25


def test_no_closing_notice_when_everything_fits():
    lines = github_commands(many(errors=10, warnings=10, infos=10), ReportContext())
    assert len(lines) == 30 and not any("more finding" in x for x in lines)
    assert render("github", document([]), ReportContext()) == ""


def test_file_line_and_title_with_escaping():
    text = "layers:\n  - {type: linear, out_features: 8}\n"
    layers = [{"name": "layers[0].linear", "pointer": "/layers/0", "type": "linear"}]
    doc = document(
        [
            finding(
                "saturation",
                "warning",
                "100% saturated, see: layer\nnext line",
                layers=["layers[0].linear"],
            )
        ],
        layers=layers,
    )
    ((kind, props, message),) = [
        parse(x) for x in github_commands(doc, ReportContext(source="a,b:c.yaml", text=text))
    ]
    assert kind == "warning"
    assert props["file"] == "a,b:c.yaml" and props["line"] == props["endLine"] == "2"
    assert props["col"] == "5" and props["title"] == "saturation: Saturated units"
    assert message == "100% saturated, see: layer\nnext line"


def test_step_summary_is_appended(tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    doc = document([finding("saturation", "warning", "half the units saturate")])
    assert write_step_summary(doc, ReportContext(), summary)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert write_step_summary(doc, ReportContext())
    text = summary.read_text()
    assert text.startswith("earlier step\n") and text.count("half the units saturate") == 2
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    assert not write_step_summary(doc, ReportContext())
