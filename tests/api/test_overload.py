"""Past its capacity the API refuses the excess at once (503 OVERLOADED, Retry-After) rather than
queueing every request until none is answered in time; probes and websockets are never refused."""

from __future__ import annotations

import asyncio

import httpx
from starlette.types import Receive, Scope, Send

from domain.config import load_settings
from graph.app import ConcurrencyLimitMiddleware, create_app


class Held:
    """An app whose requests stay in progress until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.started += 1
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})


async def test_requests_past_the_limit_are_refused_at_once_and_the_rest_answered() -> None:
    inner = Held()
    app = ConcurrencyLimitMiddleware(inner, limit=3)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        held = [asyncio.create_task(client.post("/graphql", json={})) for _ in range(3)]
        while inner.started < 3:
            await asyncio.sleep(0.01)
        refused = await asyncio.wait_for(client.post("/graphql", json={}), 5)  # not queued behind the three
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.json()["errors"][0]["extensions"]["code"] == "OVERLOADED"
        probe = asyncio.create_task(client.get("/healthz"))  # probes pass whatever the load
        while inner.started < 4:
            await asyncio.sleep(0.01)
        inner.release.set()
        assert [r.status_code for r in await asyncio.gather(*held, probe)] == [200, 200, 200, 200]
        assert app.in_progress == 0
        again = await client.post("/graphql", json={})  # capacity is back once they finished
        assert again.status_code == 200 and inner.started == 5


def test_the_api_applies_the_configured_limit() -> None:
    app = create_app(load_settings({"MAX_CONCURRENT_REQUESTS": "7", "BRANDGRAPH_SECRET_KEY": "x" * 40,
                                    "DATABASE_URL": "postgresql://u@127.0.0.1:1/db", "REDIS_URL": "redis://127.0.0.1:1/0"}))
    limits = [m.kwargs["limit"] for m in app.user_middleware if m.cls is ConcurrencyLimitMiddleware]
    assert limits == [7]
    assert load_settings({"MAX_CONCURRENT_REQUESTS": "0"}).max_concurrent_requests == 1
