"""The routes that are not GraphQL (file downloads, provider webhooks, the unsubscribe page)
answer 503 ``DATABASE_UNAVAILABLE`` with ``Retry-After: 1`` while PostgreSQL is away, in the
error shape of the rest of the API, never a 500: providers and browsers retry. The app is the
API's own (``create_app``), in process; its sessions point at a port nothing listens on, as after
the server went away."""

from __future__ import annotations

import logging
import uuid

import httpx

import conftest
from conftest import TenantFixture
from domain.campaigns import tracking
from domain.config import load_settings
from domain.exports.downloads import make_token
from domain.platform import db
from graph.app import create_app


def requests(t: TenantFixture) -> list[tuple[str, str]]:
    tenant_id, brand_id = t.id, uuid.uuid4()
    unsubscribe = tracking.make_token("u", tenant_id, uuid.uuid4(), uuid.uuid4())
    return [
        ("GET", f"/downloads/{make_token(tenant_id, uuid.uuid4())}"),
        ("POST", f"/webhooks/sendgrid/{tenant_id}/{brand_id}"),
        ("POST", f"/webhooks/brevo/inbound/{tenant_id}/{brand_id}"),
        ("POST", f"/u/{unsubscribe}"),
    ]


async def test_routes_answer_503_while_the_database_is_away(tenant: TenantFixture) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    app = create_app(load_settings({}))
    root.handlers[:], root.level = handlers, level  # the app configures the process's logging: keep pytest's
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probe") as http:
        # control: with PostgreSQL there, each answers normally (no such file, no such brand, done)
        for method, path in requests(tenant):
            r = await http.request(method, path, content=b"[]")
            assert r.status_code < 500, (path, r.status_code, r.text)
        with db.database_url(f"postgresql://nobody@127.0.0.1:{conftest.free_port()}/gone"):
            for method, path in requests(tenant):
                r = await http.request(method, path, content=b"[]", headers={"X-Request-Id": "req-outage-42"})
                assert r.status_code == 503, (path, r.status_code, r.text)
                assert r.headers["retry-after"] == "1", path
                assert r.headers["content-type"].startswith("application/json"), path
                (error,) = r.json()["errors"]
                assert error["extensions"] == {"code": "DATABASE_UNAVAILABLE", "requestId": "req-outage-42"}, error
