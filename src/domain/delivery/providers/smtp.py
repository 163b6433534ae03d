"""E-mail over SMTP (any relay: a brand's own server, Postmark/SES/Brevo SMTP relays...).

One call's messages go out over a few connections at once (SMTP is one message at a time per
connection, so concurrency is connections). A refused recipient is that message's problem; a
connection that fails costs only what it had not sent yet, which another connection picks up.
There is no idempotency in SMTP: a message in flight when a connection drops may be delivered
twice if it is retried, which is the protocol's nature.
"""

from __future__ import annotations

import asyncio
import email.policy
import re
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib

from domain.delivery.base import (
    Channel,
    OutboundMessage,
    Outcome,
    ProviderRejected,
    ProviderUnavailable,
    Sender,
    SendResult,
)
from domain.delivery.providers._common import (
    html_with_preheader,
    safe_error,
    unavailable_if_all_retry,
)

# Headers the message is built with; the caller's extra headers may not replace them.
_OWN_HEADERS = {
    "from",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
}
# RFC 5322 allows 998-character lines; folding at 78 would split e.g. List-Unsubscribe right
# after its colon, which some parsers read with a leading space. 7-bit: no 8BITMIME needed.
_POLICY = email.policy.SMTP.clone(max_line_length=998, cte_type="7bit")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]")


def message_id_for(key: str, from_email: str) -> str:
    """``<key@sender-domain>``: unique per message (keys are) and traceable back to it."""
    domain = from_email.rsplit("@", 1)[-1] or "localhost"
    left = _ID_UNSAFE.sub("-", key).strip(".") or uuid.uuid4().hex
    return f"<{left}@{domain}>"


def build_mime(sender: Sender, message: OutboundMessage, *, now: datetime | None = None) -> EmailMessage:
    """A complete RFC 5322 message. Raises ValueError for an address or header the e-mail
    package refuses (malformed, or a line break that would inject headers)."""
    if not sender.from_email:
        raise ValueError("no sender address")
    mime = EmailMessage(policy=_POLICY)
    mime["From"] = _address(sender.from_email, sender.from_name)
    mime["To"] = _address(message.to, message.to_name)
    if sender.reply_to:
        mime["Reply-To"] = _address(sender.reply_to, None)
    mime["Subject"] = message.subject or ""
    mime["Date"] = format_datetime(now or datetime.now(UTC))
    given_id = next((v for k, v in message.headers.items() if k.lower() == "message-id"), None)
    mime["Message-ID"] = given_id or message_id_for(message.key, sender.from_email)
    for name, value in message.headers.items():
        if name.lower() not in _OWN_HEADERS:
            mime[name] = value
    html = html_with_preheader(message.html, message.preheader)
    if message.text is not None and html is not None:
        mime.set_content(message.text)
        mime.add_alternative(html, subtype="html")
    elif html is not None:
        mime.set_content(html, subtype="html")
    else:
        mime.set_content(message.text or "")
    return mime


def _address(addr_spec: str, name: str | None) -> Address:
    if "\r" in addr_spec or "\n" in addr_spec or addr_spec.count("@") != 1:
        raise ValueError("invalid address")
    return Address(display_name=name or "", addr_spec=addr_spec)


@dataclass
class _Run:
    """The state one send() shares between its connections."""

    pending: deque[int]
    results: list[SendResult | None]
    connection_errors: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # auth or sender refused: configuration


