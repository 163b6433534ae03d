"""Signed, expiring download links for job results, served by the app at /downloads/<token>.

A token is ``<tenant id>.<job id>.<expiry>.<signature>``; the signature is an HMAC-SHA256 of the
rest with the server's secret key, so a link can be neither forged nor extended.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass

from domain.config import get_settings
from domain.errors import NotFound
from domain.jobs import service as jobs

LINK_TTL = 3600


def _sign(payload: str) -> str:
    key = get_settings().require_secret_key().encode()
    digest = hmac.new(key, b"download:" + payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def make_token(tenant_id: uuid.UUID, job_id: uuid.UUID, ttl: int = LINK_TTL, now: float | None = None) -> str:
    expires = int((now or time.time()) + ttl)
    payload = f"{tenant_id.hex}.{job_id.hex}.{expires}"
    return f"{payload}.{_sign(payload)}"


def download_path(tenant_id: uuid.UUID, job_id: uuid.UUID) -> str:
    return f"/downloads/{make_token(tenant_id, job_id)}"


@dataclass(frozen=True)
class Download:
    filename: str
    content_type: str
    content: bytes


async def open_download(token: str) -> Download:
    """The file behind a valid, unexpired token; NotFound otherwise (no detail leaks)."""
    try:
        tenant_hex, job_hex, expires, signature = token.split(".")
        payload = f"{tenant_hex}.{job_hex}.{expires}"
        valid = hmac.compare_digest(signature, _sign(payload)) and int(expires) >= time.time()
        tenant_id, job_id = uuid.UUID(hex=tenant_hex), uuid.UUID(hex=job_hex)
    except ValueError:
        valid = False
    if not valid:
        raise NotFound("this link is invalid or has expired")
    found = await jobs.result_file(tenant_id, job_id)
    if found is None:
        raise NotFound("this link is invalid or has expired")
    return Download(filename=found.filename, content_type=found.content_type, content=found.content)
