"""Each provider against its loopback fake: what arrives, what is refused, what is retried.

No database: these tests only need the fakes in ``tests/fakes`` (see ``conftest.py`` here).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.fakes.providers import (
    FakeBrevo,
    FakeFCM,
    FakeSendGrid,
    FakeSMTP,
    FakeTwilio,
    free_port,
    make_service_account,
)

from domain.delivery import registry, webhooks
from domain.delivery.base import (
    Channel,
    EventKind,
    OutboundMessage,
    Outcome,
    ProviderRejected,
    ProviderUnavailable,
    Sender,
    WebhookRejected,
)
from domain.delivery.providers.brevo import BrevoProvider
from domain.delivery.providers.fcm import FcmProvider
from domain.delivery.providers.log import LogProvider
from domain.delivery.providers.sendgrid import SendGridProvider
from domain.delivery.providers.smtp import SmtpProvider
from domain.delivery.providers.twilio import TwilioProvider

SENDER = Sender(from_email="news@brand.example", from_name="Brand Ünïcode", reply_to="help@brand.example")
HTML = "<!doctype html><html><head><title>t</title></head><body><p>Hello {n}</p></body></html>"


def email(i: int, *, to: str | None = None, html: str | None = None, text: str | None = None, **kw) -> OutboundMessage:
    return OutboundMessage(
        key=f"c.camp.{i}",
        to=to or f"person{i}@example.com",
        to_name=f"Person {i}",
        subject=f"Subject {i}",
        preheader="Sale ends tonight",
        html=html if html is not None else HTML.format(n=i),
        text=text if text is not None else f"Hello {i}",
        headers={
            "List-Unsubscribe": f"<https://brand.example/u/{i}>, <mailto:unsub@brand.example?subject={i}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        metadata={"campaign": "camp"},
        **kw,
    )


def sms(i: int, to: str | None = None) -> OutboundMessage:
    return OutboundMessage(key=f"c.sms.{i}", to=to or f"+1415555{i:04d}", text=f"Code {i}")


def push(i: int, token: str | None = None) -> OutboundMessage:
    return OutboundMessage(key=f"c.push.{i}", to=token or f"device-token-{i}", title=f"Title {i}", body=f"Body {i}",
                           data={"deeplink": f"app://offer/{i}"})


def outcomes(results) -> list[Outcome]:  # noqa: ANN001
    return [r.outcome for r in results]


def closed_url() -> str:
    """A loopback URL nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"


# --- log --------------------------------------------------------------------------------------


async def test_log_provider_accepts_and_logs_one_json_line_per_message(caplog: pytest.LogCaptureFixture) -> None:
    provider = LogProvider(Channel.EMAIL)
    with caplog.at_level(logging.INFO, logger="domain.delivery.log"):
        results = await provider.send(SENDER, [email(1), email(2)], uuid.uuid4())
    assert outcomes(results) == [Outcome.ACCEPTED] * 2
    assert all(re.fullmatch(r"log-[0-9a-f-]{36}", r.provider_message_id or "") for r in results)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "domain.delivery.log"]
    assert [(line["key"], line["to"], line["subject"], line["channel"]) for line in lines] == [
        ("c.camp.1", "person1@example.com", "Subject 1", "email"),
        ("c.camp.2", "person2@example.com", "Subject 2", "email"),
    ]
    assert "brand.example/u/" not in caplog.text  # headers (unsubscribe tokens) are not logged


# --- SMTP -------------------------------------------------------------------------------------


@pytest.fixture
def smtp_server():
    with FakeSMTP() as fake:
        yield fake


