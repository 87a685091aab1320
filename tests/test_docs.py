"""The documentation and the code agree: every finding code, remedy id, CLI verb and option,
endpoint, log format, example and setting the code has is documented, and the documentation names none
the code lacks.

The documentation is README.md (the entry page) and the docs/*.md pages (tests/helpers.py's
``documentation()``). Each check reads its own reference section (a table, one subsection per code or
format, or the command-line text) and compares it, in both directions, with the registry the code
actually uses, so renaming or adding something on either side alone fails here.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import BaseModel

from gradhealth.cli import build_parser, example_names
from gradhealth.core.catalog import FINDINGS, REMEDIES
from gradhealth.core.rules import codes
from gradhealth.settings import Settings
from tests.helpers import DOCUMENTATION_FILES, ROOT, doc_section, documentation

#: The entry page alone: its opening example and its Python API snippet live there.
README = (ROOT / "README.md").read_text()
#: README.md and every docs/*.md page.
DOCS = documentation()

_HEADING = re.compile(r"^(#{1,6}) (.+?)\s*$", re.MULTILINE)
_TICKED = re.compile(r"`([^`]+)`")
#: A heading that is only back-ticked names (one subsection per finding code or log format).
_KEY_HEADING = re.compile(r"^#{2,6} (`[^`]+`(?:,? `[^`]+`)*)\s*$", re.MULTILINE)


def section(title: str) -> str:
    """The documentation's text under the heading ``title`` up to the next heading of any level."""
    return doc_section(title, DOCS)


def keys(title: str) -> set[str]:
    """The names a reference section documents: the first cells of its tables and the headings of
    its subsections that are only back-ticked names (a code or a format with its text below)."""
    whole = doc_section(title, DOCS, subsections=True)
    return table_keys(section(title)) | {name for heading in _KEY_HEADING.findall(whole)
                                         for name in _TICKED.findall(heading)}


def table_keys(text: str) -> set[str]:
    """The back-ticked names in the first cell of every body row of the tables in ``text``."""
    keys: set[str] = set()
    for line in text.splitlines():
        cells = re.split(r"(?<!\\)\|", line.strip())
        if not line.lstrip().startswith("|") or len(cells) < 3 or set(cells[1].strip()) <= {"-", ":"}:
            continue
        keys.update(_TICKED.findall(cells[1]))
    return keys


def agree(documented: set[str], actual: set[str], what: str) -> None:
    """Fail with what is missing from the documentation and what it names that the code lacks."""
    assert documented == actual, (f"{what}: undocumented {sorted(actual - documented)}, "
                                  f"documented but unknown to the code {sorted(documented - actual)}")


def test_the_finding_registry_and_the_catalog_agree() -> None:
    assert set(codes()) == set(FINDINGS)


def test_the_finding_code_tables_list_exactly_the_catalog() -> None:
    documented = keys("Finding codes") | keys("Findings over time")
    agree(documented, set(FINDINGS), "finding codes")


def test_the_remedy_table_lists_exactly_the_catalog() -> None:
    agree(keys("Remedies"), set(REMEDIES), "remedy ids")


def _verbs() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_cli_verb_and_option_is_documented() -> None:
    text = " ".join(section("Command line").split())   # a verb may wrap onto the next line
    verbs = _verbs()
    assert {"check", "serve", "worker"} <= set(verbs)   # the parser really was read
    for verb, parser in verbs.items():
        assert f"gradhealth {verb}" in text, f"`gradhealth {verb}` is not in docs/cli.md's Command line"
        for action in parser._actions:
            if action.option_strings and not isinstance(action, argparse._HelpAction):
                assert any(re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", text)
                           for o in action.option_strings), f"gradhealth {verb} {action.option_strings}"


def _endpoint(method: str, path: str) -> str:
    """``GET /v1/jobs/{}``: parameter names differ between prose and code (``{id}``, ``{job_id}``)."""
    return method.upper() + " " + re.sub(r"\{[^}]*\}", "{}", path)


