"""Copilot runs: a request to draft, its execution against the tenant's chosen provider, the text
streamed live, the checked result, and the usage it meters.

Starting a run reads what grounds it (the brand's voice, the campaign, …) under the caller's
permissions, builds the prompt, checks the quota and stores the run (``queued``). Streaming runs
are then executed by the ``ai.runs.run_copilot`` actor on a worker; the text goes out as it
arrives, each piece appended straight to the Redis event stream (topic ``copilot_run:<id>``:
``{"d": piece, "s": seq}``), so the API's subscribers get it within milliseconds; the final state
is committed with the usage and announced through the outbox (``{"final": true}``). A worker, not
the API process, runs them: a run outlives the request (and a restart of the API process that
took it), and the copilot's load is scaled with the workers. The non-streaming path (``wait``)
executes the same code in the API process while the request waits, bounded by
``AI_TIMEOUT_SECONDS``: a simple client holds its request anyway, and no message is sent.

A run is claimed once (``queued`` → ``running``): a redelivered message does nothing. A run that
a dead worker left ``queued`` or ``running`` past its time limit reads as failed with
``AI_PROVIDER_TIMEOUT``. Nothing the copilot drafts is sent, saved elsewhere or launched.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.ai import catalog, generation, prompts, usage
from domain.ai.models import (
    AiConnection,
    AiSettings,
    AiUsage,
    CopilotRun,
    Feature,
    Provider,
    RunStatus,
)
from domain.ai.service import FEATURE, load_credentials
from domain.campaigns import templates
from domain.campaigns.models import Campaign
from domain.commerce.models import Order
from domain.conversations.models import CannedResponse, Conversation, Message
from domain.customers.models import Customer, CustomerBrand
from domain.customers.service import load_visible
from domain.errors import DomainError, ErrorCode, InvalidState, NotFound, Validator
from domain.pagination import PageRequest
from domain.platform import events, outbox
from domain.platform import redis as redis_mod
from domain.platform.broker import tenant_actor
from domain.platform.db import tenant_session
from domain.profiles.models import CustomerProfile
from domain.segments import inspection
from domain.segments.catalogue import field_catalogue
from domain.segments.models import Segment, SegmentMembership
from domain.segments.service import dsl_context
from domain.tenancy import scoping
from domain.tenancy.models import Brand
from domain.tenancy.policies import Action, Principal, PrincipalKind, Role, authorize
from domain.tenancy.tenants import require_feature
from domain.timeline.models import TimelineEntry

log = logging.getLogger(__name__)

TEXT_PROVIDERS = (Provider.OPENAI, Provider.ANTHROPIC, Provider.PERPLEXITY, Provider.JASPER)
STALE_MARGIN = timedelta(seconds=60)
TEMPLATE_VARIABLES = ["customer.first_name", "customer.last_name", "brand.name"]
MAX_TEXT = 20_000


def topic(run_id: uuid.UUID) -> str:
    return f"copilot_run:{run_id}"


def time_limit() -> timedelta:
    from domain.config import get_settings  # read per call: tests change the setting

    return timedelta(seconds=get_settings().ai_timeout_seconds) + STALE_MARGIN


# --- choosing the provider and model ------------------------------------------------------------


async def _choice(s: AsyncSession, tenant_id: uuid.UUID, feature: Feature) -> tuple[str, str]:
    """The feature's own choice, else the tenant's default, else the first connected text provider
    with its default model."""
    settings = await s.get(AiSettings, tenant_id)
    conns = {r.provider: r for r in (await s.scalars(select(AiConnection).where(
        AiConnection.tenant_id == tenant_id))).all()}
    chosen = None
    if settings is not None:
        own = (settings.feature_models or {}).get(feature.value)
        if own:
            chosen = (own["provider"], own["model"])
        elif settings.default_provider and settings.default_model:
            chosen = (settings.default_provider, settings.default_model)
    if chosen is None:
        for p in TEXT_PROVIDERS:
            row = conns.get(p.value)
            if row is not None and row.credentials_encrypted:
                chosen = (p.value, row.default_model or catalog.default_model(p))
                break
    if chosen is None:
        raise InvalidState("no AI provider is connected: an owner or admin adds an OpenAI, Anthropic, Perplexity or "
                           "Jasper key in the AI settings (aiConnections says what each needs)", field=None)
    provider, model = chosen
    if not provider.startswith(catalog.ENDPOINT_PREFIX):
        row = conns.get(provider)
        if row is None or not row.credentials_encrypted:
            raise InvalidState(f"the copilot is set to use {provider}, which has no credentials: add them in the AI "
                               "settings or choose another provider", field=None)
        if Provider(provider) not in TEXT_PROVIDERS:
            raise InvalidState(f"{provider} does not draft text; choose another provider for this feature", field=None)
    return provider, model


# --- starting runs -------------------------------------------------------------------------------


async def _create(s: AsyncSession, principal: Principal, brand_id: uuid.UUID, feature: Feature, input_ref: str | None,
                  prompt: prompts.Prompt, extra: dict[str, Any]) -> CopilotRun:
    await usage.check_quota(s, principal.tenant_id)
    provider, model = await _choice(s, principal.tenant_id, feature)
    run = CopilotRun(id=uuid.uuid4(), tenant_id=principal.tenant_id, brand_id=brand_id, feature=feature.value,
                     provider=provider, model=model, input_ref=input_ref,
                     params={"prompt": prompt.to_params(), **extra}, status=RunStatus.QUEUED.value,
                     requested_by=str(principal.tenant_facing_id), requested_by_label=principal.label)
    s.add(run)
    await s.flush()
    return run


async def _launch(principal: Principal, run: CopilotRun, s: AsyncSession, wait: bool) -> None:
    if not wait:
        outbox.send(s, run_copilot, principal.tenant_id, str(run.id))


async def _finish_start(principal: Principal, run_id: uuid.UUID, wait: bool) -> CopilotRun:
    if wait:
        await execute(principal.tenant_id, run_id)
    return await get_run(principal, run_id)


async def rewrite(principal: Principal, brand_id: uuid.UUID, text: str, mode: str, *, tone: str | None = None,
                  locale: str | None = None, wait: bool = False) -> CopilotRun:
    """Rewrite ``text`` in the brand's voice: a tone, shorter, longer, fixed, or translated."""
    authorize(principal, Action.COPILOT_DRAFT, brand_id=brand_id)
    v = Validator()
    if not isinstance(text, str) or not text.strip():
        v.add("text", "the text to rewrite is required", ErrorCode.REQUIRED)
    elif len(text) > MAX_TEXT:
        v.add("text", f"the text is longer than {MAX_TEXT} characters", ErrorCode.TOO_LONG)
    if mode not in prompts.REWRITE_MODES:
        v.add("mode", f"mode must be one of {', '.join(prompts.REWRITE_MODES)}")
    if mode == "tone" and tone not in prompts.TONES:
        v.add("tone", f"tone must be one of {', '.join(prompts.TONES)}")
    if mode == "translate" and not (isinstance(locale, str) and re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?", locale)):
        v.add("locale", "a locale such as fr or pt-BR is required to translate")
    v.check()
    async with tenant_session(principal.tenant_id) as s:
        await require_feature(s, principal.tenant_id, FEATURE)
        brand = await scoping.check_brand(s, principal, brand_id)
        prompt = prompts.rewrite(brand, text, mode, tone, locale)
        run = await _create(s, principal, brand_id, Feature.REWRITE, None, prompt,
                            {"mode": mode, "tone": tone, "locale": locale})
        await _launch(principal, run, s, wait)
        run_id = run.id
    return await _finish_start(principal, run_id, wait)


async def draft_campaign_copy(principal: Principal, campaign_id: uuid.UUID, *, variants: int = 3,
                              brief: str | None = None, wait: bool = False) -> CopilotRun:
    """Variants of a campaign's content for its channel, grounded in the brand's voice and the
    campaign's audience; each checked like saved content (templates, limits, SMS segments)."""
    authorize(principal, Action.COPILOT_CAMPAIGN)
    v = Validator()
    if not 1 <= variants <= 5:
        v.add("variants", "between 1 and 5 variants")
    if brief is not None and len(brief) > 4000:
        v.add("brief", "the brief is longer than 4000 characters", ErrorCode.TOO_LONG)
    v.check()
    async with tenant_session(principal.tenant_id) as s:
        await require_feature(s, principal.tenant_id, FEATURE)
        campaign = await scoping.load_brand_owned(s, principal, Campaign, campaign_id, what="campaign",
                                                  field="campaignId")
        authorize(principal, Action.COPILOT_CAMPAIGN, brand_id=campaign.brand_id)
        brand = await scoping.check_brand(s, principal, campaign.brand_id, field="campaignId")
        segments = []
        if campaign.segment_ids:
            rows = (await s.execute(select(Segment.name, Segment.member_count).where(
                Segment.tenant_id == principal.tenant_id, Segment.brand_id == campaign.brand_id,
                Segment.id.in_(campaign.segment_ids)))).all()
            segments = [{"name": n, "size": c} for n, c in rows]
        attrs = (await dsl_context(s, principal.tenant_id)).custom_attributes
        variables = TEMPLATE_VARIABLES + [f"customer.attributes.{a}" for a in sorted(attrs)[:20]]
        prompt = prompts.campaign_copy(brand, campaign.channel, variants,
                                       {"name": campaign.name, "segments": segments}, brief, variables)
        run = await _create(s, principal, campaign.brand_id, Feature.CAMPAIGN_COPY, f"Campaign:{campaign.id}", prompt,
                            {"channel": campaign.channel, "variants": variants})
        await _launch(principal, run, s, wait)
        run_id = run.id
    return await _finish_start(principal, run_id, wait)


async def _conversation_grounding(s: AsyncSession, principal: Principal, conversation_id: uuid.UUID):  # noqa: ANN202
    """The conversation (visible to the principal, or NOT_FOUND), its brand, the thread (last 30
    messages), the customer's profile for that brand and recent orders, and the brand's canned
    responses: read under the principal's permissions."""
    conversation = await scoping.load_brand_owned(s, principal, Conversation, conversation_id,
                                                  what="conversation", field="conversationId")
    authorize(principal, Action.COPILOT_DRAFT, brand_id=conversation.brand_id)
    brand = await scoping.check_brand(s, principal, conversation.brand_id, field="conversationId")
    tid = principal.tenant_id
    messages = list(reversed((await s.scalars(select(Message).where(
        Message.tenant_id == tid, Message.conversation_id == conversation.id)
        .order_by(Message.created_at.desc()).limit(30))).all()))
    thread = prompts.thread_text([{"direction": m.direction, "kind": m.kind, "author": m.author_label or m.author_type,
                                   "text": m.body_text, "at": m.created_at.isoformat(timespec="minutes")}
                                  for m in messages])
    customer = await s.get(Customer, (tid, conversation.customer_id))
    profile = await s.get(CustomerProfile, (tid, conversation.brand_id, conversation.customer_id))
    facts: dict[str, Any] = {"first_name": customer.first_name if customer else None,
                             "city": customer.city if customer else None,
                             "locale": customer.locale if customer else None}
    if profile is not None:
        facts.update(orders=profile.total_order_count, total_spent_cents=profile.total_order_value_cents,
                     last_order_at=profile.last_order_at)
    orders = [{"order": o.external_order_id, "status": o.status, "total_cents": o.total_cents, "currency": o.currency,
               "placed_at": o.placed_at} for o in (await s.scalars(select(Order).where(
                   Order.tenant_id == tid, Order.brand_id == conversation.brand_id,
                   Order.customer_id == conversation.customer_id).order_by(Order.placed_at.desc()).limit(5))).all()]
    canned = [{"title": c.title, "body": c.body[:1000]} for c in (await s.scalars(select(CannedResponse).where(
        CannedResponse.tenant_id == tid, CannedResponse.brand_id == conversation.brand_id)
        .order_by(CannedResponse.shortcode).limit(10))).all()]
    return conversation, brand, thread, facts, orders, canned


async def suggest_reply(principal: Principal, conversation_id: uuid.UUID, *, instructions: str | None = None,
                        wait: bool = False) -> CopilotRun:
    """A reply drafted for an agent to review: grounded in the thread, the customer's profile and
    orders, and the brand's canned responses. Never sent by the copilot."""
    authorize(principal, Action.COPILOT_DRAFT)
    if instructions is not None and len(instructions) > 2000:
        raise DomainError("the instructions are longer than 2000 characters", field="instructions",
                          code=ErrorCode.TOO_LONG)
    async with tenant_session(principal.tenant_id) as s:
        await require_feature(s, principal.tenant_id, FEATURE)
        conversation, brand, thread, facts, orders, canned = await _conversation_grounding(s, principal,
                                                                                          conversation_id)
        prompt = prompts.reply_suggestion(brand, conversation.channel, thread, facts, orders, canned, instructions)
        run = await _create(s, principal, conversation.brand_id, Feature.REPLY_SUGGESTION,
                            f"Conversation:{conversation.id}", prompt, {"channel": conversation.channel})
        await _launch(principal, run, s, wait)
        run_id = run.id
    return await _finish_start(principal, run_id, wait)


async def summarize_conversation(principal: Principal, conversation_id: uuid.UUID, *, wait: bool = False) -> CopilotRun:
    authorize(principal, Action.COPILOT_DRAFT)
    async with tenant_session(principal.tenant_id) as s:
        await require_feature(s, principal.tenant_id, FEATURE)
        conversation, brand, thread, facts, _, _ = await _conversation_grounding(s, principal, conversation_id)
        prompt = prompts.conversation_summary(brand, thread, facts)
        run = await _create(s, principal, conversation.brand_id, Feature.SUMMARY, f"Conversation:{conversation.id}",
                            prompt, {})
        await _launch(principal, run, s, wait)
        run_id = run.id
    return await _finish_start(principal, run_id, wait)


async def summarize_customer(principal: Principal, brand_id: uuid.UUID, customer_id: uuid.UUID, *,
                             wait: bool = False) -> CopilotRun:
    """A customer as one brand knows them: the profile, the recent timeline (the brand's entries and
    brand-less ones), open conversations with the brand and its segments the customer is in."""
    authorize(principal, Action.COPILOT_DRAFT, brand_id=brand_id)
    tid = principal.tenant_id
    async with tenant_session(tid) as s:
        await require_feature(s, tid, FEATURE)
        brand = await scoping.check_brand(s, principal, brand_id)
        customer = await load_visible(s, principal, customer_id)
        known = await s.scalar(select(CustomerBrand.customer_id).where(
            CustomerBrand.tenant_id == tid, CustomerBrand.brand_id == brand_id, CustomerBrand.customer_id == customer.id))
        if known is None:
            raise NotFound("customer not found", field="customerId")
        profile = await s.get(CustomerProfile, (tid, brand_id, customer.id))
        facts: dict[str, Any] = {"first_name": customer.first_name, "city": customer.city, "locale": customer.locale}
        if profile is not None:
            facts.update(orders=profile.total_order_count, total_spent_cents=profile.total_order_value_cents,
                         average_order_cents=profile.average_order_value_cents, first_order_at=profile.first_order_at,
                         last_order_at=profile.last_order_at, orders_last_365d=profile.orders_last_365d)
        timeline = [{"at": e.occurred_at, "kind": e.kind, "data": e.data} for e in (await s.scalars(
            select(TimelineEntry).where(TimelineEntry.tenant_id == tid, TimelineEntry.customer_id == customer.id,
                                        or_(TimelineEntry.brand_id == brand_id, TimelineEntry.brand_id.is_(None)))
            .order_by(TimelineEntry.occurred_at.desc()).limit(20))).all()]
        talks = [{"subject": c.subject, "channel": c.channel, "status": c.status, "priority": c.priority,
                  "last_message_at": c.last_message_at} for c in (await s.scalars(select(Conversation).where(
                      Conversation.tenant_id == tid, Conversation.brand_id == brand_id,
                      Conversation.customer_id == customer.id, Conversation.status != "resolved")
                      .order_by(Conversation.last_message_at.desc()).limit(5))).all()]
        segment_names = list((await s.scalars(select(Segment.name).join(SegmentMembership, and_(
            SegmentMembership.tenant_id == Segment.tenant_id, SegmentMembership.segment_id == Segment.id)).where(
            Segment.tenant_id == tid, Segment.brand_id == brand_id, SegmentMembership.customer_id == customer.id,
            SegmentMembership.exited_at.is_(None)).order_by(Segment.name).limit(20))).all())
        prompt = prompts.customer_summary(brand, facts, timeline, talks, segment_names)
        run = await _create(s, principal, brand_id, Feature.SUMMARY, f"Customer:{customer.id}", prompt, {})
        await _launch(principal, run, s, wait)
        run_id = run.id
    return await _finish_start(principal, run_id, wait)


async def draft_segment(principal: Principal, brand_id: uuid.UUID, description: str, *,
                        wait: bool = False) -> CopilotRun:
    """A segment definition from words, in the rule language, over the brand's field catalogue
    only; checked by the rule validator with its preview count and an explanation of each rule.
    An invalid answer is repaired once, then refused. Nothing is saved: a person creates the
    segment from the result (``createSegment``)."""
    authorize(principal, Action.COPILOT_CAMPAIGN, brand_id=brand_id)
    v = Validator()
    if not isinstance(description, str) or not description.strip():
        v.add("description", "describe the customers", ErrorCode.REQUIRED)
    elif len(description) > 2000:
        v.add("description", "at most 2000 characters", ErrorCode.TOO_LONG)
    v.check()
    fields = [{"kind": f.kind.value, "field": f.field, "type": f.value_type.value,
               "operators": [o.value for o in f.operators], "values": list(f.enum_values or f.suggestions)[:10]}
              for f in await field_catalogue(principal, brand_id)]  # the brand's own catalogue
    async with tenant_session(principal.tenant_id) as s:
        await require_feature(s, principal.tenant_id, FEATURE)
        brand = await scoping.check_brand(s, principal, brand_id)
        prompt = prompts.segment(brand, description, fields)
        run = await _create(s, principal, brand_id, Feature.SEGMENT, None, prompt, {})
        await _launch(principal, run, s, wait)
        run_id = run.id
    return await _finish_start(principal, run_id, wait)


def _run_principal(tenant_id: uuid.UUID, brand_id: uuid.UUID) -> Principal:
    """Who checks a drafted segment: a reader of the run's brand only (the rule validator and the
    preview take a principal)."""
    return Principal(tenant_id=tenant_id, kind=PrincipalKind.API_KEY, id=uuid.UUID(int=0), role=Role.MARKETER,
                     label="copilot", brand_ids=frozenset({brand_id}))


async def _check_segment(tenant_id: uuid.UUID, brand_id: uuid.UUID, text: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The checked result, or the reasons it is not valid."""
    try:
        data = json.loads(_FENCE.sub("", text.strip()))
        definition = data["definition"]
        explanation = data.get("explanation") or []
        assert isinstance(definition, dict) and isinstance(explanation, list)
    except (ValueError, KeyError, AssertionError, TypeError):
        return None, ["the answer is not a JSON object with a definition"]
    definition.setdefault("version", 1)
    try:
        found = await inspection.preview(_run_principal(tenant_id, brand_id), brand_id, definition,
                                         page=PageRequest(size=0))
    except DomainError as exc:
        return None, [f"{e.field}: {e.message}" if e.field else e.message for e in exc.errors]
    return {"definition": definition, "count": found.total,
            "explanation": [{"rule": str(x.get("rule", "")), "meaning": str(x.get("meaning", ""))}
                            for x in explanation if isinstance(x, dict)][:50]}, []


# --- reading -------------------------------------------------------------------------------------


async def _expire_if_stale(s: AsyncSession, run: CopilotRun) -> CopilotRun:
    if run.status in (RunStatus.QUEUED.value, RunStatus.RUNNING.value) and \
            run.created_at < datetime.now(UTC) - time_limit():
        await s.execute(update(CopilotRun).where(
            CopilotRun.tenant_id == run.tenant_id, CopilotRun.id == run.id,
            CopilotRun.status.in_([RunStatus.QUEUED.value, RunStatus.RUNNING.value])).values(
            status=RunStatus.FAILED.value, error_code=ErrorCode.AI_PROVIDER_TIMEOUT.value,
            error_message="the run did not finish in time", finished_at=func.now()))
        outbox.publish(s, run.tenant_id, topic(run.id), {"final": True})
        await s.refresh(run)
    return run


async def get_run(principal: Principal, run_id: uuid.UUID, field: str = "id") -> CopilotRun:
    authorize(principal, Action.COPILOT_READ)
    async with tenant_session(principal.tenant_id) as s:
        await require_feature(s, principal.tenant_id, FEATURE)
        run = await scoping.load_brand_owned(s, principal, CopilotRun, run_id, what="copilot run", field=field)
        return await _expire_if_stale(s, run)


async def runs_by_ids(principal: Principal, ids: list[uuid.UUID]) -> dict[uuid.UUID, CopilotRun]:
    authorize(principal, Action.COPILOT_READ)
    async with tenant_session(principal.tenant_id) as s:
        await require_feature(s, principal.tenant_id, FEATURE)
        return await scoping.by_ids(s, principal, CopilotRun, ids)


def is_finished(run: CopilotRun) -> bool:
    return run.status in (RunStatus.SUCCEEDED.value, RunStatus.FAILED.value)


@dataclass(frozen=True)
class UsageRow:
    provider: str
    model: str
    feature: str
    principal_id: str
    runs: int
    tokens_in: int
    tokens_out: int
    cost_micro_usd: int


@dataclass(frozen=True)
class UsageReport:
    month: date
    rows: list[UsageRow]
    limit: int | None
    used: int


async def usage_report(principal: Principal, month: date | None = None) -> UsageReport:
    """A month's copilot usage by provider, model, feature and who asked, with the quota."""
    authorize(principal, Action.COPILOT_READ)
    month = (month or usage.month_of()).replace(day=1)
    async with tenant_session(principal.tenant_id) as s:
        await require_feature(s, principal.tenant_id, FEATURE)
        found = (await s.scalars(select(AiUsage).where(AiUsage.tenant_id == principal.tenant_id, AiUsage.month == month)
                                 .order_by(AiUsage.provider, AiUsage.model, AiUsage.feature, AiUsage.principal_id))).all()
        q = await usage.quota(s, principal.tenant_id)
    rows = [UsageRow(r.provider, r.model, r.feature, r.principal_id, r.runs, r.tokens_in, r.tokens_out,
                     r.cost_micro_usd) for r in found]
    used = q.used if month == usage.month_of() else sum(r.tokens_in + r.tokens_out for r in rows)
    return UsageReport(month, rows, q.limit, used)


# --- executing -----------------------------------------------------------------------------------


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.S)


def _check_campaign_copy(brand: Brand, channel: str, text: str, attrs: dict[str, str]) -> dict[str, Any]:
    try:
        data = json.loads(_FENCE.sub("", text.strip()))
        variants = data["variants"]
        assert isinstance(variants, list) and all(isinstance(x, dict) for x in variants)
    except (ValueError, KeyError, AssertionError, TypeError):
        raise DomainError("the model's answer was not the JSON asked for; try again", code=ErrorCode.INVALID) from None
    out = []
    for variant in variants:
        content = {k: v for k, v in variant.items() if isinstance(v, str)}
        errors: list[str] = []
        try:
            content = templates.check(channel, content, attrs)
        except DomainError as exc:
            errors = [e.message for e in exc.errors]
        item: dict[str, Any] = {"content": content, "valid": not errors, "errors": errors,
                                "flaggedWords": prompts.flagged_words(brand, " ".join(map(str, content.values())))}
        if channel == "sms" and content.get("text"):
            encoding, segments = prompts.sms_segments(content["text"])
            item["sms"] = {"encoding": encoding, "segments": segments}
            if segments > 2:
                item["valid"] = False
                item["errors"].append(f"the text takes {segments} SMS segments; at most 2")
        if channel == "push":
            for key, limit in (("title", prompts.PUSH_TITLE_MAX), ("body", prompts.PUSH_BODY_MAX)):
                if len(content.get(key, "")) > limit:
                    item["valid"] = False
                    item["errors"].append(f"{key} is longer than {limit} characters (truncated on lock screens)")
        out.append(item)
    return {"variants": out}


async def _publish_delta(tenant_id: uuid.UUID, run_id: uuid.UUID, seq: int, piece: str) -> None:
    c, d = events.entry(tenant_id, topic(run_id), {"d": piece, "s": seq})
    await redis_mod.client().xadd(events.STREAM, {"c": c, "d": d}, maxlen=events.STREAM_MAXLEN, approximate=True)


async def execute(tenant_id: uuid.UUID, run_id: uuid.UUID) -> None:
    """Run a queued copilot run to its end (succeeded or failed); nothing if it is not queued."""
    async with tenant_session(tenant_id) as s:
        run = (await s.scalars(update(CopilotRun).where(
            CopilotRun.tenant_id == tenant_id, CopilotRun.id == run_id, CopilotRun.status == RunStatus.QUEUED.value)
            .values(status=RunStatus.RUNNING.value).returning(CopilotRun))).one_or_none()
        if run is None:
            return
        outbox.publish(s, tenant_id, topic(run_id), {"status": RunStatus.RUNNING.value})
        creds: dict[str, Any] = {}
        settings: dict[str, Any] = {}
        if not run.provider.startswith(catalog.ENDPOINT_PREFIX):
            found = await load_credentials(s, tenant_id, Provider(run.provider))
            if found is not None:
                creds, settings = found
        brand = await s.get(Brand, (tenant_id, run.brand_id))
        attrs = (await dsl_context(s, tenant_id)).custom_attributes if run.feature == Feature.CAMPAIGN_COPY.value else {}
        provider, model, feature, params = run.provider, run.model, run.feature, dict(run.params)
        requested_by = run.requested_by
    prompt = prompts.Prompt.from_params(params["prompt"])
    started = time.perf_counter()
    seq = 0

    async def on_delta(piece: str) -> None:
        nonlocal seq
        seq += 1
        try:
            await _publish_delta(tenant_id, run_id, seq, piece)
        except Exception as exc:  # noqa: BLE001  (live text is best effort; the result is committed)
            log.warning("copilot delta not published: %s", type(exc).__name__)

    values: dict[str, Any]
    generated = None
    try:
        if not creds and not provider.startswith(catalog.ENDPOINT_PREFIX):
            raise generation.ProviderError(ErrorCode.AI_PROVIDER_AUTH, f"no {provider} credentials are set")
        generated = await generation.generate(provider, model, creds, settings, prompt, on_delta)
        if feature == Feature.SEGMENT.value:
            result, problems = await _check_segment(tenant_id, brand.id, generated.text)
            if result is None:  # repaired once, then refused
                await on_delta("\n\n")
                again = prompts.Prompt(prompt.system, prompt.user + "\n\n" + prompts.segment_repair(generated.text,
                                                                                                   problems),
                                       json=True, max_tokens=prompt.max_tokens)
                second = await generation.generate(provider, model, creds, settings, again, on_delta)
                second.tokens_in += generated.tokens_in
                second.tokens_out += generated.tokens_out
                generated = second
                result, problems = await _check_segment(tenant_id, brand.id, generated.text)
                if result is None:
                    raise DomainError("the drafted definition is not valid even after one repair: "
                                      + "; ".join(problems)[:400], code=ErrorCode.INVALID)
                result["repaired"] = True
            else:
                result["repaired"] = False
        elif feature == Feature.CAMPAIGN_COPY.value:
            result = _check_campaign_copy(brand, params["channel"], generated.text, attrs)
        else:
            result = {"text": generated.text.strip(), "flaggedWords": prompts.flagged_words(brand, generated.text)}
        if generated.citations:
            result["citations"] = generated.citations
        values = dict(status=RunStatus.SUCCEEDED.value, output=generated.text, result=result)
    except generation.ProviderError as exc:
        values = dict(status=RunStatus.FAILED.value, error_code=exc.code.value, error_message=exc.message[:500],
                      retry_after=exc.retry_after, output=None)
    except DomainError as exc:  # the answer failed its checks
        values = dict(status=RunStatus.FAILED.value, error_code=exc.code.value, error_message=exc.message[:500],
                      output=generated.text if generated else None)
    except Exception:  # noqa: BLE001  (a run never stays running: it fails, and the log says why)
        log.exception("copilot run failed", extra={"run_id": str(run_id)})
        values = dict(status=RunStatus.FAILED.value, error_code=ErrorCode.AI_PROVIDER_UNAVAILABLE.value,
                      error_message="the copilot failed unexpectedly; try again")
    tokens_in = generated.tokens_in if generated else 0
    tokens_out = generated.tokens_out if generated else 0
    info = catalog.model_info(provider, model)
    cost = info.cost_micro_usd(tokens_in, tokens_out) if info else None
    values.update(tokens_in=tokens_in, tokens_out=tokens_out, cost_micro_usd=cost,
                  latency_ms=round((time.perf_counter() - started) * 1000), finished_at=func.now())
    async with tenant_session(tenant_id) as s:
        await s.execute(update(CopilotRun).where(CopilotRun.tenant_id == tenant_id, CopilotRun.id == run_id,
                                                 CopilotRun.status == RunStatus.RUNNING.value).values(**values))
        if tokens_in or tokens_out:
            await usage.record(s, tenant_id, provider=provider, model=model, feature=feature,
                               principal_id=requested_by, tokens_in=tokens_in, tokens_out=tokens_out,
                               cost_micro_usd=cost)
        outbox.publish(s, tenant_id, topic(run_id), {"final": True, "status": values["status"]})


@tenant_actor(queue_name="copilot", max_retries=0, time_limit=15 * 60 * 1000)
async def run_copilot(tenant_id: uuid.UUID, run_id: str) -> None:
    """Execute one streaming copilot run (claimed once; a redelivery finds it taken)."""
    await execute(tenant_id, uuid.UUID(run_id))
