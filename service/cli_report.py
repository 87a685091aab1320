"""The check command's reports for CI: every format from one run, several files at once, the
GitHub step summary, the baseline comparison, and several inputs (pre-commit passes many files).

Kept apart from :mod:`gradhealth.cli` so that building the parser stays cheap: this module imports
only the standard library at load time; the renderers load when a report is written.

- ``--format NAME`` picks the main report (stdout, or ``-o FILE``); ``--output FORMAT=FILE``
  (repeatable) writes further formats of the same document. Nothing is simulated twice.
- ``--baseline PREVIOUS.json`` compares with an earlier document (a diagnosis, or a job resource
  with its ``result``); ``--fail-on new`` then fails only on regressions.
- With ``$GITHUB_STEP_SUMMARY`` set, the Markdown report is appended to it when the format is
  ``github`` or ``$GITHUB_ACTIONS`` is ``true`` (``--step-summary``/``--no-step-summary`` decide).
- The report names the input by its path relative to its git repository's root (else to the
  current directory), as SARIF and GitLab need.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from gradhealth.core.pointers import escape, pointer_of, too_deep_path
from gradhealth.core.words import shorten

if TYPE_CHECKING:
    from gradhealth.core.document import Diagnosis, Finding
    from gradhealth.report import ReportContext

__all__ = ["MAX_BASELINE_BYTES", "MAX_SPEC_BYTES", "FORMAT_NAMES", "ReportWriteError", "finite_at_least_zero",
           "path_problem", "read_stdin", "read_user_file", "writable", "write_report", "STREAM_FORMATS", "add_report_options", "emit", "parse_output",
           "has_regressions", "prepare", "combine_reports", "COMBINED_FORMATS", "report_context", "repo_relative", "run_inputs"]

# The registry's names (gradhealth.report.FORMATS), written out so `--help` does not load the
# renderers; a test pins the two against each other.
FORMAT_NAMES = ("text", "json", "sarif", "junit", "github", "markdown", "html", "codeclimate")
# Formats that several inputs can share one standard output with, one report after another.
STREAM_FORMATS = ("text", "github", "markdown")
# Formats that several inputs share as one combined report (stdout or --output): the stream formats
# one after another, SARIF's runs, JUnit's test suites, JSON's object keyed by input, Code Climate's
# issues (see combine_reports); an HTML page is one input's.
COMBINED_FORMATS = (*STREAM_FORMATS, "sarif", "junit", "json", "codeclimate")
FAIL_ON = ("warning", "error", "new", "never")
# gradhealth.core.baseline's defaults (pinned by a test; importing it here would load pydantic).
DEFAULT_DECADES = 0.5
DEFAULT_FRACTION_STEP = 0.1


# --- the files a user names ------------------------------------------------------------------------

#: The largest spec (or Keras config) the CLI reads: the service takes 1 MB bodies; a spec is text.
MAX_SPEC_BYTES = 16 * 2**20
#: The largest --baseline document: a diagnosis is a few MB at most, even for a large model.
MAX_BASELINE_BYTES = 64 * 2**20
#: The most findings a --baseline may list: a check names each problem once per series or layer,
#: and no document it writes comes near this (28 codes); 5,000 copies of one finding were taken as a
#: baseline and printed 5,000 times (errsweep6 #8).
MAX_BASELINE_FINDINGS = 10_000


def _kind_of(mode: int) -> str:
    """What a file that is not a regular one is, in words."""
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"


def _mode_problem(mode: int) -> str | None:
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    if not stat.S_ISREG(mode):
        return f"not a regular file ({_kind_of(mode)})"
    return None


def _os_problem(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return "no such file"
    if isinstance(exc, PermissionError):
        return "cannot be read (permission denied)"
    return f"cannot be read ({exc.strerror or exc})"


def path_problem(source: str) -> str | None:
    """Why ``source`` cannot be read as a file, in a few words ("no such file", "is a folder, not
    a file", "not a regular file (a named pipe)", ...), or None when it is a regular file. Nothing
    is opened: a named pipe or a device is never read."""
    try:
        return _mode_problem(os.stat(source).st_mode)
    except OSError as exc:
        return _os_problem(exc)


def read_user_file(source: str, *, what: str, cap: int) -> bytes:
    """The bytes of the file a user named (``what`` starts each message, e.g. ``--baseline X``).

    Only a regular file is read, and at most ``cap`` bytes of it: a missing file, a folder, a named
    pipe or a device (``/dev/zero`` would be read for ever, a pipe would block) and a file over
    ``cap`` are each :class:`~gradhealth.errors.InputFormatError` with its own message, before
    anything is read. The file is opened without blocking and checked on the open descriptor, so
    that a path swapped for a pipe after a check cannot block either."""
    from gradhealth.errors import InputFormatError

    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(source, flags)
    except OSError as exc:
        raise InputFormatError(f"{what}: {_os_problem(exc)}") from None
    try:
        info = os.fstat(fd)  # on the descriptor, before a file object (which refuses a folder itself)
        problem = _mode_problem(info.st_mode)
        if problem is None and info.st_size > cap:
            problem = f"{info.st_size:,} bytes, over the limit of {cap:,} bytes"
        if problem is not None:
            raise InputFormatError(f"{what}: {problem}")
        with os.fdopen(fd, "rb") as f:
            fd = -1  # the file object closes it now
            data = f.read(cap + 1)  # a file that grew since fstat is still bounded
    except OSError as exc:
        raise InputFormatError(f"{what}: {_os_problem(exc)}") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > cap:
        raise InputFormatError(f"{what}: over the limit of {cap:,} bytes")
    return data


def read_stdin(*, what: str, cap: int) -> bytes:
    """Standard input's bytes, at most ``cap`` of them; empty input is
    :class:`~gradhealth.errors.InputFormatError` ("standard input is empty"), not a missing file."""
    from gradhealth.errors import InputFormatError

    stream: Any = getattr(sys.stdin, "buffer", None)
    data = stream.read(cap + 1) if stream is not None else sys.stdin.read(cap + 1).encode("utf-8")
    if not data:
        raise InputFormatError(f"standard input is empty: pipe {what} in, or name a file")
    if len(data) > cap:
        raise InputFormatError(f"standard input: over the limit of {cap:,} bytes")
    return data


def finite_at_least_zero(flag: str) -> Callable[[str], float]:
    """An argparse type for ``flag``: a finite number >= 0 (``nan`` would make every comparison
    false, ``inf`` would disable the comparison: neither is a threshold)."""
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number < 0:
            raise argparse.ArgumentTypeError(f"{value!r}: {flag} takes a finite number, 0 or more")
        return number
    return parse


def parse_output(value: str) -> tuple[str | None, str]:
    """``FORMAT=FILE`` -> (format, file); a plain ``FILE`` -> (None, file): the main report."""
    name, sep, path = value.partition("=")
    if sep and name in FORMAT_NAMES:
        if not path:
            raise argparse.ArgumentTypeError(f"{value!r}: no file after {name}=")
        return name, path
    meant = _FORMAT_ALIASES.get(name.lower()) if sep else None
    if meant is not None:
        # "md=out/r.md" meant a format: the text report in a folder named "md=out" is no answer
        raise argparse.ArgumentTypeError(
            f"{value!r}: {name!r} is no report format; did you mean {meant}={path}? (formats: "
            f"{', '.join(FORMAT_NAMES)}; for a file so named, write ./{value})")
    return None, value


#: Names users give formats that are not theirs here, and the format they mean.
_FORMAT_ALIASES = {"md": "markdown", "txt": "text", "xml": "junit", "junitxml": "junit", "gh": "github",
                   "htm": "html", "codequality": "codeclimate", "gitlab": "codeclimate", "cq": "codeclimate",
                   "sarif-json": "sarif", "jsonl": "json"}


def add_report_options(check: argparse.ArgumentParser) -> None:
    """The check command's report options (its other options stay in gradhealth.cli)."""
    check.add_argument("more", nargs="*", default=[], metavar="INPUT",
                       help="further inputs, checked one after the other (pre-commit passes several "
                            "files); their reports share standard output (text, github, markdown)")
    check.add_argument("--format", choices=FORMAT_NAMES, default="text",
                       help="the main report: " + ", ".join(FORMAT_NAMES) + " (default: text)")
    check.add_argument("--output", "-o", action="append", type=parse_output, default=[],
                       metavar="[FORMAT=]FILE",
                       help="FILE: write the main report there instead of stdout; FORMAT=FILE "
                            "(repeatable): also write that format there, from the same run")
    check.add_argument("--step-summary", action=argparse.BooleanOptionalAction, default=None,
                       help="append the Markdown report to $GITHUB_STEP_SUMMARY (default: when it is "
                            "set and --format is github or $GITHUB_ACTIONS is true)")
    check.add_argument("--no-timings", action="store_true", default=False,
                       help="leave the read and simulation times out of the text and HTML reports and "
                            "write them as 0 in the JSON document (duration_s), so that two runs of the "
                            "same input give byte-identical reports (diff-based CI)")
    check.add_argument("--baseline", metavar="PREVIOUS.json",
                       help="compare with an earlier diagnosis document: findings new, gone or worse")
    check.add_argument("--baseline-decades", type=finite_at_least_zero("--baseline-decades"), default=DEFAULT_DECADES, metavar="N",
                       help="a gradient ratio that moved more than N decades (log10) is worse "
                            f"(default: {DEFAULT_DECADES})")
    check.add_argument("--baseline-fraction", type=finite_at_least_zero("--baseline-fraction"), default=DEFAULT_FRACTION_STEP, metavar="F",
                       help="a dead or saturated fraction up by more than F is worse "
                            f"(default: {DEFAULT_FRACTION_STEP})")


def repo_relative(path: Path, cwd: Path | None = None) -> str:
    """``path`` relative to the root of the git repository holding it (a folder with ``.git``),
    else to ``cwd``, else as given; with forward slashes."""
    here = (cwd or Path.cwd()).resolve()
    target = (here / path).resolve() if not path.is_absolute() else path.resolve()
    for root in target.parents:
        if (root / ".git").exists():
            return target.relative_to(root).as_posix()
    try:
        return target.relative_to(here).as_posix()
    except ValueError:
        return PurePosixPath(path.as_posix()).as_posix()


def report_context(args: argparse.Namespace, *, kind: str, text: str | None = None,
                   doc: Diagnosis | None = None) -> ReportContext:
    """What the renderers need besides the document: the input's repository path, the spec's own
    text (for lines; read here when not given) or the log's local path. For a run folder that is
    the file the log check read in it (``doc.log.source``), so findings land on its lines; for an
    archive, the archive (no file on disk) with the member named."""
    from gradhealth.report import ReportContext

    source: str | None = None
    path: Path | None = None
    member: str | None = None
    if args.spec != "-" and not args.spec.startswith("example:"):
        source = repo_relative(Path(args.spec))
        path = Path(args.spec)
    if kind == "logs" and path is not None and doc is not None and doc.log is not None:
        inner = doc.log.source
        if path.is_dir():
            found = (path / inner).resolve()
            if found.is_file() and found.is_relative_to(path.resolve()):
                path = path / inner
                source = repo_relative(path)
        elif inner and inner != path.name:
            member = inner  # read from inside an archive
    if kind == "spec" and text is None and path is not None and path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = None
    if kind == "spec" and args.spec.startswith("example:"):
        from importlib import resources

        name = args.spec.removeprefix("example:")
        text = (resources.files("gradhealth") / "examples" / f"{name}.yaml").read_text()
    word = None
    if kind == "model" and path is not None:
        word = "ONNX" if path.suffix.lower() == ".onnx" else "Keras"
    # outside any repository, a path that climbs out of the working directory: SARIF's absolute URI
    climbs = source is not None and (source.startswith("../") or source.startswith("/"))
    uri = (path.resolve().as_uri() if climbs and path is not None and member is None else None)
    return ReportContext(source=source, text=text if kind == "spec" else None, kind_word=word, source_uri=uri,
                         path=path if kind == "logs" and member is None else None,
                         kind="logs" if kind == "logs" else None, layers=args.layers,
                         member=member, fail_on=getattr(args, "fail_on_given", None),
                         fail_on_unjudged=bool(getattr(args, "fail_on_unjudged", False)))


#: Nesting a baseline may have: a diagnosis is about a dozen levels deep, and a remedy's patch
#: carries a part of a spec (itself at most 64 levels). Deeper text is refused before it is decoded.
MAX_BASELINE_DEPTH = 100
#: Digits of an integer literal worth converting: every figure of a diagnosis fits a float (1e308);
#: Python refuses past 4,300 digits with a message about its own internals.
_MAX_INT_DIGITS = 400
#: JSON text's tokens, as far as finding a container's place needs: a string, a bracket or ``,``.


class _Overlong:
    """An integer literal too long to convert, reported at its place."""

    def __init__(self, digits: int) -> None:
        self.digits = digits


def _json_int(literal: str) -> int | _Overlong:
    digits = len(literal.lstrip("-"))
    return int(literal) if digits <= _MAX_INT_DIGITS else _Overlong(digits)


def _clip_pointer(pointer: str, limit: int = 80) -> str:
    return pointer if len(pointer) <= limit else pointer[: limit - 1] + "…"


def too_deep_at(text: str, limit: int = MAX_BASELINE_DEPTH) -> str | None:
    """The JSON pointer where ``text`` opens a container past ``limit`` levels, or None. One pass
    over its tokens that builds nothing (so no depth can exhaust the stack)."""
    path = too_deep_path(text, limit)
    return None if path is None else pointer_of(path)


def _overlong_at(data: Any) -> tuple[str, int] | None:
    """The pointer and digit count of the first over-long integer in ``data`` (bounded depth)."""
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        value, pointer = stack.pop()
        if isinstance(value, _Overlong):
            return pointer or "the top level", value.digits
        if isinstance(value, dict):
            stack.extend((v, f"{pointer}/{escape(k)}") for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend((v, f"{pointer}/{i}") for i, v in reversed(list(enumerate(value))))
    return None


def _pointer(loc: tuple[Any, ...], data: Any) -> str:
    """A pydantic error location as a JSON pointer into ``data``: the parts that are not keys of
    the document (model names, union tags) are left out."""
    parts: list[str] = []
    node = data
    for part in loc:
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node) or \
                isinstance(node, dict) and part in node:
            node = node[part]
            parts.append(escape(part))
    return "".join("/" + p for p in parts)


def _schema_problems(exc: Any, data: Any, limit: int = 3) -> str:
    """A validation error's first problems, each at its JSON pointer: "/layers/0/name: should be
    a valid string (got None)"."""
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        pointer = _pointer(tuple(err["loc"]), data)
        if err["type"] == "missing" and err["loc"]:  # absent, so the walk cannot reach it
            pointer = pointer.rstrip("/") + "/" + escape(err["loc"][-1])
        msg = "required but missing" if err["type"] == "missing" else str(err["msg"]).removeprefix("Value error, ")
        msg = "should be " + msg.removeprefix("Input should be ") if msg.startswith("Input should be ") else msg
        got = err.get("input")
        if err["type"] != "missing" and (got is None or isinstance(got, bool | int | float | str)):
            shown = repr(got)
            msg += f" (got {shown if len(shown) <= 40 else shown[:39] + '…'})"
        line = f"{_clip_pointer(pointer) if pointer else 'the top level'}: {shorten(msg, 200)}"
        if line not in lines:
            lines.append(line)
    more = f"; and {len(lines) - limit} more" if len(lines) > limit else ""
    return "; ".join(lines[:limit]) + more


#: A job resource's statuses (GET /v1/jobs/{id}); a diagnosis' own are healthy, warning, unhealthy.
_JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


def _job_result(data: dict[str, Any], where: str) -> Any:
    """The diagnosis inside a job resource from ``GET /v1/jobs/{id}`` (its ``result``), or
    :class:`InputFormatError` saying why the job has none (it failed: its error; it was cancelled or
    has not finished). ``data`` itself when it is not a job resource."""
    from gradhealth.errors import InputFormatError

    status = data.get("status")
    if status not in _JOB_STATUSES:
        # a wrapper without a job status: its result when that is a document
        return data["result"] if isinstance(data.get("result"), dict) else data
    job = f"job {data['id']}" if isinstance(data.get("id"), str) and data["id"] else "job"
    if status == "succeeded" and isinstance(data.get("result"), dict):
        return data["result"]
    if status == "failed":
        error = data.get("error")
        detail = error.get("detail") or error.get("title") if isinstance(error, dict) else error
        why = f": {str(detail)[:300]}" if isinstance(detail, str | int | float) and str(detail) else ""
        raise InputFormatError(f"{where}: this {job} failed{why}; it has no diagnosis: use a succeeded "
                               "job's document (or gradhealth check --format json)")
    if status == "succeeded":
        raise InputFormatError(f"{where}: this {job} succeeded but its document has no /result "
                               "diagnosis: save the whole GET /v1/jobs/{id} response")
    what = "was cancelled" if status == "cancelled" else f"is {status}"
    raise InputFormatError(f"{where}: this {job} {what} and has no diagnosis yet: save GET /v1/jobs/{{id}} "
                           "once it has succeeded (or its report, GET /v1/jobs/{id}/report?format=json)")


#: What --baseline reads, said where a file is none of them.
BASELINE_ACCEPTS = ("a baseline is a diagnosis document (gradhealth check --format json), a job from "
                    "GET /v1/jobs/{id} (its result) or a live run from GET /v1/runs/{id} (its diagnosis)")

_RUN_STATUSES = ("active", "finished")


def is_resource(data: Any) -> bool:
    """Whether ``data`` is one of the service's own resources that carry a diagnosis: a job from
    ``GET /v1/jobs/{id}`` (an id, a job status, ``result`` and ``error``) or a live run from ``GET
    /v1/runs/{id}`` (an id, a run status and ``diagnosis``). ``gradhealth check`` renders its
    diagnosis (or says why it has none) where the native log reader read the run's counters as a
    one-point healthy log (newuser15 #7)."""
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        return False
    job = data.get("status") in _JOB_STATUSES and "result" in data and "error" in data
    return job or _is_run(data)


def _is_run(data: dict[str, Any]) -> bool:
    """A live run resource from ``GET /v1/runs/{id}``: a run status and its ``diagnosis`` key."""
    return data.get("status") in _RUN_STATUSES and "diagnosis" in data


def _run_diagnosis(data: dict[str, Any], where: str) -> Any:
    """The diagnosis inside a run resource (as a job's ``result``), or :class:`InputFormatError` when
    the run has none yet (it has logged no point)."""
    from gradhealth.errors import InputFormatError

    run = f"run {data['id']}" if isinstance(data.get("id"), str) and data["id"] else "run"
    diagnosis = data.get("diagnosis")
    if isinstance(diagnosis, dict):
        return diagnosis
    raise InputFormatError(f"{where}: this {run} ({data['status']}) has no /diagnosis yet (it has "
                           "stored no point): use a run that has logged, or a diagnosis document")


def load_baseline(source: str) -> Diagnosis:
    """The baseline document: a diagnosis, a job resource (its ``result``) or a live run resource
    (its ``diagnosis``). Anything else is
    :class:`InputFormatError` saying what is wrong and where (a JSON pointer into the file)."""
    where = f"--baseline {source}"
    doc = load_document(source, where=where, accepts=BASELINE_ACCEPTS, max_findings=MAX_BASELINE_FINDINGS)
    return doc.model_copy(update={"findings": distinct_findings(doc)})


def distinct_findings(doc: Diagnosis) -> list[Finding]:
    """``doc``'s findings, each identity once, in document order: a finding's identity is its key
    (:func:`gradhealth.core.baseline.finding_key`: its code, and a log's series), where it is (its
    first layer), severity and summary. A copy says nothing the first did not; compared, each copy
    was one more "gone" (or "unchanged") line."""
    from gradhealth.core.baseline import finding_key

    seen: set[tuple[Any, ...]] = set()
    out: list[Finding] = []
    for f in doc.findings:
        identity = (finding_key(f, doc.kind), tuple((f.evidence.layers or [])[:1]), f.severity, f.summary)
        if identity not in seen:
            seen.add(identity)
            out.append(f)
    return out


#: What ``gradhealth check`` re-renders, said where a saved document is not one.
DOCUMENT_ACCEPTS = ("a saved diagnosis document is what `gradhealth check --format json` (or "
                    "gradhealth.check_*(...).model_dump_json()) writes")


def load_document(source: str, *, where: str, accepts: str = DOCUMENT_ACCEPTS,
                  max_findings: int | None = None) -> Diagnosis:
    """A saved diagnosis document (or a job resource's ``result``, a live run resource's
    ``diagnosis``) read from the file ``source``, as ``--baseline`` and ``gradhealth check`` of a
    saved document read it; :class:`InputFormatError` starting with ``where`` otherwise."""
    from pydantic import ValidationError

    from gradhealth.core.document import Diagnosis
    from gradhealth.errors import InputFormatError

    # a regular file of bounded size only: /dev/zero or a named pipe must not be read (errsweep6)
    raw = read_user_file(source, what=where, cap=MAX_BASELINE_BYTES)
    try:
        # utf-8-sig: a BOM (Windows PowerShell 5's Out-File / Set-Content -Encoding utf8) is dropped
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFormatError(f"{where}: not UTF-8 text (byte offset {exc.start}); save the diagnosis "
                               "document as UTF-8") from None
    deep = too_deep_at(text)
    if deep is not None:
        raise InputFormatError(f"{where}: nested more than {MAX_BASELINE_DEPTH} levels deep, at "
                               f"{_clip_pointer(deep)} (no diagnosis document is)") from None
    try:
        data: Any = json.loads(text, parse_int=_json_int)
    except json.JSONDecodeError as exc:
        raise InputFormatError(f"{where}: not a readable JSON document (line {exc.lineno}, column "
                               f"{exc.colno}: {exc.msg})") from None
    except (ValueError, RecursionError) as exc:
        raise InputFormatError(f"{where}: not a readable JSON document ({type(exc).__name__})") from None
    overlong = _overlong_at(data)
    if overlong is not None:
        raise InputFormatError(f"{where}: at {_clip_pointer(overlong[0])}: an integer of {overlong[1]} "
                               "digits is out of range for any figure of a diagnosis")
    pointer = "/findings"
    if isinstance(data, dict) and "findings" not in data:
        pointer = "/diagnosis/findings" if _is_run(data) else "/result/findings"
        data = _run_diagnosis(data, where) if _is_run(data) else _job_result(data, where)
    listed = data.get("findings") if isinstance(data, dict) else None
    if max_findings is not None and isinstance(listed, list) and len(listed) > max_findings:
        raise InputFormatError(f"{where}: at {pointer}: {len(listed):,} findings, more than the "
                               f"{max_findings:,} a baseline may list (no check writes that many); "
                               f"{accepts}")
    try:
        return Diagnosis.model_validate(data)
    except ValidationError as exc:
        raise InputFormatError(f"{where}: not a diagnosis document ({exc.error_count()} error(s)): "
                               f"{_schema_problems(exc, data)}; {accepts}") from None
    except RecursionError:  # bounded above; kept so that no shape of document can escape as a bug
        raise InputFormatError(f"{where}: nested too deep to read") from None


def prepare(args: argparse.Namespace) -> str | None:
    """Check the report options before anything runs (a bad baseline must not cost a simulation).
    Returns a usage error, or None; loads the baseline into ``args.baseline_doc``."""
    files = [path for _, path in args.output]
    if "-" in files:
        # a file named "-" in the working folder was no one's intent: stdout holds the main report
        return "--output -: standard output takes the main report (--format); give --output a file"
    if args.step_summary and not os.environ.get("GITHUB_STEP_SUMMARY"):
        print("gradhealth: --step-summary: $GITHUB_STEP_SUMMARY is not set (not a GitHub Actions step): "
              "no step summary is written", file=sys.stderr)
    if len([1 for fmt, _ in args.output if fmt is None]) > 1:
        return "--output FILE given twice: name the second one's format (FORMAT=FILE)"
    if len(set(files)) != len(files) or len({_same_file_key(f) for f in files}) != len(files):
        return "two reports to the same --output file"
    inputs = [args.spec, *(args.more or [])] + ([args.baseline] if args.baseline else [])
    taken = {_same_file_key(i): i for i in inputs if i != "-" and not i.startswith("example:") and os.path.exists(i)}
    for path in files:
        if (clash := taken.get(_same_file_key(path))) is not None:
            # the report would overwrite what is checked (or compared with) before it is read back
            return f"--output {path} is {clash}, an input of this check: write the report elsewhere"
    if args.more:
        single = [fmt for fmt in dict.fromkeys([args.format, *(fmt or args.format for fmt, _ in args.output)])
                  if fmt not in COMBINED_FORMATS]
        if single:
            # an HTML page is one input's: nothing joins two into one page
            return (f"several inputs: --format/--output {', '.join(single)} is one document per input; use "
                    f"{', '.join(COMBINED_FORMATS)} (several inputs share one report), or one run per input")
    for _, path in args.output:
        problem = writable(path)
        if problem:
            return problem
    if _step_summary_wanted(args):
        problem = writable(os.environ["GITHUB_STEP_SUMMARY"], name="$GITHUB_STEP_SUMMARY")
        if problem:
            return problem
    args.baseline_doc = load_baseline(args.baseline) if args.baseline else None
    return None


def _same_file_key(path: str) -> str:
    """One spelling per file (``out/r.x`` and ``./out/r.x``, a link and its target)."""
    return os.path.realpath(os.path.expanduser(path))


class ReportWriteError(Exception):
    """A report file that could not be written (one line for stderr; exit 2)."""


class BaselineKindError(ReportWriteError):
    """A baseline of another kind than the check's (an architecture diagnosis compared with a log
    check): refused, exit 2, as a bad report path is."""


def check_baseline_kind(doc: Diagnosis, baseline: Diagnosis, source: str) -> None:
    """Refuse a baseline whose kind (``architecture`` / ``logs``) is not the checked document's:
    their findings are keyed differently (layers against series), so every finding would read as
    new and every old one as gone, and a ``--fail-on new`` gate would pass or fail on that noise."""
    if baseline.kind != doc.kind:
        def what(kind: str) -> str:
            return "a log check" if kind == "logs" else "an architecture (spec or model) check"

        raise BaselineKindError(
            f"--baseline {source}: the baseline is the document of {what(baseline.kind)} (kind "
            f"{baseline.kind!r}); this is {what(doc.kind)} (kind {doc.kind!r}): compare with a baseline "
            "of the same kind")


def _make_parent(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)


def writable(file: str, *, name: str | None = None, what: str = "the report") -> str | None:
    """Why ``what`` cannot be written to ``file`` (its folders are created here), or None; checked
    before the check runs, so that a typo in a path does not cost a simulation. Every verb's
    output file goes through this and :func:`write_report`."""
    path = Path(file)
    label = f"{name} ({file})" if name else file
    try:
        _make_parent(path)
    except OSError as exc:
        return f"cannot write {what} to {label}: {exc.strerror or exc}"
    if path.is_dir():
        return f"cannot write {what} to {label}: it is a directory"
    if not os.access(path if path.exists() else path.parent, os.W_OK):
        return f"cannot write {what} to {label}: permission denied"
    if not path.exists():
        # access() says yes to root and on /proc, where creating still fails: create the file as
        # the write will, and take it away again (an existing file is left untouched)
        try:
            path.open("x").close()
            path.unlink()
        except FileExistsError:
            pass
        except OSError as exc:
            return f"cannot write {what} to {label}: {exc.strerror or exc}"
    return None


def write_report(file: str, text: str, *, append: bool = False, name: str | None = None,
                 what: str = "the report") -> None:
    """Write (or append) one report, creating its folders; ReportWriteError when that fails."""
    path = Path(file)
    try:
        _make_parent(path)
        with path.open("a" if append else "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        label = f"{name} ({file})" if name else file
        raise ReportWriteError(f"cannot write {what} to {label}: {exc.strerror or exc}") from None


def _step_summary_wanted(args: argparse.Namespace) -> bool:
    if not os.environ.get("GITHUB_STEP_SUMMARY") or args.step_summary is False:
        return False
    return bool(args.step_summary) or args.format == "github" or (
        os.environ.get("GITHUB_ACTIONS") == "true")


def emit(args: argparse.Namespace, doc: Diagnosis, ctx: ReportContext,
         write: Callable[[str], None]) -> Diagnosis:
    """Write every report of ``doc`` the options ask for; returns ``doc`` with its baseline section
    when ``--baseline`` was given (the exit code is decided on it)."""
    from gradhealth.report import render, write_step_summary

    if getattr(args, "baseline_doc", None) is not None:
        from gradhealth.core.baseline import compare

        check_baseline_kind(doc, args.baseline_doc, args.baseline)
        doc = doc.model_copy(update={"baseline": compare(
            doc, args.baseline_doc, decades=args.baseline_decades,
            fraction_step=args.baseline_fraction, source=args.baseline)})
    if getattr(args, "no_timings", False):
        doc, ctx = without_timings(doc, ctx)
    main_file = next((path for fmt, path in args.output if fmt is None), None)
    collected = getattr(args, "github_collect", None)
    if collected is not None and args.format == "github" and not main_file:
        collected.append((doc, ctx))  # several inputs: one set of annotations, capped per step
    else:
        out = render(args.format, doc, ctx)
        if main_file:
            write_report(main_file, out + "\n")
        elif out or args.format != "github":
            write(out)
    for fmt, path in args.output:
        if fmt is not None:
            write_report(path, render(fmt, doc, ctx) + "\n")
    if _step_summary_wanted(args):
        summary = os.environ["GITHUB_STEP_SUMMARY"]
        try:
            write_step_summary(doc, ctx, summary)
        except OSError as exc:
            raise ReportWriteError(f"cannot write the report to $GITHUB_STEP_SUMMARY ({summary}): "
                                   f"{exc.strerror or exc}") from None
    return doc


def without_timings(doc: Diagnosis, ctx: ReportContext) -> tuple[Diagnosis, ReportContext]:
    """``--no-timings``: ``doc`` with its wall times (``simulation.duration_s``, ``log.duration_s``)
    written as 0, the only figures two runs of one input do not share, and ``ctx`` telling the
    text and HTML reports to leave them out. The fields stay (the document's schema keeps them)."""
    import dataclasses

    update: dict[str, Any] = {}
    if doc.simulation is not None:
        update["simulation"] = doc.simulation.model_copy(update={"duration_s": 0.0})
    if doc.log is not None:
        update["log"] = doc.log.model_copy(update={"duration_s": 0.0})
    return doc.model_copy(update=update), dataclasses.replace(ctx, timings=False)


def run_inputs(args: argparse.Namespace, check_one: Callable[[argparse.Namespace], int],
               usage_error: Callable[[str], int], write: Callable[[str], None] = print) -> int:
    """Check ``args.spec`` and every further input with ``check_one``; the worst exit status wins
    (3 could not run > 2 invalid > 1 unhealthy > 0)."""
    problem = prepare_or_error(args)
    if problem is not None:
        return usage_error(problem)
    if args.more and _combined_wanted(args):
        return _run_combined(args, check_one, write)
    worst = 0
    # GitHub shows 10 annotations of each kind per step, not per input: several inputs' annotations
    # are written once, after the last, most severe first across them all.
    collected: list[tuple[Diagnosis, ReportContext]] | None = (
        [] if args.more and args.format == "github" else None)
    for source in [args.spec, *args.more]:
        worst = max(worst, check_one(argparse.Namespace(**{**vars(args), "spec": source,
                                                           "github_collect": collected})))
    if collected:
        from gradhealth.report.github import github_commands_for

        write("\n".join(github_commands_for(collected)))
    return worst


def _combined_wanted(args: argparse.Namespace) -> bool:
    """Whether several inputs' reports are gathered and joined (:func:`_run_combined`): a report to a
    file (``--output``), or a main report that is one document (SARIF, JUnit, JSON, Code Climate)."""
    return bool(args.output) or args.format not in STREAM_FORMATS


def _run_combined(args: argparse.Namespace, check_one: Callable[[argparse.Namespace], int],
                  write: Callable[[str], None]) -> int:
    """Several inputs, one report per format: each input is checked as if alone, its reports written
    to a scratch folder (its refusal's SARIF and JUnit too, and its problem document, which a lone
    input prints, taken from standard output), then each format's reports are joined
    (:func:`combine_reports`) into the file or standard output the options name. The exit status is
    the worst input's (newuser16 #2: several inputs could share only text, github and markdown on
    standard output)."""
    import contextlib
    import io
    import tempfile

    main_file = next((path for fmt, path in args.output if fmt is None), None)
    # (format, destination: a file, or None for standard output)
    wanted: list[tuple[str, str | None]] = [(args.format, main_file)]
    wanted += [(fmt, path) for fmt, path in args.output if fmt is not None]
    main_streams = main_file is None and args.format in STREAM_FORMATS
    sources = [args.spec, *args.more]
    parts: list[dict[str, Any]] = []
    worst = 0
    collected: list[tuple[Diagnosis, ReportContext]] | None = [] if main_streams and args.format == "github" else None
    with tempfile.TemporaryDirectory(prefix="gradhealth-") as scratch:
        for i, source in enumerate(sources):
            files = {k: os.path.join(scratch, f"{i}-{k}") for k in range(len(wanted))}
            outputs = [(None if k == 0 else fmt, files[k]) for k, (fmt, _) in enumerate(wanted)
                       if not (k == 0 and main_streams)]
            child = argparse.Namespace(**{**vars(args), "spec": source, "more": [], "output": outputs,
                                          "github_collect": collected})
            captured = io.StringIO()
            with contextlib.redirect_stdout(captured) if not main_streams else contextlib.nullcontext():
                code = check_one(child)
            worst = max(worst, code)
            reports: dict[int, str | None] = {}
            for k, scratch_file in files.items():
                try:
                    reports[k] = Path(scratch_file).read_text(encoding="utf-8")
                except OSError:
                    reports[k] = None  # nothing written for this input in that format (a refusal)
            parts.append({"source": source, "exit_code": code, "reports": reports,
                          "stdout": captured.getvalue()})
    if collected:
        from gradhealth.report.github import github_commands_for

        write("\n".join(github_commands_for(collected)))
    for k, (fmt, destination) in enumerate(wanted):
        if k == 0 and main_streams:
            continue  # already on standard output, one input after another
        text = combine_reports(fmt, [(p["source"], p["exit_code"], p["reports"][k],
                                      p["stdout"] if k == 0 else "") for p in parts])
        try:
            if destination is None:
                write(text)
            else:
                write_report(destination, text + "\n")
        except ReportWriteError as exc:
            print(f"gradhealth: {exc}", file=sys.stderr)
            worst = max(worst, 2)
    return worst


def combine_reports(fmt: str, inputs: list[tuple[str, int, str | None, str]]) -> str:
    """One report of format ``fmt`` from several inputs' own, each ``(input as given, its exit
    status, its report or None where none was written, what it printed on standard output)``:

    - ``sarif``: one SARIF log whose ``runs`` are every input's runs, in order (each run keeps its
      artifact and its ``automationDetails`` category, so code scanning keeps the files apart);
    - ``junit``: one ``<testsuites>`` holding every input's ``<testsuite>``, the totals summed;
    - ``json``: one object keyed by input, as given on the command line, each ``{"exit_code": N,
      "diagnosis": {...}}`` (the document one input's ``--format json`` writes), or ``{"exit_code":
      N, "problem": {...}}`` for an input that was refused (its problem document) or could not run;
    - ``codeclimate``: one array of every input's issues;
    - ``text``, ``markdown``, ``github``: every input's report, one after another.
    """
    if fmt == "sarif":
        from gradhealth.report.sarif import SCHEMA_URI

        runs = [run for _, _, text, _ in inputs if text for run in json.loads(text).get("runs", [])]
        return json.dumps({"$schema": SCHEMA_URI, "version": "2.1.0", "runs": runs}, indent=2, ensure_ascii=False)
    if fmt == "junit":
        import xml.etree.ElementTree as ET

        root = ET.Element("testsuites", name="gradhealth")
        totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
        for _, _, text, _ in inputs:
            if not text:
                continue
            for suite in ET.fromstring(text.encode("utf-8")).iter("testsuite"):
                for key in totals:
                    totals[key] += int(suite.get(key, "0") or 0)
                root.append(suite)
        for key, value in totals.items():
            root.set(key, str(value))
        ET.indent(root)
        return ET.tostring(root, encoding="unicode", xml_declaration=True)
    if fmt == "json":
        out: dict[str, Any] = {}
        for source, code, text, printed in inputs:
            entry: dict[str, Any] = {"exit_code": code}
            if text:
                entry["diagnosis"] = json.loads(text)
            elif printed.strip():
                try:
                    entry["problem"] = json.loads(printed)
                except ValueError:
                    entry["output"] = printed.strip()  # not a problem document: kept as printed
            out[source] = entry
        return json.dumps(out, indent=2, ensure_ascii=False)
    if fmt == "codeclimate":
        issues = [issue for _, _, text, _ in inputs if text for issue in json.loads(text)]
        return json.dumps(issues, indent=2, ensure_ascii=False)
    return "\n".join(text.rstrip("\n") for _, _, text, _ in inputs if text and text.strip())


def has_regressions(doc: Diagnosis) -> bool:
    """``--fail-on new``: a new or worse finding at warning or above; without a baseline every
    finding is new, so this is ``--fail-on warning``."""
    from gradhealth.core.document import SEVERITY_RANK

    if doc.baseline is not None:
        return doc.baseline.regressions > 0
    return any(SEVERITY_RANK[f.severity] >= SEVERITY_RANK["warning"] for f in doc.findings)


def prepare_or_error(args: argparse.Namespace) -> str | None:
    """:func:`prepare`, with an unreadable baseline as a message."""
    from gradhealth.errors import GradHealthError

    try:
        return prepare(args)
    except GradHealthError as exc:
        return exc.detail
