"""newuser3: `check --server --progress` shows the job's progress while it runs (it printed
nothing for a 10 s job: the check was submitted with a 30 s server-side wait and only status
changes were printed), and a check given up on at --server-timeout is cancelled, not left running."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from gradhealth.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "relu_he_mlp.yaml"


def _serve(monkeypatch: pytest.MonkeyPatch, states: list[dict[str, Any]]) -> list[httpx.Request]:
    """A service whose job goes through ``states`` (one per poll, the last repeated)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "DELETE":
            return httpx.Response(202, json={"id": "j1", "status": "running"})
        polls = sum(r.method == "GET" for r in seen)
        return httpx.Response(202 if request.method == "POST" else 200,
                              json={"id": "j1", **states[min(polls, len(states) - 1)]})

    real = httpx.Client.__init__

    def init(self: httpx.Client, *args: object, **kwargs: object) -> None:
        real(self, *args, **{**kwargs, "transport": httpx.MockTransport(handler)})  # type: ignore[arg-type]

    monkeypatch.setattr(httpx.Client, "__init__", init)
    return seen


def test_progress_is_shown_while_the_job_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    from gradhealth.library import check_architecture

    result = check_architecture(str(EXAMPLE), seeds=1, verify=False).model_dump(mode="json")
    seen = _serve(monkeypatch, [
        {"status": "queued", "progress": {"fraction": 0.0, "stage": "queued"}},
        {"status": "running", "progress": {"fraction": 0.3, "stage": "simulating"}},
        {"status": "running", "progress": {"fraction": 0.7, "stage": "verifying remedies"}},
        {"status": "succeeded", "progress": {"fraction": 1.0, "stage": "done"}, "result": result}])
    code = main(["check", str(EXAMPLE), "--server", "http://svc.invalid", "--progress", "--format", "json",
                 "-o", str(tmp_path / "d.json")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "[ 30%] simulating" in err and "[ 70%] verifying remedies" in err
    # submitted without the server's long wait, so the first state is seen at once
    assert seen[0].method == "POST" and seen[0].url.params["wait"] == "0"


def test_without_progress_one_round_trip_still_waits_on_the_server(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    from gradhealth.library import check_architecture

    result = check_architecture(str(EXAMPLE), seeds=1, verify=False).model_dump(mode="json")
    seen = _serve(monkeypatch, [{"status": "succeeded", "result": result}])
    assert main(["check", str(EXAMPLE), "--server", "http://svc.invalid", "--no-progress", "--format", "json",
                 "-o", str(tmp_path / "d.json")]) == 0
    assert float(seen[0].url.params["wait"]) == 30


def test_a_check_given_up_on_is_cancelled(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    seen = _serve(monkeypatch, [{"status": "running", "progress": {"fraction": 0.5, "stage": "simulating"}}])
    code = main(["check", str(EXAMPLE), "--server", "http://svc.invalid", "--server-timeout", "0.5", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 3 and "it has been cancelled" in err, err
    assert [r.method for r in seen][-1] == "DELETE" and seen[-1].url.path == "/v1/jobs/j1"


def test_an_invalid_spec_is_annotated_at_its_pointers_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # newuser3 #11: with --format github an invalid spec showed only in the job log (exit 2, stderr)
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: bad\ninput:\n  shape: [8]\nlayers:\n  - type: linear\n    out_features: 16\n"
                    "  - type: linear\n    out_features: -3\n")
    assert main(["check", str(spec), "--format", "github"]) == 2
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(f"::error file={spec},line=8,col=19,")
    assert "/layers/1/out_features" in out[0]


def test_an_unreadable_input_is_annotated_on_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "weird.log"
    log.write_bytes(b"\x00\x01\x02" * 100)
    assert main(["check", str(log), "--format", "github"]) == 2
    [line] = capsys.readouterr().out.strip().splitlines()
    assert line.startswith(f"::error file={log},title=gradhealth") and "line=" not in line
