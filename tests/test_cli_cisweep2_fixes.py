"""cisweep2: a named pipe named like a spec, a --server that is no URL, and a report written over an
input are refused at once with exit 2."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from gradhealth.cli import is_spec, main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "relu_he_mlp.yaml"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_named_pipe_ending_yaml_is_refused_not_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    # opening a FIFO for reading blocks until a writer comes: the check must not open it
    assert is_spec(str(fifo)) is False
    assert main(["check", str(fifo)]) == 2
    assert "not a regular file" in capsys.readouterr().err


@pytest.mark.parametrize("url", ["notaurl", "ftp://host", "http://", "file:///tmp/x"])
def test_a_server_that_is_no_http_url_is_a_usage_error(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["check", str(EXAMPLE), "--server", url])
    assert exc.value.code == 2
    assert "is not a service URL" in capsys.readouterr().err


def test_a_report_over_the_input_or_twice_by_another_spelling_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "s.yaml"
    shutil.copy(EXAMPLE, spec)
    before = spec.read_bytes()
    monkeypatch.chdir(tmp_path)
    assert main(["check", "s.yaml", "--output", "json=./s.yaml"]) == 2
    assert "an input of this check" in capsys.readouterr().err and spec.read_bytes() == before
    assert main(["check", "s.yaml", "--format", "sarif", "-o", "out/r.x", "--output", "json=./out/r.x"]) == 2
    assert "same --output file" in capsys.readouterr().err and not (tmp_path / "out" / "r.x").exists()
    # distinct files are written
    assert main(["check", "s.yaml", "-o", "out/r.txt", "--output", "json=out/r.json"]) == 0
    assert (tmp_path / "out" / "r.json").exists()


def test_a_job_the_service_never_runs_is_waited_for_only_as_long_as_asked(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # a service whose queue is stuck (no worker) answers every poll "queued": the CLI polled for an
    # hour, silently; now it says each state with --progress and gives up after --server-timeout
    import httpx

    polls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        polls.append(request.method)
        return httpx.Response(202 if request.method == "POST" else 200, json={"id": "j1", "status": "queued"})

    real = httpx.Client.__init__

    def init(self: httpx.Client, *args: object, **kwargs: object) -> None:
        real(self, *args, **{**kwargs, "transport": httpx.MockTransport(handler)})  # type: ignore[arg-type]

    monkeypatch.setattr(httpx.Client, "__init__", init)
    code = main(["check", str(EXAMPLE), "--server", "http://stuck.invalid", "--server-timeout", "0.6", "--progress"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "job j1 queued" in err and "job j1 is still queued after" in err and "allowed 0.6 s" in err
    assert polls[0] == "POST" and polls.count("GET") >= 1
    # the environment sets the default; a bad value is a usage error
    monkeypatch.setenv("GRADHEALTH_SERVER_TIMEOUT", "0.3")
    assert main(["check", str(EXAMPLE), "--server", "http://stuck.invalid"]) == 3
    assert "allowed 0.3 s" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["check", str(EXAMPLE), "--server", "http://stuck.invalid", "--server-timeout", "-1"])
    assert exc.value.code == 2


def test_output_to_a_dash_is_refused_and_a_step_summary_without_its_file_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["check", str(EXAMPLE), "--output", "json=-"]) == 2
    assert "standard output takes the main report" in capsys.readouterr().err
    assert not (tmp_path / "-").exists()
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert main(["check", str(EXAMPLE), "--format", "github", "--step-summary"]) == 0
    assert "$GITHUB_STEP_SUMMARY is not set" in capsys.readouterr().err


def test_a_folder_sent_to_a_server_is_named_as_the_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import httpx

    empty = tmp_path / "emptyrun"
    empty.mkdir()
    # nothing to send: refused here, before any request (the service named the zip made for it)
    monkeypatch.setattr(httpx.Client, "send", lambda *a, **k: pytest.fail("sent an empty folder"))
    assert main(["check", str(empty), "--server", "http://x.invalid"]) == 2
    assert "emptyrun: the folder holds no file to check" in capsys.readouterr().err
    # a refusal of the upload names the folder, not the archive
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.bin").write_bytes(b"\\x00\\x01")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(415, json={"status": 415, "title": "Unsupported Media Type",
                                         "detail": "run.zip: no file in this archive is a log format"})

    monkeypatch.undo()
    real = httpx.Client.__init__

    def init(self: httpx.Client, *args: object, **kwargs: object) -> None:
        real(self, *args, **{**kwargs, "transport": httpx.MockTransport(handler)})  # type: ignore[arg-type]

    monkeypatch.setattr(httpx.Client, "__init__", init)
    assert main(["check", str(run), "--server", "http://x.invalid"]) == 2
    err = capsys.readouterr().err
    assert "run/: no file in this archive" in err and "run.zip" not in err
