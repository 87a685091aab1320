"""newuser13 #1: a model's layer pointers (ONNX ``node:``, Keras ``layer:``, live ``module:``) are
names, not JSON pointers into a text: every format renders such a document, with or without a text
beside it (the CLI renders a saved document against whatever file it is given), and places its
findings on the file by the layer's name."""

from __future__ import annotations

import json

import pytest

from gradhealth.report import FORMATS, ReportContext, render
from gradhealth.report.context import locate_findings
from gradhealth.report.locate import patch_replacement, span
from tests.report.helpers import spec_text


@pytest.mark.parametrize("prefix", ["node:/net/", "layer:", "module:"])
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_model_pointers_render_in_every_format(arch_doc, prefix, fmt):
    for layer in arch_doc.layers:
        layer.pointer = prefix + layer.name
    for f in arch_doc.findings:
        for r in f.remedies:
            r.patch = [{**op, "path": prefix + op["path"].lstrip("/")} for op in r.patch]
    assert any(f.evidence.layers for f in arch_doc.findings)
    for ctx in (ReportContext(source="net.onnx"), ReportContext(source="spec.yaml", text=spec_text()),
                ReportContext(source="doc.json", text=json.dumps(arch_doc.model_dump(mode="json")))):
        assert render(fmt, arch_doc, ctx)
        places = locate_findings(arch_doc, ctx)
        named = [p for p, f in zip(places, arch_doc.findings, strict=True) if f.evidence.layers]
        assert all(p.logical for p in named) and all(p.line is None for p in named)


def test_a_name_is_no_place_in_a_text():
    assert span(spec_text(), "node:/net/net.1/Gemm") is None
    assert span(spec_text(), "/layers/0") is not None
    assert patch_replacement(spec_text(), [{"op": "replace", "path": "module:net.0", "value": 1}]) is None
