"""Field checks shared by the tenancy services."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from zoneinfo import available_timezones

from domain.errors import ErrorCode, Validator

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
E164_RE = re.compile(r"^\+[1-9]\d{6,14}$")
SMS_ALPHA_RE = re.compile(r"^[A-Za-z0-9 ]{1,11}$")


def has_nul(value: object) -> bool:
    """PostgreSQL text cannot hold NUL characters, anywhere in a string or a JSON document."""
    if isinstance(value, str):
        return "\x00" in value
    return value is not None and "\\u0000" in json.dumps(value, default=str)


def text(v: Validator, field: str, value: str | None, *, required: bool, max_len: int) -> str | None:
    if value is None or not value.strip():
        if required:
            v.add(field, f"{field} is required", ErrorCode.REQUIRED)
        return None
    if has_nul(value):
        v.add(field, f"{field} contains a NUL character")
        return None
    value = value.strip()
    if len(value) > max_len:
        v.add(field, f"{field} is longer than {max_len} characters", ErrorCode.TOO_LONG)
    return value


def slug(v: Validator, field: str, value: str | None) -> str | None:
    if value is None or not value:
        v.add(field, f"{field} is required", ErrorCode.REQUIRED)
        return None
    if not SLUG_RE.match(value):
        v.add(field, "use 1 to 63 lower-case letters, digits and inner hyphens")
    return value


def email(v: Validator, field: str, value: str | None, *, required: bool = False) -> str | None:
    if value is None or not value.strip():
        if required:
            v.add(field, f"{field} is required", ErrorCode.REQUIRED)
        return None
    value = value.strip()
    if len(value) > 320 or not EMAIL_RE.match(value):
        v.add(field, f"{value!r} is not an e-mail address")
    return value


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones()) | {"UTC"}


def timezone(v: Validator, field: str, value: str | None) -> str | None:
    if value is None:
        return None
    if value not in _zones():
        v.add(field, f"{value!r} is not an IANA time zone (for example Europe/Paris)")
    return value


def sms_sender(v: Validator, field: str, value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip()
    if not (E164_RE.match(value) or SMS_ALPHA_RE.match(value)):
        v.add(field, "use an E.164 number (+15551234567) or up to 11 letters and digits")
    return value


def words(v: Validator, field: str, values: list[str] | None, *, max_items: int = 100) -> list[str] | None:
    if values is None:
        return None
    cleaned = []
    if len(values) > max_items:
        v.add(field, f"at most {max_items} entries", ErrorCode.LIMIT_EXCEEDED)
    for i, word in enumerate(values):
        word = word.strip()
        if not word:
            v.add(f"{field}[{i}]", "empty entry", ErrorCode.REQUIRED)
        elif len(word) > 100:
            v.add(f"{field}[{i}]", "longer than 100 characters", ErrorCode.TOO_LONG)
        cleaned.append(word)
    return cleaned
