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
