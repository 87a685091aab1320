"""Reports of an input the check refused (exit 2) or could not run on (exit 3), in the formats a
CI system uploads (SARIF, JUnit XML). A refused input must still leave a report where the
pipeline expects one: otherwise the upload step fails on a missing file, or passes with nothing,
and the reason shows only in the job log (newuser3).

A refusal is the result ``invalid_input`` at each problem's line (the JSON pointer located in the
input's own text) or at the file; a check that could not run is no finding about the file, so
SARIF says it as the invocation's notification and JUnit as an ``error`` (not a ``failure``).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from gradhealth import __version__
from gradhealth.report.junit import scrub_xml
from gradhealth.report.locate import locate
from gradhealth.report.sarif import SCHEMA_URI, artifact_uri

#: The rule id of a refused input (no finding code: the input was never checked).
INVALID_INPUT = "invalid_input"
_MAX_PROBLEMS = 50


@dataclass
class Refusal:
    """Why ``source`` (the path as the report names it) got no diagnosis: ``title`` and ``detail``
    (the problem document's), ``problems`` as (JSON pointer, message) pairs, ``text`` the input's
    own text where it is a spec the pointers can be located in, and whether the check could not
    run at all (exit 3: the environment's fault, not the input's)."""

    source: str
    title: str
    detail: str
    problems: list[tuple[str, str]] = field(default_factory=list)
    text: str | None = None
    could_not_run: bool = False
    #: ``spec``, ``model`` or ``logs``: the SARIF category a diagnosis of the input would have, so
    #: the refusal's alert closes when the fixed input's next upload lands in the same category
    kind: str = "spec"
    #: (line, column) where text that could not be parsed goes wrong (a YAML or JSON syntax error, a
    #: log's line a reader refused, its column None: :attr:`GradHealthError.position`): the whole
    #: error is placed there (newuser14 #7, newuser16 #6)
    position: tuple[int, int | None] | None = None

    def placed(self, limit: int = _MAX_PROBLEMS) -> list[tuple[str, int | None, int | None]]:
        """The first ``limit`` problems' messages, each with its line and column (None where it
        cannot be placed); the whole error at the file when there is no problem list."""
        out: list[tuple[str, int | None, int | None]] = []
        for pointer, why in self.problems[:limit]:
            at = self._at(pointer, why)
            out.append((f"{pointer or '/'}: {why}", at[0] if at else None, at[1] if at else None))
        if out:
            return out
        line, column = self.position if self.position is not None else (None, None)
        return [(self.detail, line, column)]

    def _at(self, pointer: str, why: str) -> tuple[int, int, int] | None:
        """Where a problem is shown: at its value (a bad number's column), but at the key that
        names it when the key is the problem (an unknown field) or the value is a block starting
        on a later line (a misspelt `layer:` was shown at its first item, a line below: newuser6)."""
        if self.text is None or not pointer:
            return None
        value = locate(self.text, pointer)
        key = locate(self.text, pointer, member=True)
        if key is not None and (value is None or why.startswith("unknown field") or key[0] < value[0]):
            return key
        return value

    def located_detail(self) -> str:
        """:attr:`detail` with the line and column of each problem the text places written after
        its pointer (``/layers/0/activation (line 3, column 50): ...``), as the terminal shows it;
        the detail as it is where nothing can be placed (newuser9 P7: stderr showed the pointers
        alone while JUnit and GitHub placed the same problems). A problem is matched where the
        detail lists it, at its start or after a ``; ``, in order."""
        if self.text is None:
            return self.detail
        out, pos = self.detail, 0
        for pointer, why in self.problems:
            plain = f"{pointer or '/'}: {why}"
            found = pos - 1
            while True:
                found = out.find(plain, found + 1)
                if found < 0 or found == 0 or out.startswith("; ", found - 2):
                    break
            if found < 0:
                continue
            at = self._at(pointer, why)
            if at is None:
                pos = found + len(plain)
                continue
            placed = f"{pointer or '/'} (line {at[0]}, column {at[1]}): {why}"
            out = out[:found] + placed + out[found + len(plain):]
            pos = found + len(placed)
        return out

    def reported(self) -> list[tuple[str, int | None, int | None]]:
        """:meth:`placed`, and a last entry counting the problems past :data:`_MAX_PROBLEMS`."""
        more = len(self.problems) - _MAX_PROBLEMS
        return self.placed() + ([(f"{more} more problem(s); see the job log", None, None)] if more > 0 else [])


def _artifact(source: str) -> dict[str, str]:
    return {"uri": artifact_uri(source), "uriBaseId": "%SRCROOT%"}


def refusal_sarif(refusal: Refusal) -> str:
    """A SARIF 2.1.0 log of one run with no diagnosis: ``invalid_input`` results at the problems'
    lines, or (could not run) an unsuccessful invocation with the reason as its notification."""
    invocation: dict[str, Any] = {"executionSuccessful": not refusal.could_not_run}
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "gradhealth", "fullName": "Gradient Health", "version": __version__,
                            "semanticVersion": __version__}},
        "columnKind": "unicodeCodePoints",
        "artifacts": [{"location": _artifact(refusal.source)}],
        "automationDetails": {"id": f"gradhealth/{refusal.kind}/{refusal.source}/"},
        "properties": {"status": "could_not_run" if refusal.could_not_run else "invalid_input",
                       "summary": f"{refusal.title}: {refusal.detail}"},
    }
    if refusal.could_not_run:
        invocation["toolExecutionNotifications"] = [{
            "level": "error", "message": {"text": f"the check could not run: {refusal.detail}"},
            "locations": [{"physicalLocation": {"artifactLocation": _artifact(refusal.source)}}]}]
        run["results"] = []
    else:
        run["tool"]["driver"]["rules"] = [{
            "id": INVALID_INPUT, "name": "InvalidInput",
            "shortDescription": {"text": "The input was refused: it is not a valid spec, model or log"},
            "defaultConfiguration": {"level": "error"}}]
        results = []
        for message, line, column in refusal.reported():
            physical: dict[str, Any] = {"artifactLocation": _artifact(refusal.source)}
            if line is not None:
                physical["region"] = {"startLine": line, **({"startColumn": column} if column else {})}
            results.append({"ruleId": INVALID_INPUT, "ruleIndex": 0, "level": "error",
                            "message": {"text": f"{refusal.title}: {message}"},
                            "locations": [{"physicalLocation": physical}]})
        run["results"] = results
    run["invocations"] = [invocation]
    return json.dumps({"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}, indent=2, ensure_ascii=False)


def refusal_junit(refusal: Refusal) -> str:
    """JUnit XML with one test case for the input: a ``failure`` of type ``invalid_input`` listing
    the problems (with their lines), or an ``error`` when the check could not run."""
    case = ET.Element("testcase", classname=refusal.source, name=INVALID_INPUT if not refusal.could_not_run
                      else "check", file=refusal.source)
    body = "\n".join(f"{refusal.source}:{line}: {message}" if line else f"{refusal.source}: {message}"
                     for message, line, _ in refusal.reported())
    if refusal.could_not_run:
        element = ET.SubElement(case, "error", message=f"the check could not run: {refusal.detail}",
                                type="could_not_run")
        element.text = refusal.detail
    else:
        element = ET.SubElement(case, "failure", message=f"{refusal.title}: {refusal.detail}",
                                type=INVALID_INPUT)
        element.text = body
    counts = {"tests": "1", "failures": "0" if refusal.could_not_run else "1",
              "errors": "1" if refusal.could_not_run else "0"}
    root = ET.Element("testsuites", {"name": "gradhealth", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": f"gradhealth: {refusal.source}", **counts, "skipped": "0"})
    suite.append(case)
    scrub_xml(root)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


#: The report formats an input with no diagnosis is written in, by format name.
RENDERERS = {"sarif": refusal_sarif, "junit": refusal_junit}
