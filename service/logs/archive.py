"""Extracting an uploaded archive (zip, tar, tar.gz/tgz, tar.bz2, tar.xz) within the limits.

Which kind a file is comes from :func:`gradhealth.logs.sniff.archive_kind` (by content). Limits are
checked before and while extracting: the number of entries, the total uncompressed size and the
compression ratio (uncompressed / archive size, checked once more than :data:`RATIO_FLOOR_BYTES`
have come out, so a zip bomb is refused after at most ``max_compression_ratio`` times the
archive's size) raise :class:`UploadTooLarge` with the figures; entries with absolute paths or
``..``, nested more than :data:`MAX_ENTRY_DEPTH` folders deep or with over-long names, symlinks,
hard links, devices and encrypted entries raise :class:`LogError` naming the entry.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO, cast

from gradhealth.core.ticks import tick
from gradhealth.core.zipmembers import READ_ERRORS, ZipMemberError, encrypted, open_member
from gradhealth.errors import LogError, UploadTooLarge
from gradhealth.logs.readers.registry import ReadLimits

RATIO_FLOOR_BYTES = 2**20          # the ratio is checked once this much has come out
_CHUNK = 2**20


def extract(path: Path, kind: str, dest: Path, limits: ReadLimits) -> None:
    """Extract the archive at ``path`` (``kind`` as :func:`gradhealth.logs.sniff.archive_kind`
    says) into the existing folder ``dest``, refusing it over ``limits``."""
    budget = _Budget(path.name, max(path.stat().st_size, 1), limits)
    if kind == "zip":
        _extract_zip(path, dest, budget)
    elif kind in _COMPRESSED and not _holds_tar(path, kind):
        _extract_single(path, kind, dest, budget)
    else:
        _extract_tar(path, kind, dest, budget)


#: Compressions a lone file comes in (a rotated ``train.log.gz``) as well as a tar
_COMPRESSED = {"gz": (".gz", ".gzip"), "bz2": (".bz2",), "xz": (".xz",)}


#: The magic bytes of what a compressed file may hold that is compressed again, and its name.
_INNER_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"), (b"PK\x03\x04", "zip"),
                (b"(\xb5/\xfd", "zstd"))


def _holds_tar(path: Path, kind: str) -> bool:
    """Whether the compressed file's content is a tar: its first header's ``ustar`` magic (POSIX and
    GNU tar both write it); a file that cannot be decompressed is left to the tar reader's error.
    Content shorter than a tar header (512 bytes) is a lone file (a short ``train.log.gz``); content
    that is compressed again (20 nested gzips: errsweep6, "not a readable tar archive (truncated
    header)") is refused, saying so."""
    try:
        with _open_tar_stream(path, kind) as raw:
            head = raw.read(512)
    except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError):
        return True
    inner = next((name for magic, name in _INNER_MAGIC if head.startswith(magic)), None)
    if inner is not None:
        raise LogError(f"{path.name}: a {kind} file whose content is compressed again ({inner}); compression "
                       "inside compression is not unpacked: upload the log (or a tar or zip of logs) "
                       "compressed once")
    return len(head) == 512 and head[257:262] == b"ustar"


def _extract_single(path: Path, kind: str, dest: Path, budget: _Budget) -> None:
    """A lone compressed file (``train.log.gz``), decompressed under its name without the suffix,
    within the same limits as an archive's entries."""
    name = path.name
    for suffix in _COMPRESSED[kind]:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            name = name[:-len(suffix)]
            break
    budget.entry()
    try:
        with _open_tar_stream(path, kind) as raw:
            _copy(cast(IO[bytes], raw), _safe_target(dest, name, path.name), budget, None, dest)
    except (EOFError, zlib.error, lzma.LZMAError) as e:
        raise LogError(f"{path.name}: not a readable {kind} file ({e})") from None
    except OSError as e:   # gzip.BadGzipFile is an OSError
        raise LogError(f"{path.name}: not a readable {kind} file ({e.strerror or e})") from None


