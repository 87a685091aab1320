"""Importers: a user's model file -> the common graph form (:mod:`gradhealth.analysis.graph`)."""

from __future__ import annotations

from gradhealth.core.words import first_few
from gradhealth.errors import GradHealthError


class ModelError(GradHealthError):
    """A model file that parsed but cannot be checked (unsupported op, external data, a dynamic
    dimension without a size); nothing from it was run."""

    status = 422
    code = "invalid_model"
    title = "Model cannot be checked"


def name_layers(layers: list[tuple[str, str]], each: int = 3, why: dict[str, str] | None = None) -> str:
    """``(class, name)`` pairs as one readable list, grouped by class in order of appearance:
    ``Lambda (my_lambda), CustomScaleLayer x40 (custom_scale_layer, ..._1, ..._2 and 37 more)``.
    A large model names each unsupported class once, not every one of its hundreds of layers.
    ``why``: the reason a class is refused, after its group."""
    groups: dict[str, list[str]] = {}
    for cls, name in layers:
        groups.setdefault(cls, []).append(name)
    parts = []
    for cls, names in groups.items():
        shown = first_few(names, each)
        parts.append((f"{cls} ({shown})" if len(names) == 1 else f"{cls} x{len(names)} ({shown})")
                     + (f": {why[cls]}" if why and cls in why else ""))
    return ", ".join(parts)
