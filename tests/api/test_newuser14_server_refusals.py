"""newuser14 #2 and #7: ``gradhealth check --server`` reports a refused spec as the local run does
(each problem its own annotation and SARIF result, on its line and column, from the 422's
``errors[].pointer``), and a spec whose YAML does not parse is placed at the line and column the
error names, locally and through the service (``errors[].line``/``column``)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gradhealth.cli import main
from tests.api.helpers import Api

# two problems on line 3: out_features at column 34, the activation at column 50 (counted by hand)
INVALID = ("input: {shape: [4]}\nloss: {type: mse}\n"
           "layers:\n  - {type: linear, out_features: -3, activation: swishy}\n")
BROKEN = "input: {shape: [784]\nlayers:\n  - {type: linear, out_features: -3}\n"


@pytest.fixture
def via_service(idle_api: Api, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``--server`` answered by the real app (a refused spec is a 422 at submission: no worker)."""

    def handler(request: httpx.Request) -> httpx.Response:
        answer = idle_api.request(request.method, request.url.raw_path.decode(), content=request.content,
                                  headers={k: v for k, v in request.headers.items() if k.lower() != "host"})
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    real = httpx.Client.__init__

    def init(self: httpx.Client, *args: Any, **kwargs: Any) -> None:
        real(self, *args, **{**kwargs, "transport": httpx.MockTransport(handler)})

    monkeypatch.setattr(httpx.Client, "__init__", init)
    yield "http://service.test"


def _run(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, list[str], dict[str, Any], str]:
    sarif = path.with_suffix(".sarif")
    code = main(["check", path.name, "--format", "github", "--output", f"sarif={sarif.name}", *extra])
    out, err = capsys.readouterr()
    return code, [ln for ln in out.splitlines() if ln.startswith("::error")], json.loads(sarif.read_text()), err


def _places(lines: list[str]) -> list[tuple[str | None, str | None]]:
    return sorted((m.group(1), m.group(2)) for ln in lines
                  for m in [re.search(r"line=(\d+),col=(\d+)", ln) or re.search(r"()()", ln)] if m)


def _regions(sarif: dict[str, Any]) -> list[tuple[int, int] | None]:
    out = []
    for r in sarif["runs"][0]["results"]:
        region = r["locations"][0]["physicalLocation"].get("region")
        out.append((region["startLine"], region["startColumn"]) if region else None)
    return sorted(out, key=str)


def test_server_refusal_places_each_problem_as_the_local_run_does(
        via_service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "invalid.yaml"
    spec.write_text(INVALID)
    col_out = INVALID.splitlines()[3].index("-3") + 1
    col_act = INVALID.splitlines()[3].index("swishy") + 1
    assert (col_out, col_act) == (34, 50)
    local = _run(spec, capsys)
    remote = _run(spec, capsys, "--server", via_service)
    assert local[0] == remote[0] == 2
    for _code, commands, sarif, err in (local, remote):
        assert _places(commands) == [("4", str(col_out)), ("4", str(col_act))], commands
        assert _regions(sarif) == [(4, col_out), (4, col_act)]
        assert f"(line 4, column {col_act})" in err and f"(line 4, column {col_out})" in err


def test_broken_yaml_is_placed_at_the_line_and_column_the_error_names(
        via_service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "broken.yaml"
    spec.write_text(BROKEN)
    opened = BROKEN.index("{") + 1  # the flow mapping left open: line 1, its column
    for extra in ((), ("--server", via_service)):
        code, commands, sarif, err = _run(spec, capsys, *extra)
        assert code == 2, err
        assert f"line 1, column {opened}" in err
        assert _places(commands) == [("1", str(opened))], commands
        assert _regions(sarif) == [(1, opened)]
