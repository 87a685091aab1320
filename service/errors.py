"""The one exception tree of Gradient Health.

Every error the core or the service raises on purpose derives from
:class:`GradHealthError`; each knows the HTTP status it maps to, a stable
machine code and a problem-type URI, so one handler can render all of them as
RFC 9457 ``application/problem+json`` and the command line can map them to its
exit codes::

    GradHealthError                  (500, internal)
    ├── SpecError                    (422, invalid_spec)      one or more spec problems, each with a JSON pointer
    │   └── LimitExceeded            (422, limit_exceeded)    the spec is valid but too large to simulate
    ├── InputFormatError             (400, invalid_input)     the input could not be read at all (not JSON/YAML)
    │   └── UsageError               (400, invalid_input)     a command-line flag that is wrong or does not apply
    ├── ArgumentError                (422, invalid_argument)  a bad argument of a Python function (also a ValueError)
    │   └── ArgumentTypeError        (422, invalid_argument)  an argument of the wrong type (also a TypeError)
    ├── LogError                     (422, invalid_log)       a log that cannot be read; says where (line, record, offset)
    │   ├── UnknownLogFormat         (415, unknown_log_format) no reader recognises the file (or the hint is wrong)
    │   └── UploadTooLarge           (413, upload_too_large)  over the upload, archive or uncompressed-size limits
    └── IdempotencyConflict          (409, idempotency_conflict) an Idempotency-Key reused with another request

A spec asking for ``device: cuda`` where no CUDA device is visible is a :class:`SpecError` at
``/device`` (:func:`cuda_unavailable`), so it is a 422 / exit status 2 like any other bad field.

Messages say what to change, e.g. ``/layers/3/init/std: must be > 0 (got -1)``.
"""

from __future__ import annotations

from dataclasses import dataclass

PROBLEM_BASE = "https://gradient-health.dev/problems/"


def not_utf8_at(exc: UnicodeDecodeError) -> str:
    """Where text is not UTF-8, in every message that says so: ``at byte offset 9 (byte 0xe9)``, the
    offset and the byte's value told apart (newuser9 P9: "(byte 0)" read as a byte of value 0)."""
    data = exc.object
    value = f" (byte 0x{data[exc.start]:02x})" if 0 <= exc.start < len(data) else ""
    return f"at byte offset {exc.start}{value}"


def problem_type(slug: str) -> str:
    """The problem-type URI of ``slug`` (e.g. ``time-limit``): every one is under PROBLEM_BASE."""
    return PROBLEM_BASE + slug


@dataclass(frozen=True)
class Problem:
    """One located problem: a JSON pointer into the input and what is wrong there."""

    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer or '/'}: {self.message}"


