"""JSON pointers (RFC 6901), as every error and patch here names a place in a document, and where
JSON text nests too deep, found without parsing it: one pass over its tokens that builds nothing, so
no depth can exhaust the stack (the spec door and the CLI's ``--baseline`` both refuse a document
past their depth limit with a pointer to the place)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any


def escape(token: Any) -> str:
    """One reference token of a pointer: ``a/b`` -> ``a~1b``, ``~`` -> ``~0``."""
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer_of(tokens: Iterable[Any]) -> str:
    """The pointer of a path of keys and indices: ``("layers", 0, "a/b")`` -> ``/layers/0/a~1b``."""
    return "".join("/" + escape(t) for t in tokens)


def is_json_pointer(pointer: str | None) -> bool:
    """Whether ``pointer`` is an RFC 6901 pointer into a document (``/layers/0``, ``""``), not a
    layer's name in a model the diagnosis did not read from text: an ONNX node's ``node:/net/Gemm``,
    a Keras layer's ``layer:dense``, a live module's ``module:net.0``."""
    return pointer is not None and (pointer in ("", "#") or pointer.startswith("/"))


def parse_pointer(pointer: str) -> list[str]:
    """RFC 6901 reference tokens: ``/a~1b/0`` -> ``["a/b", "0"]``; ``""`` is the whole document."""
    if pointer in ("", "#"):
        return []
    if not pointer.startswith("/"):
        raise ValueError(f"a JSON pointer starts with '/' (got {pointer!r})")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]

#: JSON text's tokens, as far as finding a container's place needs: a string, a bracket or ``,``.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},]')


def too_deep_path(text: str, limit: int) -> tuple[Any, ...] | None:
    """The keys and indices down to where JSON ``text`` first opens a container past ``limit``
    levels, or None where it does not (or is not JSON). Keys and indices are tracked through
    objects and arrays as the tokens go by."""
    path: list[Any] = []  # per open container: its current key (object) or index (array)
    arrays: list[bool] = []  # per open container: whether it is an array
    want_key = False  # the next string in the innermost object is a key
    for m in _JSON_TOKEN.finditer(text):
        token = m.group()
        if token in "[{":
            if len(arrays) >= limit:
                return tuple(path)
            arrays.append(token == "[")
            path.append(0 if token == "[" else "")
            want_key = token == "{"
        elif token in "]}":
            if arrays:
                arrays.pop()
                path.pop()
            want_key = False
        elif token == ",":
            if arrays and arrays[-1]:
                path[-1] += 1
            want_key = bool(arrays) and not arrays[-1]
        elif want_key:
            try:
                path[-1] = json.loads(token)
            except ValueError:
                path[-1] = token[1:-1]
            want_key = False
    return None
