"""Personalisation: Jinja2 templates in its sandbox, over customer, brand and profile variables.

Saving checks a template twice: it must parse, and it must render against a sample customer
whose every known field is present, with ``StrictUndefined``, so a misspelt or unknown variable is
refused at save time with its line. Sending renders leniently (a customer without a value for a
field gets an empty string) with the templates compiled once per batch. HTML bodies are
autoescaped; subjects and text bodies are not (they are not HTML).

Variables (documented in docs/campaigns.md): ``customer`` (first_name, last_name, full_name, email,
phone, city, state, country, company, locale, timezone, attributes.<declared custom attribute>),
``brand`` (name, from_name, from_email, reply_to), ``profile`` (the customer's profile with this
brand: total_spent, orders, average_order, last_order_at, engagement_score, churn_risk),
``campaign`` (name) and, in e-mail, ``unsubscribe_url``.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jinja2 import ChainableUndefined, StrictUndefined, TemplateError, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from domain.errors import DomainError, ErrorCode, ValidationFailed

CUSTOMER_FIELDS = ("first_name", "last_name", "full_name", "email", "phone", "city", "state", "country",
                   "company", "locale", "timezone")
BRAND_FIELDS = ("name", "from_name", "from_email", "reply_to")
PROFILE_FIELDS = ("total_spent", "orders", "average_order", "last_order_at", "engagement_score", "churn_risk")

# what each channel's content holds, and which parts are templates
CONTENT_FIELDS: dict[str, dict[str, tuple[bool, int]]] = {  # field -> (required, max length)
    "email": {"subject": (True, 300), "preheader": (False, 300), "html": (False, 500_000), "text": (False, 200_000)},
    "sms": {"text": (True, 1600)},
    "push": {"title": (True, 200), "body": (True, 1000)},
}
HTML_FIELDS = {"html"}


def _env(autoescape: bool, strict: bool) -> SandboxedEnvironment:
    return SandboxedEnvironment(autoescape=autoescape, undefined=StrictUndefined if strict else ChainableUndefined,
                                trim_blocks=False, keep_trailing_newline=True)


_STRICT = {True: _env(True, True), False: _env(False, True)}
_LENIENT = {True: _env(True, False), False: _env(False, False)}


def sample_context(custom_attributes: dict[str, str]) -> dict[str, Any]:
    """A customer with every known field set: what the save-time check renders against."""
    samples = {"string": "text", "number": 1, "boolean": True, "date": "2026-01-01"}
    return {
        "customer": {**{f: "sample" for f in CUSTOMER_FIELDS},
                     "attributes": {k: samples.get(t, "text") for k, t in custom_attributes.items()}},
        "brand": {f: "sample" for f in BRAND_FIELDS},
        "profile": {"total_spent": "0.00", "orders": 0, "average_order": "0.00",
                    "last_order_at": datetime.now(UTC), "engagement_score": 0, "churn_risk": 0},
        "campaign": {"name": "sample"},
        "unsubscribe_url": "https://example.invalid/u/sample",
    }


def _template_line(exc: BaseException) -> int | None:
    """The template line an error happened on: Jinja2 rewrites tracebacks so that template frames
    carry the template's own line numbers under the filename ``<template>``."""
    if isinstance(exc, TemplateSyntaxError):
        return exc.lineno
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<template>"]
    return frames[-1].lineno if frames else None


