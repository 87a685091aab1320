"""The pre-commit hooks point at a real CLI entry that takes several files, as pre-commit passes
them (its ``entry``, then the staged file names)."""

from __future__ import annotations

import re
import shlex
import subprocess

import yaml

from .helpers import BIN, ROOT, ci_env, exploding_csv, healthy_csv


def hooks() -> dict[str, dict]:
    return {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}


def run_hook(hook: dict, files: list[str], cwd) -> subprocess.CompletedProcess:
    argv = shlex.split(hook["entry"])
    assert (BIN / argv[0]).exists(), f"{argv[0]} is not a console script of this package"
    return subprocess.run([*argv, *hook.get("args", []), *files], cwd=cwd, env=ci_env(),
                          capture_output=True, text=True, timeout=300)


def test_hook_definitions():
    found = hooks()
    python_hooks = {"gradhealth", "gradhealth-logs", "gradhealth-models"}
    # each with a `language: system` twin that runs the gradhealth on PATH (newuser3 #4)
    assert set(found) == python_hooks | {f"{h}-system" for h in python_hooks}
    for hook_id, hook in found.items():
        assert hook["language"] == ("python" if hook_id in python_hooks else "system")
        assert hook.get("pass_filenames", True)
        assert shlex.split(hook["entry"])[:2] == ["gradhealth", "check"]
    spec = re.compile(found["gradhealth"]["files"])
    assert spec.search("models/encoder.gradhealth.yaml") and spec.search("a.gradhealth.json")
    assert not spec.search(".gitlab-ci.yml") and not spec.search("config.yaml")
    logs = re.compile(found["gradhealth-logs"]["files"])
    assert logs.search("runs/7/metrics.csv") and not logs.search("data/users.csv")
    # the recorder's own documented file (newuser6 #17), in both twins
    assert logs.search("run/gradients.jsonl") and found["gradhealth-logs-system"]["files"] == logs.pattern
    models = re.compile(found["gradhealth-models"]["files"])
    assert all(models.search(f) for f in ("models/net.onnx", "a.keras", "ckpt/m.h5"))
    assert not models.search("net.onnx.txt") and not models.search("models/net.gradhealth.yaml")


def test_the_hooks_check_several_files_and_fail_on_the_bad_one(tmp_path):
    (tmp_path / "training_ok.csv").write_text(healthy_csv())
    (tmp_path / "training_bad.csv").write_text(exploding_csv())
    hook = hooks()["gradhealth-logs"]
    both = run_hook(hook, ["training_ok.csv", "training_bad.csv"], tmp_path)
    assert both.returncode == 1, both.stderr
    assert "training_ok.csv" in both.stdout or "HEALTHY" in both.stdout
    assert both.stdout.count(": HEALTHY") + both.stdout.count(": UNHEALTHY") == 2
    ok = run_hook(hook, ["training_ok.csv"], tmp_path)
    assert ok.returncode == 0, ok.stderr


def test_the_spec_hook_runs_the_architecture_check(tmp_path):
    spec = tmp_path / "tiny.gradhealth.yaml"
    spec.write_text("input: {shape: [16]}\nseeds: 1\nbatch_size: 16\nlayers:\n"
                    "  - {type: linear, out_features: 16, activation: relu, init: kaiming_normal}\n"
                    "  - {type: linear, out_features: 4}\n")
    done = run_hook(hooks()["gradhealth"], [spec.name], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "HEALTHY" in done.stdout


def test_the_model_hook_checks_onnx_and_keras_files_and_fails_on_the_bad_one(tmp_path):
    import json
    import zipfile

    import torch
    from torch import nn

    from tests.analysis.onnx_models import export, mlp

    torch.manual_seed(0)
    x = torch.randn(16, 64)
    (tmp_path / "good.onnx").write_bytes(export(mlp(nn.ReLU, depth=3, he=True), x))
    (tmp_path / "bad.onnx").write_bytes(export(mlp(nn.Sigmoid), x))  # 8 sigmoid layers: vanishes
    dense = {"class_name": "Dense", "config": {"name": "d", "units": 4, "activation": "relu",
                                              "kernel_initializer": "he_normal"}}
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"name": "i", "batch_shape": [None, 16]}}, dense,
        {"class_name": "Dense", "config": {"name": "o", "units": 3, "activation": "softmax"}}]}}
    with zipfile.ZipFile(tmp_path / "small.keras", "w") as zf:
        zf.writestr("config.json", json.dumps(config))
    hook = hooks()["gradhealth-models"]
    files = ["good.onnx", "small.keras", "bad.onnx"]
    assert all(re.search(hook["files"], f) for f in files)
    both = run_hook(hook, files, tmp_path)
    assert both.returncode == 1, both.stderr
    assert both.stdout.count(": HEALTHY") + both.stdout.count(": UNHEALTHY") == 3, both.stdout
    assert "bad.onnx: UNHEALTHY" in both.stdout, both.stdout
    ok = run_hook(hook, ["good.onnx", "small.keras"], tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
