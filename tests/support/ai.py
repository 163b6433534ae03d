"""AI test fixtures: loopback providers (tests/fakes/ai.py) and an API process whose provider
base URLs point at them, as production points them at the providers. Test modules import the
fixtures they use from here."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from conftest import Process, TenantFixture, free_port, start_api, start_worker
from fakes.ai import FakeAnthropic, FakeCanva, FakeJasper, FakeOpenAI, FakePerplexity


@dataclass
class AiFakes:
    openai: FakeOpenAI
    anthropic: FakeAnthropic
    perplexity: FakePerplexity
    jasper: FakeJasper
    canva: FakeCanva

    def all(self) -> tuple:
        return (self.openai, self.anthropic, self.perplexity, self.jasper, self.canva)

    def env(self) -> dict[str, str]:
        return {"OPENAI_API_URL": self.openai.url, "ANTHROPIC_API_URL": self.anthropic.url,
                "PERPLEXITY_API_URL": self.perplexity.url, "JASPER_API_URL": self.jasper.url,
                "CANVA_API_URL": self.canva.url, "LOG_LEVEL": "DEBUG",
                "AI_ENDPOINTS": '[{"name": "house-llm", "base_url": "' + self.openai.url + '/v1", '
                                '"models": ["house-7b"]}]'}

    def keys(self) -> list[str]:
        return [self.openai.api_key, self.anthropic.api_key, self.perplexity.api_key, self.jasper.api_key,
                self.canva.api_key, self.canva.refresh_token]


@pytest.fixture(scope="session")
def ai_fakes() -> Iterator[AiFakes]:
    found = AiFakes(FakeOpenAI().start(), FakeAnthropic().start(), FakePerplexity().start(), FakeJasper().start(),
                    FakeCanva().start())
    yield found
    for fake in found.all():
        fake.stop()


@pytest.fixture
def fakes_ai(ai_fakes: AiFakes) -> AiFakes:
    for fake in ai_fakes.all():
        fake.reset()
    return ai_fakes


@dataclass
class AiServer:
    url: str
    proc: Process
    worker: Process | None = None

    def logs(self) -> str:
        return self.proc.output() + (self.worker.output() if self.worker else "")


@pytest.fixture(scope="session")
def ai_server(ai_fakes: AiFakes) -> Iterator[AiServer]:
    proc, url = start_api("api-ai", env=ai_fakes.env())
    yield AiServer(url, proc)
    proc.stop()


@pytest.fixture(scope="module")
def ai_worker(ai_fakes: AiFakes, ai_server: AiServer) -> Iterator[Process]:
    """A worker whose providers point at the fakes: it executes the streaming copilot runs. For
    the module that uses it only: a worker left running would take other areas' background work
    (live segment evaluations) while their tests compare rows before and after."""
    worker = start_worker({**ai_fakes.env(), "PUBLIC_URL": ai_server.url}, name="worker-ai")
    ai_server.worker = worker
    yield worker
    ai_server.worker = None
    worker.stop()


@pytest.fixture(scope="session")
def unreachable_server() -> Iterator[AiServer]:
    """An API process whose providers all point at a port nobody listens on."""
    dead = f"http://127.0.0.1:{free_port()}"
    proc, url = start_api("api-ai-dead", env={"OPENAI_API_URL": dead, "ANTHROPIC_API_URL": dead,
                                              "PERPLEXITY_API_URL": dead, "JASPER_API_URL": dead,
                                              "CANVA_API_URL": dead})
    yield AiServer(url, proc)
    proc.stop()


async def enable_copilot(tenant: TenantFixture, on: bool = True) -> None:
    from domain.tenancy.tenants import set_feature

    await set_feature(tenant.slug, "copilot", on)


@pytest.fixture
async def copilot_tenant(tenant: TenantFixture) -> TenantFixture:
    await enable_copilot(tenant)
    return tenant