class _Budget:
    """Counts what comes out of an archive and refuses it over the limits."""

    def __init__(self, name: str, archive_size: int, limits: ReadLimits) -> None:
        self.name, self.archive_size, self.limits = name, archive_size, limits
        self.entries = 0
        self.out = 0

    def entry(self) -> None:
        self.entries += 1
        if self.entries > self.limits.max_archive_entries:
            raise UploadTooLarge(f"{self.name}: more than {self.limits.max_archive_entries:,} entries; "
                                 f"the limit is {self.limits.max_archive_entries:,}")

    def declared(self, total: int) -> None:
        self._check(total, "declares")

    def grow(self, n: int) -> None:
        self.out += n
        self._check(self.out, "expands to")

    def _check(self, total: int, verb: str) -> None:
        lim = self.limits
        if total > lim.max_uncompressed_bytes:
            raise UploadTooLarge(f"{self.name} {verb} more than {lim.max_uncompressed_bytes:,} bytes "
                                 f"uncompressed ({total:,} so far); the limit is {lim.max_uncompressed_bytes:,}")
        ratio = total / self.archive_size
        if total > RATIO_FLOOR_BYTES and ratio > lim.max_compression_ratio:
            raise UploadTooLarge(f"{self.name} {verb} {total:,} bytes from {self.archive_size:,} "
                                 f"compressed (ratio {ratio:,.0f}); the limit is "
                                 f"{lim.max_compression_ratio:,.0f}: refused as a possible zip bomb")


#: How deep an entry may sit (folders above its file) and how long its name may be (characters; a
#: part of it, bytes as the file system counts them): an entry past these is refused naming it,
#: before any folder is made (the system limits are 4,096 bytes a path and 255 a name)
MAX_ENTRY_DEPTH = 64
MAX_ENTRY_CHARS = 1024
MAX_PART_BYTES = 255

#: A control character (C0, DEL, C1): no file name needs one, and one in a name could forge lines
#: of a log or CI annotation that quotes it.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def shown_name(name: str, n: int = 80) -> str:
    """``name`` quoted for a message, its middle cut out where it is longer than ``n`` characters
    (a 2 KB entry name would drown the message)."""
    return repr(name if len(name) <= n else f"{name[:n // 2]}...{name[-(n // 2):]}")


def _safe_target(dest: Path, name: str, archive: str) -> Path:
    """Where the entry ``name`` is extracted inside ``dest``; a :class:`LogError` saying which check
    refuses it (a control character, an absolute path or drive, ``..``, more than
    :data:`MAX_ENTRY_DEPTH` folders deep, a name over :data:`MAX_ENTRY_CHARS` characters or a part
    of it over :data:`MAX_PART_BYTES` bytes)."""
    clean = name.replace("\\", "/")
    parts = PurePosixPath(clean).parts
    refused = f"{archive}: the entry {shown_name(name)}"
    if (control := _CONTROL.search(name)) is not None:
        raise LogError(f"{refused} holds a control character ({control.group()!r}) in its name; refused")
    if len(parts) > MAX_ENTRY_DEPTH + 1:
        raise LogError(f"{refused} is nested {len(parts) - 1:,} folders deep, more than the "
                       f"{MAX_ENTRY_DEPTH} an archive's entry may be; refused")
    if len(name) > MAX_ENTRY_CHARS:
        raise LogError(f"{refused} has a name of {len(name):,} characters, longer than the "
                       f"{MAX_ENTRY_CHARS:,} an archive's entry may have; refused")
    if (long := next((p for p in parts if len(p.encode("utf-8", "surrogateescape")) > MAX_PART_BYTES),
                     None)) is not None:
        raise LogError(f"{refused} has a part {shown_name(long, 40)} of more than {MAX_PART_BYTES} "
                       "bytes, longer than a file name may be; refused")
    if clean.startswith("/") or (parts and ":" in parts[0]):
        # "/x", "C:/x", and any ":" in the first part: on Windows a drive, or an NTFS stream ("x:y")
        raise LogError(f"{refused} points outside the archive: it is an absolute path (or names a "
                       "drive); refused")
    if ".." in parts:
        raise LogError(f"{refused} points outside the archive: it climbs out with '..'; refused")
    return dest.joinpath(*[p for p in parts if p not in ("", ".")])


def _make_folders(dest: Path, target: Path) -> None:
    """``target`` and the folders between ``dest`` and it, made one by one (``mkdir(parents=True)``
    recurses once per level)."""
    folder = dest
    for part in target.relative_to(dest).parts:
        folder = folder / part
        folder.mkdir(exist_ok=True)


