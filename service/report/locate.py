"""Where in the user's own file a finding is: spec nodes by JSON pointer, log records by step.

Spec files: a JSON pointer (RFC 6901, e.g. ``/layers/3``) is resolved against the parser's node
positions, never against a re-serialisation, so the line is the one the user wrote.

- YAML goes through ``yaml.compose`` (node marks). Block and flow style both carry start and end
  marks. An alias (``*block``) is reported where the alias is written, while the keys inside it
  resolve to where its anchor defined them; merge keys (``<<: *base``) are followed for keys the
  mapping does not set itself.
- JSON (text starting with ``{`` or ``[``, the same rule the spec loader uses) is walked with the
  standard library's own decoder: every member is skipped with ``raw_decode`` and the wanted one
  entered at its offset, so positions are exact for anything ``json.loads`` accepts (tabs,
  escapes, duplicate keys: the last one wins, as in ``json.loads``).

Logs: text, CSV and JSON Lines are scanned for the first record of a step (and, where the line
names it, of the finding's series). Binary files (TensorBoard event files, archives) have no line.

Lines and columns are 1-based; ``end_column`` is one past the last character (SARIF's convention),
counted in code points.
"""

from __future__ import annotations

import copy
import csv
import io
import itertools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gradhealth.core.pointers import is_json_pointer, parse_pointer, pointer_of

__all__ = ["Span", "locate", "log_step_lines", "parse_pointer", "patch_replacement", "span"]

# Step keys beyond the text reader's; epoch is only a CSV fallback (Keras logs once per epoch).
_EXTRA_STEP_KEYS = ("_step", "Step", "global_step")
_CSV_STEP_COLUMNS = ("step", "_step", "Step", "global_step", "iteration", "iter", "epoch")
_BINARY_PROBE = 8192
# After a line with the step but not the series, look this far ahead for one that has both.
_METRIC_LOOKAHEAD = 2000


@dataclass(frozen=True)
class Span:
    """A node's region in the text: offsets for editing, lines/columns for people and CI."""

    pointer: (
        str  # the pointer actually resolved: the requested one, or its deepest existing ancestor
    )
    requested: str
    start: int
    end: int
    line: int
    column: int
    end_line: int
    end_column: int

    @property
    def exact(self) -> bool:
        """False when only an ancestor of the requested pointer exists in the text."""
        return self.requested == self.pointer


def is_json_text(text: str) -> bool:
    """The spec loader's rule: text that starts with ``{`` (or ``[``) is JSON."""
    return text.lstrip().startswith(("{", "["))