def test_the_http_api_section_lists_exactly_the_openapi_endpoints(tmp_path: Path) -> None:
    from gradhealth.api.app import create_app

    settings = Settings(database_url=f"sqlite:///{tmp_path}/docs.db", upload_dir=str(tmp_path), workers=0)
    paths = create_app(settings, start_workers=False).openapi()["paths"]
    actual = {_endpoint(m, p) for p, ops in paths.items() for m in ops
              if m in ("get", "post", "put", "patch", "delete")}
    documented = {_endpoint(m, p) for m, p in
                  re.findall(r"\b(GET|POST|PUT|PATCH|DELETE) (/[^\s`|,?]*)", section("HTTP API"))}
    assert "POST /v1/checks/architecture" in actual
    agree(documented, actual, "endpoints")


def test_the_log_format_table_lists_exactly_the_registered_readers() -> None:
    from gradhealth.logs.readers.registry import formats

    agree(keys("The log check"), set(formats()), "log formats")


def test_the_example_table_lists_exactly_the_bundled_examples() -> None:
    agree(keys("Examples"), set(example_names()), "examples")


def _documented_variables() -> set[str]:
    """Every GRADHEALTH_ variable in the Settings table; `__X` after a nested one shares its prefix."""
    found: set[str] = set()
    for line in section("Settings").splitlines():
        cells = line.split("|")
        if len(cells) < 3:
            continue
        prefix = ""
        for name in _TICKED.findall(cells[1]):
            if name.startswith("GRADHEALTH_"):
                found.add(name)
                prefix = name.split("__")[0] if "__" in name else ""
            elif name.startswith("__") and prefix:
                found.add(prefix + name)
    return found


def _setting_variables() -> set[str]:
    """The environment variable of every setting, nested models expanded as pydantic-settings reads them."""
    out: set[str] = set()
    for name, field in Settings.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            out.update(f"GRADHEALTH_{name.upper()}__{sub.upper()}" for sub in kind.model_fields)
        else:
            out.add(f"GRADHEALTH_{name.upper()}")
    return out


def test_the_settings_table_lists_exactly_the_settings() -> None:
    actual = _setting_variables()
    assert "GRADHEALTH_THRESHOLDS__VANISHING_ERROR" in actual   # nested models were expanded
    agree(_documented_variables(), actual, "settings")


