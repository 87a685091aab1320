"""Walking a Keras model config: every dict in its tree of lists and dicts, to a bounded depth.

A model config nests layers in models (``Sequential``, ``Functional``), in wrappers
(``Bidirectional``, ``TimeDistributed``) and in a layer's own fields; the importers that rewrite
one kind of layer (Keras 1 fields, CuDNN layers, TensorFlow ops) find them all the same way. The
depth bound keeps a hostile file's nesting from exhausting the stack (a real model nests a few levels).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["MAX_DEPTH", "dicts", "rewritten"]

#: Lists and dicts deeper than this are not looked into.
MAX_DEPTH = 64


def dicts(value: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    """Every dict in ``value``, each before the dicts it holds (pre-order), to :data:`MAX_DEPTH`."""
    if depth > MAX_DEPTH:
        return
    if isinstance(value, list):
        for v in value:
            yield from dicts(v, depth + 1)
    elif isinstance(value, dict):
        yield value
        for v in value.values():
            yield from dicts(v, depth + 1)


def rewritten(model: Any, match: Callable[[dict[str, Any]], bool], visit: Callable[[dict[str, Any]], None]) -> Any:
    """``model`` with ``visit`` applied in place to each dict ``match`` picks, on a deep copy;
    ``model`` itself where nothing matches (the common file pays one walk, no copy).

    The matches are found before any is visited, so a visit's own changes are not walked."""
    if not any(match(d) for d in dicts(model)):
        return model
    out = copy.deepcopy(model)
    for d in [d for d in dicts(out) if match(d)]:
        visit(d)
    return out
