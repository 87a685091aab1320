"""errsweep3 F6, F11, F14, F15 and F16 (reports) over HTTP: an upload folder that cannot be written,
a Content-Encoding on the upload doors, a line break in a model's name, multipart messages, and
strict Accept q-values and repeated report parameters."""

from __future__ import annotations

import errno
import gzip
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from gradhealth.report.context import ReportContext
from gradhealth.report.html import render_html
from tests.api.helpers import TINY, Api, running_app, settings_for
from tests.report.helpers import document, finding, remedy

PROBLEM = "application/problem+json"
CSV = b"step,loss\n1,2\n2,1\n3,0.5\n"


def tiny_onnx() -> bytes:
    """y = Gemm(x[8, 4], W[4, 4], b[4]): the smallest model the model door takes."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(4, 4)).astype(np.float32), "W")
    b = numpy_helper.from_array(np.zeros(4, np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "b"], ["y"], name="fc")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 4])], initializer=[w, b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """No workers: jobs stay queued (nothing here needs a result)."""
    with running_app(settings_for(tmp_path_factory.mktemp("errsweep3"), workers=0)) as client:
        yield client


def problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"] == PROBLEM
    return r.json()


def multipart(app: Api, body: bytes, path: str = "/v1/checks/logs") -> Any:
    return app.post(path, content=body, headers={"content-type": "multipart/form-data; boundary=XyZ"})


def part(name: str, data: bytes, disposition: str = "") -> bytes:
    return (b'--XyZ\r\nContent-Disposition: form-data; name="' + name.encode() + b'"' + disposition.encode()
            + b"\r\n\r\n" + data + b"\r\n")


# --- F6: the upload folder ------------------------------------------------------------------------


def test_a_service_whose_upload_folder_cannot_be_created_does_not_start(tmp_path):
    from gradhealth.api.app import StartupError

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings = settings_for(tmp_path, workers=0, upload_dir=str(blocker / "uploads"))
    with (pytest.raises(StartupError, match=r"GRADHEALTH_UPLOAD_DIR .*a-file/uploads cannot be created"),
          running_app(settings)):
        pass


def test_an_upload_folder_gone_bad_is_a_503_on_readyz_and_on_uploads_never_a_500(tmp_path):
    with running_app(settings_for(tmp_path, workers=0)) as api:
        folder = Path(api.app.state.settings.upload_dir)
        assert api.get("/readyz").json()["checks"]["upload_dir"] == "ok"
        shutil.rmtree(folder)
        folder.write_text("the folder replaced by a file")  # as a lost mount or a bad setting would
        ready = api.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["upload_dir"].startswith("GRADHEALTH_UPLOAD_DIR cannot be written")
        for r in (api.post("/v1/checks/logs", files={"file": ("m.csv", CSV)}),
                  api.post("/v1/checks/logs?filename=m.csv", content=CSV),
                  api.post("/v1/checks/model", files={"file": ("m.onnx", tiny_onnx())})):
            detail = problem(r, 503)["detail"]
            assert "GRADHEALTH_UPLOAD_DIR" in detail and str(folder) not in detail


def test_a_full_disk_is_a_507():
    from gradhealth.api.routers.checks import storage_error

    error = storage_error(OSError(errno.ENOSPC, "No space left on device"), Path("/nowhere"))
    assert (error.status, error.title) == (507, "Insufficient storage")
    assert "No space left on device" in error.detail


# --- F11: Content-Encoding on every door ------------------------------------------------------------


@pytest.mark.parametrize(("path", "body", "encoding", "media"), [
    ("/v1/checks/logs?filename=m.csv", CSV, "br", "application/octet-stream"),
    ("/v1/checks/logs?filename=m.csv", zlib.compress(CSV), "deflate", "application/octet-stream"),
    ("/v1/checks/model", gzip.compress(tiny_onnx(), mtime=0), "gzip", "application/onnx"),
    ("/v1/checks/model", tiny_onnx(), "gzip", "application/onnx"),
    ("/v1/checks/architecture", gzip.compress(b"{}", mtime=0), "gzip", "application/json"),
    ("/v1/checks/logs?filename=m.csv", CSV, "identity, gzip", "application/octet-stream"),
])
def test_every_upload_door_refuses_a_content_encoding_alike(app, path, body, encoding, media):
    r = app.post(path, content=body, headers={"content-encoding": encoding, "content-type": media})
    body_ = problem(r, 415)
    assert body_["detail"] == f"Content-Encoding {encoding} is not supported; send the body uncompressed"
    assert r.headers["accept-encoding"] == "identity"
    # the header named as where the problem is, as the other header refusals do
    assert [e["parameter"] for e in body_["errors"]] == ["header.Content-Encoding"]


def test_a_multipart_upload_with_a_content_encoding_is_refused_too(app):
    r = app.post("/v1/checks/logs", files={"file": ("m.csv", CSV)}, headers={"content-encoding": "gzip"})
    assert problem(r, 415)["type"].endswith("/unsupported-content-encoding")


def test_identity_is_still_accepted_on_the_upload_doors(app):
    r = app.post("/v1/checks/logs?filename=m.csv", content=CSV, headers={"content-encoding": "identity"})
    assert r.status_code == 202, r.text
    r = app.post("/v1/checks/model", content=tiny_onnx(),
                 headers={"content-encoding": "identity", "content-type": "application/onnx"})
    assert r.status_code == 202, r.text


# --- F14: a model's name on one line ---------------------------------------------------------------


def test_the_model_doors_filename_field_is_stored_on_one_line(app):
    r = app.post("/v1/checks/model", files={"file": ("a.onnx", tiny_onnx())},
                 data={"filename": "m.onnx\n::error::forged\r\x85"})
    assert r.status_code == 202, r.text
    row = api_request(app, r.json()["id"])
    assert row["filename"] == "m.onnx ::error::forged"


def api_request(app: Api, job_id: str) -> dict[str, Any]:
    """The job's stored request, as the worker and the report read it."""
    from gradhealth.jobs import store

    with app.app.state.sessions() as session:
        return dict(store.get(session, job_id, "anonymous").request)


