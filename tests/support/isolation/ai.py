"""The rows of the AI settings and copilot isolation tests (run by tests/ai/test_ai_isolation.py):
every AI query (:data:`READS`) and mutation (:data:`WRITES`). AI settings belong to the tenant of
the caller's credential: no argument names another tenant's, so another tenant's owner can only
reach its own, and the rows check that it sees and changes nothing of A's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ERRORS = "errors { field code message }"


@dataclass(frozen=True)
class Read:
    name: str
    doc: str


@dataclass(frozen=True)
class Write:
    name: str
    doc: str
    variables: Callable[[], dict[str, Any]]
    result: str | None


READS = [
    Read("aiConnections", "{ aiConnections { provider credentialsSet credentialHint defaultModel needs "
                          "lastTest { status message } tokensThisMonth } }"),
    Read("aiSettings", "{ aiSettings { default { provider endpoint model } features { feature choice { model } } "
                       "endpoints { name } } }"),
    Read("copilotUsage", "{ copilotUsage { tokensUsed rows { provider model feature requestedBy runs tokensIn } } }"),
]

RUN = "run { id status output result inputRef }"


@dataclass(frozen=True)
class BrandWrite:
    """A copilot mutation aimed at A's brand ``side``: ``variables(world, side)``; ``field``: where
    a principal that may not use that brand gets NOT_FOUND."""

    name: str
    doc: str
    variables: Callable[[Any, str], dict[str, Any]]
    field: str
    result: str = "run"


BRAND_WRITES = [
    BrandWrite("rewriteText", "mutation($input: RewriteTextInput!) { rewriteText(input: $input) { "
                              f"{RUN} {ERRORS} }} }}",
               lambda w, side: {"input": {"brandId": w.t.brand_gid(side), "text": f"secret draft of {side}",
                                          "mode": "FIX", "wait": True}}, "input.brandId"),
    BrandWrite("draftCampaignCopy", "mutation($input: DraftCampaignCopyInput!) { draftCampaignCopy(input: $input) { "
                                    f"{RUN} {ERRORS} }} }}",
               lambda w, side: {"input": {"campaignId": w.campaign_gid(side), "variants": 1, "wait": True}},
               "input.campaignId"),
    BrandWrite("suggestReply", "mutation($input: SuggestReplyInput!) { suggestReply(input: $input) { "
                               f"{RUN} {ERRORS} }} }}",
               lambda w, side: {"input": {"conversationId": w.conversation_gid(side), "wait": True}},
               "input.conversationId"),
    BrandWrite("summarizeConversation", "mutation($input: SummarizeConversationInput!) { summarizeConversation("
                                        f"input: $input) {{ {RUN} {ERRORS} }} }}",
               lambda w, side: {"input": {"conversationId": w.conversation_gid(side), "wait": True}},
               "input.conversationId"),
    BrandWrite("summarizeCustomer", "mutation($input: SummarizeCustomerInput!) { summarizeCustomer(input: $input) { "
                                    f"{RUN} {ERRORS} }} }}",
               lambda w, side: {"input": {"customerId": w.customer_gid(side), "brandId": w.t.brand_gid(side),
                                          "wait": True}}, "input.brandId"),
    BrandWrite("draftSegment", "mutation($input: DraftSegmentInput!) { draftSegment(input: $input) { "
                               f"{RUN} {ERRORS} }} }}",
               lambda w, side: {"input": {"brandId": w.t.brand_gid(side), "description": "customers in Lyon",
                                          "wait": True}}, "input.brandId"),
    BrandWrite("designWithCanva", "mutation($input: DesignWithCanvaInput!) { designWithCanva(input: $input) { "
                                  f"job {{ id kind }} {ERRORS} }} }}",
               lambda w, side: {"input": {"campaignId": w.campaign_gid(side), "brandTemplateId": "DAFtemplate1",
                                          "headline": f"Headline {side}", "body": "Copy"}},
               "input.campaignId", result="job"),
]

FOLLOW = "subscription($id: ID!) { copilotRun(id: $id) { status text run { id output } } }"
NODE = "query($id: ID!) { node(id: $id) { id ... on CopilotRun { output } } }"

WRITES = [
    Write("setAiConnection", "mutation($input: SetAiConnectionInput!) { setAiConnection(input: $input) { "
                             f"connection {{ provider credentialHint }} {ERRORS} }} }}",
          lambda: {"input": {"provider": "OPENAI", "apiKey": "sk-intruder-key-0123456789zz99"}}, "connection"),
    Write("testAiConnection", "mutation($input: AiProviderInput!) { testAiConnection(input: $input) { "
                              f"connection {{ provider lastTest {{ status }} }} {ERRORS} }} }}",
          lambda: {"input": {"provider": "OPENAI"}}, "connection"),
    Write("updateAiSettings", "mutation($input: UpdateAiSettingsInput!) { updateAiSettings(input: $input) { "
                              f"settings {{ default {{ model }} }} {ERRORS} }} }}",
          lambda: {"input": {"default": {"provider": "OPENAI", "model": "gpt-4o-mini"}}}, "settings"),
    Write("removeAiConnection", "mutation($input: AiProviderInput!) { removeAiConnection(input: $input) { "
                                f"removedProvider {ERRORS} }} }}",
          lambda: {"input": {"provider": "OPENAI"}}, "removedProvider"),
]

SUBSCRIPTIONS = {"copilotRun"}  # run by tests/ai/test_ai_isolation.py over graphql-transport-ws
