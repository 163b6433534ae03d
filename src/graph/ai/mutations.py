"""AI settings: connect, test and remove providers; choose models (owners and admins)."""

from __future__ import annotations

import strawberry
from strawberry import UNSET

from domain.ai import catalog
from domain.ai import service as ai
from graph.ai.types import (
    AiConnection,
    AiProvider,
    AiSettings,
    CopilotFeature,
    PerplexitySearchRecency,
    connection_from_view,
)
from graph.core.context import Info
from graph.core.errors import UserError, payload
from graph.core.inputs import given


@strawberry.input(description="Canva's OAuth tokens, from the operator's Canva integration's authorization flow.")
class CanvaTokensInput:
    access_token: str
    refresh_token: str | None = None
    expires_in: int | None = strawberry.field(default=None, description="Seconds until the access token expires.")


@strawberry.input
class OpenAiSettingsInput:
    organization: str | None = None
    project: str | None = None


@strawberry.input
class PerplexitySettingsInput:
    search_recency: PerplexitySearchRecency | None = None
    keep_citations: bool = True


@strawberry.input
class JasperSettingsInput:
    tone_id: str | None = None
    knowledge_ids: list[str] = strawberry.field(default_factory=list)


@strawberry.input
class CanvaSettingsInput:
    brand_template_ids: list[str] = strawberry.field(default_factory=list)


@strawberry.input(description="Credentials are write-only: send `apiKey` (or `canvaTokens` for Canva) to set or "
                              "replace them, omit them to keep the stored ones. Send the settings of the "
                              "connection's own provider only; sent settings replace the stored ones.")
class SetAiConnectionInput:
    provider: AiProvider
    api_key: str | None = UNSET
    canva_tokens: CanvaTokensInput | None = UNSET
    openai: OpenAiSettingsInput | None = UNSET
    perplexity: PerplexitySettingsInput | None = UNSET
    jasper: JasperSettingsInput | None = UNSET
    canva: CanvaSettingsInput | None = UNSET
    default_model: str | None = UNSET


@strawberry.input
class AiProviderInput:
    provider: AiProvider


@strawberry.input(description="A provider and model, or an operator endpoint (by name) and one of its models.")
class AiModelChoiceInput:
    provider: AiProvider | None = None
    endpoint: str | None = None
    model: str


@strawberry.input(description="A feature's own choice; `choice` null makes it use the default again.")
class AiFeatureChoiceInput:
    feature: CopilotFeature
    choice: AiModelChoiceInput | None = None


@strawberry.input(description="Only the fields sent change; `default` null clears the default.")
class UpdateAiSettingsInput:
    default: AiModelChoiceInput | None = UNSET
    features: list[AiFeatureChoiceInput] | None = UNSET


@strawberry.type
class AiConnectionPayload:
    connection: AiConnection | None = None
    errors: list[UserError]


@strawberry.type
class RemoveAiConnectionPayload:
    removed_provider: AiProvider | None = strawberry.field(default=None, description="Null when nothing was removed.")
    errors: list[UserError]


@strawberry.type
class AiSettingsPayload:
    settings: AiSettings | None = None
    errors: list[UserError]


def _choice(c: AiModelChoiceInput) -> tuple[str, str]:
    if c.endpoint is not None:
        return catalog.ENDPOINT_PREFIX + c.endpoint, c.model
    return (c.provider.value if c.provider is not None else ""), c.model


@strawberry.type
class AiMutation:
    @strawberry.mutation(description="Connect a provider, or change its credentials, settings or default model "
                                     "(owners and admins). Copilot module.")
    async def set_ai_connection(self, info: Info, input: SetAiConnectionInput) -> AiConnectionPayload:
        async def run():
            sent = given(openai=input.openai, perplexity=input.perplexity, jasper=input.jasper, canva=input.canva)
            by_provider = {k: (dict(vars(v)) if v is not None else {}) for k, v in sent.items()}
            for key in ("search_recency",):
                if key in by_provider.get("perplexity", {}) and by_provider["perplexity"][key] is not None:
                    by_provider["perplexity"][key] = by_provider["perplexity"][key].value
            creds = None
            if input.api_key is not UNSET or input.canva_tokens is not UNSET:
                creds = {}
                if input.api_key not in (UNSET, None):
                    creds["api_key"] = input.api_key
                if input.canva_tokens not in (UNSET, None):
                    creds.update(vars(input.canva_tokens))
            return await ai.set_connection(
                info.context.principal, input.provider.value, credentials=creds, settings_by_provider=by_provider,
                default_model=input.default_model if input.default_model is not UNSET else None)

        return await payload(AiConnectionPayload, run, lambda c: {"connection": connection_from_view(c)})

    @strawberry.mutation(description="Test a connection with the provider's cheapest real call and record the "
                                     "result (owners and admins). Copilot module.")
    async def test_ai_connection(self, info: Info, input: AiProviderInput) -> AiConnectionPayload:
        return await payload(AiConnectionPayload,
                             lambda: ai.test_connection(info.context.principal, input.provider.value),
                             lambda c: {"connection": connection_from_view(c)})

    @strawberry.mutation(description="Remove a provider's connection and its credentials (owners and admins). "
                                     "Copilot module.")
    async def remove_ai_connection(self, info: Info, input: AiProviderInput) -> RemoveAiConnectionPayload:
        return await payload(RemoveAiConnectionPayload,
                             lambda: ai.remove_connection(info.context.principal, input.provider.value),
                             lambda _: {"removed_provider": input.provider})

    @strawberry.mutation(description="Choose the default and per-feature models (owners and admins). Copilot module.")
    async def update_ai_settings(self, info: Info, input: UpdateAiSettingsInput) -> AiSettingsPayload:
        async def run():
            principal = info.context.principal
            default = ... if input.default is UNSET else (_choice(input.default) if input.default else None)
            features = None
            if input.features not in (UNSET, None):
                features = {f.feature.value: (_choice(f.choice) if f.choice else None) for f in input.features}
            view = await ai.update_settings(principal, default, features)
            return view, await ai.endpoints_for(principal)

        return await payload(AiSettingsPayload, run, lambda r: {"settings": AiSettings.of(*r)})
