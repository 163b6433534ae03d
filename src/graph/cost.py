"""Query cost and throttling: every operation's static cost, computed before it runs from one
cost map (:data:`COST_MAP`), drawn from its consumer's leaky bucket (``domain/plans/bucket``),
and reported in ``extensions.cost`` (Shopify's shape). docs/partners.md, "Query cost" and
"Throttling".

**The cost of a selection.** An object is 1, a scalar or enum 0. A field listed in the map
carries its own ``weight`` (heavy work: previews, explanations, exports, every mutation 10) and
multiplies its selection by its size: ``first``/``last`` for a connection or a paged list (the
value sent, else the field's default; at most :data:`MAX_PAGE`, what the server serves), or a
declared bound for a list the server bounds itself. Inside a connection, ``edges``, their edge
objects and ``pageInfo`` cost nothing more (the page size already counts the nodes). Fragments
on several types of an interface or union all count (an upper bound). ``@skip``/``@include``
are honoured with the request's variables.

Written here rather than with ``graphql-complexity`` (docs/partners.md says why): one recursive
walk over graphql-core's AST with the schema's types, cached per (query text, operation, the
values of the variables that size a list).
"""

from __future__ import annotations

import logging
import math
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLIncludeDirective,
    GraphQLList,
    GraphQLNamedType,
    GraphQLSchema,
    GraphQLSkipDirective,
    InlineFragmentNode,
    SelectionSetNode,
    Undefined,
    VariableNode,
    get_named_type,
    get_nullable_type,
    get_operation_ast,
    is_leaf_type,
    visit,
)
from graphql.execution.values import (
    VariableValues,
    get_argument_values,
    get_directive_values,
    get_variable_values,
)
from graphql.language import Visitor
from starlette.websockets import WebSocket
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from domain.config import get_settings
from domain.plans import api_usage, bucket
from domain.plans.limits import Plan, plan
from domain.plans.quotas import tenant_plan
from domain.tenancy.policies import Principal, PrincipalKind

log = logging.getLogger(__name__)

MAX_PAGE = 100  # domain/pagination.MAX_PAGE: what a page serves at most
MUTATION_WEIGHT = 10
EVENT_COST = 1  # each subscription event delivered
CACHE_SIZE = 4096


@dataclass(frozen=True)
class Cost:
    """A field's entry: its own ``weight``; its selection counted ``size`` times, or ``first``/
    ``last`` times when ``paged`` (a connection, or a list that takes ``first``)."""

    weight: int = 1
    size: int = 1
    paged: bool = False


def paged(weight: int = 1) -> Cost:
    return Cost(weight=weight, paged=True)


def bounded(size: int, weight: int = 1) -> Cost:
    return Cost(weight=weight, size=size)


def heavy(weight: int) -> Cost:
    return Cost(weight=weight)


