"""Tests take shared builders from helper modules; conftest.py files hold fixtures only.

pytest imports each conftest.py itself as a plugin; a test module importing one as an ordinary
module couples the two and hides where a builder lives. Builders go in a ``helpers.py`` beside it.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _imports_a_conftest(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            names = [node.module or "", *(a.name for a in node.names)]   # also `from . import conftest`
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        if any(n == "conftest" or n.endswith(".conftest") for n in names):
            lines.append(node.lineno)
    return lines


def test_no_test_module_imports_a_conftest() -> None:
    offenders = {str(p.relative_to(TESTS)): lines for p in sorted(TESTS.rglob("*.py"))
                 if (lines := _imports_a_conftest(p))}
    assert offenders == {}, "import builders from a helpers.py module instead"


def test_the_check_sees_both_import_forms(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from tests.api.conftest import TINY\nfrom .conftest import DATA\nimport conftest\n"
                      "from tests.api.helpers import TINY\n")
    assert _imports_a_conftest(sample) == [1, 2, 3]