@pytest.mark.parametrize("name", ["m.onnx\n::error::forged", "m\r::warning::x", "a\u2028::error::y",
                                  "x\x0b  ::notice::z"])
def test_the_html_report_starts_no_line_with_a_name(name):
    doc = document([finding("vanishing_gradients", "error", f"in {name}", layers=[name],
                            remedies=[remedy("xavier_init")])]).model_copy(update={"name": name})
    doc.findings[0].remedies[0].snippet = f"model = build()\n{name}\n  ::error::in-snippet"
    page = render_html(doc, ReportContext(source=name))
    assert not [line for line in page.splitlines() if line.lstrip().startswith("::")]
    assert "::error::forged" in page or "::warning::x" in page or "::error::y" in page or "::notice::z" in page


# --- F15: multipart messages -----------------------------------------------------------------------


def test_a_file_part_without_filename_says_so(app):
    detail = problem(multipart(app, part("file", CSV) + b"--XyZ--\r\n"), 422)["detail"]
    assert "part `file` has no filename=" in detail and "text field" in detail


def test_a_file_part_with_only_filename_star_says_it_is_not_read(app):
    body = part("file", CSV, "; filename*=UTF-8''m.csv") + b"--XyZ--\r\n"
    detail = problem(multipart(app, body), 422)["detail"]
    assert "filename*= alone is not read" in detail


def test_a_body_cut_before_its_closing_boundary_says_so(app):
    body = b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="m.csv"\r\n\r\n' + CSV
    detail = problem(multipart(app, body), 400)["detail"]
    assert "ends before its closing boundary --XyZ--" in detail


def test_a_closing_boundary_split_across_chunks_is_found(app):
    body = part("file", CSV, '; filename="m.csv"') + b"--XyZ--\r\n"

    async def chunks() -> Any:
        for i in range(0, len(body), 3):
            yield body[i:i + 3]

    r = app.post("/v1/checks/logs", content=chunks(), headers={"content-type": "multipart/form-data; boundary=XyZ"})
    assert r.status_code == 202, r.text