# The one cost map: every field that returns a list or a connection of objects (the test
# tests/api/test_cost.py fails on one missing), and every field doing heavy work. "*.errors",
# the payloads' user errors, cost nothing. A bounded list counts the domain's bound where it keeps
# one (brands, members, keys), else an estimate of a large case (a customer's tags, a campaign's
# segments); an explanation's children 5 at each level, since its levels multiply.
COST_MAP: dict[str, Cost] = {
    "*.errors": Cost(weight=0, size=0),
    # connections, and lists that take first
    "Query.customers": paged(), "Query.products": paged(), "Query.orders": paged(), "Query.segments": paged(),
    "Query.campaigns": paged(), "Query.conversations": paged(), "Query.jobs": paged(), "Query.auditLog": paged(),
    "Query.suppressions": paged(),
    "Brand.campaigns": paged(), "Conversation.messages": paged(), "Customer.orders": paged(),
    "Customer.timeline": paged(), "Customer.notes": paged(), "Segment.members": paged(), "Segment.history": paged(),
    "SegmentAutomation.executions": paged(), "SegmentAutomation.runs": paged(), "Query.clientApps": paged(),
    "Query.alerts": paged(), "Query.alertRules": paged(),
    # lists the server bounds
    "Query.nodes": bounded(100),  # graph/schema.MAX_NODES
    "Query.brands": bounded(50), "Viewer.brands": bounded(50), "ApiKey.brands": bounded(50),
    "Member.brands": bounded(50), "Customer.brands": bounded(50), "Query.members": bounded(100),
    "Query.apiKeys": bounded(100), "ClientApp.apiKeys": bounded(20), "Query.tags": bounded(100), "Customer.tags": bounded(20),
    "Customer.consents": bounded(20), "Order.items": bounded(50), "Campaign.segments": bounded(10),
    "Campaign.exclusionSegments": bounded(10), "Conversation.labels": bounded(10),
    "Query.segmentFields": bounded(50), "Query.customAttributes": bounded(100),
    "Query.segmentAutomations": bounded(50), "Query.deliveryProviders": bounded(10),
    "Query.conversationLabels": bounded(100), "Query.cannedResponses": bounded(100),
    "TenantPlan.limits": bounded(10),
    "SegmentsOverlap.segments": bounded(10), "SegmentsOverlap.pairs": bounded(45),  # at most 10 segments
    "SegmentUsage.campaigns": bounded(20), "SegmentUsage.automations": bounded(20), "SegmentUsage.segments": bounded(20),
    "CustomerPreferences.genres": bounded(5), "CustomerPreferences.types": bounded(5),  # the five heaviest
    "CustomerRecommendation.reasons": bounded(7),  # one per factor
    "RecommendationStats.bands": bounded(5),
    "Dashboard.segments": bounded(10), "Dashboard.campaigns": bounded(5),
    # AI settings: five providers plus the operator's endpoints; a provider's models
    "Query.aiConnections": bounded(10), "AiSettings.features": bounded(10), "AiSettings.endpoints": bounded(10),
    "AiConnection.models": bounded(50), "OpenAiConnection.models": bounded(50),
    "AnthropicConnection.models": bounded(50), "PerplexityConnection.models": bounded(50),
    "JasperConnection.models": bounded(50), "CanvaConnection.models": bounded(50),
    "AiConnectionPayload.connection": bounded(1),  # one provider's connection, not a page
    "CopilotUsage.rows": bounded(100),  # a month's provider × model × feature × member rows
    "Tenant.apiUsage": bounded(500, weight=10),  # domain/plans/api_usage.MAX_ROWS
    # heavy work
    "Query.previewSegment": paged(weight=50),  # its customers are its page
    "Query.recommendedCustomers": paged(weight=20),  # scores the brand's customers
    "Query.dashboard": heavy(10),
    "Query.explainSegment": heavy(50), "Query.segmentOverlap": heavy(20), "SegmentExplanationNode.children": bounded(5),
    "Query.previewCampaign": heavy(20), "Query.previewCampaignAudience": heavy(50),
    "Mutation.exportTimeline": heavy(50), "Mutation.importCustomers": heavy(50), "Mutation.importOrders": heavy(50),
    "Mutation.importSegmentMembers": heavy(50), "Mutation.refreshSegment": heavy(20),
    "Mutation.launchCampaign": heavy(20),
}
INTROSPECTION = {"__schema": 100, "__type": 10}  # flat: what they select costs nothing more


