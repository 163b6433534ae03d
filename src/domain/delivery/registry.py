"""The delivery providers a brand can choose, what each needs, and how to build one.

A brand's provider for a channel is a name, ``settings`` (plain values the API may show; keys in
snake_case: ``host``, ``port``, ``status_callback_url``...) and ``credentials`` (secrets, stored
encrypted, never returned; keys in camelCase as the API sends them: ``apiKey``, ``authToken``...).
:func:`validate` reports every problem as ``(field path, message)`` for the API to return;
:func:`build` makes the provider (raising :class:`ProviderRejected` for a configuration that
does not validate, e.g. one saved before a rule changed).

Messages never quote a value: a misplaced secret must not come back in an error.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from domain.config import get_settings
from domain.delivery.base import Channel, Provider, ProviderRejected
from domain.delivery.providers.brevo import BrevoProvider
from domain.delivery.providers.fcm import FcmProvider, parse_service_account
from domain.delivery.providers.log import LogProvider
from domain.delivery.providers.sendgrid import SendGridProvider
from domain.delivery.providers.smtp import SmtpProvider
from domain.delivery.providers.twilio import TwilioProvider
from domain.delivery.webhooks import load_sendgrid_key

Check = Callable[[Any], str | None]  # a problem with the value, or None


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str  # string | integer | number | boolean
    required: bool = False
    default: Any = None
    description: str = ""
    check: Check | None = None


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    channels: frozenset[Channel]
    description: str
    credentials: tuple[FieldSpec, ...] = ()
    settings: tuple[FieldSpec, ...] = ()
    # cross-field rules: (settings, credentials) -> problems
    rules: tuple[Callable[[Mapping[str, Any], Mapping[str, Any]], list[tuple[str, str]]], ...] = field(default=())

    def setting(self, settings: Mapping[str, Any], name: str) -> Any:
        """A setting's value, or its default."""
        spec = next(f for f in self.settings if f.name == name)
        value = settings.get(name)
        return spec.default if value is None else value


# --- checks -----------------------------------------------------------------------------------


def _between(low: float, high: float) -> Check:
    def check(value: Any) -> str | None:
        return None if low <= value <= high else f"must be between {low:g} and {high:g}"

    return check


def _pattern(regex: str, what: str) -> Check:
    compiled = re.compile(regex)

    def check(value: Any) -> str | None:
        return None if compiled.fullmatch(value) else f"must be {what}"

    return check


def _min_length(n: int) -> Check:
    return lambda value: None if len(value) >= n else f"must be at least {n} characters"


def _http_url(value: Any) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL"
    return None


def _service_account(value: Any) -> str | None:
    try:
        parse_service_account(value)
    except ValueError as exc:
        return f"is not a usable service-account key: it {exc}"
    return None


def _sendgrid_key(value: Any) -> str | None:
    try:
        load_sendgrid_key(value)
    except ValueError as exc:
        return str(exc)
    return None


def _public_host(value: Any) -> str | None:
    """In production a tenant may not point SMTP at our own network (loopback, private ranges,
    link-local metadata services). Names are checked as written; DNS is the network's job."""
    host = value.strip().lower().rstrip(".")
    if not host or any(c.isspace() for c in host) or "/" in host:
        return "must be a host name"
    if not get_settings().production:
        return None
    if host == "localhost" or host.endswith(".localhost") or host.endswith(".internal"):
        return "must be a public host"
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if not ip.is_global:
        return "must be a public host"
    return None


def _smtp_rules(settings: Mapping[str, Any], credentials: Mapping[str, Any]) -> list[tuple[str, str]]:
    problems = []
    if settings.get("starttls") is True and settings.get("use_tls") is True:
        problems.append(("settings.use_tls", "cannot be combined with starttls (choose one)"))
    if bool(credentials.get("username")) != bool(credentials.get("password")):
        missing = "credentials.password" if credentials.get("username") else "credentials.username"
        problems.append((missing, "is required with the other SMTP login field"))
    return problems


