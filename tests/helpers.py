"""Shared builders for the tests: bundled example specs and plain MLP specs.

Test modules import builders from helper modules like this one; conftest.py files hold only
fixtures and the set-up pytest runs for their folder.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import yaml


def example(name: str) -> dict[str, Any]:
    """A bundled example spec as a fresh dict."""
    text = (resources.files("gradhealth") / "examples" / f"{name}.yaml").read_text()
    return yaml.safe_load(text)


def mlp(depth: int, width: int = 128, activation: str = "relu", init: Any = "kaiming_normal",
        **extra: Any) -> dict[str, Any]:
    """A spec for a plain MLP with a readout."""
    layer = {"type": "linear", "out_features": width, "activation": activation, "init": init,
             "bias_init": "zeros", "repeat": depth}
    layer.update(extra)
    return {"input": {"shape": [width]}, "batch_size": 64, "seeds": 2,
            "layers": [layer, {"type": "linear", "out_features": 10}]}


def parse_sse(body: str) -> list[dict[str, Any]]:
    """Each event as {id, event, data}; comment lines (keep-alives) skipped."""
    out = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if fields:
            out.append({"id": int(fields["id"]) if "id" in fields else None, "event": fields["event"],
                        "data": json.loads(fields["data"])})
    return out
