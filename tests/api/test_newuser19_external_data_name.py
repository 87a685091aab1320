"""newuser19 #2: an upload refused for external data words its fix in the name the client gave the
file (the multipart part's file name, ?filename=, the `filename` field), as the local CLI does; only
an upload the client did not name falls back to `model.onnx`."""

from __future__ import annotations

import re

import pytest

from tests.api.test_model_checks import tiny_graph


def _named_in_fix(detail: str) -> tuple[list[str], list[str]]:
    return re.findall(r"onnx\.load\('([^']*)'\)", detail), re.findall(r"gradhealth check (\S+) --external-data",
                                                                       detail)


@pytest.mark.parametrize("how", ["part", "query", "field"])
def test_the_refusal_names_the_uploaded_file(idle_api, how: str) -> None:
    params = {"filename": "mlp_default.onnx"} if how == "query" else {}
    data = {"filename": "mlp_default.onnx"} if how == "field" else {}
    part_name = "mlp_default.onnx" if how == "part" else "upload.onnx"
    r = idle_api.post("/v1/checks/model", params=params, data=data,
                      files={"file": (part_name, tiny_graph(external=True))})
    assert r.status_code == 422, r.text
    assert _named_in_fix(r.json()["detail"]) == (["mlp_default.onnx"], ["mlp_default.onnx"])


def test_an_unnamed_raw_body_is_told_of_the_default_name(idle_api) -> None:
    r = idle_api.post("/v1/checks/model", content=tiny_graph(external=True),
                      headers={"Content-Type": "application/onnx"})
    assert r.status_code == 422, r.text
    assert _named_in_fix(r.json()["detail"]) == (["model.onnx"], ["model.onnx"])
