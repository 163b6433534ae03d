"""The schema: each area's Query, Mutation and Subscription types merged into one."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry import relay
from strawberry.relay import GlobalIDValueError
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from domain.config import Settings, get_settings
from domain.errors import DomainError, ErrorCode, PermissionDenied
from graph.ai.copilot import CopilotMutation, CopilotQuery, CopilotSubscription
from graph.ai.mutations import AiMutation
from graph.ai.queries import AiQuery
from graph.ai.types import CONNECTION_TYPES
from graph.audit.queries import AuditQuery
from graph.audit.subscriptions import AuditSubscription
from graph.automations.mutations import AutomationMutation
from graph.automations.queries import AutomationQuery
from graph.campaigns.mutations import CampaignMutation
from graph.campaigns.queries import CampaignQuery
from graph.campaigns.subscriptions import CampaignSubscription
from graph.clients.mutations import ClientAppMutation
from graph.clients.queries import ClientAppQuery
from graph.commerce.mutations import CommerceMutation, OrderImportMutation
from graph.commerce.queries import CommerceQuery
from graph.conversations.mutations import ConversationMutation
from graph.conversations.queries import ConversationQuery
from graph.conversations.subscriptions import ConversationSubscription
from graph.core.context import Info
from graph.core.execution import Execution, ExecutionWithoutSuggestions
from graph.core.scalars import SCALARS
from graph.customers.mutations import (
    CustomerImportMutation,
    CustomerMutation,
    CustomerOverrideMutation,
    ProfileMutation,
)
from graph.customers.queries import CustomerQuery
from graph.delivery.mutations import DeliveryMutation
from graph.delivery.queries import DeliveryQuery
from graph.extensions import extensions
from graph.jobs.queries import JobQuery
from graph.jobs.subscriptions import JobSubscription
from graph.insights.alerts import AlertMutation, AlertQuery, AlertSubscription
from graph.insights.queries import InsightQuery
from graph.offers.mutations import OfferMutation
from graph.offers.queries import OfferQuery
from graph.segments.mutations import SegmentMutation
from graph.segments.queries import SegmentQuery
from graph.segments.subscriptions import SegmentSubscription
from graph.tenancy.mutations import TenancyMutation, TenantSettingsMutation
from graph.tenancy.queries import TenancyQuery
from graph.timeline.mutations import TimelineMutation
from graph.timeline.types import TIMELINE_TYPES

MAX_NODES = 100


@strawberry.type
class NodeQuery:
    @strawberry.field(description="Any object by its global id.")
    async def node(
        self, info: Info, id: Annotated[relay.GlobalID, strawberry.argument(description="The ID of the object.")]
    ) -> relay.Node | None:
        """Every Node type resolves here under the caller's scope; an id of no Node type, like one
        the caller may not see, reads as null."""
        try:
            node_type = id.resolve_type(info)
        except GlobalIDValueError:
            return None
        (found,) = list(await node_type.resolve_nodes(info=info, node_ids=[id.node_id], required=False))
        return found

    @strawberry.field(description=f"Objects by their global ids, in the order asked (at most {MAX_NODES}); null "
                                  "for an id of no Node type, one the caller may not see, or of a type the caller's role may "
                                  "not read. One lookup per type.")
    async def nodes(
        self, info: Info,
        ids: Annotated[list[relay.GlobalID], strawberry.argument(description="The IDs of the objects.")],
    ) -> list[relay.Node | None]:
        if len(ids) > MAX_NODES:
            raise DomainError(f"at most {MAX_NODES} ids at once", field="ids", code=ErrorCode.LIMIT_EXCEEDED)
        by_type: dict[type, list[int]] = {}
        for i, gid in enumerate(ids):
            try:
                by_type.setdefault(gid.resolve_type(info), []).append(i)
            except GlobalIDValueError:
                continue
        out: list[relay.Node | None] = [None] * len(ids)
        for node_type, places in by_type.items():
            try:
                found = await node_type.resolve_nodes(info=info, node_ids=[ids[i].node_id for i in places],
                                                      required=False)
            except PermissionDenied:  # a type the caller's role may not read: its ids read as null
                continue
            for i, node in zip(places, list(found), strict=True):
                out[i] = node
        return out


Query = merge_types("Query", (NodeQuery, TenancyQuery, CustomerQuery, CommerceQuery, SegmentQuery,
                              AutomationQuery, CampaignQuery, DeliveryQuery, ConversationQuery, JobQuery,
                              AuditQuery, ClientAppQuery, OfferQuery, InsightQuery, AlertQuery, AiQuery, CopilotQuery))
Mutation = merge_types("Mutation", (TenancyMutation, CustomerMutation, CommerceMutation, SegmentMutation,
                                    AutomationMutation, TenantSettingsMutation, CampaignMutation, DeliveryMutation,
                                    ConversationMutation, CustomerImportMutation, OrderImportMutation,
                                    ProfileMutation, TimelineMutation, ClientAppMutation, OfferMutation,
                                    CustomerOverrideMutation, AlertMutation, AiMutation, CopilotMutation))
Subscription = merge_types("Subscription", (AuditSubscription, JobSubscription, SegmentSubscription,
                                            CampaignSubscription, ConversationSubscription, CopilotSubscription,
                                            AlertSubscription))


class Schema(strawberry.Schema):
    def process_errors(self, errors, execution_context=None) -> None:
        """Client errors are the client's to read; internal ones are logged, once, with the
        request id by MaskInternalErrors."""


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or get_settings()
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=(*TIMELINE_TYPES, *CONNECTION_TYPES),
        extensions=extensions(settings),
        config=StrawberryConfig(scalar_map=SCALARS),
        execution_context_class=Execution if settings.introspection else ExecutionWithoutSuggestions,
    )


def export_sdl() -> str:
    return build_schema().as_str() + "\n"
