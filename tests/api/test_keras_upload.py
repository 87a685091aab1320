"""POST /v1/checks/model with Keras files: detected by content, refused before a job when they
cannot be translated, and diagnosed by the worker like the in-process check."""

from __future__ import annotations

import io
import json
import zipfile

from tests.analysis.test_keras_import import _layer, _seq, _sigmoid_stack


def _zip(config: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("config.json", json.dumps(config))
    return buf.getvalue()


def test_a_keras_archive_is_checked_by_the_worker(api):
    r = api.post("/v1/checks/model", files={"file": ("m.keras", _zip(_sigmoid_stack()))},
                 data={"seeds": "1", "verify": "false"})
    assert r.status_code == 202, r.text
    job = api.wait_done(r.json()["id"], timeout=300)
    assert job["status"] == "succeeded", job
    assert "vanishing_gradient" in {f["code"] for f in job["result"]["findings"]}


def test_untranslatable_keras_layers_are_422_before_a_job(api):
    r = api.post("/v1/checks/model", files={"file": ("m.json", json.dumps(_seq(
        _layer("Lambda", "lam"), shape=[4])).encode())})
    assert r.status_code == 422, r.text
    assert "Lambda (lam)" in r.json()["detail"]