@pytest.mark.parametrize(("row", "check"), [
    ("### `post_ln_depth_risk`", test_the_finding_code_tables_list_exactly_the_catalog),
    ("| `he_init` |", test_the_remedy_table_lists_exactly_the_catalog),
    ("## `tensorboard`", test_the_log_format_table_lists_exactly_the_registered_readers),
    ("| `GRADHEALTH_LEASE_S` |", test_the_settings_table_lists_exactly_the_settings),
])
def test_a_row_dropped_from_the_readme_is_noticed(row: str, check: Callable[[], None],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The table and subsection parsing is not vacuous: without one documented row or subsection
    heading the comparison fails."""
    lines = DOCS.splitlines()
    kept = [line for line in lines if not line.startswith(row)]
    assert len(kept) == len(lines) - 1
    monkeypatch.setitem(globals(), "DOCS", "\n".join(kept))
    with pytest.raises(AssertionError, match="undocumented"):
        check()


def test_the_python_api_snippet_runs_as_pasted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # newuser3: the snippet used a `model` it never defined (NameError before the SpecError example)
    # (its comments start with "#": read from the heading on, not by section())
    snippet = re.search(r"```python\n(.*?)```", README[README.index("## Python API"):], re.DOTALL)
    assert snippet is not None
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "data").symlink_to(root / "tests" / "data")  # the snippet's log path, from the root
    monkeypatch.chdir(tmp_path)  # the recorder writes run/gradients.jsonl here, not in the checkout
    exec(compile(snippet.group(1), "README.md (Python API)", "exec"), {})  # noqa: S102 - our own README
    out = capsys.readouterr().out
    assert "vanishing_gradient" in out and "422 ['/layers/0/out_features" in out


def test_the_recorder_snippet_runs_as_pasted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    # newuser5 P14: the recorder's loop used a model, a loader, a loss and an optimizer it never
    # defined, and ended in send(), which needs a running service
    start = DOCS.index("## Recording per-layer gradients")
    snippet = re.search(r"```python\n(.*?)```", DOCS[start:], re.DOTALL)
    assert snippet is not None and "recorder.step(" in snippet.group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet.group(1), "docs/python.md (recorder)", "exec"), {})  # noqa: S102 - our own docs
    out = capsys.readouterr().out
    assert out.startswith("healthy")  # a small classifier learning a learnable task
    assert (tmp_path / "run" / "gradients.jsonl").read_text().splitlines()[-1] == \
        '{"gradhealth_recorder": "end", "logged_steps": 20}'


def test_the_recorder_and_live_mode_examples_write_files_of_their_own() -> None:
    # newuser17 #7: run after the recorder example, as the page invites, the live-mode example
    # appended to the same run/gradients.jsonl and printed a warning about appending
    paths = []
    for heading in ("## Recording per-layer gradients", "**Live mode**"):
        snippet = re.search(r"```python\n(.*?)```", DOCS[DOCS.index(heading):], re.DOTALL)
        assert snippet is not None
        found = re.search(r'GradientRecorder\(model, "([^"]+)"', snippet.group(1))
        assert found is not None
        paths.append(found.group(1))
    assert len(set(paths)) == 2, paths


def test_the_live_mode_recorder_snippet_runs_against_a_served_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], service) -> None:
    # newuser6 P12: the live-mode example had `...` for its loop and a `model` it never defined.
    # The documented address is the only change: the service of tests/conftest.py listens elsewhere.
    start = DOCS.index("**Live mode**")
    snippet = re.search(r"```python\n(.*?)```", DOCS[start:], re.DOTALL)
    assert snippet is not None and "server=SERVER" in snippet.group(1)
    assert "..." not in snippet.group(1)
    code = snippet.group(1).replace('"http://127.0.0.1:8000"', repr(service.url))
    assert code != snippet.group(1)
    monkeypatch.delenv("GRADHEALTH_API_KEY", raising=False)  # the test service runs with keys off
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/python.md (live mode)", "exec"), {})  # noqa: S102 - our own docs
    out = capsys.readouterr().out.strip().splitlines()
    # 200 steps logged every 10: 20 steps x (loss, grad_norm, lr and the 4 parameters' norms)
    assert out[-1] == "finished healthy 140"
    assert snippet.group(1).rstrip().endswith("# finished healthy 140")


def test_the_custom_loss_snippet_runs_as_pasted(capsys: pytest.CaptureFixture[str]) -> None:
    # modsweep31: a loss of the repository's own (a VAE's, an MDN's, PPO's) had no documented way in
    start = DOCS.index("A loss of your own")
    snippet = re.search(r"```python\n(.*?)```", DOCS[start:], re.DOTALL)
    assert snippet is not None and 'loss="sum"' in snippet.group(1)
    exec(compile(snippet.group(1), "docs/models.md (custom loss)", "exec"), {})  # noqa: S102 - our own docs
    assert capsys.readouterr().out.startswith("healthy []")  # a standard VAE at torch's init


def test_the_python_client_snippet_runs_against_a_served_process(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], service) -> None:
    # newuser7 #7: the HTTP client that submits a spec, waits and fetches a report was undocumented
    start = DOCS.index("## Python client")
    snippet = re.search(r"```python\n(.*?)```", DOCS[start:], re.DOTALL)
    assert snippet is not None and "Client(SERVER)" in snippet.group(1)
    code = snippet.group(1).replace('"http://127.0.0.1:8000"', repr(service.url))
    assert code != snippet.group(1)
    exec(compile(code, "docs/python.md (Python client)", "exec"), {})  # noqa: S102 - our own docs
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == "succeeded healthy"
    assert out[1].startswith("#") and "tanh mlp" in out[1]


# --- newuser10 #10: the README's signatures of the public functions are the code's ------------------

#: The Client methods a user calls (``send`` and ``submitted`` are its plumbing).
CLIENT_METHODS = ("check_architecture", "check_logs", "report", "run_report", "run", "runs", "close")


def _public_callables() -> dict[str, Callable[..., object]]:
    """Every public function and class a user calls with arguments: the ``gradhealth`` names that are
    not errors or the document, ``Client`` and its methods."""
    import gradhealth
    from gradhealth.client import Client

    found: dict[str, Callable[..., object]] = {}
    for name in gradhealth.__all__:
        value = getattr(gradhealth, name)
        if callable(value) and not (isinstance(value, type) and (
                issubclass(value, Exception) or issubclass(value, BaseModel))):
            found[name] = value
    found["Client"] = Client
    found.update({f"Client.{name}": getattr(Client, name) for name in CLIENT_METHODS})
    return found


def signature_line(name: str, function: Callable[..., object]) -> str:
    """``name(a, b=1, *, c=None)`` as inspect sees ``function`` (``self`` left out)."""
    import inspect

    parts: list[str] = []
    star = False
    for p in inspect.signature(function).parameters.values():
        if p.name == "self":
            continue
        if p.kind is p.VAR_KEYWORD:
            parts.append(f"**{p.name}")
            continue
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        parts.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return f"{name}({', '.join(parts)})"


def _documented_signatures() -> dict[str, str]:
    """docs/python.md's "Signatures" block: one ``name(...)`` a line (a line may continue indented)."""
    block = re.search(r"```text\n(.*?)```", section("Signatures"), re.DOTALL)
    assert block, "the Signatures section has no ```text block"
    lines: list[str] = []
    for line in block.group(1).splitlines():
        if line.startswith(" ") and lines:
            lines[-1] += " " + line.strip()
        elif line.strip():
            lines.append(line.strip())
    return {line.split("(", 1)[0]: line for line in lines}


def test_the_readme_signatures_are_the_public_functions_signatures() -> None:
    documented = _documented_signatures()
    actual = {name: signature_line(name, f) for name, f in _public_callables().items()}
    agree(set(documented), set(actual), "public functions in docs/python.md's Signatures")
    wrong = [f"docs: {documented[n]}\n  code: {actual[n]}" for n in actual if documented[n] != actual[n]]
    assert not wrong, "docs/python.md's signatures differ from the code's:\n" + "\n".join(wrong)


def test_a_parameter_left_out_of_a_readme_signature_is_noticed(monkeypatch: pytest.MonkeyPatch) -> None:
    line = next(ln for ln in DOCS.splitlines() if ln.startswith("check_module("))
    monkeypatch.setitem(globals(), "DOCS", DOCS.replace(line, line.replace(", targets=None", "")))
    with pytest.raises(AssertionError, match="targets"):
        test_the_readme_signatures_are_the_public_functions_signatures()


# --- newuser11 #3: the README's opening example is what the product prints ------------------------


def test_the_opening_example_is_the_real_output(capsys: pytest.CaptureFixture[str]) -> None:
    """Each line of the README's first ``$ gradhealth check`` block is a line the command prints, in
    the same order (the block is shortened: the simulation's size and time, each finding's why and
    where, and each remedy's code and patch are left out)."""
    from gradhealth.cli import main

    block = re.search(r"```\n\$ (gradhealth check \S+)\n(.*?)```", README, re.DOTALL)
    assert block is not None and README.index(block.group(0)) < README.index("## Two commands")
    assert main(block.group(1).split()[1:]) == 1
    printed = capsys.readouterr().out.splitlines()
    at = 0
    for line in block.group(2).splitlines():
        assert line in printed[at:], f"README's opening example shows a line the command does not print:\n{line}"
        at = printed.index(line, at) + 1


# --- newuser13 #4: user documentation carries no internal tracker ids ---------------------------------

_TRACKER_ID = re.compile(r"\b(?:log|keras|onnx|mod|peer|spec|err|ci|live)?sweep\d+\b|\bnewuser\d+\b", re.IGNORECASE)


def test_the_documentation_names_no_internal_tracker_ids() -> None:
    # the held-out sweeps' names ("kerassweep20 u05") said nothing to a user and leaked into ~50 places
    found = {f"{path.name}:{text[:m.start()].count(chr(10)) + 1}: {m.group(0)}"
             for path in DOCUMENTATION_FILES for text in [path.read_text(encoding="utf-8")]
             for m in _TRACKER_ID.finditer(text)}
    assert not found, "internal ids in the documentation:\n" + "\n".join(sorted(found))