def check(channel: str, content: dict[str, Any], custom_attributes: dict[str, str], prefix: str = "content") -> dict[str, str]:
    """Validate a channel's content; returns the cleaned fields or raises ValidationFailed naming
    each field, and for template errors the line and the reason."""
    spec = CONTENT_FIELDS[channel]
    errors: list[DomainError] = []
    unknown = set(content) - set(spec) - {"data"}
    for key in sorted(unknown):
        errors.append(DomainError(f"{key} is not part of {channel} content", field=f"{prefix}.{key}"))
    clean: dict[str, Any] = {}
    context = sample_context(custom_attributes)
    for key, (required, limit) in spec.items():
        value = content.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                errors.append(DomainError(f"{key} is required for {channel}", field=f"{prefix}.{key}",
                                          code=ErrorCode.REQUIRED))
            continue
        if not isinstance(value, str):
            errors.append(DomainError(f"{key} must be text", field=f"{prefix}.{key}"))
            continue
        if "\x00" in value:
            errors.append(DomainError(f"{key} contains a NUL character", field=f"{prefix}.{key}"))
            continue
        if len(value) > limit:
            errors.append(DomainError(f"{key} is longer than {limit} characters", field=f"{prefix}.{key}",
                                      code=ErrorCode.TOO_LONG))
            continue
        try:
            _STRICT[key in HTML_FIELDS].from_string(value).render(context)
        except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
            line = _template_line(exc)
            where = f"line {line}: " if line else ""
            reason = str(exc).replace("'dict object' has no attribute", "unknown variable")
            errors.append(DomainError(f"{key} template, {where}{reason}", field=f"{prefix}.{key}"))
            continue
        clean[key] = value
    if channel == "email" and not errors and not (clean.get("html") or clean.get("text")):
        errors.append(DomainError("an e-mail needs an HTML or a text body", field=f"{prefix}.html",
                                  code=ErrorCode.REQUIRED))
    if channel == "push":
        data = content.get("data") or {}
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            errors.append(DomainError("data must map text keys to text values", field=f"{prefix}.data"))
        elif len(str(data)) > 3000:
            errors.append(DomainError("data is too large (FCM allows 4 KB)", field=f"{prefix}.data",
                                      code=ErrorCode.TOO_LONG))
        else:
            clean["data"] = data
    if errors:
        raise ValidationFailed(errors)
    return clean


def missing(channel: str, content: dict[str, Any], prefix: str = "content") -> list[DomainError]:
    """What saved content still lacks before it can be sent (it was checked when saved)."""
    out = [DomainError(f"{key} is required for {channel}", field=f"{prefix}.{key}", code=ErrorCode.REQUIRED)
           for key, (required, _) in CONTENT_FIELDS[channel].items() if required and not content.get(key)]
    if channel == "email" and not (content.get("html") or content.get("text")):
        out.append(DomainError("an e-mail needs an HTML or a text body", field=f"{prefix}.html",
                               code=ErrorCode.REQUIRED))
    return out


@dataclass
class Compiled:
    """A campaign's templates compiled once, rendered per recipient (leniently)."""

    parts: dict[str, Any]

    @classmethod
    def of(cls, content: dict[str, Any]) -> Compiled:
        parts: dict[str, Any] = {}
        for key, value in content.items():
            if isinstance(value, str):
                parts[key] = _LENIENT[key in HTML_FIELDS].from_string(value)
            else:
                parts[key] = value
        return cls(parts)

    def render(self, context: dict[str, Any]) -> dict[str, Any]:
        return {k: (t.render(context) if hasattr(t, "render") else t) for k, t in self.parts.items()}


def customer_vars(c: Any, attributes: dict[str, Any] | None = None) -> dict[str, Any]:
    first, last = getattr(c, "first_name", None), getattr(c, "last_name", None)
    return {
        "first_name": first or "", "last_name": last or "",
        "full_name": " ".join(x for x in (first, last) if x),
        "email": getattr(c, "email", None) or "", "phone": getattr(c, "phone", None) or "",
        "city": getattr(c, "city", None) or "", "state": getattr(c, "state", None) or "",
        "country": getattr(c, "country", None) or "", "company": getattr(c, "company", None) or "",
        "locale": getattr(c, "locale", None) or "", "timezone": getattr(c, "timezone", None) or "",
        "attributes": attributes if attributes is not None else (getattr(c, "attributes", None) or {}),
    }


def brand_vars(b: Any) -> dict[str, Any]:
    return {"name": b.name, "from_name": b.from_name or b.name, "from_email": b.from_email or "",
            "reply_to": b.reply_to or ""}


def profile_vars(p: Any | None) -> dict[str, Any]:
    if p is None:
        return {"total_spent": "0.00", "orders": 0, "average_order": "0.00", "last_order_at": None,
                "engagement_score": 0, "churn_risk": 100}
    return {"total_spent": f"{p.total_order_value_cents / 100:.2f}", "orders": p.total_order_count,
            "average_order": f"{p.average_order_value_cents / 100:.2f}", "last_order_at": p.last_order_at,
            "engagement_score": p.engagement_score, "churn_risk": p.churn_risk}
