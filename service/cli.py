"""The ``gradhealth`` command line.

``gradhealth check SPEC`` runs the architecture check in-process and prints a
readable report (``--format json`` prints the diagnosis document). Exit codes,
for CI pipelines (:data:`EXIT_CODES`): 0 when the worst finding is below ``--fail-on``,
1 at or above it, 2 for invalid input (a bad spec, an unreadable file, a spec over the
limits), 3 when the check could not run (a ``--server`` that cannot be reached,
answers 5xx or still answers 429 at ``--server-timeout``, ``--device cuda`` where there is no CUDA device, the simulation failing).
"""

from __future__ import annotations

import argparse
import codecs
import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

# Only what every verb needs: each command imports its own tools, so `--help`, `catalog`, a log
# check or `serve` never load torch (only a simulating check does).
from gradhealth.core.losses import LOSSES
from gradhealth.errors import GradHealthError, InputFormatError, LogError, UsageError, not_utf8_at
from gradhealth.library import example_names, load_spec

if TYPE_CHECKING:
    from gradhealth.client import KeyRefused
    from gradhealth.core.document import Diagnosis
    from gradhealth.report import ReportContext
    from gradhealth.report.refusal import Refusal

__all__ = ["EXIT_CANNOT_RUN", "EXIT_CODES", "EXIT_INVALID", "EXIT_OK", "EXIT_UNHEALTHY", "build_parser",
           "example_names", "exit_code", "main"]

EXIT_OK, EXIT_UNHEALTHY, EXIT_INVALID, EXIT_CANNOT_RUN = 0, 1, 2, 3

#: What each exit status means; the help epilog and docs/cli.md print this table.
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "healthy: no finding at or above --fail-on",
    EXIT_UNHEALTHY: "unhealthy: a finding at or above --fail-on (default: error)",
    EXIT_INVALID: "invalid input: a bad spec or log, an unreadable file, a spec over the limits",
    EXIT_CANNOT_RUN: "the check could not run: --server unreachable, answering 5xx, not the service's "
                     "base URL (404 for its check route), or still rate limiting at --server-timeout, "
                     "--device cuda without CUDA, the simulation failing",
}


def exit_code(doc: Diagnosis, fail_on: str) -> int:
    """1 when any finding is at or above ``fail_on`` (``never`` disables), else 0."""
    from gradhealth.core.document import SEVERITY_RANK

    if fail_on == "never":
        return EXIT_OK
    if fail_on == "new":  # only regressions against --baseline (cli_report.has_regressions)
        from gradhealth.cli_report import has_regressions

        return EXIT_UNHEALTHY if has_regressions(doc) else EXIT_OK
    worst = max((SEVERITY_RANK[f.severity] for f in doc.findings), default=-1)
    return EXIT_UNHEALTHY if worst >= SEVERITY_RANK[fail_on] else EXIT_OK


#: How a model check's first progress stage starts: its time estimate (module_check.Timing.start_line),
#: said on stderr even without --progress.
START_STAGE = "checking "

#: Seconds after which a check run without --progress says once, on stderr, that it is still working.
QUIET_NOTICE_S = 15.0


def _progress(enabled: bool, notice: bool = True):  # noqa: ANN202 - a small closure
    """The progress callback: a line on stderr with ``enabled``; without it, one notice once the
    check has run :data:`QUIET_NOTICE_S` seconds (a 138M-parameter VGG16 on a CPU ran for minutes
    with no output at all: kerassweep26), saying where it is and how to see or shorten it, unless
    ``notice`` is False (``--no-progress`` given: no progress output at all, specsweep14 P6)."""
    import time

    started, told = time.monotonic(), False

    def show(fraction: float, stage: str) -> None:
        nonlocal told
        if enabled:
            print(f"\r[{fraction:4.0%}] {stage:<60s}", end="", file=sys.stderr, flush=True)
        elif notice and stage.startswith(START_STAGE):
            # the model check's estimate, once, before the simulation: a CI log that shows nothing
            # for minutes reads as a hang and is killed by the job's timeout (onnxsweep29 cloud_unet)
            print(f"gradhealth: {stage}", file=sys.stderr, flush=True)
        elif notice and not told and fraction < 1.0 and time.monotonic() - started > QUIET_NOTICE_S:
            told = True
            print(f"gradhealth: still working after {time.monotonic() - started:.0f} s, {fraction:.0%} done "
                  f"({stage}); --progress shows each step, --no-verify skips the remedies' re-simulations "
                  "(their time is capped by GRADHEALTH_LIMITS__MAX_VERIFY_SECONDS)", file=sys.stderr, flush=True)
    return show


def is_spec(source: str) -> bool:
    """Whether ``source`` names an architecture spec (else it is a log file, folder or archive).

    A ``.yaml``/``.yml``/``.json`` file is a spec when it has ``layers``, when one of its top-level
    keys is a spec field or a near miss of one (``layer:``), or when it does not parse and no log
    reader recognises it: such a file gets the spec's own error (line and column, JSON pointer,
    "did you mean"), not "unknown log format". A file of JSON Lines (one JSON object per line, none
    with spec fields: detectron2's ``metrics.json``, a history dump) is a log even when no reader
    recognises it: the log check then says so, rather than the spec parser's "Extra data". So is
    a JSON array of numbers.
    """
    if source == "-" or source.startswith("example:"):
        return True
    path = Path(source)
    if path.is_dir() or path.suffix.lower() not in (".yaml", ".yml", ".json"):
        return False
    if not path.is_file():
        # a named pipe or a device ending .yaml would block the read: the log loader refuses it
        # as not a regular file, at once (cisweep2)
        return False
    from gradhealth.analysis.spec import load_spec_text

    try:
        with path.open("rb") as f:  # a bounded prefix (a character cut at its end is left out)
            text = codecs.getincrementaldecoder("utf-8")().decode(f.read(5_000_000), final=False)
    except UnicodeDecodeError:
        # not UTF-8: a log reader may know it (a log in another encoding); else the spec's own
        # error names the byte, not "unknown log format" (spec sweep 7)
        return not _a_log_reader_knows(path)
    except OSError:
        return False
    try:
        data = load_spec_text(text, content_type="application/json" if path.suffix == ".json" else None,
                              declared_by="file_name")
    except GradHealthError:
        objects = []
        for line in [ln for ln in text[:65536].splitlines() if ln.strip()][:5]:
            try:
                objects.append(json.loads(line))
            except (ValueError, RecursionError):  # a hostile nesting depth is the spec check's to refuse
                break
        json_lines = len(objects) >= 2 and all(
            isinstance(o, dict) and "layers" not in o and not _looks_like_spec(o) for o in objects)
        # an array of numbers (json.dump(losses, f)) is a log's, whose check says how to name it
        from gradhealth.logs.readers.numbers import number_array

        return not (json_lines or number_array(text[:64].encode()) or _a_log_reader_knows(path))
    return "layers" in data or (_looks_like_spec(data) and not _a_log_reader_knows(path))


def _looks_like_spec(data: dict[str, Any]) -> bool:
    """Whether a top-level key of ``data`` is one of the spec's structural fields or a near miss."""
    import difflib

    fields = ("input", "layers")  # every spec has both; free-form keys like `name` say nothing
    return any(isinstance(key, str) and difflib.get_close_matches(key.lower(), fields, n=1, cutoff=0.8)
               for key in data)


def _a_log_reader_knows(path: Path) -> bool:
    """Whether some log reader recognises the file (a log in JSON/YAML is not a spec)."""
    from gradhealth.logs.sniff import read_head, sniff

    try:
        reader, _ = sniff(path.name, read_head(path))
    except OSError:
        return False
    return reader is not None


def _cannot_run(args: argparse.Namespace, exc: GradHealthError) -> str | None:
    """The one-line reason when ``exc`` says the check could not run here (exit 3), else None
    (the input is bad: exit 2).

    The service failing or unreachable (a 5xx; the CLI reports a transport error as 503), a
    ``--server`` URL that is not the service's base URL (a 404 for the check route itself) and
    ``--device cuda`` on a machine without CUDA are the environment's; a spec's own
    ``device: cuda`` field stays a spec error at ``/device``, like any other field.
    """
    from gradhealth.client import KeyRefused, RemoteError, WrongServiceURL
    from gradhealth.core.numbers import plain
    from gradhealth.errors import cuda_unavailable

    if args.device == "cuda" and exc.detail == cuda_unavailable().detail:  # here or on --server
        return ("--device cuda was given but no CUDA device is available "
                f"{'on the service' if args.server else 'here'}; use --device auto or cpu")
    if isinstance(exc, RemoteError) and exc.status == 429:  # waited out up to --server-timeout, in vain
        return (f"rate limited: {exc.detail} ({plain(_server_wait(args))} s: --server-timeout or "
                "$GRADHEALTH_SERVER_TIMEOUT)")
    if isinstance(exc, WrongServiceURL):  # a 404 for the check route itself: the URL, not the input
        return f"{exc.title.lower()}: {exc.detail}"
    if isinstance(exc, KeyRefused):
        return _key_refused(exc)
    if isinstance(exc, RemoteError):
        return f"{exc.title.lower()}: {exc.detail}" if exc.status >= 500 else None
    return None


