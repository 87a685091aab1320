"""newuser19 #5, #6, #8: the example descriptions stand alone in any order; docs/ci.md gives the
one-file CLI line for the baseline folder of the Action and GitLab (named as the Action names it);
`gradhealth --help` says `check` reads model files too."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from gradhealth.cli import build_parser, example_description
from gradhealth.library import example_names

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", example_names())
def test_each_example_description_stands_alone(name: str) -> None:
    text = example_description(name)
    # no sentence leaning on the example listed before or after it
    assert not re.match(r"(its|their|this|that|these|the same|same)\b", text, re.IGNORECASE), text
    if re.search(r"\b(same|counterpart|other)\b", text, re.IGNORECASE):
        assert any(re.search(rf"\b{other}\b", text) for other in example_names() if other != name), text


def _action_doc_name(path: str) -> str:
    """The Action's own naming of an input's documents (action.yml's doc_name), run in bash."""
    body = re.search(r"( *)doc_name\(\) \{\n.*?\n\1\}\n", (ROOT / "action.yml").read_text(encoding="utf-8"), re.DOTALL)
    assert body, "action.yml's doc_name is gone"
    script = body.group(0) + 'doc_name "$1"\n'
    return subprocess.run(["bash", "-c", script, "bash", path], check=True, capture_output=True,
                          text=True).stdout


def test_ci_docs_give_the_cli_line_for_a_baseline_folder() -> None:
    text = re.sub(r"\s+", " ", (ROOT / "docs" / "ci.md").read_text(encoding="utf-8"))
    assert re.search(r"folder form belongs to the Action and the GitLab template", text)
    lines = re.findall(r"`gradhealth check (\S+) --baseline (\S+)/(\S+\.json)[^`]*`", text)
    assert lines, "no one-file --baseline line for a folder's document"
    for input_path, _folder, doc in lines:
        assert doc == _action_doc_name(input_path) + ".json"


def test_top_level_help_says_check_reads_model_files() -> None:
    helptext = build_parser().format_help()
    entry = re.search(r"\n( +)check +(.*(?:\n\1 {4,}.*)*)", helptext)  # the line and its wrapped lines
    assert entry, helptext
    following = " ".join(entry.group(2).split())
    assert "ONNX" in following and "Keras" in following, following