def _copy(src: IO[bytes], target: Path, budget: _Budget, declared: int | None, dest: Path) -> None:
    if target.exists():
        # a second entry of the same name: zip and tar tools disagree about which one counts (the
        # first, the last, or both, renamed), so reading either would judge a file the user may not
        # have meant
        raise LogError(f"{budget.name}: the entry {shown_name(str(target.relative_to(dest)))} appears twice "
                       "in the archive (tools disagree about which copy counts); refused")
    _make_folders(dest, target.parent)
    written = 0
    with target.open("wb") as out:
        while True:
            tick()  # a large member's extraction: a cancelled job stops here
            chunk = src.read(_CHUNK)
            if not chunk:
                break
            written += len(chunk)
            if declared is not None and written > declared:
                raise LogError(f"{budget.name}: the entry {target.name!r} holds more data than its "
                               "header declares; refused")
            budget.grow(len(chunk))
            out.write(chunk)


def _extract_zip(path: Path, dest: Path, budget: _Budget) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > budget.limits.max_archive_entries:
                raise UploadTooLarge(f"{path.name}: {len(infos):,} entries; the limit is "
                                     f"{budget.limits.max_archive_entries:,}")
            budget.declared(sum(i.file_size for i in infos))
            for info in infos:
                budget.entry()
                target = _safe_target(dest, info.filename, path.name)
                if target == dest:
                    continue
                ftype = stat.S_IFMT(info.external_attr >> 16)     # 0 when the zip does not say
                if ftype and ftype not in (stat.S_IFREG, stat.S_IFDIR):
                    raise LogError(f"{path.name}: the entry {info.filename!r} is a link or device; refused")
                if encrypted(info):
                    raise LogError(f"{path.name}: the entry {info.filename!r} is encrypted")
                if info.is_dir():
                    _make_folders(dest, target)
                    continue
                try:
                    with open_member(zf, info) as src:
                        _copy(src, target, budget, info.file_size, dest)
                except ZipMemberError as e:  # the shared reader's refusal, in this module's words
                    raise LogError(f"{path.name}: not a readable zip archive "
                                   f"({e.cause if e.cause is not None else e.reason})") from None
    except READ_ERRORS as e:
        raise LogError(f"{path.name}: not a readable zip archive ({e})") from None
    except OSError as e:
        raise LogError(f"{path.name}: cannot be extracted ({e.strerror or e})") from None


class _Counting:
    """A decompressed stream that refuses to give out more than the limits allow."""

    def __init__(self, raw: io.BufferedIOBase, budget: _Budget) -> None:
        self.raw, self.budget, self.n = raw, budget, 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.n += len(data)
        # Everything decompressed counts here (tar headers and padding too), with some slack over
        # the per-file count that _copy keeps: this stops a bomb hidden in headers or padding.
        lim = self.budget.limits
        if (self.n > lim.max_uncompressed_bytes + 2**20
                or (self.n > 2 * RATIO_FLOOR_BYTES
                    and self.n / self.budget.archive_size > 1.5 * lim.max_compression_ratio)):
            raise UploadTooLarge(f"{self.budget.name} expands to more than {self.n:,} bytes from "
                                 f"{self.budget.archive_size:,} compressed; the limits are "
                                 f"{lim.max_uncompressed_bytes:,} bytes and a ratio of "
                                 f"{lim.max_compression_ratio:,.0f}")
        return data


def _open_tar_stream(path: Path, kind: str) -> io.BufferedIOBase:
    """The tar inside the file, decompressed as it is read."""
    if kind == "gz":
        return gzip.open(path, "rb")
    if kind == "bz2":
        return bz2.open(path, "rb")
    if kind == "xz":
        return lzma.open(path, "rb")
    return path.open("rb")


def _extract_tar(path: Path, kind: str, dest: Path, budget: _Budget) -> None:
    try:
        # _Counting is a read-only stream: all that tarfile's stream mode "r|" uses
        with _open_tar_stream(path, kind) as raw, \
                tarfile.open(fileobj=cast(IO[bytes], _Counting(raw, budget)), mode="r|") as tf:
            for member in tf:
                budget.entry()
                target = _safe_target(dest, member.name, path.name)
                if target == dest:
                    continue
                if member.isdir():
                    _make_folders(dest, target)
                    continue
                if not member.isreg():
                    raise LogError(f"{path.name}: the entry {member.name!r} is a link or device; refused")
                budget.declared(budget.out + member.size)
                src = tf.extractfile(member)
                if src is None:
                    continue
                _copy(src, target, budget, member.size, dest)
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, ValueError) as e:
        raise LogError(f"{path.name}: not a readable tar archive ({e})") from None
    except OSError as e:   # gzip.BadGzipFile is an OSError
        raise LogError(f"{path.name}: not a readable archive ({e.strerror or e})") from None
