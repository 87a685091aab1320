"""One strict reading of JSON text sent to the API: request bodies (``POST /v1/webhooks``,
``POST /v1/runs`` ...) and JSON-valued options (a model check's ``input_shapes``, ``optimizer``).

Python's ``json`` keeps the last of two equal keys silently, so ``{"url": A, "url": B}`` registered
B and a model's ``input_shapes`` with ``"x"`` twice checked the shape the user did not mean
(errsweep6 H7). The spec door refuses a repeated key (``analysis.spec``); every other JSON door
refuses it here, naming the key and its JSON pointer. A JSON body's door also answers 415 for a
body that is not JSON by its ``Content-Type`` (H10), as the spec door does, rather than FastAPI's
"/: Input should be a valid dictionary".

The check is a dependency (:data:`JsonBodyDep`) on the routes whose body is a pydantic model:
FastAPI still parses and validates the body from the model, so the OpenAPI document is unchanged.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Request

from gradhealth.api.deps import CallerDep
from gradhealth.api.problems import ApiError
from gradhealth.errors import Problem as Located


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


def strict_loads(text: str | bytes) -> Any:
    """``json.loads(text)``, but :class:`DuplicateKey` (a ``ValueError``) where an object names a
    key twice; every other error is ``json.loads``' own."""
    document = json.loads(text, object_pairs_hook=_pairs)
    repeat = _first_repeat(document)
    if repeat is not None:
        raise repeat
    return document


def refusal(repeat: DuplicateKey) -> ApiError:
    """The 422 for a request body that repeats a key, located at the repeated member."""
    error = ApiError(422, "invalid_request", str(repeat))
    error.problems = [Located(repeat.pointer, repeat.why)]
    return error


def is_json_type(content_type: str) -> bool:
    """Whether a ``Content-Type`` header names JSON (``application/json`` or ``+json``), as FastAPI
    decides when it reads a body."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def strict_json_body(request: Request, caller: CallerDep) -> None:
    """The JSON-body doors' checks, after the caller's (a 401 stays a 401): 415 for a body whose
    ``Content-Type`` is not JSON, 422 naming a key an object repeats. FastAPI has read the body
    already (:meth:`Request.body` returns it again) and validates it from the route's model after."""
    del caller  # only its order: authenticated first
    body = await request.body()
    if not body:
        return  # FastAPI answers a missing body itself ("/: Field required")
    content_type = request.headers.get("content-type", "")
    if not is_json_type(content_type):
        media = content_type.split(";", 1)[0].strip().lower()
        raise ApiError(415, "unsupported_media_type",
                       f"send the body as application/json, not {media[:60] or 'no type'}")
    try:
        strict_loads(body)
    except DuplicateKey as repeat:
        raise refusal(repeat) from None
    except (ValueError, RecursionError):
        return  # not JSON: FastAPI has already said so (json_invalid), or says it next


JsonBodyDep = Annotated[None, Depends(strict_json_body)]
