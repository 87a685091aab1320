"""The one archive detector, size check and format sniffer (gradhealth.logs.sniff), used by the
loader and the upload route alike."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from gradhealth.errors import LogError, UnknownLogFormat, UploadTooLarge
from gradhealth.logs import sniff
from gradhealth.logs.load import read_log
from gradhealth.logs.readers.registry import ReadLimits

CSV = b"step,loss,grad_norm\n1,2.0,0.5\n2,1.9,0.6\n3,1.8,0.55\n"
TAR_MODES = {"tar": "w", "gz": "w:gz", "bz2": "w:bz2", "xz": "w:xz"}


def make_archive(path: Path, kind: str) -> Path:
    """A real archive of ``kind`` (zip, tar, gz, bz2, xz: the last three tars) holding one CSV log,
    written by the standard library under whatever name ``path`` has."""
    buf = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("run/train.csv", CSV)
    else:
        with tarfile.open(fileobj=buf, mode=TAR_MODES[kind]) as t:
            info = tarfile.TarInfo("run/train.csv")
            info.size = len(CSV)
            t.addfile(info, io.BytesIO(CSV))
    path.write_bytes(buf.getvalue())
    return path


@pytest.mark.parametrize("kind", ["zip", "tar", "gz", "bz2", "xz"])
@pytest.mark.parametrize("name", ["metrics.log", "upload.bin", "upload", "run.csv"])
def test_archives_are_found_by_their_bytes_whatever_their_name(tmp_path, kind, name):
    path = make_archive(tmp_path / name, kind)
    assert sniff.archive_kind(path) == kind
    # the standard library's own tests agree (tarfile opens the compressed tars transparently)
    assert zipfile.is_zipfile(path) == (kind == "zip")
    assert tarfile.is_tarfile(path) == (kind != "zip")
    # and the loader reads it as the log inside
    log = read_log(path)
    assert log.format == "native" and {s.name for s in log.series} == {"loss", "grad_norm"}


def test_a_zip_named_log_and_a_tar_xz_named_bin(tmp_path):
    assert sniff.archive_kind(make_archive(tmp_path / "train.log", "zip")) == "zip"
    assert sniff.archive_kind(make_archive(tmp_path / "events.bin", "xz")) == "xz"


def test_the_tar_magic_sits_at_byte_257():
    head = bytearray(512)
    head[257:262] = b"ustar"
    assert sniff.archive_kind_of("x.bin", bytes(head)) == "tar"
    head[257:262] = b"other"
    assert sniff.archive_kind_of("x.bin", bytes(head)) is None


@pytest.mark.parametrize(("name", "kind"), [("run.zip", "zip"), ("run.tar", "tar"), ("run.TGZ", "tar"),
                                            ("run.tar.xz", "tar"), ("run.tbz2", "tar")])
def test_the_name_counts_only_when_the_bytes_say_nothing(name, kind):
    assert sniff.archive_kind_of(name, b"no magic here") == kind
    assert sniff.archive_kind_of(name, b"BZh91AY&SY") == "bz2"   # the bytes win over the name


@pytest.mark.parametrize("name", ["metrics.csv", "events.out.tfevents.1", "trainer_state.json"])
def test_logs_are_not_archives(tmp_path, name):
    (tmp_path / name).write_bytes(CSV)
    assert sniff.archive_kind(tmp_path / name) is None
    assert sniff.archive_kind(tmp_path / "missing.zip") is None   # unreadable: not an archive


def test_the_size_check(tmp_path):
    p = tmp_path / "m.csv"
    p.write_bytes(CSV)
    assert sniff.check_size(p, ReadLimits(max_file_bytes=len(CSV))) == len(CSV)
    with pytest.raises(UploadTooLarge, match=f"run/m.csv is {len(CSV)} bytes; .* {len(CSV) - 1} bytes"):
        sniff.check_size(p, ReadLimits(max_file_bytes=len(CSV) - 1), "run/m.csv")
    with pytest.raises(LogError, match="cannot be read"):
        sniff.check_size(tmp_path / "gone.csv", ReadLimits())


def test_the_readers_default_file_limit_is_the_upload_setting():
    from gradhealth.settings import Settings

    assert ReadLimits().max_file_bytes == Settings.model_fields["max_upload_bytes"].default == 512 * 2**20
    assert Settings(max_upload_bytes=4096).read_limits().max_file_bytes == 4096


def test_detect_and_sniff_are_one_path(tmp_path):
    p = tmp_path / "train.csv"
    p.write_bytes(CSV)
    best, score = sniff.sniff(p.name, p.read_bytes())
    assert best is sniff.detect(p) and best.name == "native" and score > 0
    assert sniff.detect(p, "native") is best
    with pytest.raises(UnknownLogFormat, match="not in the tensorboard format; it looks like native"):
        sniff.detect(p, "tensorboard")
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(UnknownLogFormat, match="empty"):
        sniff.detect(tmp_path / "empty.csv")
    assert sniff.sniff("x.bin", bytes(range(256)) * 4) == (None, 0.0)


def test_a_git_lfs_pointer_is_named_as_one(tmp_path):
    p = tmp_path / "main.log"
    p.write_text("version https://git-lfs.github.com/spec/v1\n"
                 "oid sha256:7dcd4659b72c3bf2da565931eeaa1f1bd9397ddb6a3eb3fe538c91e7e4bcde50\nsize 793878\n")
    for fmt in (None, "text"):
        with pytest.raises(UnknownLogFormat, match="Git LFS pointer.*git lfs pull"):
            read_log(p, format=fmt)
    # the same check as the model doors' (a pointer after a blank line or a byte-order mark too)
    p.write_bytes(b"\xef\xbb\xbf\n" + p.read_bytes())
    with pytest.raises(UnknownLogFormat, match="Git LFS pointer.*git lfs pull"):
        read_log(p)


def test_a_python_file_is_told_how_a_module_is_checked(tmp_path):
    # modsweep19: `gradhealth check model.py` said only "not a log format this service reads"
    path = tmp_path / "model.py"
    path.write_text("import torch\nclass Net(torch.nn.Module):\n    pass\n")
    with pytest.raises(UnknownLogFormat, match=r"model\.py is Python source.*check_module\(model, example_inputs\)"):
        sniff.detect(path)
