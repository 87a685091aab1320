"""POST /v1/checks/logs detects an upload exactly as the loader (and so `gradhealth check`) detects
the same file: a text log in UTF-16/UTF-32 with its byte-order mark and a semicolon-separated table
with decimal commas are accepted and diagnosed as in process, and unknown bytes still get the 415
(defect E11: the route called the format sniffer directly and skipped the loader's transcoding)."""

from __future__ import annotations

import gzip
import io
import math
import zipfile
from pathlib import Path
from typing import Any

import pytest

from gradhealth.errors import UnknownLogFormat
from gradhealth.library import check_logs
from gradhealth.logs import load
from tests.api.helpers import settings_for

PROBLEM = "application/problem+json"


def text_log(n: int = 80, nan_at: int = 61) -> str:
    """A text log whose gradient norm turns NaN at ``nan_at`` (a ``nonfinite`` finding)."""
    lines = []
    for step in range(n):
        loss = 2.0 * math.exp(-step / 30) + 0.2
        norm = "nan" if step >= nan_at else f"{0.8 + 0.1 * math.sin(step):.4f}"
        lines.append(f"step:{step} loss:{loss:.4f} grad_norm:{norm}\n")
    return "".join(lines)


def semicolon_table(n: int = 80, nan_at: int = 61) -> str:
    """Excel's CSV in a locale whose decimal mark is the comma."""
    rows = ["step;loss;grad_norm\n"]
    for step in range(n):
        loss = f"{2.0 * math.exp(-step / 30) + 0.2:.4f}".replace(".", ",")
        norm = "nan" if step >= nan_at else f"{0.8 + 0.1 * math.sin(step):.4f}".replace(".", ",")
        rows.append(f"{step};{loss};{norm}\n")
    return "".join(rows)


CASES = {
    "utf16le_bom": ("train_u16.log", b"\xff\xfe" + text_log().encode("utf-16-le")),
    "utf16be_bom": ("train_u16be.log", b"\xfe\xff" + text_log().encode("utf-16-be")),
    "utf32_bom": ("train_u32.log", text_log().encode("utf-32")),
    "utf32be_bom": ("train_u32be.log", b"\x00\x00\xfe\xff" + text_log().encode("utf-32-be")),
    "semicolon_decimal_comma": ("metrics.csv", semicolon_table().encode()),
    "utf16_semicolon_csv": ("metrics_u16.csv", semicolon_table().encode("utf-16")),
}


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """What must agree between the service's and the in-process diagnosis of the same bytes."""
    return {"status": doc["status"], "findings": [f["code"] for f in doc["findings"]],
            "series": [(s["name"], s["role"], s["points"], s["first_step"], s["last_step"]) for s in doc["series"]],
            "format": doc["log"]["format"], "warnings": doc["log"]["warnings"]}


def in_process(tmp_path: Path, name: str, data: bytes, fmt: str | None = None) -> dict[str, Any]:
    """The diagnosis `gradhealth check` gives the same bytes under the same name."""
    path = tmp_path / "cli" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return check_logs(path, format=fmt, settings=settings_for(tmp_path)).model_dump(mode="json")


@pytest.mark.parametrize("case", list(CASES))
def test_upload_is_detected_and_diagnosed_as_in_process(api, tmp_path, case):
    name, data = CASES[case]
    r = api.post("/v1/checks/logs?wait=60", files={"file": (name, data)})
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["status"] == "succeeded", job
    doc = job["result"]
    expected = in_process(tmp_path, name, data)
    assert summary(doc) == summary(expected)
    assert "nonfinite" in summary(doc)["findings"]  # the log was read, not just accepted
    assert any("transcoded" in w or "UTF-" in w or "semicolons" in w for w in doc["log"]["warnings"])


def test_raw_body_in_utf16_is_detected_as_in_process(api, tmp_path):
    name, data = CASES["utf16le_bom"]
    r = api.post(f"/v1/checks/logs?wait=60&filename={name}", content=data,
                 headers={"content-type": "application/octet-stream"})
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    assert summary(r.json()["result"]) == summary(in_process(tmp_path, name, data))


