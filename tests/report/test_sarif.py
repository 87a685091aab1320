"""SARIF: valid against the official schema, on the spec's own line, stable fingerprints, fixes
that patch the spec exactly as the remedy's JSON Patch does."""

from __future__ import annotations

import json
from pathlib import Path

import jsonpatch
import jsonschema
import pytest
import yaml

from gradhealth.core.catalog import FINDINGS
from gradhealth.report import ReportContext, render, sarif_log
from gradhealth.report.context import ARCHITECTURE_CODES, LOG_CODES

from .helpers import DATA, LOG, document, finding, remedy, spec_text

SCHEMA = json.loads(
    (
        Path(__file__).resolve().parents[2]
        / "service"
        / "report"
        / "schemas"
        / "sarif-schema-2.1.0.json"
    ).read_text()
)


def validate(log: dict) -> None:
    jsonschema.Draft4Validator.check_schema(SCHEMA)
    jsonschema.Draft4Validator(SCHEMA).validate(log)


def test_the_validator_rejects_what_the_schema_forbids():
    # The schema really is applied: a result level outside the enum, a missing message.
    log = {
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "x"}},
                "results": [{"ruleId": "a", "level": "fatal", "message": {"text": "m"}}],
            }
        ],
    }
    with pytest.raises(jsonschema.ValidationError):
        validate(log)
    log["runs"][0]["results"][0] = {"ruleId": "a"}
    with pytest.raises(jsonschema.ValidationError):
        validate(log)


