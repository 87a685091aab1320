"""One strict reading of JSON text sent to the API: request bodies (``POST /v1/webhooks``,
``POST /v1/runs`` ...) and JSON-valued options (a model check's ``input_shapes``, ``optimizer``).

Python's ``json`` keeps the last of two equal keys silently, so ``{"url": A, "url": B}`` registered
B and a model's ``input_shapes`` with ``"x"`` twice checked the shape the user did not mean
(errsweep6 H7). The spec door refuses a repeated key (``analysis.spec``); the API's other JSON doors
refuse it here, through :func:`gradhealth.core.strict_json.strict_loads`, naming the key and its JSON
pointer. A JSON body's door also answers 415 for a body that is not JSON by its ``Content-Type``
(H10), as the spec door does, rather than FastAPI's "/: Input should be a valid dictionary".

The check is a dependency (:data:`JsonBodyDep`) on the routes whose body is a pydantic model:
FastAPI still parses and validates the body from the model, so the OpenAPI document is unchanged.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gradhealth.api.deps import CallerDep
from gradhealth.api.problems import ApiError
from gradhealth.core.strict_json import DuplicateKey, strict_loads
from gradhealth.errors import Problem as Located

__all__ = ["DuplicateKey", "JsonBodyDep", "is_json_type", "refusal", "strict_json_body", "strict_loads"]


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