# --- factories --------------------------------------------------------------------------------


def _log(spec: ProviderSpec, channel: Channel, s: Mapping[str, Any], c: Mapping[str, Any],
         http: httpx.AsyncClient | None) -> Provider:
    return LogProvider(channel)


def _smtp(spec: ProviderSpec, channel: Channel, s: Mapping[str, Any], c: Mapping[str, Any],
          http: httpx.AsyncClient | None) -> Provider:
    use_tls = bool(spec.setting(s, "use_tls"))
    return SmtpProvider(
        str(s["host"]).strip(),
        int(s.get("port") or (465 if use_tls else 587)),
        starttls=bool(spec.setting(s, "starttls")) and not use_tls,
        use_tls=use_tls,
        timeout=float(spec.setting(s, "timeout")),
        username=c.get("username"),
        password=c.get("password"),
        max_connections=int(spec.setting(s, "max_connections")),
    )


def _brevo(spec: ProviderSpec, channel: Channel, s: Mapping[str, Any], c: Mapping[str, Any],
           http: httpx.AsyncClient | None) -> Provider:
    return BrevoProvider(c["apiKey"], http=http)


def _sendgrid(spec: ProviderSpec, channel: Channel, s: Mapping[str, Any], c: Mapping[str, Any],
              http: httpx.AsyncClient | None) -> Provider:
    return SendGridProvider(c["apiKey"], http=http)


def _twilio(spec: ProviderSpec, channel: Channel, s: Mapping[str, Any], c: Mapping[str, Any],
            http: httpx.AsyncClient | None) -> Provider:
    return TwilioProvider(
        c["accountSid"],
        c["authToken"],
        messaging_service_sid=s.get("messaging_service_sid"),
        status_callback_url=s.get("status_callback_url"),
        http=http,
    )


def _fcm(spec: ProviderSpec, channel: Channel, s: Mapping[str, Any], c: Mapping[str, Any],
         http: httpx.AsyncClient | None) -> Provider:
    return FcmProvider(c["serviceAccountJson"], http=http)


_FACTORIES = {"log": _log, "smtp": _smtp, "brevo": _brevo, "sendgrid": _sendgrid, "twilio": _twilio, "fcm": _fcm}

# --- the providers ----------------------------------------------------------------------------

_API_KEY = FieldSpec("apiKey", "string", required=True, description="API key", check=_min_length(8))

