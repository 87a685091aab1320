"""newuser12 #5-#7: the CI reports of a saved document name its file, not the model's class; a
finding's title fits its own case; ``--no-timings`` gives byte-identical reports of two runs."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gradhealth.cli import main
from gradhealth.core.document import (
    Diagnosis,
    Evidence,
    Finding,
    LayerReport,
    SimulationInfo,
    status_of,
)
from gradhealth.report import ReportContext, render

pytestmark = pytest.mark.usefixtures("off_runner")


def _mismatch(metric: str, **extra: object) -> Finding:
    return Finding(code="output_loss_mismatch", severity="error", summary=f"the output's case: {metric}",
                   explanation="why", evidence=Evidence(metric=metric, value=1.0, layers=["8"], **extra))


def _module_doc(name: str = "Sequential", pointer: str = "module:") -> Diagnosis:
    """What ``check_module`` returns for an nn.Sequential ending in Linear(64, 1) and a sigmoid
    under mse, with targets in the thousands (the sweep's tab_sigmoid), built by hand."""
    findings = [_mismatch("unreachable_target_fraction", loss="mse", output_activation="sigmoid",
                          output_range=[0.0, 1.0], targets_passed=64)]
    layers = [LayerReport(name=n, pointer=f"{pointer}{n}", type="linear", grad_norm=0.1) for n in ("0", "8")]
    sim = SimulationInfo(seeds=2, batch_size=64, device="cpu", precision="float64", parameters=13633,
                         activation_bytes=1, duration_s=0.2236, loss="mse")
    return Diagnosis(name=name, status=status_of(findings), summary="unhealthy: output_loss_mismatch",
                     findings=findings, layers=layers, simulation=sim)


def _junit_suite(xml: str) -> ET.Element:
    (suite,) = ET.fromstring(xml.encode()).findall("testsuite")
    return suite


def test_saved_check_module_documents_are_named_by_their_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    # two models of one class: their JUnit suites, classnames and step-summary headings were all
    # "Sequential" ("gradhealth spec: Sequential", and no spec at all)
    monkeypatch.chdir(tmp_path)
    suites, headings = [], []
    for run in ("tab_ok", "tab_sigmoid"):
        saved = Path("runs", run, "check_module.json")
        saved.parent.mkdir(parents=True)
        saved.write_text(_module_doc().model_dump_json())
        out = Path("out", run)
        assert main(["check", str(saved), "--fail-on", "never", "--output", f"junit={out}.xml",
                     "--output", f"markdown={out}.md", "--output", f"sarif={out}.sarif",
                     "--output", f"text={out}.txt"]) == 0
        suite = _junit_suite(Path(f"{out}.xml").read_text())
        suites.append(suite.get("name"))
        assert {case.get("classname") for case in suite.iter("testcase")} == {saved.as_posix()}
        headings.append(Path(f"{out}.md").read_text().splitlines()[0])
        assert Path(f"{out}.txt").read_text().startswith(f"{saved.as_posix()} (module Sequential): UNHEALTHY")
        # SARIF: the result is anchored on the document, beside the layer it names
        [result] = json.loads(Path(f"{out}.sarif").read_text())["runs"][0]["results"]
        [location] = result["locations"]
        assert location["physicalLocation"]["artifactLocation"]["uri"] == saved.as_posix()
        assert location["logicalLocations"][0]["fullyQualifiedName"] == "8"
    capsys.readouterr()
    assert suites == ["gradhealth module: runs/tab_ok/check_module.json (Sequential)",
                      "gradhealth module: runs/tab_sigmoid/check_module.json (Sequential)"]
    assert headings == ["## ❌ Gradient Health: runs/tab\\_ok/check\\_module.json (module Sequential): **unhealthy**",
                        "## ❌ Gradient Health: runs/tab\\_sigmoid/check\\_module.json (module Sequential): "
                        "**unhealthy**"]


@pytest.mark.parametrize(("doc", "given", "word"), [
    (_module_doc(), {"document": "d.json", "source": "d.json"}, "module"),
    (_module_doc("torch_jit", pointer="node:/"), {"document": "d.json", "source": "d.json"}, "ONNX"),
    (_module_doc("torch_jit", pointer="node:/"), {"source": "models/net.onnx"}, "ONNX"),
    (_module_doc("seq", pointer="/layers/"), {"source": "models/net.keras"}, "Keras"),
    (_module_doc("seq", pointer="/layers/"), {"source": "models/cfg.json", "kind_word": "Keras"}, "Keras"),
    (_module_doc("encoder", pointer="/layers/"), {"source": "models/encoder.yaml"}, "spec"),
    (Diagnosis(kind="logs", name="gradients.jsonl", status="healthy", summary="healthy", findings=[]),
     {"source": "runs/a/gradients.jsonl", "kind": "logs"}, "log"),
])
def test_each_kind_of_input_has_its_word(doc: Diagnosis, given: dict[str, str], word: str) -> None:
    # (a Keras config .json: the CLI says which kind of model file it read, kind_word)
    ctx = ReportContext(**given)  # type: ignore[arg-type]
    assert _junit_suite(render("junit", doc, ctx)).get("name").startswith(f"gradhealth {word}: ")


def test_a_log_check_is_headed_by_its_path_not_its_file_name() -> None:
    doc = Diagnosis(kind="logs", name="gradients.jsonl", status="healthy", summary="healthy", findings=[])
    ctx = ReportContext(source="runs/tab_ok/gradients.jsonl", kind="logs")
    assert render("markdown", doc, ctx).startswith("## ✅ Gradient Health: runs/tab\\_ok/gradients.jsonl: **healthy**")
    assert _junit_suite(render("junit", doc, ctx)).get("name") == "gradhealth log: runs/tab_ok/gradients.jsonl"
    # a spec's own name still heads its reports (the name its author chose)
    spec = _module_doc("encoder", pointer="/layers/")
    assert render("text", spec, ReportContext(source="models/encoder.yaml")).startswith("encoder: UNHEALTHY")


@pytest.mark.parametrize(("finding", "expected"), [
    (_mismatch("unreachable_target_fraction", loss="mse", output_activation="sigmoid"),
     "Output activation's range cannot reach the targets"),
    (_mismatch("silent_sample_fraction", loss="categorical_crossentropy", from_logits=False),
     "Loss takes probabilities the output does not give"),
    (_mismatch("unreachable_loss_fraction", from_logits=True, output_activation="softmax"),
     "Output activation applied twice: the loss applies its own again"),
    (_mismatch("clipped_output_fraction", from_logits=True, output_activation="relu"),
     "ReLU output clips the logits the loss needs below 0"),
    (_mismatch("clipped_output_fraction", from_logits=None, output_activation="relu"),
     "ReLU output cannot predict below 0 and passes no gradient there"),
    (_mismatch("softmax_units_under_binary_loss", loss="binary_cross_entropy", output_activation="softmax"),
     "Softmax output under binary cross-entropy: its units cannot be independent"),
])
def test_output_loss_mismatch_is_titled_by_its_case(finding: Finding, expected: str) -> None:
    doc = Diagnosis(status="unhealthy", summary="s", findings=[finding])
    github = render("github", doc, ReportContext(source="m.json"))
    assert f"title=output_loss_mismatch%3A {expected.replace(':', '%3A').replace(',', '%2C')}::" in github
    assert f"#### `output_loss_mismatch`: {expected}" in render("markdown", doc, ReportContext())


def test_a_sigmoid_under_mse_is_not_titled_a_loss_on_probabilities() -> None:
    doc = _module_doc()
    for fmt in ("github", "markdown", "html", "codeclimate"):
        assert "Loss takes probabilities" not in render(fmt, doc, ReportContext(source="d.json"))


def _exploding_log(path: Path) -> Path:
    rows = ["step,loss,grad_norm"] + [f"{s},{1.0 / s},{1.0 if s < 120 else 10 ** ((s - 120) / 8)}"
                                      for s in range(1, 201)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_no_timings_gives_byte_identical_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = _exploding_log(tmp_path / "train.csv")
    saved = tmp_path / "check_module.json"
    saved.write_text(_module_doc().model_dump_json())
    for source, stem in ((log, "log"), (saved, "module")):
        runs = []
        for i in (1, 2):
            out = tmp_path / f"{stem}{i}"
            main(["check", str(source), "--no-timings", "--fail-on", "never", "-o", f"{out}.txt",
                  "--output", f"json={out}.json", "--output", f"html={out}.html"])
            runs.append([Path(f"{out}.{ext}").read_bytes() for ext in ("txt", "json", "html")])
        assert runs[0] == runs[1]
        text, document, html = (b.decode() for b in runs[0])
        data = json.loads(document)
        part = data["log"] if stem == "log" else data["simulation"]
        assert part["duration_s"] == 0.0  # the field stays (the schema's), zeroed
        assert re.search(r"\d\.\d\ds\b", text) is None and re.search(r"\d s\b", html) is None
    # the default keeps the times
    main(["check", str(log), "--fail-on", "never"])
    assert any(line.startswith("  read ") and line.endswith("s") and " in " in line
               for line in capsys.readouterr().out.splitlines())
    main(["check", str(saved), "--fail-on", "never"])
    assert "0 remedy simulation(s); 0.22s" in capsys.readouterr().out
