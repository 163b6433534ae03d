"""HTTP endpoints that are not GraphQL: provider webhooks and e-mail tracking links.

Thin like the rest of the adapter: read the request, call the domain, answer. Providers get a
plain status (2xx accepted, 401 not signed by the brand's secret, 404 unknown URL); they retry
anything else. Tracking links answer what a mail client or a browser expects whatever happens
(a pixel, a redirect, a page): a bad token reveals nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from domain.campaigns import tracking, webhooks
from domain.campaigns.engagement import apply_events
from domain.conversations import inbound
from domain.delivery.base import DeliveryEvent, EventKind, WebhookRejected

log = logging.getLogger("graph.webhooks")


Receiver = Callable[..., Awaitable[int]]


async def _webhook(request: Request, receive: Receiver) -> int | Response:
    """Run a provider webhook's domain receiver; the count it returns, or the refusal to send."""
    try:
        tenant_id = uuid.UUID(request.path_params["tenant_id"])
        brand_id = uuid.UUID(request.path_params["brand_id"])
    except ValueError:
        return JSONResponse({"error": "not found"}, status_code=404)
    body = await request.body()
    try:
        return await receive(request.path_params["provider"], tenant_id, brand_id, headers=request.headers,
                             body=body, query=request.url.query)
    except WebhookRejected as exc:
        log.info("webhook refused", extra={"provider": request.path_params["provider"], "path": receive.__module__,
                                           "reason": str(exc)})
        return JSONResponse({"error": "refused"}, status_code=401)


async def provider_webhook(request: Request) -> Response:
    """Delivery events (delivered, opened, bounced ...) for campaign messages and replies."""
    changed = await _webhook(request, webhooks.receive)
    return changed if isinstance(changed, Response) else JSONResponse({"accepted": True, "changed": changed})


async def _record(target: tracking.Target, kind: EventKind, url: str | None = None) -> None:
    await apply_events(target.tenant_id, [DeliveryEvent(kind=kind, occurred_at=datetime.now(UTC),
                                                        message_key=target.message_key, url=url)],
                       source="tracking")


async def open_pixel(request: Request) -> Response:
    target = tracking.read_token(request.path_params["token"].removesuffix(".gif"), "o")
    if target is not None and not target.preview:
        try:
            await _record(target, EventKind.OPENED)
        except Exception:  # a pixel always answers; the open is lost, nothing else is
            log.exception("could not record an open")
    return Response(tracking.PIXEL, media_type="image/gif",
                    headers={"cache-control": "no-store, max-age=0", "pragma": "no-cache"})


async def click(request: Request) -> Response:
    target = tracking.read_token(request.path_params["token"], "c")
    if target is None or not target.url:
        return HTMLResponse(_page("This link is not valid", "It may have been copied incompletely."),
                            status_code=404)
    try:
        if not target.preview:
            await _record(target, EventKind.CLICKED, target.url)
    except Exception:
        log.exception("could not record a click")
    return RedirectResponse(target.url, status_code=302, headers={"cache-control": "no-store"})


async def unsubscribe(request: Request) -> Response:
    """GET: a page asking to confirm (scanners follow links; they must not unsubscribe anyone).
    POST: unsubscribe, whether from that page or a mail client's RFC 8058 one-click request."""
    token = request.path_params["token"]
    target = tracking.read_token(token, "u")
    if target is None:
        return HTMLResponse(_page("This link is not valid", "It may have been copied incompletely."),
                            status_code=404)
    if target.preview:
        return HTMLResponse(_page("Unsubscribe (preview)", "This is a preview: nobody is unsubscribed."))
    if request.method == "GET":
        return HTMLResponse(_page("Unsubscribe", "Stop receiving these messages?",
                                  '<form method="post"><button type="submit">Unsubscribe</button></form>'))
    await _record(target, EventKind.UNSUBSCRIBED)
    return HTMLResponse(_page("You are unsubscribed", "You will not receive these messages any more."))


def _page(title: str, text: str, extra: str = "") -> str:
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
            f"content=\"width=device-width\"><title>{escape(title)}</title></head><body>"
            f"<h1>{escape(title)}</h1><p>{escape(text)}</p>{extra}</body></html>")


async def inbound_webhook(request: Request) -> Response:
    """Customers' messages (inbound e-mail, SMS) for a brand's conversations."""
    created = await _webhook(request, inbound.receive)
    if isinstance(created, Response):
        return created
    if request.path_params["provider"] == "twilio":  # Twilio expects TwiML; an empty response sends no reply
        return Response('<?xml version="1.0" encoding="UTF-8"?><Response></Response>', media_type="text/xml")
    return JSONResponse({"accepted": True, "created": created})


ROUTES = [
    Route("/webhooks/{provider}/inbound/{tenant_id}/{brand_id}", inbound_webhook, methods=["POST"]),
    Route("/webhooks/{provider}/{tenant_id}/{brand_id}", provider_webhook, methods=["POST"]),
    Route("/t/o/{token}", open_pixel, methods=["GET"]),
    Route("/t/c/{token}", click, methods=["GET"]),
    Route("/u/{token}", unsubscribe, methods=["GET", "POST"]),
]
