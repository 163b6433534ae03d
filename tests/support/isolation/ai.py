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
]

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

SUBSCRIPTIONS: set[str] = set()
