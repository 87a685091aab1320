"""Gradient Health: diagnoses vanishing/exploding gradients and prescribes verified remedies.

The public API (everything else is internal)::

    from gradhealth import check_architecture, check_logs, render, Diagnosis, GradientRecorder

    doc = check_architecture("example:deep_sigmoid_mlp")   # a dict, a YAML/JSON path or text
    doc = check_logs("runs/exp1/metrics.csv")               # a file, run folder or archive
    print(doc.status, [f.code for f in doc.findings])
    print(render(doc, "markdown"))                          # any `gradhealth check --format`

Names are loaded on first use, so ``import gradhealth`` is cheap and never imports torch;
``check_logs`` never does either (``check_architecture`` and ``GradientRecorder`` do).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> the module that defines it (imported on first access, see __getattr__)
_PUBLIC: dict[str, str] = {
    "check_architecture": "gradhealth.library",
    "check_logs": "gradhealth.library",
    "check_keras": "gradhealth.library",
    "check_module": "gradhealth.library",
    "check_onnx": "gradhealth.library",
    "render": "gradhealth.library",
    "Diagnosis": "gradhealth.core.document",
    "GradientRecorder": "gradhealth.recorder",
    "GradHealthError": "gradhealth.errors",
    "SpecError": "gradhealth.errors",
    "LimitExceeded": "gradhealth.errors",
    "InputFormatError": "gradhealth.errors",
    "LogError": "gradhealth.errors",
    "UnknownLogFormat": "gradhealth.errors",
    "UploadTooLarge": "gradhealth.errors",
    "IdempotencyConflict": "gradhealth.errors",
}

__all__ = [  # literal, so linters and type checkers see it; a test keeps it equal to _PUBLIC
    "Diagnosis",
    "GradHealthError",
    "GradientRecorder",
    "IdempotencyConflict",
    "InputFormatError",
    "LimitExceeded",
    "LogError",
    "SpecError",
    "UnknownLogFormat",
    "UploadTooLarge",
    "__version__",
    "check_architecture",
    "check_keras",
    "check_logs",
    "check_module",
    "check_onnx",
    "render",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports on demand
    from gradhealth.core.document import Diagnosis
    from gradhealth.errors import (
        GradHealthError,
        IdempotencyConflict,
        InputFormatError,
        LimitExceeded,
        LogError,
        SpecError,
        UnknownLogFormat,
        UploadTooLarge,
    )
    from gradhealth.library import (
        check_architecture,
        check_keras,
        check_logs,
        check_module,
        check_onnx,
        render,
    )
    from gradhealth.recorder import GradientRecorder


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'gradhealth' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