class SmtpProvider:
    name = "smtp"
    channel = Channel.EMAIL
    max_batch = 20
    idempotent = False

    def __init__(
        self,
        host: str,
        port: int = 587,
        *,
        starttls: bool = True,
        use_tls: bool = False,
        timeout: float = 30.0,
        username: str | None = None,
        password: str | None = None,
        max_connections: int = 3,
        validate_certs: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.starttls = starttls and not use_tls
        self.use_tls = use_tls
        self.timeout = timeout
        self._username = username or None
        self._password = password or None
        self.max_connections = max(1, max_connections)
        self.validate_certs = validate_certs

    async def send(self, sender: Sender, messages: list[OutboundMessage], batch_key: uuid.UUID) -> list[SendResult]:
        if not sender.from_email:
            raise ProviderRejected("the brand has no sender e-mail address")
        run = _Run(pending=deque(), results=[None] * len(messages))
        built: list[EmailMessage | None] = []
        for i, message in enumerate(messages):
            try:
                built.append(build_mime(sender, message))
                run.pending.append(i)
            except ValueError as exc:
                built.append(None)
                run.results[i] = SendResult(message.key, Outcome.REJECTED, error=safe_error(str(exc), "invalid message"))
        if run.pending:
            workers = min(self.max_connections, len(run.pending))
            await asyncio.gather(*(self._connection(run, sender.from_email, messages, built) for _ in range(workers)))
        return self._finish(run, messages)

    def _finish(self, run: _Run, messages: list[OutboundMessage]) -> list[SendResult]:
        """Unsent messages are RETRY; a call that sent nothing raises as the base contract says."""
        sent_any = any(r is not None and r.outcome is Outcome.ACCEPTED for r in run.results)
        if run.refused and not sent_any:
            raise ProviderRejected(run.refused[0])
        if run.connection_errors and not sent_any and all(r is None for r in run.results):
            raise ProviderUnavailable(run.connection_errors[0])
        reason = (run.connection_errors or run.refused or ["not sent"])[0]
        results = [
            r if r is not None else SendResult(m.key, Outcome.RETRY, error=reason)
            for r, m in zip(run.results, messages, strict=True)
        ]
        unavailable_if_all_retry(results, [(None, None)])
        return results

    def _client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=self.use_tls,
            start_tls=self.starttls,
            timeout=self.timeout,
            username=self._username,
            password=self._password,
            validate_certs=self.validate_certs,
        )

    async def _connection(
        self, run: _Run, from_email: str, messages: list[OutboundMessage], built: list[EmailMessage | None]
    ) -> None:
        """One connection sending queued messages until none are left or it fails."""
        client = self._client()
        try:
            await client.connect()
        except aiosmtplib.SMTPAuthenticationError as exc:
            run.refused.append(f"SMTP authentication failed ({exc.code})")
            return
        except (aiosmtplib.SMTPException, OSError) as exc:
            if _unsupported(exc):  # configured STARTTLS or login the server does not offer
                run.refused.append("the SMTP server does not support the configured TLS or login")
            else:
                run.connection_errors.append(_connect_error(exc))
            return
        try:
            while run.pending:
                i = run.pending.popleft()
                if not await self._send_one(client, run, i, from_email, messages[i], built[i]):
                    return
        finally:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()

    async def _send_one(
        self,
        client: aiosmtplib.SMTP,
        run: _Run,
        i: int,
        from_email: str,
        message: OutboundMessage,
        mime: EmailMessage | None,
    ) -> bool:
        """Sends message ``i``; False when the connection is no longer usable (the message goes
        back to the queue for another connection)."""
        assert mime is not None
        try:
            # our bytes, not send_message's re-flattening (which folds headers at 78 columns)
            await client.sendmail(from_email, [message.to], mime.as_bytes())
        except aiosmtplib.SMTPRecipientsRefused as exc:
            code, text = (exc.recipients[0].code, exc.recipients[0].message) if exc.recipients else (550, "")
            run.results[i] = _by_code(message.key, code, f"recipient refused: {code} {text}")
            return True
        except aiosmtplib.SMTPSenderRefused as exc:
            if exc.code >= 500:
                run.refused.append(safe_error(f"sender refused: {exc.code} {exc.message}", "sender refused"))
                run.pending.appendleft(i)
                return False
            run.results[i] = SendResult(message.key, Outcome.RETRY, error=safe_error(f"{exc.code} {exc.message}", ""))
            return True
        except aiosmtplib.SMTPNotSupported:  # a non-ASCII address the server cannot take
            run.results[i] = SendResult(message.key, Outcome.REJECTED, error="address needs SMTPUTF8")
            return True
        except aiosmtplib.SMTPDataError as exc:
            run.results[i] = _by_code(message.key, exc.code, f"message refused: {exc.code} {exc.message}")
            return True
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code >= 500:
                run.results[i] = _by_code(message.key, exc.code, f"{exc.code} {exc.message}")
                return True
            run.connection_errors.append(safe_error(f"SMTP {exc.code} {exc.message}", "SMTP error"))
            run.pending.appendleft(i)
            return False
        except (aiosmtplib.SMTPException, OSError) as exc:
            run.connection_errors.append(_connect_error(exc))
            run.pending.appendleft(i)
            return False
        run.results[i] = SendResult(message.key, Outcome.ACCEPTED, provider_message_id=str(mime["Message-ID"]))
        return True

    async def aclose(self) -> None:
        return None


def _by_code(key: str, code: int, text: str) -> SendResult:
    """5xx is permanent (RFC 5321), 4xx temporary."""
    outcome = Outcome.REJECTED if code >= 500 else Outcome.RETRY
    return SendResult(key, outcome, error=safe_error(text, f"SMTP {code}"))


def _unsupported(exc: BaseException) -> bool:
    """aiosmtplib says "... not supported by (this) server" for a missing STARTTLS or AUTH."""
    return isinstance(exc, aiosmtplib.SMTPNotSupported) or (
        type(exc) is aiosmtplib.SMTPException and "not supported" in str(exc).lower()
    )


def _connect_error(exc: BaseException) -> str:
    """The kind of failure without the server's banner or our login."""
    if isinstance(exc, TimeoutError):
        return "SMTP server timed out"
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return safe_error(f"SMTP {exc.code} {exc.message}", "SMTP error")
    return f"SMTP connection failed ({type(exc).__name__})"
