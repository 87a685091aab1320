"""Settings from the environment (prefix ``GRADHEALTH_``), documented field by field.

Nested fields use ``__``: ``GRADHEALTH_THRESHOLDS__VANISHING_WARNING=1e-3``,
``GRADHEALTH_LIMITS__MAX_PARAMETERS=50000000``.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.analysis.plan import Limits
from service.analysis.thresholds import Thresholds


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRADHEALTH_", env_nested_delimiter="__", extra="ignore")

    thresholds: Thresholds = Field(default_factory=Thresholds, description="when a figure becomes a finding")
    limits: Limits = Field(default_factory=Limits, description="resource limits checked before simulating")
    verify_remedies: bool = Field(True, description="re-simulate every remedy that changes the spec")


def get_settings() -> Settings:
    """Settings read from the environment now."""
    return Settings()
