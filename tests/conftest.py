"""Test harness: real PostgreSQL and Redis, the API as a real server process, a real worker.

PostgreSQL: ``TEST_DATABASE_URL`` (a server URL as the schema owner, e.g.
postgresql://postgres@127.0.0.1:5432/postgres) when set, else an embedded server under
``.brandgraph/test``. The suite creates a fresh ``brandgraph_test`` database on it, migrates it,
and connects as the row-level-security-bound app role. Redis: ``TEST_REDIS_URL`` when set, else
an embedded one. Tests isolate themselves by tenant: each makes its own tenants.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.config import with_database

ROOT = Path(__file__).resolve().parents[1]
TEST_DB = "brandgraph_test"
SECRET = "test-secret-0123456789-0123456789-0123456789"
_embedded = None
# separate folders let several test sessions run side by side on one machine
DATA_DIR = Path(os.environ.get("BRANDGRAPH_TEST_DATA_DIR") or ROOT / ".brandgraph" / "test").resolve()


def _bootstrap() -> None:
    """Runs before any product module is imported: the broker reads REDIS_URL at import."""
    global _embedded
    server_url = os.environ.get("TEST_DATABASE_URL")
    redis_url = os.environ.get("TEST_REDIS_URL")
    if not server_url or not redis_url:
        from brandgraph.embedded import EmbeddedServices

        _embedded = EmbeddedServices(DATA_DIR)
        env = _embedded.start(database=not server_url, redis=not redis_url)
        server_url = server_url or env["_BRANDGRAPH_SERVER_URL"]
        redis_url = redis_url or env["REDIS_URL"]
    os.environ.update(
        {
            "BRANDGRAPH_ENV": "test",
            "TEST_SERVER_URL": server_url,
            "DATABASE_URL": with_database(server_url, TEST_DB),
            "REDIS_URL": redis_url,
            "BRANDGRAPH_SECRET_KEY": SECRET,
            "GRAPHQL_SQL_STATS": "1",
            "LOG_LEVEL": os.environ.get("TEST_LOG_LEVEL", "WARNING"),
            "DATABASE_POOL_SIZE": "5",
            # the suite's API answers hundreds of requests a tenant in seconds: no throttling there;
            # tests/api/test_cost.py starts API processes of its own with it on
            "API_THROTTLING": "0",
            # no test reaches a real AI provider: processes not pointed at the fakes get a closed port
            **{f"{name}_API_URL": "http://127.0.0.1:9" for name in ("OPENAI", "ANTHROPIC", "PERPLEXITY", "JASPER",
                                                                    "CANVA")},
        }
    )
    for key in ("DATABASE_APP_URL", "DATABASE_APP_PASSWORD", "BRANDGRAPH_DATA_DIR"):
        os.environ.pop(key, None)

    from domain.config import get_settings
    from domain.platform.migrations import provision

    get_settings.cache_clear()
    provision(server_url, TEST_DB, fresh=True)
    import redis

    redis.Redis.from_url(redis_url).flushdb()


def pytest_configure(config: pytest.Config) -> None:
    _bootstrap()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _embedded is not None:
        _embedded.stop()


# --- processes ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A product process (API server, worker) run as a child, with its output kept."""

    def __init__(self, args: list[str], name: str, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log = DATA_DIR / "logs" / f"{name}-{os.getpid()}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._out = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, *args], env={**os.environ, **(env or {})}, cwd=ROOT,
            stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = 15, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        return self.proc.returncode


def start_api(name: str = "api", public_url: str | None = None,
              env: dict[str, str] | None = None) -> tuple[Process, str]:
    """An API server; its public URL (tracking links, webhook addresses) is its own unless told;
    ``env`` adds or overrides environment variables."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = Process(["-m", "brandgraph", "serve", "--port", str(port)], name,
                   env={"PUBLIC_URL": public_url or base, **(env or {})})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            raise RuntimeError(f"API server exited:\n{proc.output()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        time.sleep(0.1)
    proc.stop()
    raise RuntimeError(f"API server did not start:\n{proc.output()}")


@pytest.fixture(scope="session")
def api_url() -> Iterator[str]:
    proc, base = start_api()
    yield base
    proc.stop()


@dataclass
class Fakes:
    """Loopback servers speaking the providers' wire formats (tests/fakes), shared by the session."""

    brevo: Any
    sendgrid: Any
    twilio: Any
    fcm: Any

    def env(self) -> dict[str, str]:
        return {"BREVO_API_URL": self.brevo.url, "SENDGRID_API_URL": self.sendgrid.url,
                "TWILIO_API_URL": self.twilio.url, "FCM_API_URL": self.fcm.url, "FCM_TOKEN_URL": self.fcm.token_url}

    def reset(self) -> None:
        for fake in (self.brevo, self.sendgrid, self.twilio, self.fcm):
            fake.reset()


@pytest.fixture(scope="session")
def fakes() -> Iterator[Fakes]:
    from fakes.providers import FakeBrevo, FakeFCM, FakeSendGrid, FakeTwilio

    found = Fakes(FakeBrevo().start(), FakeSendGrid().start(), FakeTwilio().start(), FakeFCM().start())
    yield found
    for fake in (found.brevo, found.sendgrid, found.twilio, found.fcm):
        fake.stop()


def start_worker(env: dict[str, str], name: str = "worker", threads: int = 2) -> Process:
    proc = Process(["-m", "dramatiq", "domain.worker", "--processes", "1", "--threads", str(threads)], name,
                   env={"LOG_LEVEL": "INFO", **env})
    deadline = time.monotonic() + 30
    while "Worker process is ready" not in proc.output():
        if proc.proc.poll() is not None or time.monotonic() > deadline:
            proc.stop()
            raise RuntimeError(f"worker did not start:\n{proc.output()}")
        time.sleep(0.05)
    return proc


class Worker:
    """The session's Dramatiq worker: its providers point at the fakes, its links at the API.
    ``kill()`` and ``restart()`` serve crash tests."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc = start_worker(env)

    def output(self) -> str:
        return self.proc.output()

    def kill(self) -> None:
        """SIGKILL the whole process group: Dramatiq's parent and the worker process that sends."""
        import signal

        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.proc.pid, signal.SIGKILL)
        self.proc.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.proc.stop()
        self.proc = start_worker(self.env)

    def stop(self) -> None:
        self.proc.stop()