async def test_smtp_message_is_complete_mime(smtp_server: FakeSMTP) -> None:
    provider = SmtpProvider(smtp_server.host, smtp_server.port, starttls=False)
    [result] = await provider.send(SENDER, [email(1)], uuid.uuid4())
    assert result.outcome is Outcome.ACCEPTED
    assert result.provider_message_id == "<c.camp.1@brand.example>"
    [got] = smtp_server.messages
    mime = got.mime
    assert isinstance(mime, EmailMessage)
    assert mime["Message-ID"] == "<c.camp.1@brand.example>"
    assert mime["From"].addresses[0].display_name == "Brand Ünïcode"
    assert mime["From"].addresses[0].addr_spec == "news@brand.example"
    assert mime["To"].addresses[0].addr_spec == "person1@example.com"
    assert mime["Reply-To"] == "help@brand.example"
    assert mime["Subject"] == "Subject 1"
    assert mime["Date"]
    assert mime["List-Unsubscribe"].startswith("<https://brand.example/u/1>")
    assert mime["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mime.get_content_type() == "multipart/alternative"
    assert got.text.strip() == "Hello 1"
    # the preheader is the first, hidden element of the body
    body = got.html.split("<body>", 1)[1]
    assert body.startswith('<div style="display:none') and "Sale ends tonight" in body.split("</div>")[0]
    assert got.sender == "news@brand.example"


async def test_smtp_sends_a_batch_over_several_connections_and_rejects_only_the_refused(smtp_server: FakeSMTP) -> None:
    provider = SmtpProvider(smtp_server.host, smtp_server.port, starttls=False, max_connections=3)
    messages = [email(i, to="invalid@example.com" if i == 4 else None) for i in range(20)]
    results = await provider.send(SENDER, messages, uuid.uuid4())
    assert [r.key for r in results] == [m.key for m in messages]
    assert outcomes(results) == [Outcome.REJECTED if i == 4 else Outcome.ACCEPTED for i in range(20)]
    assert "550" in (results[4].error or "")
    assert sorted(m.to for m in smtp_server.messages) == sorted(m.to for m in messages if "invalid" not in m.to)


async def test_smtp_temporary_refusal_is_retry_for_that_message(smtp_server: FakeSMTP) -> None:
    provider = SmtpProvider(smtp_server.host, smtp_server.port, starttls=False, max_connections=1)
    smtp_server.fail_next(1, status=451)
    results = await provider.send(SENDER, [email(1), email(2)], uuid.uuid4())
    assert outcomes(results) == [Outcome.RETRY, Outcome.ACCEPTED]
    assert [m.to for m in smtp_server.messages] == ["person2@example.com"]


async def test_smtp_refusing_everything_temporarily_is_unavailable(smtp_server: FakeSMTP) -> None:
    provider = SmtpProvider(smtp_server.host, smtp_server.port, starttls=False, max_connections=1)
    smtp_server.fail_next(2, status=421)
    with pytest.raises(ProviderUnavailable):
        await provider.send(SENDER, [email(1), email(2)], uuid.uuid4())
    assert smtp_server.messages == []


async def test_smtp_unreachable_server_is_unavailable() -> None:
    provider = SmtpProvider("127.0.0.1", free_port(), starttls=False, timeout=3)
    with pytest.raises(ProviderUnavailable) as caught:
        await provider.send(SENDER, [email(1)], uuid.uuid4())
    assert "127.0.0.1" not in caught.value.message


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_smtp_login_and_bad_login() -> None:
    with FakeSMTP(username="relay-user", password="relay-pass-123") as fake:
        good = SmtpProvider(fake.host, fake.port, starttls=False, username="relay-user", password="relay-pass-123")
        assert outcomes(await good.send(SENDER, [email(1)], uuid.uuid4())) == [Outcome.ACCEPTED]
        bad = SmtpProvider(fake.host, fake.port, starttls=False, username="relay-user", password="wrong-pass-456")
        with pytest.raises(ProviderRejected) as caught:
            await bad.send(SENDER, [email(2)], uuid.uuid4())
        assert "wrong-pass-456" not in str(caught.value)
        assert [m.to for m in fake.messages] == ["person1@example.com"]


# --- Brevo ------------------------------------------------------------------------------------


def brevo_provider(fake: FakeBrevo, http: httpx.AsyncClient, api_key: str | None = None) -> BrevoProvider:
    return BrevoProvider(api_key or fake.api_key, http=http, api_url=fake.url)


async def test_brevo_sends_a_batch_in_one_request_with_versions(brevo: FakeBrevo, http: httpx.AsyncClient) -> None:
    batch_key = uuid.uuid4()
    messages = [email(i) for i in range(3)]
    results = await brevo_provider(brevo, http).send(SENDER, messages, batch_key)
    assert outcomes(results) == [Outcome.ACCEPTED] * 3
    assert brevo.requests == 1
    got = brevo.by_key()
    for m, r in zip(messages, results, strict=True):
        rec = got[m.key]
        assert rec.to == m.to and rec.subject == m.subject and rec.text == m.text
        assert rec.html is not None and "Sale ends tonight" in rec.html and f"Hello {m.key[-1]}" in rec.html
        assert rec.headers["List-Unsubscribe"] == m.headers["List-Unsubscribe"]
        assert json.loads(rec.headers["X-Mailin-custom"]) == {"bg_key": m.key, "campaign": "camp"}
        assert rec.idempotency_key == str(batch_key)
        assert rec.provider_message_id == r.provider_message_id
    assert len({r.provider_message_id for r in results}) == 3


async def test_brevo_invalid_address_rejects_only_that_recipient(brevo: FakeBrevo, http: httpx.AsyncClient) -> None:
    messages = [email(i, to="not-valid-invalid@example" if i == 3 else None) for i in range(7)]
    results = await brevo_provider(brevo, http).send(SENDER, messages, uuid.uuid4())
    assert outcomes(results) == [Outcome.REJECTED if i == 3 else Outcome.ACCEPTED for i in range(7)]
    assert "email is not valid" in (results[3].error or "")
    assert sorted(brevo.by_key()) == sorted(m.key for i, m in enumerate(messages) if i != 3)


@pytest.mark.parametrize("duplicate_response", ["error", "replay"])
async def test_brevo_repeated_batch_key_delivers_once(
    brevo: FakeBrevo, http: httpx.AsyncClient, duplicate_response: str
) -> None:
    brevo.duplicate_response = duplicate_response
    provider = brevo_provider(brevo, http)
    batch_key = uuid.uuid4()
    messages = [email(i) for i in range(4)]
    first = await provider.send(SENDER, messages, batch_key)
    again = await provider.send(SENDER, messages, batch_key)
    assert outcomes(first) == outcomes(again) == [Outcome.ACCEPTED] * 4
    assert brevo.count == 4 and brevo.requests == 2
    # a different batch is a different request
    await provider.send(SENDER, messages[:1], uuid.uuid4())
    assert brevo.count == 5


async def test_fake_brevo_keeps_brevos_documented_idempotency(brevo: FakeBrevo, http: httpx.AsyncClient) -> None:
    """Pinned to Brevo's documentation, "Idempotency for batch emails"
    (https://developers.brevo.com/docs/heterogenous-versions-batch-emails): ``headers.idempotencyKey``
    is a UUID; a request is processed once per key within the TTL of 30 minutes; after it, the
    key may be used again. The request is the page's example (sender, to, subject, templateId)."""
    key = str(uuid.uuid4())
    body = {"sender": {"name": "Ann", "email": "example@brevo.com"},
            "to": [{"email": "example2@brevo.com", "name": "Jenny"}],
            "headers": {"idempotencyKey": key}, "subject": "This is a unique email", "templateId": 1}
    url, headers = f"{brevo.url}/v3/smtp/email", {"api-key": brevo.api_key, "accept": "application/json"}
    first = await http.post(url, json=body, headers=headers)
    assert first.status_code == 201 and set(first.json()) == {"messageId"}, first.text
    again = await http.post(url, json=body, headers=headers)
    assert again.status_code in (201, 400) and brevo.count == 1  # processed once
    assert brevo.idempotency_ttl == 30 * 60
    brevo._idempotency[key] = (brevo._idempotency[key][0] - 30 * 60 - 1, brevo._idempotency[key][1])
    later = await http.post(url, json=body, headers=headers)  # past the TTL: a new request
    assert later.status_code == 201 and brevo.count == 2
    not_a_uuid = await http.post(url, json={**body, "headers": {"idempotencyKey": "retry-1"}}, headers=headers)
    assert not_a_uuid.status_code == 400 and brevo.count == 2


async def test_brevo_retry_of_a_split_batch_is_still_sent_once(brevo: FakeBrevo, http: httpx.AsyncClient) -> None:
    provider = brevo_provider(brevo, http)
    batch_key = uuid.uuid4()
    messages = [email(i, to="invalid@example.com" if i == 1 else None) for i in range(5)]
    await provider.send(SENDER, messages, batch_key)
    again = await provider.send(SENDER, messages, batch_key)
    assert outcomes(again) == [Outcome.REJECTED if i == 1 else Outcome.ACCEPTED for i in range(5)]
    assert brevo.count == 4


async def test_brevo_rate_limit_is_unavailable_with_retry_after(brevo: FakeBrevo, http: httpx.AsyncClient) -> None:
    brevo.fail_next(1, status=429, retry_after=7)
    with pytest.raises(ProviderUnavailable) as caught:
        await brevo_provider(brevo, http).send(SENDER, [email(1)], uuid.uuid4())
    assert caught.value.status == 429 and caught.value.retry_after == 7
    assert brevo.count == 0


async def test_brevo_server_error_and_network_error_are_unavailable(brevo: FakeBrevo, http: httpx.AsyncClient) -> None:
    brevo.fail_next(1, status=500)
    with pytest.raises(ProviderUnavailable) as caught:
        await brevo_provider(brevo, http).send(SENDER, [email(1)], uuid.uuid4())
    assert caught.value.status == 500
    with pytest.raises(ProviderUnavailable):
        await BrevoProvider("brevo-key-0123456789", http=http, api_url=closed_url()).send(SENDER, [email(1)], uuid.uuid4())
    assert brevo.count == 0


async def test_brevo_bad_api_key_is_rejected_without_echoing_it(brevo: FakeBrevo, http: httpx.AsyncClient) -> None:
    with pytest.raises(ProviderRejected) as caught:
        await brevo_provider(brevo, http, api_key="wrong-key-987654").send(SENDER, [email(1)], uuid.uuid4())
    assert caught.value.status == 401
    assert "wrong-key-987654" not in str(caught.value)


async def test_brevo_owns_and_closes_its_client_only_when_it_made_it(brevo: FakeBrevo, http: httpx.AsyncClient) -> None:
    borrowed = brevo_provider(brevo, http)
    await borrowed.aclose()
    assert not http.is_closed
    owned = BrevoProvider(brevo.api_key, api_url=brevo.url)
    assert outcomes(await owned.send(SENDER, [email(1)], uuid.uuid4())) == [Outcome.ACCEPTED]
    await owned.aclose()
    assert owned.http.is_closed


# --- SendGrid ---------------------------------------------------------------------------------


def sendgrid_provider(fake: FakeSendGrid, http: httpx.AsyncClient, api_key: str | None = None) -> SendGridProvider:
    return SendGridProvider(api_key or fake.api_key, http=http, api_url=fake.url)


async def test_sendgrid_same_content_goes_in_one_request(sendgrid: FakeSendGrid, http: httpx.AsyncClient) -> None:
    messages = [email(i, html="<p>Same for all</p>", text="Same") for i in range(5)]
    results = await sendgrid_provider(sendgrid, http).send(SENDER, messages, uuid.uuid4())
    assert outcomes(results) == [Outcome.ACCEPTED] * 5
    assert sendgrid.requests == 1
    message_ids = {r.provider_message_id for r in results}
    assert len(message_ids) == 1 and None not in message_ids
    for m in messages:
        rec = sendgrid.by_key()[m.key]
        assert rec.to == m.to and rec.subject == m.subject and rec.text == m.text
        assert rec.html is not None and rec.html.endswith("<p>Same for all</p>") and "Sale ends tonight" in rec.html
        assert rec.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert rec.provider_message_id in message_ids


async def test_sendgrid_different_content_goes_in_separate_requests(sendgrid: FakeSendGrid, http: httpx.AsyncClient) -> None:
    messages = [email(i) for i in range(4)]
    results = await sendgrid_provider(sendgrid, http).send(SENDER, messages, uuid.uuid4())
    assert outcomes(results) == [Outcome.ACCEPTED] * 4
    assert sendgrid.requests == 4
    assert {m.key: m.html for m in sendgrid.messages}["c.camp.2"].endswith("<p>Hello 2</p></body></html>")


async def test_sendgrid_invalid_address_rejects_only_that_recipient(sendgrid: FakeSendGrid, http: httpx.AsyncClient) -> None:
    messages = [email(i, html="<p>x</p>", text="x", to="invalid@example.com" if i in (1, 3) else None)
                for i in range(5)]
    results = await sendgrid_provider(sendgrid, http).send(SENDER, messages, uuid.uuid4())
    assert outcomes(results) == [Outcome.REJECTED if i in (1, 3) else Outcome.ACCEPTED for i in range(5)]
    assert sorted(sendgrid.by_key()) == ["c.camp.0", "c.camp.2", "c.camp.4"]
    assert "valid address" in (results[1].error or "")


async def test_sendgrid_rate_limit_and_server_error_are_unavailable(sendgrid: FakeSendGrid, http: httpx.AsyncClient) -> None:
    sendgrid.fail_next(1, status=429, retry_after=5)
    with pytest.raises(ProviderUnavailable) as caught:
        await sendgrid_provider(sendgrid, http).send(SENDER, [email(1)], uuid.uuid4())
    assert caught.value.status == 429 and caught.value.retry_after is not None and 3 <= caught.value.retry_after <= 6
    sendgrid.fail_next(1, status=503)
    with pytest.raises(ProviderUnavailable):
        await sendgrid_provider(sendgrid, http).send(SENDER, [email(1)], uuid.uuid4())
    assert sendgrid.count == 0


async def test_sendgrid_one_failed_request_of_several_is_retry(sendgrid: FakeSendGrid, http: httpx.AsyncClient) -> None:
    sendgrid.fail_next(1, status=500)
    results = await sendgrid_provider(sendgrid, http).send(SENDER, [email(1), email(2)], uuid.uuid4())
    assert sorted(outcomes(results)) == sorted([Outcome.ACCEPTED, Outcome.RETRY])
    assert sendgrid.count == 1


async def test_fake_sendgrid_answers_in_sendgrids_documented_shapes(sendgrid: FakeSendGrid, http: httpx.AsyncClient) -> None:
    """Pinned to SendGrid's documentation: v3 Mail Send
    (https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send) takes personalizations,
    from, subject and content with a Bearer API key and answers 202 Accepted with no body and an
    ``X-Message-Id`` header (https://www.twilio.com/docs/sendgrid/glossary/x-message-id); errors are
    ``{"errors": [{"field", "message"}]}`` (https://www.twilio.com/docs/sendgrid/api-reference/mail-send/errors),
    401 for a bad key."""
    url = f"{sendgrid.url}/v3/mail/send"
    body = {"personalizations": [{"to": [{"email": "john_doe@example.com", "name": "John Doe"}]}],
            "from": {"email": "sender@example.com"}, "subject": "Hello, World!",
            "content": [{"type": "text/plain", "value": "Heya!"}]}
    ok = await http.post(url, json=body, headers={"Authorization": f"Bearer {sendgrid.api_key}"})
    assert ok.status_code == 202 and ok.content == b"" and ok.headers["X-Message-Id"], ok
    bad = await http.post(url, json={k: v for k, v in body.items() if k != "subject"},
                          headers={"Authorization": f"Bearer {sendgrid.api_key}"})
    assert bad.status_code == 400
    assert bad.json()["errors"] and all({"field", "message"} <= set(e) for e in bad.json()["errors"]), bad.text
    assert ("subject", "The subject is required.") in [(e["field"], e["message"]) for e in bad.json()["errors"]]
    denied = await http.post(url, json=body, headers={"Authorization": "Bearer SG.nope"})
    assert denied.status_code == 401 and set(denied.json()) == {"errors"}
    assert sendgrid.count == 1


async def test_sendgrid_bad_api_key_is_rejected(sendgrid: FakeSendGrid, http: httpx.AsyncClient) -> None:
    with pytest.raises(ProviderRejected) as caught:
        await sendgrid_provider(sendgrid, http, api_key="SG.wrong-key-5555").send(SENDER, [email(1), email(2)], uuid.uuid4())
    assert caught.value.status == 401 and "SG.wrong-key-5555" not in str(caught.value)


# --- Twilio -----------------------------------------------------------------------------------


async def test_fake_twilio_answers_in_twilios_documented_shapes(twilio: FakeTwilio, http: httpx.AsyncClient) -> None:
    """Pinned to Twilio's documentation: Create a Message
    (https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource) answers
    201 with the Message resource (``sid`` "SM" + 32 hex, ``status`` queued, or accepted through a
    Messaging Service); errors are JSON ``code``, ``message``, ``more_info``, ``status``
    (https://www.twilio.com/docs/usage/twilios-response), 21211 for an invalid To
    (https://www.twilio.com/docs/errors/21211); HTTP Basic auth with the Account SID and Auth Token."""
    url = f"{twilio.url}/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
    auth = (twilio.account_sid, twilio.auth_token)
    ok = await http.post(url, data={"To": "+14155550100", "From": "+14155550199", "Body": "Hi"}, auth=auth)
    assert ok.status_code == 201, ok.text
    message = ok.json()
    assert re.fullmatch(r"SM[0-9a-f]{32}", message["sid"]) and message["status"] == "queued"
    assert (message["to"], message["from"], message["body"], message["account_sid"]) == (
        "+14155550100", "+14155550199", "Hi", twilio.account_sid)
    bad = await http.post(url, data={"To": "+1invalid", "From": "+14155550199", "Body": "Hi"}, auth=auth)
    assert bad.status_code == 400 and bad.json() == {
        "code": 21211, "message": "Invalid 'To' Phone Number: +1invalid",
        "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}
    denied = await http.post(url, data={"To": "+14155550100", "From": "+14155550199", "Body": "Hi"},
                             auth=(twilio.account_sid, "wrong"))
    assert denied.status_code == 401 and denied.json()["code"] == 20003


def twilio_provider(fake: FakeTwilio, http: httpx.AsyncClient, **kw) -> TwilioProvider:
    return TwilioProvider(kw.pop("account_sid", fake.account_sid), kw.pop("auth_token", fake.auth_token),
                          http=http, api_url=fake.url, **kw)


SMS_SENDER = Sender(sms_sender="+14155550000")


async def test_twilio_sends_each_message_with_the_right_fields(twilio: FakeTwilio, http: httpx.AsyncClient) -> None:
    provider = twilio_provider(twilio, http, status_callback_url="https://api.example/webhooks/twilio/t/b?k={key}")
    messages = [sms(i) for i in range(5)]
    results = await provider.send(SMS_SENDER, messages, uuid.uuid4())
    assert outcomes(results) == [Outcome.ACCEPTED] * 5
    assert all(re.fullmatch(r"SM[0-9a-f]{32}", r.provider_message_id or "") for r in results)
    sent = {m.provider_message_id: m for m in twilio.messages}
    for m, r in zip(messages, results, strict=True):
        rec = sent[r.provider_message_id]
        assert (rec.to, rec.sender, rec.text) == (m.to, "+14155550000", m.text)
        assert rec.headers["StatusCallback"] == f"https://api.example/webhooks/twilio/t/b?k={m.key}"


async def test_twilio_messaging_service_replaces_from(twilio: FakeTwilio, http: httpx.AsyncClient) -> None:
    service = "MG" + "1" * 32
    provider = twilio_provider(twilio, http, messaging_service_sid=service)
    assert outcomes(await provider.send(Sender(), [sms(1)], uuid.uuid4())) == [Outcome.ACCEPTED]
    assert twilio.messages[0].sender == service
    with pytest.raises(ProviderRejected):
        await twilio_provider(twilio, http).send(Sender(), [sms(2)], uuid.uuid4())


async def test_twilio_invalid_numbers_are_rejected_alone(twilio: FakeTwilio, http: httpx.AsyncClient) -> None:
    messages = [sms(0), sms(1, to="+1invalid"), sms(2, to="+15550landline"), sms(3)]
    results = await twilio_provider(twilio, http).send(SMS_SENDER, messages, uuid.uuid4())
    assert outcomes(results) == [Outcome.ACCEPTED, Outcome.REJECTED, Outcome.REJECTED, Outcome.ACCEPTED]
    assert (results[1].error or "").startswith("21211") and (results[2].error or "").startswith("21614")
    assert twilio.count == 2


async def test_twilio_rate_limited_message_is_retry(twilio: FakeTwilio, http: httpx.AsyncClient) -> None:
    twilio.fail_next(1, status=429, retry_after=2)
    results = await twilio_provider(twilio, http).send(SMS_SENDER, [sms(i) for i in range(4)], uuid.uuid4())
    assert sorted(outcomes(results)).count(Outcome.RETRY) == 1
    assert outcomes(results).count(Outcome.ACCEPTED) == 3 and twilio.count == 3


async def test_twilio_everything_rate_limited_or_failing_is_unavailable(twilio: FakeTwilio, http: httpx.AsyncClient) -> None:
    twilio.fail_next(3, status=429, retry_after=4)
    with pytest.raises(ProviderUnavailable) as caught:
        await twilio_provider(twilio, http).send(SMS_SENDER, [sms(i) for i in range(3)], uuid.uuid4())
    assert caught.value.retry_after == 4
    twilio.fail_next(2, status=500)
    with pytest.raises(ProviderUnavailable):
        await twilio_provider(twilio, http).send(SMS_SENDER, [sms(i) for i in range(2)], uuid.uuid4())
    assert twilio.count == 0


async def test_twilio_bad_credentials_are_rejected(twilio: FakeTwilio, http: httpx.AsyncClient) -> None:
    with pytest.raises(ProviderRejected) as caught:
        await twilio_provider(twilio, http, auth_token="bad-token-424242").send(SMS_SENDER, [sms(1), sms(2)], uuid.uuid4())
    assert caught.value.status == 401 and "bad-token-424242" not in str(caught.value)


# --- FCM --------------------------------------------------------------------------------------


def fcm_provider(fake: FakeFCM, http: httpx.AsyncClient, account: dict | None = None) -> FcmProvider:
    return FcmProvider(json.dumps(account or fake.service_account), http=http, api_url=fake.url, token_url=fake.token_url)


async def test_fake_fcm_answers_in_fcms_documented_shapes(fcm: FakeFCM, http: httpx.AsyncClient) -> None:
    """Pinned to Firebase's documentation: ``projects.messages.send``
    (https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages/send) answers with the
    Message whose ``name`` is ``projects/*/messages/{message_id}``; errors are Google API errors
    (``error.code``, ``message``, ``status``) with an FcmError detail naming the ErrorCode
    (https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode): UNREGISTERED with 404 for a
    token no longer valid; a missing OAuth 2 token is 401 UNAUTHENTICATED."""
    await fcm_provider(fcm, http).send(Sender(), [push(0)], uuid.uuid4())  # an access token, the provider's way
    token = next(iter(fcm._tokens))
    url = f"{fcm.url}/v1/projects/{fcm.project_id}/messages:send"
    message = {"message": {"token": "device-token-9", "notification": {"title": "Hi", "body": "There"}}}
    ok = await http.post(url, json=message, headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and set(ok.json()) == {"name"}, ok.text
    assert re.fullmatch(rf"projects/{fcm.project_id}/messages/[^/]+", ok.json()["name"])
    gone = await http.post(url, json={"message": {**message["message"], "token": "unregistered-1"}},
                           headers={"Authorization": f"Bearer {token}"})
    error = gone.json()["error"]
    assert gone.status_code == 404 and (error["code"], error["status"]) == (404, "NOT_FOUND")
    assert error["details"] == [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]
    anonymous = await http.post(url, json=message)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["status"] == "UNAUTHENTICATED"


async def test_fcm_sends_and_reuses_one_access_token(fcm: FakeFCM, http: httpx.AsyncClient) -> None:
    provider = fcm_provider(fcm, http)
    first = await provider.send(Sender(), [push(i) for i in range(10)], uuid.uuid4())
    second = await provider.send(Sender(), [push(i) for i in range(10, 13)], uuid.uuid4())
    assert outcomes(first + second) == [Outcome.ACCEPTED] * 13
    assert fcm.token_requests == 1 and provider.token_fetches == 1
    assert all((r.provider_message_id or "").startswith("projects/bg-test-project/messages/") for r in first)
    rec = {m.to: m for m in fcm.messages}["device-token-3"]
    assert (rec.title, rec.body, rec.data) == ("Title 3", "Body 3", {"deeplink": "app://offer/3"})


async def test_fcm_unregistered_and_invalid_tokens_are_rejected(fcm: FakeFCM, http: httpx.AsyncClient) -> None:
    messages = [push(0), push(1, "old-unregistered-token"), push(2, "invalid-token"), push(3)]
    results = await fcm_provider(fcm, http).send(Sender(), messages, uuid.uuid4())
    assert outcomes(results) == [Outcome.ACCEPTED, Outcome.REJECTED, Outcome.REJECTED, Outcome.ACCEPTED]
    assert (results[1].error or "").startswith("UNREGISTERED")
    assert fcm.count == 2


async def test_fcm_quota_and_unavailable_are_retry(fcm: FakeFCM, http: httpx.AsyncClient) -> None:
    fcm.fail_next(1, status=429, retry_after=9)
    fcm.fail_next(1, status=503)
    results = await fcm_provider(fcm, http).send(Sender(), [push(i) for i in range(4)], uuid.uuid4())
    assert outcomes(results).count(Outcome.RETRY) == 2 and fcm.count == 2
    fcm.fail_next(2, status=503, retry_after=3)
    with pytest.raises(ProviderUnavailable) as caught:
        await fcm_provider(fcm, http).send(Sender(), [push(i) for i in range(2)], uuid.uuid4())
    assert caught.value.retry_after == 3


async def test_fcm_refused_token_is_refreshed_once(fcm: FakeFCM, http: httpx.AsyncClient) -> None:
    provider = fcm_provider(fcm, http)
    await provider.send(Sender(), [push(1)], uuid.uuid4())
    fcm.expire_tokens()
    results = await provider.send(Sender(), [push(i) for i in range(5)], uuid.uuid4())
    assert outcomes(results) == [Outcome.ACCEPTED] * 5
    assert fcm.token_requests == 2  # one refresh shared by the five concurrent sends


async def test_fcm_unknown_service_account_is_rejected(fcm: FakeFCM, http: httpx.AsyncClient) -> None:
    stranger, _ = make_service_account("bg-test-project")
    with pytest.raises(ProviderRejected) as caught:
        await fcm_provider(fcm, http, stranger).send(Sender(), [push(1)], uuid.uuid4())
    assert "PRIVATE KEY" not in str(caught.value)
    assert fcm.count == 0


async def test_fcm_never_uses_the_token_uri_of_the_uploaded_json(fcm: FakeFCM, http: httpx.AsyncClient) -> None:
    elsewhere = FakeFCM("bg-test-project", service_account=fcm.service_account)
    with elsewhere:
        account = {**fcm.service_account, "token_uri": elsewhere.token_url}
        results = await fcm_provider(fcm, http, account).send(Sender(), [push(1)], uuid.uuid4())
        assert outcomes(results) == [Outcome.ACCEPTED]
        assert (fcm.token_requests, elsewhere.token_requests) == (1, 0)


# --- registry ---------------------------------------------------------------------------------


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch):
    """Process settings from the environment, re-read for the test and restored after it."""
    from domain.config import get_settings

    def apply(**env: str):  # noqa: ANN202
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        return get_settings()

    yield apply
    monkeypatch.undo()
    get_settings.cache_clear()


def test_registry_describes_every_provider() -> None:
    assert set(registry.PROVIDERS) == {"log", "smtp", "brevo", "sendgrid", "twilio", "fcm"}
    assert registry.PROVIDERS["log"].channels == frozenset(Channel)
    assert registry.PROVIDERS["twilio"].channels == {Channel.SMS}
    assert registry.PROVIDERS["fcm"].channels == {Channel.PUSH}
    brevo_creds = {f.name: f.required for f in registry.PROVIDERS["brevo"].credentials}
    assert brevo_creds == {"apiKey": True, "webhookToken": False}


def test_registry_validate_reports_each_problem_by_path() -> None:
    v = registry.validate
    [(path, message)] = v("carrier-pigeon", Channel.EMAIL, {}, {})
    assert path == "provider" and "brevo" in message
    assert v("twilio", Channel.EMAIL, {}, {})[0][0] == "channel"
    assert v("brevo", Channel.EMAIL, {}, {}) == [("credentials.apiKey", "is required")]
    assert v("brevo", "email", {"colour": "red"}, {"apiKey": "xkeysib-0123456789", "apikey": "x"}) == [
        ("settings.colour", "unknown setting"),
        ("credentials.apikey", "unknown credential"),
    ]
    problems = dict(v("smtp", Channel.EMAIL, {"host": "smtp.example.com", "port": 70000, "timeout": "soon"}, {}))
    assert set(problems) == {"settings.port", "settings.timeout"}
    assert dict(v("smtp", Channel.EMAIL, {"host": "smtp.example.com", "starttls": True, "use_tls": True},
                  {"username": "u"})) == {
        "settings.use_tls": "cannot be combined with starttls (choose one)",
        "credentials.password": "is required with the other SMTP login field",
    }
    assert set(dict(v("smtp", Channel.EMAIL, {"host": "smtp.example.com", "port": True}, {}))) == {"settings.port"}
    twilio_problems = dict(v("twilio", Channel.SMS, {"status_callback_url": "ftp://x"},
                             {"accountSid": "ACnope", "authToken": "t" * 32}))
    assert set(twilio_problems) == {"credentials.accountSid", "settings.status_callback_url"}
    fcm_problems = dict(v("fcm", Channel.PUSH, {}, {"serviceAccountJson": '{"project_id": "p"}'}))
    assert "client_email" in fcm_problems["credentials.serviceAccountJson"]
    sg_problems = dict(v("sendgrid", Channel.EMAIL, {}, {"apiKey": "SG.0123456789", "webhookVerificationKey": "bm90IGEga2V5"}))
    assert set(sg_problems) == {"credentials.webhookVerificationKey"}


def test_registry_accepts_complete_configurations() -> None:
    account, _ = make_service_account("p1")
    public_der = _sendgrid_keys()[1]
    assert registry.validate("log", Channel.SMS, None, None) == []
    assert registry.validate("smtp", Channel.EMAIL, {"host": "smtp.example.com", "port": 465, "use_tls": True,
                                                     "starttls": False, "timeout": 20, "max_connections": 2},
                             {"username": "u", "password": "p"}) == []
    assert registry.validate("brevo", Channel.EMAIL, {}, {"apiKey": "xkeysib-0123456789", "webhookToken": "t" * 24}) == []
    assert registry.validate("sendgrid", Channel.EMAIL, {}, {"apiKey": "SG.0123456789",
                                                            "webhookVerificationKey": public_der}) == []
    assert registry.validate("twilio", Channel.SMS, {"messaging_service_sid": "MG" + "a" * 32,
                                                     "status_callback_url": "https://api.example/webhooks/twilio/t/b"},
                             {"accountSid": "AC" + "a" * 32, "authToken": "t" * 32}) == []
    assert registry.validate("fcm", Channel.PUSH, {}, {"serviceAccountJson": json.dumps(account)}) == []


def test_registry_refuses_internal_smtp_hosts_in_production(configured) -> None:  # noqa: ANN001
    settings = {"host": "127.0.0.1"}
    assert registry.validate("smtp", Channel.EMAIL, settings, {}) == []
    configured(BRANDGRAPH_ENV="production")
    for host in ("127.0.0.1", "localhost", "10.1.2.3", "169.254.169.254", "[::1]"):
        assert registry.validate("smtp", Channel.EMAIL, {"host": host}, {}) == [("settings.host", "must be a public host")]
    assert registry.validate("smtp", Channel.EMAIL, {"host": "smtp-relay.brevo.com"}, {}) == []


async def test_registry_builds_working_providers_from_process_settings(
    configured, brevo: FakeBrevo, fcm: FakeFCM, http: httpx.AsyncClient  # noqa: ANN001
) -> None:
    configured(BREVO_API_URL=brevo.url, FCM_API_URL=fcm.url, FCM_TOKEN_URL=fcm.token_url)
    log = registry.build("log", "push", {}, {})
    assert isinstance(log, LogProvider) and log.channel is Channel.PUSH
    mail = registry.build("brevo", Channel.EMAIL, {}, {"apiKey": brevo.api_key}, http=http)
    assert (mail.name, mail.max_batch, mail.idempotent) == ("brevo", 500, True)
    assert outcomes(await mail.send(SENDER, [email(1)], uuid.uuid4())) == [Outcome.ACCEPTED]
    account = {**fcm.service_account, "token_uri": "http://169.254.169.254/steal"}
    pusher = registry.build("fcm", Channel.PUSH, {}, {"serviceAccountJson": json.dumps(account)}, http=http)
    assert outcomes(await pusher.send(Sender(), [push(1)], uuid.uuid4())) == [Outcome.ACCEPTED]
    smtp = registry.build("smtp", Channel.EMAIL, {"host": "smtp.example.com", "use_tls": True}, {})
    assert isinstance(smtp, SmtpProvider) and (smtp.port, smtp.use_tls, smtp.starttls) == (465, True, False)
    twilio = registry.build("twilio", Channel.SMS, {"status_callback_url": "https://x.example/cb"},
                            {"accountSid": "AC" + "a" * 32, "authToken": "t" * 32})
    assert isinstance(twilio, TwilioProvider) and twilio.status_callback_url == "https://x.example/cb"
    for provider in (log, mail, pusher, smtp, twilio):
        await provider.aclose()
    assert not http.is_closed


def test_registry_build_refuses_an_invalid_configuration_without_quoting_it() -> None:
    with pytest.raises(ProviderRejected) as caught:
        registry.build("twilio", Channel.SMS, {}, {"accountSid": "secret-looking-value", "authToken": "short"})
    assert "credentials.accountSid" in str(caught.value) and "secret-looking-value" not in str(caught.value)
    assert "credentials.authToken: must be at least 16 characters" in str(caught.value)


# --- webhooks: SendGrid -----------------------------------------------------------------------


def _sendgrid_keys() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, base64.b64encode(der).decode()


SENDGRID_EVENTS = [  # the shapes of SendGrid's event webhook reference
    {"email": "a@example.com", "timestamp": 1700000000, "event": "processed", "sg_event_id": "e0",
     "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0", "bg_key": "c.camp.1"},
    {"email": "a@example.com", "timestamp": 1700000001, "event": "delivered", "sg_event_id": "e1",
     "sg_message_id": "Xy-NnM8kQ0ep4DMmOSVEag.filterdrecv-5645d9c87f-78xgx-1-5E1B5B41-5.0", "bg_key": "c.camp.1",
     "response": "250 OK", "campaign": "camp"},
    {"email": "b@example.com", "timestamp": 1700000002, "event": "bounce", "type": "bounce", "sg_event_id": "e2",
     "reason": "550 5.1.1 The email account that you tried to reach does not exist", "status": "5.1.1",
     "bg_key": "c.camp.2"},
    {"email": "c@example.com", "timestamp": 1700000003, "event": "bounce", "type": "blocked", "sg_event_id": "e3",
     "reason": "550 5.7.1 blocked by policy", "bg_key": "c.camp.3"},
    {"email": "d@example.com", "timestamp": 1700000004, "event": "dropped", "reason": "Bounced Address",
     "sg_event_id": "e4", "bg_key": "c.camp.4"},
    {"email": "a@example.com", "timestamp": 1700000005, "event": "open", "sg_event_id": "e5", "bg_key": "c.camp.1",
     "useragent": "Mozilla/5.0", "ip": "255.255.255.255"},
    {"email": "a@example.com", "timestamp": 1700000006, "event": "click", "url": "https://brand.example/sale",
     "sg_event_id": "e6", "bg_key": "c.camp.1"},
    {"email": "a@example.com", "timestamp": 1700000007, "event": "spamreport", "sg_event_id": "e7", "bg_key": "c.camp.1"},
    {"email": "a@example.com", "timestamp": 1700000008, "event": "unsubscribe", "sg_event_id": "e8", "bg_key": "c.camp.1"},
    {"email": "e@example.com", "timestamp": 1700000009, "event": "group_unsubscribe", "asm_group_id": 1,
     "sg_event_id": "e9", "bg_key": "c.camp.5"},
    {"email": "f@example.com", "timestamp": 1700000010, "event": "deferred", "sg_event_id": "e10", "bg_key": "c.camp.6"},
]


def test_sendgrid_signature_accepts_the_signed_request_only() -> None:
    private, public = _sendgrid_keys()
    body = json.dumps(SENDGRID_EVENTS).encode()
    timestamp = "1700000100"
    signature = webhooks.sign_sendgrid(private, timestamp, body)
    webhooks.verify_sendgrid(public, signature, timestamp, body)
    with pytest.raises(WebhookRejected):
        webhooks.verify_sendgrid(public, signature, timestamp, body.replace(b"c.camp.1", b"c.camp.9"))
    with pytest.raises(WebhookRejected):
        webhooks.verify_sendgrid(public, signature, "1700000101", body)
    forged = base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode()
    for bad in (forged, "not base64!", "", None):
        with pytest.raises(WebhookRejected):
            webhooks.verify_sendgrid(public, bad, timestamp, body)
    other = _sendgrid_keys()[1]
    with pytest.raises(WebhookRejected):
        webhooks.verify_sendgrid(other, signature, timestamp, body)
    pem = serialization.load_der_public_key(base64.b64decode(public)).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    webhooks.verify_sendgrid(pem, signature, timestamp, body)


def test_sendgrid_signature_matches_sendgrids_published_example() -> None:
    """The test vector SendGrid publishes for its signed Event Webhook (the public key, signature,
    timestamp and payload of sendgrid-python's test/unit/test_eventwebhook.py, the library
    https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features
    points to): the signature is ECDSA P-256 / SHA-256 over the timestamp followed by the raw body."""
    public = ("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+"
              "2fNNRaINXvVpiglSI8eNEc6wEA3F+g==")
    signature = "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM="
    timestamp = "1600112502"
    body = (json.dumps([{
        "email": "hello@world.com", "event": "dropped", "reason": "Bounced Address",
        "sg_event_id": "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
        "sg_message_id": "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",
        "smtp-id": "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>", "timestamp": 1600112492,
    }], sort_keys=True, separators=(",", ":")) + "\r\n").encode()
    webhooks.verify_sendgrid(public, signature, timestamp, body)
    for args in ((public, signature, timestamp, body.rstrip()), (public, signature, "1600112503", body)):
        with pytest.raises(WebhookRejected):
            webhooks.verify_sendgrid(*args)
    assert webhooks.parse_sendgrid(body)[0].kind is EventKind.FAILED  # a dropped message


def test_sendgrid_events_are_mapped_with_their_key() -> None:
    events = webhooks.parse_sendgrid(json.dumps(SENDGRID_EVENTS).encode())
    assert [(e.kind, e.message_key) for e in events] == [
        (EventKind.DELIVERED, "c.camp.1"),
        (EventKind.BOUNCED, "c.camp.2"),
        (EventKind.FAILED, "c.camp.3"),
        (EventKind.FAILED, "c.camp.4"),
        (EventKind.OPENED, "c.camp.1"),
        (EventKind.CLICKED, "c.camp.1"),
        (EventKind.COMPLAINED, "c.camp.1"),
        (EventKind.UNSUBSCRIBED, "c.camp.1"),
        (EventKind.UNSUBSCRIBED, "c.camp.5"),
    ]
    delivered, bounced, *_ = events
    assert delivered.occurred_at == datetime.fromtimestamp(1700000001, UTC)
    assert delivered.provider_message_id == "Xy-NnM8kQ0ep4DMmOSVEag"
    assert delivered.raw["sg_event_id"] == "e1"
    assert "does not exist" in (bounced.reason or "")
    assert events[5].url == "https://brand.example/sale"
    for bad in (b"{}", b"not json", b'[1, 2]'):
        with pytest.raises(WebhookRejected):
            webhooks.parse_sendgrid(bad)


# --- webhooks: Brevo --------------------------------------------------------------------------


def test_brevo_webhook_token_check() -> None:
    token = "brevo-webhook-token-0123456789"
    webhooks.verify_brevo(token, f"Bearer {token}")
    webhooks.verify_brevo(token, "Basic " + base64.b64encode(f"brevo:{token}".encode()).decode())
    for header in (None, "", f"Bearer {token}x", "Bearer ", f"Token {token}",
                   "Basic " + base64.b64encode(b"brevo:nope").decode(), "Basic %%%"):
        with pytest.raises(WebhookRejected):
            webhooks.verify_brevo(token, header)
    with pytest.raises(WebhookRejected):
        webhooks.verify_brevo("", "Bearer ")


def brevo_event(event: str, **extra) -> dict:
    """The shape of Brevo's transactional webhook events."""
    return {"event": event, "email": "a@example.com", "id": 123456, "date": "2023-11-14 23:13:20",
            "ts": 1700000000, "message-id": "<202311142313.1@smtp-relay.mailin.fr>", "ts_event": 1700000000,
            "subject": "Subject 1", "X-Mailin-custom": json.dumps({"bg_key": "c.camp.1", "campaign": "camp"}),
            "sending_ip": "185.41.28.109", "ts_epoch": 1700000000123, "tags": [], **extra}


def test_brevo_events_are_mapped_with_their_key() -> None:
    single = webhooks.parse_brevo(json.dumps(brevo_event("delivered")).encode())
    assert [(e.kind, e.message_key, e.provider_message_id) for e in single] == [
        (EventKind.DELIVERED, "c.camp.1", "<202311142313.1@smtp-relay.mailin.fr>")
    ]
    assert single[0].occurred_at == datetime.fromtimestamp(1700000000, UTC)
    batch = [
        brevo_event("request"),
        brevo_event("hard_bounce", reason="550 user unknown"),
        brevo_event("soft_bounce", reason="mailbox full"),
        brevo_event("blocked"),
        brevo_event("invalid_email"),
        brevo_event("opened"),
        brevo_event("unique_opened"),
        brevo_event("click", link="https://brand.example/sale"),
        brevo_event("spam"),
        brevo_event("unsubscribed"),
        brevo_event("deferred"),
        brevo_event("proxy_open"),
    ]
    events = webhooks.parse_brevo(json.dumps(batch).encode())
    assert [e.kind for e in events] == [
        EventKind.BOUNCED, EventKind.FAILED, EventKind.FAILED, EventKind.BOUNCED, EventKind.OPENED,
        EventKind.OPENED, EventKind.CLICKED, EventKind.COMPLAINED, EventKind.UNSUBSCRIBED,
    ]
    assert events[0].reason == "550 user unknown" and events[6].url == "https://brand.example/sale"
    plain = webhooks.parse_brevo(json.dumps(brevo_event("delivered", **{"X-Mailin-custom": "c.camp.7"})).encode())
    assert plain[0].message_key == "c.camp.7"
    no_ts = {k: v for k, v in brevo_event("delivered").items() if k not in ("ts_event", "ts")}
    assert webhooks.parse_brevo(json.dumps(no_ts).encode())[0].occurred_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    with pytest.raises(WebhookRejected):
        webhooks.parse_brevo(b"<xml/>")


# --- webhooks: Twilio -------------------------------------------------------------------------


def test_twilio_signature_matches_twilios_published_example() -> None:
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675309", "Digits": "1234",
              "From": "+14158675309", "To": "+18005551212"}
    assert webhooks.sign_twilio("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    webhooks.verify_twilio("12345", url, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    for args in (("12345", url, {**params, "Digits": "9999"}), ("12345", url + "&x=1", params), ("54321", url, params)):
        with pytest.raises(WebhookRejected):
            webhooks.verify_twilio(*args, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    for signature in ("", None, "RSOYDt4T1cUTdK1PDd93/VVr8B8"):
        with pytest.raises(WebhookRejected):
            webhooks.verify_twilio("12345", url, params, signature)


def test_twilio_status_callbacks_are_mapped() -> None:
    base = {"AccountSid": "AC" + "a" * 32, "From": "+14155550000", "To": "+14155550001", "ApiVersion": "2010-04-01",
            "MessageSid": "SM" + "b" * 32, "SmsSid": "SM" + "b" * 32}
    at = datetime(2024, 1, 1, tzinfo=UTC)
    [delivered] = webhooks.parse_twilio_status({**base, "MessageStatus": "delivered", "SmsStatus": "delivered"},
                                               received_at=at)
    assert (delivered.kind, delivered.provider_message_id, delivered.occurred_at) == (EventKind.DELIVERED, "SM" + "b" * 32, at)
    assert delivered.message_key is None
    [failed] = webhooks.parse_twilio_status({**base, "MessageStatus": "undelivered", "ErrorCode": "30003"})
    assert (failed.kind, failed.reason) == (EventKind.FAILED, "30003")
    assert webhooks.parse_twilio_status({**base, "MessageStatus": "failed", "ErrorCode": "30008"})[0].kind is EventKind.FAILED
    for status in ("queued", "sending", "sent", "accepted"):
        assert webhooks.parse_twilio_status({**base, "MessageStatus": status}) == []


async def test_smtp_login_the_server_does_not_offer_is_rejected(smtp_server: FakeSMTP) -> None:
    provider = SmtpProvider(smtp_server.host, smtp_server.port, starttls=False, username="u", password="p")
    with pytest.raises(ProviderRejected):
        await provider.send(SENDER, [email(1)], uuid.uuid4())
    with pytest.raises(ProviderRejected):  # STARTTLS required by the settings, not offered
        await SmtpProvider(smtp_server.host, smtp_server.port, starttls=True).send(SENDER, [email(1)], uuid.uuid4())
    assert smtp_server.messages == []


async def test_brevo_splits_oversized_batches_and_stays_idempotent(
    brevo: FakeBrevo, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from domain.delivery.providers import brevo as brevo_module

    monkeypatch.setattr(brevo_module, "MAX_REQUEST_BYTES", 2_000)
    provider = brevo_provider(brevo, http)
    batch_key = uuid.uuid4()
    messages = [email(i) for i in range(6)]
    first = await provider.send(SENDER, messages, batch_key)
    assert outcomes(first) == [Outcome.ACCEPTED] * 6 and brevo.requests > 1
    assert len({m.idempotency_key for m in brevo.messages}) == brevo.requests
    await provider.send(SENDER, messages, batch_key)
    assert brevo.count == 6
