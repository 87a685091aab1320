"""newuser13 #1: every report format of every kind of document the service produces answers 200.

An ONNX job's Markdown, HTML, SARIF, JUnit, GitHub and CodeClimate reports answered 500 because
its layers' pointers (``node:/net/net.1/Gemm``) were parsed as JSON pointers into a spec's text;
a Keras file's (``layer:``) and a live module's (``module:``) are no JSON pointers either."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest
import torch
from torch import nn

from gradhealth import check_module
from gradhealth.api.routers.reports import job_rendered
from gradhealth.db.models import JobRow
from gradhealth.report import FORMATS
from tests.analysis.onnx_models import export, mlp
from tests.analysis.test_keras_import import _sigmoid_stack

FORMAT_NAMES = list(FORMATS)


def _tanh_onnx() -> bytes:
    """A 6-layer tanh MLP with std=1 weights: exploding, with ONNX ``node:`` layer pointers."""
    torch.manual_seed(0)
    net = mlp(nn.Tanh, depth=6, width=16)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0, 1)
    return export(net, torch.randn(8, 16))


def _keras_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("config.json", json.dumps(_sigmoid_stack()))
    return buf.getvalue()


@pytest.fixture(scope="module")
def model_jobs(api) -> dict[str, str]:
    ids = {}
    for name, body in (("net.onnx", _tanh_onnx()), ("m.keras", _keras_zip())):
        r = api.post("/v1/checks/model", files={"file": (name, body)}, data={"seeds": "1", "verify": "false"})
        assert r.status_code == 202, r.text
        job = api.wait_done(r.json()["id"], timeout=300)
        assert job["status"] == "succeeded", job
        assert job["result"]["findings"], job["result"]
        ids[name] = job["id"]
    return ids


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
@pytest.mark.parametrize("name", ["net.onnx", "m.keras"])
def test_a_model_jobs_report_renders_in_every_format(api, model_jobs, name, fmt):
    r = api.get(f"/v1/jobs/{model_jobs[name]}/report", params={"format": fmt})
    assert r.status_code == 200, r.text
    assert name in r.text or fmt in ("json", "text", "html", "markdown")
    if fmt == "sarif":
        result = json.loads(r.text)["runs"][0]["results"][0]
        assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == name
        assert "region" not in result["locations"][0]["physicalLocation"]  # a model file has no lines


def test_a_model_jobs_shared_report_link_renders(api, model_jobs):
    r = api.post(f"/v1/jobs/{model_jobs['net.onnx']}/report/link", params={"format": "markdown"})
    assert r.status_code == 201, r.text
    shared = api.get(r.json()["path"])
    assert shared.status_code == 200, shared.text


def _module_doc() -> dict[str, Any]:
    torch.manual_seed(0)
    net = nn.Sequential(*[m for _ in range(6) for m in (nn.Linear(16, 16), nn.Sigmoid())], nn.Linear(16, 4))
    return check_module(net, torch.randn(8, 16), seeds=1, verify=False).model_dump(mode="json")


@pytest.fixture(scope="module")
def documents(api, model_jobs) -> dict[str, tuple[str, dict[str, Any], dict[str, Any]]]:
    """(job kind, stored request, diagnosis) of each kind of document."""
    out = {}
    for name, job_id in model_jobs.items():
        job = api.get(f"/v1/jobs/{job_id}").json()
        out[name] = ("model", {"filename": name, **({"format": "keras"} if name.endswith("keras") else {})},
                     job["result"])
    spec = {"input": {"shape": [16]}, "layers": [{"type": "linear", "out_features": 16, "activation": "sigmoid"}] * 8}
    r = api.post("/v1/checks/architecture", json=spec)
    job = api.wait_done(r.json()["id"], timeout=300)
    out["spec"] = ("architecture", spec, job["result"])
    out["module"] = ("architecture", spec, _module_doc())  # a module's layers are module: paths
    out["module-as-model"] = ("model", {"filename": "net.pt"}, _module_doc())
    return out


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
@pytest.mark.parametrize("kind", ["net.onnx", "m.keras", "spec", "module", "module-as-model"])
def test_no_document_kind_makes_a_report_fail(documents, kind, fmt):
    job_kind, request, result = documents[kind]
    assert result["findings"]
    row = JobRow(id="j", kind=job_kind, status="succeeded", request=request, result=result, owner="x")
    response = job_rendered(row, FORMATS[fmt])
    assert response.status_code == 200
    assert response.body
