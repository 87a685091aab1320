"""The kinds of job a worker can run, each a function ``(request, progress) -> result document``.

Heavy imports (torch) happen inside the handlers, in the worker process only: the API process
never imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Progress = Callable[[float, str], None]
Handler = Callable[[Any, Progress], dict[str, Any]]


def run_architecture(request: Any, progress: Progress) -> dict[str, Any]:
    """The architecture check of a spec (the decoded JSON/YAML body)."""
    from gradhealth.analysis.check import CheckOptions, run_architecture_check
    from gradhealth.settings import get_settings

    settings = get_settings()
    options = CheckOptions(settings.thresholds, settings.limits, verify=settings.verify_remedies)
    return run_architecture_check(request, options, progress).model_dump(mode="json")


def run_logs(request: Any, progress: Progress) -> dict[str, Any]:
    """The log check of an uploaded file (``request``: path, format hint, original filename)."""
    from pathlib import Path

    from gradhealth.logs.check import run_log_check
    from gradhealth.settings import get_settings

    settings = get_settings()
    doc = run_log_check(Path(request["path"]), format=request.get("format"),
                        thresholds=settings.log_thresholds, progress=progress)
    doc.name = request.get("filename") or doc.name
    return doc.model_dump(mode="json")


HANDLERS: dict[str, Handler] = {"architecture": run_architecture, "logs": run_logs}
KINDS: tuple[str, ...] = tuple(HANDLERS)
