"""What a log file is, before it is read: the one size check, the one archive detector and the one
format sniffer, used by the loader (:mod:`gradhealth.logs.load`) and every reader. The upload route
calls :func:`gradhealth.logs.load.detect`, which adds the loader's own decisions (byte-order marks,
semicolon tables) to :func:`detect` here, so an upload is judged as the loader reads the file.

- :func:`check_size`: a file over ``limits.max_file_bytes`` raises :class:`UploadTooLarge`.
- :func:`archive_kind`: ``zip``, ``tar``, ``gz``, ``bz2`` or ``xz`` (a tar inside the compressed
  ones) by the first bytes, not by the name; the name counts only for a file the content does not
  settle (a tar written without the ``ustar`` magic, or an archive cut short).
- :func:`sniff` / :func:`detect`: the reader for a file by its name and first bytes
  (:data:`HEAD_BYTES`): each registered reader scores how sure it is, the surest wins. A file none
  claims that is nearly one's (a first JSON record too long or too deep to judge: :func:`near_miss`)
  is refused with :class:`LogError` naming the line and why; a text file with a NUL byte or a
  line that is not UTF-8 has that line named in the refusal.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import BinaryIO

from gradhealth.core.saved_instead import is_lfs_pointer
from gradhealth.core.strict_json import DuplicateKey, json_depth
from gradhealth.errors import LogError, UnknownLogFormat, UploadTooLarge
from gradhealth.logs.foreign import what_it_is
from gradhealth.logs.readers import registry
from gradhealth.logs.readers.registry import Reader, ReadLimits

HEAD_BYTES = 64 * 1024
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")

# (magic at offset 0, kind); a tar's own magic sits at offset 257 (below)
_MAGIC = ((b"PK\x03\x04", "zip"), (b"PK\x05\x06", "zip"), (b"\x1f\x8b", "gz"), (b"BZh", "bz2"),
          (b"\xfd7zXZ\x00", "xz"))
_TAR_MAGIC_AT = 257


def check_size(path: Path, limits: ReadLimits, label: str | None = None) -> int:
    """The file's size in bytes, refused over ``limits.max_file_bytes`` (``label`` names the file
    in messages; default its name)."""
    label = label or path.name
    try:
        size = path.stat().st_size
    except OSError as e:
        raise LogError(f"{label}: cannot be read ({e.strerror or e})") from None
    if size > limits.max_file_bytes:
        raise UploadTooLarge(f"{label} is {size:,} bytes; the limit for one log file is "
                             f"{limits.max_file_bytes:,} bytes (GRADHEALTH_MAX_UPLOAD_BYTES)")
    return size


#: How far a first line that is one ``#`` comment is followed to its end (:func:`past_comment`).
COMMENT_BYTES = 2**20


def read_head(path: Path, n: int = HEAD_BYTES) -> bytes:
    """The first ``n`` bytes of the file (fewer when it is shorter); for a sniffer's head (``n`` of
    :data:`HEAD_BYTES` or more), a first ``#`` comment line longer than that is read to its end and
    ``n`` bytes after it (:func:`past_comment`). Opened non-blocking: a pseudo-file that would block
    (``/proc/kmsg``, a FIFO) raises :class:`OSError` instead of waiting for ever."""
    with _open_nonblocking(path) as f:
        head = f.read(n)
        return past_comment(f, head, n) if n >= HEAD_BYTES else head


def _open_nonblocking(path: Path) -> BinaryIO:
    """``path`` opened for reading bytes with ``O_NONBLOCK`` (where the system has it): a regular
    file reads as ever, a read that would block fails with ``EAGAIN``."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def past_comment(f: BinaryIO, head: bytes, n: int) -> bytes:
    """``head``, the first bytes read from ``f``, and where it is all one unfinished ``#`` comment
    line (a Monitor file's ``#{"t_start": ...}`` with a long info dict), the rest of that line, up
    to :data:`COMMENT_BYTES`, and ``n`` bytes after it: the lines the comment would hide from a
    sniffer (the header of the table it heads). ``f`` is read on from where ``head`` ends."""
    if not head.lstrip(b"\xef\xbb\xbf").startswith(b"#") or b"\n" in head or len(head) < n:
        return head
    line = bytearray(head)
    while len(line) < COMMENT_BYTES:
        chunk = f.read(min(HEAD_BYTES, COMMENT_BYTES - len(line)))
        if not chunk:
            return bytes(line)
        end = chunk.find(b"\n")
        if end >= 0:
            rest = chunk[end + 1:]
            return bytes(line) + chunk[:end + 1] + rest[:n] + (f.read(n - len(rest)) if len(rest) < n else b"")
        line += chunk
    return head


