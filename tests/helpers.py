"""Shared builders for the tests: bundled example specs and plain MLP specs.

Test modules import builders from helper modules like this one; conftest.py files hold only
fixtures and the set-up pytest runs for their folder.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
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


def migrations_at(tmp_path: Any, revision: str) -> tuple[Any, Any]:
    """(alembic config, engine) of a fresh SQLite database in ``tmp_path`` upgraded to
    ``revision``: for a test that stores a row the way an older version did, then upgrades to
    ``head`` (and back) through the project's own migrations. Dispose of the engine after."""
    from pathlib import Path

    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    import gradhealth.db

    url = f"sqlite:///{tmp_path}/upgrade.db"
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(gradhealth.db.__file__).with_name("migrations")))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, revision)
    return cfg, sa.create_engine(url)


def small_keras_config(name: str | None) -> dict:
    """A Keras Sequential's model config (16 -> 8 relu -> 3 softmax), named ``name`` or unnamed: what
    a model's own name versus its file's name is tested with."""
    config: dict = {"layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 16], "name": "input_1"}},
        {"class_name": "Dense", "config": {"name": "d1", "units": 8, "activation": "relu"}},
        {"class_name": "Dense", "config": {"name": "out", "units": 3, "activation": "softmax"}}]}
    if name is not None:
        config["name"] = name
    return {"class_name": "Sequential", "config": config}


def aged_upload(folder: Any, name: str, *, age_s: float = 0) -> Any:
    """An uploaded log in the folder ``name`` under ``folder`` (a pathlib.Path), its file and folder
    ``age_s`` seconds old: what the upload retention sweep judges by."""
    import os
    import time

    path = folder / name / "run.csv"
    path.parent.mkdir(parents=True)
    path.write_text("step,loss\n0,1\n")
    if age_s:
        then = time.time() - age_s
        for p in (path, path.parent):
            os.utime(p, (then, then))
    return path


ROOT = Path(__file__).resolve().parents[1]
#: The documentation's files: the entry page, then each page of docs/.
DOCUMENTATION_FILES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
_HEADING = re.compile(r"^(#{1,6}) (.+?)\s*$", re.MULTILINE)


def documentation() -> str:
    """README.md and every docs/*.md page, one after another (each page starts with its # title)."""
    return "\n".join(path.read_text(encoding="utf-8") for path in DOCUMENTATION_FILES)


def doc_section(title: str, text: str | None = None, *, subsections: bool = False) -> str:
    """The documentation's text under the heading ``title`` (of any level, in any page; a ``#`` line
    inside a code block is no heading) up to the next heading of any level, or with ``subsections``
    up to the next one of its level or above."""
    text = documentation() if text is None else text
    fences = [m.span() for m in re.finditer(r"^```.*?^```", text, re.MULTILINE | re.DOTALL)]
    headings = [h for h in _HEADING.finditer(text) if not any(a <= h.start() < b for a, b in fences)]
    for i, h in enumerate(headings):
        if h.group(2) == title:
            level = len(h.group(1))
            end = next((n.start() for n in headings[i + 1:]
                        if not subsections or len(n.group(1)) <= level), len(text))
            return text[h.end():end]
    raise AssertionError(f"the documentation has no section {title!r}")