def test_architecture_report_is_valid_and_on_the_layer_line(arch_doc):
    text = spec_text()
    ctx = ReportContext(source="models/deep_sigmoid_mlp.yaml", text=text)
    log = json.loads(render("sarif", arch_doc, ctx))
    validate(log)
    run = log["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == list(ARCHITECTURE_CODES)
    vanishing = next(r for r in run["results"] if r["ruleId"] == "vanishing_gradient")
    assert vanishing["level"] == "error"
    assert run["tool"]["driver"]["rules"][vanishing["ruleIndex"]]["id"] == "vanishing_gradient"
    physical = vanishing["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"]["uri"] == "models/deep_sigmoid_mlp.yaml"
    # The 20 sigmoid layers are the spec's first layers entry: that line, at the "{" after "- ".
    lines = text.splitlines()
    expected = next(i for i, line in enumerate(lines, 1) if "activation: sigmoid" in line)
    assert physical["region"]["startLine"] == physical["region"]["endLine"] == expected
    assert physical["region"]["startColumn"] == lines[expected - 1].index("{") + 1
    assert (
        vanishing["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]
        == "layers[0].linear#0"
    )
    # Verified before/after figures are in the Markdown message.
    best = vanishing_gradient_remedy = next(
        f for f in arch_doc.findings if f.code == "vanishing_gradient"
    ).remedies[0]
    assert best.verified is not None and f"`{best.id}`" in vanishing["message"]["markdown"]
    assert f"{best.verified.after:.3g}" in vanishing["message"]["markdown"]
    assert vanishing_gradient_remedy.id in vanishing["message"]["text"]


def test_each_fix_is_the_remedys_patch_applied_to_the_spec_text(arch_doc):
    text = spec_text()
    ctx = ReportContext(source="spec.yaml", text=text)
    result = next(
        r
        for r in sarif_log(arch_doc, ctx)["runs"][0]["results"]
        if r["ruleId"] == "vanishing_gradient"
    )
    found = next(f for f in arch_doc.findings if f.code == "vanishing_gradient")
    patched_remedies = [r for r in found.remedies if r.patch and r.recommended]
    assert result["fixes"] and len(result["fixes"]) <= len(patched_remedies)
    lines = text.splitlines(keepends=True)
    for fix, rem in zip(result["fixes"], patched_remedies, strict=False):
        (change,) = fix["artifactChanges"]
        (rep,) = change["replacements"]
        region = rep["deletedRegion"]
        # Apply the replacement by line/column (SARIF's own coordinates), independently of offsets.
        start = sum(map(len, lines[: region["startLine"] - 1])) + region["startColumn"] - 1
        end = sum(map(len, lines[: region["endLine"] - 1])) + region["endColumn"] - 1
        new_text = text[:start] + rep["insertedContent"]["text"] + text[end:]
        assert yaml.safe_load(new_text) == jsonpatch.apply_patch(yaml.safe_load(text), rem.patch), (
            rem.id
        )


def test_log_report_is_valid_and_on_the_line_of_the_first_step(log_doc):
    ctx = ReportContext(source="logs/main.log", path=LOG)
    log = sarif_log(log_doc, ctx)
    validate(log)
    run = log["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == list(LOG_CODES)
    assert len(run["results"]) == len(log_doc.findings) > 0
    lines = LOG.read_text().splitlines()
    for f, result in zip(log_doc.findings, run["results"], strict=True):
        first = f.evidence.steps[0]
        region = result["locations"][0]["physicalLocation"]["region"]
        line = lines[region["startLine"] - 1]
        assert line.split()[0] == f"s:{first}" and f"{f.evidence.metric}:" in line
        assert (
            result["level"] == {"info": "note", "warning": "warning", "error": "error"}[f.severity]
        )


def test_binary_logs_are_located_at_the_file_only():
    tb = next((DATA / "tb-lightning-lstm-textgen").iterdir())
    doc = document(
        [finding("gradient_spike", "warning", steps=[5, 9], metric="train_loss")], kind="logs"
    )
    log = sarif_log(doc, ReportContext(source="runs/events.out.tfevents", path=tb))
    validate(log)
    loc = log["runs"][0]["results"][0]["locations"][0]
    assert loc["physicalLocation"] == {
        "artifactLocation": {"uri": "runs/events.out.tfevents", "uriBaseId": "%SRCROOT%"}
    }
    assert loc["logicalLocations"][0]["fullyQualifiedName"] == "train_loss"


def test_model_files_get_a_logical_location():
    doc = document([finding("dead_units", "warning", layers=["encoder/Relu_3"])])
    log = sarif_log(doc, ReportContext(source="models/net.onnx"))
    validate(log)
    loc = log["runs"][0]["results"][0]["locations"][0]
    assert "region" not in loc["physicalLocation"]
    assert loc["logicalLocations"][0]["fullyQualifiedName"] == "encoder/Relu_3"


def test_fingerprints_follow_code_and_place_not_line_numbers(arch_doc):
    text = spec_text()
    ctx = ReportContext(source="spec.yaml", text=text)
    shifted = ReportContext(source="spec.yaml", text="# a new comment line\n\n" + text)
    a, b = (sarif_log(arch_doc, c)["runs"][0]["results"] for c in (ctx, shifted))
    assert [r["partialFingerprints"] for r in a] == [r["partialFingerprints"] for r in b]
    line = a[0]["locations"][0]["physicalLocation"]["region"]["startLine"]
    assert b[0]["locations"][0]["physicalLocation"]["region"]["startLine"] == line + 2
    other = sarif_log(arch_doc, ReportContext(source="other.yaml", text=text))["runs"][0]["results"]
    assert a[0]["partialFingerprints"] != other[0]["partialFingerprints"]


TWO_LAYERS = {
    "yaml": "layers:\n  - {type: linear, out_features: 8}\n  - {type: linear, out_features: 4}\n",
    "json": json.dumps(
        {"layers": [{"type": "linear", "out_features": 8}, {"type": "linear", "out_features": 4}]},
        indent=1,
    ),
}


@pytest.mark.parametrize("style", ["yaml", "json"])
def test_two_findings_on_different_layers_have_different_fingerprints_and_lines(style):
    text = TWO_LAYERS[style]
    key = '"out_features"' if style == "json" else "out_features"
    first, second = (
        next(i for i, x in enumerate(text.splitlines(), 1) if f"{key}: {n}" in x) for n in (8, 4)
    )
    if style == "json":
        first, second = first - 2, second - 2  # each object opens two lines above its width
    layers = [
        {"name": "layers[0].linear", "pointer": "/layers/0", "type": "linear"},
        {"name": "layers[1].linear", "pointer": "/layers/1", "type": "linear"},
    ]
    doc = document(
        [
            finding("saturation", "warning", layers=["layers[0].linear"]),
            finding("dead_units", "warning", layers=["layers[1].linear", "layers[0].linear"]),
            finding("post_ln_depth_risk", "warning", layers=["layers[1].linear"]),
        ],
        layers=layers,
    )
    results = sarif_log(doc, ReportContext(source="s.yaml", text=text))["runs"][0]["results"]
    lines = [r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in results]
    assert lines == [first, second, second]
    related = results[1]["relatedLocations"][0]["physicalLocation"]["region"]["startLine"]
    assert related == first
    assert len({r["partialFingerprints"]["gradhealth/v1"] for r in results}) == 3


def test_rules_carry_the_catalog_and_help(arch_doc):
    rules = sarif_log(arch_doc, ReportContext())["runs"][0]["tool"]["driver"]["rules"]
    for rule in rules:
        assert rule["shortDescription"]["text"] == FINDINGS[rule["id"]].title
        assert rule["fullDescription"]["text"] == FINDINGS[rule["id"]].description
        assert rule["helpUri"].endswith("#finding-codes")


def test_a_healthy_document_has_rules_and_no_results():
    log = sarif_log(document([]), ReportContext(source="ok.yaml", text="layers: []\n"))
    validate(log)
    assert log["runs"][0]["results"] == [] and len(
        log["runs"][0]["tool"]["driver"]["rules"]
    ) == len(ARCHITECTURE_CODES)


def test_remedies_without_patch_or_not_recommended_are_no_fix():
    text = "layers:\n  - {type: linear, out_features: 8}\n"
    patch = [{"op": "add", "path": "/layers/0/norm", "value": "layernorm"}]
    rems = [remedy("gradient_clipping"), remedy("layer_norm", patch=patch)]
    rems.append(remedy("batch_norm", patch=patch).model_copy(update={"recommended": False}))
    doc = document([finding("exploding_gradient", "error", remedies=rems)])
    result = sarif_log(doc, ReportContext(source="s.yaml", text=text))["runs"][0]["results"][0]
    (fix,) = result["fixes"]
    assert fix["artifactChanges"][0]["replacements"][0]["insertedContent"]["text"] == (
        "{type: linear, out_features: 8, norm: layernorm}"
    )
    # No layer named: the patched node still places the finding.
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == 2
