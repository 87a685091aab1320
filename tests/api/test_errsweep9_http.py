"""errsweep9 #8, #9: a ``multipart/mixed`` body and a form part with ``Content-Transfer-Encoding: base64``
were read as raw log bytes (a 415 "not a log format" naming neither), and ``Transfer-Encoding: gzip,
chunked`` passed its still-compressed body to the readers, past the Content-Encoding refusal."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.helpers import Api, running_app, settings_for

PROBLEM = "application/problem+json"
CSV = b"step,loss\n" + b"".join(f"{i},{1 + i % 3}\n".encode() for i in range(30))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with running_app(settings_for(tmp_path_factory.mktemp("es9"), workers=0)) as client:
        yield client


def _form(payload: bytes, extra_header: str = "") -> bytes:
    return (b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"loss.csv\"\r\n"
            + extra_header.encode() + b"\r\n" + payload + b"\r\n--B--\r\n")


def _problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text[:400]
    assert r.headers["content-type"] == PROBLEM
    return dict(r.json())


def test_multipart_mixed_is_a_415_naming_the_type_not_a_log_read_from_its_boundaries(api):
    r = api.post("/v1/checks/logs", content=_form(CSV), headers={"content-type": "multipart/mixed; boundary=B"})
    problem = _problem(r, 415)
    assert "multipart/mixed" in problem["detail"] and "multipart/form-data" in problem["detail"]
    assert problem["errors"][0]["parameter"] == "header.Content-Type"


@pytest.mark.parametrize("encoding", ["base64", "quoted-printable"])
def test_a_transfer_encoded_part_is_a_400_naming_the_part_and_its_encoding(api, encoding):
    body = _form(base64.b64encode(CSV), f"Content-Transfer-Encoding: {encoding}\r\n")
    for door in ("/v1/checks/logs", "/v1/checks/model"):
        r = api.post(door, content=body, headers={"content-type": "multipart/form-data; boundary=B"})
        problem = _problem(r, 400)
        assert "part `file`" in problem["detail"] and encoding in problem["detail"], door
        assert problem["errors"][0]["parameter"] == "file"


def test_an_identity_transfer_encoding_on_a_part_is_taken(api):
    body = _form(CSV, "Content-Transfer-Encoding: binary\r\n")
    r = api.post("/v1/checks/logs", content=body, headers={"content-type": "multipart/form-data; boundary=B"})
    assert r.status_code == 202, r.text[:400]


@pytest.mark.parametrize("coding", ["gzip, chunked", "deflate", "chunked, gzip"])
def test_a_transfer_coding_other_than_chunked_is_a_501(api, coding):
    # RFC 9112 6.1: a transfer coding the server does not understand SHOULD be a 501
    r = api.post("/v1/checks/logs?filename=loss.csv", content=CSV,
                 headers={"content-type": "text/csv", "transfer-encoding": coding})
    problem = _problem(r, 501)
    assert "gzip" in problem["detail"] or "deflate" in problem["detail"]
    assert problem["errors"][0]["parameter"] == "header.Transfer-Encoding"


def test_plain_chunked_is_still_taken(api):
    r = api.post("/v1/checks/logs?filename=loss.csv", content=CSV,
                 headers={"content-type": "text/csv", "transfer-encoding": "Chunked"})
    assert r.status_code == 202, r.text[:400]


def test_a_form_content_type_in_other_case_is_read_as_a_form(api):
    # media types are case-insensitive (RFC 9110 8.3.1): read as a raw body, the boundary lines
    # would be taken for the log and its name would be lost
    r = api.post("/v1/checks/logs", content=_form(CSV), headers={"content-type": "Multipart/Form-Data; boundary=B"})
    assert r.status_code == 202, r.text[:400]
    assert r.json()["name"] == "loss.csv"
