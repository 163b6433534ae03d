"""A provider that sends nothing: it writes each message as one JSON log line and accepts it.

For development, demos and load tests of everything before the provider. It serves every
channel, so a brand can be set up end to end without an account anywhere.
"""

from __future__ import annotations

import json
import logging
import uuid

from domain.delivery.base import Channel, OutboundMessage, Outcome, Sender, SendResult

log = logging.getLogger("domain.delivery.log")


class LogProvider:
    name = "log"
    max_batch = 500
    idempotent = False

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    async def send(self, sender: Sender, messages: list[OutboundMessage], batch_key: uuid.UUID) -> list[SendResult]:
        results = []
        for message in messages:
            provider_id = f"log-{uuid.uuid4()}"
            if log.isEnabledFor(logging.INFO):
                log.info(json.dumps(self._line(message, provider_id), ensure_ascii=False))
            results.append(SendResult(message.key, Outcome.ACCEPTED, provider_message_id=provider_id))
        return results

    def _line(self, message: OutboundMessage, provider_id: str) -> dict[str, str | None]:
        """What is useful to see: who would have received what. Not the body, not headers (the
        List-Unsubscribe URL carries a token), and the provider has no credentials to leak."""
        return {
            "channel": self.channel.value,
            "key": message.key,
            "to": message.to,
            "subject": message.subject if self.channel is Channel.EMAIL else None,
            "title": message.title if self.channel is Channel.PUSH else None,
            "provider_message_id": provider_id,
        }

    async def aclose(self) -> None:
        return None
