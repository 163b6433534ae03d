"""GraphQL types of AI settings: connections (one type per provider), models, choices."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from domain.ai import catalog
from domain.ai.models import Feature as DomainFeature
from domain.ai.models import Provider as DomainProvider
from domain.ai.models import TestStatus as DomainTestStatus
from domain.ai.service import ConnectionView, ModelChoice, SettingsView

AiProvider = strawberry.enum(DomainProvider, name="AiProvider", description="An AI provider a tenant connects to.")
CopilotFeature = strawberry.enum(DomainFeature, name="CopilotFeature", description="What the copilot drafts.")
AiConnectionTestStatus = strawberry.enum(DomainTestStatus, name="AiConnectionTestStatus",
                                         description="What a connection test came to.")


@strawberry.enum(description="How recent Perplexity's web sources must be.")
class PerplexitySearchRecency(Enum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


@strawberry.type(description="A model the copilot offers: from the configuration file, or from the provider's "
                             "live list (then without name or price).")
class AiModel:
    id: str
    name: str
    context_window: int | None
    price_in_per_million: float | None = strawberry.field(description="US dollars per million input tokens.")
    price_out_per_million: float | None = strawberry.field(description="US dollars per million output tokens.")
    features: list[CopilotFeature] = strawberry.field(description="The features the model suits.")
    configured: bool = strawberry.field(description="False: only in the provider's live model list.")

    @classmethod
    def from_info(cls, m: catalog.ModelInfo) -> AiModel:
        return cls(id=m.id, name=m.name, context_window=m.context_window, price_in_per_million=m.price_in,
                   price_out_per_million=m.price_out, features=list(m.features), configured=m.configured)


@strawberry.type(description="The last test of a connection.")
class AiConnectionTest:
    status: AiConnectionTestStatus
    message: str | None = strawberry.field(description="The provider's message (secrets masked).")
    latency_ms: int | None
    tested_at: datetime | None
    retry_after_seconds: float | None = strawberry.field(
        description="The provider's retry hint, on the test just made when it was rate limited.")


@strawberry.interface(description="A tenant's connection to one AI provider. Credentials are write-only: "
                                  "`credentialsSet` and a masked `credentialHint` are all that is shown.")
class AiConnection:
    provider: AiProvider
    credentials_set: bool
    credential_hint: str | None = strawberry.field(
        description="The credential masked (`sk-…a1b2`); owners and admins only, null for other roles.")
    default_model: str | None
    models: list[AiModel]
    last_test: AiConnectionTest | None
    needs: str | None = strawberry.field(description="What to configure before the copilot can use this "
                                                     "provider; null when nothing.")
    tokens_this_month: int = strawberry.field(description="Copilot tokens (in + out) through this provider "
                                                          "this calendar month (UTC).")
    updated_at: datetime | None


@strawberry.type(description="OpenAI: optional organization and project headers.")
class OpenAiConnection(AiConnection):
    organization: str | None
    project: str | None


@strawberry.type(description="Anthropic: no settings beyond the key.")
class AnthropicConnection(AiConnection):
    pass


@strawberry.type(description="Perplexity: how recent its web sources are, and whether citations are kept.")
class PerplexityConnection(AiConnection):
    search_recency: PerplexitySearchRecency | None
    keep_citations: bool


@strawberry.type(description="Jasper: the brand voice (tone) and knowledge it generates with.")
class JasperConnection(AiConnection):
    tone_id: str | None
    knowledge_ids: list[str]


@strawberry.type(description="Canva: an OAuth connection (tokens stored encrypted, refreshed before expiry) and the "
                             "brand templates the copilot may autofill.")
class CanvaConnection(AiConnection):
    brand_template_ids: list[str]


def connection_from_view(c: ConnectionView) -> AiConnection:
    last = None
    if c.last_test_status is not None:
        last = AiConnectionTest(status=c.last_test_status, message=c.last_test_message,
                                latency_ms=c.last_test_latency_ms, tested_at=c.last_tested_at,
                                retry_after_seconds=c.retry_after)
    common = dict(provider=c.provider, credentials_set=c.credentials_set, credential_hint=c.credential_hint,
                  default_model=c.default_model, models=[AiModel.from_info(m) for m in c.models], last_test=last,
                  needs=c.needs, tokens_this_month=c.tokens_this_month, updated_at=c.updated_at)
    s = c.settings
    if c.provider is DomainProvider.OPENAI:
        return OpenAiConnection(**common, organization=s.get("organization"), project=s.get("project"))
    if c.provider is DomainProvider.ANTHROPIC:
        return AnthropicConnection(**common)
    if c.provider is DomainProvider.PERPLEXITY:
        recency = s.get("search_recency")
        return PerplexityConnection(**common, search_recency=PerplexitySearchRecency(recency) if recency else None,
                                    keep_citations=bool(s.get("keep_citations", True)))
    if c.provider is DomainProvider.JASPER:
        return JasperConnection(**common, tone_id=s.get("tone_id"), knowledge_ids=list(s.get("knowledge_ids", [])))
    return CanvaConnection(**common, brand_template_ids=list(s.get("brand_template_ids", [])))


CONNECTION_TYPES = (OpenAiConnection, AnthropicConnection, PerplexityConnection, JasperConnection, CanvaConnection)


@strawberry.type(description="A provider (or an operator's endpoint) and a model.")
class AiModelChoice:
    provider: AiProvider | None = strawberry.field(description="Null when the choice is an operator endpoint.")
    endpoint: str | None = strawberry.field(description="The operator-declared endpoint's name, when chosen.")
    model: str

    @classmethod
    def of(cls, c: ModelChoice) -> AiModelChoice:
        if c.provider.startswith(catalog.ENDPOINT_PREFIX):
            return cls(provider=None, endpoint=c.provider[len(catalog.ENDPOINT_PREFIX):], model=c.model)
        return cls(provider=DomainProvider(c.provider), endpoint=None, model=c.model)


@strawberry.type
class AiFeatureChoice:
    feature: CopilotFeature
    choice: AiModelChoice


@strawberry.type(description="An OpenAI-compatible endpoint the operator declared (self-hosted models); tenants "
                             "choose it by name.")
class AiEndpoint:
    name: str
    models: list[str]


@strawberry.type(description="The tenant's model choices: a default, and per feature.")
class AiSettings:
    default: AiModelChoice | None
    features: list[AiFeatureChoice]
    endpoints: list[AiEndpoint]
    updated_at: datetime | None

    @classmethod
    def of(cls, v: SettingsView, endpoints: list[catalog.Endpoint]) -> AiSettings:
        return cls(default=AiModelChoice.of(v.default) if v.default else None,
                   features=[AiFeatureChoice(feature=f, choice=AiModelChoice.of(c))
                             for f, c in sorted(v.features.items(), key=lambda kv: kv[0].value)],
                   endpoints=[AiEndpoint(name=e.name, models=list(e.models)) for e in endpoints],
                   updated_at=v.updated_at)