def _is_key_refused(exc: GradHealthError) -> bool:
    from gradhealth.client import KeyRefused

    return isinstance(exc, KeyRefused)


def _key_refused(exc: KeyRefused) -> str:
    """A 401 from ``--server`` in the command line's words: the flag and the variable that carry the
    key, not the HTTP header the service names for raw callers (newuser15 #4)."""
    if exc.key_given:
        return (f"the service refused the API key ({exc.service_detail}): check --api-key or "
                "$GRADHEALTH_API_KEY (in CI, the secret it is set from)")
    return (f"the service needs an API key ({exc.service_detail}): pass --api-key KEY or set "
            "$GRADHEALTH_API_KEY")


def _title(exc: GradHealthError) -> str:
    """The error's title as the CLI's line gives it: a local file over a read limit is "file too
    large", not the service's "upload too large" (nothing was uploaded: errsweep5); a service's
    answer (``--server``) keeps its own title."""
    from gradhealth.errors import UploadTooLarge

    return "file too large" if isinstance(exc, UploadTooLarge) else exc.title.lower()


def _invalid(args: argparse.Namespace, exc: GradHealthError) -> int:
    """Report an error in one line on stderr (and as a problem document with --format json): exit 3
    when the check could not run, else exit 2 (invalid input)."""
    reason = _cannot_run(args, exc)
    refusal = _refusal(args, exc, reason) if exc.problems else None  # the input read once
    if reason is None:
        # each problem with its line and column where the spec's text places it (newuser9 P7)
        detail = refusal.located_detail() if refusal is not None else exc.detail
        print(f"gradhealth: {args.spec}: {_title(exc)}: {detail}", file=sys.stderr)
    else:
        print(f"gradhealth: {args.spec}: the check could not run: {reason}", file=sys.stderr)
    if args.format == "json":
        _write(json.dumps(exc.to_problem(), indent=2))
    # a key the service refuses keeps its documented exit 2 (docs/cli.md), though its reports blame no file
    code = EXIT_INVALID if reason is None or _is_key_refused(exc) else EXIT_CANNOT_RUN
    wanted = _refusal_outputs(args)
    if not wanted and not (args.format == "github" and reason is None):
        return code
    if refusal is None:  # the input read once, for the annotations and the reports
        refusal = _refusal(args, exc, reason)
    if args.format == "github" and reason is None:
        from gradhealth.report.github import invalid_input_commands

        _write("\n".join(invalid_input_commands(args.spec, refusal)))
    return max(code, _refusal_reports(args, refusal, wanted))


def _spec_text_of(source: str, exc: GradHealthError) -> str | None:
    """The refused input's text where its problems' pointers can be placed in it (a spec file read
    within the spec's cap), else None: the refusal is then reported on the file."""
    from gradhealth.cli_report import MAX_SPEC_BYTES, read_user_file

    if not exc.problems or Path(source).suffix.lower() not in (".yaml", ".yml", ".json"):
        return None
    try:  # the one reader of user files: a regular file, within the spec's cap
        return read_user_file(source, what=source, cap=MAX_SPEC_BYTES).decode("utf-8", "replace")
    except GradHealthError:
        return None


