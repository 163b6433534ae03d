"""Checking what an automation asks for: its name, trigger, action and the config they need
(a tag of the tenant, a webhook url that may receive deliveries, a period)."""

from __future__ import annotations

import ipaddress
import uuid
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.automations.models import ActionKind, SegmentAutomation, Trigger
from domain.config import get_settings
from domain.customers.models import Tag
from domain.errors import ErrorCode, NotFound, Validator
from domain.tenancy import validation

MAX_URL_BYTES = 2048
MAX_EVERY_HOURS = 168


def url_problem(url: Any) -> tuple[str, ErrorCode] | None:
    """Why ``url`` may not receive webhooks, or None. https only; plain http only to
    127.0.0.1/localhost outside production (tests, local development); no credentials."""
    if not isinstance(url, str) or not url.strip():
        return "a webhook needs a url", ErrorCode.REQUIRED
    if len(url.encode()) > MAX_URL_BYTES:
        return f"the url is longer than {MAX_URL_BYTES} bytes", ErrorCode.TOO_LONG
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "the url must not contain spaces or control characters", ErrorCode.INVALID
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        return "not a URL", ErrorCode.INVALID
    host = (parts.hostname or "").lower()
    if not host:
        return "the url has no host", ErrorCode.INVALID
    if "@" in parts.netloc:
        return "credentials in the url are refused: deliveries are signed instead", ErrorCode.INVALID
    production = get_settings().production
    scheme = parts.scheme.lower()
    if scheme == "http" and host in ("127.0.0.1", "localhost") and not production:
        return None
    if scheme != "https":
        return "use an https:// url", ErrorCode.INVALID
    if production:
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            ip = None
        if host == "localhost" or host.endswith(".localhost") or (ip is not None and not ip.is_global):
            return "loopback, private and link-local addresses are refused", ErrorCode.INVALID
    return None


def _clean_config(v: Validator, trigger: Trigger | None, action: ActionKind | None, config: Any,
                  *, strict: bool) -> dict[str, Any]:
    """The stored config for this trigger and action. ``strict``: keys that do not belong are
    refused (the caller's input); otherwise dropped (a kept config after a change of action)."""
    if not isinstance(config, dict):
        v.add("config", "config is an object")
        return {}
    wanted: set[str] = set()
    out: dict[str, Any] = {}
    if trigger is Trigger.PERIODIC:
        wanted.add("every_hours")
        hours = config.get("every_hours")
        if hours is None:
            v.add("config.every_hours", "a periodic automation needs every_hours", ErrorCode.REQUIRED)
        elif isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= MAX_EVERY_HOURS:
            v.add("config.every_hours", f"every_hours is a whole number from 1 to {MAX_EVERY_HOURS}")
        else:
            out["every_hours"] = hours
    if action in (ActionKind.ADD_TAG, ActionKind.REMOVE_TAG):
        wanted.add("tag_id")
        tag_id = config.get("tag_id")
        if tag_id is None:
            v.add("config.tag_id", "a tag action needs tag_id", ErrorCode.REQUIRED)
        else:
            try:
                out["tag_id"] = str(uuid.UUID(str(tag_id)))
            except ValueError:
                v.add("config.tag_id", f"{tag_id!r} is not a tag id")
    elif action is ActionKind.WEBHOOK:
        wanted.add("url")
        problem = url_problem(config.get("url"))
        if problem:
            v.add("config.url", *problem)
        else:
            out["url"] = config["url"]
    if strict:
        for key in sorted(set(config) - wanted):
            v.add(f"config.{key}", f"{key} is not a setting of this trigger and action")
    return out


def _parse(v: Validator, field: str, enum: type[Enum], value: Any) -> Any:
    if value is None:
        v.add(field, f"{field} is required", ErrorCode.REQUIRED)
        return None
    try:
        return enum(getattr(value, "value", value))
    except ValueError:
        v.add(field, f"{field} is one of {', '.join(e.value for e in enum if e.value != 'campaign')}")
        return None


def clean(data: dict[str, Any], current: SegmentAutomation | None) -> dict[str, Any]:
    v = Validator()
    out: dict[str, Any] = {}
    if current is None or "name" in data:
        out["name"] = validation.text(v, "name", data.get("name"), required=True, max_len=200)
    trigger = _parse(v, "trigger", Trigger, data["trigger"]) if "trigger" in data else Trigger(current.trigger)
    action = _parse(v, "action", ActionKind, data["action"]) if "action" in data else ActionKind(current.action)
    if action is ActionKind.CAMPAIGN:
        v.add("action", "the campaign action comes with campaigns and is not available yet; "
                        "use add_tag, remove_tag or webhook")
        action = None
    if "config" in data:
        out["config"] = _clean_config(v, trigger, action, data["config"], strict=True)
    elif current is None:
        out["config"] = _clean_config(v, trigger, action, {}, strict=True)
    elif "trigger" in data or "action" in data:
        out["config"] = _clean_config(v, trigger, action, current.config or {}, strict=False)
    if "trigger" in data and trigger is not None:
        out["trigger"] = trigger.value
    if "action" in data and action is not None:
        out["action"] = action.value
    if "is_active" in data:
        if not isinstance(data["is_active"], bool):
            v.add("is_active", "is_active is true or false")
        else:
            out["is_active"] = data["is_active"]
    v.check()
    return out


async def check_tag(s: AsyncSession, tenant_id: uuid.UUID, config: dict[str, Any]) -> None:
    if "tag_id" in config:
        found = await s.scalar(select(Tag.id).where(Tag.tenant_id == tenant_id, Tag.id == uuid.UUID(config["tag_id"])))
        if found is None:
            raise NotFound("tag not found", field="config.tag_id")
