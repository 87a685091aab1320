"""Settings from the environment (prefix ``GRADHEALTH_``), documented field by field.

Nested fields use ``__``: ``GRADHEALTH_THRESHOLDS__VANISHING_WARNING=1e-3``,
``GRADHEALTH_LIMITS__MAX_PARAMETERS=50000000``. ``DATABASE_URL`` is read without the prefix too,
as most deployment tools set it.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from gradhealth.analysis.limits import Limits
from gradhealth.analysis.thresholds import Thresholds
from gradhealth.logs.thresholds import LogThresholds

if TYPE_CHECKING:
    from gradhealth.logs.readers.registry import ReadLimits


def hash_key(key: str) -> str:
    """How API keys are stored: the hex SHA-256 of the key (keys are long random strings, so a
    fast hash is enough; what matters is that the settings never hold a usable key)."""
    return hashlib.sha256(key.encode()).hexdigest()


#: The database URLs the job store opens (gradhealth.db.engine.make_engine): SQLite, embedded, and
#: PostgreSQL through psycopg 3. Anything else would fail at start on a missing driver.
DATABASE_SCHEMES = ("sqlite://", "sqlite+pysqlite://", "postgresql://", "postgresql+psycopg://")

#: ``GRADHEALTH_*`` variables that are read elsewhere, not by :class:`Settings` (the client's key,
#: the log level, the GitHub Action's and the install script's inputs, the test suite's): never
#: reported as unknown.
OTHER_VARIABLES = frozenset({
    "GRADHEALTH_API_KEY", "GRADHEALTH_LOG_LEVEL", "GRADHEALTH_SERVER", "GRADHEALTH_STRICT",
    "GRADHEALTH_PATHS", "GRADHEALTH_OUT", "GRADHEALTH_FAIL_ON", "GRADHEALTH_BASELINE",
    "GRADHEALTH_PACKAGE", "GRADHEALTH_INSTALL", "GRADHEALTH_ACTION_PATH", "GRADHEALTH_VENV",
    "GRADHEALTH_TORCH", "GRADHEALTH_TORCH_INDEX", "GRADHEALTH_TEST_POSTGRES_URL",
    "GRADHEALTH_TEST_ARTIFACTS"})

#: Threshold pairs whose warning must come before their error (else the error fires first and the
#: warning never does): (warning, error, True when the figure fires by falling below them).
_ORDERED_THRESHOLDS = (("vanishing_warning", "vanishing_error", True),
                       ("exploding_warning", "exploding_error", False),
                       ("saturation_warning", "saturation_error", False),
                       ("dead_warning", "dead_error", False),
                       ("large_update_warning", "large_update_error", False),
                       ("silent_loss_warning", "silent_loss_error", False))


class SettingsInvalid(Exception):  # noqa: N818 - reads as what it is: settings invalid
    """Settings that cannot be used; ``problems`` holds one line per bad variable, each naming it
    (``GRADHEALTH_PORT: ...``). The command line prints them and exits 2."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


