"""Reading a training log from a file, a folder or an archive: :func:`read_log`.

- A **file** is read by the reader :func:`gradhealth.logs.sniff.detect` picks (or the one the
  ``format`` hint names, checked against the content); a text log in UTF-16/32 with its byte-order
  mark, and a semicolon-separated table with decimal commas, as the UTF-8 or comma-separated copy
  of it. :func:`detect` makes the same decision without reading the file (the upload route's
  check, so the service accepts what this module reads).
- A **folder** that is an MLflow run folder (``metrics/`` of MLflow metric files) is read by the
  mlflow reader. Any other folder is walked (hidden files and folders, ``__MACOSX`` and symlinks
  are skipped): MLflow run folders inside it are read as runs, and every other file a reader
  recognises is read with it. The walk stays on the folder's file system (``/proc``, ``/sys`` and
  other mount points are noted, never entered), opens regular files only (an empty one is not
  opened: a pseudo-file's size is 0) and refuses a folder nested more than
  :data:`MAX_FOLDER_DEPTH` deep. With one log in the folder the result is that log's RunLog; with
  more, the logs are merged into one RunLog with ``format="folder"`` and every series name is
  prefixed with its relative sub-folder (``validation/epoch_loss``); series of the same name in
  the same sub-folder (an event file per restart) are joined. Files no reader recognises are
  listed in one ``skipped_files`` warning.
- An **archive** (``.zip``, ``.tar``, ``.tar.gz``/``.tgz``, also ``.tar.bz2``/``.tar.xz``; found by
  content, not only by name: :func:`gradhealth.logs.sniff.archive_kind`) is extracted to a
  temporary folder (:func:`gradhealth.logs.archive.extract`, which refuses bombs, links and paths
  outside the archive), which is then read as above.

A file over ``limits.max_file_bytes`` and a result over ``limits.max_points`` raise
:class:`UploadTooLarge`. Error and warning messages name the file by its path inside the folder or
archive.
"""

from __future__ import annotations

import csv
import hashlib
import math
import mmap
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

import numpy as np

from gradhealth.core import ticks
from gradhealth.core.words import first_few
from gradhealth.errors import LogError, UnknownLogFormat, UploadTooLarge
from gradhealth.logs import archive, derive, sniff
from gradhealth.logs.foreign import zip_is
from gradhealth.logs.readers import registry
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.series import (
    LogWarning,
    Role,
    RunLog,
    Series,
    classify,
    several_runs,
    starts_again,
)
from gradhealth.logs.stats import natural_key
from gradhealth.logs.stats import num as _num


def read_log(path: Path, *, format: str | None = None,  # noqa: A002
             limits: ReadLimits | None = None) -> RunLog:
    """Read a log file, a run folder or an archive of one into a :class:`RunLog` (default limits:
    :class:`ReadLimits`' own, whose file limit is the service's upload limit). A run that logs only
    component losses gets their sum as its loss (:func:`gradhealth.logs.derive.add_component_losses`),
    one that logs a perplexity and no loss gets its log (:func:`.derive.add_loss_from_perplexity`),
    and one whose loss has a name of its own (``mse_loss``) reads that (:func:`.derive.add_named_loss`)."""
    run = _cut_long_names(_read_any(Path(path), format, limits or ReadLimits()))
    return derive.add_named_loss(derive.add_loss_from_perplexity(derive.add_component_losses(run)))


#: A series name longer than this many characters is cut where it is shown (a tag of a megabyte, a
#: tensor printed into a tag by mistake): a metric's name is a few dozen characters
MAX_NAME = 256
_NAME_KEPT = 200


