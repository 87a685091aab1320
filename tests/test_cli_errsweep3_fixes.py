"""The command line's defects found by errsweep3: invalid settings at start (F7), ``fix -o`` to a
path that cannot be written (F8), hostile ``--baseline`` files (F9), and ``fix`` on YAML whose
anchors and merge keys share a node with the patched one (F10)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonpatch
import pytest
import yaml

from gradhealth.cli import main

#: A spec whose last layer merges the first one's anchor (errsweep3's cli/merge.yaml).
MERGE_YAML = """\
input: {shape: [32]}
batch_size: 16
seeds: 1
layers:
  - &blk {type: linear, out_features: 32, activation: sigmoid, init: {scheme: normal, std: 0.05}, repeat: 6}
  - {<<: *blk, out_features: 10, activation: identity, repeat: 1}
"""

SMALL_YAML = """\
input: {shape: [32]}
seeds: 1
layers:
  - {type: linear, out_features: 32, activation: sigmoid, init: {scheme: normal, std: 0.05}, repeat: 6}
  - {type: linear, out_features: 4}
"""


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err and "this is a bug" not in err, err


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No GRADHEALTH_* setting from the caller's environment, and no service that could start (a
    `serve` that got past its settings would fail the test, not listen)."""
    import os

    import gradhealth.api.app

    for name in list(os.environ):
        if name.upper().startswith("GRADHEALTH_") and name != "GRADHEALTH_STRICT" or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("GRADHEALTH_WORKERS", "0")
    monkeypatch.setenv("GRADHEALTH_UPLOAD_DIR", str(tmp_path / "uploads"))

    def no_app(*_a: object, **_k: object) -> None:
        raise AssertionError("the service was about to start")

    monkeypatch.setattr(gradhealth.api.app, "create_app", no_app)
    return monkeypatch


# --- F7: settings ----------------------------------------------------------------------------------

def test_invalid_settings_at_serve_are_exit_2_with_one_line_per_variable(clean_env, capsys):
    clean_env.setenv("GRADHEALTH_PORT", "abc")
    clean_env.setenv("GRADHEALTH_LEASE_S", "0")
    clean_env.setenv("GRADHEALTH_API_KEYS", "garbage")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    lines = err.strip().splitlines()
    assert any(line.startswith("gradhealth: GRADHEALTH_PORT: ") and "integer" in line and "'abc'" in line
               for line in lines), err
    assert any(line.startswith("gradhealth: GRADHEALTH_LEASE_S: ") and "greater than 0" in line
               for line in lines), err
    assert any(line.startswith("gradhealth: GRADHEALTH_API_KEYS: ") for line in lines), err


@pytest.mark.parametrize(("name", "url", "says"), [
    ("GRADHEALTH_DATABASE_URL", "mysql://x/y", "postgresql://"),
    ("DATABASE_URL", "mysql://x/y", "sqlite:///"),
    ("GRADHEALTH_DATABASE_URL", "postgres://u@h/db", "not postgres://"),
    ("DATABASE_URL", "gradhealth.db", "no scheme"),
])
def test_a_database_url_of_another_kind_is_refused_naming_the_variable(clean_env, capsys, name, url, says):
    clean_env.setenv(name, url)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert f"gradhealth: {name}: " in err and says in err
    assert "x/y" not in err and "u@h" not in err  # a URL may carry a password: not repeated


def test_the_database_urls_the_project_supports_are_accepted():
    from gradhealth.settings import Settings

    for url in ("sqlite://", "sqlite:///./data/g.db", "sqlite:////tmp/g.db", "postgresql://u@h/db",
                "postgresql+psycopg://u:p@h:5432/db"):
        assert Settings(database_url=url).database_url == url


