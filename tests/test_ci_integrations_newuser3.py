"""newuser3's CI-integration defects, run through the real scripts: the GitHub Action's and the
GitLab template's own shell lines (bash) with the venv's gradhealth, in a git checkout in tmp_path;
the pre-commit hooks' definitions and entries."""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.ci.helpers import (
    BIN,
    ROOT,
    VANISHING_YAML,
    ci_env,
    exploding_csv,
    git_checkout,
    gitlab_template,
    healthy_csv,
    run_action,
    run_gitlab_job,
)

NO_INSTALL = {"install": "false"}
ANNOTATION = re.compile(r"^::(error|warning|notice)[ :]", re.M)


def _rename_to_main(repo: Path, out: str = "gradhealth-results") -> Path:
    main = repo / "main-results"
    (repo / out).rename(main)
    return main


# --- #2: a baseline folder's documents are named by the input's path, not its place -----------


def test_action_baseline_folder_survives_an_input_added_before_the_others(tmp_path):
    repo = git_checkout(tmp_path, {"logs/b.csv": exploding_csv(), "logs/c.csv": exploding_csv()})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = run_action(repo, {**NO_INSTALL, "path": "logs/*.csv"}, tmp_path / "a")
    assert first["rc"] == 1
    main = _rename_to_main(repo)
    assert sorted(p.name for p in main.glob("*.json")) == ["logs_b.csv.json", "logs_c.csv.json"]
    (repo / "logs/a.csv").write_text(healthy_csv())  # a new input, first in the glob's order
    again = run_action(repo, {**NO_INSTALL, "path": "logs/*.csv", "fail-on": "new",
                              "baseline": "main-results"}, tmp_path / "b")
    assert again["rc"] == 0, again["stdout"] + again["stderr"]
    # the log says which document each input was compared with
    assert "gradhealth: logs/b.csv: baseline main-results/logs_b.csv.json" in again["stdout"]
    assert "gradhealth: logs/c.csv: baseline main-results/logs_c.csv.json" in again["stdout"]
    assert "no logs_a.csv.json in main-results: every finding of logs/a.csv counts as new" in again["stdout"]


def test_gitlab_baseline_folder_survives_reordered_inputs(tmp_path):
    repo = git_checkout(tmp_path, {"logs/b.csv": exploding_csv(), "logs/c.csv": exploding_csv(),
                                   "logs/a.csv": healthy_csv()})
    first = run_gitlab_job(repo, {"GRADHEALTH_PATHS": "logs/b.csv logs/c.csv", "GRADHEALTH_INSTALL": "false"})
    assert first.returncode == 1, first.stdout + first.stderr
    _rename_to_main(repo)
    again = run_gitlab_job(repo, {"GRADHEALTH_PATHS": "logs/a.csv logs/c.csv logs/b.csv",
                                  "GRADHEALTH_INSTALL": "false", "GRADHEALTH_FAIL_ON": "new",
                                  "GRADHEALTH_BASELINE": "main-results"})
    assert again.returncode == 0, again.stdout + again.stderr
    assert "gradhealth: logs/c.csv: baseline main-results/logs_c.csv.json" in again.stdout
    assert "gradhealth: logs/b.csv: baseline main-results/logs_b.csv.json" in again.stdout


def test_action_reads_an_older_folders_numbered_names_even_reordered(tmp_path):
    # a folder left by the version that named documents N-<path>.json keeps working
    repo = git_checkout(tmp_path, {"logs/b.csv": exploding_csv(), "logs/c.csv": exploding_csv()})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = run_action(repo, {**NO_INSTALL, "path": "logs/b.csv logs/c.csv"}, tmp_path / "a")
    assert first["rc"] == 1
    main = _rename_to_main(repo)
    for f in main.iterdir():
        f.unlink() if f.suffix == ".sarif" else None
    (main / "logs_b.csv.json").rename(main / "1-logs_b.csv.json")
    (main / "logs_c.csv.json").rename(main / "2-logs_c.csv.json")
    again = run_action(repo, {**NO_INSTALL, "path": "logs/c.csv logs/b.csv", "fail-on": "new",
                              "baseline": "main-results"}, tmp_path / "b")
    assert again["rc"] == 0, again["stdout"] + again["stderr"]
    assert "gradhealth: logs/c.csv: baseline main-results/2-logs_c.csv.json" in again["stdout"]
    assert "gradhealth: logs/b.csv: baseline main-results/1-logs_b.csv.json" in again["stdout"]


