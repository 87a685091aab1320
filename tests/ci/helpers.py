"""Builders for the CI tests: training logs with a known verdict, a spec, a temporary git checkout,
and runners that execute the GitHub Action's and the GitLab template's own shell lines the way
those systems do."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv's bin: gradhealth is on PATH there
# A small vanishing net (8 sigmoid layers, std 0.05): unhealthy in a few seconds of simulation.
VANISHING_YAML = """\
# a deliberately bad init
input: {shape: [32]}
seeds: 1
batch_size: 32
layers:
  - type: linear
    out_features: 32
    activation: sigmoid
    init: {scheme: normal, std: 0.05}
    repeat: 8
  - type: linear
    out_features: 4
"""


def exploding_csv() -> str:
    """A run whose gradient norm grows 10x every 8 steps from step 120 and whose loss turns NaN:
    the log check reports errors (nonfinite, exploding_gradient), so the check exits 1."""
    rows = ["step,loss,grad_norm"]
    for s in range(1, 201):
        g = 1.0 if s < 120 else 10 ** ((s - 120) / 8)
        loss = 2.0 - 0.005 * s if s < 150 else (math.nan if s > 190 else 2.0 + (s - 150) * 0.5)
        rows.append(f"{s},{loss},{g}")
    return "\n".join(rows) + "\n"


def healthy_csv() -> str:
    """A run with a smoothly decaying loss and a steady gradient norm: no finding at all."""
    rows = ["step,loss,grad_norm"]
    for s in range(1, 201):
        rows.append(f"{s},{2.0 * math.exp(-s / 100) + 0.1},{1.0 + 0.05 * math.sin(s)}")
    return "\n".join(rows) + "\n"


def git_checkout(tmp_path: Path, files: dict[str, str]) -> Path:
    """A git repository with ``files`` committed, as actions/checkout leaves the workspace."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git = ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.invalid"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "input"], cwd=repo, check=True)
    return repo


def ci_env(**extra: str) -> dict[str, str]:
    """The process environment without this machine's GitHub/GitLab/gradhealth variables, with
    the venv's gradhealth first on PATH."""
    drop = ("GITHUB_", "GRADHEALTH_", "CI_", "RUNNER_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop) and k != "CI"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


# --- GitHub Actions ---------------------------------------------------------------------------

_EXPR = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


def action() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "action.yml").read_text())


def _value(expr: str, inputs: dict[str, str], github: dict[str, str]) -> str:
    scope, _, name = expr.partition(".")
    if scope == "inputs":
        return inputs[name]
    if scope == "github":
        return github[name]
    raise AssertionError(f"an expression this runner does not know: {expr}")


def _condition(expr: str, inputs: dict[str, str]) -> bool:
    """The `if:` conditions action.yml uses: ``inputs.NAME == 'VALUE'`` (or none)."""
    m = re.fullmatch(r"inputs\.([\w-]+) == '([^']*)'", expr.strip())
    assert m, f"an if: this runner does not know: {expr}"
    return inputs[m.group(1)] == m.group(2)


def run_action(workspace: Path, with_: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    """Run action.yml's steps as the runner would: inputs with their defaults, ``${{ }}``
    substituted, each ``run:`` in ``bash --noprofile --norc -eo pipefail`` in the workspace with the
    GITHUB_* files; a ``uses:`` step must be skipped by its ``if:`` (install: false). Stops at the
    first failing step, as a job does."""
    spec = action()
    inputs = {k: str(v.get("default", "")) for k, v in spec["inputs"].items()}
    unknown = set(with_) - set(inputs)
    assert not unknown, f"not inputs of the action: {unknown}"
    inputs.update(with_)
    for name, decl in spec["inputs"].items():
        assert not decl.get("required") or inputs[name], f"required input {name} missing"
    summary, output = tmp_path / "step_summary.md", tmp_path / "github_output"
    summary.touch()
    output.touch()
    github = {"action_path": str(ROOT), "workspace": str(workspace)}
    env = ci_env(GITHUB_ACTIONS="true", CI="true", GITHUB_WORKSPACE=str(workspace),
                 GITHUB_STEP_SUMMARY=str(summary), GITHUB_OUTPUT=str(output),
                 GITHUB_ACTION_PATH=str(ROOT), RUNNER_TEMP=str(tmp_path))
    result: dict[str, Any] = {"steps": [], "summary": summary, "rc": 0}
    for step in spec["runs"]["steps"]:
        if "if" in step and not _condition(step["if"], inputs):
            result["steps"].append((step.get("name"), "skipped"))
            continue
        assert "uses" not in step, f"step {step.get('name')} needs the network: make it skippable"
        assert step.get("shell") == "bash"
        def sub(text: str) -> str:
            return _EXPR.sub(lambda m: _value(m.group(1), inputs, github), str(text))
        step_env = {**env, **{k: sub(v) for k, v in (step.get("env") or {}).items()}}
        script = tmp_path / f"step{len(result['steps'])}.sh"
        script.write_text(sub(step["run"]))
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                              cwd=workspace, env=step_env, capture_output=True, text=True, timeout=600)
        result["steps"].append((step.get("name"), done.returncode))
        result["stdout"] = result.get("stdout", "") + done.stdout
        result["stderr"] = result.get("stderr", "") + done.stderr
        if done.returncode:
            result["rc"] = done.returncode
            break
    result["outputs"] = dict(line.split("=", 1) for line in output.read_text().splitlines() if line)
    return result


# --- GitLab CI --------------------------------------------------------------------------------


def gitlab_template() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "ci" / "gitlab" / "gradhealth.gitlab-ci.yml").read_text())


def run_gitlab_job(workspace: Path, variables: dict[str, str]) -> subprocess.CompletedProcess:
    """Run the template's job as a shell runner would: the template's variables overridden by
    ``variables``, $VARS expanded by the shell, before_script then script in one shell with
    ``set -eo pipefail`` (the job stops at the first failing line), in the checkout."""
    template = gitlab_template()
    job = template["gradhealth"]
    env = ci_env(CI="true", GITLAB_CI="true", CI_PROJECT_DIR=str(workspace))
    env.update({k: str(v) for k, v in template["variables"].items()})
    env.update(variables)
    lines = [*job.get("before_script", []), *job["script"]]
    script = "set -eo pipefail\n" + "\n".join(lines) + "\n"
    assert shutil.which("bash")
    return subprocess.run(["bash", "--noprofile", "--norc", "-c", script], cwd=workspace, env=env,
                          capture_output=True, text=True, timeout=600)


def validate_sarif(log: dict[str, Any]) -> None:
    """Against the vendored official SARIF 2.1.0 schema."""
    import json

    import jsonschema

    schema = json.loads((ROOT / "service" / "report" / "schemas" / "sarif-schema-2.1.0.json").read_text())
    jsonschema.Draft4Validator(schema).validate(log)
