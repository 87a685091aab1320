"""newuser16 #6: an error that names a line carries it in ``errors[]``, and a CI report places it there.

- A YAML spec naming a key twice got a 400 whose detail said "line 2, column 1" while ``errors[0]``
  had no ``line``/``column`` (a tab, an unclosed ``{`` had them).
- A log a worker could not read (a bad cell, a header-only CSV) ended as a failed job with
  ``error.errors: null`` and ``error.instance: null``; the line was only in the prose.
- The CLI's SARIF and GitHub output for that refused log sat on the file, with no line.

Expected lines and columns are counted from the test's own text, never read back from the service.
"""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from gradhealth.analysis.spec import load_spec_text
from gradhealth.cli import main
from gradhealth.errors import InputFormatError, LogError
from gradhealth.logs.load import read_log

YAML_TWICE = "input: {shape: [4]}\nlayers: [{type: linear, out_features: 2}]\ninput: {shape: [5]}\n"
JSON_TWICE = ('{"input": {"shape": [4]},\n "layers": [{"type": "linear", "out_features": 2,\n'
              '    "out_features": 3}]}\n')
BAD_CELL = "step,loss\n1,0.5\n2,0.4\n3,abc\n4,0.3\n"


def _at(text: str, needle: str, nth: int = 1) -> tuple[int, int]:
    """(line, column), from 1, of the ``nth`` occurrence of ``needle`` in ``text``."""
    pos = -1
    for _ in range(nth):
        pos = text.index(needle, pos + 1)
    before = text[:pos]
    return before.count("\n") + 1, pos - (before.rfind("\n") + 1) + 1


def _bad_line() -> int:
    return 1 + BAD_CELL.splitlines().index("3,abc")


@pytest.mark.parametrize(("text", "key", "needle"), [(YAML_TWICE, "input", "input:"),
                                                      (JSON_TWICE, "out_features", '"out_features"')])
def test_a_key_named_twice_carries_the_line_and_column_of_its_second_naming(text, key, needle):
    with pytest.raises(InputFormatError) as caught:
        load_spec_text(text)
    line, column = _at(text, needle, 2)
    assert caught.value.position == (line, column)
    assert f"line {line}, column {column}" in caught.value.detail and repr(key) in caught.value.detail
    item = caught.value.to_problem()["errors"][0]  # type: ignore[index]
    assert (item["line"], item["column"]) == (line, column)


def test_an_inner_objects_repeat_is_found_before_its_parents_as_json_loads_finds_it():
    text = '{"a": 1, "a": 2, "b": {"c": 1,\n "c": 2}}'
    with pytest.raises(InputFormatError) as caught:
        load_spec_text(text, content_type="application/json")
    assert "'c'" in caught.value.detail and caught.value.position == _at(text, '"c"', 2)


def test_the_400_of_a_yaml_key_named_twice_has_line_and_column(idle_api):
    r = idle_api.post("/v1/checks/architecture", content=YAML_TWICE.encode(),
                      headers={"Content-Type": "application/yaml"})
    assert r.status_code == 400, r.text
    item = r.json()["errors"][0]
    assert (item["line"], item["column"]) == _at(YAML_TWICE, "input:", 2)


def test_a_log_refused_at_a_cell_names_its_line_and_column(tmp_path):
    path = tmp_path / "badcell.csv"
    path.write_text(BAD_CELL)
    with pytest.raises(LogError) as caught:
        read_log(path)
    assert caught.value.position == (_bad_line(), None) and caught.value.field == "loss"
    item = caught.value.to_problem()["errors"][0]  # type: ignore[index]
    assert item["line"] == _bad_line() and item["field"] == "loss" and "column" not in item


def test_a_member_of_an_archive_has_no_line_a_report_would_place_on_the_archive(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = BAD_CELL.encode()
        info = tarfile.TarInfo("run/badcell.csv")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    path = tmp_path / "run.tar.gz"
    path.write_bytes(buf.getvalue())
    with pytest.raises(LogError) as caught:
        read_log(path)
    assert f"line {_bad_line()}" in caught.value.detail and "badcell.csv" in caught.value.detail
    assert caught.value.position is None


def test_a_failed_log_job_carries_the_line_the_field_and_its_instance(api):
    job = api.post("/v1/checks/logs?wait=60", files={"file": ("badcell.csv", BAD_CELL.encode())}).json()
    assert job["status"] == "failed", job
    error = job["error"]
    assert error["instance"] == f"/v1/jobs/{job['id']}"
    assert [(e["line"], e["field"]) for e in error["errors"]] == [(_bad_line(), "loss")]
    # a header-only table names no line: its errors[] still holds the detail, as a 4xx answer's does
    job = api.post("/v1/checks/logs?wait=60", files={"file": ("header.csv", b"step,loss\n")}).json()
    assert job["status"] == "failed", job
    assert job["error"]["instance"] == f"/v1/jobs/{job['id']}"
    assert [e["detail"] for e in job["error"]["errors"]] == [job["error"]["detail"]]


def test_the_cli_places_a_refused_log_on_its_line_in_sarif_and_github(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    (tmp_path / "badcell.csv").write_text(BAD_CELL)
    assert main(["check", "badcell.csv", "--format", "sarif"]) == 2
    result = json.loads(capsys.readouterr().out)["runs"][0]["results"][0]
    assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": _bad_line()}
    assert main(["check", "badcell.csv", "--format", "github"]) == 2
    assert f"file=badcell.csv,line={_bad_line()}," in capsys.readouterr().out