PROVIDERS: dict[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        ProviderSpec(
            "log",
            frozenset(Channel),
            "Sends nothing: writes each message to the log and reports it accepted.",
        ),
        ProviderSpec(
            "smtp",
            frozenset({Channel.EMAIL}),
            "Any SMTP relay.",
            credentials=(
                FieldSpec("username", "string", description="SMTP login"),
                FieldSpec("password", "string", description="SMTP password"),
            ),
            settings=(
                FieldSpec("host", "string", required=True, description="relay host name", check=_public_host),
                FieldSpec("port", "integer", description="587 (STARTTLS) or 465 (TLS) by default",
                          check=_between(1, 65535)),
                FieldSpec("starttls", "boolean", default=True, description="upgrade the connection with STARTTLS"),
                FieldSpec("use_tls", "boolean", default=False, description="connect with TLS (port 465)"),
                FieldSpec("timeout", "number", default=30.0, description="seconds per SMTP command",
                          check=_between(1, 300)),
                FieldSpec("max_connections", "integer", default=3, description="connections per batch",
                          check=_between(1, 10)),
            ),
            rules=(_smtp_rules,),
        ),
        ProviderSpec(
            "brevo",
            frozenset({Channel.EMAIL}),
            "Brevo transactional e-mail API.",
            credentials=(
                _API_KEY,
                FieldSpec("webhookToken", "string", description="bearer token configured on the Brevo webhook",
                          check=_min_length(16)),
            ),
        ),
        ProviderSpec(
            "sendgrid",
            frozenset({Channel.EMAIL}),
            "Twilio SendGrid v3 mail send API.",
            credentials=(
                _API_KEY,
                FieldSpec("webhookVerificationKey", "string",
                          description="the signed event webhook's verification key (base64)", check=_sendgrid_key),
            ),
        ),
        ProviderSpec(
            "twilio",
            frozenset({Channel.SMS}),
            "Twilio Programmable Messaging.",
            credentials=(
                FieldSpec("accountSid", "string", required=True, description="AC...",
                          check=_pattern(r"AC[0-9a-fA-F]{32}", "an account SID (AC and 32 hex digits)")),
                FieldSpec("authToken", "string", required=True, description="auth token (also verifies callbacks)",
                          check=_min_length(16)),
            ),
            settings=(
                FieldSpec("messaging_service_sid", "string", description="send through this messaging service",
                          check=_pattern(r"MG[0-9a-fA-F]{32}", "a messaging service SID (MG and 32 hex digits)")),
                FieldSpec("status_callback_url", "string", description="status callback URL; {key} is the message key",
                          check=_http_url),
            ),
        ),
        ProviderSpec(
            "fcm",
            frozenset({Channel.PUSH}),
            "Firebase Cloud Messaging HTTP v1.",
            credentials=(
                FieldSpec("serviceAccountJson", "string", required=True,
                          description="the service account's JSON key", check=_service_account),
            ),
        ),
    )
}

_ARTICLED = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false"}
_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,)}


def _check_fields(section: str, specs: tuple[FieldSpec, ...], values: Mapping[str, Any]) -> list[tuple[str, str]]:
    problems = []
    known = {f.name for f in specs}
    for key in values:
        if key not in known:
            problems.append((f"{section}.{key}", f"unknown {'credential' if section == 'credentials' else 'setting'}"))
    for spec in specs:
        path = f"{section}.{spec.name}"
        value = values.get(spec.name)
        if value is None or value == "":
            if spec.required:
                problems.append((path, "is required"))
            continue
        if not isinstance(value, _TYPES[spec.kind]) or (spec.kind != "boolean" and isinstance(value, bool)):
            problems.append((path, f"must be {_ARTICLED[spec.kind]}"))
            continue
        if spec.check and (problem := spec.check(value)):
            problems.append((path, problem))
    return problems


def validate(
    name: str, channel: Channel | str, settings: Mapping[str, Any] | None, credentials: Mapping[str, Any] | None
) -> list[tuple[str, str]]:
    """Every problem with this configuration, as (field path, message); empty when it is usable."""
    spec = PROVIDERS.get(name)
    if spec is None:
        return [("provider", f"must be one of {', '.join(sorted(PROVIDERS))}")]
    try:
        channel = Channel(channel)
    except ValueError:
        return [("channel", "must be email, sms or push")]
    if channel not in spec.channels:
        return [("channel", f"{name} does not send {channel.value}")]
    settings = settings or {}
    credentials = credentials or {}
    problems = _check_fields("settings", spec.settings, settings)
    problems += _check_fields("credentials", spec.credentials, credentials)
    if not problems:
        for rule in spec.rules:
            problems += rule(settings, credentials)
    return problems


def build(
    name: str,
    channel: Channel | str,
    settings: Mapping[str, Any] | None,
    credentials: Mapping[str, Any] | None,
    http: httpx.AsyncClient | None = None,
) -> Provider:
    """The provider, sending through ``http`` when given (the caller closes it) or a client of
    its own (closed by ``aclose``)."""
    problems = validate(name, channel, settings, credentials)
    if problems:
        raise ProviderRejected("invalid provider configuration: " + "; ".join(f"{p}: {m}" for p, m in problems))
    return _FACTORIES[name](PROVIDERS[name], Channel(channel), settings or {}, credentials or {}, http)
