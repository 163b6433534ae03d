"""AI settings: the connections summary and the model choices."""

from __future__ import annotations

import strawberry

from domain.ai import service as ai
from graph.ai.types import AiConnection, AiSettings, connection_from_view
from graph.core.context import Info


@strawberry.type
class AiQuery:
    @strawberry.field(description="Every AI provider's connection: configured or not, what it still needs, its "
                                  "last test, default model, models and this month's usage. Copilot module.")
    async def ai_connections(self, info: Info) -> list[AiConnection]:
        return [connection_from_view(c) for c in await ai.connections(info.context.principal)]

    @strawberry.field(description="The tenant's default and per-feature model choices, and the operator's "
                                  "OpenAI-compatible endpoints it may choose. Copilot module.")
    async def ai_settings(self, info: Info) -> AiSettings:
        principal = info.context.principal
        view = await ai.get_settings_view(principal)
        return AiSettings.of(view, await ai.endpoints_for(principal))