def test_a_format_hint_applies_to_the_transcoded_text(api, tmp_path):
    """`--log-format text` on a UTF-16 log reads it; so does ?format=text on its upload."""
    name, data = CASES["utf32_bom"]
    r = api.post("/v1/checks/logs?wait=60&format=text", files={"file": (name, data)})
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    assert summary(r.json()["result"]) == summary(in_process(tmp_path, name, data, "text"))


def zipped(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


ARCHIVES = {
    "gz_semicolon_csv": ("metrics.csv.gz", gzip.compress(CASES["semicolon_decimal_comma"][1])),
    "gz_utf16_log": ("train_u16.log.gz", gzip.compress(CASES["utf16le_bom"][1])),
    "zip_of_wide_and_semicolon_files": ("run.zip", zipped({
        "run/metrics.csv": CASES["semicolon_decimal_comma"][1],
        "run/eval/train_u32.log": CASES["utf32_bom"][1],
        # unknown content behind a byte-order mark: skipped like any unknown file in a folder
        "run/notes.txt": b"\xff\xfe" + "\x01\x02 ~~ \x03\x04\n".encode("utf-16-le") * 40})),
}


@pytest.mark.parametrize("case", list(ARCHIVES))
def test_archives_read_their_files_as_a_lone_file_is_read(api, tmp_path, case):
    """An archive's files are detected by the same decision as a lone file (the folder walk)."""
    name, data = ARCHIVES[case]
    r = api.post("/v1/checks/logs?wait=60", files={"file": (name, data)})
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    doc = r.json()["result"]
    assert summary(doc) == summary(in_process(tmp_path, name, data))
    assert "nonfinite" in summary(doc)["findings"]
    assert any("semicolons" in w or "UTF-" in w for w in doc["log"]["warnings"])


@pytest.mark.parametrize("case", list(CASES))
def test_the_shared_detection_names_the_reader_that_reads_the_file(tmp_path, case):
    name, data = CASES[case]
    path = tmp_path / name
    path.write_bytes(data)
    assert load.detect(path) == load.read_log(path).format


def test_the_shared_detection_refuses_what_the_loader_refuses(tmp_path):
    for name, data in (("x.bin", bytes(range(256)) * 4),
                       ("blob.log", b"\xff\xfe" + "\x01\x02 ~~ \x03\x04\n".encode("utf-16-le") * 40)):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(UnknownLogFormat) as by_detect:
            load.detect(path)
        with pytest.raises(UnknownLogFormat) as by_loader:
            load.read_log(path)
        assert by_detect.value.detail == by_loader.value.detail


def test_unknown_bytes_still_get_the_415(idle_api):
    """Regression guard: the shared detection still refuses what no reader knows, before a job exists,
    including unknown content behind a byte-order mark (the loader refuses its UTF-8 text the same way)."""
    for name, data in (("x.bin", bytes(range(256)) * 4),
                       ("blob.log", b"\xff\xfe" + "\x01\x02 ~~ \x03\x04\n".encode("utf-16-le") * 40)):
        r = idle_api.post("/v1/checks/logs", files={"file": (name, data)})
        assert r.status_code == 415, (name, r.text)
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["detail"].startswith(f"{name}: not a log format gradhealth reads"), r.json()


def test_a_hint_the_transcoded_text_contradicts_is_415(idle_api):
    name, data = CASES["utf16le_bom"]
    r = idle_api.post("/v1/checks/logs?format=tensorboard", files={"file": (name, data)})
    assert r.status_code == 415 and "not in the tensorboard format" in r.json()["detail"], r.text


def test_a_pytorch_checkpoint_upload_is_refused_before_a_job_is_queued(api, tmp_path):
    """A torch.save checkpoint is a zip like an archive of logs: refused with a 415 naming it a
    checkpoint (newuser14 #4: it was queued, then failed "no file in this folder ..."), and no job
    is made for it."""
    import torch

    buf = io.BytesIO()
    torch.save({"w": torch.randn(16, 16)}, buf)
    before = api.get("/v1/jobs").json()["items"]
    r = api.post("/v1/checks/logs", files={"file": ("ckpt.pt", buf.getvalue())})
    assert r.status_code == 415, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert "ckpt.pt is a PyTorch checkpoint" in r.json()["detail"]
    assert "check_module" in r.json()["detail"]
    assert api.get("/v1/jobs").json()["items"] == before
