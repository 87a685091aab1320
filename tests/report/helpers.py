"""Builders for the report tests: paths to the real inputs, and constructed documents for the
cases a real check cannot be made to produce on demand (the fixtures are in conftest.py)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from gradhealth.core.document import Diagnosis, Evidence, Finding, Remedy, Verified, status_of

DATA = Path(__file__).resolve().parents[1] / "data" / "logs"
SPEC_NAME = "deep_sigmoid_mlp"
LOG = DATA / "llmc-gpt2-124m" / "main.log"


def spec_text(name: str = SPEC_NAME) -> str:
    return (resources.files("gradhealth") / "examples" / f"{name}.yaml").read_text()


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