def test_an_sqlite_folder_that_cannot_be_made_is_exit_2(clean_env, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    clean_env.setenv("GRADHEALTH_DATABASE_URL", f"sqlite:///{blocker}/sub/g.db")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "GRADHEALTH_DATABASE_URL: cannot create the folder" in err


def test_a_bad_flag_is_named_by_the_flag(clean_env, capsys):
    assert main(["serve", "--port", "70000"]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "gradhealth: --port: " in err and "65535" in err


def test_inverted_thresholds_are_refused(clean_env, capsys):
    clean_env.setenv("GRADHEALTH_THRESHOLDS__VANISHING_WARNING", "1e-6")
    clean_env.setenv("GRADHEALTH_THRESHOLDS__VANISHING_ERROR", "1e-2")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "GRADHEALTH_THRESHOLDS__VANISHING_WARNING" in err and "inverted" in err


def test_a_bad_setting_read_by_check_is_exit_2_too(clean_env, tmp_path, capsys):
    spec = tmp_path / "net.yaml"
    spec.write_text(SMALL_YAML)
    clean_env.setenv("GRADHEALTH_THREADS", "many")
    assert main(["check", str(spec), "--no-verify"]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "GRADHEALTH_THREADS: " in err and "'many'" in err


def test_unknown_gradhealth_variables_are_a_warning_with_the_closest_name(clean_env, capsys):
    from gradhealth.settings import unknown_variables

    lines = unknown_variables({"GRADHEALTH_LIMIT__MAX_UNITS": "5", "GRADHEALTH_PROT": "1",
                               "GRADHEALTH_API_KEY": "k", "GRADHEALTH_PORT": "9", "HOME": "/",
                               "GRADHEALTH_ZZZ": "1"})
    assert lines == [
        "GRADHEALTH_LIMIT__MAX_UNITS is not a setting and is ignored; did you mean GRADHEALTH_LIMITS__MAX_UNITS?",
        "GRADHEALTH_PROT is not a setting and is ignored; did you mean GRADHEALTH_PORT?",
        "GRADHEALTH_ZZZ is not a setting and is ignored"]
    # at start it is a warning, not the failure (here the bad port is)
    clean_env.setenv("GRADHEALTH_LIMIT__MAX_UNITS", "5")
    clean_env.setenv("GRADHEALTH_PORT", "abc")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "gradhealth: warning: GRADHEALTH_LIMIT__MAX_UNITS is not a setting" in err
    assert "GRADHEALTH_PORT: " in err


# --- F8: fix -o ------------------------------------------------------------------------------------

def _no_check(monkeypatch: pytest.MonkeyPatch) -> None:
    import gradhealth.library

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("the check ran before the output path was checked")

    monkeypatch.setattr(gradhealth.library, "check_architecture", refuse)


@pytest.mark.parametrize("where", ["folder", "under-a-file"])
def test_fix_to_an_unwritable_output_is_exit_2_before_the_check(tmp_path, capsys, monkeypatch, where):
    spec = tmp_path / "net.yaml"
    spec.write_text(SMALL_YAML)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = tmp_path if where == "folder" else blocker / "fixed.yaml"
    _no_check(monkeypatch)
    assert main(["fix", str(spec), "--remedy", "xavier_init", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert err.strip().splitlines() == [err.strip()] and f"cannot write the fixed spec to {out}" in err


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_fix_whose_write_fails_is_exit_2_in_one_line(tmp_path, capsys):
    spec = tmp_path / "net.yaml"
    spec.write_text(SMALL_YAML)
    assert main(["fix", str(spec), "--remedy", "xavier_init", "-o", "/dev/full"]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "cannot write the fixed spec to /dev/full" in err


# --- F9: --baseline --------------------------------------------------------------------------------

def _baseline(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str],
              monkeypatch: pytest.MonkeyPatch) -> str:
    """Run `check --baseline` with ``text`` as the baseline (the check itself must not run)."""
    spec = tmp_path / "net.yaml"
    spec.write_text(SMALL_YAML)
    _no_check(monkeypatch)
    path = tmp_path / "base.json"
    path.write_text(text)
    assert main(["check", str(spec), "--no-verify", "--baseline", str(path)]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    return err


def _doc(**fields: object) -> dict[str, object]:
    return {"schema_version": "1", "kind": "architecture", "name": "n", "status": "healthy",
            "summary": "s", "findings": [], **fields}


def test_a_deeply_nested_baseline_is_exit_2_with_a_pointer(tmp_path, capsys, monkeypatch):
    err = _baseline(tmp_path, "[" * 100_000 + "]" * 100_000, capsys, monkeypatch)
    assert "nested more than" in err and "at /0/0/0" in err


def test_deep_nesting_inside_an_object_is_placed(tmp_path, capsys, monkeypatch):
    text = json.dumps(_doc(simulation={"a/b": [{"k": 0}]}))
    text = text.replace('{"k": 0}', '{"k": ' + "[" * 200 + "]" * 200 + "}")
    err = _baseline(tmp_path, text, capsys, monkeypatch)
    assert "at /simulation/a~1b/0/k/0/0" in err


def test_a_baseline_schema_error_names_its_place(tmp_path, capsys, monkeypatch):
    err = _baseline(tmp_path, json.dumps(_doc(findings=[{"code": "x", "severity": "catastrophic"}])),
                    capsys, monkeypatch)
    assert "/findings/0/severity: should be 'info', 'warning' or 'error' (got 'catastrophic')" in err
    assert "/findings/0/summary: required but missing" in err


def test_a_huge_integer_in_a_baseline_is_placed_not_pythons_message(tmp_path, capsys, monkeypatch):
    text = json.dumps(_doc(simulation={"seeds": 7})).replace('"seeds": 7', '"seeds": ' + "9" * 5000)
    err = _baseline(tmp_path, text, capsys, monkeypatch)
    assert "set_int_max_str_digits" not in err
    assert "at /simulation/seeds: an integer of 5000 digits" in err


def test_a_well_formed_baseline_is_still_read(tmp_path):
    from gradhealth.cli_report import load_baseline

    path = tmp_path / "base.json"
    patch_value = {"a": [[[[[[[[1]]]]]]]]}
    path.write_text(json.dumps({"id": "j", "result": _doc(findings=[{
        "code": "vanishing_gradient", "severity": "error", "summary": "s", "explanation": "e",
        "evidence": {}, "remedies": [{"id": "he_init", "title": "t", "rationale": "r", "change": "c", "snippet": "s",
                                      "patch": [{"op": "add", "path": "/x", "value": patch_value}]}]}])}))
    doc = load_baseline(str(path))
    assert doc.findings[0].remedies[0].patch[0]["value"] == patch_value


# --- F10: fix with YAML anchors and merge keys -----------------------------------------------------

def test_fix_changes_only_the_layer_it_names_when_an_anchor_is_merged(tmp_path, capsys):
    spec = tmp_path / "merge.yaml"
    spec.write_text(MERGE_YAML)
    out = tmp_path / "fixed.yaml"
    assert main(["fix", str(spec), "--remedy", "relu_family_activation", "-o", str(out)]) == 0
    capsys.readouterr()
    raw, got = yaml.safe_load(MERGE_YAML), yaml.safe_load(out.read_text())
    assert got["layers"][1] == raw["layers"][1]  # the layer that merges the anchor keeps its values
    assert got["layers"][0]["activation"] != raw["layers"][0]["activation"]


@pytest.mark.parametrize(("text", "patch"), [
    (MERGE_YAML, [{"op": "replace", "path": "/layers/1/init/scheme", "value": "xavier_normal"}]),
    (MERGE_YAML, [{"op": "replace", "path": "/layers/0/activation", "value": "relu"},
                  {"op": "replace", "path": "/layers/0/init", "value": {"scheme": "kaiming_normal"}}]),
    ("input: {shape: [8]}\n# keep me\nlayers:\n"
     "  - {type: linear, out_features: 8, init: &i {scheme: normal, std: 0.05}}  # first\n"
     "  - type: linear\n    out_features: 4\n    init: *i\n",
     [{"op": "remove", "path": "/layers/0/init/std"},
      {"op": "replace", "path": "/layers/0/init/scheme", "value": "xavier_normal"}]),
])
def test_the_written_yaml_reads_back_as_the_patched_spec(text, patch):
    from gradhealth.cli import apply_patch_to_text

    def tree(value: object) -> object:  # the YAML reader shares aliased objects: rebuild
        return json.loads(json.dumps(value))

    fixed = apply_patch_to_text(text, patch, is_json=False)
    assert yaml.safe_load(fixed) == jsonpatch.apply_patch(tree(yaml.safe_load(text)), patch)


def test_fix_refuses_when_the_yaml_cannot_keep_the_patch(tmp_path, capsys, monkeypatch):
    import gradhealth.cli

    monkeypatch.setattr(gradhealth.cli, "_unshare", lambda *_a: None)  # as before the fix
    spec = tmp_path / "merge.yaml"
    spec.write_text(MERGE_YAML)
    out = tmp_path / "fixed.yaml"
    assert main(["fix", str(spec), "--remedy", "relu_family_activation", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "would also change /layers/1/" in err and "apply this patch by hand" in err
    assert not out.exists()


def test_serve_with_an_upload_folder_it_cannot_make_is_exit_2_before_binding(clean_env, capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    clean_env.setenv("GRADHEALTH_UPLOAD_DIR", str(blocker / "uploads"))  # under a file: cannot be made
    clean_env.setenv("GRADHEALTH_DATABASE_URL", f"sqlite:///{tmp_path}/gh.db")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "GRADHEALTH_UPLOAD_DIR" in err and len(err.strip().splitlines()) == 1, err
