"""Reading a training log from a file, a folder or an archive: :func:`read_log`.

- A **file** is read by the reader :func:`gradhealth.logs.readers.registry.detect` picks (or the one
  the ``format`` hint names, checked against the content).
- A **folder** that is an MLflow run folder (``metrics/`` of MLflow metric files) is read by the
  mlflow reader. Any other folder is walked (hidden files and folders, ``__MACOSX`` and symlinks
  are skipped): MLflow run folders inside it are read as runs, and every other file a reader
  recognises is read with it. With one log in the folder the result is that log's RunLog; with
  more, the logs are merged into one RunLog with ``format="folder"`` and every series name is
  prefixed with its relative sub-folder (``validation/epoch_loss``); series of the same name in
  the same sub-folder (an event file per restart) are joined. Files no reader recognises are
  listed in one ``skipped_files`` warning.
- An **archive** (``.zip``, ``.tar``, ``.tar.gz``/``.tgz``, also ``.tar.bz2``/``.tar.xz``; found by
  content, not only by name) is extracted to a temporary folder, which is then read as above.
  Limits are checked before and while extracting: the number of entries, the total uncompressed
  size and the compression ratio (uncompressed / archive size, checked once more than 1 MiB has
  come out, so a zip bomb is refused after at most ``max_compression_ratio`` times the archive's
  size) raise :class:`UploadTooLarge` with the figures; entries with absolute paths or ``..``,
  symlinks, hard links, devices and encrypted entries raise :class:`LogError`.

A file over ``limits.max_file_bytes`` and a result over ``limits.max_points`` raise
:class:`UploadTooLarge`. Error and warning messages name the file by its path inside the folder or
archive.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np

from gradhealth.errors import LogError, UnknownLogFormat, UploadTooLarge
from gradhealth.logs.readers import registry
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.series import LogWarning, RunLog, Series

RATIO_FLOOR_BYTES = 2**20          # the ratio is checked once this much has come out
_CHUNK = 2**20
_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


DEFAULT_LIMITS = ReadLimits()


def read_log(path: Path, *, format: str | None = None,  # noqa: A002
             limits: ReadLimits = DEFAULT_LIMITS) -> RunLog:
    """Read a log file, a run folder or an archive of one into a :class:`RunLog`."""
    path = Path(path)
    try:
        if not path.exists():
            raise LogError(f"{path.name}: no such file or folder")
        if path.is_dir():
            return _read_folder(path, path.name or path.resolve().name, format, limits)
        if not path.is_file():
            raise LogError(f"{path.name}: not a regular file")
    except OSError as e:
        raise LogError(f"{path.name}: cannot be read ({e.strerror or e})") from None
    kind = _archive_kind(path)
    if kind is not None:
        return _read_archive(path, kind, format, limits)
    return _read_file(path, path.name, format, limits)


# --- files -------------------------------------------------------------------------------------------

def _read_file(path: Path, label: str, hint: str | None, limits: ReadLimits,
               reader: registry.Reader | None = None) -> RunLog:
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise UploadTooLarge(f"{label} is {size:,} bytes; the limit for one log file is "
                             f"{limits.max_file_bytes:,} bytes")
    try:
        reader = reader or registry.detect(path, hint)
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


def _relabel(e: LogError, name: str, label: str) -> LogError:
    if name == label or not e.detail.startswith(name):
        return e
    return type(e)(label + e.detail[len(name):], e.problems)


def _swap(message: str, name: str, label: str) -> str:
    return label + message[len(name):] if label != name and message.startswith(name) else message


def _check_points(log: RunLog, label: str, limits: ReadLimits) -> None:
    total = sum(len(s) for s in log.series)
    if total > limits.max_points:
        raise UploadTooLarge(f"{label}: {total:,} values; the limit is {limits.max_points:,}")


# --- folders -----------------------------------------------------------------------------------------

def _mlflow() -> Any:
    from gradhealth.logs.readers import mlflow
    return mlflow.READER


def _walk(root: Path, limits: ReadLimits) -> Iterator[tuple[Path, bool]]:
    """(path, is_run_folder) for MLflow run folders and other regular files under ``root``."""
    seen = 0
    mlflow = _mlflow()
    for dirpath, dirs, files in os.walk(root):
        here = Path(dirpath)
        dirs.sort()
        keep = []
        for d in dirs:
            p = here / d
            if d.startswith(".") or d == "__MACOSX" or p.is_symlink():
                continue
            if mlflow.sniff_dir(p) >= 0.8:
                yield p, True
                continue
            keep.append(d)
        dirs[:] = keep
        for f in sorted(files):
            p = here / f
            if f.startswith(".") or p.is_symlink() or not p.is_file():
                continue
            seen += 1
            if seen > limits.max_archive_entries:
                raise UploadTooLarge(f"{root.name}: more than {limits.max_archive_entries:,} files; the "
                                     f"limit is {limits.max_archive_entries:,}")
            yield p, False


def _read_folder(root: Path, label: str, hint: str | None, limits: ReadLimits) -> RunLog:
    mlflow = _mlflow()
    if hint in (None, "mlflow") and mlflow.sniff_dir(root) >= 0.8:
        try:
            log = mlflow.read(root, limits)
        except LogError as e:
            raise _relabel(e, root.name, label) from None
        log.source = label
        _check_points(log, label, limits)
        return log
    if hint is not None and hint not in registry.formats():
        raise UnknownLogFormat(f"unknown format hint {hint!r}; use one of: {', '.join(registry.formats())}")
    candidates = [r for r in registry.readers() if hint is None or r.name == hint]
    logs: list[tuple[str, RunLog]] = []
    skipped: list[str] = []
    total_bytes = 0
    for p, is_run in _walk(root, limits):
        rel = p.relative_to(root).as_posix()
        shown = f"{label}/{rel}"
        if is_run:
            if hint not in (None, "mlflow"):
                skipped.append(rel + "/")
                continue
            try:
                log = mlflow.read(p, limits)
            except LogError as e:
                raise _relabel(e, p.name, shown) from None
            log.source = shown
            logs.append((rel, log))
            continue
        reader = _sniff(p, candidates)
        if reader is None:
            skipped.append(rel)
            continue
        total_bytes += p.stat().st_size
        if total_bytes > limits.max_uncompressed_bytes:
            raise UploadTooLarge(f"{label}: the logs in it are more than {limits.max_uncompressed_bytes:,} "
                                 "bytes together; the limit is "
                                 f"{limits.max_uncompressed_bytes:,}")
        parent = PurePosixPath(rel).parent.as_posix()
        logs.append((parent if parent != "." else "", _read_file(p, shown, None, limits, reader)))
    if not logs:
        if hint is not None:
            raise UnknownLogFormat(f"{label}: no file in this folder is in the {hint} format")
        raise UnknownLogFormat(f"{label}: no file in this folder is a log format this service reads "
                               f"({', '.join(registry.formats())}); looked at {len(skipped)} file(s)")
    warnings = []
    if skipped:
        shown_names = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        warnings.append(LogWarning("skipped_files", f"{label}: {len(skipped)} file(s) not recognised as "
                                   f"a training log were skipped: {shown_names}"))
    if len(logs) == 1:
        log = logs[0][1]
        log.warnings.extend(warnings)
        return log
    merged = RunLog(format="folder", source=label, warnings=warnings)
    by_name: dict[str, Series] = {}
    for prefix, log in logs:
        for s in log.series:
            name = f"{prefix}/{s.name}" if prefix else s.name
            if name in by_name:
                by_name[name] = _join(by_name[name], s)
            else:
                by_name[name] = replace(s, name=name)
        merged.warnings.extend(log.warnings)
        for k, v in log.params.items():
            if k in merged.params and merged.params[k] != v:
                merged.params[f"{prefix}/{k}" if prefix else f"{log.source}/{k}"] = v
            else:
                merged.params.setdefault(k, v)
        merged.traceback = merged.traceback or log.traceback
    merged.series = list(by_name.values())
    _check_points(merged, label, limits)
    return merged


def _sniff(path: Path, readers: list[registry.Reader]) -> registry.Reader | None:
    try:
        with path.open("rb") as f:
            head = f.read(registry.HEAD_BYTES)
    except OSError:
        return None
    if not head:
        return None
    best, score = None, 0.0
    for r in readers:
        s = r.sniff(path.name, head)
        if s > score:
            best, score = r, s
    return best


def _join(a: Series, b: Series) -> Series:
    wall = None
    if a.wall_time is not None or b.wall_time is not None:
        wall = np.concatenate([a.wall_time if a.wall_time is not None else np.full(len(a), np.nan),
                               b.wall_time if b.wall_time is not None else np.full(len(b), np.nan)])
    steps = np.concatenate([a.steps, b.steps])
    return Series(name=a.name, role=a.role, steps=steps, values=np.concatenate([a.values, b.values]),
                  layer=a.layer, wall_time=wall, step_unit=a.step_unit)


# --- archives ----------------------------------------------------------------------------------------

def _archive_kind(path: Path) -> str | None:
    try:
        with path.open("rb") as f:
            head = f.read(512)
    except OSError:
        return None
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gz"
    if head.startswith(b"BZh"):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    name = path.name.lower()
    if name.endswith(_ARCHIVE_SUFFIXES):
        return "zip" if name.endswith(".zip") else "tar"
    return None


def _read_archive(path: Path, kind: str, hint: str | None, limits: ReadLimits) -> RunLog:
    archive_size = max(path.stat().st_size, 1)
    with tempfile.TemporaryDirectory(prefix="gh-logs-") as tmp:
        dest = Path(tmp) / "x"
        dest.mkdir()
        budget = _Budget(path.name, archive_size, limits)
        if kind == "zip":
            _extract_zip(path, dest, budget)
        else:
            _extract_tar(path, kind, dest, budget)
        root = dest
        entries = [p for p in root.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
        if len(entries) == 1 and entries[0].is_dir():
            root = entries[0]
        if not any(root.iterdir()):
            raise LogError(f"{path.name}: the archive is empty")
        return _read_folder(root, path.name, hint, limits)


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


def _safe_target(dest: Path, name: str, archive: str) -> Path:
    clean = name.replace("\\", "/")
    parts = PurePosixPath(clean).parts
    if (clean.startswith("/") or ".." in parts or (parts and ":" in parts[0])
            or any("\x00" in p for p in parts)):
        raise LogError(f"{archive}: the entry {name!r} points outside the archive (absolute path or "
                       "'..'); refused")
    return dest.joinpath(*[p for p in parts if p not in ("", ".")])


def _copy(src: IO[bytes], target: Path, budget: _Budget, declared: int | None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with target.open("wb") as out:
        while True:
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
                if info.flag_bits & 0x1:
                    raise LogError(f"{path.name}: the entry {info.filename!r} is encrypted")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                with zf.open(info) as src:
                    _copy(src, target, budget, info.file_size)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError) as e:
        raise LogError(f"{path.name}: not a readable zip archive ({e})") from None
    except OSError as e:
        raise LogError(f"{path.name}: cannot be extracted ({e.strerror or e})") from None


class _Counting:
    """A decompressed stream that refuses to give out more than the limits allow."""

    def __init__(self, raw: IO[bytes], budget: _Budget) -> None:
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


def _extract_tar(path: Path, kind: str, dest: Path, budget: _Budget) -> None:
    opener = {"gz": gzip.open, "bz2": bz2.open, "xz": lzma.open}.get(kind)
    try:
        with (opener(path, "rb") if opener else path.open("rb")) as raw, \
                tarfile.open(fileobj=_Counting(raw, budget), mode="r|") as tf:  # type: ignore[arg-type]
            for member in tf:
                budget.entry()
                target = _safe_target(dest, member.name, path.name)
                if target == dest:
                    continue
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isreg():
                    raise LogError(f"{path.name}: the entry {member.name!r} is a link or device; refused")
                budget.declared(budget.out + member.size)
                src = tf.extractfile(member)
                if src is None:
                    continue
                _copy(src, target, budget, member.size)
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, ValueError) as e:
        raise LogError(f"{path.name}: not a readable tar archive ({e})") from None
    except OSError as e:   # gzip.BadGzipFile is an OSError
        raise LogError(f"{path.name}: not a readable archive ({e.strerror or e})") from None