class GradHealthError(Exception):
    """Base of every error raised on purpose."""

    status: int = 500
    code: str = "internal"
    title: str = "Internal error"

    def __init__(self, detail: str, problems: list[Problem] | None = None, *,
                 position: tuple[int, int | None] | None = None, parameter: str | None = None,
                 field: str | None = None, pointer: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.problems: list[Problem] = problems or []
        #: (line, column), both from 1, of text that could not be parsed (a YAML or JSON syntax
        #: error, a log's line that cannot be read), so a report can sit on that line as a
        #: pointer's problem does (newuser14 #7); the column is None where only the line is known
        self.position = position
        #: the column (of a table) or field (of a record) of a log the problem is in, by name
        #: (``loss``): its problem's ``errors[].field`` (newuser16 #6)
        self.field = field
        #: the option the problem is about, as the HTTP API names it (``loss_at``, ``input_shapes``):
        #: its problem's ``errors[].parameter`` (newuser15 #10)
        self.parameter = parameter
        #: the JSON pointer into the input the problem is at, where it has no ``problems`` (a spec
        #: nested too deep, over the value budget): its ``errors[].pointer`` (newuser18 #4)
        self.pointer = pointer

    @property
    def type_uri(self) -> str:
        return problem_type(self.code.replace("_", "-"))

    def to_problem(self) -> dict[str, object]:
        """RFC 9457 problem details body."""
        body: dict[str, object] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.problems:
            body["errors"] = [{"pointer": p.pointer, "parameter": None, "detail": p.message} for p in self.problems]
        elif self.position is not None:
            line, column = self.position
            body["errors"] = [{"pointer": self.pointer, "parameter": None, "detail": self.detail, "line": line,
                               **({"column": column} if column is not None else {}),
                               **({"field": self.field} if self.field is not None else {})}]
        elif self.parameter is not None or self.pointer is not None:
            body["errors"] = [{"pointer": self.pointer, "parameter": self.parameter, "detail": self.detail}]
        return body


class InputFormatError(GradHealthError):
    """The input could not be parsed at all (not JSON, not YAML, not a mapping)."""

    status = 400
    code = "invalid_input"
    title = "Input could not be read"


class UsageError(InputFormatError):
    """A command-line flag with a wrong value, or one that cannot be used with this input
    (``--no-verify`` with ``--server`` for a spec, a model file's ``--loss`` for a log): the
    command was misused, not an input that could not be read (newuser6)."""

    title = "Usage error"


class SpecError(GradHealthError):
    """The spec parsed but is invalid; ``problems`` names each field by JSON pointer."""

    status = 422
    code = "invalid_spec"
    title = "Invalid architecture spec"

    @classmethod
    def at(cls, pointer: str, message: str) -> SpecError:
        """A spec error about one field."""
        problem = Problem(pointer, message)
        return cls(str(problem), [problem])


class ArgumentError(GradHealthError, ValueError):
    """An argument of a public Python function (``check_module``, ``GradientRecorder``) that is
    refused before anything runs; the message names the argument. Also a ``ValueError``, as
    these were before (newuser5 P6: the README says every error is a GradHealthError)."""

    status = 422
    code = "invalid_argument"
    title = "Invalid argument"


class DeviceArgumentError(SpecError, ArgumentError):
    """``device=`` of ``check_module`` that is no device here, named as that argument (newuser17 #6:
    a SpecError at ``/device`` named a spec the user never wrote, and ``except ArgumentError``, what
    every other refused argument of the function raises, missed it): an :class:`ArgumentError`, and
    still the :class:`SpecError` it was."""

    status = 422
    code = "invalid_argument"
    title = "Invalid argument"


class ArgumentTypeError(ArgumentError, TypeError):
    """An argument of the wrong type (a list where a module goes, text where a number goes); also
    a ``TypeError``."""


class LimitExceeded(SpecError):
    """The input (a spec, a model, a log) is valid but over a configured resource limit; refused before
    allocation."""

    code = "limit_exceeded"
    title = "Input exceeds a resource limit"


class TimeSeriesError(GradHealthError):
    """The analysis read a recurrent layer's gradient over time inconsistently (two readings of one
    layer's steps, or series of different lengths where one length is due): an internal fault, named
    with the layer, rather than a numerical error raised from deep inside the rules."""

    code = "inconsistent_time_series"
    title = "Internal error: inconsistent time series"


class LogError(GradHealthError):
    """A training log that cannot be read; the message says where (line, record, byte offset)."""

    status = 422
    code = "invalid_log"
    title = "Log could not be read"


class UnknownLogFormat(LogError):
    """No reader recognises the file, or the format hint does not fit it."""

    status = 415
    code = "unknown_log_format"
    title = "Unknown log format"


class UploadTooLarge(LogError):
    """A file or archive over the size, entry-count or compression-ratio limits."""

    status = 413
    code = "upload_too_large"
    title = "Upload too large"


class IdempotencyConflict(GradHealthError):
    """The same Idempotency-Key was used (by the same caller) with a different request."""

    status = 409
    code = "idempotency_conflict"
    title = "Idempotency-Key reused"

    def __init__(self, job_id: str, key: str | None = None) -> None:
        named = f"Idempotency-Key {key!r}" if key is not None else "the Idempotency-Key"
        super().__init__(f"{named} was used for job {job_id} with a different request; "
                         "use a new key for a new request")
        self.job_id = job_id
        self.key = key


class QueueFull(GradHealthError):
    """More jobs are queued than the service accepts (``max_queued_jobs``): try again later."""

    status = 503
    code = "queue_full"
    title = "Too many queued jobs"

    def __init__(self, queued: int, limit: int, retry_after_s: int = 30) -> None:
        super().__init__(f"{queued} jobs are queued, the limit is {limit} (GRADHEALTH_MAX_QUEUED_JOBS); "
                         f"retry in {retry_after_s} s")
        self.headers = {"Retry-After": str(retry_after_s)}


class ClientQuotaExceeded(GradHealthError):
    """One client (API key, or client address with keys off) has as many jobs queued or running as
    it may (``max_jobs_per_client``): it waits for some to finish; other clients are not held up."""

    status = 429
    code = "client_quota_exceeded"
    title = "Too many jobs for this client"

    def __init__(self, who: str, active: int, limit: int, retry_after_s: int = 30) -> None:
        super().__init__(f"{who} has {active} jobs queued or running, the quota is {limit} per client "
                         f"(GRADHEALTH_MAX_JOBS_PER_CLIENT); retry in {retry_after_s} s, once some have finished")
        self.headers = {"Retry-After": str(retry_after_s)}


def device_unavailable(requested: object, reason: str, available: list[str]) -> SpecError:
    """The ``/device`` error for a device that is not one (``"gpu"``) or that this machine lacks
    (``"cuda:7"`` beside one GPU, ``"mps"`` off a Mac), naming the devices there are."""
    return SpecError.at("/device", f"{requested!r} {reason}; devices available here: "
                                   f"{', '.join(available)}")


def cuda_unavailable() -> SpecError:
    """The error for ``device: cuda`` (or ``--device cuda``) where no CUDA device is visible."""
    return SpecError.at("/device", "'cuda' was requested but no CUDA device is available here; "
                                   "use 'auto' (a GPU when there is one) or 'cpu'")
