"""Reports of a diagnosis document in the formats people and CI systems read."""

from __future__ import annotations

from gradhealth.report.text import render_text

__all__ = ["render_text"]