def test_paths_that_sanitise_alike_get_their_own_documents(tmp_path):
    # "logs/a_b.csv", "logs/a b.csv" and "logs_a/b.csv" all sanitise to logs_a_b.csv: a hash of the
    # path tells them apart; a path that sanitises without loss keeps its plain name
    repo = git_checkout(tmp_path, {"logs/a_b.csv": healthy_csv(), "logs/a b.csv": healthy_csv(),
                                   "logs_a/b.csv": healthy_csv(), "./logs/plain.csv": healthy_csv()})
    run = run_action(repo, {**NO_INSTALL, "path": "logs/a_b.csv\nlogs/a b.csv\nlogs_a/b.csv\n./logs/plain.csv"},
                     tmp_path)
    assert run["rc"] == 0, run["stdout"] + run["stderr"]
    names = sorted(p.name for p in (repo / "gradhealth-results").glob("*.json"))
    assert len(names) == 4, names
    assert "logs_plain.csv.json" in names  # "./" dropped: not a hidden file
    hashed = [n for n in names if n != "logs_plain.csv.json"]
    assert all(re.fullmatch(r"logs_a_b\.csv-[0-9a-f]{8}\.json", n) for n in hashed), hashed


# --- #3: a single-file baseline is given only to the inputs of its kind -----------------------


def _trainer_state() -> str:
    """A healthy Hugging Face trainer_state.json: a log whose name (.json) does not say its kind."""
    history = [{"step": s, "loss": 2.0 * math.exp(-s / 100) + 0.1, "grad_norm": 1.0 + 0.05 * math.sin(s),
                "learning_rate": 1e-4} for s in range(1, 201)]
    return json.dumps({"global_step": 200, "log_history": history})


def test_action_header_example_with_a_single_architecture_baseline(tmp_path):
    header = (ROOT / "action.yml").read_text().split("\nname:")[0]
    assert "main-diagnosis.json" not in header and "baseline: main-results" in header
    repo = git_checkout(tmp_path, {"models/v.yaml": VANISHING_YAML, "logs/run-42/metrics.csv": healthy_csv(),
                                   "logs/run-43/trainer_state.json": _trainer_state()})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = run_action(repo, {**NO_INSTALL, "path": "models/v.yaml"}, tmp_path / "a")
    assert first["rc"] == 1
    doc = next((repo / "gradhealth-results").glob("*.json"))
    (repo / "main-diagnosis.json").write_text(doc.read_text())
    paths = "models/v.yaml logs/run-42/metrics.csv logs/run-43/trainer_state.json"
    run = run_action(repo, {**NO_INSTALL, "path": paths, "fail-on": "new", "baseline": "main-diagnosis.json"},
                     tmp_path / "b")
    assert run["rc"] == 0, run["stdout"] + run["stderr"]
    # every input has its SARIF for code scanning; the spec was compared, the logs were not
    assert len(list((repo / "gradhealth-results").glob("*.sarif"))) == 3
    assert "gradhealth: models/v.yaml: baseline main-diagnosis.json" in run["stdout"]
    notices = [ln for ln in run["stdout"].splitlines() if ln.startswith("::notice title=gradhealth baseline::")]
    assert len(notices) == 2, run["stdout"]
    assert any("logs/run-42/metrics.csv is checked without a baseline" in n and "a log check" in n
               for n in notices)
    assert any("logs/run-43/trainer_state.json is checked without a baseline" in n for n in notices)
    summary = run["summary"].read_text()
    assert summary.count("0 new, 0 worse") == 1 and summary.count("Gradient Health:") == 3


def test_gitlab_single_log_baseline_is_not_given_to_a_model_or_spec(tmp_path):
    repo = git_checkout(tmp_path, {"logs/a.csv": exploding_csv(), "models/v.yaml": VANISHING_YAML})
    first = run_gitlab_job(repo, {"GRADHEALTH_PATHS": "logs/a.csv", "GRADHEALTH_INSTALL": "false"})
    assert first.returncode == 1
    doc = repo / "gradhealth-results" / "logs_a.csv.json"  # the document, not the Code Quality file
    (repo / "main.json").write_text(doc.read_text())
    shutil.rmtree(repo / "gradhealth-results")
    run = run_gitlab_job(repo, {"GRADHEALTH_PATHS": "models/v.yaml logs/a.csv", "GRADHEALTH_INSTALL": "false",
                                "GRADHEALTH_FAIL_ON": "never", "GRADHEALTH_BASELINE": "main.json"})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "models/v.yaml is checked without a baseline" in run.stdout
    assert len(list((repo / "gradhealth-results").glob("*.junit.xml"))) == 2


