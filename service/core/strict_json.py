"""Strict JSON decoding: Python's ``json`` keeps the last of two equal keys silently, so a document
naming a key twice would be read at a value its writer did not mean. :func:`strict_loads` refuses
it with the repeated member's JSON pointer. Used by every JSON door that is not the spec's (which
reads YAML too and refuses repeats in its own loader): the API's request bodies and JSON-valued
options, and the Keras importer's configs."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any


def json_depth(text: bytes) -> int:
    """How deep the brackets of JSON ``text`` nest (strings passed over), counted without parsing:
    the depth of a document too deep to parse (Python's decoder recurses once per level, and past
    about a thousand it fails with "maximum recursion depth exceeded"), checked before parsing."""
    depth = deepest = 0
    for m in _JSON_TOKEN.finditer(text):
        tok = m.group()
        if tok in (b"{", b"["):
            depth += 1
            deepest = max(deepest, depth)
        elif tok in (b"}", b"]"):
            depth -= 1
    return deepest


_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]')


class DuplicateKey(ValueError):
    """A JSON object names ``key`` twice; ``pointer`` is the JSON pointer of that member."""

    def __init__(self, key: str, pointer: str) -> None:
        shown = key if len(key) <= 60 else key[:60] + "..."
        where = pointer if len(pointer) <= 200 else pointer[:200] + "..."
        self.why = f"the key {shown!r} appears twice in one object; name each field once"
        super().__init__(f"{where or '/'}: {self.why}")
        self.key = key
        self.pointer = pointer


class _Repeated(dict[str, Any]):
    """A decoded object that named ``repeated`` twice (the last value kept, as ``json`` does)."""

    repeated: str = ""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``' object hook: the object, marked where it names a key twice (found and
    placed by :func:`_first_repeat` once the document is read, so the error can carry the path)."""
    value = dict(pairs)
    if len(value) == len(pairs):
        return value
    marked = _Repeated(value)
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            marked.repeated = key
            break
        seen.add(key)
    return marked


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")  # RFC 6901


def _first_repeat(document: Any) -> DuplicateKey | None:
    """The first object (depth first, in document order) that names a key twice, as an error with
    its pointer; None when there is none. Iterative: the document may be as deep as json allows."""
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        pointer, value = stack.pop()
        if isinstance(value, _Repeated):
            return DuplicateKey(value.repeated, f"{pointer}/{_escape(value.repeated)}")
        if isinstance(value, dict):
            stack.extend((f"{pointer}/{_escape(k)}", v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{pointer}/{i}", v) for i, v in reversed(list(enumerate(value))))
    return None


class _Seen(Exception):
    """Raised by the quick pass's hook at the first object that names a key twice."""


def _refuse_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        raise _Seen
    return value


#: One decoder for the quick pass (``json.loads`` with a hook builds a decoder per call: a JSON
#: Lines log of a million records pays that a million times)
_QUICK = json.JSONDecoder(object_pairs_hook=_refuse_repeats)


def strict_loads(text: str | bytes, parse_int: Callable[[str], Any] | None = None) -> Any:
    """``json.loads(text)`` (with ``parse_int``, as json's), but :class:`DuplicateKey` (a
    ``ValueError``) where an object names a key twice; every other error is ``json.loads``' own."""
    if parse_int is None and isinstance(text, str):
        try:
            return _QUICK.decode(text)
        except _Seen:
            pass  # read again below, for the repeat's pointer
    pairs, marked = _marking_hook()
    return _raise_first_repeat(json.loads(text, object_pairs_hook=pairs, parse_int=parse_int), marked)


def _marking_hook() -> tuple[Callable[[list[tuple[str, Any]]], dict[str, Any]], list[dict[str, Any]]]:
    """An ``object_pairs_hook`` and the list it appends each object naming a key twice to."""
    marked: list[dict[str, Any]] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        value = _pairs(items)
        if isinstance(value, _Repeated):
            marked.append(value)
        return value

    return pairs, marked


def _raise_first_repeat(document: Any, marked: list[dict[str, Any]]) -> Any:
    """``document``, or :class:`DuplicateKey` for its first repeat where the hook marked one: the
    document is walked for the repeat's pointer only then (a Keras config of megabytes names no key
    twice and is not walked at all)."""
    repeat = _first_repeat(document) if marked else None
    if repeat is not None:
        raise repeat
    return document


def strict_decode(text: str, decoder: json.JSONDecoder) -> Any:
    """:func:`strict_loads` with ``decoder``'s own number and constant parsers (a reader's or the
    live-run door's decoder, which marks numbers of its own): :class:`DuplicateKey` where an object
    names a key twice, as every JSON door refuses one."""
    pairs, marked = _marking_hook()
    strict = json.JSONDecoder(object_pairs_hook=pairs, parse_float=decoder.parse_float,
                              parse_int=decoder.parse_int, parse_constant=decoder.parse_constant,
                              strict=decoder.strict)
    return _raise_first_repeat(strict.decode(text), marked)