@pytest.fixture(scope="session")
def worker(fakes: Fakes, api_url: str) -> Iterator[Worker]:
    w = Worker({**fakes.env(), "PUBLIC_URL": api_url})
    yield w
    w.stop()


# --- GraphQL over HTTP ----------------------------------------------------------------


class Api:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.AsyncClient(base_url=base_url, timeout=20)

    async def post(self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None,
                   brand: str | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        if brand:
            h["X-Brand-Id"] = brand
        return await self.http.post("/graphql", json={"query": query, "variables": variables or {}}, headers=h)

    async def gql(self, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        """The whole response body; the HTTP status must be 200."""
        r = await self.post(query, variables, **kw)
        assert r.status_code == 200, r.text
        return r.json()

    async def data(self, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        """``data``, asserting there are no GraphQL errors."""
        body = await self.gql(query, variables, **kw)
        assert not body.get("errors"), body["errors"]
        return body["data"]


@pytest.fixture(scope="session")
async def api(api_url: str) -> AsyncIterator[Api]:
    client = Api(api_url)
    yield client
    await client.http.aclose()


# --- tenants --------------------------------------------------------------------------


def gid(type_name: str, value: uuid.UUID | str) -> str:
    from graph.core.ids import encode

    return str(encode(type_name, uuid.UUID(str(value))))


@dataclass
class TenantFixture:
    """A tenant with an owner and brands ``a`` and ``b``; makes members and keys on demand."""

    id: uuid.UUID
    slug: str
    owner_id: uuid.UUID  # the owner's user id (a Brandgraph token's ``sub``)
    owner_token: str
    owner_member_id: uuid.UUID  # the owner's member id, what the tenant knows the owner by
    brands: dict[str, uuid.UUID] = field(default_factory=dict)

    def brand_gid(self, name: str) -> str:
        return gid("Brand", self.brands[name])

    @property
    def owner(self):
        from domain.tenancy.policies import Principal, PrincipalKind, Role

        return Principal(tenant_id=self.id, kind=PrincipalKind.USER, id=self.owner_id, role=Role.OWNER,
                         label=f"owner@{self.slug}.test", brand_ids=None, member_id=self.owner_member_id)

    async def member(self, role: str, brands: list[str] | None = None, email: str | None = None) -> tuple[uuid.UUID, str]:
        """A new member with ``role`` (limited to ``brands`` when given), invited by the owner
        and accepted with their own token: (member id, JWT)."""
        from domain.tenancy import members
        from domain.tenancy.auth import authenticate, mint_token

        email = email or f"{role}-{uuid.uuid4().hex[:8]}@{self.slug}.test"
        brand_ids = [self.brands[b] for b in brands] if brands is not None else None
        m = await members.add_member(self.owner, email, role, brand_ids=brand_ids)
        token = mint_token(self.id, m.user_id, email)
        await members.accept_invitation(await authenticate(f"Bearer {token}"))
        return m.id, token

    async def api_key(self, role: str, brands: list[str] | None = None) -> tuple[uuid.UUID, str]:
        from domain.tenancy.api_keys import create_api_key

        brand_ids = [self.brands[b] for b in brands] if brands is not None else None
        key, secret = await create_api_key(self.owner, f"{role} key", role, brand_ids=brand_ids)
        return key.id, secret


async def create_tenant_fixture(brands: tuple[str, ...] = ("a", "b"), plan: str = "enterprise") -> TenantFixture:
    """A tenant on ``plan``: enterprise unless told, so that no test but those of plans and quotas
    (tests/tenancy/test_plans.py, tests/api/test_cost.py, which ask for ``free``) meets a quota."""
    from domain.tenancy import brands as brand_service
    from domain.tenancy.auth import mint_token
    from domain.tenancy.members import ensure_member, principal_for_user
    from domain.tenancy.policies import Role
    from domain.tenancy.tenants import create_tenant

    slug = f"t-{uuid.uuid4().hex[:12]}"
    tenant = await create_tenant(slug, f"Tenant {slug}", plan=plan)
    email = f"owner@{slug}.test"
    owner_id, _ = await ensure_member(tenant.id, email, Role.OWNER)
    owner = await principal_for_user(tenant.id, owner_id)
    assert owner is not None and owner.member_id not in (None, owner_id)
    t = TenantFixture(id=tenant.id, slug=slug, owner_id=owner_id, owner_token=mint_token(tenant.id, owner_id, email),
                      owner_member_id=owner.member_id)
    for name in brands:
        b = await brand_service.create_brand(t.owner, {"name": f"Brand {name.upper()}", "slug": f"brand-{name}"})
        t.brands[name] = b.id
    return t


@pytest.fixture
async def tenant() -> TenantFixture:
    return await create_tenant_fixture()


@pytest.fixture
async def other_tenant() -> TenantFixture:
    return await create_tenant_fixture()


async def audit_count(tenant_id: uuid.UUID) -> int:
    from sqlalchemy import func, select

    from domain.audit.models import AuditEntry
    from domain.platform.db import tenant_session

    async with tenant_session(tenant_id) as s:
        return await s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.tenant_id == tenant_id))
