"""/v1/webhooks: URLs your key's jobs and live runs call, signed, when something happens; their
delivery log; a test ping. Each webhook belongs to the key that created it (404 for anyone else)."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from gradhealth.api.bodies import JsonBodyDep
from gradhealth.api.deps import CallerDep, SessionDep, SettingsDep
from gradhealth.api.problems import ApiError, bad_cursor, echo_id
from gradhealth.api.schemas import RATE_LIMITED, Problem
from gradhealth.db.models import WebhookDeliveryRow, WebhookRow
from gradhealth.errors import Problem as Located
from gradhealth.webhooks import outbox, registry
from gradhealth.webhooks.addresses import MAX_URL_CHARS, UrlRefused, check_registration

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=RATE_LIMITED)

Event = Literal["job.finished", "run.error_finding"]  # outbox.EVENTS, as the schema's enum
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "no such webhook (or not yours)"}}


#: A secret without control characters (C0, DEL, C1): a NUL or a newline in it is a paste gone wrong,
#: and one that a receiver's configuration file or header cannot hold as typed.
SECRET_PATTERN = "^[^\\x00-\\x1f\\x7f-\\x9f]*$"


def _printable(value: str) -> str:
    bad = next((c for c in value if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        raise ValueError(f"the secret holds control characters ({bad!r} at {value.index(bad)}); use "
                         "printable characters only")
    return value


def _printable_schema(schema: dict[str, Any]) -> None:
    """The rule :func:`_printable` checks, for the schema's readers (clients, fuzzers)."""
    target = next((o for o in schema.get("anyOf", []) if o.get("type") == "string"), schema)
    target["pattern"] = SECRET_PATTERN


#: The length bounds sit on the string itself, before the printable check: on the field, after an
#: AfterValidator, pydantic said "Value should have at most 255 items after validation" of a string
#: (errsweep6); now "String should have at most 255 characters".
Secret = Annotated[str, StringConstraints(min_length=16, max_length=255), AfterValidator(_printable)]


class WebhookCreate(BaseModel):
    """A webhook to register. Any other field is refused (422), as on PATCH."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=MAX_URL_CHARS, description="http or https URL without user name or password; "
                     "a private, loopback or other non-public address is refused unless the service "
                     "allows them (GRADHEALTH_WEBHOOKS_ALLOW_PRIVATE)")
    events: list[Event] = Field(list(get_args(Event)), min_length=1,  # pydantic copies it per request
                                description="the events to send (default: all)")
    secret: Secret | None = Field(None, json_schema_extra=_printable_schema,
                                  description="the HMAC-SHA256 signing secret, without control characters; "
                                              "when absent one is generated and returned once, in this "
                                              "response only")


def _not_null(schema: dict[str, Any]) -> None:
    """A field's JSON schema without its ``null`` alternative and ``null`` default."""
    options = [o for o in schema.pop("anyOf", []) if o.get("type") != "null"]
    if len(options) == 1:
        schema.update(options[0])
    schema.pop("default", None)


def _not_null_printable(schema: dict[str, Any]) -> None:
    _not_null(schema)
    _printable_schema(schema)


class WebhookPatch(BaseModel):
    """The fields to change; those absent stay as they are. Any other field is refused (422)."""

    model_config = ConfigDict(extra="forbid")

    # Absent fields are None; a null sent is refused (422 at its pointer), so the schema offers none.
    url: str | None = Field(None, max_length=MAX_URL_CHARS, json_schema_extra=_not_null,
                            description="a new URL, checked as at registration")
    events: list[Event] | None = Field(None, min_length=1, json_schema_extra=_not_null,
                                       description="the events to send from now on")
    active: bool | None = Field(None, json_schema_extra=_not_null,
                                description="false pauses the webhook (its pending deliveries are cancelled, "
                                            "no new ones are queued); true resumes it and clears "
                                            "`disabled_reason`")
    secret: Secret | None = Field(None, json_schema_extra=_not_null_printable,
                                  description="a new signing secret of your choosing, without control "
                                              "characters")
    rotate_secret: bool = Field(False, description="generate a new signing secret, returned once, in this "
                                                   "response only (not with `secret`)")


class WebhookLinks(BaseModel):
    self: str
    deliveries: str