def _refusal_outputs(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    """The SARIF and JUnit reports asked for (``--format``, ``--output``), as (format, file or None
    for standard output)."""
    from gradhealth.report.refusal import RENDERERS

    outputs = getattr(args, "output", None) or []
    wanted = [(fmt or args.format, path) for fmt, path in outputs if (fmt or args.format) in RENDERERS]
    if args.format in RENDERERS and not any(fmt is None for fmt, _ in outputs):
        wanted.append((args.format, None))
    return wanted


def _refusal(args: argparse.Namespace, exc: GradHealthError, reason: str | None) -> Refusal:
    """The input that got no diagnosis, as its reports name it (``reason``: why the check could
    not run, None for an input refused)."""
    from gradhealth.cli_report import repo_relative
    from gradhealth.report.refusal import Refusal

    return Refusal(source=repo_relative(Path(args.spec)), title=exc.title, detail=reason or exc.detail,
                   problems=[(p.pointer, p.message) for p in exc.problems],
                   text=_spec_text_of(args.spec, exc), could_not_run=reason is not None,
                   position=exc.position if reason is None else None,
                   kind={"log": "logs"}.get(kind := _input_kind(args.spec), kind))


def _refusal_reports(args: argparse.Namespace, refusal: Refusal, wanted: list[tuple[str, str | None]]) -> int:
    """Write the ``wanted`` reports of an input that got no diagnosis, so a CI step that uploads
    them finds them, with the refusal at the input's lines (newuser3). Returns 0, or exit 2 where
    a report path cannot be written."""
    from gradhealth.cli_report import ReportWriteError, write_report
    from gradhealth.report.refusal import RENDERERS

    for fmt, path in wanted:
        out = RENDERERS[fmt](refusal)
        try:
            if path is None:
                _write(out)
            else:
                write_report(path, out + "\n")
        except ReportWriteError as e:
            print(f"gradhealth: {args.spec}: {e}", file=sys.stderr)
            return EXIT_INVALID
    return 0


def _failed(args: argparse.Namespace, exc: Exception) -> int:
    """The simulation itself failed (out of memory, a CUDA driver error): exit 3, one line, no
    traceback; what failed is the environment, not the model."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    print(f"gradhealth: {args.spec}: the check could not run: {type(exc).__name__}: {message}",
          file=sys.stderr)
    return EXIT_CANNOT_RUN


def _write(text: str) -> None:
    """Print ``text`` to stdout; a reader that stopped early (``| head``) is not an error."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's own flush at exit cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _emit(args: argparse.Namespace, doc: Diagnosis, ctx: ReportContext) -> int:
    """Print or write the reports (every --output from this one document); the exit code follows
    --fail-on (with --baseline, on the compared document)."""
    from gradhealth.cli_report import ReportWriteError, emit

    try:
        code = exit_code(emit(args, doc, ctx, _write), args.fail_on or "error")
    except ReportWriteError as exc:  # a path the user gave: invalid input, one line
        print(f"gradhealth: {args.spec}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    # --fail-on-unjudged: a log whose trends were not judged fails whatever --fail-on says, so
    # that a CI gate does not pass a 6-line excerpt as healthy (logsweep98 piper827)
    if getattr(args, "fail_on_unjudged", False) and not doc.judged:
        return EXIT_UNHEALTHY
    return code


def cmd_check_inputs(args: argparse.Namespace) -> int:
    """``check`` with one input or several (pre-commit passes several files)."""
    from gradhealth.cli_report import run_inputs

    # JUnit's failures follow --fail-on when it is given (see gradhealth.report.junit)
    args.fail_on_given = args.fail_on
    args.fail_on = args.fail_on or "error"

    def usage(message: str) -> int:
        print(f"gradhealth: check: {message}", file=sys.stderr)
        return EXIT_INVALID

    unused = _simulation_flags_unused(args)
    if unused is not None:
        return usage(unused)
    return run_inputs(args, cmd_check, usage, _write)


def _input_kind(source: str) -> str:
    """What ``check`` reads ``source`` as: ``document`` (a saved diagnosis document, re-rendered),
    ``model`` (ONNX, Keras), ``log`` (an existing path that is no spec) or ``spec``."""
    if is_document(source):
        return "document"
    if is_keras(source) or is_model(source):
        return "model"
    return "log" if not is_spec(source) and Path(source).exists() else "spec"


#: The top-level keys every diagnosis document has and no spec, log or model file does.
_DOCUMENT_KEYS = ("schema_version", "kind", "findings")


def is_document(source: str) -> bool:
    """Whether ``source`` is a saved diagnosis document (``gradhealth check --format json``,
    ``doc.model_dump_json()``): a ``.json`` file (at most the baseline's size cap) holding one
    object with ``schema_version``, ``kind`` and ``findings`` (newuser10 #9: it was read as a spec
    and refused with 80 spec errors)."""
    from gradhealth.cli_report import MAX_BASELINE_BYTES

    path = Path(source)
    if path.suffix.lower() != ".json":
        return False
    try:
        if not path.is_file() or path.stat().st_size > MAX_BASELINE_BYTES:
            return False
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (OSError, ValueError, RecursionError):
        return False
    from gradhealth.cli_report import is_resource

    # a saved job or run resource too (GET /v1/jobs/{id}, GET /v1/runs/{id}): its diagnosis is rendered,
    # where a run was read as a one-point native log and passed healthy (newuser15 #7)
    return isinstance(data, dict) and (all(key in data for key in _DOCUMENT_KEYS) or is_resource(data))


def cmd_check_document(args: argparse.Namespace) -> int:
    """A saved diagnosis document, rendered again in ``--format`` (and ``--output``), its exit code
    from ``--fail-on`` (and ``--baseline``): nothing is simulated or read again, so a flag that
    would change the check itself is refused, never dropped."""
    from gradhealth.cli_report import load_document
    from gradhealth.report import ReportContext

    given = [flag for flag, value in (("--seeds", args.seeds), ("--device", args.device),
                                      ("--no-verify", args.no_verify), ("--server", args.server),
                                      ("--log-format", getattr(args, "log_format", None)),
                                      *_model_flags(args).items()) if value]
    if given:
        return _invalid(args, UsageError(
            f"{', '.join(given)} cannot apply to a saved diagnosis document, which is rendered again as it "
            "is (nothing is simulated or read again): drop the flag, or check the spec, model or log itself"))
    try:
        doc = load_document(args.spec, where=args.spec)
    except GradHealthError as exc:
        return _invalid(args, exc)
    from gradhealth.cli_report import repo_relative

    # the reports name the document as the input (a JUnit suite, a heading: newuser12 #5: every
    # check_module document was "Sequential"); a log's findings stay on the log it read, an
    # architecture's (no file of its own to point at) on the document, so code scanning can anchor them
    document = repo_relative(Path(args.spec))
    ctx = ReportContext(source=doc.log.source if doc.log is not None else document, document=document,
                        kind="logs" if doc.kind == "logs" else None, layers=args.layers,
                        fail_on=getattr(args, "fail_on_given", None),
                        fail_on_unjudged=bool(getattr(args, "fail_on_unjudged", False)))
    return _emit(args, doc, ctx)


def _simulation_flags_unused(args: argparse.Namespace) -> str | None:
    """``--seeds`` and ``--device`` given where every input is a training log, which nothing
    simulates, as a usage error: the flag would change nothing, and a CI step would pass without
    what it asked for. With a spec or model among the inputs they apply to those."""
    given = [flag for flag, value in (("--seeds", args.seeds), ("--device", args.device)) if value is not None]
    if not given or any(_input_kind(source) != "log" for source in [args.spec, *args.more]):
        return None
    return (f"{' and '.join(given)} appl{'y' if len(given) > 1 else 'ies'} to specs and model files, which are simulated; the "
            f"input{'s are' if args.more else ' is a'} training log{'s' if args.more else ''}, read as "
            "recorded: drop the flag")


def _counts_refused(args: argparse.Namespace) -> str | None:
    """``--seeds`` or ``--batch-size`` below 1, as a usage error naming the flag; None when both
    are absent or at least 1. Checked before any input is read: the flag is wrong whatever the
    input says (newuser9 P5: ``--seeds 0`` was refused as the spec's own ``/seeds``, and only after
    the spec was read)."""
    for flag, value in (("--seeds", getattr(args, "seeds", None)), ("--batch-size", getattr(args, "batch_size", None))):
        if value is not None and value < 1:
            return f"{flag} must be at least 1, not {value}"
    return None


def cmd_check(args: argparse.Namespace) -> int:
    """The architecture check of a spec (in-process, or with --server); a log path goes to the log
    check and an ``.onnx`` file to the model check."""
    bad_count = _counts_refused(args)
    if bad_count is not None:  # a usage error, said before the input is read (newuser9 P5)
        return _invalid(args, UsageError(bad_count))
    kind = _input_kind(args.spec)
    if kind == "document":
        return cmd_check_document(args)
    if kind == "model":
        refused = _flags_refused(args, "model")
        if refused:
            return _invalid(args, UsageError(refused))
        return cmd_check_keras(args) if is_keras(args.spec) else cmd_check_model(args)
    refused = _flags_refused(args, kind)
    if refused:
        return _invalid(args, UsageError(refused))
    if kind == "log":
        return cmd_check_logs(args)
    from gradhealth.analysis.spec import load_spec_text

    try:
        if args.server:  # a usage error, said before the spec is read
            refused = _server_refuses(args, "spec")
            if refused:
                raise UsageError(refused)
        text = _spec_text(args.spec)
        raw = load_spec(args.spec) if text is None else load_spec_text(text, content_type=_spec_type(args.spec),
                                                                          declared_by="file_name")
        if args.server and (args.seeds is not None or args.device is not None):
            from gradhealth.analysis.spec import parse_spec

            parse_spec(raw)   # the spec as written, before the overrides hide a bad `seeds`
            if args.seeds is not None:
                raw["seeds"] = args.seeds
            if args.device is not None:  # the spec's own field: the service checks it (422 for cuda)
                raw["device"] = args.device
    except GradHealthError as exc:
        return _invalid(args, exc)
    return _check_spec_dict(args, raw, kind="spec", text=text)


#: What a spec carries in place of each model file flag (the refusal says where it goes instead).
_SPEC_HAS = {"--loss": "its own `loss`", "--weights": "no stored weights (its layers are initialised as "
             "they say)", "--batch-size": "its own `batch_size`", "--input-shape": "its own `input.shape`",
             "--optimizer": "its own `optimizer`", "--external-data": "no tensors stored beside it",
             "--target-range": "its own `loss.target_range`",
             "--loss-at": "one output, its last layer's",
             "--input-range": "its own `input.range` ([LO, HI]), or `input.distribution` and `input.scale`"}


def _flags_refused(args: argparse.Namespace, kind: str) -> str | None:
    """The flags given that do not apply to this kind of input (``spec``, ``log`` or ``model``),
    each with what it applies to, as one usage error; None when all apply. A flag is refused, never
    dropped: a CI step would otherwise pass without what it asked for."""
    problems = []
    if kind != "model":
        for flag, value in _model_flags(args).items():
            if not value:
                continue
            why = (f"a spec carries {_SPEC_HAS[flag]}" if kind == "spec" else
                   "a training log is read as recorded, nothing is simulated")
            only = ".onnx files" if flag in ("--external-data", "--loss-at", "--input-range") else "model files (.onnx; Keras .keras, .h5, config .json)"
            problems.append(f"{flag} applies to {only} only, not to a {'spec' if kind == 'spec' else 'training log'}: "
                            f"{why}")
    if kind != "log" and getattr(args, "log_format", None):
        problems.append(f"--log-format applies to training logs (a log file, run folder or archive) only, not "
                        f"to {'a spec' if kind == 'spec' else 'a model file'}")
    return "; ".join(problems) or None


def _spec_type(source: str) -> str | None:
    """The content type a spec file's suffix declares (as :func:`gradhealth.load_spec` reads it)."""
    suffix = Path(source).suffix
    return "application/json" if suffix == ".json" else "application/yaml" if suffix in (".yaml", ".yml") else None


def _spec_text(source: str) -> str | None:
    """The text of a spec on stdin (``-``) or in a file, read through the one reader of user files
    (a regular file, at most MAX_SPEC_BYTES; a folder, pipe or device refused by name); None for
    ``example:NAME``."""
    if source == "-":
        return _stdin_text()
    if source.startswith("example:"):
        return None
    from gradhealth.cli_report import MAX_SPEC_BYTES, read_user_file

    data = read_user_file(source, what=source, cap=MAX_SPEC_BYTES)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFormatError(f"{source}: not UTF-8 text {not_utf8_at(exc)}") from None


def _simulating_here() -> None:
    """This process is about to simulate (threads from GRADHEALTH_THREADS)."""
    from gradhealth.devices import prepare_to_simulate
    from gradhealth.settings import get_settings

    prepare_to_simulate(get_settings().threads)


def _check_spec_dict(args: argparse.Namespace, raw: dict[str, Any], *, kind: str,
                     text: str | None = None) -> int:
    """Check a decoded spec in-process or through ``--server`` and emit the reports (exit 0-3)."""
    from gradhealth.library import check_architecture

    show_progress = _show_progress(args)
    try:
        if args.server:
            doc = _remote_check(args, raw)
        else:
            _simulating_here()
            doc = check_architecture(raw, seeds=args.seeds, device=args.device,
                                     verify=False if args.no_verify else None,
                                     progress=_progress(show_progress, notice=args.progress is not False))
            if show_progress:
                print(file=sys.stderr)
    except GradHealthError as exc:
        return _invalid(args, exc)
    except (RuntimeError, MemoryError, OSError) as exc:  # torch/CUDA failures: not the model's
        return _failed(args, exc)
    from gradhealth.cli_report import report_context

    return _emit(args, doc, report_context(args, kind=kind, text=text))


def is_model(source: str) -> bool:
    """Whether ``source`` names an ONNX model (by its ``.onnx`` suffix)."""
    return source.lower().endswith(".onnx")


def is_keras(source: str) -> bool:
    """Whether ``source`` names a Keras model: ``.keras``/``.h5``, or a ``.json`` file holding a
    ``model.to_json()`` config (``class_name`` Sequential/Functional with ``config.layers``)."""
    lower = source.lower()
    if lower.endswith((".keras", ".h5", ".hdf5")):
        return True
    if not lower.endswith(".json") or not Path(source).is_file():
        return False
    from gradhealth.analysis.importers.keras import MAX_CONFIG_BYTES, is_keras_config

    try:
        if Path(source).stat().st_size > MAX_CONFIG_BYTES:
            return False
        return is_keras_config(json.loads(Path(source).read_bytes()))
    except (ValueError, OSError, RecursionError):
        return False


def cmd_check_keras(args: argparse.Namespace) -> int:
    """The check of a Keras model (config JSON, .keras or .h5), in-process through
    :func:`gradhealth.check_keras` or with ``--server`` by uploading the file whole to the model route:
    one translation, the Keras layer names and the stored weights (when the file has them) either
    way. Exit 2 for what cannot be translated."""
    from gradhealth.analysis.importers.keras import (
        MAX_CONFIG_BYTES,
        MAX_WEIGHTS_BYTES,
        read_keras,
        with_input_shapes,
    )
    from gradhealth.cli_report import read_user_file

    try:
        shapes = _input_shapes(args)
        path = Path(args.spec)
        # a regular file only, bounded by what the reader takes (its weights plus its config)
        data = read_user_file(args.spec, what=args.spec, cap=MAX_WEIGHTS_BYTES + MAX_CONFIG_BYTES)
        with_input_shapes(read_keras(data)[0], shapes)  # not a Keras model: exit 2 here, before any upload
        optimizer = _optimizer(args)
        _target_range(args)
        if getattr(args, "loss_at", None) is not None:  # refused, never dropped
            raise InputFormatError("--loss-at applies to .onnx files; a Keras file's loss is taken at its "
                                   "output layer: leave it out")
        _input_range(args)
    except GradHealthError as exc:
        return _invalid(args, exc)
    return _remote_keras(args, path) if args.server else _check_keras_file(args, data, optimizer, shapes)


def _input_shapes(args: argparse.Namespace) -> dict[str, list[int]]:
    """``--input-shape NAME=8x3x32x32`` (repeatable) as a mapping; a name given twice is an error."""
    from gradhealth.analysis.importers.onnx_static import parse_input_shape

    shapes: dict[str, list[int]] = {}
    for item in getattr(args, "input_shape", None) or []:
        name, dims = parse_input_shape(item)
        if name in shapes:
            raise UsageError(f"--input-shape {name}: given twice")
        shapes[name] = dims
    return shapes


def _check_keras_file(args: argparse.Namespace, data: bytes, optimizer: dict[str, Any] | None,
                      shapes: dict[str, list[int]] | None = None) -> int:
    """A Keras file checked in-process (exit 0-3)."""
    from gradhealth.cli_report import report_context
    from gradhealth.library import check_keras

    show_progress = _show_progress(args)
    try:
        _simulating_here()
        doc = check_keras(data, loss=args.loss, seeds=args.seeds, batch_size=args.batch_size,
                          weights=args.weights, device=args.device, verify=False if args.no_verify else None,
                          progress=_progress(show_progress, notice=args.progress is not False), optimizer=optimizer, input_shapes=shapes or None,
                          target_range=_target_range(args), input_range=_input_range(args),
                          file_name=Path(args.spec).name)
        if doc.name is None:  # a model without a name: its file's, as the service names it
            doc.name = Path(args.spec).name
        if show_progress:
            print(file=sys.stderr)
    except GradHealthError as exc:
        return _invalid(args, exc)
    except (RuntimeError, MemoryError, OSError) as exc:  # torch/CUDA failures: not the model's
        return _failed(args, exc)
    return _emit(args, doc, report_context(args, kind="model", text=None))


def _remote_keras(args: argparse.Namespace, path: Path) -> int:
    """A Keras file uploaded whole to ``--server``'s model route (exit 0-3)."""
    from gradhealth.cli_report import report_context

    try:
        doc = _remote_model(args, path)
    except GradHealthError as exc:
        return _invalid(args, exc)
    return _emit(args, doc, report_context(args, kind="model", text=None))


def _model_flags(args: argparse.Namespace) -> dict[str, Any]:
    return {"--loss": getattr(args, "loss", None), "--weights": getattr(args, "weights", None),
            "--batch-size": getattr(args, "batch_size", None), "--input-shape": getattr(args, "input_shape", None),
            "--optimizer": getattr(args, "optimizer", None),
            "--external-data": getattr(args, "external_data", None),
            "--target-range": getattr(args, "target_range", None),
            "--loss-at": getattr(args, "loss_at", None), "--input-range": getattr(args, "input_range", None)}


def _target_range(args: argparse.Namespace) -> tuple[float, float] | None:
    """``--target-range LO,HI`` as a pair (checked here: exit 2 names what is wrong)."""
    text = getattr(args, "target_range", None)
    if text is None:
        return None
    from gradhealth.analysis.importers.keras import parse_target_range

    return parse_target_range(text)


def _input_range(args: argparse.Namespace) -> tuple[float, float] | None:
    """``--input-range LO,HI`` as a pair (checked here: exit 2 names what is wrong)."""
    text = getattr(args, "input_range", None)
    if text is None:
        return None
    from gradhealth.analysis.importers.onnx_static import parse_input_range

    return parse_input_range(text)


def _optimizer(args: argparse.Namespace) -> dict[str, Any] | None:
    """``--optimizer`` as a spec ``optimizer`` dict (checked here: exit 2 names what is wrong)."""
    text = getattr(args, "optimizer", None)
    if text is None:
        return None
    from gradhealth.analysis.spec import parse_optimizer

    try:
        return parse_optimizer(text)
    except GradHealthError as exc:
        raise UsageError(f"--optimizer: {exc.detail}") from None


def cmd_check_model(args: argparse.Namespace) -> int:
    """The check of an ONNX model file (in-process, or with --server): exit 2 for a file that
    cannot be checked (not ONNX, unsupported ops, external data, sizes missing, over the limits)."""
    show_progress = _show_progress(args)
    try:
        shapes = _input_shapes(args)
        path = Path(args.spec)
        from gradhealth.cli_report import path_problem

        problem = path_problem(args.spec)  # a folder, a pipe or a device by name, not "no such file"
        if problem is not None:
            raise InputFormatError(f"{args.spec}: {problem}")
        optimizer = _optimizer(args)
        input_range = _input_range(args)
        if getattr(args, "target_range", None) is not None:
            # an ONNX file's bounded output is not judged against regression targets (only a spec's
            # or a Keras file's single output is): refused, never dropped
            raise InputFormatError("--target-range applies to Keras files (.keras, .h5, config .json), whose "
                                   "single bounded output under mse, mae or huber is judged against the "
                                   "targets' range; an .onnx file's is not: leave it out")
        if args.server:
            doc = _remote_model(args, path)
        else:
            from gradhealth.devices import require_cuda_if_asked
            from gradhealth.library import check_onnx

            require_cuda_if_asked(args.device)
            _simulating_here()
            doc = check_onnx(path, loss=args.loss, seeds=args.seeds,
                             weights=args.weights or "as_given", batch_size=args.batch_size,
                             input_shapes=shapes or None, verify=False if args.no_verify else None,
                             device=args.device, progress=_progress(show_progress, notice=args.progress is not False), optimizer=optimizer,
                             external_data=bool(getattr(args, "external_data", False)),
                             loss_at=getattr(args, "loss_at", None), input_range=input_range)
            if show_progress:
                print(file=sys.stderr)
    except GradHealthError as exc:
        return _invalid(args, exc)
    except (RuntimeError, MemoryError, OSError) as exc:  # torch/CUDA failures: not the model's
        return _failed(args, exc)
    from gradhealth.cli_report import report_context

    return _emit(args, doc, report_context(args, kind="model"))


def _remote_model(args: argparse.Namespace, path: Path) -> Diagnosis:
    """Upload the model to ``--server`` with the options as form fields, and wait for the job."""
    import time

    import httpx


    refused = _server_refuses(args, "model")
    if refused:
        raise UsageError(refused)
    fields: dict[str, Any] = {k: str(v) for k, v in (("loss", args.loss), ("weights", args.weights),
                                                     ("batch_size", args.batch_size), ("seeds", args.seeds))
                              if v is not None}
    if args.no_verify:
        fields["verify"] = "false"
    if args.input_shape:
        fields["input_shape"] = list(args.input_shape)
    if getattr(args, "optimizer", None):
        fields["optimizer"] = args.optimizer  # checked by the service, as every option
    if getattr(args, "target_range", None) is not None:
        fields["target_range"] = args.target_range
    for key in ("loss_at", "input_range"):
        if getattr(args, key, None) is not None:
            fields[key] = getattr(args, key)
    client = _client(args)
    try:
        body: Any = path.open("rb")
        if getattr(args, "external_data", False):  # the service never reads beside an upload
            from gradhealth.analysis.importers.onnx_static import inline_external

            with body:
                body = inline_external(body.read(), path.parent)
        started = time.monotonic()

        def post() -> httpx.Response:  # the server answers within ?wait=25, well inside this read timeout
            if not isinstance(body, bytes):
                body.seek(0)  # a try after a 429 sends the whole file again
            return client.http.post("/v1/checks/model", params={"wait": 25}, data=fields,
                                    files={"file": (path.name, body)}, timeout=60.0)

        try:
            job = client.submitted(client.send(post, started + _server_wait(args)))
        finally:
            if not isinstance(body, bytes):
                body.close()
        job = client._finish(job, _server_wait(args), 0.5, started=started)
    except httpx.TransportError as exc:
        raise _unreachable(args, exc) from None
    finally:
        client.close()
    return _diagnosis(args, job)


def _stdin_text() -> str:
    """The spec on stdin (at most MAX_SPEC_BYTES); empty or not UTF-8 is invalid input (exit 2),
    not a missing file or a traceback."""
    from gradhealth.cli_report import MAX_SPEC_BYTES, read_stdin

    data = read_stdin(what="the spec", cap=MAX_SPEC_BYTES)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFormatError(f"stdin: not UTF-8 text {not_utf8_at(exc)}") from None


def server_url(value: str) -> str:
    """A --server value: an http(s) URL with a host. Anything else is a usage error (exit 2) before
    any input is read, not a service found 'unreachable' (exit 3) after (cisweep2)."""
    from urllib.parse import urlsplit

    parts = urlsplit(value.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a service URL: give http://HOST[:PORT] or https://HOST[:PORT]")
    return value.strip()


#: How long a --server check waits for its job by default: a CI step must not hang for an hour on
#: a service whose queue is stuck (GRADHEALTH_SERVER_TIMEOUT or --server-timeout change it).
SERVER_TIMEOUT_S = 600.0


def _server_wait(args: argparse.Namespace) -> float:
    """Seconds a --server check waits for its job: --server-timeout, $GRADHEALTH_SERVER_TIMEOUT, or 600."""
    given = getattr(args, "server_timeout", None)
    if given is not None:
        return float(given)
    env = os.environ.get("GRADHEALTH_SERVER_TIMEOUT")
    try:
        return float(env) if env and float(env) > 0 else SERVER_TIMEOUT_S
    except ValueError:
        return SERVER_TIMEOUT_S


def _show_progress(args: argparse.Namespace) -> bool:
    """--progress / --no-progress, else whether stderr is a terminal."""
    return args.progress if args.progress is not None else sys.stderr.isatty()


def _client(args: argparse.Namespace) -> Any:
    """The --server client, printing each state of the job it waits for with --progress."""
    from gradhealth.client import Client

    show = _show_progress(args)

    def state(job: dict[str, Any]) -> None:
        raw = job.get("progress")
        progress: dict[str, Any] = raw if isinstance(raw, dict) else {}
        fraction, stage = progress.get("fraction"), progress.get("stage")
        done = f" [{100 * fraction:3.0f}%]" if isinstance(fraction, int | float) and job.get("status") == "running" else ""
        print(f"gradhealth: {args.server}: job {job.get('id')} {job.get('status')}{done}"
              + (f" {stage}" if stage and job.get("status") == "running" else ""), file=sys.stderr, flush=True)

    def rate_limited(wait: float, words: str) -> None:  # always said: a CI log shows why the step waits
        from gradhealth.core.numbers import plain

        print(f"gradhealth: {args.server}: rate limited ({words}); waiting {plain(wait)} s before trying again",
              file=sys.stderr, flush=True)

    return Client(args.server, api_key=args.api_key or os.environ.get("GRADHEALTH_API_KEY"),
                  on_state=state if show else None, on_rate_limited=rate_limited)


def _log_format(value: str) -> str:
    """A --log-format value: one of the log readers' names (the registry loads only when the flag
    is given; `--help` stays cheap)."""
    from gradhealth.logs.readers.registry import formats

    if value not in formats():
        raise argparse.ArgumentTypeError(f"{value!r} is no log format; use one of: {', '.join(formats())} "
                                         "(see `gradhealth formats`)")
    return value


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 < seconds <= 86_400:
        raise argparse.ArgumentTypeError(f"{value!r}: give seconds above 0, at most 86400")
    return seconds


def _unreachable(args: argparse.Namespace, exc: Exception) -> GradHealthError:
    """A --server that cannot be reached: reported like the service's own problems (exit 2)."""
    from gradhealth.client import RemoteError

    return RemoteError({"status": 503, "title": "Service unreachable", "detail": f"{args.server}: {exc}"})


def cmd_check_logs(args: argparse.Namespace) -> int:
    """The log check of a file, folder or archive (in-process, or with --server)."""
    from gradhealth.library import check_logs

    show_progress = _show_progress(args)
    try:
        if args.server:
            doc = _remote_logs(args)
        else:
            doc = check_logs(args.spec, format=args.log_format, progress=_progress(show_progress, notice=args.progress is not False))
            if show_progress:
                print(file=sys.stderr)
    except GradHealthError as exc:
        return _invalid(args, exc)
    from gradhealth.cli_report import report_context

    return _emit(args, doc, report_context(args, kind="logs", doc=doc))


def _remote_logs(args: argparse.Namespace) -> Diagnosis:
    import shutil
    import tempfile

    from gradhealth.client import RemoteError


    path = Path(args.spec)
    import httpx

    client = _client(args)
    try:
        if path.is_dir():  # a run folder travels as a zip archive
            if not any(p.is_file() for p in path.rglob("*")):
                # the service would name the zip made here ("emptyrun.zip: the archive is empty")
                raise LogError(f"{path.name}: the folder holds no file to check")
            with tempfile.TemporaryDirectory() as tmp:
                archive = shutil.make_archive(str(Path(tmp) / path.name), "zip", root_dir=path)
                try:
                    job = client.check_logs(Path(archive), format=args.log_format, wait_s=_server_wait(args))
                except RemoteError as exc:  # its words name the zip made here: the user's folder instead
                    problem = exc.to_problem()
                    detail = problem.get("detail")
                    if isinstance(detail, str):
                        problem["detail"] = detail.replace(Path(archive).name, f"{path.name}/")
                    raise RemoteError(problem) from None
        else:
            job = client.check_logs(path, format=args.log_format, wait_s=_server_wait(args))
    except httpx.TransportError as exc:
        raise _unreachable(args, exc) from None
    finally:
        client.close()
    return _diagnosis(args, job)


def _diagnosis(args: argparse.Namespace, job: dict[str, Any]) -> Diagnosis:
    """The finished job's diagnosis document; a result that is not one says the server is not a
    Gradient Health service (of this version): exit 3, one line."""
    from pydantic import ValidationError

    from gradhealth.client import RemoteError
    from gradhealth.core.document import Diagnosis

    try:
        return Diagnosis.model_validate(job["result"])
    except ValidationError as exc:
        raise RemoteError({"status": 502, "title": "Not a Gradient Health service",
                           "detail": f"{args.server}: job {job.get('id')}'s result is not a diagnosis "
                                     f"document ({exc.error_count()} error(s), first: "
                                     f"{exc.errors()[0]['msg']})"}) from None


def _server_refuses(args: argparse.Namespace, kind: str) -> str | None:
    """The flags ``--server`` cannot carry for this kind of input (the service's API has no field
    for them), as a usage error: they are never dropped silently."""
    refused = []
    if kind == "spec" and args.no_verify:
        refused.append("--no-verify")  # the spec route has no such option: the service's setting
    if kind == "model" and args.device is not None:
        refused.append("--device")  # the model route runs on the worker's device
    if not refused:
        return None
    return (f"{' and '.join(refused)} cannot be sent with --server for this input (the service decides "
            "it); drop the flag or check locally")


def _remote_check(args: argparse.Namespace, raw: dict[str, Any]) -> Diagnosis:
    import httpx


    client = _client(args)
    try:
        job = client.check_architecture(raw, wait_s=_server_wait(args))
    except httpx.TransportError as exc:
        raise _unreachable(args, exc) from None
    finally:
        client.close()
    return _diagnosis(args, job)


def _warn_unknown_settings() -> None:
    """A warning line for each ``GRADHEALTH_*`` variable no setting reads (a misspelt name would
    otherwise be ignored without a word); not a failure."""
    from gradhealth.settings import unknown_variables

    for line in unknown_variables():
        print(f"gradhealth: warning: {line}", file=sys.stderr)


def _settings_invalid(exc: Exception) -> int | None:
    """Exit 2 with one line per bad variable when ``exc`` is invalid settings, else None. The
    settings module is looked up, not imported: an exception from it means it is loaded already."""
    settings = sys.modules.get("gradhealth.settings")
    if settings is None or not isinstance(exc, settings.SettingsInvalid):
        return None
    for line in exc.problems:
        print(f"gradhealth: {line}", file=sys.stderr)
    print("gradhealth: invalid settings (see docs/settings.md)", file=sys.stderr)
    return EXIT_INVALID


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gradhealth.api.app import StartupError, check_startup, create_app
    from gradhealth.settings import get_settings, with_overrides

    overrides: dict[str, Any] = {}  # flags given win over the environment; absent ones leave it be
    for name in ("host", "port", "workers"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    _warn_unknown_settings()
    settings = with_overrides(get_settings(), overrides, {n: f"--{n}" for n in overrides})
    reason = settings.unsafe_reason() or settings.sqlite_problem()
    if reason:
        print(f"gradhealth: {reason}", file=sys.stderr)
        return EXIT_INVALID
    try:
        check_startup(settings)  # before binding: one line and exit 2, not uvicorn's lifespan traceback
    except StartupError as exc:
        print(f"gradhealth: {exc}", file=sys.stderr)
        return EXIT_INVALID
    from gradhealth.api.serving import guarded_protocol

    # limit_concurrency: a flood of connections gets 503s, not every file descriptor; timeout_keep_alive:
    # idle connections go. A slow request head is timed, and connections per address capped, by the
    # guarded protocol; a slow request body by the app (GRADHEALTH_BODY_TIMEOUT_S).
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level=os.environ.get("GRADHEALTH_LOG_LEVEL", "info").lower(),
                limit_concurrency=settings.max_connections, timeout_keep_alive=settings.keep_alive_s,
                http=guarded_protocol(settings))
    return EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    import signal
    import threading

    from gradhealth.db.engine import migrate, redact_url
    from gradhealth.jobs.supervisor import Supervisor
    from gradhealth.settings import get_settings

    _warn_unknown_settings()
    settings = get_settings()
    if args.processes is not None and args.processes < 0:
        print(f"gradhealth: --processes must be 0 or more, not {args.processes}", file=sys.stderr)
        return EXIT_INVALID
    problem = settings.sqlite_problem()
    if problem:
        print(f"gradhealth: {problem}", file=sys.stderr)
        return EXIT_INVALID
    migrate(settings.database_url)
    supervisor = Supervisor(settings.database_url, processes=args.processes or settings.workers or None,
                            lease_s=settings.lease_s, settings=settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    supervisor.start()
    print(f"gradhealth worker: {len(supervisor.slots)} process(es) on {redact_url(settings.database_url)}",
          file=sys.stderr)
    # A timed wait: the main thread wakes every second, so a signal is acted on whichever thread
    # the kernel delivered it to.
    while not stop.wait(1.0):
        pass
    supervisor.stop()
    return EXIT_OK


#: The shortest key hash-key takes: keys are long random strings (`openssl rand -hex 32`).
MIN_KEY_CHARS = 16


def hash_key_problem(name: str, key: str) -> str | None:
    """Why ``name``/``key`` cannot make a GRADHEALTH_API_KEYS entry, or None. The settings parser
    splits the variable on ``,``, strips each entry and takes the name before the first ``=``: a
    name must be non-empty, without ``,``, ``=`` or whitespace, to be read back as itself."""
    if not name:
        return "the name is empty: give the caller's name (e.g. ci)"
    bad = sorted({c for c in name if c in ",=" or c.isspace() or not c.isprintable()})
    if bad:
        return (f"the name {name!r} holds {', '.join(repr(c) for c in bad)}: GRADHEALTH_API_KEYS separates "
                "its entries with ',' and a name from its hash with '='; choose a name without them")
    if len(key) < MIN_KEY_CHARS:
        return (f"the key is {'empty' if not key else f'{len(key)} characters long'}: give a long random "
                f"key (at least {MIN_KEY_CHARS} characters, e.g. `openssl rand -hex 32`)")
    return None


def cmd_hash_key(args: argparse.Namespace) -> int:
    from gradhealth.settings import Settings, hash_key

    problem = hash_key_problem(args.name, args.key)
    entry = f"{args.name}={hash_key(args.key)}"
    # read back as the settings parser reads GRADHEALTH_API_KEYS: it must be one entry, this name
    if problem is None and Settings.model_construct(api_keys=entry).key_owners() != {hash_key(args.key): args.name}:
        problem = f"the name {args.name!r} would not read back from GRADHEALTH_API_KEYS as itself"
    if problem is not None:
        print(f"gradhealth: hash-key: {problem}", file=sys.stderr)
        return EXIT_INVALID
    print(entry)
    return EXIT_OK


def example_description(name: str) -> str:
    """One line about a bundled example: the first sentence of its leading comment (which may run
    over several lines), else its ``name`` field."""
    from importlib import resources

    text = (resources.files("gradhealth") / "examples" / f"{name}.yaml").read_text(encoding="utf-8")
    comment: list[str] = []
    for line in text.splitlines():
        if line.startswith("#") and line.strip("# "):
            comment.append(line.lstrip("# ").strip())
            continue
        if comment:
            break
        if line.startswith("name:"):
            return line.removeprefix("name:").strip()
    joined = " ".join(comment)
    end = re.search(r"\.(?=\s+[A-Z(]|$)", joined)   # a full stop before the next sentence (not "e.g. a")
    return joined[:end.end()] if end else joined


def cmd_examples(args: argparse.Namespace) -> int:
    names = example_names()
    width = max((len(n) for n in names), default=0) + len("example:")
    _write("\n".join(f"{'example:' + name:{width}s}  {example_description(name)}" for name in names))
    return EXIT_OK


def _spec_source(source: str) -> tuple[str, bool]:
    """The spec's text as the user wrote it (comments and layout included) and whether it is JSON."""
    from importlib import resources

    if source == "-":
        text = _stdin_text()
        return text, text.lstrip().startswith("{")
    if source.startswith("example:"):
        name = source.removeprefix("example:")
        if name not in example_names():
            raise InputFormatError(f"no bundled example {name!r}; choose one of: {', '.join(example_names())}")
        return (resources.files("gradhealth") / "examples" / f"{name}.yaml").read_text(encoding="utf-8"), False
    text = _spec_text(source) or ""
    return text, Path(source).suffix.lower() == ".json" or text.lstrip().startswith("{")


def apply_patch_to_text(text: str, patch: list[dict[str, Any]], *, is_json: bool) -> str:
    """``text`` (a YAML or JSON spec) with the RFC 6902 ``patch`` applied. YAML goes through
    ruamel.yaml's round trip, so the user's comments, key order and flow style are kept.

    A YAML anchor, alias or merge key (``<<: *blk``) makes several places of the spec one node
    there; each such node on a patched path is copied first, so that the patch changes only the
    place it names. The written text is read back and must equal the patch applied to the spec
    as read (:class:`InputFormatError` naming the first difference otherwise)."""
    import io

    import jsonpatch

    if is_json:
        data = json.loads(text)
        return json.dumps(jsonpatch.apply_patch(data, patch), indent=2) + "\n"
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip mode
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap the user's long flow lines
    yaml.indent(mapping=2, sequence=4, offset=2)  # `layers:` then `  - {...}`, as the examples are
    data = yaml.load(text)
    _unshare(data, patch)
    jsonpatch.apply_patch(data, _in_place_layout(data, patch), in_place=True)
    out = io.StringIO()
    yaml.dump(data, out)
    fixed = out.getvalue()
    _same_as_patched(text, fixed, patch)
    return fixed


def _unshare(root: Any, patch: list[dict[str, Any]]) -> None:
    """Give every node on a path the ``patch`` touches (``path`` and ``from``) that is shared in
    ruamel's round-trip graph its own copy, top down: a node reached through an alias or a merge
    key, or one that other mappings merge (an anchor ``<<: *it`` names), is one object for all its
    places, and patching it in place would change them all."""
    from gradhealth.core.pointers import parse_pointer

    counts: dict[int, int] = {}
    stack = [root]
    while stack:  # how many places hold each container (merged keys count at their merger too)
        node = stack.pop()
        counts[id(node)] = counts.get(id(node), 0) + 1
        if counts[id(node)] == 1:
            stack.extend(v for v in (node.values() if isinstance(node, dict) else node if
                                     isinstance(node, list) else ()) if isinstance(v, dict | list))
    for op in patch:
        for pointer in (op.get("path"), op.get("from")):
            if not isinstance(pointer, str) or not pointer.startswith("/"):
                continue  # (not a place in the document: the patch itself is refused for it)
            node = root
            for part in parse_pointer(pointer):
                key: Any = part
                if isinstance(node, list):
                    if not part.isdigit() or int(part) >= len(node):
                        break
                    key = int(part)
                elif not isinstance(node, dict) or part not in node:
                    break
                child = node[key]
                if not isinstance(child, dict | list):
                    break
                inherited = isinstance(node, dict) and key not in getattr(node, "_ok", node)
                if counts.get(id(child), 0) > 1 or getattr(child, "_ref", None) or inherited:
                    child = _own_copy(child)
                    node[key] = child  # in a mapping, now its own key (no longer the merged one)
                node = child


def _in_place_layout(root: Any, patch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``patch`` with each ``replace`` of a mapping by a mapping written as the node it replaces
    is: its flow style, comments and key order (the keys it kept where they were, new ones after, in
    the patch's order; newuser11 #11: `gated_recurrent_cell` turned the one-line
    ``- {type: rnn, hidden_size: 128, nonlinearity: tanh}`` into three block lines starting at
    ``hidden_size``). The values are the patch's; only how they are written changes."""
    from ruamel.yaml.comments import CommentedMap

    from gradhealth.core.pointers import parse_pointer

    out = []
    for op in patch:
        old = _node_at(root, parse_pointer(op["path"])) if op.get("op") == "replace" and isinstance(
            op.get("path"), str) and op["path"].startswith("/") else None
        value = op.get("value")
        if isinstance(old, CommentedMap) and isinstance(value, dict) and not isinstance(value, CommentedMap):
            new: Any = CommentedMap((k, value[k]) for k in old if k in value)
            new.update((k, v) for k, v in value.items() if k not in new)
            if old.fa.flow_style():
                new.fa.set_flow_style()
            new._yaml_comment = old.ca  # the comments on its lines stay with it
            op = {**op, "value": new}
        out.append(op)
    return out


def _node_at(root: Any, parts: list[str]) -> Any:
    """The node at the parsed pointer ``parts`` under ``root``, or None where there is none."""
    node = root
    for part in parts:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None
    return node


def _own_copy(node: Any) -> Any:
    """A deep copy of a ruamel node with no anchor and no merge key (merged keys become its own),
    keeping its flow style and comments."""
    import copy

    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    new: Any
    if isinstance(node, dict):
        new = CommentedMap((k, _own_copy(v)) for k, v in node.items())
    elif isinstance(node, list):
        new = CommentedSeq(_own_copy(v) for v in node)
    else:
        return node
    if getattr(node, "fa", None) is not None and node.fa.flow_style():
        new.fa.set_flow_style()
    if getattr(node, "ca", None) is not None:
        new._yaml_comment = copy.copy(node.ca)  # the comments on its own lines stay with it
    return new


def _same_as_patched(text: str, fixed: str, patch: list[dict[str, Any]]) -> None:
    """Read ``fixed`` back and compare it with ``patch`` applied to ``text`` as read; the first
    difference is an :class:`InputFormatError` (the written YAML would not say what the patch says)."""
    import jsonpatch

    from gradhealth.analysis.spec import load_spec_text

    want = jsonpatch.apply_patch(_tree(load_spec_text(text)), patch)
    try:
        got = load_spec_text(fixed)
    except GradHealthError as exc:
        raise InputFormatError(f"the fixed YAML does not read back ({exc.detail}); apply this patch "
                               f"by hand: {json.dumps(patch)}") from None
    where = _first_difference(want, got)
    if where is not None:
        raise InputFormatError(
            f"the fix cannot be written into this YAML as it is: it would also change {where or '/'} "
            "(YAML anchors, aliases or merge keys share it); apply this patch by hand: "
            f"{json.dumps(patch)}")


def _tree(value: Any) -> Any:
    """``value`` rebuilt with no object in two places: the YAML reader shares an alias's (and a
    merged key's) object between its places, which a deep copy would keep, and the patch must
    change only the place it names. The depth is bounded by the spec reader."""
    if isinstance(value, dict):
        return {k: _tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tree(v) for v in value]
    return value


def _first_difference(a: Any, b: Any, pointer: str = "") -> str | None:
    """The JSON pointer of the first place where ``a`` and ``b`` differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            if key not in a or key not in b:
                return f"{pointer}/{key}"
            found = _first_difference(a[key], b[key], f"{pointer}/{key}")
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            found = _first_difference(x, y, f"{pointer}/{i}")
            if found is not None:
                return found
        return None if len(a) == len(b) else f"{pointer}/{min(len(a), len(b))}"
    return None if a == b and isinstance(a, bool) == isinstance(b, bool) else pointer


def cmd_fix(args: argparse.Namespace) -> int:
    """Write the spec with one remedy's patch applied (the remedy the check proposes for it)."""
    from gradhealth.analysis.spec import load_spec_text
    from gradhealth.cli_report import ReportWriteError, writable, write_report
    from gradhealth.library import check_architecture

    if is_keras(args.spec) or is_model(args.spec):
        # a remedy's patch is a JSON Patch of the spec the check made of the file, not of the file: the
        # spec's schema refused a Keras config field by field (kerassweep27 catsdogs_cnn_json)
        kind = "an ONNX" if is_model(args.spec) else "a Keras"
        print(f"gradhealth: {args.spec}: `gradhealth fix` applies a remedy's patch to an architecture spec "
              f"(YAML or JSON), and this is {kind} model file: make the remedy's change (its `change` and code "
              "in `gradhealth check` of the file) where the model is built, save the model again and check "
              "the new file", file=sys.stderr)
        return EXIT_INVALID
    if args.output:  # as `check -o`: a path that cannot be written must not cost a check
        problem = writable(args.output, what="the fixed spec")
        if problem:
            print(f"gradhealth: {args.spec}: {problem}", file=sys.stderr)
            return EXIT_INVALID
    try:
        text, is_json = _spec_source(args.spec)
        raw = load_spec_text(text, content_type="application/json" if is_json else None, declared_by="file_name")
        doc = check_architecture(raw, verify=False)
    except GradHealthError as exc:
        print(f"gradhealth: {args.spec}: {exc.title.lower()}: {exc.detail}", file=sys.stderr)
        return EXIT_INVALID
    except (RuntimeError, MemoryError, OSError) as exc:
        return _failed(args, exc)
    proposed = [r for f in doc.findings for r in f.remedies]
    # one id may come in variants (a gated cell with chrono gates or a forget bias of 1): distinct patches
    variants = list({json.dumps(r.patch, sort_keys=True): r for r in proposed
                     if r.id == args.remedy and r.patch}.values())
    if variants and not 1 <= args.variant <= len(variants):
        print(f"gradhealth: {args.spec}: {args.remedy} has {len(variants)} variant(s); --variant takes 1 to "
              f"{len(variants)}", file=sys.stderr)
        return EXIT_INVALID
    patched = variants[args.variant - 1] if variants else None
    if patched is None:
        ids = sorted({r.id for r in proposed if r.patch})
        why = (f"{args.remedy} is a change to training, not to the spec (see its code in `gradhealth check`)"
               if any(r.id == args.remedy for r in proposed) else
               f"the check proposes no {args.remedy} for this spec")
        print(f"gradhealth: {args.spec}: {why}; spec remedies proposed: {', '.join(ids) or 'none'}",
              file=sys.stderr)
        return EXIT_INVALID
    try:
        fixed = apply_patch_to_text(text, patched.patch, is_json=is_json)
        if args.output:
            write_report(args.output, fixed, what="the fixed spec")
    except GradHealthError as exc:
        print(f"gradhealth: {args.spec}: {exc.title.lower()}: {exc.detail}", file=sys.stderr)
        return EXIT_INVALID
    except ReportWriteError as exc:  # a path that passed writable() and still failed (/dev/full)
        print(f"gradhealth: {args.spec}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if not args.output:
        _write(fixed.rstrip("\n"))
    where = args.output or "the output"
    print(f"gradhealth: applied {patched.id}: {patched.change}; check {where} with `gradhealth check`",
          file=sys.stderr)
    if len(variants) > 1:
        others = "; ".join(f"--variant {i}: {r.change}" for i, r in enumerate(variants, 1) if r is not patched)
        print(f"gradhealth: {patched.id} has {len(variants)} variants (this was --variant {args.variant}); {others}",
              file=sys.stderr)
    return EXIT_OK


def cmd_formats(args: argparse.Namespace) -> int:
    from gradhealth.logs.readers.registry import formats

    _write("\n".join(f"{name:12s} {description}" for name, description in formats().items()))
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from gradhealth.analysis.spec import spec_json_schema

    _write(json.dumps(spec_json_schema(), indent=2))
    return EXIT_OK


def cmd_catalog(args: argparse.Namespace) -> int:
    from gradhealth.core.catalog import FINDINGS, REMEDIES
    from gradhealth.logs.readers.registry import formats

    # The document GET /v1/catalog returns, in the same shape (lists of {id, title, description}).
    data = {"findings": [{"id": k, "title": v.title, "description": v.description} for k, v in FINDINGS.items()],
            "remedies": [{"id": k, "title": v.title, "description": v.description} for k, v in REMEDIES.items()],
            "log_formats": [{"id": k, "title": k, "description": v} for k, v in formats().items()]}
    _write(json.dumps(data, indent=2))
    return EXIT_OK


class _OneLineErrors(argparse.ArgumentParser):
    """A parser whose own errors (an invalid choice, a value its ``type`` refuses, a missing or
    unknown argument) are one ``usage error`` line on stderr, exit 2, as the command's other usage
    errors are (docs/cli.md): argparse printed its whole usage block first, 20 lines for
    ``--format xml`` (newuser14 #10). ``--help`` still prints the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INVALID, f"{self.prog}: usage error: {message} (see {self.prog} --help)\n")


class _IntermixedParser(_OneLineErrors):
    """A verb's parser that takes options between its positional arguments
    (``gradhealth check a.yaml --fail-on never b.csv``, as pre-commit and shell globs build it):
    argparse's intermixed parsing (the verbs have no REMAINDER or sub-command positionals, which
    it refuses)."""

    _mixing = False

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        if self._mixing:  # intermixed parsing calls back into plain parsing, twice
            return super().parse_known_args(args, namespace)
        self._mixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._mixing = False


def build_parser() -> argparse.ArgumentParser:
    from gradhealth import __version__

    epilog = "exit status:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())
    parser = _OneLineErrors(prog="gradhealth", description="Is this network's gradient healthy?",
                                     epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_IntermixedParser)
    check = sub.add_parser("check", help="check an architecture spec (JSON/YAML), a model file (ONNX .onnx, "
                                         "Keras .keras/.h5) or a training log (file, run folder or archive)",
                           epilog=epilog,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("spec", help="an architecture spec (file, '-' for stdin, or example:NAME), a model file "
                                    "(.onnx, .keras, .h5), or a training log file, run folder or archive")
    check.add_argument("--log-format", type=_log_format, default=None, help="format hint for logs (see `gradhealth formats`)")
    check.add_argument("--fail-on", choices=["warning", "error", "new", "never"], default=None,
                       help="exit 1 when a finding is at least this severe (default: error); new: only "
                            "when a finding at warning or above is new or worse than in --baseline")
    check.add_argument("--fail-on-unjudged", action="store_true",
                       help="exit 1 when a log's trends were not judged (too short an excerpt, no training "
                            "loss: the document's judged is false), whatever --fail-on says")
    check.add_argument("--no-verify", action="store_true", help="propose remedies without re-simulating them")
    check.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None, help="override the spec's device")
    check.add_argument("--seeds", type=int, default=None, help="override the spec's number of seeds")
    check.add_argument("--layers", action="store_true", help="add the per-layer table to the text report")
    check.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="show progress on stderr (default: when stderr is a terminal)")
    check.add_argument("--server", type=server_url,
                       help="send the check to a running service at this URL instead (http:// or https://)")
    check.add_argument("--server-timeout", type=_positive_seconds, default=None, metavar="SECONDS",
                       help="with --server: how long to wait for the job (default $GRADHEALTH_SERVER_TIMEOUT "
                            "or 600); a job still queued or running then is exit 3, naming it")
    model = check.add_argument_group("model files (.onnx; Keras .keras, .h5, config .json)")
    model.add_argument("--loss", choices=LOSSES, default=None,
                       help="the loss the simulation backpropagates (default: the Keras file's compiled loss, "
                            "else the one its output implies: cross_entropy after a softmax, "
                            "binary_cross_entropy after a 1-wide sigmoid, mse otherwise)")
    model.add_argument("--weights", choices=["as_given", "reinitialise"], default=None,
                       help="as_given (default where the file stores weights): the file's weights; "
                            "reinitialise: each layer's initialiser (PyTorch's default; Keras' as configured)")
    model.add_argument("--batch-size", type=int, default=None, help="fills a dynamic first dimension")
    model.add_argument("--input-shape", action="append", default=None, metavar="NAME=1x3x32x32",
                       help="sizes of an input with dynamic dimensions (repeatable)")
    model.add_argument("--optimizer", default=None, metavar="JSON",
                       help='the training optimizer whose first step large_updates checks, e.g. '
                            '\'{"type": "adam", "lr": 0.001}\' (.onnx and Keras files; a Keras file\'s own '
                            'compiled optimizer otherwise)')
    model.add_argument("--target-range", default=None, metavar="LO,HI",
                       help="where a regression loss's targets lie, e.g. 0,1 for 0/1 labels (Keras files; "
                            "the spec's loss.target_range): a sigmoid output is then judged on that range, "
                            "not on standard-normal targets")
    model.add_argument("--loss-at", default=None, metavar="NAME",
                       help="the tensor of an .onnx graph the loss is taken at: a graph output or an internal "
                            "value (default: the first floating-point output computed from the inputs, else the "
                            "logits its integer outputs are sampled or argmaxed from)")
    model.add_argument("--input-range", default=None, metavar="LO,HI",
                       help="where a model file's float inputs lie, e.g. 0,1 for pixels or one-hot features: drawn "
                            "uniform in [LO, HI] instead of standard normal (the spec's input.range); token "
                            "ids and masks keep their own draws")
    model.add_argument("--external-data", action="store_true", default=None,
                       help="read the tensors an .onnx file stores beside it (torch's model.onnx.data), "
                            "from the file's own folder only; with --server they are sent inside the file")
    check.add_argument("--api-key", help="API key for --server (default: $GRADHEALTH_API_KEY)")
    from gradhealth.cli_report import add_report_options

    add_report_options(check)  # --format, --output [FORMAT=]FILE, --baseline, further inputs
    check.set_defaults(func=cmd_check_inputs)
    serve = sub.add_parser("serve", help="start the HTTP service with its embedded worker(s)")
    # No defaults read here: building the parser must not read settings (or import anything heavy).
    serve.add_argument("--host", default=None, help="address to bind (default: GRADHEALTH_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default: GRADHEALTH_PORT or 8000)")
    serve.add_argument("--workers", type=int, default=None, help="worker processes (default: one per GPU, or one)")
    serve.set_defaults(func=cmd_serve)
    worker = sub.add_parser("worker", help="run worker processes standalone against DATABASE_URL")
    worker.add_argument("--processes", type=int, default=None)
    worker.set_defaults(func=cmd_worker)
    hk = sub.add_parser("hash-key", help="print the settings entry for an API key (stored hashed)")
    hk.add_argument("name")
    hk.add_argument("key")
    hk.set_defaults(func=cmd_hash_key)
    sub.add_parser("examples", help="list the bundled example specs, one line about each").set_defaults(
        func=cmd_examples)
    fix = sub.add_parser("fix", help="write the spec with a remedy's patch applied (comments kept)")
    fix.add_argument("spec", help="an architecture spec (file, '-' for stdin, or example:NAME)")
    fix.add_argument("--remedy", required=True, help="the remedy id, as `gradhealth check` lists it")
    fix.add_argument("--variant", type=int, default=1,
                     help="which of a remedy's variants to apply, as `gradhealth check` lists them (default 1)")
    fix.add_argument("--output", "-o", help="write the fixed spec here instead of stdout")
    fix.set_defaults(func=cmd_fix, device=None, format="text")
    sub.add_parser("schema", help="print the spec's JSON Schema").set_defaults(func=cmd_schema)
    sub.add_parser("formats", help="list the log formats the log check reads").set_defaults(func=cmd_formats)
    sub.add_parser("catalog", help="print every finding code and remedy id").set_defaults(func=cmd_catalog)
    return parser


#: Options whose value may start with a minus sign (``--input-range -1,1``): argparse takes a
#: token starting with "-" that is not a plain negative number for an option and refuses the value
#: ("expected one argument"), so such a value is joined to its option first (onnxsweep16 u02).
_SIGNED_VALUES = ("--input-range", "--target-range")
_SIGNED = re.compile(r"-(?:\d|\.\d|inf)", re.IGNORECASE)


def _join_signed(argv: list[str]) -> list[str]:
    """``argv`` with ``--input-range -1,1`` given as ``--input-range=-1,1``."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in _SIGNED_VALUES and i + 1 < len(argv) and _SIGNED.match(argv[i + 1]):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (see :data:`EXIT_CODES`)."""
    args = build_parser().parse_args(_join_signed(list(sys.argv[1:] if argv is None else argv)))
    try:
        return int(args.func(args))
    except BrokenPipeError:  # output cut short by its reader (`| head`): not a failure of ours
        _silence_stdout()
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001  # a bug of ours must not exit 1, which CI reads as "unhealthy"
        invalid = _settings_invalid(exc)  # a bad GRADHEALTH_* variable, read by whichever verb
        if invalid is not None:
            return invalid
        import traceback

        traceback.print_exc(file=sys.stderr)
        print(f"gradhealth: internal error ({type(exc).__name__}: {exc}); this is a bug in gradhealth, "
              "not a finding about your model: please report it with the traceback above", file=sys.stderr)
        return EXIT_CANNOT_RUN


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
