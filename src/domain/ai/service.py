"""AI settings: a tenant's provider connections (write-only credentials, encrypted at rest), the
test of a connection, and the choice of default and per-feature models.

Every operation belongs to the copilot module and is refused with FEATURE_DISABLED when the
tenant does not have it. Owners and admins (of every brand) manage; every role reads the
connections' status, but only those who manage see the masked credential hint. Credentials
never reach the audit log (only the names of what changed), a log line or an error message.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert

from domain.ai import catalog, providers, usage
from domain.ai.catalog import ModelInfo
from domain.ai.models import AiConnection, AiSettings, Feature, Provider, TestStatus
from domain.audit import service as audit
from domain.errors import DomainError, NotFound, ValidationFailed, Validator
from domain.platform import crypto
from domain.platform.db import tenant_session
from domain.tenancy.policies import Action, Principal, authorize
from domain.tenancy.tenants import require_feature

FEATURE = "copilot"
RECENCIES = ("hour", "day", "week", "month", "year")
_KEY_PROVIDERS = (Provider.OPENAI, Provider.ANTHROPIC, Provider.PERPLEXITY, Provider.JASPER)


@dataclass(frozen=True)
class ConnectionView:
    """What the API shows of a connection (a provider without a row: not configured)."""

    provider: Provider
    credentials_set: bool
    credential_hint: str | None  # only for those who manage AI settings
    settings: dict[str, Any]
    default_model: str | None
    models: list[ModelInfo]
    last_test_status: TestStatus | None
    last_test_message: str | None
    last_test_latency_ms: int | None
    last_tested_at: datetime | None
    updated_at: datetime | None
    tokens_this_month: int = 0
    retry_after: float | None = None

    @property
    def needs(self) -> str | None:
        """What to configure, in words, when the connection cannot be used yet."""
        if not self.credentials_set:
            what = "an OAuth connection (access and refresh tokens)" if self.provider is Provider.CANVA else "an API key"
            return f"add {what} for {self.provider.value} in the AI settings (owners and admins)"
        if self.last_test_status not in (None, TestStatus.OK):
            return f"the last test failed ({self.last_test_status.value}): check the credentials and test again"
        return None


def _view(principal: Principal, provider: Provider, row: AiConnection | None, tokens: int = 0,
          retry_after: float | None = None) -> ConnectionView:
    sees_hint = not principal.invited and Action.AI_SETTINGS_MANAGE in principal.actions  # who may manage
    return ConnectionView(
        provider=provider,
        credentials_set=bool(row and row.credentials_encrypted),
        credential_hint=row.credential_hint if row and sees_hint else None,
        settings=dict(row.settings) if row else {},
        default_model=(row.default_model if row and row.default_model else catalog.default_model(provider)),
        models=catalog.models_for(provider, row.live_models if row else None),
        last_test_status=TestStatus(row.last_test_status) if row and row.last_test_status else None,
        last_test_message=row.last_test_message if row else None,
        last_test_latency_ms=row.last_test_latency_ms if row else None,
        last_tested_at=row.last_tested_at if row else None,
        updated_at=row.updated_at if row else None,
        tokens_this_month=tokens,
        retry_after=retry_after,
    )


def _provider(value: str) -> Provider:
    try:
        return Provider(value)
    except ValueError:
        raise DomainError(f"unknown provider {value!r}; one of {', '.join(p.value for p in Provider)}",
                          field="provider") from None


async def _tokens_by_provider(s, tenant_id: uuid.UUID) -> dict[str, int]:  # noqa: ANN001
    """Tokens used this month per provider (the copilot's usage meter)."""
    return await usage.tokens_by_provider(s, tenant_id, usage.month_start())


async def connections(principal: Principal) -> list[ConnectionView]:
    """Every provider's connection status, configured or not, in a fixed order."""
    authorize(principal, Action.AI_SETTINGS_READ)
    async with tenant_session(principal.tenant_id) as s:
        await require_feature(s, principal.tenant_id, FEATURE)
        rows = {r.provider: r for r in (await s.scalars(select(AiConnection).where(
            AiConnection.tenant_id == principal.tenant_id))).all()}
        tokens = await _tokens_by_provider(s, principal.tenant_id)
    return [_view(principal, p, rows.get(p.value), tokens.get(p.value, 0)) for p in Provider]


async def connection(principal: Principal, provider: str) -> ConnectionView:
    p = _provider(provider)
    return next(c for c in await connections(principal) if c.provider is p)


def _validate_settings(v: Validator, provider: Provider, settings: dict[str, Any]) -> dict[str, Any]:
    allowed: dict[Provider, tuple[str, ...]] = {
        Provider.OPENAI: ("organization", "project"), Provider.ANTHROPIC: (),
        Provider.PERPLEXITY: ("search_recency", "keep_citations"),
        Provider.JASPER: ("tone_id", "knowledge_ids"), Provider.CANVA: ("brand_template_ids",),
    }
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if key not in allowed[provider]:
            v.add(f"settings.{key}", f"{provider.value} has no setting {key!r}")
        elif value is None:
            continue
        elif key in ("organization", "project", "tone_id"):
            if not isinstance(value, str) or not value.strip() or len(value) > 128:
                v.add(f"settings.{key}", f"{key} must be a non-empty text of at most 128 characters")
            else:
                out[key] = value.strip()
        elif key == "search_recency":
            if value not in RECENCIES:
                v.add(f"settings.{key}", f"search recency must be one of {', '.join(RECENCIES)}")
            else:
                out[key] = value
        elif key == "keep_citations":
            out[key] = bool(value)
        elif key in ("knowledge_ids", "brand_template_ids"):
            if not isinstance(value, list) or len(value) > 50 or not all(
                    isinstance(i, str) and 0 < len(i) <= 128 for i in value):
                v.add(f"settings.{key}", f"{key} must be at most 50 ids")
            else:
                out[key] = list(dict.fromkeys(value))
    return out


def _validate_credentials(v: Validator, provider: Provider, creds: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The credentials to store and their masked hint."""
    if provider in _KEY_PROVIDERS:
        key = creds.get("api_key")
        if not isinstance(key, str) or not (8 <= len(key.strip()) <= 400) or any(c.isspace() for c in key.strip()):
            v.add("credentials.api_key", "an API key of 8 to 400 characters without spaces is required")
            return {}, ""
        key = key.strip()
        return {"api_key": key}, providers.mask(key)
    access, refresh = creds.get("access_token"), creds.get("refresh_token")
    if not isinstance(access, str) or not access.strip() or len(access) > 4000:
        v.add("credentials.access_token", "Canva's OAuth access token is required")
        return {}, ""
    out: dict[str, Any] = {"access_token": access.strip()}
    if isinstance(refresh, str) and refresh.strip():
        out["refresh_token"] = refresh.strip()
    expires_in = creds.get("expires_in")
    if expires_in is not None:
        if not isinstance(expires_in, int) or expires_in <= 0:
            v.add("credentials.expires_in", "expires_in must be a positive number of seconds")
        else:
            out["expires_at"] = (datetime.now(UTC) + timedelta(seconds=expires_in)).isoformat()
    return out, providers.mask(out["access_token"])


async def set_connection(principal: Principal, provider: str, *, credentials: dict[str, Any] | None,
                         settings_by_provider: dict[str, dict[str, Any]] | None = None,
                         default_model: str | None = None) -> ConnectionView:
    """Create or change a connection. ``credentials`` None keeps the stored ones.
    ``settings_by_provider`` holds the settings sent, by the provider they are for: only the
    connection's own provider's may be sent, and they replace the stored ones."""
    authorize(principal, Action.AI_SETTINGS_MANAGE)
    p = _provider(provider)
    v = Validator()
    settings = None
    for name, values in (settings_by_provider or {}).items():
        if name != p.value:
            v.add(name, f"{name} settings do not apply to a {p.value} connection")
        else:
            settings = values
    new_settings = _validate_settings(v, p, settings) if settings is not None else None
    new_creds, hint = _validate_credentials(v, p, credentials) if credentials is not None else (None, None)
    if default_model is not None and default_model not in {m.id for m in catalog.models_for(p)}:
        v.add("default_model", f"{default_model!r} is not a {p.value} model of the configuration")
    v.check()
    async with tenant_session(principal.tenant_id) as s:
        await require_feature(s, principal.tenant_id, FEATURE)
        row = await s.scalar(select(AiConnection).where(
            AiConnection.tenant_id == principal.tenant_id, AiConnection.provider == p.value).with_for_update())
        if row is None:
            if new_creds is None:
                raise ValidationFailed([DomainError("credentials are required for a new connection",
                                                    field="credentials")])
            row = AiConnection(tenant_id=principal.tenant_id, provider=p.value, settings={}, live_models=[])
            s.add(row)
        changed: list[str] = []
        if new_creds is not None:
            row.credentials_encrypted = crypto.encrypt(json.dumps(new_creds))
            row.credential_hint = hint
            row.last_test_status = row.last_test_message = row.last_test_latency_ms = row.last_tested_at = None
            row.live_models = []
            changed.append("credentials")
        if new_settings is not None:
            row.settings = new_settings
            changed.append("settings")
        if default_model is not None:
            row.default_model = default_model
            changed.append("default_model")
        row.updated_by = principal.label
        await s.flush()
        audit.record(s, principal, "ai.set_connection", "AiConnection", None,
                     summary={"provider": p.value, "changed": changed,
                              "settings": sorted(new_settings) if new_settings is not None else None})
        await s.refresh(row)
        tokens = await _tokens_by_provider(s, principal.tenant_id)
    return _view(principal, p, row, tokens.get(p.value, 0))


async def remove_connection(principal: Principal, provider: str) -> None:
    authorize(principal, Action.AI_SETTINGS_MANAGE)
    p = _provider(provider)
    async with tenant_session(principal.tenant_id) as s:
        await require_feature(s, principal.tenant_id, FEATURE)
        gone = (await s.execute(delete(AiConnection).where(
            AiConnection.tenant_id == principal.tenant_id, AiConnection.provider == p.value))).rowcount
        if not gone:
            raise NotFound(f"no {p.value} connection is set", field="provider")
        audit.record(s, principal, "ai.remove_connection", "AiConnection", None, summary={"provider": p.value})


async def load_credentials(s, tenant_id: uuid.UUID, provider: Provider) -> tuple[dict[str, Any], dict[str, Any]] | None:  # noqa: ANN001
    """A connection's decrypted credentials and settings, for the providers' clients only."""
    row = await s.scalar(select(AiConnection).where(
        AiConnection.tenant_id == tenant_id, AiConnection.provider == provider.value))
    if row is None or not row.credentials_encrypted:
        return None
    return json.loads(crypto.decrypt(row.credentials_encrypted)), dict(row.settings)


async def test_connection(principal: Principal, provider: str) -> ConnectionView:
    """Make the provider's cheapest real call with the stored credentials and record the result."""
    authorize(principal, Action.AI_SETTINGS_MANAGE)
    p = _provider(provider)
    async with tenant_session(principal.tenant_id) as s:
        await require_feature(s, principal.tenant_id, FEATURE)
        found = await load_credentials(s, principal.tenant_id, p)
    if found is None:
        raise NotFound(f"no {p.value} credentials are set; add them first", field="provider")
    creds, settings = found
    result = await providers.test_connection(p, creds, settings)  # outside any transaction
    async with tenant_session(principal.tenant_id) as s:
        row = await s.scalar(select(AiConnection).where(
            AiConnection.tenant_id == principal.tenant_id, AiConnection.provider == p.value).with_for_update())
        if row is None:  # removed meanwhile
            raise NotFound(f"no {p.value} connection is set", field="provider")
        row.last_test_status = result.status.value
        row.last_test_message = result.message[:500]
        row.last_test_latency_ms = result.latency_ms
        row.last_tested_at = datetime.now(UTC)
        if result.live_models is not None:
            row.live_models = result.live_models[:500]
        if result.credentials:  # Canva tokens refreshed on the way
            row.credentials_encrypted = crypto.encrypt(json.dumps({**creds, **result.credentials}))
            row.credential_hint = providers.mask(result.credentials["access_token"])
        await s.flush()
        audit.record(s, principal, "ai.test_connection", "AiConnection", None,
                     summary={"provider": p.value, "status": result.status.value, "latencyMs": result.latency_ms})
        await s.refresh(row)
        tokens = await _tokens_by_provider(s, principal.tenant_id)
    return _view(principal, p, row, tokens.get(p.value, 0), retry_after=result.retry_after)


# --- model choices ---------------------------------------------------------------------


@dataclass(frozen=True)
class ModelChoice:
    provider: str  # a Provider value or endpoint:<name>
    model: str


@dataclass(frozen=True)
class SettingsView:
    default: ModelChoice | None
    features: dict[Feature, ModelChoice]
    updated_at: datetime | None


def _valid_choice(v: Validator, field: str, provider: str, model: str) -> ModelChoice | None:
    if provider.startswith(catalog.ENDPOINT_PREFIX):
        ep = catalog.endpoint(provider[len(catalog.ENDPOINT_PREFIX):])
        if ep is None:
            v.add(f"{field}.provider", f"no endpoint named {provider[len(catalog.ENDPOINT_PREFIX):]!r} is declared")
            return None
        if model not in ep.models:
            v.add(f"{field}.model", f"{model!r} is not a model of endpoint {ep.name}")
            return None
        return ModelChoice(provider, model)
    try:
        p = Provider(provider)
    except ValueError:
        v.add(f"{field}.provider", f"unknown provider {provider!r}")
        return None
    if model not in {m.id for m in catalog.models_for(p)}:
        v.add(f"{field}.model", f"{model!r} is not a {p.value} model of the configuration")
        return None
    return ModelChoice(provider, model)


def _settings_view(row: AiSettings | None) -> SettingsView:
    if row is None:
        return SettingsView(None, {}, None)
    default = ModelChoice(row.default_provider, row.default_model) if row.default_provider and row.default_model else None
    features = {Feature(k): ModelChoice(c["provider"], c["model"]) for k, c in (row.feature_models or {}).items()}
    return SettingsView(default, features, row.updated_at)


async def get_settings_view(principal: Principal) -> SettingsView:
    authorize(principal, Action.AI_SETTINGS_READ)
    async with tenant_session(principal.tenant_id) as s:
        await require_feature(s, principal.tenant_id, FEATURE)
        row = await s.get(AiSettings, principal.tenant_id)
    return _settings_view(row)


async def update_settings(principal: Principal, default: tuple[str, str] | None | Any,
                          features: dict[str, tuple[str, str] | None] | None) -> SettingsView:
    """Set the default choice (None clears it; ``...`` keeps it) and per-feature choices (a
    feature mapped to None falls back to the default)."""
    authorize(principal, Action.AI_SETTINGS_MANAGE)
    v = Validator()
    new_default = None
    if default is not ... and default is not None:
        new_default = _valid_choice(v, "default", *default)
    new_features: dict[str, ModelChoice | None] = {}
    for i, (name, choice) in enumerate((features or {}).items()):
        try:
            f = Feature(name)
        except ValueError:
            v.add(f"features[{i}].feature", f"unknown feature {name!r}")
            continue
        new_features[f.value] = _valid_choice(v, f"features[{i}]", *choice) if choice is not None else None
    v.check()
    async with tenant_session(principal.tenant_id) as s:
        await require_feature(s, principal.tenant_id, FEATURE)
        row = await s.get(AiSettings, principal.tenant_id, with_for_update=True)
        if row is None:
            await s.execute(insert(AiSettings).values(tenant_id=principal.tenant_id, feature_models={})
                            .on_conflict_do_nothing())
            row = await s.get(AiSettings, principal.tenant_id, with_for_update=True)
        if default is not ...:
            row.default_provider = new_default.provider if new_default else None
            row.default_model = new_default.model if new_default else None
        fm = dict(row.feature_models or {})
        for name, choice in new_features.items():
            if choice is None:
                fm.pop(name, None)
            else:
                fm[name] = {"provider": choice.provider, "model": choice.model}
        row.feature_models = fm
        row.updated_by = principal.label
        await s.flush()
        audit.record(s, principal, "ai.update_settings", "AiSettings", None,
                     summary={"default": f"{row.default_provider}/{row.default_model}" if row.default_model else None,
                              "features": sorted(fm)})
        await s.refresh(row)
    return _settings_view(row)


async def endpoints_for(principal: Principal) -> list[catalog.Endpoint]:
    """The operator's OpenAI-compatible endpoints a tenant may choose (by name)."""
    authorize(principal, Action.AI_SETTINGS_READ)
    async with tenant_session(principal.tenant_id) as s:
        await require_feature(s, principal.tenant_id, FEATURE)
    return list(catalog.endpoints())