def archive_kind_of(name: str, head: bytes) -> str | None:
    """``zip``, ``tar``, ``gz``, ``bz2`` or ``xz`` for an archive named ``name`` starting with
    ``head`` (at least 512 bytes of it when the file is that long), else None."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[_TAR_MAGIC_AT:_TAR_MAGIC_AT + 5] == b"ustar":
        return "tar"
    lower = name.lower()
    if lower.endswith(ARCHIVE_SUFFIXES):
        return "zip" if lower.endswith(".zip") else "tar"
    return None


def archive_kind(path: Path) -> str | None:
    """What :func:`archive_kind_of` says of the file at ``path`` (None when it cannot be read)."""
    try:
        head = read_head(path, 512)
    except OSError:
        return None
    return archive_kind_of(path.name, head)


def sniff(name: str, head: bytes, readers: list[Reader] | None = None) -> tuple[Reader | None, float]:
    """The surest of ``readers`` (default: all) for a file named ``name`` starting with ``head``, and
    its score; (None, 0) when none recognises it. Ties go to the reader registered first."""
    best, score = None, 0.0
    for r in registry.readers() if readers is None else readers:
        s = r.sniff(name, head)
        if s > score:
            best, score = r, s
    return best, score


def detect(path: Path, hint: str | None = None) -> Reader:
    """The reader for ``path``: the hinted one (checked against the content), else the surest sniff.

    Raises :class:`UnknownLogFormat` for an empty file, an unknown hint, a hint the content
    contradicts, or a file no reader recognises.
    """
    head = read_head(path)
    if not head:
        raise UnknownLogFormat(f"{path.name}: the file is empty")
    if is_lfs_pointer(head):
        raise UnknownLogFormat(f"{path.name} is a Git LFS pointer, not the log itself: fetch the real "
                               "file (git lfs pull in the repository it came from) and check that")
    all_readers = registry.readers()
    if hint is not None:
        match = [r for r in all_readers if r.name == hint]
        if not match:
            raise UnknownLogFormat(f"unknown format hint {hint!r}; use one of: "
                                   f"{', '.join(r.name for r in all_readers)}")
        # the file's own name may veto a format it is in (a text log saved as .md): the hint decides
        if (match[0].sniff(path.name, head) <= 0 and match[0].sniff(f"{path.stem or 'log'}.log", head) <= 0
                and not (hint == "text" and _text_later(path, all_readers, None) is not None)):
            best, _ = sniff(path.name, head, all_readers)
            guess = f"; it looks like {best.name}" if best is not None else ""
            # what the hinted reader looked for and found, where it says (the text reader: what the lines hold)
            said = _why_not(path.name, head, match) if best is None else ""
            raise UnknownLogFormat(f"{path.name} is not in the {hint} format{said}{guess}")
        return match[0]
    best, _ = sniff(path.name, head, all_readers)
    if best is None and (foreign := what_it_is(path, head)) is not None:
        raise UnknownLogFormat(f"{path.name} is {foreign}")
    if best is None:
        best = _text_later(path, all_readers)
    python = path.suffix.lower() == ".py" and python_source(head)
    if best is None and path.suffix.lower() == ".py" and not python:
        # named .py but holding no Python (a console saved under a script's name): read as the same
        # bytes named .log would be, as a format hint does
        alias = f"{path.stem or 'log'}.log"
        best, _ = sniff(alias, head, all_readers)
        if best is None:
            best = _text_later(path, all_readers, name=alias)
    if best is None:
        if python:
            # a model's source: checked where it can be imported, never run from a file here
            raise UnknownLogFormat(f"{path.name} is Python source, not a log or a spec: check a PyTorch module "
                                   "from Python with gradhealth.check_module(model, example_inputs), or export it "
                                   "(torch.onnx.export) and check the .onnx file")
        if (miss := near_miss(path, head, all_readers)) is not None:
            raise LogError(f"{path.name} {miss}")
        raise UnknownLogFormat(f"{path.name}: not a log format gradhealth reads "
                               f"({', '.join(r.name for r in all_readers)}){_why_not(path.name, head, all_readers)}"
                               f"{_encoding_problem(head)}")
    return best


def _why_not(name: str, head: bytes, readers: list[Reader]) -> str:
    """What the readers looked for in a file none of them reads, as the refusal's next words: each
    reader's optional ``why_not(filename, head)`` (a README: no table of results, and no console's
    lines among its prose), joined; "" where none says anything."""
    said = [str(why) for r in readers if callable(hook := getattr(r, "why_not", None)) and (why := hook(name, head))]
    return f": {'; '.join(said)}" if said else ""


# --- near misses: a file no reader claims that is almost one's, refused naming the line and why ---------

#: How far a first JSON record that does not end inside the head is followed to measure it (as far
#: as a line-based reader reads one line)
RECORD_SCAN_BYTES = 16 * 2**20


def near_miss(path: Path, head: bytes, readers: list[Reader]) -> str | None:
    """Why a file no reader claims is nearly one a reader reads, as ``line N: <reason>``: what a
    reader's optional ``near_miss(filename, head)`` says (the first that says something), else
    :func:`json_record_near_miss`'s verdict on a first line that opens a JSON record; None when
    nothing is nearly read (the caller then refuses the format as unknown)."""
    for r in readers:
        hook = getattr(r, "near_miss", None)
        if callable(hook) and (said := hook(path.name, head)):
            return str(said)
    return json_record_near_miss(path, head)


def json_record_near_miss(path: Path, head: bytes) -> str | None:
    """``line N: <reason>`` for a first non-blank line that opens a JSON record (``{"``) but cannot
    be judged from the head: it does not end within :data:`HEAD_BYTES` (its length is measured, up
    to :data:`RECORD_SCAN_BYTES`), is nested deeper than a JSON reader goes, or is not JSON. None
    for any other head, and for a record that parses (a JSON object no reader knows is no near miss)."""
    body = head[3:] if head.startswith(b"\xef\xbb\xbf") else head
    stripped = body.lstrip(b" \t\r\n")
    lineno = len(_LINE_END.findall(body[:len(body) - len(stripped)])) + 1
    if not re.match(rb'\{[ \t]*"', stripped):
        return None  # (a pretty-printed JSON document opens with "{" alone on its line: no record)
    end = _LINE_END.search(stripped)
    if end is None and len(head) >= HEAD_BYTES:
        size = _line_length(path, len(head) - len(stripped))
        shown = f"{size:,} bytes" if size is not None else f"more than {RECORD_SCAN_BYTES:,} bytes"
        return (f"line {lineno}: the JSON record is {shown} long, more than the {HEAD_BYTES:,} bytes a log's "
                "format is recognised within; write long notes or configs to a file of their own")
    from gradhealth.logs.readers.textio import loads  # (textio imports this module)

    line = stripped[:end.start()] if end is not None else stripped
    try:
        loads(line.decode("utf-8", "replace"))
    except DuplicateKey as e:
        return f"line {lineno}: the JSON record at {e.pointer}: {e.why}"
    except ValueError as e:
        depth = json_depth(line)
        if depth >= 100 and "nested" in str(e):
            return (f"line {lineno}: the JSON record is nested {depth:,} levels deep, deeper than a JSON "
                    "reader goes; a training log's record is flat")
        where = f" at column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
        return f"line {lineno}: starts a JSON record but is not JSON ({getattr(e, 'msg', e)}{where})"
    return None


def _line_length(path: Path, start: int) -> int | None:
    """The length of the line starting at byte ``start`` of the file, its end not counted; None when
    it runs past :data:`RECORD_SCAN_BYTES` without one."""
    with _open_nonblocking(path) as f:
        f.seek(start)
        n = 0
        while n <= RECORD_SCAN_BYTES:
            chunk = f.read(2**20)
            if not chunk:
                return n
            if (m := _LINE_END.search(chunk)) is not None:
                return n + m.start()
            n += len(chunk)
    return None


_LINE_END = re.compile(rb"\r\n?|\n")
#: The lines a refusal looks at for bytes that are not text: a table's header and first rows
_ENCODING_LINES = 50


def binary(head: bytes) -> bool:
    """Whether a file starting with ``head`` is binary data, not text: NUL bytes in its first line,
    or as more than an eighth of its first 4 KiB (UTF-16 text without a byte-order mark is half
    NULs). A NUL further down a text file (a crash's zero padding, a UTF-16 fragment a Windows tool
    appended) leaves it text, whose readers then name that line."""
    start = head[:4096]
    first = _LINE_END.split(start, maxsplit=1)[0]
    return b"\x00" in first or start.count(b"\x00") * 8 > len(start)


def nul_at(head: bytes) -> tuple[int, int] | None:
    """(line, column), both from 1, of the first NUL byte in ``head``; None when it holds none."""
    at = head.find(b"\x00")
    if at < 0:
        return None
    before = head[:at]
    lines = _LINE_END.split(before)
    return len(lines), len(lines[-1]) + 1


def utf16_without_bom(head: bytes) -> str | None:
    """``"UTF-16LE"`` or ``"UTF-16BE"`` (iconv's names) where ``head`` is UTF-16 text without a byte-order mark:
    text of Latin letters in UTF-16 is a NUL byte beside every character (after it in LE, before it
    in BE), so nearly every byte at one parity is NUL and nearly none at the other, and the bytes
    read as UTF-16 are text (no control characters but tab and line ends); else None. A crash's
    zero padding or binary data has NULs at both parities."""
    start = head[:4096]
    start = start[:len(start) - len(start) % 2]
    if len(start) < 16:
        return None
    even, odd = start[0::2].count(0), start[1::2].count(0)
    half = len(start) // 2
    for name, nuls, other in (("UTF-16LE", odd, even), ("UTF-16BE", even, odd)):
        if nuls * 10 >= half * 9 and other * 10 <= half:
            text = start.decode(name.lower(), "replace")   # (the head may end inside a surrogate pair)
            if not any(c < " " and c not in "\t\r\n" for c in text):
                return name
    return None


def _encoding_problem(head: bytes) -> str:
    """Where the first lines of a text file no reader knows are not UTF-8 (nor Windows-1252, which
    the table readers fall back to), or hold a NUL byte, as the refusal's last words: ``; line 1 is
    not UTF-8 text (byte 0x81 at column 15): save it as UTF-8``; "" for binary data
    (:func:`binary`) or UTF-8 text. UTF-16 text without a byte-order mark is said to be so
    (:func:`utf16_without_bom`), with how to convert it."""
    if (utf16 := utf16_without_bom(head)) is not None:
        return (f"; it looks like {utf16} text without a byte-order mark (a NUL byte beside every character): "
                f"save it as UTF-8 (iconv -f {utf16} -t UTF-8 in.csv > out.csv; in PowerShell, "
                "Get-Content in.csv | Set-Content -Encoding utf8 out.csv), or as UTF-16 with its byte-order mark")
    if binary(head):
        return _nul_in_text(head)
    nul = nul_at(head)
    lines = _LINE_END.split(head)
    if len(head) >= HEAD_BYTES:
        lines = lines[:-1]  # (the head may end inside a character)
    for lineno, raw in enumerate(lines[:_ENCODING_LINES], 1):
        if nul is not None and nul[0] == lineno:
            return (f"; line {lineno} holds a NUL byte (column {nul[1]}), which no text log has: a crash's "
                    "zero padding or text of another encoding (UTF-16) written into it")
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as e:
            return (f"; line {lineno} is not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}): "
                    "save it as UTF-8")
    return ""


def _nul_in_text(head: bytes) -> str:
    """Where a head taken for binary data is text with NUL bytes in its first line (a NUL written
    into a name, a writer's bug), as the refusal's last words naming the line and byte offset; ""
    where the bytes before the first NUL are not text (binary data: an image, a pickle)."""
    at = head.find(b"\x00")
    before = head[:at]
    try:
        text = before.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    if at <= 0 or not text.strip() or _CONTROL_BYTES.search(before):
        return ""
    line, column = nul_at(head) or (1, at + 1)
    return (f"; line {line} holds a NUL byte (byte offset {at:,}, column {column}), which no text log has: "
            "save the log as text without NUL bytes (NUL padding after a log's first line is passed over)")


#: The control bytes no text holds: all but tab, the line ends, form feed and ESC (NUL apart).
_CONTROLS = bytes([*range(0x01, 0x09), *range(0x0E, 0x1B), *range(0x1C, 0x20)])
_CONTROL_BYTES = re.compile(b"[" + re.escape(_CONTROLS) + b"]")


#: How far into a file whose head no reader knows to look for a text log's lines: an mmengine
#: log opens with a 1,300-line dump of its environment and config before the first training line.
TEXT_SEARCH_BYTES = 4 * 2**20


def _text_later(path: Path, readers: list[Reader], search: int | None = TEXT_SEARCH_BYTES,
                name: str | None = None) -> Reader | None:
    """The text reader when the lines past those the head's sniff reads (its first
    ``text._HEAD_LINES`` non-blank lines: a ``print(model)`` of a large network runs past them),
    up to ``search`` bytes in (None: the whole file, for an explicit ``--log-format text``), read as
    a text log; None otherwise. Searched in windows of :data:`HEAD_BYTES`, the first from the line
    after the head's sniffed lines, the rest after it without overlap, each from its first whole
    line and its first line with values on (a notes file's training lines 600 lines down, still
    inside the head's 64 KB). ``name`` is the file's name as the sniff sees it (default its own)."""
    from gradhealth.logs.readers.text import READER as text
    from gradhealth.logs.readers.text import sniffed_bytes

    if text not in readers:
        return None
    with path.open("rb") as f:
        at = sniffed_bytes(f.read(HEAD_BYTES))
        first = True
        while search is None or at < search:
            f.seek(at)
            window = f.read(HEAD_BYTES)
            if not window:
                return None
            start = 0 if first else window.find(b"\n") + 1
            if (start or first) and not binary_window(window) and text.sniff_within(name or path.name, window[start:]) > 0:
                return text
            at, first = at + HEAD_BYTES, False
    return None


#: Bytes no text log holds: NUL and :data:`_CONTROLS`.
_NON_TEXT = b"\x00" + _CONTROLS
#: A window with more than this share of bytes that are no text (:func:`binary_window`) is not searched.
_BINARY_SHARE = 1 / 8


def binary_window(window: bytes) -> bool:
    """Whether ``window`` is binary data, not text: more than :data:`_BINARY_SHARE` of its bytes are
    control bytes or belong to no UTF-8 character (an array's floats, a checkpoint, an image, NUL
    padding). Searching such a window line by line for a console's lines costs seconds a megabyte
    (its "lines" are random bytes) and finds none."""
    if not window:
        return False
    controls = len(window) - len(window.translate(None, _NON_TEXT))
    invalid = window.decode("utf-8", "replace").count("\ufffd")
    return controls + invalid > _BINARY_SHARE * len(window)


# --- what a file is by its content: Python source -------------------------------------------------

#: How far into a ``.py`` file its lines are looked at for Python
PYTHON_HEAD_BYTES = 8 * 1024
#: Lines only Python source starts with: an import, a def or class, the main guard, a decorator, a
#: python shebang, an encoding cookie, a module docstring, a module-level assignment of a literal or
#: a call (a config file: ``model = dict(...)``, ``_base_ = [...]``)
_PYTHON_LINE = re.compile(
    r"^(?:import [A-Za-z_][\w.]*|from \.*[A-Za-z_]?[\w.]* import \S|(?:async )?def [A-Za-z_]\w*\s*\(|"
    r"class [A-Za-z_]\w*\s*[(:]|if __name__\s*==|@[A-Za-z_][\w.]*\s*(?:\(|$)|#!.*\bpython|"
    r"#.*-\*-\s*coding[:=]|\"\"\"|'''|[A-Za-z_]\w*\s*=\s*(?:dict\(|\[|\{|['\"]|True\b|False\b|None\b))")


def python_source(head: bytes) -> bool:
    """Whether a file starting with ``head`` holds Python source: one of its lines in the first
    :data:`PYTHON_HEAD_BYTES` starts (unindented) with what only Python starts a line with
    (:data:`_PYTHON_LINE`). A console saved under a script's name (a shell prompt, ``[INFO]`` lines)
    has none. Read as text only; nothing is run."""
    text = head[:PYTHON_HEAD_BYTES].decode("utf-8", "replace").lstrip("\ufeff")
    return any(_PYTHON_LINE.match(ln) for ln in text.splitlines())