def test_a_part_header_over_the_limit_names_the_header(app):
    body = part("file", CSV, '; filename="' + "a" * 10_000 + '.csv"') + b"--XyZ--\r\n"
    detail = problem(multipart(app, body), 400)["detail"]
    assert "header line is over 4,224 bytes" in detail and "Invalid multipart data" not in detail


@pytest.mark.parametrize("path", ["/v1/checks/logs", "/v1/checks/model"])
def test_no_file_part_at_all_names_the_parts_sent(app, path):
    detail = problem(multipart(app, part("data", CSV, '; filename="m.csv"') + b"--XyZ--\r\n", path), 422)["detail"]
    assert "multipart part named `file`" in detail and "(the body has: data)" in detail


def test_an_unknown_field_on_the_log_door_is_refused(app):
    body = part("file", CSV, '; filename="m.csv"') + part("note", b"x") + b"--XyZ--\r\n"
    r = multipart(app, body)
    assert problem(r, 422)["type"].endswith("/invalid-option")
    assert r.json()["detail"].startswith("unknown fields: note;")


# --- F16: Accept q-values and repeated report parameters ------------------------------------------


@pytest.fixture(scope="module")
def queued(app: Api) -> str:
    r = app.post("/v1/checks/architecture", json=TINY)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


@pytest.mark.parametrize("accept", ["text/html;q=inf, application/json", "*/*;q=nan", "application/xml;q=1e999",
                                    "application/json;q=-1, text/plain", "text/plain;q=1.5", "text/plain;q=",
                                    "text/plain;q=0x1"])
def test_an_accept_q_outside_0_to_1_is_a_400_naming_the_header(app, queued, accept):
    detail = problem(app.get(f"/v1/jobs/{queued}/report", headers={"accept": accept}), 400)["detail"]
    assert detail.startswith("header.Accept: q=") and "from 0 to 1" in detail


@pytest.mark.parametrize("accept", ["text/plain;q=0.5", "text/plain;q=1", "text/plain;q=1.000", "text/plain;q=0",
                                    "text/plain;q=.25, */*;q=0.0001"])
def test_valid_q_values_still_negotiate(app, queued, accept):
    # the job is queued: a format was chosen (no 400/406), and the report waits for the result (409)
    r = app.get(f"/v1/jobs/{queued}/report", headers={"accept": accept})
    assert r.status_code in (406, 409), r.text
    if accept != "text/plain;q=0":
        assert r.status_code == 409


@pytest.mark.parametrize("query", ["format=json&format=sarif", "format=json&format=json",
                                   "source=a.yaml&source=b.yaml"])
def test_a_repeated_report_parameter_is_a_422_naming_it(app, queued, query):
    detail = problem(app.get(f"/v1/jobs/{queued}/report?{query}"), 422)["detail"]
    name = query.split("=")[0]
    assert detail.startswith(f"query.{name}: given 2 times")


def test_each_unknown_field_is_its_own_error_item_naming_it(app):
    """newuser15: two unknown form fields gave one errors[] item with parameter null; a generated
    client maps each item's parameter to a form field."""
    body = (part("file", CSV, '; filename="m.csv"') + part("note", b"x") + part("sedes", b"3")
            + b"--XyZ--\r\n")
    errors = problem(multipart(app, body, "/v1/checks/model"), 422)["errors"]
    assert [e["parameter"] for e in errors] == ["note", "sedes"]
    assert "did you mean 'seeds'?" in errors[1]["detail"] and "allowed: " in errors[0]["detail"]


def test_a_long_list_of_unknown_fields_is_cut_between_names(app):
    """Four unknown fields of 70 characters make a list over the 200 characters the message gives it:
    it is cut after a whole name and says so (`…`), never inside a name."""
    names = [f"option_{i}_" + "x" * 61 for i in range(4)]
    body = part("file", CSV, '; filename="m.csv"') + b"".join(part(n, b"x") for n in names) + b"--XyZ--\r\n"
    detail = problem(multipart(app, body), 422)["detail"]
    listed = detail.removeprefix("unknown fields: ").split("; ")[0]
    assert listed.endswith(" …"), detail
    shown = listed.removesuffix(" …").split(", ")
    assert 1 < len(shown) < len(names) and all(n in names for n in shown), shown
