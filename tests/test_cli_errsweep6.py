"""errsweep6 H4, H8, H9: the files a user names, flags that do not apply, and ``hash-key``.

- H4: ``--baseline /dev/zero`` was read without bound and ``--baseline FIFO`` blocked for ever;
  every file the CLI reads (baseline, spec, ``fix``'s spec, a Keras file, stdin) now goes through
  one reader that takes regular files only, up to a cap, with a message per case.
- H8: ``--log-format`` on a spec was dropped and took any name; ``--baseline-decades nan`` and
  ``--baseline-fraction inf`` were accepted; a model flag on a log was refused with a sentence about
  specs; a folder or empty stdin was "no such file".
- H9: ``hash-key`` printed entries that GRADHEALTH_API_KEYS cannot hold (empty name, ``,``/``=``).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gradhealth import cli_report
from gradhealth.cli import main
from gradhealth.errors import InputFormatError

SMALL_YAML = "input: {shape: [8]}\nseeds: 1\nlayers: [{type: linear, out_features: 4}]\n"
HAS_FIFO = hasattr(os, "mkfifo")


pytestmark = pytest.mark.usefixtures("off_runner")


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "ok.yaml"
    path.write_text(SMALL_YAML)
    return path


@pytest.fixture
def no_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is simulated: every refusal here comes before the check."""
    import gradhealth.library

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("the check ran")

    monkeypatch.setattr(gradhealth.library, "check_architecture", refuse)


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and "this is a bug" not in err, err
    assert len(err.splitlines()) == 1, err
    return err


# --- H4: the one reader of user files ----------------------------------------------------------------

def test_the_reader_names_each_kind_of_path_that_is_no_readable_file(tmp_path):
    (tmp_path / "f.json").write_bytes(b"{}")
    assert cli_report.read_user_file(str(tmp_path / "f.json"), what="x", cap=10) == b"{}"
    cases = {str(tmp_path / "missing.json"): "x: no such file",
             str(tmp_path / "f.json" / "under"): "x: no such file",
             str(tmp_path): "x: is a folder, not a file"}
    if Path("/dev/zero").exists():
        cases["/dev/zero"] = "x: not a regular file (a device)"
    if HAS_FIFO:
        os.mkfifo(tmp_path / "pipe")
        cases[str(tmp_path / "pipe")] = "x: not a regular file (a named pipe)"  # opened, never blocking
    for path, message in cases.items():
        with pytest.raises(InputFormatError) as exc:
            cli_report.read_user_file(path, what="x", cap=10)
        assert exc.value.detail == message, path
        if path != str(tmp_path / "f.json" / "under"):
            assert cli_report.path_problem(path) == message.removeprefix("x: ")


def test_the_reader_refuses_a_file_over_its_cap_before_reading_it(tmp_path):
    (tmp_path / "big.json").write_bytes(b"x" * 11)
    with pytest.raises(InputFormatError, match="11 bytes, over the limit of 10 bytes"):
        cli_report.read_user_file(str(tmp_path / "big.json"), what="x", cap=10)


