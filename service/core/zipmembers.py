"""Reading one member of an uploaded zip, with every way it can fail said in words.

A zip's central directory can be whole while a member cannot be read: its encryption flag is set,
its compression method is one Python's :mod:`zipfile` does not implement (deflate64, AES, zstd...),
its compressed data is corrupt, its CRC does not match or its local header is damaged. zipfile
reports these as five unrelated exceptions (``RuntimeError``, ``NotImplementedError``,
``zlib.error``, ``BadZipFile``, ``EOFError``), some only once the data is read. The log archive
reader (:mod:`gradhealth.logs.archive`) and the ``.keras`` reader
(:mod:`gradhealth.analysis.importers.keras`) both read members through :func:`open_member` /
:func:`read_member`, which raise one :class:`ZipMemberError` naming the member and the reason; each
caller words it as its own error (a log error, a model input error).

Torch-free and service-free: only the standard library.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

__all__ = ["READ_ERRORS", "ZipMemberError", "encrypted", "method_problem", "open_member", "read_member"]

#: What zipfile raises while opening or reading a member whose data cannot be decompressed.
READ_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError)

#: Compression methods by number (APPNOTE 4.4.5), for a refusal that says which one a member uses.
_METHODS = {0: "stored", 1: "shrink", 6: "implode", 8: "deflate", 9: "deflate64", 12: "bzip2",
            14: "lzma", 19: "IBM LZ77", 93: "zstandard", 95: "xz", 96: "JPEG", 97: "WavPack",
            98: "PPMd", 99: "AES encryption"}


class ZipMemberError(ValueError):
    """One zip member cannot be read: ``member`` is its name, ``reason`` what is wrong (in words),
    ``cause`` zipfile's own exception where there was one (None for a refusal made up front)."""

    def __init__(self, member: str, reason: str, cause: BaseException | None = None) -> None:
        super().__init__(f"{member}: {reason}")
        self.member, self.reason, self.cause = member, reason, cause

    @property
    def is_encrypted(self) -> bool:
        """Whether the member is refused for its encryption flag."""
        return self.cause is None and self.reason.startswith("it is encrypted")


def encrypted(info: zipfile.ZipInfo) -> bool:
    """Whether the member's encryption flag (general purpose bit 0) is set: zipfile would ask for a
    password, and an upload has none."""
    return bool(info.flag_bits & 0x1)


def method_problem(info: zipfile.ZipInfo) -> str | None:
    """Why the member's compression method cannot be decompressed here, or None when it can."""
    method = info.compress_type
    if method in _SUPPORTED and _SUPPORTED[method]():
        return None
    name = _METHODS.get(method)
    return f"compression method {method}{f' ({name})' if name else ''} is not supported"


def _importable(module: str) -> Callable[[], bool]:
    """Whether the standard library module ``module`` is there (a Python built without bz2/lzma)."""
    def check() -> bool:
        try:
            __import__(module)
        except ImportError:
            return False
        return True
    return check


#: The methods zipfile decompresses (zipfile._check_compression's list), each with whether the
#: module it needs is present.
_SUPPORTED: dict[int, Callable[[], bool]] = {
    zipfile.ZIP_STORED: lambda: True, zipfile.ZIP_DEFLATED: _importable("zlib"),
    zipfile.ZIP_BZIP2: _importable("bz2"), zipfile.ZIP_LZMA: _importable("lzma")}


def _reason(exc: BaseException) -> str:
    """zipfile's exception as a reason a person can act on."""
    text = str(exc)[:200]
    if isinstance(exc, zipfile.BadZipFile):
        if "CRC" in text:
            return f"its data is corrupt (CRC mismatch: {text})"
        return f"its local header is damaged ({text})"
    if isinstance(exc, zlib.error):
        return f"its compressed data is corrupt ({text})"
    if isinstance(exc, EOFError):
        return f"its compressed data ends early ({text or 'truncated'})"
    if isinstance(exc, NotImplementedError):
        return f"it uses a feature zip readers here do not support ({text})"
    return f"it cannot be read ({text})"


@contextmanager
def open_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[IO[bytes]]:
    """The member ``info`` of ``zf`` opened for reading; a :class:`ZipMemberError` for an encrypted
    member or an unsupported method (before opening), and for any zipfile error raised while it is
    opened or read inside the ``with`` block (corrupt data, CRC, damaged local header). Other
    exceptions from the block (the caller's own) pass unchanged."""
    if encrypted(info):
        raise ZipMemberError(info.filename, "it is encrypted (a password-protected member cannot be read)")
    why = method_problem(info)
    if why is not None:
        raise ZipMemberError(info.filename, why)
    try:
        with zf.open(info) as fh:
            yield fh
    except ZipMemberError:
        raise
    except READ_ERRORS as exc:
        raise ZipMemberError(info.filename, _reason(exc), exc) from None


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """At most ``limit`` bytes of the member ``info`` (read no further, whatever its header
    declares: the caller compares the length with its limit); :class:`ZipMemberError` as
    :func:`open_member`. A member cut at ``limit`` is not CRC-checked (its end is never read)."""
    with open_member(zf, info) as fh:
        return fh.read(limit)
