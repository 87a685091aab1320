"""The command line: reports, JSON, exit codes for CI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gradhealth.cli import main
from gradhealth.core.document import Diagnosis

EXAMPLES = Path(__file__).resolve().parents[1] / "service" / "examples"


def test_json_output_is_the_diagnosis_document(capsys):
    code = main(["check", "example:relu_xavier_mlp", "--format", "json", "--seeds", "1"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1  # an error-severity finding with the default --fail-on error
    Diagnosis.model_validate(doc)
    assert {"status", "findings", "layers", "time_steps", "theory"} <= set(doc)
    finding = doc["findings"][0]
    assert {"code", "severity", "summary", "evidence", "remedies"} <= set(finding)
    assert {"before", "after", "fixed"} <= set(finding["remedies"][0]["verified"])
    assert {"name", "grad_norm", "output_grad_norm"} <= set(doc["layers"][0])


@pytest.mark.parametrize(("fail_on", "expected"), [("error", 0), ("warning", 1), ("never", 0)])
def test_fail_on_sets_the_exit_code(tmp_path, fail_on, expected, capsys):
    # 16 ReLU layers with Xavier init: chi1 = 1/2, so the ratio is 2^-7.5 ~ 5.5e-3: a warning, not an error.
    spec = tmp_path / "spec.yaml"
    spec.write_text("input: {shape: [128]}\nseeds: 2\nlayers:\n"
                    "  - {type: linear, out_features: 128, activation: relu, init: xavier_normal, repeat: 16}\n"
                    "  - {type: linear, out_features: 10}\n")
    assert main(["check", str(spec), "--fail-on", fail_on, "--no-verify"]) == expected
    out = capsys.readouterr().out
    assert "WARNING" in out and "vanishing_gradient" in out


def test_invalid_spec_exits_2_and_names_the_field(tmp_path, capsys):
    spec = tmp_path / "bad.json"
    spec.write_text('{"input": {"shape": [4]}, "layers": [{"type": "linear", "out_features": -3}]}')
    assert main(["check", str(spec)]) == 2
    assert "/layers/0/out_features" in capsys.readouterr().err


def test_invalid_spec_json_output_is_a_problem_document(tmp_path, capsys):
    spec = tmp_path / "bad.yaml"
    spec.write_text("input: {shape: [4]}\nlayers: [{type: conv2d, out_channels: 2, kernel_size: 3}]\n")
    assert main(["check", str(spec), "--format", "json"]) == 2
    problem = json.loads(capsys.readouterr().out)
    assert problem["status"] == 422 and problem["errors"][0]["pointer"] == "/layers/0"


def test_missing_file_and_unknown_example_exit_2(capsys):
    assert main(["check", "/no/such/spec.yaml"]) == 2
    assert main(["check", "example:nope"]) == 2
    assert "deep_sigmoid_mlp" in capsys.readouterr().err


def test_console_script_runs_a_check_from_stdin():
    spec = (EXAMPLES / "relu_he_mlp.yaml").read_text().replace("repeat: 30", "repeat: 10")
    done = subprocess.run([sys.executable, "-m", "gradhealth.cli", "check", "-", "--seeds", "1"],
                          input=spec, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "HEALTHY" in done.stdout


def test_schema_and_catalog_commands(capsys):
    assert main(["schema"]) == 0
    assert "layers" in json.loads(capsys.readouterr().out)["properties"]
    assert main(["catalog"]) == 0
    assert "vanishing_gradient" in {e["id"] for e in json.loads(capsys.readouterr().out)["findings"]}


DATA = Path(__file__).resolve().parent / "data" / "logs"


def test_log_file_check_in_process(capsys, tmp_path):
    assert main(["check", str(DATA / "llmc-gpt2-124m" / "main.log"), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "logs" and doc["status"] == "healthy" and doc["log"]["format"] == "text"
    bad = tmp_path / "run.jsonl"
    bad.write_text("".join(json.dumps({"step": i, "metric": "loss", "value": 1.0 if i != 5 else float("nan")})
                           + "\n" for i in range(20)))
    assert main(["check", str(bad)]) == 1
    assert "nonfinite" in capsys.readouterr().out


def test_log_check_errors_exit_2(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert main(["check", str(empty)]) == 2
    assert main(["check", str(DATA / "llmc-gpt2-124m" / "main.log"), "--log-format", "tensorboard"]) == 2
    assert "tensorboard" in capsys.readouterr().err


def _no_cuda() -> None:
    from gradhealth.devices import torch_cuda_available

    if torch_cuda_available():
        pytest.skip("this host has CUDA")


def test_cuda_in_the_spec_without_cuda_exits_2_at_device(tmp_path, capsys):
    _no_cuda()
    spec = tmp_path / "cuda.yaml"
    spec.write_text("input: {shape: [4]}\ndevice: cuda\nlayers: [{type: linear, out_features: 2}]\n")
    assert main(["check", str(spec), "--format", "json"]) == 2
    captured = capsys.readouterr()
    problem = json.loads(captured.out)
    assert problem["status"] == 422 and [e["pointer"] for e in problem["errors"]] == ["/device"]
    assert "/device" in captured.err and "cuda" in captured.err


def test_device_flag_cuda_without_cuda_exits_3_the_check_could_not_run(tmp_path, capsys):
    # Issue 14 item 1: the flag asks this machine for CUDA; the spec is fine, the environment is not.
    _no_cuda()
    spec = tmp_path / "cpu.yaml"
    spec.write_text("input: {shape: [4]}\ndevice: cpu\nlayers: [{type: linear, out_features: 2}]\n")
    assert main(["check", str(spec), "--device", "cuda"]) == 3
    err = capsys.readouterr().err
    assert "could not run" in err and "--device cuda" in err and len(err.strip().splitlines()) == 1
    assert main(["check", str(spec), "--device", "cpu", "--no-verify"]) == 0  # the flag, not the spec, was it


def test_serve_flags_override_the_environment_only_when_given():
    from gradhealth.cli import build_parser

    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.workers) == (None, None, None)  # the settings decide, at run time


def test_a_spec_that_is_not_utf8_exits_2_and_an_unreachable_server_3(tmp_path, capsys):
    spec = tmp_path / "latin1.yaml"
    spec.write_bytes("name: caf\xe9\ninput: {shape: [4]}\nlayers: [{type: linear, out_features: 2}]\n"
                     .encode("latin-1"))
    assert main(["check", "example:relu_he_mlp", "--server", "http://127.0.0.1:9"]) == 3  # port 9: discard
    assert "unreachable" in capsys.readouterr().err.lower()
    done = subprocess.run([sys.executable, "-m", "gradhealth.cli", "check", "-"], input=spec.read_bytes(),
                          capture_output=True, timeout=120)
    assert done.returncode == 2 and b"UTF-8" in done.stderr
    # the file itself, by its path: the spec's error naming the byte, not "unknown log format" (spec sweep 7)
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "not UTF-8 text at byte offset 9 (byte 0xe9)" in err and "log format" not in err


# --- issue 14: errors a CI pipeline would misread --------------------------------------------------

def _cli(*argv: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gradhealth.cli", *argv], input=stdin, capture_output=True,
                          text=True, timeout=timeout)


def test_an_unreachable_server_is_exit_3_in_one_line_without_a_traceback():
    done = _cli("check", "example:relu_he_mlp", "--server", "http://127.0.0.1:9")
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "could not run" in done.stderr and "127.0.0.1:9" in done.stderr


def test_a_server_5xx_is_exit_3_and_a_4xx_stays_exit_2(monkeypatch, capsys):
    from gradhealth.client import Client, RemoteError

    def answer(status: int):
        def check(self, spec, **kw):
            raise RemoteError({"status": status, "title": "Internal error" if status >= 500 else "Invalid spec",
                               "detail": "boom"})
        return check

    monkeypatch.setattr(Client, "check_architecture", answer(500))
    assert main(["check", "example:relu_he_mlp", "--server", "http://x.invalid"]) == 3
    assert "could not run" in capsys.readouterr().err
    monkeypatch.setattr(Client, "check_architecture", answer(422))
    assert main(["check", "example:relu_he_mlp", "--server", "http://x.invalid"]) == 2
    assert "could not run" not in capsys.readouterr().err


def test_a_simulation_that_fails_is_exit_3_without_a_traceback(monkeypatch, capsys):
    import gradhealth.library

    def fails(*args, **kwargs):
        raise RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be reported later")

    monkeypatch.setattr(gradhealth.library, "check_architecture", fails)
    assert main(["check", "example:relu_he_mlp"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out of memory" in err and "could not run" in err


def test_exit_codes_are_in_the_help_epilog():
    done = _cli("--help")
    assert done.returncode == 0
    for code in ("0", "1", "2", "3"):
        assert f"  {code}  " in done.stdout
    assert "could not run" in done.stdout
    # a spec, a model file OR a log
    assert ("spec (JSON/YAML), a model file (ONNX .onnx, Keras .keras/.h5) or a training log"
            in " ".join(done.stdout.split()))
    assert "could not run" in _cli("check", "--help").stdout


@pytest.mark.parametrize(("name", "text", "where"), [
    ("broken.yaml", "input: {shape: [4]}\nlayers:\n  - {type: linear, out_features: 2\n"
                    "  - {type: linear, out_features: 3}\n",
     # the unclosed `{` of line 3 is the mistake; the reader stopped at line 4 (newuser9 P12)
     "invalid YAML at line 3, column 5: a flow mapping opened there is not closed; at line 4, column 5"),
    ("broken.yml", "input: {shape: [4]\nlayers: []\n", "invalid YAML at line"),
    ("comma.json", '{"input": {"shape": [4]},\n "layers": [{"type": "linear", "out_features": 2},]}',
     "invalid JSON at line 2, column"),
    ("misspelt.yaml", "input: {shape: [4]}\nlayer:\n  - {type: linear, out_features: 2}\n",
     "/layer (line 2, column 1): unknown field; did you mean 'layers'?"),  # placed (newuser9 P7)
    ("misspelt.json", '{"inputs": {"shape": [4]}, "layers": [{"type": "linear", "out_featres": 2}]}',
     "did you mean 'out_features'?"),
])
def test_a_spec_file_that_does_not_parse_gets_the_spec_error_not_unknown_log_format(tmp_path, capsys, name,
                                                                                     text, where):
    path = tmp_path / name
    path.write_text(text)
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert where in err and "log format" not in err


def test_a_log_in_json_is_still_a_log(tmp_path, capsys):
    state = DATA / "hf-mistral-translator" / "trainer_state.json"
    assert main(["check", str(state), "--format", "json"]) in (0, 1)
    assert json.loads(capsys.readouterr().out)["kind"] == "logs"


@pytest.mark.parametrize("verb", ["schema", "catalog", "examples", "formats"])
def test_output_cut_short_by_its_reader_is_not_a_traceback(verb):
    # `gradhealth schema | head -1`: the reader closes the pipe after one line.
    done = subprocess.run(f"{sys.executable} -m gradhealth.cli {verb} | head -1", shell=True,
                          capture_output=True, text=True, timeout=60, executable="/bin/bash")
    assert done.stdout.count("\n") == 1
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


def test_version():
    from gradhealth import __version__

    done = _cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"gradhealth {__version__}"


# --- issue 14: small features ----------------------------------------------------------------------


def test_fix_applies_the_remedy_patch_keeping_comments_and_layout(tmp_path, capsys):
    spec = tmp_path / "net.yaml"
    original = ("# my network: keep this comment\n"
                "name: deep relu   # and this one\n"
                "input: {shape: [64]}\n"
                "seeds: 1\n"
                "layers:\n"
                "  # the hidden stack\n"
                "  - type: linear\n"
                "    out_features: 64\n"
                "    activation: relu\n"
                "    init: xavier_normal\n"
                "    repeat: 24\n"
                "  - {type: linear, out_features: 10}\n")
    spec.write_text(original)
    out = tmp_path / "fixed.yaml"
    assert main(["fix", str(spec), "--remedy", "he_init", "-o", str(out)]) == 0
    fixed = out.read_text()
    for line in original.splitlines():
        if "xavier_normal" not in line:
            assert line in fixed.splitlines(), line  # every other line, comments included, as it was
    from gradhealth.library import load_spec

    assert load_spec(str(out))["layers"][0]["init"] == {"scheme": "kaiming_normal"}
    assert "applied he_init" in capsys.readouterr().err
    # ... and the fixed spec no longer has the finding the remedy was for.
    assert main(["check", str(out), "--format", "json", "--no-verify"]) == 0
    assert "vanishing_gradient" not in {f["code"] for f in json.loads(capsys.readouterr().out)["findings"]}


def test_fix_of_a_json_spec_and_of_a_remedy_not_proposed(tmp_path, capsys):
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps({"input": {"shape": [64]}, "seeds": 1, "layers": [
        {"type": "linear", "out_features": 64, "activation": "relu", "init": "xavier_normal", "repeat": 24},
        {"type": "linear", "out_features": 10}]}))
    assert main(["fix", str(spec), "--remedy", "he_init"]) == 0
    assert json.loads(capsys.readouterr().out)["layers"][0]["init"] == {"scheme": "kaiming_normal"}
    assert main(["fix", str(spec), "--remedy", "pre_layer_norm"]) == 2
    assert "he_init" in capsys.readouterr().err  # says which spec remedies there are


def test_fix_picks_one_of_a_remedys_variants(tmp_path, capsys):
    # a long LSTM with its forget gates half shut (bias -1: 0.37 a step, under the 0.5 of shut gates; a
    # default cell's 0.6 a step is a note on its memory horizon): the gated-cell remedy comes as chrono
    # gates and as a forget bias of 1
    spec = tmp_path / "lstm.json"
    spec.write_text(json.dumps({"input": {"shape": [400, 8]}, "seeds": 1, "precision": "float32",
                                "layers": [{"type": "lstm", "hidden_size": 16, "forget_bias": -1.0},
                                           {"type": "linear", "out_features": 4}]}))
    biases = []
    for variant in (1, 2):
        assert main(["fix", str(spec), "--remedy", "gated_recurrent_cell", "--variant", str(variant)]) == 0
        biases.append(json.loads(capsys.readouterr().out)["layers"][0]["forget_bias"])
    assert biases == ["chrono", 1.0]
    assert main(["fix", str(spec), "--remedy", "gated_recurrent_cell"]) == 0
    err = capsys.readouterr().err
    assert "give the LSTM layers[0] chrono" in err and "2 variants" in err and "--variant 2: give the LSTM" in err
    assert main(["fix", str(spec), "--remedy", "gated_recurrent_cell", "--variant", "3"]) == 2
    assert "--variant takes 1 to 2" in capsys.readouterr().err


def test_examples_have_a_one_line_description(capsys):
    from gradhealth.library import example_names

    assert main(["examples"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(example_names())
    for name, line in zip(example_names(), lines, strict=True):
        label, _, description = line.partition("  ")
        assert label == f"example:{name}" and len(description.strip()) > 10, line