def _limited() -> None:
    """The child's address space is capped: a regression that reads /dev/zero fails this test
    (MemoryError, exit 3) instead of taking the test runner's memory."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))


@pytest.mark.skipif(not Path("/dev/zero").exists() or sys.platform != "linux", reason="needs /dev/zero")
def test_a_baseline_that_is_a_device_is_exit_2_at_once(spec):
    done = subprocess.run([sys.executable, "-m", "gradhealth.cli", "check", str(spec), "--baseline",
                           "/dev/zero"], capture_output=True, text=True, timeout=60, preexec_fn=_limited)
    assert done.returncode == 2, done.stderr[-500:]
    assert "--baseline /dev/zero: not a regular file (a device)" in done.stderr


@pytest.mark.skipif(not HAS_FIFO, reason="needs named pipes")
def test_a_baseline_that_is_a_named_pipe_is_exit_2_not_a_hang(spec, tmp_path):
    os.mkfifo(tmp_path / "fifo.json")
    # a subprocess: without the fix the read blocks for ever, and this must fail, not hang
    done = subprocess.run([sys.executable, "-m", "gradhealth.cli", "check", str(spec), "--baseline",
                           str(tmp_path / "fifo.json")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "fifo.json: not a regular file (a named pipe)" in done.stderr


def test_a_baseline_folder_or_one_over_the_cap_is_named(spec, tmp_path, capsys, no_check, monkeypatch):
    assert main(["check", str(spec), "--baseline", str(tmp_path)]) == 2
    assert f"--baseline {tmp_path}: is a folder, not a file" in _one_line(capsys)
    big = tmp_path / "big.json"
    big.write_text('{"findings": []}' + " " * 100)
    monkeypatch.setattr(cli_report, "MAX_BASELINE_BYTES", 64)
    assert main(["check", str(spec), "--baseline", str(big)]) == 2
    assert "over the limit of 64 bytes" in _one_line(capsys)


def test_a_spec_over_the_cap_is_refused_before_it_is_read(spec, capsys, no_check, monkeypatch):
    monkeypatch.setattr(cli_report, "MAX_SPEC_BYTES", 16)
    assert main(["check", str(spec)]) == 2
    assert "over the limit of 16 bytes" in _one_line(capsys)
    assert main(["fix", str(spec), "--remedy", "xavier_init"]) == 2
    assert "over the limit of 16 bytes" in _one_line(capsys)


# --- H8: folders, devices and empty stdin are not "no such file" -----------------------------------

@pytest.mark.parametrize("name", ["d.onnx", "d.keras", "d.h5"])
def test_a_model_path_that_is_a_folder_says_so(tmp_path, capsys, name):
    (tmp_path / name).mkdir()
    assert main(["check", str(tmp_path / name), "--no-progress"]) == 2
    err = _one_line(capsys)
    assert "is a folder, not a file" in err and "no such file" not in err


def test_fix_on_a_folder_a_device_or_a_pipe_says_which(tmp_path, capsys):
    (tmp_path / "d.yaml").mkdir()
    paths = {str(tmp_path / "d.yaml"): "is a folder, not a file"}
    if Path("/dev/zero").exists():
        paths["/dev/zero"] = "not a regular file (a device)"
    if HAS_FIFO:
        os.mkfifo(tmp_path / "p.yaml")
        paths[str(tmp_path / "p.yaml")] = "not a regular file (a named pipe)"
    for path, says in paths.items():
        assert main(["fix", path, "--remedy", "xavier_init"]) == 2
        assert says in _one_line(capsys)


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


@pytest.mark.parametrize("verb", [["check", "-"], ["fix", "-", "--remedy", "xavier_init"]])
def test_empty_stdin_says_so(monkeypatch, capsys, no_check, verb):
    _stdin(monkeypatch, b"")
    assert main(verb) == 2
    err = _one_line(capsys)
    assert "standard input is empty" in err and "no such file" not in err


def test_a_one_line_spec_on_stdin_is_read_as_a_spec_not_as_a_path(monkeypatch, capsys):
    _stdin(monkeypatch, b"input: {shape: [8]}")  # no newline: once taken for a file name
    assert main(["check", "-"]) == 2
    err = _one_line(capsys)
    assert "/layers" in err and "no such file" not in err


# --- H8: flags ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("flag, value", [("--baseline-decades", "nan"), ("--baseline-decades", "inf"),
                                         ("--baseline-decades", "-1"), ("--baseline-fraction", "inf"),
                                         ("--baseline-fraction", "nan"), ("--baseline-fraction", "x")])
def test_baseline_thresholds_must_be_finite_and_not_negative(spec, capsys, flag, value):
    with pytest.raises(SystemExit) as exit_:
        main(["check", str(spec), flag, value])
    assert exit_.value.code == 2
    assert f"{flag} takes a finite number, 0 or more" in capsys.readouterr().err


def test_baseline_thresholds_still_take_numbers():
    args = cli_report.argparse.ArgumentParser()
    cli_report.add_report_options(args)
    parsed = args.parse_args(["x", "--baseline-decades", "0", "--baseline-fraction", "0.25"])
    assert (parsed.baseline_decades, parsed.baseline_fraction) == (0.0, 0.25)


def test_an_unknown_log_format_is_a_usage_error_naming_the_formats(spec, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["check", str(spec), "--log-format", "csv"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "'csv' is no log format" in err and "tensorboard" in err


def test_log_format_on_a_spec_or_a_model_is_refused_not_dropped(spec, tmp_path, capsys, no_check):
    assert main(["check", str(spec), "--log-format", "tensorboard"]) == 2
    assert "--log-format applies to training logs (a log file, run folder or archive) only, not to a spec" \
        in _one_line(capsys)
    assert main(["check", str(tmp_path / "m.onnx"), "--log-format", "tensorboard"]) == 2
    assert "not to a model file" in _one_line(capsys)


def test_model_flags_are_refused_per_flag_and_per_input_kind(spec, tmp_path, capsys, no_check):
    assert main(["check", str(spec), "--batch-size", "4"]) == 2
    err = _one_line(capsys)
    assert "--batch-size applies to model files (.onnx; Keras .keras, .h5, config .json) only, not to a spec: " \
           "a spec carries its own `batch_size`" in err and "optimizer" not in err
    log = tmp_path / "m.csv"
    log.write_text("step,loss\n" + "".join(f"{i},0.5\n" for i in range(30)))
    assert main(["check", str(log), "--input-shape", "x=1x2"]) == 2
    err = _one_line(capsys)
    assert "--input-shape applies to model files" in err and "not to a training log" in err
    assert "spec" not in err
    assert main(["check", str(spec), "--optimizer", '{"type": "adam", "lr": 0.1}', "--loss", "mse"]) == 2
    err = _one_line(capsys)
    assert "--loss applies" in err and "a spec carries its own `optimizer`" in err


# --- H9: hash-key ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, key, says", [
    ("", "", "the name is empty"),
    ("", "a-long-random-key-0123", "the name is empty"),
    ("a,b=c", "a-long-random-key-0123", "holds ',', '='"),
    ("a=b", "a-long-random-key-0123", "holds '='"),
    (" ci", "a-long-random-key-0123", "holds ' '"),
    ("c i", "a-long-random-key-0123", "holds ' '"),
    ("ci", "", "the key is empty"),
    ("ci", "short", "the key is 5 characters long"),
])
def test_hash_key_refuses_what_cannot_be_an_entry(capsys, name, key, says):
    assert main(["hash-key", name, key]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and says in captured.err


@pytest.mark.parametrize("name", ["ci", "alice", "team-a.deploy_bot", "Zoë"])
def test_every_printed_entry_parses_back_as_itself(capsys, monkeypatch, name):
    from gradhealth.settings import Settings, hash_key

    for var in list(os.environ):
        if var.upper().startswith("GRADHEALTH_"):
            monkeypatch.delenv(var)
    key = "a-long-random-key-0123456789"
    assert main(["hash-key", name, key]) == 0
    entry = capsys.readouterr().out.strip()
    assert Settings(api_keys=entry).key_owners() == {hash_key(key): name}
    both = f"{entry},other={hash_key('another-long-key-0123')}"  # as the README joins several
    assert Settings(api_keys=both).key_owners()[hash_key(key)] == name
