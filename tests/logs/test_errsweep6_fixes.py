"""errsweep6 H3, H5, H6, H11: deep archive entries and folders, folder walks that cross into other
file systems or block on pseudo-files, a NUL byte in a text log's later line, and a first JSON
record too long or too deep to recognise: each refused with a clear message naming the place."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gradhealth.errors import LogError, UnknownLogFormat
from gradhealth.logs import load, sniff

CSV = b"step,loss\n" + b"".join(b"%d,%f\n" % (i, 1 / (i + 1)) for i in range(50))
DEEP = "d/" * 1100 + "metrics.csv"


def _tar(tmp_path: Path, name: str, data: bytes = CSV) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    path = tmp_path / "deep.tar"
    path.write_bytes(buf.getvalue())
    return path


def _zip(tmp_path: Path, name: str, data: bytes = CSV) -> Path:
    path = tmp_path / "deep.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(name, data)
    return path


# --- H3: depth and length of archive entries and folders ------------------------------------------------

def test_a_tar_entry_1100_folders_deep_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(LogError) as e:
        load.read_log(_tar(tmp_path, DEEP))
    assert type(e.value) is LogError
    assert e.value.detail.startswith("deep.tar: the entry 'd/d/d/")
    assert "nested 1,100 folders deep, more than the 64" in e.value.detail
    assert len(e.value.detail) < 300  # the 2 KB name is cut short


def test_a_zip_entry_1100_folders_deep_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(LogError) as e:
        load.read_log(_zip(tmp_path, DEEP))
    assert e.value.detail.startswith("deep.zip: the entry 'd/d/d/")
    assert "nested 1,100 folders deep" in e.value.detail and "recursion" not in e.value.detail


def test_an_entry_whose_name_part_is_longer_than_a_file_name_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(LogError) as e:
        load.read_log(_zip(tmp_path, "run/" + "a" * 300 + ".csv"))
    assert e.value.detail.startswith("deep.zip: the entry 'run/aaa")
    assert "more than 255 bytes" in e.value.detail


def test_a_folder_100_levels_deep_is_refused_naming_the_folder(tmp_path: Path) -> None:
    # (100, not 1100: pytest removes its temporary folders with the recursive shutil.rmtree)
    run = tmp_path / "run"
    here = run
    run.mkdir()
    (run / "metrics.csv").write_bytes(CSV)
    for _ in range(100):
        here = here / "d"
        here.mkdir()
    (here / "x").write_bytes(b"")
    with pytest.raises(LogError) as e:
        load.read_log(run)
    assert e.value.detail.startswith("run: the folder 'd/d/d/")
    assert "nested more than 64 folders deep" in e.value.detail


# --- H5: the folder walk stays on its file system and never blocks on a file -------------------------

class _Entry:
    """An ``os.DirEntry`` whose ``stat`` says it is on another device (a mount point)."""

    def __init__(self, entry: os.DirEntry[str]) -> None:
        self._entry = entry

    def __getattr__(self, name: str) -> Any:
        return getattr(self._entry, name)

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        st = self._entry.stat(follow_symlinks=follow_symlinks)
        fields = list(st)
        fields[stat.ST_DEV] = st.st_dev + 1
        return os.stat_result(fields)


def test_a_folder_walk_does_not_enter_another_file_system(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    (run / "proc").mkdir(parents=True)
    (run / "metrics.csv").write_bytes(CSV)
    (run / "proc" / "kmsg.csv").write_bytes(CSV.replace(b"0.", b"nan0."))
    real = os.scandir

    class _Scan:
        def __init__(self, path: Any) -> None:
            self._it = real(path)

        def __enter__(self) -> Iterator[Any]:
            return (_Entry(e) if e.name == "proc" else e for e in self._it)

        def __exit__(self, *exc: object) -> None:
            self._it.close()

    monkeypatch.setattr(os, "scandir", _Scan)
    log = load.read_log(run)
    assert log.source == "run/metrics.csv"   # one log: proc/kmsg.csv was never read
    assert any("proc/ (another file system)" in w.message for w in log.warnings)


def test_reading_a_head_never_blocks(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    worker = threading.Thread(target=lambda: got.append(sniff.read_head(fifo)), daemon=True)
    worker.start()
    worker.join(5)
    try:
        assert not worker.is_alive(), "read_head blocked on a FIFO"
        assert got == [b""]
    finally:
        if worker.is_alive():  # release the blocked open so the thread can end
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


# --- H6: a NUL byte in a later line of a text log ---------------------------------------------------------

def _nul_csv(tmp_path: Path, bad: bytes) -> Path:
    rows = [b"step,loss"] + [b"%d,0.5" % i for i in range(1, 21)] + [bad] + [b"%d,0.3" % i for i in range(22, 41)]
    path = tmp_path / "metrics.csv"
    path.write_bytes(b"\n".join(rows) + b"\n")
    return path


@pytest.mark.parametrize("bad", [b"21,0.4\x00", "21,0.4".encode("utf-16-le")])
def test_a_nul_byte_in_line_22_of_a_csv_is_refused_naming_the_line(tmp_path: Path, bad: bytes) -> None:
    path = _nul_csv(tmp_path, bad)
    assert load.detect(path) in ("native", "lightning")  # read as a table, not refused as binary
    with pytest.raises(LogError) as e:
        load.read_log(path)
    assert type(e.value) is LogError
    assert e.value.detail.startswith("metrics.csv line 22, column ")
    assert "holds a NUL byte" in e.value.detail


def test_a_text_file_no_reader_knows_names_the_line_of_its_nul_byte(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello world\nfoo \x00 bar\n")
    with pytest.raises(UnknownLogFormat) as e:
        load.detect(path)
    assert "line 2 holds a NUL byte (column 5)" in e.value.detail


def test_nul_bytes_that_dominate_still_make_a_file_binary() -> None:
    assert sniff.binary(b"\x18\x00\x00\x00\x00\x00\x00\x00loss\n")       # a TensorBoard record
    assert sniff.binary("step,loss\n1,0.5\n".encode("utf-16-le"))         # UTF-16 without a mark
    assert not sniff.binary(b"step,loss\n" + b"1,0.5\n" * 30 + b"2,0.4\x00\n")


# --- H11: a first JSON record too long or too deep to recognise -------------------------------------------

_REST = b"".join(b'{"step":%d,"loss":0.5}\n' % i for i in range(2, 40))


def test_a_first_json_record_longer_than_the_head_is_refused_naming_line_and_size(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step":1,"loss":0.5,"note":"' + b"z" * 100_000 + b'"}\n' + _REST)
    with pytest.raises(LogError) as e:
        load.detect(path)
    assert type(e.value) is LogError
    assert e.value.detail.startswith("metrics.jsonl line 1: the JSON record is 100,031 bytes long, more than "
                                     "the 65,536 bytes")


def test_a_first_json_record_nested_2000_deep_is_refused_naming_line_and_depth(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step":1,"loss":0.5,"x":' + b"[" * 2000 + b"]" * 2000 + b"}\n" + _REST)
    with pytest.raises(LogError) as e:
        load.detect(path)
    assert type(e.value) is LogError
    assert e.value.detail.startswith("metrics.jsonl line 1: the JSON record is nested 2,001 levels deep")


def test_a_reader_may_say_why_a_file_is_nearly_its_format(tmp_path: Path) -> None:
    class Picky:
        name = "picky"

        def near_miss(self, filename: str, head: bytes) -> str | None:
            return "line 3: the 'step' column is empty"

    path = tmp_path / "x.dat"
    path.write_bytes(b"something\n")
    assert sniff.near_miss(path, b"something\n", [Picky()]) == "line 3: the 'step' column is empty"  # type: ignore[list-item]


def test_a_pretty_printed_json_document_is_no_near_miss(tmp_path: Path) -> None:
    # an AllenNLP run's config.json: "{" alone on line 1 opens a document, not a JSON Lines record
    # that failed to parse; a file no reader knows stays "not a log format" (415), not a 422
    from gradhealth.errors import UnknownLogFormat
    from gradhealth.logs.load import read_log

    path = tmp_path / "config.json"
    path.write_text('{\n  "dataset_reader": {"type": "snli"},\n  "trainer": {"num_epochs": 3}\n}\n')
    with pytest.raises(UnknownLogFormat):
        read_log(path)
