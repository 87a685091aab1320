"""/v1/webhooks: URLs your key's jobs and live runs call, signed, when something happens; their
delivery log; a test ping. Each webhook belongs to the key that created it (404 for anyone else)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from gradhealth.api.deps import CallerDep, SessionDep, SettingsDep
from gradhealth.api.problems import ApiError
from gradhealth.api.schemas import RATE_LIMITED, Problem
from gradhealth.db.models import WebhookDeliveryRow, WebhookRow
from gradhealth.errors import Problem as Located
from gradhealth.webhooks import outbox, registry
from gradhealth.webhooks.addresses import MAX_URL_CHARS, UrlRefused, check_registration

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=RATE_LIMITED)

Event = Literal["job.finished", "run.error_finding"]  # outbox.EVENTS, as the schema's enum
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "no such webhook (or not yours)"}}


class WebhookCreate(BaseModel):
    """A webhook to register."""

    url: str = Field(max_length=MAX_URL_CHARS, description="http or https URL without user name or password; "
                     "a private, loopback or other non-public address is refused unless the service "
                     "allows them (GRADHEALTH_WEBHOOKS_ALLOW_PRIVATE)")
    events: list[Event] = Field(list(get_args(Event)), min_length=1,  # pydantic copies it per request
                                description="the events to send (default: all)")
    secret: str | None = Field(None, min_length=16, max_length=255,
                               description="the HMAC-SHA256 signing secret; when absent one is generated and "
                                           "returned once, in this response only")


class WebhookLinks(BaseModel):
    self: str
    deliveries: str


class WebhookRead(BaseModel):
    """A registered webhook (its secret is never shown again after creation)."""

    id: str
    url: str
    events: list[str]
    active: bool
    created_at: datetime
    links: WebhookLinks


class WebhookCreated(WebhookRead):
    secret: str = Field(description="the signing secret: store it now, it is not shown again")


class WebhookList(BaseModel):
    items: list[WebhookRead]


class DeliveryRead(BaseModel):
    """One event sent (or being sent) to a webhook, with its attempts."""

    id: str = Field(description="also the X-Gradhealth-Delivery header and the body's `id`")
    event: str
    status: Literal["pending", "delivered", "failed"]
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
                created_at=registry.as_utc(row.created_at),
                links=WebhookLinks(self=f"/v1/webhooks/{row.id}", deliveries=f"/v1/webhooks/{row.id}/deliveries"))


def _delivery(row: WebhookDeliveryRow) -> DeliveryRead:
    return DeliveryRead(id=row.id, event=row.event, status=row.status, attempts=row.attempts,
                        next_attempt_at=registry.as_utc(row.next_attempt_at), last_status=row.last_status,
                        last_error=row.last_error, created_at=registry.as_utc(row.created_at),
                        delivered_at=registry.as_utc(row.delivered_at), payload=row.payload)


def _load(session: Any, webhook_id: str, owner: str) -> WebhookRow:
    row = registry.get(session, webhook_id, owner)
    if row is None:
        raise ApiError(404, "webhook_not_found", f"no webhook {webhook_id}")
    return row


@router.post("", status_code=201, response_model=WebhookCreated, summary="Register a webhook",
             responses={409: {"model": Problem, "description": "this key holds the most webhooks allowed"},
                        422: {"model": Problem, "description": "a bad URL (pointer `/url`) or event"}})
def create_webhook(body: WebhookCreate, request: Request, response: Response, session: SessionDep,
                   caller: CallerDep, settings: SettingsDep) -> WebhookCreated:
    """The response holds the signing secret, the only time it is shown."""
    try:
        check_registration(body.url, allow_private=settings.webhooks_allow_private,
                           resolve=getattr(request.app.state, "webhook_resolve", None))
    except UrlRefused as refused:
        error = ApiError(422, "invalid_webhook_url", f"/url: {refused}")
        error.problems = [Located("/url", str(refused))]
        raise error from None
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


@router.delete("/{webhook_id}", status_code=204, response_class=Response, responses=NOT_FOUND,
               summary="Delete a webhook and its delivery log")
def delete_webhook(webhook_id: str, session: SessionDep, caller: CallerDep) -> Response:
    if not registry.remove(session, webhook_id, caller.name):
        raise ApiError(404, "webhook_not_found", f"no webhook {webhook_id}")
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
        raise ApiError(422, "invalid_cursor", "cursor is not one this service returned; "
                       "start again without it") from None
    return DeliveryPage(items=[_delivery(r) for r in page.items], next_cursor=page.next_cursor)


@router.post("/{webhook_id}/test", status_code=202, response_model=DeliveryRead, responses=NOT_FOUND,
             summary="Queue a `ping` delivery to this webhook")
def ping_webhook(webhook_id: str, session: SessionDep, caller: CallerDep) -> DeliveryRead:
    """The ping is delivered, signed and retried like any event; follow it in the delivery log."""
    row = _load(session, webhook_id, caller.name)
    delivery = outbox.queue(session, row.id, outbox.PING, {"webhook_id": row.id, "url": row.url})
    session.commit()
    return _delivery(delivery)
