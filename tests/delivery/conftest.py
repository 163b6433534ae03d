"""Provider tests run against the loopback fakes in ``tests/fakes``; they need no database.

Each fake runs once per module on its own thread and is reset before every test that uses it.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `tests.fakes` is imported as a package from the repo root
    sys.path.insert(0, str(ROOT))

from tests.fakes.providers import FakeBrevo, FakeFCM, FakeSendGrid, FakeTwilio  # noqa: E402


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def _serve(fake):  # noqa: ANN001, ANN202
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def brevo_server() -> Iterator[FakeBrevo]:
    yield from _serve(FakeBrevo(api_key="brevo-key-0123456789"))


@pytest.fixture(scope="module")
def sendgrid_server() -> Iterator[FakeSendGrid]:
    yield from _serve(FakeSendGrid(api_key="SG.key-0123456789"))


@pytest.fixture(scope="module")
def twilio_server() -> Iterator[FakeTwilio]:
    yield from _serve(FakeTwilio(account_sid="AC" + "ab" * 16, auth_token="twilio-token-0123456789"))


@pytest.fixture(scope="module")
def fcm_server() -> Iterator[FakeFCM]:
    yield from _serve(FakeFCM("bg-test-project"))


@pytest.fixture
def brevo(brevo_server: FakeBrevo) -> FakeBrevo:
    brevo_server.reset()
    brevo_server.duplicate_response = "error"
    return brevo_server


@pytest.fixture
def sendgrid(sendgrid_server: FakeSendGrid) -> FakeSendGrid:
    sendgrid_server.reset()
    return sendgrid_server


@pytest.fixture
def twilio(twilio_server: FakeTwilio) -> FakeTwilio:
    twilio_server.reset()
    return twilio_server


@pytest.fixture
def fcm(fcm_server: FakeFCM) -> FakeFCM:
    fcm_server.reset()
    return fcm_server
