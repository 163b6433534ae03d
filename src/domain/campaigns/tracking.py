"""Our own tracking for e-mail: an open pixel, click redirects and one-click unsubscribe.

Links carry a signed token (HMAC-SHA256 with the server's secret key) naming the tenant, the
campaign and the customer (and, for clicks, the destination), so they can be neither forged nor
pointed elsewhere: the redirect only ever goes where the campaign's HTML pointed. Unsubscribe
links follow RFC 8058: ``List-Unsubscribe`` with the https link and ``List-Unsubscribe-Post:
List-Unsubscribe=One-Click``; a GET shows a confirmation page (link scanners must not
unsubscribe anyone), a POST unsubscribes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from html import escape

from domain.config import get_settings

_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"']+)\2""", re.IGNORECASE)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(payload: str) -> str:
    key = get_settings().require_secret_key().encode()
    return _b64(hmac.new(key, b"tracking:" + payload.encode(), hashlib.sha256).digest()[:16])


@dataclass(frozen=True)
class Target:
    kind: str  # o (open) | c (click) | u (unsubscribe)
    tenant_id: uuid.UUID
    campaign_id: uuid.UUID
    customer_id: uuid.UUID
    url: str | None = None
    preview: bool = False  # from previewCampaign: works like the real link, records nothing

    @property
    def message_key(self) -> str:
        return message_key(self.campaign_id, self.customer_id)


def message_key(campaign_id: uuid.UUID, customer_id: uuid.UUID) -> str:
    """Our id of one campaign message, echoed back by providers: ``c.<campaign>.<customer>``."""
    return f"c.{campaign_id.hex}.{customer_id.hex}"


def parse_message_key(key: str | None) -> tuple[uuid.UUID, uuid.UUID] | None:
    if not key or not key.startswith("c."):
        return None
    try:
        _, campaign, customer = key.split(".")
        return uuid.UUID(hex=campaign), uuid.UUID(hex=customer)
    except ValueError:
        return None


def make_token(kind: str, tenant_id: uuid.UUID, campaign_id: uuid.UUID, customer_id: uuid.UUID,
               url: str | None = None) -> str:
    payload = f"{kind}.{tenant_id.hex}.{campaign_id.hex}.{customer_id.hex}"
    if url is not None:
        payload += "." + _b64(url.encode())
    return f"{payload}.{_sign(payload)}"


def read_token(token: str, kind: str) -> Target | None:
    """The target of a valid token of ``kind`` (or its preview kind, ``p<kind>``); None for
    anything forged, altered or malformed."""
    try:
        payload, signature = token.rsplit(".", 1)
        if not hmac.compare_digest(signature, _sign(payload)):
            return None
        parts = payload.split(".")
        if parts[0] not in (kind, "p" + kind) or len(parts) not in (4, 5):
            return None
        url = _unb64(parts[4]).decode() if len(parts) == 5 else None
        return Target(kind, uuid.UUID(hex=parts[1]), uuid.UUID(hex=parts[2]), uuid.UUID(hex=parts[3]), url,
                      preview=parts[0] != kind)
    except (ValueError, UnicodeDecodeError):
        return None


def links(tenant_id: uuid.UUID, campaign_id: uuid.UUID, customer_id: uuid.UUID, *,
          preview: bool = False) -> dict[str, str]:
    base, p = get_settings().public_url, "p" if preview else ""
    return {
        "open": f"{base}/t/o/{make_token(p + 'o', tenant_id, campaign_id, customer_id)}",
        "unsubscribe": f"{base}/u/{make_token(p + 'u', tenant_id, campaign_id, customer_id)}",
    }


def click_url(tenant_id: uuid.UUID, campaign_id: uuid.UUID, customer_id: uuid.UUID, url: str, *,
              preview: bool = False) -> str:
    kind = "pc" if preview else "c"
    return f"{get_settings().public_url}/t/c/{make_token(kind, tenant_id, campaign_id, customer_id, url)}"


def instrument_html(html: str, tenant_id: uuid.UUID, campaign_id: uuid.UUID, customer_id: uuid.UUID,
                    open_url: str, *, preview: bool = False) -> str:
    """Links through the click redirect (except the unsubscribe link), and the open pixel last."""
    unsubscribe_prefix = f"{get_settings().public_url}/u/"

    def rewrite(m: re.Match[str]) -> str:
        url = m.group(3).replace("&amp;", "&")
        if url.startswith(unsubscribe_prefix):
            return m.group(0)
        tracked = click_url(tenant_id, campaign_id, customer_id, url, preview=preview)
        return f"{m.group(1)}{m.group(2)}{escape(tracked)}{m.group(2)}"

    out = _HREF.sub(rewrite, html)
    pixel = f'<img src="{escape(open_url)}" width="1" height="1" alt="" style="display:none">'
    idx = out.lower().rfind("</body>")
    return out[:idx] + pixel + out[idx:] if idx >= 0 else out + pixel


def unsubscribe_headers(unsubscribe_url: str) -> dict[str, str]:
    return {"List-Unsubscribe": f"<{unsubscribe_url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
