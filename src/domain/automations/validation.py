"""Checking what an automation asks for: its name, trigger, action and the config they need
(a tag of the tenant, a webhook url that may receive deliveries, a period)."""

from __future__ import annotations

import ipaddress
import json
import uuid
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.automations.models import ActionKind, SegmentAutomation, Trigger
from domain.config import get_settings
from domain.customers.models import Tag
from domain.errors import DomainError, ErrorCode, NotFound, Validator
from domain.segments.compiler import ATTRIBUTE, event_input, segment_input
from domain.segments.dsl import ATTRIBUTE_NAME_RE, CUSTOM_TYPES, EVENT_NAME_RE, ValueType
from domain.segments.models import CustomAttribute, Segment, SegmentKind
from domain.tenancy import validation

MAX_URL_BYTES = 2048
MAX_EVERY_HOURS = 168
MAX_EVENT_PROPERTIES_BYTES = 4096
MAX_DELAY_MINUTES = 30 * 24 * 60  # a wait before a message: up to 30 days
CHANNELS = ("email", "sms", "push")


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
    elif action is ActionKind.EVENT:
        wanted |= {"event_name", "properties"}
        name = config.get("event_name")
        if name is None:
            v.add("config.event_name", "an event action needs event_name", ErrorCode.REQUIRED)
        elif not isinstance(name, str) or not EVENT_NAME_RE.match(name):
            v.add("config.event_name", "an event name: letters, digits, _ . : - (starting with a letter)")
        else:
            out["event_name"] = name
        props = config.get("properties")
        if props is not None:
            if not isinstance(props, dict) or len(json.dumps(props, default=str)) > MAX_EVENT_PROPERTIES_BYTES:
                v.add("config.properties", f"properties is an object of at most {MAX_EVENT_PROPERTIES_BYTES} bytes")
            else:
                out["properties"] = props
    elif action is ActionKind.UPDATE_CUSTOMER:
        wanted |= {"attribute", "value", "clear"}
        name = config.get("attribute")
        if name is None:
            v.add("config.attribute", "an update needs the attribute", ErrorCode.REQUIRED)
        elif not isinstance(name, str) or not ATTRIBUTE_NAME_RE.match(name):
            v.add("config.attribute", "a custom attribute name uses letters, digits and _")
        else:
            out["attribute"] = name
        clear, value = config.get("clear") is True, config.get("value")
        if clear and value is not None:
            v.add("config.value", "give a value or clear: true, not both")
        elif clear:
            out["clear"] = True
        elif value is None:
            v.add("config.value", "give the value to set, or clear: true", ErrorCode.REQUIRED)
        elif not isinstance(value, (str, int, float, bool)) or (isinstance(value, str) and len(value) > 500):
            v.add("config.value", "the value is a text (at most 500 characters), a number or a boolean")
        else:
            out["value"] = value
    elif action is ActionKind.MESSAGE:
        wanted |= {"channel", "content", "delay_minutes"}
        channel = config.get("channel")
        if channel is None:
            v.add("config.channel", "a message needs its channel", ErrorCode.REQUIRED)
        elif channel not in CHANNELS:
            v.add("config.channel", "the channel is email, sms or push")
        else:
            out["channel"] = channel
        content = config.get("content")
        if content is None:
            v.add("config.content", "a message needs its content (the channel's template fields)", ErrorCode.REQUIRED)
        elif not isinstance(content, dict):
            v.add("config.content", "content is an object of the channel's template fields")
        else:
            out["content"] = content  # its templates are checked with the tenant's attributes (check_content)
        delay = config.get("delay_minutes")
        if delay is not None:
            if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= MAX_DELAY_MINUTES:
                v.add("config.delay_minutes", f"the wait is a whole number of minutes from 0 to {MAX_DELAY_MINUTES}")
            elif delay:
                out["delay_minutes"] = delay
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
                        "use add_tag, remove_tag, webhook, event, update_customer or message")
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


async def check_content(s: AsyncSession, tenant_id: uuid.UUID, config: dict[str, Any]) -> None:
    """A message's content: the same sandboxed templates and variables as a campaign's, checked
    the same way (each field, with the line and reason of a template error)."""
    if "content" not in config or "channel" not in config:
        return
    from domain.campaigns import templates  # noqa: PLC0415  (campaigns import segments, which run automations)
    from domain.segments.service import dsl_context  # noqa: PLC0415

    attrs = (await dsl_context(s, tenant_id)).custom_attributes
    config["content"] = templates.check(config["channel"], config["content"], attrs, prefix="config.content")


async def check_attribute(s: AsyncSession, tenant_id: uuid.UUID, config: dict[str, Any]) -> None:
    """An update sets a declared custom attribute, with a value of its declared type."""
    if "attribute" not in config:
        return
    declared = await s.scalar(select(CustomAttribute.type).where(CustomAttribute.tenant_id == tenant_id,
                                                                 CustomAttribute.name == config["attribute"]))
    if declared is None:
        raise NotFound(f"custom attribute {config['attribute']!r} is not declared", field="config.attribute")
    if "value" not in config:
        return
    value, t = config["value"], CUSTOM_TYPES[declared]
    fits = {ValueType.STRING: isinstance(value, str),
            ValueType.NUMBER: isinstance(value, (int, float)) and not isinstance(value, bool),
            ValueType.BOOLEAN: isinstance(value, bool),
            ValueType.DATE: isinstance(value, str) and len(value) >= 10 and value[4:5] == "-"}[t]
    if not fits:
        raise DomainError(f"{config['attribute']} is declared {declared}", field="config.value")


def emits(action: str, config: dict[str, Any]) -> set[str]:
    """What an action changes that segment rules read (tags automations add queue nothing)."""
    if action == ActionKind.EVENT.value and config.get("event_name"):
        return {event_input(config["event_name"])}
    if action == ActionKind.UPDATE_CUSTOMER.value:
        return {ATTRIBUTE}
    return set()


async def refuse_loop(s: AsyncSession, tenant_id: uuid.UUID, segment_id: uuid.UUID, action: str,
                      config: dict[str, Any], automation_id: uuid.UUID | None) -> None:
    """An automation whose event or update can, through segments that read it and their own
    automations (or segments that refer to them), change its own segment again is refused."""
    start = emits(action, config)
    if not start:
        return
    segments = list((await s.execute(select(Segment.id, Segment.name, Segment.inputs).where(
        Segment.tenant_id == tenant_id, Segment.archived_at.is_(None), Segment.kind != SegmentKind.STATIC.value))).all())
    autos: dict[uuid.UUID, set[str]] = {}
    for a in await s.scalars(select(SegmentAutomation).where(
            SegmentAutomation.tenant_id == tenant_id, SegmentAutomation.is_active.is_(True))):
        if a.id != automation_id:
            autos.setdefault(a.segment_id, set()).update(emits(a.action, a.config or {}))
    names = {sid: name for sid, name, _ in segments}
    seen: set[uuid.UUID] = set()
    frontier = [(start, [])]
    while frontier:
        tokens, path = frontier.pop()
        for sid, _, inputs in segments:
            if inputs is not None and not (tokens & set(inputs)):
                continue
            if sid == segment_id:
                chain = " → ".join([*path, names[sid]]) if path else names[sid]
                raise DomainError(f"this action would move customers of its own segment again (through {chain}): "
                                  "a loop", field="config", code=ErrorCode.INVALID)
            if sid in seen:
                continue
            seen.add(sid)
            frontier.append((autos.get(sid, set()) | {segment_input(sid)}, [*path, names[sid]]))
