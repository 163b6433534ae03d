"""The copilot: runs (a Node), the drafting mutations, the usage query and the live run."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from datetime import date, datetime
from enum import Enum

import strawberry
from strawberry import relay
from strawberry.relay import GlobalID
from strawberry.scalars import JSON

from domain.ai import catalog, design, runs
from domain.ai.models import Feature, Provider, RunStatus
from domain.errors import DomainError, NotFound
from graph.ai.types import AiProvider, CopilotFeature
from graph.core import ids
from graph.core.context import Info
from graph.core.errors import ErrorCode, UserError, payload
from graph.core.nodes import node_resolver
from graph.core.scalars import BigInt
from graph.jobs.types import JobPayload, job_result

CopilotRunStatus = strawberry.enum(RunStatus, name="CopilotRunStatus", description="Where a copilot run is.")


@strawberry.enum(description="How to rewrite a text.")
class RewriteMode(Enum):
    TONE = "tone"
    SHORTEN = "shorten"
    EXPAND = "expand"
    FIX = "fix"
    TRANSLATE = "translate"


@strawberry.enum(description="The tone of a TONE rewrite.")
class RewriteTone(Enum):
    CASUAL = "casual"
    PROFESSIONAL = "professional"
    FRIENDLY = "friendly"
    CONFIDENT = "confident"
    STRAIGHTFORWARD = "straightforward"


@strawberry.type(description="Why a run failed.")
class CopilotRunError:
    code: ErrorCode
    message: str
    retry_after_seconds: float | None = strawberry.field(description="The provider's retry hint (rate limited).")


async def _runs_by_id(info: Info, run_ids: list[uuid.UUID]) -> dict:
    return await runs.runs_by_ids(info.context.principal, run_ids)


@strawberry.type(description="One copilot request: what was asked of which provider and model, and what came "
                             "back. A draft only: nothing is sent, saved or launched by the copilot.")
class CopilotRun(relay.Node):
    id: relay.NodeID[str]
    feature: CopilotFeature
    provider: AiProvider | None = strawberry.field(description="Null when an operator endpoint ran it.")
    endpoint: str | None
    model: str
    input_ref: str | None = strawberry.field(description="What the run drafted for, e.g. `Campaign:<uuid>`.")
    status: CopilotRunStatus
    output: str | None = strawberry.field(description="The model's whole answer, once finished.")
    result: JSON | None = strawberry.field(
        description="The checked result: `{text, flaggedWords}` for text features; for campaign copy "
                    "`{variants: [{content, valid, errors, flaggedWords, sms: {encoding, segments}}]}`; "
                    "`citations` when the provider gave some.")
    error: CopilotRunError | None
    tokens_in: int
    tokens_out: int
    cost_estimate_micro_usd: BigInt | None = strawberry.field(
        description="Estimated cost in millionths of a US dollar, from models.toml prices; null when unpriced.")
    latency_ms: int | None
    requested_by: str = strawberry.field(description="The tenant-facing id of who asked (member or API key).")
    requested_by_label: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def from_model(cls, r) -> CopilotRun:  # noqa: ANN001
        endpoint = r.provider[len(catalog.ENDPOINT_PREFIX):] if r.provider.startswith(catalog.ENDPOINT_PREFIX) else None
        return cls(id=str(r.id), feature=Feature(r.feature), provider=None if endpoint else Provider(r.provider),
                   endpoint=endpoint, model=r.model, input_ref=r.input_ref, status=RunStatus(r.status),
                   output=r.output, result=r.result,
                   error=CopilotRunError(code=ErrorCode(r.error_code), message=r.error_message or "",
                                         retry_after_seconds=r.retry_after) if r.error_code else None,
                   tokens_in=r.tokens_in, tokens_out=r.tokens_out, cost_estimate_micro_usd=r.cost_micro_usd,
                   latency_ms=r.latency_ms, requested_by=r.requested_by, requested_by_label=r.requested_by_label,
                   created_at=r.created_at, finished_at=r.finished_at)

    resolve_nodes = node_resolver(_runs_by_id)


@strawberry.type(description="A frame of a live run: the text so far and the piece just received; `run` on the first "
                             "frame and on the last (the finished, checked result).")
class CopilotRunEvent:
    status: CopilotRunStatus
    delta: str | None
    text: str
    run: CopilotRun | None


@strawberry.type
class CopilotUsageRow:
    provider: str = strawberry.field(description="A provider (`openai`, …) or `endpoint:<name>`.")
    model: str
    feature: CopilotFeature
    requested_by: str
    runs: int
    tokens_in: BigInt
    tokens_out: BigInt
    cost_estimate_micro_usd: BigInt


@strawberry.type(description="A month's copilot usage, and the plan's quota of tokens (in + out) per month.")
class CopilotUsage:
    month: date
    rows: list[CopilotUsageRow]
    token_limit: BigInt | None = strawberry.field(description="Null: no limit.")
    tokens_used: BigInt


@strawberry.input(description="Rewrite a text in the brand's voice. `wait: true` returns the finished run "
                              "(no streaming); otherwise follow `copilotRun`.")
class RewriteTextInput:
    brand_id: GlobalID | None = strawberry.field(default=None, description="Defaults to X-Brand-Id.")
    text: str
    mode: RewriteMode
    tone: RewriteTone | None = None
    locale: str | None = strawberry.field(default=None, description="For TRANSLATE: e.g. fr, pt-BR.")
    wait: bool = False


@strawberry.input(description="Draft variants of a campaign's content for its channel. `wait: true` returns the "
                              "finished run; otherwise follow `copilotRun`.")
class DraftCampaignCopyInput:
    campaign_id: GlobalID
    variants: int = 3
    brief: str | None = strawberry.field(default=None, description="The goal and any facts to use.")
    wait: bool = False


@strawberry.input(description="Draft the next reply of a conversation for the agent to review and send. `wait: true` "
                              "returns the finished run; otherwise follow `copilotRun`.")
class SuggestReplyInput:
    conversation_id: GlobalID
    instructions: str | None = strawberry.field(default=None, description="What the reply should do, in a few words.")
    wait: bool = False


@strawberry.input(description="Summarise a conversation. `wait: true` returns the finished run.")
class SummarizeConversationInput:
    conversation_id: GlobalID
    wait: bool = False


@strawberry.input(description="Describe customers in words; get a segment definition, its count and an explanation. "
                              "Nothing is saved. `wait: true` returns the finished run.")
class DraftSegmentInput:
    brand_id: GlobalID | None = strawberry.field(default=None, description="Defaults to X-Brand-Id.")
    description: str
    wait: bool = False


@strawberry.input(description="Summarise a customer as a brand knows them. `wait: true` returns the finished run.")
class SummarizeCustomerInput:
    customer_id: GlobalID
    brand_id: GlobalID | None = strawberry.field(default=None, description="Defaults to X-Brand-Id.")
    wait: bool = False


@strawberry.input(description="Autofill one of the brand templates chosen in the Canva connection with a campaign's "
                              "headline and copy. Follow the job (`jobProgress`); its result holds `designId`, "
                              "`editUrl`, `viewUrl`, `thumbnailUrl`.")
class DesignWithCanvaInput:
    campaign_id: GlobalID
    brand_template_id: str
    headline: str
    body: str


@strawberry.type
class CopilotRunPayload:
    run: CopilotRun | None = None
    errors: list[UserError]


@strawberry.type
class CopilotQuery:
    @strawberry.field(description="A month's copilot usage by provider, model, feature and who asked (the current "
                                  "month by default), with the quota. Copilot module.")
    async def copilot_usage(self, info: Info, month: date | None = None) -> CopilotUsage:
        report = await runs.usage_report(info.context.principal, month)
        return CopilotUsage(month=report.month, token_limit=report.limit, tokens_used=report.used, rows=[
            CopilotUsageRow(provider=r.provider, model=r.model, feature=Feature(r.feature), requested_by=r.principal_id,
                            runs=r.runs, tokens_in=r.tokens_in, tokens_out=r.tokens_out,
                            cost_estimate_micro_usd=r.cost_micro_usd) for r in report.rows])


@strawberry.type
class CopilotMutation:
    @strawberry.mutation(description="Rewrite a text (tones, shorten, expand, fix, translate) in the brand's voice. "
                                     "Agents and above. Copilot module.")
    async def rewrite_text(self, info: Info, input: RewriteTextInput) -> CopilotRunPayload:
        async def run():
            brand_id = ids.decode(input.brand_id, "Brand", "brandId") if input.brand_id else info.context.brand_id
            if brand_id is None:
                raise DomainError("brandId (or the X-Brand-Id header) is required", field="brandId")
            return await runs.rewrite(info.context.principal, brand_id, input.text, input.mode.value,
                                      tone=input.tone.value if input.tone else None, locale=input.locale,
                                      wait=input.wait)

        return await payload(CopilotRunPayload, run, lambda r: {"run": CopilotRun.from_model(r)})

    @strawberry.mutation(description="Draft variants of a campaign's content, grounded in the brand's voice and the "
                                     "campaign's audience, each checked like saved content. Marketers and above. "
                                     "Copilot module.")
    async def draft_campaign_copy(self, info: Info, input: DraftCampaignCopyInput) -> CopilotRunPayload:
        async def run():
            return await runs.draft_campaign_copy(
                info.context.principal, ids.decode(input.campaign_id, "Campaign", "campaignId"),
                variants=input.variants, brief=input.brief, wait=input.wait)

        return await payload(CopilotRunPayload, run, lambda r: {"run": CopilotRun.from_model(r)})


    @strawberry.mutation(description="Draft the next reply of a conversation, grounded in the thread, the customer's "
                                     "profile and orders and the brand's canned responses. Never sent by the copilot: "
                                     "an agent inserts, edits and sends it. Agents and above. Copilot module.")
    async def suggest_reply(self, info: Info, input: SuggestReplyInput) -> CopilotRunPayload:
        async def run():
            return await runs.suggest_reply(
                info.context.principal, ids.decode(input.conversation_id, "Conversation", "conversationId"),
                instructions=input.instructions, wait=input.wait)

        return await payload(CopilotRunPayload, run, lambda r: {"run": CopilotRun.from_model(r)})

    @strawberry.mutation(description="Summarise a conversation: what the customer wants, what was done, what is open. "
                                     "Agents and above. Copilot module.")
    async def summarize_conversation(self, info: Info, input: SummarizeConversationInput) -> CopilotRunPayload:
        async def run():
            return await runs.summarize_conversation(
                info.context.principal, ids.decode(input.conversation_id, "Conversation", "conversationId"),
                wait=input.wait)

        return await payload(CopilotRunPayload, run, lambda r: {"run": CopilotRun.from_model(r)})


    @strawberry.mutation(description="Summarise a customer as the brand knows them: profile, recent timeline, open "
                                     "conversations, segments. Agents and above. Copilot module.")
    async def summarize_customer(self, info: Info, input: SummarizeCustomerInput) -> CopilotRunPayload:
        async def run():
            brand_id = ids.decode(input.brand_id, "Brand", "brandId") if input.brand_id else info.context.brand_id
            if brand_id is None:
                raise DomainError("brandId (or the X-Brand-Id header) is required", field="brandId")
            return await runs.summarize_customer(info.context.principal, brand_id,
                                                 ids.decode(input.customer_id, "Customer", "customerId"),
                                                 wait=input.wait)

        return await payload(CopilotRunPayload, run, lambda r: {"run": CopilotRun.from_model(r)})

    @strawberry.mutation(description="Natural language to a segment definition over the brand's field catalogue, "
                                     "checked by the rule validator, with its preview count and each rule explained; "
                                     "an invalid answer is repaired once, then refused. Never saved. Marketers and "
                                     "above. Copilot module.")
    async def draft_segment(self, info: Info, input: DraftSegmentInput) -> CopilotRunPayload:
        async def run():
            brand_id = ids.decode(input.brand_id, "Brand", "brandId") if input.brand_id else info.context.brand_id
            if brand_id is None:
                raise DomainError("brandId (or the X-Brand-Id header) is required", field="brandId")
            return await runs.draft_segment(info.context.principal, brand_id, input.description, wait=input.wait)

        return await payload(CopilotRunPayload, run, lambda r: {"run": CopilotRun.from_model(r)})


    @strawberry.mutation(description="Start a Canva design from a brand template and a campaign's copy, as a job. "
                                     "Marketers and above. Copilot module.")
    async def design_with_canva(self, info: Info, input: DesignWithCanvaInput) -> JobPayload:
        async def run():
            return await design.start_design(info.context.principal,
                                             ids.decode(input.campaign_id, "Campaign", "campaignId"),
                                             input.brand_template_id, input.headline, input.body)

        return await payload(JobPayload, run, job_result)


@strawberry.type
class CopilotSubscription:
    @strawberry.subscription(description="A copilot run live: the run now, then the text as the provider sends it, then "
                                         "the finished, checked run. Copilot module.")
    async def copilot_run(self, info: Info, id: GlobalID) -> AsyncGenerator[CopilotRunEvent, None]:
        principal = info.context.principal
        run_id = ids.decode(id, "CopilotRun")
        hub = info.context.request.app.state.event_hub
        async with hub.subscribe(principal.tenant_id, runs.topic(run_id)) as queue:
            run = await runs.get_run(principal, run_id)  # visible, or NOT_FOUND; after subscribing
            text = run.output or ""
            yield CopilotRunEvent(status=RunStatus(run.status), delta=None, text=text, run=CopilotRun.from_model(run))
            if runs.is_finished(run):
                return
            deadline = asyncio.get_running_loop().time() + runs.time_limit().total_seconds()
            while True:
                remaining = deadline - asyncio.get_running_loop().time()
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=max(remaining, 0.01))
                except TimeoutError:  # past the run's time limit: reading it marks it failed
                    event = {"final": True}
                    deadline += 5
                if "d" in event:
                    text += event["d"]
                    yield CopilotRunEvent(status=RunStatus.RUNNING, delta=event["d"], text=text, run=None)
                    continue
                if not event.get("final"):
                    continue
                await info.context.recheck()
                try:
                    run = await runs.get_run(info.context.principal, run_id)
                except NotFound:
                    return
                if not runs.is_finished(run):  # a timeout before the deadline marks it: read once more
                    continue
                yield CopilotRunEvent(status=RunStatus(run.status), delta=None, text=run.output or text,
                                      run=CopilotRun.from_model(run))
                return