class WebhookRead(BaseModel):
    """A registered webhook (its secret is never shown again after creation)."""

    id: str
    url: str
    events: list[str]
    active: bool = Field(description="false: paused (by PATCH, or by the service after deliveries kept failing)")
    disabled_reason: str | None = Field(None, description="why it is paused (null while active)")
    disabled_at: datetime | None = Field(None, description="when it was paused (null while active)")
    created_at: datetime
    links: WebhookLinks


class WebhookCreated(WebhookRead):
    secret: str = Field(description="the signing secret: store it now, it is not shown again")


class WebhookUpdated(WebhookRead):
    secret: str | None = Field(None, description="the new signing secret when `rotate_secret` asked for one "
                                                 "(store it now, it is not shown again); else null")


class WebhookList(BaseModel):
    items: list[WebhookRead]


class DeliveryRead(BaseModel):
    """One event sent (or being sent) to a webhook, with its attempts."""

    id: str = Field(description="also the X-Gradhealth-Delivery header and the body's `id`")
    event: str
    status: Literal["pending", "delivered", "failed", "cancelled"] = Field(
        description="`cancelled`: its webhook was paused before it was delivered")
    attempts: int = Field(description="attempts made so far")
    next_attempt_at: datetime | None = Field(description="when the next attempt is due (pending only)")
    last_status: int | None = Field(description="the HTTP status of the last attempt, if one answered")
    last_error: str | None = Field(description="why the last attempt did not deliver")
    created_at: datetime
    delivered_at: datetime | None
    payload: Any = Field(description="the event's data (the body's `data`)")


class DeliveryPage(BaseModel):
    items: list[DeliveryRead]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last")


def _read(row: WebhookRow) -> dict[str, Any]:
    return dict(id=row.id, url=row.url, events=list(row.events or []), active=row.active,
                disabled_reason=row.disabled_reason, disabled_at=registry.as_utc(row.disabled_at),
                created_at=registry.as_utc(row.created_at),
                links=WebhookLinks(self=f"/v1/webhooks/{row.id}", deliveries=f"/v1/webhooks/{row.id}/deliveries"))


def _delivery(row: WebhookDeliveryRow) -> DeliveryRead:
    return DeliveryRead(id=row.id, event=row.event, status=row.status, attempts=row.attempts,
                        next_attempt_at=registry.as_utc(row.next_attempt_at), last_status=row.last_status,
                        last_error=row.last_error, created_at=registry.as_utc(row.created_at),
                        delivered_at=registry.as_utc(row.delivered_at), payload=row.payload)


def _refuse(status: int, code: str, pointer: str, why: str) -> ApiError:
    error = ApiError(status, code, f"{pointer}: {why}")
    error.problems = [Located(pointer, why)]
    return error


def _check_url(url: str, request: Request, settings: Any) -> None:
    """The registration check of a webhook's URL (422 at ``/url``)."""
    try:
        check_registration(url, allow_private=settings.webhooks_allow_private,
                           resolve=getattr(request.app.state, "webhook_resolve", None))
    except UrlRefused as refused:
        raise _refuse(422, "invalid_webhook_url", "/url", str(refused)) from None


def _load(session: Any, webhook_id: str, owner: str) -> WebhookRow:
    row = registry.get(session, webhook_id, owner)
    if row is None:
        raise ApiError(404, "webhook_not_found", f"no webhook {echo_id(webhook_id)}")
    return row


@router.post("", status_code=201, response_model=WebhookCreated, summary="Register a webhook",
             responses={409: {"model": Problem, "description": "this key holds the most webhooks allowed"},
                        422: {"model": Problem, "description": "a bad URL (pointer `/url`) or event"}})
def create_webhook(body: WebhookCreate, request: Request, response: Response, session: SessionDep,
                   caller: CallerDep, settings: SettingsDep, _json: JsonBodyDep) -> WebhookCreated:
    """The response holds the signing secret, the only time it is shown."""
    _check_url(body.url, request, settings)
    if registry.count(session, caller.name) >= registry.MAX_PER_OWNER:
        raise ApiError(409, "too_many_webhooks", f"this key holds {registry.MAX_PER_OWNER} webhooks, the most "
                       "allowed; delete one first")
    secret = body.secret or registry.new_secret()
    events = list(dict.fromkeys(body.events))  # in order, once each
    row = registry.create(session, owner=caller.name, url=body.url, events=events, secret=secret)
    response.headers["Location"] = f"/v1/webhooks/{row.id}"
    return WebhookCreated(**_read(row), secret=secret)


