"""newuser11 #7: GRADHEALTH_MAX_UPLOAD_BYTES limits the uploaded file's bytes, sent as a form or as
a raw body alike (a 1,048,400-byte file under a 1,048,576-byte limit was refused as a form: the
limit counted the multipart framing around it)."""

from __future__ import annotations

from tests.api.helpers import running_app, settings_for

LIMIT = 50_000
PROBLEM = "application/problem+json"


def csv_of(size: int) -> bytes:
    """A Lightning-style metrics.csv of exactly ``size`` bytes."""
    rows = [b"step,loss\n"]
    step = 0
    while sum(map(len, rows)) < size - 40:
        rows.append(f"{step},{1 / (1 + step):.6f}\n".encode())
        step += 1
    body = b"".join(rows)
    last = f"{step},0.5".encode()
    return body + last + b"0" * (size - len(body) - len(last) - 1) + b"\n"


def test_the_upload_limit_counts_the_file_not_the_form(tmp_path) -> None:
    settings = settings_for(tmp_path, workers=0, max_body_bytes=4096, max_upload_bytes=LIMIT)
    at, over = csv_of(LIMIT), csv_of(LIMIT + 1)
    assert len(at) == LIMIT and len(over) == LIMIT + 1
    with running_app(settings) as client:
        form = client.post("/v1/checks/logs", files={"file": ("metrics.csv", at)})
        raw = client.post("/v1/checks/logs?filename=metrics.csv", content=at,
                          headers={"content-type": "text/csv"})
        assert form.status_code == raw.status_code == 202, (form.text, raw.text)
        for r in (client.post("/v1/checks/logs", files={"file": ("metrics.csv", over)}),
                  client.post("/v1/checks/logs?filename=metrics.csv", content=over,
                              headers={"content-type": "text/csv"}),
                  client.post("/v1/checks/model", files={"file": ("m.onnx", over)})):
            assert r.status_code == 413 and r.headers["content-type"] == PROBLEM
            assert r.json()["detail"] == ("the uploaded file is over the limit of 50,000 bytes "
                                          "(GRADHEALTH_MAX_UPLOAD_BYTES)"), r.json()
        # the framing allowance is bounded: a form body past the file's limit plus 64 KiB is refused
        # as it arrives, whatever it holds
        big = client.post("/v1/checks/logs", files={"file": ("metrics.csv", csv_of(LIMIT + 70_000))})
        assert big.status_code == 413 and "65,536 for the form's framing" in big.json()["detail"]
