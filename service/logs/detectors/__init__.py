"""Series -> findings over time, in the same vocabulary as the architecture check.

One detector per finding code, registered on its code's rule (``@detects(code)``), one module per
concept. Every finding's evidence carries ``metric`` (the series as the log names it), ``steps``
(``[first, last]`` in the log's own step unit) and ``layers`` where layers are involved, plus the key
numbers. Remedies take their parameters from the data (:mod:`gradhealth.logs.remedies`).
"""

from __future__ import annotations

from gradhealth.core.rules import Detector, rules

# Importing the modules registers their detectors on the rules.
from gradhealth.logs.detectors import (  # noqa: F401
    chance,
    clipping,
    coverage,
    divergence,
    explosion,
    gan,
    layers,
    nonfinite,
    oscillation,
    plateau,
    rl,
    updates,
    validation,
)

#: The log check's detectors, in registry order (the order findings of equal severity are listed).
DETECTORS: tuple[Detector, ...] = tuple(r.detector for r in rules() if r.detector is not None)