def _position(text: str, offset: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


def _make_span(text: str, tokens: Sequence[str], start: int, end: int, requested: str) -> Span:
    line, column = _position(text, start)
    end_line, end_column = _position(text, end)
    return Span(pointer_of(tokens), requested, start, end, line, column, end_line, end_column)


# --- YAML ----------------------------------------------------------------------------------------


class _Composer(yaml.SafeLoader):
    """``SafeLoader`` whose alias nodes carry the alias's own position (children stay shared)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node: Any = copy.copy(super().compose_node(parent, index))
            node.start_mark, node.end_mark = event.start_mark, event.end_mark
            return node
        return super().compose_node(parent, index)


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _yaml_child(node: yaml.Node, token: str) -> yaml.Node | None:
    entry = _yaml_entry(node, token)
    return None if entry is None else entry[1]


def _yaml_entry(node: yaml.Node, token: str) -> tuple[yaml.Node | None, yaml.Node] | None:
    """(key node, value node) of member ``token`` of a mapping; (None, item) in a sequence."""
    if isinstance(node, yaml.SequenceNode):
        if token.isdigit() and int(token) < len(node.value):
            return None, node.value[int(token)]
        return None
    if not isinstance(node, yaml.MappingNode):
        return None
    merged: list[yaml.Node] = []
    found = None
    for key, value in node.value:
        if key.tag == _MERGE_TAG:
            merged += value.value if isinstance(value, yaml.SequenceNode) else [value]
        elif isinstance(key, yaml.ScalarNode) and key.value == token:
            found = (key, value)  # the last duplicate wins, as in the loader
    if found is not None:
        return found
    for source in merged:  # merge keys: the mapping's own keys first, then each merged one in order
        hit = _yaml_entry(source, token)
        if hit is not None:
            return hit
    return None


def _trim_end(text: str, start: int, end: int) -> int:
    """A block node's end mark is where the next token starts: step back over blank and comment
    lines, and trailing whitespace, to the node's last character."""
    lines = text[start:end].split("\n")
    while len(lines) > 1 and (not lines[-1].strip() or lines[-1].lstrip().startswith("#")):
        lines.pop()
    return start + len("\n".join(lines).rstrip())


def _yaml_span(text: str, tokens: list[str], requested: str, member: bool = False) -> Span | None:
    try:
        loader = _Composer(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.YAMLError:
        return None
    if node is None:
        return None
    resolved: list[str] = []
    key: yaml.Node | None = None
    for token in tokens:
        entry = _yaml_entry(node, token)
        if entry is None:
            break
        (key, node), resolved = entry, [*resolved, token]
    start, end = node.start_mark.index, node.end_mark.index
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and not node.flow_style:
        end = _trim_end(text, start, end)
    if member and key is not None and key.start_mark.index < start:
        start = key.start_mark.index  # the member from its key (a block value starts a line below)
    return _make_span(text, resolved, start, end, requested)


# --- JSON ----------------------------------------------------------------------------------------

_JSON_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _ws(text: str, i: int) -> int:
    m = _JSON_WS.match(text, i)
    return m.end() if m else i


def _json_members(text: str, start: int) -> Iterable[tuple[str, int, int, int]]:
    """(key or index, member start (its key's quote, or the item), value start, value end) of the
    object or array at ``start``."""
    opening = text[start]
    closing = "}" if opening == "{" else "]"
    i = _ws(text, start + 1)
    index = 0
    while i < len(text) and text[i] != closing:
        first = i
        if opening == "{":
            key, i = json.decoder.scanstring(text, i + 1)  # type: ignore[attr-defined]  # the C scanner json itself uses; typeshed omits it
            i = _ws(text, _ws(text, i) + 1)  # past the colon
        else:
            key, index = str(index), index + 1
        _, end = _DECODER.raw_decode(text, i)
        yield key, first, i, end
        i = _ws(text, end)
        if i < len(text) and text[i] == ",":
            i = _ws(text, i + 1)


def _json_span(text: str, tokens: list[str], requested: str, member: bool = False) -> Span | None:
    try:
        start = _ws(text, 0)
        _, end = _DECODER.raw_decode(text, start)
        first = start
        resolved: list[str] = []
        for token in tokens:
            if text[start] not in "{[":
                break
            hit = None
            for key, m, s, e in _json_members(text, start):
                if key == token:
                    hit = (m, s, e)  # keep going: the last duplicate key wins, as in json.loads
            if hit is None:
                break
            (first, start, end), resolved = hit, [*resolved, token]
    except (ValueError, IndexError):
        return None
    return _make_span(text, resolved, first if member else start, end, requested)


def span(text: str, pointer: str, *, member: bool = False) -> Span | None:
    """The region of the node at ``pointer`` in spec ``text`` (JSON or YAML), or of its deepest
    existing ancestor (see :attr:`Span.exact`); None when the text does not parse. ``member``:
    from the key that names the node (``layer:`` of a misspelt key whose block value starts on
    the next line), not the value."""
    if not is_json_pointer(pointer):
        return None  # a model layer's name (``node:``, ``layer:``, ``module:``): no node of any text
    tokens = parse_pointer(pointer)
    if is_json_text(text):
        found = _json_span(text, tokens, pointer, member)
        if found is not None:
            return found
    return _yaml_span(text, tokens, pointer, member)


def locate(text: str, pointer: str, *, member: bool = False) -> tuple[int, int, int] | None:
    """``(line, column, end_line)`` of the node at ``pointer`` (1-based), or None; ``member``:
    of its key (see :func:`span`)."""
    s = span(text, pointer, member=member)
    return None if s is None else (s.line, s.column, s.end_line)


# --- patches as text replacements ----------------------------------------------------------------


def _load(text: str) -> Any:
    return json.loads(text) if is_json_text(text) else yaml.safe_load(text)


def _value_at(data: Any, tokens: Sequence[str]) -> Any:
    for t in tokens:
        data = data[int(t)] if isinstance(data, list) else data[t]
    return data


def _common_prefix(paths: list[list[str]]) -> list[str]:
    prefix = paths[0]
    for p in paths[1:]:
        n = 0
        while n < min(len(prefix), len(p)) and prefix[n] == p[n]:
            n += 1
        prefix = prefix[:n]
    return prefix


def _dump(value: Any, *, as_json: bool, flow: bool, indent: str) -> str:
    if as_json:
        out = (
            json.dumps(value, ensure_ascii=False)
            if flow
            else json.dumps(value, ensure_ascii=False, indent=2)
        )
    elif flow or not isinstance(value, dict | list):
        out = yaml.safe_dump(
            value, default_flow_style=True, sort_keys=False, allow_unicode=True, width=2**31
        )
        out = out.removesuffix("\n").removesuffix("\n...")
    else:
        out = yaml.safe_dump(
            value, default_flow_style=None, sort_keys=False, allow_unicode=True, width=2**31
        ).rstrip("\n")
    return out.replace("\n", "\n" + indent)


def patch_replacement(text: str, patch: list[dict[str, Any]]) -> tuple[Span, str] | None:
    """The smallest region of ``text`` an RFC 6902 ``patch`` changes, and the text to put there.

    The region is the node holding every target of the patch; its replacement is the patched value
    written in the node's own style (flow or block, JSON or YAML) at its indentation. None when that
    is not feasible: a ``move``/``copy``, a target the text does not hold, or a result that, read
    back, is not exactly the patched document.
    """
    import jsonpatch

    targets: list[list[str]] = []
    for op in patch:
        if op.get("op") not in ("add", "replace", "remove", "test") or not is_json_pointer(op.get("path")):
            return None  # a model's patch (``node:...``) edits no text
        tokens = parse_pointer(op["path"])
        targets.append(tokens if op["op"] in ("replace", "test") else tokens[:-1])
    if not targets:
        return None
    prefix = _common_prefix(targets)
    region = span(text, pointer_of(prefix))
    if region is None or not region.exact:
        return None
    try:
        original = _load(text)
        patched = jsonpatch.apply_patch(original, patch)
        value = _value_at(patched, prefix)
    except (
        jsonpatch.JsonPatchException,
        jsonpatch.JsonPointerException,
        KeyError,
        IndexError,
        TypeError,
        ValueError,
        yaml.YAMLError,
    ):
        return None
    line_start = text.rfind("\n", 0, region.start) + 1
    indent = " " * (region.start - line_start)
    flow = region.line == region.end_line or text[region.start] in "{[\"'"
    replacement = _dump(value, as_json=is_json_text(text), flow=flow, indent=indent)
    try:
        if _load(text[: region.start] + replacement + text[region.end :]) != patched:
            return None
    except (ValueError, yaml.YAMLError):
        return None
    return region, replacement


# --- logs ----------------------------------------------------------------------------------------


def _is_binary(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(_BINARY_PROBE)
    if b"\0" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(head) - 4  # a multi-byte character cut by the probe is still text
    return False


def _step_keys() -> set[str]:
    from gradhealth.logs.readers.text import STEP_KEYS  # the text reader's own spelling of "step"

    return set(STEP_KEYS) | set(_EXTRA_STEP_KEYS)


def _same(token: str, step: float) -> bool:
    try:
        return float(token) == step
    except ValueError:
        return False


def _csv_lines(
    f: io.TextIOBase, header: list[str], targets: list[tuple[float, str | None]]
) -> list[int | None]:
    column = next(header.index(c) for c in _CSV_STEP_COLUMNS if c in header)
    found: list[int | None] = [None] * len(targets)
    fallback: list[int | None] = [None] * len(targets)
    reader = csv.reader(f)
    row_start = 2
    for row in reader:
        if column < len(row):
            for k, (step, metric) in enumerate(targets):
                if found[k] is None and _same(row[column], step):
                    has_metric = (
                        metric is None
                        or (
                            metric in header
                            and header.index(metric) < len(row)
                            and row[header.index(metric)] != ""
                        )
                        or metric in row
                    )
                    if has_metric:
                        found[k] = row_start
                    elif fallback[k] is None:
                        fallback[k] = row_start
        if all(x is not None for x in found):
            break
        row_start = reader.line_num + 2  # the header was read before the reader started
    return [a if a is not None else b for a, b in zip(found, fallback, strict=True)]


def log_step_lines(path: Path, targets: list[tuple[float, str | None]]) -> list[int | None]:
    """For each ``(step, series)``, the 1-based line of the first record of that step in the log at
    ``path`` (preferring a line that also names the series); None where there is none, and for
    binary files and folders. One pass over the file for all targets."""
    if not targets or not path.is_file() or _is_binary(path):
        return [None] * len(targets)
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        first = f.readline()
        header = next(csv.reader([first]), [])
        if "," in first and any(c in header for c in _CSV_STEP_COLUMNS):
            return _csv_lines(f, [h.strip() for h in header], targets)
        keys = "|".join(re.escape(k) for k in sorted(_step_keys(), key=len, reverse=True))
        pattern = re.compile(
            rf"(?<![\w./-])[\"']?(?:{keys})[\"']?\s*[:=]\s*(-?[\d.]+(?:[eE][-+]?\d+)?)"
        )
        found: list[int | None] = [None] * len(targets)
        fallback: list[int | None] = [None] * len(targets)
        for number, line in enumerate(itertools.chain([first], f), 1):
            m = pattern.search(line)
            if m is None:
                continue
            for k, (step, metric) in enumerate(targets):
                if found[k] is None and _same(m.group(1), step):
                    if metric is None or metric in line:
                        found[k] = number
                    elif fallback[k] is None:
                        fallback[k] = number
            done = all(
                x is not None or (y is not None and number - y > _METRIC_LOOKAHEAD)
                for x, y in zip(found, fallback, strict=True)
            )
            if done:
                break
    return [a if a is not None else b for a, b in zip(found, fallback, strict=True)]
