"""Builders for the report tests: one real architecture check (seeds 1), one real log check, and
constructed documents for the cases a real check cannot be made to produce on demand."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

import pytest
import yaml

from gradhealth.core.document import Diagnosis, Evidence, Finding, Remedy, Verified, status_of

DATA = Path(__file__).resolve().parents[1] / "data" / "logs"
SPEC_NAME = "deep_sigmoid_mlp"
LOG = DATA / "llmc-gpt2-124m" / "main.log"


def spec_text(name: str = SPEC_NAME) -> str:
    return (resources.files("gradhealth") / "examples" / f"{name}.yaml").read_text()


@cache
def _architecture() -> Diagnosis:
    from gradhealth.analysis.check import CheckOptions, run_architecture_check
    from gradhealth.analysis.plan import Limits
    from gradhealth.analysis.thresholds import Thresholds

    raw = yaml.safe_load(spec_text())
    raw["seeds"] = 1
    return run_architecture_check(raw, CheckOptions(Thresholds(), Limits()))


@cache
def _logs() -> Diagnosis:
    from gradhealth.logs.check import run_log_check

    return run_log_check(LOG)


@pytest.fixture
def arch_doc() -> Diagnosis:
    """The diagnosis of the deep sigmoid MLP example (vanishing gradient, verified remedies)."""
    return _architecture().model_copy(deep=True)


@pytest.fixture
def log_doc() -> Diagnosis:
    """The diagnosis of llm.c's GPT-2 124M log (gradient spikes)."""
    return _logs().model_copy(deep=True)


def finding(
    code: str,
    severity: str,
    summary: str = "",
    *,
    layers: list[str] | None = None,
    steps: list[int] | None = None,
    metric: str | None = None,
    remedies: list[Remedy] | None = None,
) -> Finding:
    """A finding with just what the renderers read."""
    return Finding(
        code=code,
        severity=severity,
        summary=summary or f"{code} ({severity})",  # type: ignore[arg-type]
        explanation=f"why {code}",
        evidence=Evidence(metric=metric, layers=layers, steps=steps),
        remedies=remedies or [],
    )


def remedy(rid: str, *, fixed: bool = True, patch: list | None = None) -> Remedy:
    return Remedy(
        id=rid,
        title=rid,
        rationale="because",
        change=f"apply {rid}",
        snippet=f"do_{rid}()",
        patch=patch or [],
        verified=Verified(metric="ratio", before=1e-6, after=0.5, fixed=fixed),
    )


def document(findings: list[Finding], kind: str = "architecture", **extra) -> Diagnosis:
    return Diagnosis(
        kind=kind,
        status=status_of(findings),
        summary="constructed",
        findings=findings,  # type: ignore[arg-type]
        **extra,
    )