class CostRefused(Exception):
    def __init__(self, code: str, message: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.extra = code, message, extra or {}


def entry(parent: str, name: str) -> Cost | None:
    return COST_MAP.get(f"{parent}.{name}") or COST_MAP.get(f"*.{name}" if name == "errors" else "")


def _structural(type_name: str) -> bool:
    """Objects that only carry a page: an edge, page info, a connection's own object."""
    return type_name.endswith(("Edge", "Connection")) or type_name == "PageInfo"


class _Walk:
    __slots__ = ("schema", "fragments", "variables", "mutation")

    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode],
                 variables: VariableValues | None) -> None:
        self.schema, self.fragments, self.variables = schema, fragments, variables
        self.mutation = schema.mutation_type.name if schema.mutation_type else None

    def included(self, node: Any) -> bool:
        if not node.directives:
            return True
        skip = get_directive_values(GraphQLSkipDirective, node, self.variables)
        if skip and skip.get("if") is True:
            return False
        include = get_directive_values(GraphQLIncludeDirective, node, self.variables)
        return not (include and include.get("if") is False)

    def selection(self, selection_set: SelectionSetNode | None, parent: GraphQLNamedType) -> int:
        if selection_set is None:
            return 0
        total = 0
        for sel in selection_set.selections:
            if not self.included(sel):
                continue
            if isinstance(sel, FieldNode):
                name = sel.name.value
                if name.startswith("__"):
                    total += INTROSPECTION.get(name, 0)
                    continue
                field = parent.fields.get(name)  # type: ignore[attr-defined]
                if field is not None:  # validation has refused an unknown field already
                    total += self.field(sel, field, parent.name)
            elif isinstance(sel, InlineFragmentNode):
                t = self.schema.type_map[sel.type_condition.name.value] if sel.type_condition else parent
                total += self.selection(sel.selection_set, t)
            elif isinstance(sel, FragmentSpreadNode):
                frag = self.fragments.get(sel.name.value)
                if frag is not None:
                    total += self.selection(frag.selection_set, self.schema.type_map[frag.type_condition.name.value])
        return total

    def field(self, node: FieldNode, field: GraphQLField, parent: str) -> int:
        named = get_named_type(field.type)
        found = entry(parent, node.name.value)
        if parent == self.mutation:  # every mutation weighs at least MUTATION_WEIGHT
            found = Cost(max(MUTATION_WEIGHT, found.weight if found else 0), found.size if found else 1,
                         found.paged if found else False)
        if is_leaf_type(named):
            return found.weight if found else 0
        children = self.selection(node.selection_set, named)
        structural = _structural(named.name)
        if isinstance(get_nullable_type(field.type), GraphQLList):
            item = children if structural else 1 + children  # each object of a list counts
            if found is None:
                if _structural(parent):  # a connection's edges: its page size counts them
                    return item
                return 1 + MAX_PAGE * item  # not in the map (a test forbids it): the largest page
            return found.weight + self.size(node, field, found) * item
        if found is None:
            return children if structural else 1 + children
        return found.weight + self.size(node, field, found) * children  # a connection: its nodes count

    def size(self, node: FieldNode, field: GraphQLField, found: Cost) -> int:
        if not found.paged:
            return found.size
        try:
            args = get_argument_values(field, node, self.variables)
        except GraphQLError:  # execution refuses the same arguments, running nothing: size it by the defaults
            args = {name: arg.default_value for name, arg in field.args.items() if name in ("first", "last")
                    and arg.default_value is not Undefined}
        n = args.get("first") if args.get("first") is not None else args.get("last")
        if n is None:
            raise CostRefused("PAGE_SIZE_REQUIRED", f"{node.name.value} needs first or last (at most {MAX_PAGE})")
        return max(0, min(int(n), MAX_PAGE))


