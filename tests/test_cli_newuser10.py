"""newuser10 #9: a saved diagnosis document is rendered again, by ``gradhealth check`` in any
``--format`` (with ``--fail-on``) and by the public ``gradhealth.render``; it was read as a spec
and refused with 80 spec errors, and the library had no public renderer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gradhealth
from gradhealth.cli import main
from gradhealth.cli_report import repo_relative
from gradhealth.errors import ArgumentError, InputFormatError
from gradhealth.report import FORMATS, ReportContext

pytestmark = pytest.mark.usefixtures("off_runner")


@pytest.fixture(scope="module")
def log_doc(tmp_path_factory: pytest.TempPathFactory) -> gradhealth.Diagnosis:
    """The log check's diagnosis of a CSV whose gradient norm explodes (an error finding)."""
    from tests.ci.helpers import exploding_csv

    path = tmp_path_factory.mktemp("log") / "run.csv"
    path.write_text(exploding_csv())
    doc = gradhealth.check_logs(path)
    assert doc.status == "unhealthy"
    return doc


@pytest.fixture
def saved(log_doc: gradhealth.Diagnosis, tmp_path: Path) -> Path:
    path = tmp_path / "diagnosis.json"
    path.write_text(log_doc.model_dump_json(indent=2))
    return path


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_check_renders_a_saved_document_in_every_format(saved: Path, log_doc: gradhealth.Diagnosis, fmt: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(saved), "--format", fmt, "--fail-on", "never"]) == 0
    out = capsys.readouterr()
    assert "invalid architecture spec" not in out.err and out.err == ""
    # named by the document's own path, the log's file beside it (newuser12 #5)
    expected = FORMATS[fmt].render(log_doc, ReportContext(source=log_doc.log.source if log_doc.log else None,
                                                          document=repo_relative(saved), kind="logs",
                                                          fail_on="never"))
    assert out.out.rstrip("\n") == expected.rstrip("\n")
    if fmt == "json":
        assert json.loads(out.out) == json.loads(log_doc.model_dump_json())


def test_fail_on_applies_to_a_saved_document(saved: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(saved)]) == 1  # its error finding, at the default --fail-on error
    assert "UNHEALTHY" in capsys.readouterr().out
    assert main(["check", str(saved), "--fail-on", "never"]) == 0


def test_a_flag_that_would_change_the_check_is_refused(saved: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(saved), "--seeds", "2"]) == 2
    err = capsys.readouterr().err
    assert "usage error: --seeds cannot apply to a saved diagnosis document" in err and len(err.splitlines()) == 1


def test_a_document_that_does_not_validate_names_its_problem(saved: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(saved.read_text())
    data["findings"] = [{"code": 3}]
    saved.write_text(json.dumps(data))
    assert main(["check", str(saved)]) == 2
    err = capsys.readouterr().err
    assert "not a diagnosis document" in err and "/findings/0" in err and "spec" not in err.split(":")[1]


def test_render_is_public_and_matches_the_cli_report(saved: Path, log_doc: gradhealth.Diagnosis) -> None:
    assert "render" in gradhealth.__all__
    text = gradhealth.render(log_doc)
    assert text == FORMATS["text"].render(log_doc, ReportContext(kind="logs"))
    assert text.startswith(log_doc.name or "") and "UNHEALTHY" in text
    assert gradhealth.render(saved, "markdown") == gradhealth.render(log_doc, "markdown")
    assert gradhealth.render(json.loads(saved.read_text()), "html").lstrip().lower().startswith("<!doctype html>")
    with pytest.raises(ArgumentError, match="format must be one of text, json"):
        gradhealth.render(log_doc, "pdf")
    with pytest.raises(InputFormatError, match="not a diagnosis document"):
        gradhealth.render({"schema_version": "1", "kind": "logs", "findings": 3})


def test_an_architecture_document_is_rendered_not_read_as_a_spec(checked, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    doc = checked("deep_sigmoid_mlp")  # unhealthy: vanishing
    path = tmp_path / "net.json"
    path.write_text(doc.model_dump_json())
    assert main(["check", str(path), "--format", "markdown"]) == 1
    out = capsys.readouterr()
    # the document is the input its reports name (newuser12 #5)
    expected = gradhealth.render(doc, "markdown", source=repo_relative(path))
    assert out.err == "" and out.out.rstrip("\n") == expected.rstrip("\n")
    assert "vanishing_gradient" in out.out