#: One CSP source of ``frame-ancestors``: 'self', 'none', a scheme (``https:``), or a host source
#: (``[scheme://]host[:port][/path]``, the host's first label may be ``*``), printable ASCII only.
_FRAME_SOURCE = re.compile(
    r"'self'|'none'|[A-Za-z][A-Za-z0-9+.-]*:|\*"
    r"|(?:[A-Za-z][A-Za-z0-9+.-]*://)?(?:\*\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::(?:[0-9]{1,5}|\*))?"
    r"(?:/[A-Za-z0-9._~!$&()*+=:@%/-]*)?")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRADHEALTH_", env_nested_delimiter="__", extra="ignore")

    thresholds: Thresholds = Field(default_factory=Thresholds, description="when a figure becomes a finding")
    log_thresholds: LogThresholds = Field(default_factory=LogThresholds, description="the log check's thresholds")
    limits: Limits = Field(default_factory=Limits, description="resource limits checked before simulating")
    verify_remedies: bool = Field(True, description="re-simulate every remedy that changes the spec")

    database_url: str = Field("sqlite:///./data/gradhealth.db",
                              validation_alias=AliasChoices("GRADHEALTH_DATABASE_URL", "DATABASE_URL"),
                              description="SQLite (embedded default) or postgresql://...")
    host: str = Field("127.0.0.1", description="address `gradhealth serve` binds")
    port: int = Field(8000, ge=1, le=65535)
    workers: int | None = Field(None, ge=0, description="worker processes; default one per GPU, or one; 0: none")
    lease_s: float = Field(15.0, gt=0, description="a job's lease; a worker silent this long is presumed dead")
    job_time_limit_s: float = Field(600.0, gt=0, description="a job running longer is failed")
    job_cancel_grace_s: float = Field(
        5.0, gt=0, description="a running job asked to stop (DELETE /v1/jobs/{id}) that has not stopped by "
                               "itself this many seconds later has its worker process killed and replaced "
                               "by the supervisor, and ends cancelled")
    max_attempts: int = Field(3, ge=1, description="attempts before a job whose worker keeps dying is failed")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="request body limit (413 above)")
    max_upload_bytes: int = Field(512 * 2**20, ge=1024,
                                  description="limit on an uploaded log or model file's own bytes (413 above), raw "
                                              "or as a form's part (whose body may be 64 KiB larger for its framing), "
                                              "and the size of one log file read")
    log_max_series: int = Field(10_000, ge=1,
                                description="series (columns, metric names) one log may hold; a log with more "
                                            "is refused (413) as it is read, a wide CSV from its header")
    upload_dir: str = Field("./data/uploads", description="where uploaded logs are kept (shared by API and workers)")
    body_timeout_s: float = Field(
        20.0, gt=0, description="a request's body must have arrived this many seconds after the request "
                                "began, plus one second per body_min_rate bytes received; slower is a 408 and "
                                "the connection is closed (a client trickling a body cannot hold it forever)")
    body_min_rate: int = Field(500, ge=1, description="bytes per second that extend body_timeout_s: the least "
                                                      "average rate a long upload may arrive at")
    max_uploads_in_flight: int = Field(
        16, ge=1, description="log and model uploads being received at once; one more gets 503 with "
                              "Retry-After (each holds an upload file open while its body arrives)")
    max_connections: int = Field(1000, ge=1, description="`gradhealth serve`: connections and requests at once "
                                                         "(uvicorn's limit_concurrency); beyond it, 503")
    keep_alive_s: int = Field(5, ge=1, description="`gradhealth serve`: seconds an idle keep-alive connection "
                                                   "is held open (uvicorn's timeout_keep_alive)")
    header_timeout_s: float = Field(
        10.0, gt=0, description="`gradhealth serve`: a connection must complete each request's head (the "
                                "request line and headers) this many seconds after it opens or after its "
                                "previous response; slower is a 408 and the connection is closed (a client "
                                "trickling headers cannot hold a connection forever)")
    max_connections_per_address: int = Field(
        100, ge=0, description="`gradhealth serve`: connections one client address may hold open at once; "
                               "one more gets 429 and is closed, so one client cannot take every "
                               "max_connections slot; 0: no cap (behind a proxy, where every client has the "
                               "proxy's address)")
    max_jobs_per_client: int = Field(
        250, ge=0, description="queued and running jobs one API key (keys off: one client address) may "
                               "have; one more submission gets 429 with Retry-After, before "
                               "max_queued_jobs is reached; 0: no quota")
    wait_max_s: float = Field(60.0, ge=0, description="cap on ?wait=N")
    job_wake_fallback_s: float = Field(
        5.0, gt=0, description="workers are woken when a job is queued and ?wait callers when it finishes; "
                               "this is how often both look anyway, in case a notification was lost")
    api_keys: str = Field("", description="comma-separated name=sha256hex entries; empty: keys off")
    rate_limit_per_minute: int = Field(600, ge=1, description="requests per minute per API key (keys off: per client address)")
    allow_insecure: bool = Field(False, description="allow keys off on a non-loopback address")
    auth_failures_per_minute: int = Field(
        10, ge=1, description="requests with a missing or wrong API key one client address may make per "
                              "minute before it gets 429 (throttles key guessing)")
    link_secret: str = Field("", repr=False,
                             description="the key that signs report links (POST .../report/link): set the same "
                                         "one on every replica; empty: a random key per process, so links "
                                         "stop working at a restart. Changing it revokes every link")
    link_max_ttl_s: float = Field(30 * 86400.0, gt=0, description="the longest a report link may stay valid")
    report_frame_ancestors: str = Field(
        "", description="origins that may frame a report opened by its link (a dashboard's, e.g. "
                        "https://grafana.example.com), as CSP frame-ancestors sources; empty: none may")
    metrics_public: bool = Field(False, description="with keys on, serve /metrics without a key (it counts "
                                                    "jobs and findings across all callers)")
    docs_public: bool = Field(True, description="with keys on, serve /openapi.json, /docs, /redoc, /static "
                                                "and /v1/catalog without a key")
    max_queued_jobs: int = Field(1000, ge=1, description="queued jobs beyond which a submission gets 503 "
                                                         "with Retry-After")
    upload_retention_s: float = Field(7 * 86400.0, ge=0,
                                      description="uploads of jobs finished longer ago are deleted; 0: kept "
                                                  "until the job is deleted")
    threads: int = Field(0, ge=0, description="CPU threads a simulation uses in a worker or an in-process "
                                              "CLI check; 0: auto, the CPUs not already busy by the "
                                              "1-minute load average, at least 1")
    worker_preload: bool = Field(True, description="a worker imports the simulation's modules (torch) when it "
                                                   "first goes idle, so that its first architecture or model "
                                                   "check does not wait for them (about 2 s)")
    worker_max_jobs: int = Field(0, ge=0, description="a worker process is replaced after this many jobs "
                                                      "(returns all its memory, GPU included); 0: never")
    worker_max_gpu_bytes: int = Field(
        1 << 30, ge=0, description="a worker process whose CUDA caching allocator still holds more than this "
                                   "after a job (memory the job did not give back) is replaced; 0: never")
    webhooks_allow_private: bool = Field(
        False, description="let webhooks call private, loopback, link-local and other non-public "
                           "addresses (off: a webhook cannot be used to reach internal services)")
    webhooks_deliver: bool = Field(True, description="run the webhook deliverer in this process (a "
                                                     "thread of the API; several processes may run one)")
    webhook_max_attempts: int = Field(8, ge=1, description="delivery attempts before a delivery is failed")
    webhook_base_delay_s: float = Field(15.0, gt=0, description="delay before the first retry; doubles "
                                                                "with each attempt, with jitter")
    webhook_max_delay_s: float = Field(3600.0, gt=0, description="cap on the delay between attempts")
    webhook_timeout_s: float = Field(10.0, gt=0, description="time limit of one delivery attempt")
    webhook_poll_s: float = Field(1.0, gt=0, description="how often the deliverer looks for due deliveries")
    webhooks_pause_after: int = Field(5, ge=0, description="a webhook is paused after this many deliveries "
                                                          "in a row ended failed; 0: never")

    run_max_batch_points: int = Field(10_000, ge=1, description="points one POST /v1/runs/{id}/points may carry "
                                                              "(422 above)")
    run_max_points: int = Field(10_000_000, ge=1, description="points one live run may hold (413 beyond)")
    run_gauge_limit: int = Field(50, ge=0, description="active live runs (the most recently updated) that get "
                                                      "per-run gauges on /metrics")
    run_writer_lease_s: float = Field(
        60.0, ge=0, description="a live run's writer (the process whose recorder sends X-Gradhealth-Writer) holds "
                                "it this long after its last point: another process creating the run's name "
                                "meanwhile gets 409 run_in_use (unless ?take_over=true); after it, a restarted "
                                "process re-attaches; 0: no lease")
    run_stale_after_s: float = Field(
        1800.0, ge=0, description="an active live run that stored no new point for this long is stale: it "
                                  "loses its per-run gauges on /metrics (its alerts resolve) and reads "
                                  "\"stale\": true until its next point; 0: never")
    run_retention_s: float = Field(
        0.0, ge=0, description="live runs finished, or left active without a new point, longer ago than this "
                               "are deleted with their points (swept every 5 minutes by the process that "
                               "runs the workers); 0: kept until deleted")

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value.startswith("postgres://"):  # Heroku's spelling; SQLAlchemy reads only postgresql://
            raise ValueError("use postgresql://..., not postgres://...")
        if not value.startswith(DATABASE_SCHEMES):
            scheme = value.partition(":")[0][:20] if ":" in value else "no scheme"
            raise ValueError(f"use sqlite:///PATH or postgresql://USER@HOST/DB (got {scheme!r}; "
                             f"accepted: {', '.join(DATABASE_SCHEMES)})")
        return value

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> Settings:
        for warning, error, below in _ORDERED_THRESHOLDS:
            w, e = getattr(self.thresholds, warning), getattr(self.thresholds, error)
            if (w < e) if below else (w > e):
                first, then = f"GRADHEALTH_THRESHOLDS__{warning.upper()}", f"__{error.upper()}"
                raise ValueError(f"{first} ({w:g}) and {then} ({e:g}) are inverted: the warning must come "
                                 f"before the error, so set the warning {'above' if below else 'below'} it")
        return self

    def sqlite_problem(self) -> str | None:
        """Why the SQLite database's folder cannot be made (created here, as the engine would), or
        None (PostgreSQL, or in memory, or fine)."""
        from pathlib import Path

        from gradhealth.db.urls import sqlite_file

        path = sqlite_file(self.database_url)
        if path is None:
            return None
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return (f"{_env_name(('database_url',), os.environ)}: cannot create the folder of the SQLite "
                    f"database {path}: {exc.strerror or exc}")
        return None

    @field_validator("api_keys")
    @classmethod
    def _keys_well_formed(cls, value: str) -> str:
        entries = [e for e in (e.strip() for e in value.split(",")) if e]
        for entry in entries:
            name, _, digest = entry.partition("=")
            if not name or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"API key entry {entry[:20]!r}... must be name=<64 hex chars of SHA-256> "
                                 "(see `gradhealth hash-key`)")
        # ',' or ' ' (a template that expanded to nothing) would silently turn authentication off:
        # a value that is set must hold at least one key; leave it empty to run without keys.
        if value and not entries:
            raise ValueError(f"GRADHEALTH_API_KEYS is set to {value[:20]!r} but holds no key; leave it "
                             "empty for no keys, or give name=<sha256 hex> entries")
        return value

    @field_validator("report_frame_ancestors")
    @classmethod
    def _ancestor_sources(cls, value: str) -> str:
        # One CSP directive's source list, each source checked whole (apisweep4 D2/D9): a ';' or ','
        # would smuggle in another directive or policy, and a header holds Latin-1 at most.
        sources = value.split()
        bad = [s for s in sources if not _FRAME_SOURCE.fullmatch(s)]
        if bad:
            raise ValueError(f"{bad[0][:60]!r} is not a frame-ancestors source: give space-separated origins "
                             "(https://grafana.example.com, https://*.example.com:3000; an international "
                             "domain in its xn-- form), 'self', or a scheme (https:)")
        return " ".join(sources)

    def key_owners(self) -> dict[str, str]:
        """sha256 hex -> caller name."""
        out: dict[str, str] = {}
        for entry in filter(None, (e.strip() for e in self.api_keys.split(","))):
            name, _, digest = entry.partition("=")
            out[digest] = name
        return out

    def read_limits(self) -> ReadLimits:
        """The log readers' limits, with the configured upload limit as the largest log file (one
        definition of that limit: the setting; the readers' own default is only for direct calls)."""
        from gradhealth.logs.readers.registry import ReadLimits

        return ReadLimits(max_file_bytes=self.max_upload_bytes, max_series=self.log_max_series)

    def unsafe_reason(self, host: str | None = None) -> str | None:
        """Why this configuration must not start, or None."""
        host = host or self.host
        # The parsed key set decides, never the raw string: ',' is not a key.
        if self.key_owners() or self.allow_insecure:
            return None
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            return (f"refusing to bind {host} with API keys off: set GRADHEALTH_API_KEYS "
                    "(see `gradhealth hash-key`) or GRADHEALTH_ALLOW_INSECURE=true")
        return None


