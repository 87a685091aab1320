"""POST /v1/checks/logs: multipart and raw uploads, format hints, limits, archives."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

PROBLEM = "application/problem+json"


def native_log(n: int = 120, nan_at: int | None = None) -> bytes:
    rng = np.random.default_rng(0)
    rows = []
    for step in range(n):
        loss = 2.0 * np.exp(-step / 40) + 0.2 + rng.normal(0, 0.01)
        grad = float(np.exp(rng.normal(0, 0.1)))
        if nan_at is not None and step >= nan_at:  # from there on: the weights are gone
            grad = float("nan")
        rows += [{"step": step, "metric": "loss", "value": loss}, {"step": step, "metric": "grad_norm", "value": grad}]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def test_multipart_upload_is_checked(api):
    r = api.post("/v1/checks/logs?wait=60", files={"file": ("run.jsonl", native_log(nan_at=77))})
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["kind"] == "logs" and job["status"] == "succeeded"
    doc = job["result"]
    assert doc["kind"] == "logs" and doc["status"] == "unhealthy"
    f = doc["findings"][0]
    assert f["code"] == "nonfinite" and f["evidence"]["metric"] == "grad_norm" and f["evidence"]["steps"][0] == 77
    assert {s["name"] for s in doc["series"]} == {"loss", "grad_norm"}


def test_raw_body_with_a_format_hint(api):
    r = api.post("/v1/checks/logs?wait=60&format=native&filename=run.jsonl", content=native_log(),
                 headers={"content-type": "application/octet-stream"})
    assert r.status_code == 200 and r.json()["result"]["status"] == "healthy", r.text


def test_same_upload_with_the_same_key_is_the_same_job(idle_api):
    headers = {"Idempotency-Key": "log-1"}
    a = idle_api.post("/v1/checks/logs", files={"file": ("a.jsonl", native_log())}, headers=headers)
    b = idle_api.post("/v1/checks/logs", files={"file": ("a.jsonl", native_log())}, headers=headers)
    assert a.status_code == b.status_code == 202 and a.json()["id"] == b.json()["id"]
    # another file name is another request (errsweep6 #8: the first job kept the old name)
    renamed = idle_api.post("/v1/checks/logs", files={"file": ("b.jsonl", native_log())}, headers=headers)
    assert renamed.status_code == 409
    c = idle_api.post("/v1/checks/logs", files={"file": ("c.jsonl", native_log(90))}, headers=headers)
    assert c.status_code == 409


def test_wrong_hint_unknown_format_and_empty_upload(idle_api):
    r = idle_api.post("/v1/checks/logs?format=tensorboard", files={"file": ("run.jsonl", native_log(20))})
    assert r.status_code == 415 and r.headers["content-type"] == PROBLEM and "tensorboard" in r.json()["detail"]
    r = idle_api.post("/v1/checks/logs", files={"file": ("x.bin", bytes(range(256)) * 4)})
    assert r.status_code == 415
    r = idle_api.post("/v1/checks/logs", files={"file": ("empty.csv", b"")})
    assert r.status_code == 422 and "empty" in r.json()["detail"]
    r = idle_api.post("/v1/checks/logs?format=nonsense", files={"file": ("run.jsonl", native_log(20))})
    assert r.status_code == 422 and "native" in r.json()["detail"]


def test_upload_over_the_limit_is_413(idle_api):
    r = idle_api.post("/v1/checks/logs", files={"file": ("big.jsonl", native_log(2000))})
    assert r.status_code == 413 and r.headers["content-type"] == PROBLEM


def test_a_zip_bomb_fails_the_job_with_a_clear_problem(api):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("run/metrics.jsonl", b"0" * 60_000_000)
    r = api.post("/v1/checks/logs?wait=60", files={"file": ("run.zip", buf.getvalue())})
    job = r.json()
    assert job["status"] == "failed", job
    assert job["error"]["status"] == 413 and "ratio" in job["error"]["detail"]


def test_a_zipped_run_folder_is_read_like_the_folder(api):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("run/train.jsonl", native_log())
    r = api.post("/v1/checks/logs?wait=60", files={"file": ("run.zip", buf.getvalue())})
    assert r.status_code == 200 and r.json()["result"]["status"] == "healthy", r.text


def test_deleting_a_log_job_deletes_its_upload(api):
    job = api.post("/v1/checks/logs?wait=60", files={"file": ("run.jsonl", native_log())}).json()
    stored = Path(api.app.state.settings.upload_dir)
    assert any(stored.iterdir())
    before = {p.name for p in stored.iterdir()}
    assert api.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert len({p.name for p in stored.iterdir()}) == len(before) - 1


# --- archives: every kind the loader reads is accepted by the upload route -----------------------

# A real log whose diagnosis has a finding (isolated grad-norm spikes), so the comparison is not of empty lists.
TEXT_LOG = Path(__file__).resolve().parents[1] / "data" / "logs" / "llmc-gpt2-124m" / "main.log"


def archived(kind: str, name: str, data: bytes) -> bytes:
    """``data`` as ``run/<name>`` inside an archive of ``kind`` (zip, tar, tar.gz, tar.bz2, tar.xz)."""
    buf = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(f"run/{name}", data)
        return buf.getvalue()
    mode = {"tar": "w", "tar.gz": "w:gz", "tar.bz2": "w:bz2", "tar.xz": "w:xz"}[kind]
    with tarfile.open(fileobj=buf, mode=mode) as t:
        info = tarfile.TarInfo(f"run/{name}")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def comparable(doc: dict) -> dict:
    """A log diagnosis without the upload's name and the time the read took."""
    out = {k: v for k, v in doc.items() if k != "name"}
    out["log"] = {k: v for k, v in doc["log"].items() if k != "duration_s"}
    return out


@pytest.fixture(scope="module")
def plain_diagnosis(api) -> dict:
    r = api.post("/v1/checks/logs?wait=60", files={"file": ("main.log", TEXT_LOG.read_bytes())})
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["status"] == "succeeded", job
    doc = job["result"]
    assert doc["log"]["format"] == "text" and doc["findings"], doc   # a diagnosis worth comparing
    return doc


@pytest.mark.parametrize(("kind", "filename"), [
    ("zip", "run.zip"), ("tar", "run.tar"), ("tar.gz", "run.tar.gz"), ("tar.bz2", "run.tar.bz2"),
    ("tar.xz", "run.tar.xz"),
    ("tar.xz", "upload.bin"), ("zip", "run.log"), ("tar.bz2", "upload"),   # found by content
])
def test_every_archive_kind_is_diagnosed_like_the_plain_file(api, plain_diagnosis, kind, filename):
    body = archived(kind, "main.log", TEXT_LOG.read_bytes())
    r = api.post("/v1/checks/logs?wait=60", files={"file": (filename, body)})
    assert r.status_code in (200, 202), r.text
    job = r.json() if r.status_code == 200 else api.wait_done(r.json()["id"])
    assert job["status"] == "succeeded", job
    assert comparable(job["result"]) == comparable(plain_diagnosis)