def short_name(name: str) -> str:
    """``name``, or where longer than :data:`MAX_NAME` its first characters, its length and a hash of
    the whole (two long names with the same beginning stay two series)."""
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{name[:_NAME_KEPT]}... ({len(name):,} characters, #{digest})"


def _cut_long_names(run: RunLog) -> RunLog:
    """``run`` with each series name longer than :data:`MAX_NAME` cut (:func:`short_name`), its
    role (read from the whole name) kept, and a ``long_names`` note: a report names a series in
    several places, and a megabyte's tag would be printed whole in each."""
    long = [s for s in run.series if len(s.name) > MAX_NAME]
    if not long:
        return run
    for s in long:
        s.name = short_name(s.name)
    run.warnings.append(LogWarning(
        "long_names", f"{run.source}: {len(long)} series name(s) longer than {MAX_NAME} characters, shown cut to "
        f"their first {_NAME_KEPT} with their length (the first: {long[0].name!r})"))
    return run


def _read_any(path: Path, format: str | None, limits: ReadLimits) -> RunLog:  # noqa: A002
    # the path as the caller gave it: a device's base name alone read as another file (errsweep8:
    # /dev/zero was "zero: not a regular file")
    try:
        if not path.exists():
            raise LogError(f"{path}: no such file or folder")
        if path.is_dir():
            return _read_folder(path, path.name or path.resolve().name, format, limits)
        if not path.is_file():
            raise LogError(f"{path}: not a regular file ({_not_a_file(path)})")
    except OSError as e:
        raise LogError(f"{path}: cannot be read ({e.strerror or e})") from None
    kind = sniff.archive_kind(path)
    if kind is not None:
        _refuse_foreign_zip(path, kind)
        return _read_archive(path, kind, format, limits)
    log = _read_file(path, path.name, format, limits)
    return _alone(("validation", log), path.parent, []) if _keras_validation_writer(log) else log


def _not_a_file(path: Path) -> str:
    """What ``path``, which is no regular file or folder, is, in words: a device, a named pipe, a socket."""
    import stat

    mode = path.stat().st_mode
    return ("a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a named pipe" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a file")


def _refuse_foreign_zip(path: Path, kind: str) -> None:
    """Refuse a zip that is a model or an array, not an archive of logs (a ``torch.save`` checkpoint,
    a ``.keras`` model, an ``.npz``), saying what it is, before anything in it is extracted."""
    if kind == "zip" and (foreign := zip_is(path)) is not None:
        raise UnknownLogFormat(f"{path.name} is {foreign}")


# --- files -------------------------------------------------------------------------------------------

#: Byte-order marks of the encodings other than UTF-8 a text log arrives in (PowerShell's ``>``
#: and Notepad's "Unicode" write UTF-16LE with a BOM); the longer marks first
_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"),
         (b"\xfe\xff", "utf-16"))


def _wide_encoding(path: Path) -> str | None:
    """``utf-16`` or ``utf-32`` for a file that starts with that encoding's byte-order mark."""
    try:
        head = sniff.read_head(path, 4)
    except OSError:
        return None
    return next((enc for bom, enc in _BOMS if head.startswith(bom)), None)


class _Rewrite(NamedTuple):
    """A copy the loader reads in place of a file (a text encoding or a table layout the readers do
    not read, turned into one they do): ``write(copy, upto)`` writes it (whole, or with ``upto``
    at least its first ``upto`` characters, a table in whole rows), ``hint`` is the format hint
    the copy is read with, ``note`` the ``transcoded`` warning's text."""

    write: Callable[[Path, int | None], None]
    hint: str | None
    note: str
    code: str = "transcoded"


#: How much of a rewritten copy :func:`detect` writes: the sniffer reads at most
#: ``sniff.TEXT_SEARCH_BYTES`` of a file (the semicolon check 8 KiB) and a UTF-8 copy has at least
#: as many bytes as characters. Four times that covers a semicolon table's copy of a transcoded
#: copy, whose rows can be up to three times shorter than their source (quotes dropped), so
#: detection sees the bytes that reading the whole copy would.
DETECT_CHARS = 4 * (sniff.TEXT_SEARCH_BYTES + sniff.HEAD_BYTES)


def _route(path: Path, label: str, hint: str | None) -> registry.Reader | _Rewrite:
    """How the file at ``path`` is read: by a reader (:func:`gradhealth.logs.sniff.detect`), or as
    a rewritten copy (UTF-16/32 with a byte-order mark; a semicolon table with decimal commas, when
    no reader knows the file and no hint is given). The one decision of :func:`_read_file` and
    :func:`detect`. Raises :class:`UnknownLogFormat` as :func:`gradhealth.logs.sniff.detect` does."""
    if (encoding := _wide_encoding(path)) is not None:
        return _transcoding(path, encoding, label, hint)
    if (nul := _nul_bytes(path)) is not None:
        return _without_nuls(path, nul, hint)
    try:
        return sniff.detect(path, hint)
    except UnknownLogFormat:
        if hint is not None or not _semicolon_table(path):
            raise
        return _semicolons(path, label)


def detect(path: Path, hint: str | None = None) -> str:
    """What :func:`read_log` reads the file at ``path`` as, decided as it decides it but without
    reading the file: an archive's kind (``zip``, ``tar``, ``gz``, ...; its files are detected as
    it is extracted), else the name of the reader that reads the file, or its transcoded or
    comma-separated copy (a bounded head of the copy is written for this: :data:`DETECT_CHARS`).

    The upload route's check before a job exists (:mod:`gradhealth.api.routers.checks`), so an
    upload is refused or accepted exactly as ``gradhealth check`` treats the same file. Raises
    :class:`UnknownLogFormat` (an empty file, an unknown or contradicted hint, a format no reader
    knows) and :class:`LogError` (a byte-order mark on text of another encoding) with the loader's
    messages.
    """
    path = Path(path)
    kind = sniff.archive_kind(path)
    if kind is not None:
        _refuse_foreign_zip(path, kind)
        return kind
    return _detect_file(path, path.name, hint).name


def _detect_file(path: Path, label: str, hint: str | None) -> registry.Reader:
    route = _route(path, label, hint)
    if not isinstance(route, _Rewrite):
        return route
    with tempfile.TemporaryDirectory(prefix="gh-logs-") as tmp:
        copy = Path(tmp) / path.name
        route.write(copy, DETECT_CHARS)
        return _detect_file(copy, label, route.hint)


def _read_copy(path: Path, label: str, limits: ReadLimits, rewrite: _Rewrite) -> RunLog:
    """``path`` read as the whole copy ``rewrite`` writes of it in a temporary folder, with a
    ``transcoded`` note."""
    with tempfile.TemporaryDirectory(prefix="gh-logs-") as tmp:
        copy = Path(tmp) / path.name
        rewrite.write(copy, None)
        log = _read_file(copy, label, rewrite.hint, limits)
        log.warnings.append(LogWarning(rewrite.code, f"{label}: {rewrite.note}"))
        return log


def _transcoding(path: Path, encoding: str, label: str, hint: str | None) -> _Rewrite:
    """A text log in UTF-16/32, read as its UTF-8 copy (the readers read bytes as UTF-8)."""
    def write(copy: Path, upto: int | None) -> None:
        written = 0
        try:
            with path.open("r", encoding=encoding, newline="") as src, copy.open("w", encoding="utf-8",
                                                                                   newline="") as out:
                while (upto is None or written < upto) and (chunk := src.read(2**20)):
                    out.write(chunk)
                    written += len(chunk)
        except UnicodeError as e:
            raise LogError(f"{label}: starts with a {encoding.upper()} byte-order mark but is not "
                           f"{encoding.upper()} text ({e}); save it as UTF-8") from None

    return _Rewrite(write, hint, f"{encoding.upper()} text, read as UTF-8")


#: How much of a file is read at a time looking for NUL bytes, and writing its copy without them
_CHUNK = 2**20


class _Nuls(NamedTuple):
    """Where a text file holds NUL bytes: the first one's byte offset (from 0) and line (from 1)."""

    offset: int
    line: int


def _nul_bytes(path: Path) -> _Nuls | None:
    """Where the first NUL byte of a text log padded with NULs is (:class:`_Nuls`), or None: a file
    with none; binary data (a NUL in its first line: an event file's record length, UTF-16 without a
    byte-order mark; or bytes around the NULs that are not UTF-8 text); and a NUL inside a line's text
    (a cell's ``0.4\\x00``, a UTF-16 fragment appended: the reader refuses that line, naming it). Padding
    is every run of NULs starting at a line's start or running to the file's end: a crashed or
    killed writer leaves one where the data it had not written yet was to go (the file's size was
    set, its last blocks never filled), and a restarted writer appends its lines after it."""
    try:
        head = sniff.read_head(path)
    except OSError:
        return None
    end = sniff._LINE_END.search(head)
    if end is None or b"\x00" in head[:end.start()] or not head[:end.start()].strip():
        return None
    text = head.replace(b"\x00", b"")
    try:
        text.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(text) - 3 or len(head) < sniff.HEAD_BYTES:
            return None  # not UTF-8 text (a few bytes at the head's end may be a cut character)
    try:
        with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            first = mm.find(b"\x00")
            if first < 0:
                return None
            for m in _NUL_RUN.finditer(mm, first):
                if m.end() < len(mm) and mm[m.start() - 1] not in b"\r\n":
                    return None  # NULs inside a line's text, not padding
            return _Nuls(first, 1 + _line_ends(mm, first))
    except (OSError, ValueError):
        return None


_NUL_RUN = re.compile(rb"\x00+")


def _line_ends(data: mmap.mmap, upto: int) -> int:
    """How many line ends (LF, CRLF or a lone CR, as the readers split lines) the first ``upto``
    bytes of ``data`` hold, counted a chunk at a time."""
    n = 0
    for at in range(0, upto, _CHUNK):
        chunk = data[at:min(at + _CHUNK, upto)]
        n += chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")
        if chunk.endswith(b"\r") and data[at + len(chunk):at + len(chunk) + 1] == b"\n" and at + len(chunk) < upto:
            n -= 1  # a CRLF across two chunks: one line end
    return n


def _without_nuls(path: Path, nul: _Nuls, hint: str | None) -> _Rewrite:
    """A text log padded with NUL bytes (:func:`_nul_bytes`: a crashed writer's zero padding), read
    as its copy without them: a run of NULs is a gap, the lines around it read as they are (each
    keeps its number: a NUL is no line end)."""

    def write(copy: Path, upto: int | None) -> None:
        written = 0
        with path.open("rb") as src, copy.open("wb") as out:
            while (upto is None or written < upto) and (chunk := src.read(_CHUNK)):
                kept = chunk.replace(b"\x00", b"")
                out.write(kept)
                written += len(kept)

    return _Rewrite(write, hint, f"NUL bytes from line {nul.line:,} on (the first at byte offset {nul.offset:,}: a "
                    "crashed or killed writer's zero padding) are passed over; the lines around them are read as "
                    "they are", code="nul_bytes")


_DECIMAL_COMMA = re.compile(r"^\s*[-+]?\d+,\d+(?:[eE][-+]?\d+)?\s*$")


def _semicolon_table(path: Path) -> bool:
    """Whether the file is a table separated by semicolons (Excel's CSV in a locale whose decimal
    mark is the comma): a header of 2+ named columns and no comma, rows of as many cells."""
    try:
        lines = sniff.read_head(path, 8192).decode("utf-8-sig", "replace").splitlines()[:3]
    except OSError:
        return False
    if len(lines) < 2 or "," in lines[0]:
        return False
    width = len(lines[0].split(";"))
    return width >= 2 and all(c.strip() for c in lines[0].split(";")) and all(
        len(line.split(";")) == width for line in lines[1:] if line.strip())


class _Counted:
    """A text file's ``write`` that counts the characters written."""

    def __init__(self, out: Any) -> None:
        self.out, self.chars = out, 0

    def write(self, text: str) -> int:
        self.chars += len(text)
        return int(self.out.write(text))


def _semicolons(path: Path, label: str) -> _Rewrite:
    """A semicolon-separated table with decimal commas, read as its comma-separated copy."""
    def write(copy: Path, upto: int | None) -> None:
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as src, \
                copy.open("w", newline="", encoding="utf-8") as out:
            counted = _Counted(out)
            writer = csv.writer(counted)
            try:
                for row in csv.reader(src, delimiter=";"):
                    writer.writerow([c.replace(",", ".") if _DECIMAL_COMMA.match(c) else c for c in row])
                    if upto is not None and counted.chars >= upto:
                        break
            except csv.Error as e:
                raise LogError(f"{label}: cannot be read as a table separated by semicolons ({e})") from None

    return _Rewrite(write, None, "separated by semicolons, read with ',' as the decimal mark (a "
                    "spreadsheet's export in a European locale)")


def _read_file(path: Path, label: str, hint: str | None, limits: ReadLimits,
               reader: registry.Reader | None = None) -> RunLog:
    sniff.check_size(path, limits, label)
    try:
        if reader is None:
            route = _route(path, label, hint)
            if isinstance(route, _Rewrite):
                return _read_copy(path, label, limits, route)
            reader = route
        log = reader.read(path, limits)
    except LogError as e:
        raise _relabel(e, path.name, label) from None
    except (OSError, ValueError, UnicodeError, RecursionError, MemoryError) as e:
        raise LogError(f"{label}: cannot be read as {getattr(reader, 'name', 'a log')} ({e})") from None
    log.source = label
    for w in log.warnings:
        w.message = _swap(w.message, path.name, label)
    _check_points(log, label, limits)
    return log


def _relabel(e: LogError, name: str, label: str, *, member: bool = False) -> LogError:
    """``e`` with the file's ``name`` in its detail swapped for ``label``, as the user names it. Its
    line (``position``) stays where the file is the one the user gave; a file inside a folder or an
    archive (``member``) is named in the detail, but a report placing the line would place it on
    the folder or the archive (newuser16 #6)."""
    if name != label and e.detail.startswith(name):
        e.detail = label + e.detail[len(name):]
        e.args = (e.detail,)
    if member:
        e.position = None
    return e


def _swap(message: str, name: str, label: str) -> str:
    return label + message[len(name):] if label != name and message.startswith(name) else message


def _check_points(log: RunLog, label: str, limits: ReadLimits) -> None:
    if len(log.series) > limits.max_series:
        raise UploadTooLarge(f"{label}: {len(log.series):,} series; the limit is {limits.max_series:,} "
                             "(GRADHEALTH_LOG_MAX_SERIES)")
    total = sum(len(s) for s in log.series)
    if total > limits.max_points:
        raise UploadTooLarge(f"{label}: {total:,} values; the limit is {limits.max_points:,}")


# --- folders -----------------------------------------------------------------------------------------

def _mlflow() -> Any:
    from gradhealth.logs.readers import mlflow
    return mlflow.READER


def _allennlp() -> Any:
    from gradhealth.logs.readers import allennlp
    return allennlp.READER


#: How deep a folder is walked (folders below the one read): as deep as an archive's entries may be
MAX_FOLDER_DEPTH = archive.MAX_ENTRY_DEPTH


def _walk(root: Path, limits: ReadLimits, passed: list[str]) -> Iterator[tuple[Path, bool, int]]:
    """(path, is_run_folder, size in bytes: 0 for a folder) for MLflow run folders and other regular files under ``root``, in name
    order, depth first. What the walk does not enter or open is added to ``passed`` (its path inside
    ``root`` and why): folders on another file system than ``root``'s (``/proc``, ``/sys``, a mount
    point: their pseudo-files can block a read for ever) and entries that are neither a regular
    file nor a folder (a FIFO, a socket, a device). Iterative (``os.walk`` recurses once per level),
    and refused with :class:`LogError` below :data:`MAX_FOLDER_DEPTH` folders, and with
    :class:`UploadTooLarge` past ``limits.max_archive_entries`` files (or as many folders)."""
    files = folders = 0
    mlflow = _mlflow()
    try:
        device = root.stat().st_dev
    except OSError as e:
        raise LogError(f"{root.name}: cannot be read ({e.strerror or e})") from None
    stack = [root]
    while stack:
        here = stack.pop()
        rel = here.relative_to(root)
        try:
            with os.scandir(here) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            passed.append(f"{rel.as_posix()}/ (cannot be listed: {e.strerror or e})")
            continue
        subdirs: list[Path] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            p = here / entry.name
            shown = (rel / entry.name).as_posix()
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                passed.append(f"{shown} (cannot be read)")
                continue
            if stat.S_ISLNK(st.st_mode):
                continue
            if st.st_dev != device:  # a mount point (a bind-mounted file too): never entered or opened
                passed.append(f"{shown}{'/' if stat.S_ISDIR(st.st_mode) else ''} (another file system)")
                continue
            if stat.S_ISDIR(st.st_mode):
                if entry.name == "__MACOSX":
                    continue
                folders += 1
                if folders > limits.max_archive_entries:
                    raise UploadTooLarge(f"{root.name}: more than {limits.max_archive_entries:,} folders; the "
                                         f"limit is {limits.max_archive_entries:,}")
                if mlflow.sniff_dir(p) >= 0.8:
                    yield p, True, 0
                    continue
                subdirs.append(p)
            elif not stat.S_ISREG(st.st_mode):
                passed.append(f"{shown} (not a regular file)")
            else:
                files += 1
                if files > limits.max_archive_entries:
                    raise UploadTooLarge(f"{root.name}: more than {limits.max_archive_entries:,} files; the "
                                         f"limit is {limits.max_archive_entries:,}")
                yield p, False, st.st_size
        if subdirs and len(rel.parts) >= MAX_FOLDER_DEPTH:
            deep = subdirs[0].relative_to(root).as_posix()
            raise LogError(f"{root.name}: the folder {archive.shown_name(deep)} is nested more than "
                           f"{MAX_FOLDER_DEPTH} folders deep; refused")
        stack.extend(reversed(subdirs))


def _read_folder(root: Path, label: str, hint: str | None, limits: ReadLimits, what: str = "folder") -> RunLog:
    """The run in the folder ``root`` (``label`` names it; ``what``: "folder", or "archive" for an
    archive's extracted files, as refusals name it)."""
    for whole in (_mlflow(), _allennlp()):  # formats whose run is a folder, not a file
        if hint in (None, whole.name) and whole.sniff_dir(root) >= 0.8:
            try:
                log = whole.read(root, limits)
            except LogError as e:
                raise _relabel(e, root.name, label, member=True) from None
            log.source = label
            _check_points(log, label, limits)
            return log
    mlflow = _mlflow()
    if hint is not None and hint not in registry.formats():
        raise UnknownLogFormat(f"unknown format hint {hint!r}; use one of: {', '.join(registry.formats())}")
    candidates = [r for r in registry.readers() if hint is None or r.name == hint]
    logs: list[tuple[str, RunLog]] = []
    skipped: list[str] = []
    passed: list[str] = []
    wandb_debug: list[str] = []
    total_bytes = 0
    # the whole walk first: each file's read then moves its share of a job's bar, its bytes of the
    # folder's (the second file's reader found the bar at the end of the first's: a fixed fraction)
    walked = list(_walk(root, limits, passed))
    whole, done = sum(size for _, _, size in walked) or 1, 0
    for p, is_run, size in walked:
        share = ticks.share(done / whole, (done + size) / whole)
        done += size
        rel = p.relative_to(root).as_posix()
        shown = f"{label}/{rel}"
        if not is_run and _wandb_debug_log(p):
            wandb_debug.append(rel)
            continue
        if is_run:
            if hint not in (None, "mlflow"):
                skipped.append(rel + "/")
                continue
            try:
                log = mlflow.read(p, limits)
            except LogError as e:
                raise _relabel(e, p.name, shown, member=True) from None
            log.source = shown
            logs.append((rel, log))
            continue
        reader = _sniff(p, candidates)
        if reader is None and not _read_as_copy(p, shown, candidates):
            skipped.append(rel)
            continue
        total_bytes += size
        if total_bytes > limits.max_uncompressed_bytes:
            raise UploadTooLarge(f"{label}: the logs in it are more than {limits.max_uncompressed_bytes:,} "
                                 "bytes together; the limit is "
                                 f"{limits.max_uncompressed_bytes:,}")
        parent = PurePosixPath(rel).parent.as_posix()
        try:
            with share:
                logs.append((parent if parent != "." else "", _read_file(p, shown, None, limits, reader)))
        except LogError as e:
            raise _relabel(e, shown, shown, member=True) from None
    if not logs:
        if hint is not None:
            raise UnknownLogFormat(f"{label}: no file in this {what} is in the {hint} format")
        raise UnknownLogFormat(f"{label}: no file in this {what} is a log format gradhealth reads "
                               f"({', '.join(registry.formats())}); looked at {len(skipped)} file(s)"
                               f"{'; not read: ' + first_few(passed) if passed else ''}")
    _note_wandb_histories(logs)
    warnings = []
    if wandb_debug:
        warnings.append(LogWarning("skipped_files", f"{label}: W&B's own debug log(s) left out, not training "
                                   f"logs: {first_few(wandb_debug)}"))
    if passed:
        warnings.append(LogWarning("skipped_files", f"{label}: {len(passed)} entr{'y' if len(passed) == 1 else 'ies'} "
                                   f"not read: {first_few(passed)}"))
    if skipped:
        warnings.append(LogWarning("skipped_files", f"{label}: {len(skipped)} file(s) not recognised as "
                                   f"a training log were skipped: {first_few(skipped)}"))
    logs = _event_file_launches(logs, label, _folder_name(root))
    if len(logs) == 1:
        return _alone(logs[0], root, warnings)
    logs, runs = _separate_runs(logs, label, warnings)
    if len(logs) == 1:
        return _alone(logs[0], root, warnings)
    merged = RunLog(format="folder", source=label, warnings=warnings, runs=_with_inner_runs(logs, runs))
    by_name: dict[str, Series] = {}
    for prefix, log in logs:
        for s in log.series:
            name = f"{prefix}/{s.name}" if prefix else s.name
            if name in by_name:
                by_name[name] = _join(by_name[name], s)
            else:
                by_name[name] = replace(s, name=name, role=_split_role(prefix or _folder_name(root), s))
        merged.warnings.extend(log.warnings)
        for k, v in log.params.items():
            if k in merged.params and merged.params[k] != v:
                merged.params[f"{prefix}/{k}" if prefix else f"{log.source}/{k}"] = v
            else:
                merged.params.setdefault(k, v)
        if not merged.traceback:
            merged.traceback, merged.after_training = log.traceback, log.after_training
    merged.series = list(by_name.values())
    _check_points(merged, label, limits)
    return merged


#: W&B's own logs in a run folder: ``debug.log`` (the wandb library's), ``debug-internal.log`` (its
#: writer process's), ``debug-core.log`` (wandb-core's) and ``debug-cli.<user>.log``
_WANDB_DEBUG_LOG = re.compile(r"^debug(?:-internal|-core|-cli\.[^/]+)?\.log$")
_WANDB_RUN_FOLDER = re.compile(r"^(?:offline-)?run-\d{8}_\d{6}-[a-z0-9]+$")


def _wandb_debug_log(path: Path) -> bool:
    """Whether ``path`` is one of W&B's debug logs in a W&B run folder (``wandb/run-<date>-<id>/``,
    the file beside the run files or in their ``logs/``): a folder named like one, or holding a
    ``run-<id>.wandb`` file or ``files/wandb-metadata.json`` or ``files/wandb-summary.json``. They
    log the library's threads and requests, not training; the text reader would make series of
    their thread ids and sizes."""
    if not _WANDB_DEBUG_LOG.match(path.name):
        return False
    here = path.parent
    for run in (here, here.parent) if here.name == "logs" else (here,):
        if _WANDB_RUN_FOLDER.match(run.name) or any(
                (run / "files" / f).is_file() for f in ("wandb-metadata.json", "wandb-summary.json")):
            return True
        try:
            if any(p.suffix == ".wandb" and p.name.startswith("run-") for p in run.iterdir()):
                return True
        except OSError:
            continue
    return False


def _note_wandb_histories(logs: list[tuple[str, RunLog]]) -> None:
    """A W&B run folder's ``files/wandb-summary.json`` beside the ``run-<id>.wandb`` the history was
    read from: its ``summary_only`` note says where the history is, not to export it."""
    read = {PurePosixPath(log.source).parent: log.source for _, log in logs
            if log.source.endswith(".wandb") and log.series}
    for _, log in logs:
        folder = PurePosixPath(log.source).parent
        history = read.get(folder.parent) if folder.name == "files" else None
        for w in log.warnings if history else ():
            if w.code == "summary_only":
                w.message = (f"{log.source} holds only the final value of each key (a W&B run summary); "
                             f"the run's history is read from {history}")



#: Launches of one TensorBoard folder read and judged at most (the last ones), as for appended runs
MAX_LAUNCHES = 50
#: ``events.out.tfevents.<unix time>.<host>...``: the time the writer opened the file
_EVENT_FILE_TIME = re.compile(r"tfevents\.(\d{9,11})(?:\.|$)")


class _EventFile(NamedTuple):
    """One event file of a folder: its log, the wall time it started, its first and last step and
    how many distinct steps it logged."""

    log: RunLog
    started: float
    first: float
    last: float
    steps: np.ndarray


def _event_file(log: RunLog) -> _EventFile | None:
    """An event file's wall-clock start (its earliest point's wall time, else the time in its
    name) and step range; None for one without points."""
    steps = [s.steps for s in log.series if len(s)]
    if not steps:
        return None
    walls = [w for s in log.series if s.wall_time is not None
             for w in [np.asarray(s.wall_time, dtype=np.float64)] if np.isfinite(w).any()]
    if walls:
        started = float(min(np.nanmin(w) for w in walls))
    else:
        named = _EVENT_FILE_TIME.search(PurePosixPath(log.source).name)
        started = float(named.group(1)) if named else math.inf
    every = np.unique(np.concatenate([np.asarray(x, dtype=np.float64) for x in steps]))
    return _EventFile(log, started, float(every[0]), float(every[-1]), every)


def _event_file_launches(logs: list[tuple[str, RunLog]], label: str, folder: str) -> list[tuple[str, RunLog]]:
    """The logs of a folder with the event files of each sub-folder that hold several launches read
    as one log of runs (``run<k>/<tag>``, :attr:`RunLog.runs`), each launch judged on its own, as
    runs appended to one JSON Lines file are.

    A job relaunched into the same log directory (detectron2's and mmdet's ``output/`` or work dir,
    a ``SummaryWriter(log_dir=...)`` or Keras' ``TensorBoard(log_dir=...)`` reused) adds an event
    file per launch. The files, in the order of their wall-clock start, make one launch until a
    file's steps go back to or below the first step of the launch before it, after that launch
    logged :data:`~gradhealth.logs.series.RUN_RECORDS` steps or more (:func:`starts_again`, the JSON Lines reader's rule):
    that file starts a new launch. A file that goes on past the launch's last step, or goes back
    less (a run resumed from a checkpoint after its start), is the same launch, its points joined
    with the rest. Joined by tag instead, a killed diverged launch and its good relaunch would
    interleave at the same steps and read as spikes the run recovered from. ``folder`` is the name
    of the folder read: a loss in one named for the validation split is the validation loss."""
    groups: dict[str, list[int]] = {}
    for i, (prefix, log) in enumerate(logs):
        if log.format == "tensorboard" and log.series:
            groups.setdefault(prefix, []).append(i)
    combined: dict[int, tuple[str, RunLog]] = {}
    dropped: set[int] = set()
    for prefix, idx in groups.items():
        files = [f for i in idx if (f := _event_file(logs[i][1])) is not None]
        if len(files) < 2:
            continue
        files.sort(key=lambda f: f.started)  # stable: files that started together keep their name order
        launches: list[list[_EventFile]] = [[files[0]]]
        first, last, rising = files[0].first, files[0].last, len(files[0].steps)
        for f in files[1:]:
            if starts_again(f.first, first, last, rising):
                launches.append([f])
                first, last, rising = f.first, f.last, len(f.steps)
            else:
                launches[-1].append(f)
                rising += int(np.sum(f.steps > last))
                last = max(last, f.last)
        if len(launches) < 2:
            continue
        combined[idx[0]] = (prefix, _launches_log(prefix, launches, label, prefix or folder))
        dropped.update(idx[1:])
    if not combined:
        return logs
    return [combined.get(i, entry) for i, entry in enumerate(logs) if i not in dropped]


def _launches_log(prefix: str, launches: list[list[_EventFile]], label: str, scope: str) -> RunLog:
    """One log of a sub-folder's launches (:func:`_event_file_launches`): each launch's files'
    series joined by tag under ``run<k>/``, the last :data:`MAX_LAUNCHES` launches kept, with a
    ``several_runs`` note naming each launch's files and steps. Each series' role is read with its
    folder (``scope``) before ``run<k>/`` is put in front of its name."""
    count = len(launches)
    kept = launches[-MAX_LAUNCHES:]
    first = count - len(kept) + 1
    names = [f"run{k}" for k in range(first, count + 1)]
    series: list[Series] = []
    warnings: list[LogWarning] = []
    params: dict[str, str] = {}
    shown = []
    for name, launch in zip(names, kept, strict=True):
        by_tag: dict[str, Series] = {}
        for f in launch:
            for s in f.log.series:
                by_tag[s.name] = _join(by_tag[s.name], s) if s.name in by_tag else s
            warnings.extend(f.log.warnings)
            params.update(f.log.params)
        series += [replace(s, name=f"{name}/{s.name}", role=_split_role(scope, s)) for s in by_tag.values()]
        files = PurePosixPath(launch[0].log.source).name
        if len(launch) > 1:
            files = f"{len(launch)} files from {files}"
        lo, hi = min(f.first for f in launch), max(f.last for f in launch)
        shown.append(f"{name} ({files}, steps {_num(lo)}-{_num(hi)})")
    where = f"{label}/{prefix}" if prefix else label
    note = several_runs(where, f"{count} launches logged to the same folder, one event file or more each (the "
                        "step starts again)", shown,
                        tail=f"; the first {first - 1} are not read" if first > 1 else "")
    log = RunLog(format="tensorboard", source=where, series=series, warnings=[note, *warnings], params=params)
    if any(s.role == "loss" for s in series):
        log.runs = names   # judged one by one; a validation folder's launches go with the training ones
    return log


def _trains(prefix: str, log: RunLog) -> Series | None:
    """The training loss of one log of a folder (the longest), None where it logs none."""
    losses = [s for s in log.series if _split_role(prefix, s) == "loss"]
    return max(losses, key=len) if losses else None


def _snapshot_of(a: Series, b: Series) -> bool:
    """Whether loss ``a`` is an earlier part of loss ``b``: every step of ``a`` is in ``b`` with the
    same value (a Trainer's checkpoint-500/trainer_state.json beside checkpoint-1000's)."""
    at = dict(zip(b.steps.tolist(), b.values.tolist(), strict=True))
    return all(st in at and (at[st] == v or (v != v and at[st] != at[st]))
               for st, v in zip(a.steps.tolist(), a.values.tolist(), strict=True))


def _separate_runs(logs: list[tuple[str, RunLog]], label: str, warnings: list[LogWarning]
                   ) -> tuple[list[tuple[str, RunLog]], list[str]]:
    """The logs of a folder without earlier snapshots of a run it also holds whole, and the folders
    of the separate runs in it (several folders each with a training loss of its own, none inside
    another: Lightning's ``version_0``, ``version_1``; two MLflow experiments), which the checks
    judge one by one; noted in ``warnings``."""
    trained = {prefix: loss for prefix, log in logs if prefix and (loss := _trains(prefix, log)) is not None}
    # the folder's own history (a Trainer's output_dir/trainer_state.json, written at the end) holds its
    # last checkpoint's whole too, the same points: that checkpoint is a snapshot of it as well (logsweep88
    # hf_chatglm_ckpt_folder: checkpoint-3000 was read beside it and the note named only 1000 and 2000)
    top = [(log, loss) for prefix, log in logs if not prefix and (loss := _trains(prefix, log)) is not None]
    earlier = sorted({p for p in trained for q in trained
                      if len(trained[p]) < len(trained[q]) and _snapshot_of(trained[p], trained[q])}
                     | {p for p in trained for _, q in top if len(trained[p]) <= len(q) and _snapshot_of(trained[p], q)},
                     key=natural_key)
    if earlier:
        logs = [(prefix, log) for prefix, log in logs if prefix not in earlier]
        kept = [log for prefix, log in logs if (not prefix and any(log is t for t, _ in top)) or prefix in trained]
        whole = max(kept, key=lambda log: len(_trains("", log) or ()), default=None)
        read = f", from {whole.source.removeprefix(label + '/')}" if whole is not None else ""
        warnings.append(LogWarning("skipped_runs", f"{label}: {', '.join(earlier)} "
                                   f"{'is an earlier snapshot' if len(earlier) == 1 else 'are earlier snapshots'} of a "
                                   f"history the folder holds whole; read once{read}"))
        trained = {p: s for p, s in trained.items() if p not in earlier}
    runs = sorted(trained, key=natural_key)
    nested = any(a != b and b.startswith(a + "/") for a in runs for b in runs)
    if len(runs) < 2 or nested:
        return logs, []
    warnings.append(several_runs(label, f"{len(runs)} runs", runs))
    return logs, runs


def _with_inner_runs(logs: list[tuple[str, RunLog]], runs: list[str]) -> list[str]:
    """The runs of a folder's merged log: its folders' runs, where a file of several runs (runs
    appended to one Keras CSV or JSON Lines file, a console's trials: its own :attr:`RunLog.runs`)
    stands for its runs, ``<folder>/run<k>``, so each is still judged on its own."""
    inner = {prefix: log.runs for prefix, log in logs if log.runs}
    if not inner:
        return runs
    out = [x for r in runs for x in ([f"{r}/{k}" for k in inner[r]] if r in inner else [r])]
    out += [f"{p}/{k}" if p else k for p, ks in inner.items() if p not in runs for k in ks]
    return list(dict.fromkeys(out))


def _folder_name(root: Path) -> str:
    """The name of the folder read (``.`` named: the current folder's name)."""
    return root.name or root.absolute().name


def _alone(entry: tuple[str, RunLog], root: Path, warnings: list[LogWarning]) -> RunLog:
    """The one log of a folder, its series' roles read with the folder it is in, as when it is one
    of several: a loss in a folder named for the validation split (a TensorBoard folder of only
    ``validation/``, Keras' callback's validation writer uploaded without ``train/``, or that folder
    read itself) is the validation loss, never the training loss, and under a sub-folder its series
    are named with it (``validation/epoch_loss``), as beside ``train/``."""
    prefix, log = entry
    scope = prefix or _folder_name(root)
    if any(_split_role(scope, s) != s.role for s in log.series):
        log.series = [replace(s, name=f"{prefix}/{s.name}" if prefix else s.name, role=_split_role(scope, s))
                      for s in log.series]
    log.warnings.extend(warnings)
    return log


def _keras_validation_writer(log: RunLog) -> bool:
    """Whether a lone TensorBoard file is Keras' callback's validation writer, read without its
    ``validation/`` folder: beside its ``epoch_*`` scalars it writes ``evaluation_*_vs_iterations``
    (the same evaluations at the optimizer's iteration), which the training writer never does. Its
    ``epoch_loss`` is then the validation loss, as in the folder."""
    names = {s.name for s in log.series}
    return log.format == "tensorboard" and "evaluation_loss_vs_iterations" in names and "epoch_loss" in names


def _split_role(prefix: str, s: Series) -> Role:
    """A loss read from a folder named for the validation split (Keras' TensorBoard callback
    writes ``train/`` and ``validation/``, each with an ``epoch_loss``) is the validation loss."""
    if s.role == "loss" and prefix and classify(f"{PurePosixPath(prefix).name}/{s.name}")[0] == "val_loss":
        return "val_loss"
    return s.role


def _sniff(path: Path, readers: list[registry.Reader]) -> registry.Reader | None:
    """The surest of ``readers`` for a file in a folder; None when none recognises it, or the file
    is empty or cannot be read (it is then listed as skipped)."""
    try:
        if path.stat().st_size == 0:  # empty, or a pseudo-file whose read may block: not opened
            return None
        head = sniff.read_head(path)
    except OSError:
        return None
    return sniff.sniff(path.name, head, readers)[0] if head else None


def _read_as_copy(path: Path, label: str, readers: list[registry.Reader]) -> bool:
    """Whether a file in a folder that no reader recognises is read as its rewritten copy (UTF-16/32
    text, a semicolon table): decided by :func:`_detect_file`, as for a lone file, and only when
    the copy is in one of ``readers``' formats; an unknown copy is skipped like any unknown file."""
    if _wide_encoding(path) is None and not _semicolon_table(path):
        return False
    try:
        return _detect_file(path, label, None) in readers
    except UnknownLogFormat:
        return False


def _join(a: Series, b: Series) -> Series:
    wall = None
    if a.wall_time is not None or b.wall_time is not None:
        wall = np.concatenate([a.wall_time if a.wall_time is not None else np.full(len(a), np.nan),
                               b.wall_time if b.wall_time is not None else np.full(len(b), np.nan)])
    steps = np.concatenate([a.steps, b.steps])
    return Series(name=a.name, role=a.role, steps=steps, values=np.concatenate([a.values, b.values]),
                  layer=a.layer, wall_time=wall, step_unit=a.step_unit)


# --- archives ----------------------------------------------------------------------------------------

def _read_archive(path: Path, kind: str, hint: str | None, limits: ReadLimits) -> RunLog:
    with tempfile.TemporaryDirectory(prefix="gh-logs-") as tmp:
        dest = Path(tmp) / "x"
        dest.mkdir()
        archive.extract(path, kind, dest, limits)
        root = dest
        entries = [p for p in root.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
        if len(entries) == 1 and entries[0].is_dir():
            root = entries[0]
        if not any(root.iterdir()):
            raise LogError(f"{path.name}: the archive is empty")
        return _read_folder(root, path.name, hint, limits, "archive")