def get_settings() -> Settings:
    """Settings read from the environment now; :class:`SettingsInvalid` names every bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsInvalid(describe_errors(exc)) from None
    except SettingsError as exc:  # a nested field given as JSON that does not parse
        raise SettingsInvalid([_settings_error_line(exc)]) from None


def with_overrides(settings: Settings, overrides: dict[str, Any], flags: Mapping[str, str]) -> Settings:
    """``settings`` with command-line ``overrides`` (field -> value); a bad one raises
    :class:`SettingsInvalid` naming its flag (``flags``: field -> ``--port``)."""
    try:
        return Settings(**{**settings.model_dump(), **overrides})
    except ValidationError as exc:
        raise SettingsInvalid(describe_errors(exc, flags=flags)) from None


def _env_name(loc: tuple[Any, ...], environ: Mapping[str, str]) -> str:
    """The environment variable a pydantic error location came from (the nested one where that is
    set, else its top-level field's: ``GRADHEALTH_THRESHOLDS`` given as JSON)."""
    if not loc:
        return "settings"
    upper = {k.upper() for k in environ}
    if str(loc[0]).upper() in _DATABASE_NAMES:  # the alias chosen is the first one set
        return next((n for n in _DATABASE_NAMES if n in upper), _DATABASE_NAMES[0])
    names = [str(p) for p in loc if isinstance(p, str)]
    for n in range(len(names), 0, -1):
        name = "GRADHEALTH_" + "__".join(names[:n]).upper()
        if name in upper:
            return name
    return "GRADHEALTH_" + "__".join(names).upper()


#: Where the database URL is read from, in order (its validation alias).
_DATABASE_NAMES = ("GRADHEALTH_DATABASE_URL", "DATABASE_URL", "DATABASE_URL".lower())
#: Fields whose value is not repeated in a message (a key, a URL with a password).
_SECRET_FIELDS = frozenset({"api_keys", *_DATABASE_NAMES})


def describe_errors(exc: ValidationError, *, flags: Mapping[str, str] | None = None,
                    environ: Mapping[str, str] | None = None) -> list[str]:
    """One line per bad setting: ``GRADHEALTH_PORT: should be a valid integer (got 'abc')``; a
    cross-field problem (no location) is named by its message."""
    env = os.environ if environ is None else environ
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        name = (flags or {}).get(str(loc[0])) if loc else None
        name = name or _env_name(loc, env)
        msg = str(err["msg"])
        if msg.startswith("Value error, "):  # our validators' own words
            msg = msg.removeprefix("Value error, ")
        elif msg.startswith("Input should be "):
            msg = "should be " + msg.removeprefix("Input should be ")
        if loc and str(loc[0]) not in _SECRET_FIELDS and err["type"] != "value_error" and "input" in err:
            shown = repr(err["input"])
            msg += f" (got {shown if len(shown) <= 40 else shown[:39] + '…'})"
        line = f"{name}: {msg}" if loc else msg
        if line not in lines:
            lines.append(line)
    return lines


def _settings_error_line(exc: SettingsError) -> str:
    """pydantic-settings' 'error parsing value for field "thresholds" ...' as a line naming the variable."""
    text = str(exc)
    field = text.split('"')[1] if text.count('"') >= 2 else ""
    name = "GRADHEALTH_" + field.upper() if field else "GRADHEALTH_*"
    return f"{name}: not valid JSON for a nested setting (or set each field: {name}__FIELD=...)"


def _known_names() -> set[str]:
    """Every ``GRADHEALTH_*`` name a setting is read from (nested fields with ``__``)."""
    names: set[str] = set(OTHER_VARIABLES)
    for field, info in Settings.model_fields.items():
        top = "GRADHEALTH_" + field.upper()
        names.add(top)
        model = info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            names.update(f"{top}__{sub.upper()}" for sub in model.model_fields)
    return names


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """A warning line for each ``GRADHEALTH_*`` variable that no setting reads (a misspelling is
    silently ignored otherwise), with the closest known name where there is one."""
    env = os.environ if environ is None else environ
    known = _known_names()
    # compared without the shared prefix, which would make every name look close to every other
    suffixes = sorted(k.removeprefix("GRADHEALTH_") for k in known)
    lines = []
    for key in sorted(env):
        name = key.upper()
        if not name.startswith("GRADHEALTH_") or name in known:
            continue
        close = difflib.get_close_matches(name.removeprefix("GRADHEALTH_"), suffixes, n=1, cutoff=0.75)
        hint = f"; did you mean GRADHEALTH_{close[0]}?" if close else ""
        lines.append(f"{key} is not a setting and is ignored{hint}")
    return lines
