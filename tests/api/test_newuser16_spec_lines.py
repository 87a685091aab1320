"""newuser16 #3: an architecture job's report points at lines of the text the caller sent.

The service stored the decoded spec only and placed findings on lines of it re-serialised as JSON:
"line 11" in the web UI for a YAML spec whose rnn layer is on line 6, and a GitHub annotation
``line=11`` with no ``file=`` (a line of nothing)."""

from __future__ import annotations

import re

import pytest

# the rnn layer on line 6 (a comment and blank lines first, as users write), in flow style
SPEC = """# a plain tanh RNN: its gradient vanishes through time

name: rnn
input: {shape: [60, 8]}
layers:
  - {type: rnn, hidden_size: 32, nonlinearity: tanh}
  - {type: linear, out_features: 4}
seeds: 1
"""
RNN_LINE = 1 + SPEC.splitlines().index("  - {type: rnn, hidden_size: 32, nonlinearity: tanh}")


@pytest.fixture(scope="module")
def job(api) -> str:
    r = api.post("/v1/checks/architecture?wait=120", content=SPEC.encode(),
                 headers={"Content-Type": "application/yaml"})
    assert r.status_code in (200, 201, 202), r.text
    done = api.wait_done(r.json()["id"], timeout=300)
    assert done["status"] == "succeeded", done
    assert any(f["code"] == "vanishing_through_time" for f in done["result"]["findings"])
    return done["id"]


def test_the_html_report_says_the_line_of_the_yaml_sent(api, job):
    html = api.get(f"/v1/jobs/{job}/report?format=html").text
    assert RNN_LINE == 6
    assert f"line {RNN_LINE} (layers[0].rnn)" in html


def test_an_annotation_without_a_file_carries_no_line_and_with_one_the_files_line(api, job):
    github = api.get(f"/v1/jobs/{job}/report?format=github").text
    [command] = [x for x in github.splitlines() if "vanishing_through_time" in x]
    assert "line=" not in command and "file=" not in command
    named = api.get(f"/v1/jobs/{job}/report?format=github&source=models/rnn.yaml").text
    [command] = [x for x in named.splitlines() if "vanishing_through_time" in x]
    assert re.search(rf"file=models/rnn.yaml,line={RNN_LINE},", command), command
    sarif = api.get(f"/v1/jobs/{job}/report?format=sarif&source=models/rnn.yaml").json()
    [result] = [r for r in sarif["runs"][0]["results"] if r["ruleId"] == "vanishing_through_time"]
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == RNN_LINE
    # a .json path for a spec sent as YAML: no line of another text
    other = api.get(f"/v1/jobs/{job}/report?format=github&source=models/rnn.json").text
    [command] = [x for x in other.splitlines() if "vanishing_through_time" in x]
    assert "file=models/rnn.json" in command and "line=" not in command
