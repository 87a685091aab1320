"""Settings from the environment (prefix ``GRADHEALTH_``), documented field by field.

Nested fields use ``__``: ``GRADHEALTH_THRESHOLDS__VANISHING_WARNING=1e-3``,
``GRADHEALTH_LIMITS__MAX_PARAMETERS=50000000``. ``DATABASE_URL`` is read without the prefix too,
as most deployment tools set it.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import TYPE_CHECKING

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gradhealth.analysis.plan import Limits
from gradhealth.analysis.thresholds import Thresholds
from gradhealth.logs.thresholds import LogThresholds

if TYPE_CHECKING:
    from gradhealth.logs.readers.registry import ReadLimits


def hash_key(key: str) -> str:
    """How API keys are stored: the hex SHA-256 of the key (keys are long random strings, so a
    fast hash is enough; what matters is that the settings never hold a usable key)."""
    return hashlib.sha256(key.encode()).hexdigest()


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
    max_attempts: int = Field(3, ge=1, description="attempts before a job whose worker keeps dying is failed")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="request body limit (413 above)")
    max_upload_bytes: int = Field(512 * 2**20, ge=1024,
                                  description="log upload limit (413 above), and the size of one log file read")
    log_max_series: int = Field(10_000, ge=1,
                                description="series (columns, metric names) one log may hold; a log with more "
                                            "is refused (413) as it is read, a wide CSV from its header")
    upload_dir: str = Field("./data/uploads", description="where uploaded logs are kept (shared by API and workers)")
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
    """Settings read from the environment now."""
    return Settings()
