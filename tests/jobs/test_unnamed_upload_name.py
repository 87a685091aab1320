"""newuser18 #6: a log sent as a raw body without ?filename= was diagnosed under the name ``upload``, a
file name the client never gave (its stored file's). Such a diagnosis is named UNNAMED_UPLOAD; a
named upload keeps its file's name."""

from __future__ import annotations

from pathlib import Path

from gradhealth.jobs.kinds import UNNAMED_UPLOAD, run_logs
from gradhealth.settings import Settings

CSV = "step,loss\n" + "".join(f"{i},{1.0 / (i + 1)}\n" for i in range(40))


def _run(tmp_path: Path, **request: object) -> dict:
    path = tmp_path / str(request.get("filename"))
    path.write_text(CSV)
    return run_logs({"path": str(path), "format": None, **request}, lambda f, s: None, Settings())


def test_a_raw_upload_without_a_filename_is_not_named_upload(tmp_path: Path) -> None:
    doc = _run(tmp_path, filename="upload", unnamed=True)
    assert doc["name"] == UNNAMED_UPLOAD != "upload"


def test_a_named_upload_keeps_its_file_name(tmp_path: Path) -> None:
    assert _run(tmp_path, filename="loss.csv")["name"] == "loss.csv"