@router.get("", response_model=WebhookList, summary="Your webhooks")
def list_webhooks(session: SessionDep, caller: CallerDep) -> WebhookList:
    return WebhookList(items=[WebhookRead(**_read(r)) for r in registry.list_for(session, caller.name)])


@router.get("/{webhook_id}", response_model=WebhookRead, responses=NOT_FOUND, summary="A webhook")
def read_webhook(webhook_id: str, session: SessionDep, caller: CallerDep) -> WebhookRead:
    return WebhookRead(**_read(_load(session, webhook_id, caller.name)))


@router.patch("/{webhook_id}", response_model=WebhookUpdated, summary="Change, pause, resume a webhook or "
              "rotate its secret", responses={**NOT_FOUND, 422: {"model": Problem, "description":
                                                                 "a bad URL, event or field (with a pointer)"}})
def patch_webhook(webhook_id: str, body: WebhookPatch, request: Request, session: SessionDep,
                  caller: CallerDep, settings: SettingsDep, _json: JsonBodyDep) -> WebhookUpdated:
    """Only the fields given change. A new URL is checked as at registration; `active: false` pauses
    (pending deliveries end `cancelled`), `active: true` resumes and clears `disabled_reason`;
    `rotate_secret: true` returns the new secret in this response only. Deliveries still pending
    are signed with the secret current when they are attempted."""
    row = _load(session, webhook_id, caller.name)
    given = body.model_fields_set
    for name in ("url", "events", "active", "secret"):
        if name in given and getattr(body, name) is None:
            raise _refuse(422, "invalid_request", f"/{name}", "may not be null; leave it out to keep it")
    if body.rotate_secret and body.secret is not None:
        raise _refuse(422, "conflicting_fields", "/secret", "give a secret or rotate_secret, not both")
    if body.url is not None:
        _check_url(body.url, request, settings)
    secret = registry.new_secret() if body.rotate_secret else body.secret
    events = list(dict.fromkeys(body.events)) if body.events is not None else None  # in order, once each
    row = registry.change(session, row, url=body.url, events=events, active=body.active, secret=secret)
    return WebhookUpdated(**_read(row), secret=secret if body.rotate_secret else None)


@router.delete("/{webhook_id}", status_code=204, response_class=Response, responses=NOT_FOUND,
               summary="Delete a webhook and its delivery log")
def delete_webhook(webhook_id: str, session: SessionDep, caller: CallerDep) -> Response:
    if not registry.remove(session, webhook_id, caller.name):
        raise ApiError(404, "webhook_not_found", f"no webhook {echo_id(webhook_id)}")
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", response_model=DeliveryPage, summary="A webhook's deliveries, newest first",
            responses={**NOT_FOUND, 422: {"model": Problem, "description": "a bad cursor"}})
def list_deliveries(webhook_id: str, session: SessionDep, caller: CallerDep,
                    cursor: Annotated[str | None, Query(min_length=1,
                                                        description="next_cursor of the previous page")] = None,
                    limit: Annotated[int, Query(ge=1, le=100)] = 20) -> DeliveryPage:
    _load(session, webhook_id, caller.name)
    try:
        page = registry.deliveries(session, webhook_id, cursor=cursor, limit=limit)
    except (ValueError, UnicodeDecodeError):
        raise bad_cursor() from None
    return DeliveryPage(items=[_delivery(r) for r in page.items], next_cursor=page.next_cursor)


@router.post("/{webhook_id}/test", status_code=202, response_model=DeliveryRead,
             responses={**NOT_FOUND, 409: {"model": Problem, "description": "the webhook is paused"}},
             summary="Queue a `ping` delivery to this webhook")
def ping_webhook(webhook_id: str, session: SessionDep, caller: CallerDep) -> DeliveryRead:
    """The ping is delivered, signed and retried like any event; follow it in the delivery log."""
    row = _load(session, webhook_id, caller.name)
    if not row.active:
        raise ApiError(409, "webhook_paused", f"webhook {row.id} is paused ({row.disabled_reason}); resume it "
                       "with PATCH {\"active\": true} first")
    delivery = outbox.queue(session, row.id, outbox.PING, {"webhook_id": row.id, "url": row.url})
    session.commit()
    return _delivery(delivery)