# --- #10: the Action's annotations are capped across its inputs ------------------------------


def test_action_caps_annotations_across_inputs_as_one_cli_call_does(tmp_path):
    files = {f"logs/run{i:02d}.csv": exploding_csv() for i in range(7)}
    repo = git_checkout(tmp_path, files)
    run = run_action(repo, {**NO_INSTALL, "path": "logs/*.csv"}, tmp_path)
    assert run["rc"] == 1
    shown = [ln for ln in run["stdout"].splitlines() if ANNOTATION.match(ln)]
    assert sum(ln.startswith("::error") for ln in shown) == 10, shown
    one = subprocess.run(["gradhealth", "check", *sorted(files), "--format", "github", "--no-progress"],
                         cwd=repo, env=ci_env(), capture_output=True, text=True, timeout=300)
    expected = [ln for ln in one.stdout.splitlines() if ANNOTATION.match(ln)]
    assert expected[-1].startswith("::notice title=gradhealth%3A more findings::")
    assert shown == expected


# --- #4, #17: pre-commit hooks ------------------------------------------------------------


def _hooks() -> dict[str, dict]:
    return {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}


def test_each_python_hook_has_a_system_twin_that_runs_gradhealth_on_path(tmp_path):
    hooks = _hooks()
    for hook_id in ("gradhealth", "gradhealth-logs", "gradhealth-models"):
        twin = hooks[f"{hook_id}-system"]
        assert twin["language"] == "system"
        for key in ("entry", "files", "types_or", "require_serial"):
            assert twin.get(key) == hooks[hook_id].get(key), (hook_id, key)
    (tmp_path / "training_bad.csv").write_text(exploding_csv())
    hook = hooks["gradhealth-logs-system"]
    argv = shlex.split(hook["entry"])
    assert (BIN / argv[0]).exists()
    done = subprocess.run([*argv, "training_bad.csv"], cwd=tmp_path, env=ci_env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1 and "UNHEALTHY" in done.stdout


def test_the_models_hook_comment_says_stored_weights_are_used():
    text = (ROOT / ".pre-commit-hooks.yaml").read_text()
    assert "only the config is read" not in text
    assert "weights" in text.split("- id: gradhealth-models")[0].rsplit("\n- id:", 1)[-1]


# --- #5: the GitLab template installs what it documents ---------------------------------------


def _stub_path(tmp_path: Path, log: Path) -> Path:
    """A PATH with no git: stubs of python and apt-get that record their arguments."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    bash = shutil.which("bash")
    for name in ("python", "apt-get"):
        stub = stubs / name
        stub.write_text(f'#!{bash}\necho "${{0##*/}} $*" >> "{log}"\n')
        stub.chmod(0o755)
    return stubs


def _before_script(tmp_path: Path, variables: dict[str, str]) -> subprocess.CompletedProcess:
    template = gitlab_template()
    env = {**{k: str(v) for k, v in template["variables"].items()}, **variables}
    script = "set -eo pipefail\n" + "\n".join(template["gradhealth"]["before_script"]) + "\n"
    return subprocess.run([shutil.which("bash") or "bash", "--noprofile", "--norc", "-c", script],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_gitlab_template_installs_git_and_cpu_torch_before_a_git_url(tmp_path):
    log = tmp_path / "calls.log"
    stubs = _stub_path(tmp_path, log)
    url = "git+https://github.com/OWNER/gradient-health"
    done = _before_script(tmp_path, {"PATH": str(stubs), "GRADHEALTH_PACKAGE": url})
    assert done.returncode == 0, done.stdout + done.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "apt-get update -qq"
    assert calls[1].startswith("apt-get install") and " git" in calls[1]
    assert calls[2] == "python -m pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
    assert calls[3] == f"python -m pip install -q {url}"


def test_gitlab_template_without_a_package_says_it_is_not_on_pypi(tmp_path):
    log = tmp_path / "calls.log"
    stubs = _stub_path(tmp_path, log)
    done = _before_script(tmp_path, {"PATH": str(stubs)})
    assert done.returncode == 2
    assert "GRADHEALTH_PACKAGE" in done.stdout and "not on PyPI" in done.stdout
    assert not log.exists()  # nothing installed
    header = (ROOT / "ci" / "gitlab" / "gradhealth.gitlab-ci.yml").read_text().split("\nvariables:")[0]
    assert 'GRADHEALTH_PACKAGE: "git+https://' in header