class _SizingVariables(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
        if node.name.value in ("first", "last", "if") and isinstance(node.value, VariableNode):
            self.names.add(node.value.name.value)


def _sizing_variables(document: DocumentNode) -> tuple[str, ...]:
    found = _SizingVariables()
    visit(document, found)
    return tuple(sorted(found.names))


# (query text, operation name) -> the names of the variables that size something; and
# (query text, operation name, their values) -> cost. Keyed by the text: a parsed document's
# hash walks its whole tree on every lookup.
_sizing: OrderedDict[tuple[str, str | None], tuple[str, ...]] = OrderedDict()
_costs: OrderedDict[tuple, int] = OrderedDict()


def _remember(table: OrderedDict, key: Any, value: Any) -> None:
    table[key] = value
    if len(table) > CACHE_SIZE:
        table.popitem(last=False)


def static_cost(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None,
                variables: dict[str, Any] | None, query: str | None = None) -> int:
    """The operation's cost before it runs (:class:`CostRefused` for a page without a size),
    cached by ``query`` (its text) when given."""
    raw = variables or {}
    if query is None:
        return _compute(schema, document, operation_name, raw)
    names = _sizing.get((query, operation_name))
    if names is None:
        names = _sizing_variables(document)
        _remember(_sizing, (query, operation_name), names)
    key = (query, operation_name, *(raw.get(n) for n in names))
    try:
        found = _costs.get(key)
    except TypeError:  # a sizing variable holds a list or an object: not hashable, not cached
        return _compute(schema, document, operation_name, raw)
    if found is None:
        found = _compute(schema, document, operation_name, raw)
        _remember(_costs, key, found)
    return found


def _compute(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None,
             raw: dict[str, Any]) -> int:
    op = get_operation_ast(document, operation_name)
    if op is None:
        return 0  # execution refuses it
    variables: VariableValues | None = None
    if op.variable_definitions:
        coerced = get_variable_values(schema, op.variable_definitions, raw)
        variables = coerced if isinstance(coerced, VariableValues) else None  # errors: execution reports them
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    root = schema.get_root_type(op.operation)
    assert root is not None
    return _Walk(schema, fragments, variables).selection(op.selection_set, root)


# --- the consumer and its bucket ---------------------------------------------------------------


def consumer(principal: Principal) -> tuple[str, uuid.UUID, str | None]:
    """Whose bucket an operation draws from: (kind, id, a rate plan overriding the tenant's).
    A client app (``principal.client_app``, when the credential belongs to one), else the API
    key, else the person (their member id)."""
    app = getattr(principal, "client_app", None)
    if app is not None:
        return "client_app", app.id, getattr(app, "rate_plan", None)
    if principal.kind is PrincipalKind.API_KEY:
        return "api_key", principal.id, None
    return "user", principal.tenant_facing_id, None


async def limits_for(principal: Principal) -> tuple[str, uuid.UUID, Plan]:
    kind, cid, rate_plan = consumer(principal)
    p = plan(rate_plan) if rate_plan else (await tenant_plan(principal.tenant_id)).plan
    return kind, cid, p


def bucket_key(principal: Principal, kind: str, cid: uuid.UUID) -> str:
    return f"{principal.tenant_id}:{kind}:{cid}"


def throttle_status(status: bucket.Status) -> dict[str, Any]:
    return {"maximumAvailable": status.maximum, "currentlyAvailable": math.floor(status.available),
            "restoreRate": status.rate}


class QueryCost(SchemaExtension):
    """Before execution: the operation's static cost, refused past the plan's single-operation
    maximum (``MAX_COST_EXCEEDED``, HTTP 400) or past what its bucket holds (``THROTTLED``, HTTP
    429 with ``Retry-After``); both run nothing. Over a websocket a subscription's cost is taken
    at subscribe, and :data:`EVENT_COST` for each event delivered (taken even past empty: events
    are never dropped, the consumer's next operations wait instead). Every answer carries
    ``extensions.cost``; ``actualQueryCost`` equals ``requestedQueryCost`` (nothing is refunded).
    With ``API_THROTTLING=0`` the cost is reported and the usage recorded, and nothing is refused
    nor drawn from a bucket."""

    def __init__(self, *, enforce: bool = True) -> None:
        self.enforce = enforce
        self.cost: dict[str, Any] | None = None

    def _refuse(self, code: str, message: str, status: int, extra: dict[str, Any] | None = None,
                retry_after: int | None = None) -> None:
        ctx = self.execution_context
        error = GraphQLError(message, extensions={"code": code, **(extra or {})})
        if ctx.operation_type is OperationType.SUBSCRIPTION:
            raise error  # Strawberry answers an exception of on_execute as the stream's one error
        ctx.result = ExecutionResult(data=None, errors=[error])
        response = getattr(ctx.context, "response", None)
        if response is not None and not isinstance(response, WebSocket):
            response.status_code = status
            if retry_after is not None:
                response.headers["Retry-After"] = str(retry_after)

    async def on_execute(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        principal = getattr(ctx.context, "principal_", None)
        if ctx.result is not None or principal is None or ctx.graphql_document is None:
            yield
            return
        try:
            requested = static_cost(ctx.schema._schema, ctx.graphql_document, ctx.operation_name, ctx.variables,
                                    ctx.query)
        except CostRefused as e:
            self._refuse(e.code, e.message, 400)
            yield
            return
        if not self.enforce:
            kind, cid, _ = consumer(principal)
            self.cost = {"requestedQueryCost": requested, "actualQueryCost": requested, "throttleStatus": None}
            api_usage.note(principal.tenant_id, kind, cid, cost=requested, throttled=False)
            yield
            return
        kind, cid, p = await limits_for(principal)
        if requested > p.max_query_cost:
            self.cost = {"requestedQueryCost": requested, "actualQueryCost": None, "throttleStatus": None}
            api_usage.note(principal.tenant_id, kind, cid, cost=0, throttled=True)
            self._refuse("MAX_COST_EXCEEDED", f"this operation costs {requested}, more than the {p.max_query_cost} "
                         f"one operation may cost on the {p.name} plan", 400,
                         {"cost": requested, "maximumCost": p.max_query_cost})
            yield
            return
        status = await bucket.take(bucket_key(principal, kind, cid), requested, p.bucket_maximum, p.restore_rate)
        self.cost = {"requestedQueryCost": requested, "actualQueryCost": requested if status.taken else None,
                     "throttleStatus": throttle_status(status)}
        api_usage.note(principal.tenant_id, kind, cid, cost=requested if status.taken else 0,
                       throttled=not status.taken)
        if not status.taken:
            self._refuse("THROTTLED", f"throttled: this operation costs {requested} and "
                         f"{math.floor(status.available)} of {status.maximum} are available, restoring "
                         f"{status.rate} a second; retry in {status.retry_after} s", 429,
                         {"cost": requested, "retryAfter": status.retry_after}, retry_after=status.retry_after)
        yield

    async def on_stream_result(self, result: Any) -> AsyncIterator[None]:
        """Each event a subscription delivers through Strawberry's stream (a refusal is free)."""
        if getattr(result, "data", None) is not None:
            await charge_event(self.execution_context.context)
        yield None

    def get_results(self) -> dict[str, Any]:
        return {"cost": self.cost} if self.cost is not None else {}


async def charge_event(context: Any) -> None:
    """Take :data:`EVENT_COST` for one subscription event delivered to ``context``'s consumer,
    even past empty (with ``API_THROTTLING`` on), and count it in the consumer's usage (its cost,
    not a request). The shared path, ``graph/core/fanout.deliver``, calls it too."""
    principal = getattr(context, "principal_", None)
    if principal is None:
        return
    try:
        if get_settings().throttling:
            kind, cid, p = await limits_for(principal)
            await bucket.charge(bucket_key(principal, kind, cid), EVENT_COST, p.bucket_maximum, p.restore_rate)
        else:
            kind, cid, _ = consumer(principal)
        api_usage.note(principal.tenant_id, kind, cid, cost=EVENT_COST, throttled=False, request=False)
    except Exception:  # an event is never lost to its accounting
        log.warning("could not charge a subscription event", exc_info=True)


def cost_extension(settings: Any) -> Callable[[], QueryCost]:
    return lambda: QueryCost(enforce=settings.throttling)
