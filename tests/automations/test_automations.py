"""Segment automations: enter/exit/periodic runs that execute once per occurrence, tag actions
with timeline rows, signed webhooks in batches with retries, validation, roles and isolation.

Webhooks go to a loopback HTTP server run in the test's event loop (asyncio.start_server) that
records every request and answers with scripted statuses (200 once the script is used up).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from conftest import Api, TenantFixture, create_tenant_fixture, free_port, gid
from domain.audit.models import AuditEntry
from domain.automations import running, webhooks
from domain.automations import service as automations
from domain.automations.models import AutomationExecution, AutomationRun, SegmentAutomation
from domain.customers.models import Customer, CustomerTag
from domain.customers.service import upsert_customer
from domain.customers.tags import create_tag, tag_customers
from domain.platform import crypto
from domain.platform.db import tenant_session
from domain.segments import membership, service
from domain.segments.models import SegmentKind, SegmentMembership
from domain.tenancy.models import Tenant
from domain.timeline.models import TimelineEntry

CREATE = """mutation($i: CreateSegmentAutomationInput!) { createSegmentAutomation(input: $i) {
  automation { id name trigger action config isActive lastRunAt } errors { field code message } } }"""
UPDATE = """mutation($i: UpdateSegmentAutomationInput!) { updateSegmentAutomation(input: $i) {
  automation { id name trigger action config isActive } errors { field code message } } }"""
DELETE = """mutation($id: ID!) { deleteSegmentAutomation(input: {id: $id}) { deletedId errors { field code message } } }"""
ROTATE = "mutation { rotateWebhookSecret { secret errors { field code message } } }"
LIST = """query($s: ID!) { segmentAutomations(segmentId: $s) { id name trigger action config isActive lastRunAt
  runs(first: 5) { edges { node { status customers succeeded failed finishedAt } } }
  executions(first: 10) { edges { node { status attempts error occurrence customer { email } } } } } }"""


# --- the loopback webhook receiver ------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Hook:
    url: str = ""
    statuses: list[int] = field(default_factory=list)  # answered in order, then 200
    requests: list[Received] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            lines = head.split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if line:
                    key, value = line.split(":", 1)
                    headers[key.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            status = self.statuses.pop(0) if self.statuses else 200
            self.requests.append(Received(method, path, headers, body, status))
            answer = b"ok" if status < 400 else b"no such hook"
            writer.write(f"HTTP/1.1 {status} Scripted\r\nContent-Length: {len(answer)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + answer)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def customers(self) -> list[str]:
        return [c["email"] for r in self.requests for c in r.json["customers"]]

    async def wait_for(self, n: int, seconds: float = 5.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if len(self.requests) >= n:
                break
            await asyncio.sleep(0.05)
        assert len(self.requests) >= n, f"expected {n} webhook requests, got {len(self.requests)}"


@pytest.fixture
async def hook():
    h = Hook()
    server = await asyncio.start_server(h.handle, "127.0.0.1", 0)
    h.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hooks/brandgraph"
    yield h
    server.close()
    await server.wait_closed()


# --- helpers ----------------------------------------------------------------------------


async def _people(t: TenantFixture, n: int, brand: str = "a") -> list[Customer]:
    out = []
    for i in range(n):
        c, _ = await upsert_customer(t.owner, {"email": f"p{i}-{brand}@x.test", "external_id": f"ext-{brand}-{i}"},
                                     brand_id=t.brands[brand])
        out.append(c)
    return out


async def _enter(t: TenantFixture, segment_id: uuid.UUID, *people: Customer) -> None:
    """Adds ``people`` to the static segment and runs its automations for that change."""
    entered = await membership.change_static_members(t.owner, segment_id, [c.id for c in people], [])
    await running.run_for_changes(t.id, segment_id, entered.at)


async def _static(t: TenantFixture, name: str = "Picked"):
    return await service.create_segment(t.owner, t.brands["a"], SegmentKind.STATIC, {"name": name})


async def _executions(t: TenantFixture, automation_id: uuid.UUID) -> list[AutomationExecution]:
    async with tenant_session(t.id) as s:
        return list((await s.scalars(select(AutomationExecution).where(
            AutomationExecution.tenant_id == t.id, AutomationExecution.automation_id == automation_id))).all())


async def _runs(t: TenantFixture, automation_id: uuid.UUID) -> list[AutomationRun]:
    async with tenant_session(t.id) as s:
        return list((await s.scalars(select(AutomationRun).where(
            AutomationRun.tenant_id == t.id, AutomationRun.automation_id == automation_id)
            .order_by(AutomationRun.started_at))).all())


async def _tagged(t: TenantFixture, tag_id: uuid.UUID) -> set[uuid.UUID]:
    async with tenant_session(t.id) as s:
        return set(await s.scalars(select(CustomerTag.customer_id).where(CustomerTag.tenant_id == t.id,
                                                                         CustomerTag.tag_id == tag_id)))


async def _timeline(t: TenantFixture, kind: str) -> list[TimelineEntry]:
    async with tenant_session(t.id) as s:
        return list((await s.scalars(select(TimelineEntry).where(TimelineEntry.tenant_id == t.id,
                                                                 TimelineEntry.kind == kind))).all())


async def _eventually(check, seconds: float = 5.0):
    """Poll ``check`` (async, returns a value or None) until it returns something."""
    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


def _verify(secret: str, header: str, body: bytes) -> bool:
    parts = dict(p.split("=", 1) for p in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return abs(int(parts["t"]) - time.time()) < 300 and hmac.compare_digest(expected, parts["v1"])


def _auto_id(global_id: str) -> uuid.UUID:
    from graph.core.ids import decode

    return decode(global_id, "SegmentAutomation")


# --- enter, exit, once per occurrence ------------------------------------------------------


async def test_enter_automation_tags_entering_customers_once_per_entry(api: Api, tenant: TenantFixture, hook: Hook) -> None:
    a, b, outsider = await _people(tenant, 3)
    welcome = await create_tag(tenant.owner, {"name": "Welcome"})
    seg = await _static(tenant)
    _, marketer = await tenant.member("marketer")
    tag_auto = (await api.data(CREATE, {"i": {
        "segmentId": gid("Segment", seg.id), "name": "Tag newcomers", "trigger": "ENTER", "action": "ADD_TAG",
        "config": {"tagId": gid("Tag", welcome.id)}}}, token=marketer))["createSegmentAutomation"]
    assert tag_auto["errors"] == []
    assert tag_auto["automation"]["config"] == {"tagId": gid("Tag", welcome.id)}
    assert tag_auto["automation"]["lastRunAt"] is None
    hook_auto = await automations.create_automation(tenant.owner, seg.id, "Tell the CRM", "enter", "webhook",
                                                    {"url": hook.url})

    entered = await membership.change_static_members(tenant.owner, seg.id, [a.id, b.id], [])
    await running.run_for_changes(tenant.id, seg.id, entered.at)
    await running.run_for_changes(tenant.id, seg.id, entered.at)  # the same refresh again (a retried job)
    await hook.wait_for(1)
    await asyncio.sleep(0.3)  # a second delivery, if there were one, would arrive now

    assert await _tagged(tenant, welcome.id) == {a.id, b.id}  # not the outsider, who never entered
    added = await _timeline(tenant, "tag_added")
    assert sorted((e.customer_id, e.data["tag"], e.data["by"]) for e in added) == sorted(
        [(a.id, "Welcome", "automation:Tag newcomers"), (b.id, "Welcome", "automation:Tag newcomers")])
    assert all(e.ref_type == "Tag" and e.ref_id == str(welcome.id) for e in added)

    tag_id = _auto_id(tag_auto["automation"]["id"])
    execs = await _executions(tenant, tag_id)
    assert sorted(e.customer_id for e in execs) == sorted([a.id, b.id])
    assert {(e.status, e.attempts, e.occurrence) for e in execs} == {("succeeded", 1, entered.at.astimezone(UTC).isoformat())}
    [run] = await _runs(tenant, tag_id)
    assert (run.status, run.customers, run.succeeded, run.failed) == ("succeeded", 2, 2, 0)
    assert run.finished_at is not None

    assert len(hook.requests) == 1  # received once per customer, not once per run_for_changes call
    assert sorted(hook.customers()) == sorted([a.email, b.email])
    body = hook.requests[0].json
    assert body["event"] == "segment.entered"
    assert body["segment"] == {"id": str(seg.id), "name": "Picked"}
    assert body["automation"] == {"id": str(hook_auto.id), "name": "Tell the CRM"}
    assert {c["id"]: c["external_id"] for c in body["customers"]} == {str(a.id): a.external_id, str(b.id): b.external_id}
    assert datetime.fromisoformat(body["sent_at"]) > entered.at
    assert hook.requests[0].method == "POST" and hook.requests[0].path == "/hooks/brandgraph"
    assert hook.requests[0].headers["content-type"] == "application/json"
    assert len(await _executions(tenant, hook_auto.id)) == 2

    # leaving and entering again is a new stay: the enter automation runs again for it
    await membership.change_static_members(tenant.owner, seg.id, [], [a.id])
    await tag_customers(tenant.owner, [outsider.id], [welcome.id])  # unrelated, manual
    again = await membership.change_static_members(tenant.owner, seg.id, [a.id], [])
    await running.run_for_changes(tenant.id, seg.id, again.at)
    execs = await _executions(tenant, tag_id)
    assert len(execs) == 3 and len({e.occurrence for e in execs if e.customer_id == a.id}) == 2
    await hook.wait_for(2)
    assert hook.requests[1].json["customers"] == [{"id": str(a.id), "email": a.email, "external_id": a.external_id}]

    listed = (await api.data(LIST, {"s": gid("Segment", seg.id)}, token=marketer))["segmentAutomations"]
    assert [x["name"] for x in listed] == ["Tag newcomers", "Tell the CRM"]
    assert listed[0]["lastRunAt"] is not None
    assert [r["node"]["customers"] for r in listed[0]["runs"]["edges"]] == [1, 2]  # newest first
    assert {e["node"]["customer"]["email"] for e in listed[0]["executions"]["edges"]} == {a.email, b.email}
    assert listed[0]["executions"]["edges"][0]["node"]["customer"]["email"] == a.email  # the newest run first


async def test_exit_automation_removes_the_tag_and_calls_the_webhook(tenant: TenantFixture, hook: Hook) -> None:
    a, b = await _people(tenant, 2)
    vip = await create_tag(tenant.owner, {"name": "VIP"})
    await tag_customers(tenant.owner, [a.id, b.id], [vip.id])
    seg = await _static(tenant)
    untag = await automations.create_automation(tenant.owner, seg.id, "Untag leavers", "exit", "remove_tag",
                                                {"tag_id": str(vip.id)})
    bye = await automations.create_automation(tenant.owner, seg.id, "Goodbye", "exit", "webhook", {"url": hook.url})
    entered = await membership.change_static_members(tenant.owner, seg.id, [a.id, b.id], [])
    await running.run_for_changes(tenant.id, seg.id, entered.at)  # entries: exit automations do nothing
    assert await _executions(tenant, untag.id) == [] and hook.requests == []

    left = await membership.change_static_members(tenant.owner, seg.id, [], [b.id])
    await running.run_for_changes(tenant.id, seg.id, left.at)
    await running.run_for_changes(tenant.id, seg.id, left.at)
    assert await _tagged(tenant, vip.id) == {a.id}
    removed = await _timeline(tenant, "tag_removed")
    assert [(e.customer_id, e.data["tag"]) for e in removed] == [(b.id, "VIP")]
    [execution] = await _executions(tenant, untag.id)
    assert (execution.customer_id, execution.status, execution.occurrence) == (
        b.id, "succeeded", "exit:" + left.at.astimezone(UTC).isoformat())
    await hook.wait_for(1)
    await asyncio.sleep(0.3)
    assert len(hook.requests) == 1
    assert hook.requests[0].json["event"] == "segment.exited"
    assert hook.customers() == [b.email]
    assert [e.status for e in await _executions(tenant, bye.id)] == ["succeeded"]


async def test_webhooks_go_out_in_batches_of_500(tenant: TenantFixture, hook: Hook) -> None:
    seg = await _static(tenant)
    auto = await automations.create_automation(tenant.owner, seg.id, "Bulk", "enter", "webhook", {"url": hook.url})
    at = datetime.now(UTC)
    ids = [uuid.uuid4() for _ in range(501)]
    async with tenant_session(tenant.id) as s:  # set-based: 501 customers entering at once
        await s.execute(pg_insert(Customer).values([dict(tenant_id=tenant.id, id=i, email=f"bulk-{n}@x.test")
                                                    for n, i in enumerate(ids)]))
        await s.execute(pg_insert(SegmentMembership).values([dict(tenant_id=tenant.id, segment_id=seg.id, customer_id=i,
                                                                  entered_at=at) for i in ids]))
    await running.run_for_changes(tenant.id, seg.id, at)
    assert sorted(len(r.json["customers"]) for r in hook.requests) == [1, 500]
    assert sorted(c["id"] for r in hook.requests for c in r.json["customers"]) == sorted(map(str, ids))
    assert len({r.headers["x-brandgraph-delivery"] for r in hook.requests}) == 2
    [run] = await _runs(tenant, auto.id)
    assert (run.status, run.customers, run.succeeded) == ("succeeded", 501, 501)


# --- webhook signatures, failures and retries ---------------------------------------------


async def test_webhook_signature_verifies_with_the_rotated_secret(api: Api, tenant: TenantFixture, hook: Hook) -> None:
    async with tenant_session(tenant.id) as s:
        assert await s.scalar(select(Tenant.webhook_secret_encrypted).where(Tenant.id == tenant.id)) is None
    a, b = await _people(tenant, 2)
    seg = await _static(tenant)
    await automations.create_automation(tenant.owner, seg.id, "Signed", "enter", "webhook", {"url": hook.url})
    await _enter(tenant, seg.id, a)
    async with tenant_session(tenant.id) as s:  # created on first use, stored encrypted
        stored = await s.scalar(select(Tenant.webhook_secret_encrypted).where(Tenant.id == tenant.id))
    assert stored and stored.startswith("v1:") and "whsec_" not in stored
    created = crypto.decrypt(stored)
    assert _verify(created, hook.requests[0].headers["x-brandgraph-signature"], hook.requests[0].body)

    _, marketer = await tenant.member("marketer")
    refused = (await api.data(ROTATE, token=marketer))["rotateWebhookSecret"]
    assert refused["secret"] is None and refused["errors"][0]["code"] == "FORBIDDEN"
    rotated = (await api.data(ROTATE, token=tenant.owner_token))["rotateWebhookSecret"]
    assert rotated["errors"] == [] and rotated["secret"].startswith("whsec_") and rotated["secret"] != created
    await _enter(tenant, seg.id, b)
    request = hook.requests[1]
    header = request.headers["x-brandgraph-signature"]
    assert header.startswith("t=") and ",v1=" in header
    assert _verify(rotated["secret"], header, request.body)
    assert not _verify(created, header, request.body)  # the old secret no longer verifies
    assert not _verify(rotated["secret"], header, request.body.replace(b"segment.entered", b"segment.exited"))
    listed = await api.data(LIST, {"s": gid("Segment", seg.id)}, token=tenant.owner_token)
    assert rotated["secret"] not in json.dumps(listed) and created not in json.dumps(listed)


async def test_a_4xx_answer_fails_the_execution_and_429_stays_pending(tenant: TenantFixture, hook: Hook) -> None:
    a, b = await _people(tenant, 2)
    seg = await _static(tenant)
    auto = await automations.create_automation(tenant.owner, seg.id, "Gone", "enter", "webhook", {"url": hook.url})
    hook.statuses = [404]
    await _enter(tenant, seg.id, a)
    [execution] = await _executions(tenant, auto.id)
    assert (execution.status, execution.attempts) == ("failed", 1)
    assert execution.error == "HTTP 404: no such hook"
    [run] = await _runs(tenant, auto.id)
    assert (run.status, run.failed, run.succeeded) == ("failed", 1, 0) and run.finished_at is not None
    await webhooks.deliver(tenant.id, run.id)  # a failed execution is never sent again
    assert len(hook.requests) == 1

    hook.statuses = [429]
    await _enter(tenant, seg.id, b)
    pending = [e for e in await _executions(tenant, auto.id) if e.customer_id == b.id][0]
    assert (pending.status, pending.attempts, pending.error) == ("pending", 1, "HTTP 429: no such hook")
    run = (await _runs(tenant, auto.id))[-1]
    assert (run.status, run.finished_at) == ("running", None)
    assert await webhooks.deliver(tenant.id, run.id) == 0  # what the retry actor does: 200 now
    done = [e for e in await _executions(tenant, auto.id) if e.customer_id == b.id][0]
    assert (done.status, done.attempts, done.error) == ("succeeded", 2, None)
    assert (await _runs(tenant, auto.id))[-1].status == "succeeded"
    assert [r.status for r in hook.requests] == [404, 429, 200]


async def test_a_dead_endpoint_is_given_up_on_after_the_last_retry(tenant: TenantFixture) -> None:
    a = (await _people(tenant, 1))[0]
    seg = await _static(tenant)
    port = free_port()  # nothing listens there
    auto = await automations.create_automation(tenant.owner, seg.id, "Dead", "enter", "webhook",
                                               {"url": f"http://127.0.0.1:{port}/x"})
    await _enter(tenant, seg.id, a)
    [execution] = await _executions(tenant, auto.id)
    assert execution.status == "pending" and execution.error.startswith("could not deliver: ConnectError")
    run = (await _runs(tenant, auto.id))[0]
    assert await webhooks.deliver(tenant.id, run.id, give_up=True) == 0
    [execution] = await _executions(tenant, auto.id)
    assert (execution.status, execution.attempts) == ("failed", 2)
    assert execution.error.startswith("gave up after 10 attempts; last: could not deliver")
    assert (await _runs(tenant, auto.id))[0].status == "failed"


async def test_500_then_200_is_retried_by_the_worker_and_succeeds(tenant: TenantFixture, hook: Hook, worker) -> None:
    a, b = await _people(tenant, 2)
    seg = await _static(tenant)
    auto = await automations.create_automation(tenant.owner, seg.id, "Flaky", "enter", "webhook", {"url": hook.url})
    hook.statuses = [500]
    # the refresh's follow-up job runs the automation in the worker; its first POST gets a 500
    await membership.change_static_members(tenant.owner, seg.id, [a.id, b.id], [])

    async def settled():
        # the deliveries settle first; the run is closed by a transaction of its own just after
        execs = await _executions(tenant, auto.id)
        runs = await _runs(tenant, auto.id)
        done = len(execs) == 2 and all(e.status == "succeeded" for e in execs)
        return execs if done and runs and runs[0].finished_at is not None else None

    execs = await _eventually(settled, seconds=14)
    assert execs, f"not retried: {[(e.status, e.attempts, e.error) for e in await _executions(tenant, auto.id)]}"
    assert {(e.status, e.attempts, e.error) for e in execs} == {("succeeded", 2, None)}
    assert [r.status for r in hook.requests] == [500, 200]
    assert sorted(hook.requests[0].json["customers"], key=str) == sorted(hook.requests[1].json["customers"], key=str)
    [run] = await _runs(tenant, auto.id)
    assert (run.status, run.succeeded, run.failed) == ("succeeded", 2, 0) and run.finished_at is not None


# --- periodic ---------------------------------------------------------------------------


async def test_periodic_automation_runs_once_per_period(tenant: TenantFixture, hook: Hook) -> None:
    from domain.periodic import schedule

    job = {p.name: p for p in schedule()}["run_periodic_automations"]
    assert str(job.trigger) == str(CronTrigger(minute=5))

    a, b, c = await _people(tenant, 3)
    seg = await _static(tenant)
    await membership.change_static_members(tenant.owner, seg.id, [a.id, b.id], [])
    auto = await automations.create_automation(tenant.owner, seg.id, "Hourly", "periodic", "webhook",
                                               {"url": hook.url, "every_hours": 1})
    t0 = datetime.now(UTC).replace(minute=1, second=0, microsecond=0)
    assert await running.run_periodic(tenant.id, now=t0) == 1
    assert len(hook.requests) == 1 and sorted(hook.customers()) == sorted([a.email, b.email])
    assert hook.requests[0].json["event"] == "segment.periodic"
    assert await running.run_periodic(tenant.id, now=t0 + timedelta(minutes=10)) == 0  # not due yet

    async with tenant_session(tenant.id) as s:  # due again (say, a lost last_run_at), same period
        await s.execute(update(SegmentAutomation).where(SegmentAutomation.tenant_id == tenant.id,
                                                        SegmentAutomation.id == auto.id).values(last_run_at=None))
    assert await running.run_periodic(tenant.id, now=t0 + timedelta(minutes=20)) == 1
    assert len(hook.requests) == 1 and len(await _executions(tenant, auto.id)) == 2  # nothing twice in a period

    await membership.change_static_members(tenant.owner, seg.id, [c.id], [b.id])
    assert await running.run_periodic(tenant.id, now=t0 + timedelta(minutes=79)) == 0  # 59 min after the last run
    assert await running.run_periodic(tenant.id, now=t0 + timedelta(minutes=81)) == 1  # the next period
    assert len(hook.requests) == 2 and sorted(hook.requests[1].json["customers"], key=lambda x: x["email"]) == sorted(
        [{"id": str(x.id), "email": x.email, "external_id": x.external_id} for x in (a, c)], key=lambda x: x["email"])
    execs = await _executions(tenant, auto.id)
    assert len(execs) == 4
    assert {e.occurrence for e in execs} == {"periodic:" + t0.replace(minute=0).isoformat(),
                                             "periodic:" + (t0 + timedelta(hours=1)).replace(minute=0).isoformat()}
    async with tenant_session(tenant.id) as s:
        last = await s.scalar(select(SegmentAutomation.last_run_at).where(SegmentAutomation.tenant_id == tenant.id,
                                                                          SegmentAutomation.id == auto.id))
    assert last == t0 + timedelta(minutes=81)

    await automations.update_automation(tenant.owner, auto.id, {"is_active": False})
    assert await running.run_periodic(tenant.id, now=t0 + timedelta(hours=5)) == 0  # paused


# --- validation, roles, isolation ---------------------------------------------------------


async def test_invalid_configs_and_the_campaign_action_are_refused(api: Api, tenant: TenantFixture) -> None:
    seg = await _static(tenant)
    tag = await create_tag(tenant.owner, {"name": "T"})
    token = tenant.owner_token

    async def errors(trigger: str, action: str, config: dict, name: str = "x") -> list[tuple[str, str]]:
        r = (await api.data(CREATE, {"i": {"segmentId": gid("Segment", seg.id), "name": name, "trigger": trigger,
                                           "action": action, "config": config}}, token=token))["createSegmentAutomation"]
        assert (r["automation"] is None) == bool(r["errors"])
        return [(e["field"], e["code"]) for e in r["errors"]]

    campaign = (await api.data(CREATE, {"i": {"segmentId": gid("Segment", seg.id), "name": "Send", "trigger": "ENTER",
                                              "action": "CAMPAIGN", "config": {}}}, token=token))["createSegmentAutomation"]
    assert [(e["field"], e["code"]) for e in campaign["errors"]] == [("input.action", "INVALID")]
    assert "campaign" in campaign["errors"][0]["message"]

    assert await errors("ENTER", "WEBHOOK", {"url": "http://example.com/hook"}) == [("input.config.url", "INVALID")]
    assert await errors("ENTER", "WEBHOOK", {"url": "https://user:pw@example.com/hook"}) == [("input.config.url", "INVALID")]
    assert await errors("ENTER", "WEBHOOK", {"url": "https://example.com/" + "a" * 2100}) == [("input.config.url", "TOO_LONG")]
    assert await errors("ENTER", "WEBHOOK", {"url": "ftp://example.com/x"}) == [("input.config.url", "INVALID")]
    assert await errors("ENTER", "WEBHOOK", {}) == [("input.config.url", "REQUIRED")]
    assert await errors("ENTER", "ADD_TAG", {}) == [("input.config.tagId", "REQUIRED")]
    assert await errors("ENTER", "ADD_TAG", {"tagId": gid("Tag", uuid.uuid4())}) == [("input.config.tagId", "NOT_FOUND")]
    assert await errors("ENTER", "ADD_TAG", {"tagId": gid("Tag", tag.id), "url": "https://example.com"}) == [
        ("input.config.url", "INVALID")]
    assert await errors("PERIODIC", "ADD_TAG", {"tagId": gid("Tag", tag.id), "everyHours": 0}) == [
        ("input.config.everyHours", "INVALID")]
    assert await errors("PERIODIC", "ADD_TAG", {"tagId": gid("Tag", tag.id), "everyHours": 169}) == [
        ("input.config.everyHours", "INVALID")]
    assert await errors("PERIODIC", "ADD_TAG", {"tagId": gid("Tag", tag.id)}) == [("input.config.everyHours", "REQUIRED")]
    assert await errors("ENTER", "ADD_TAG", {"tagId": gid("Tag", tag.id)}, name=" ") == [("input.name", "REQUIRED")]
    assert await automations.list_automations(tenant.owner, seg.id) == []

    ok = (await api.data(CREATE, {"i": {"segmentId": gid("Segment", seg.id), "name": "Fine", "trigger": "PERIODIC",
                                        "action": "WEBHOOK", "config": {"url": "https://example.com/h", "everyHours": 168}}},
                         token=token))["createSegmentAutomation"]
    assert ok["errors"] == [] and ok["automation"]["config"] == {"url": "https://example.com/h", "everyHours": 168}
    # a new action keeps the settings that still apply and asks for the missing one
    changed = (await api.data(UPDATE, {"i": {"id": ok["automation"]["id"], "action": "ADD_TAG"}},
                              token=token))["updateSegmentAutomation"]
    assert [(e["field"], e["code"]) for e in changed["errors"]] == [("input.config.tagId", "REQUIRED")]
    changed = (await api.data(UPDATE, {"i": {"id": ok["automation"]["id"], "action": "ADD_TAG", "name": "Tagger",
                                             "config": {"tagId": gid("Tag", tag.id), "everyHours": 2}}},
                              token=token))["updateSegmentAutomation"]
    assert changed["errors"] == []
    assert changed["automation"] | {"id": None} == {"id": None, "name": "Tagger", "trigger": "PERIODIC", "action": "ADD_TAG",
                                                   "config": {"tagId": gid("Tag", tag.id), "everyHours": 2}, "isActive": True}
    async with tenant_session(tenant.id) as s:
        actions = list(await s.scalars(select(AuditEntry.action).where(
            AuditEntry.tenant_id == tenant.id, AuditEntry.action.like("segment_automation.%"))))
    assert sorted(actions) == ["segment_automation.create", "segment_automation.update"]  # refused inputs: nothing
    deleted = (await api.data(DELETE, {"id": ok["automation"]["id"]}, token=token))["deleteSegmentAutomation"]
    assert deleted == {"deletedId": ok["automation"]["id"], "errors": []}
    assert await automations.list_automations(tenant.owner, seg.id) == []


async def test_an_analyst_cannot_create_automations(api: Api, tenant: TenantFixture) -> None:
    seg = await _static(tenant)
    tag = await create_tag(tenant.owner, {"name": "T"})
    _, analyst = await tenant.member("analyst")
    _, brand_b = await tenant.member("marketer", brands=["b"])
    i = {"segmentId": gid("Segment", seg.id), "name": "x", "trigger": "ENTER", "action": "ADD_TAG",
         "config": {"tagId": gid("Tag", tag.id)}}
    r = (await api.data(CREATE, {"i": i}, token=analyst))["createSegmentAutomation"]
    assert r["automation"] is None and [e["code"] for e in r["errors"]] == ["FORBIDDEN"]
    r = (await api.data(CREATE, {"i": i}, token=brand_b))["createSegmentAutomation"]  # not their brand's segment
    assert r["automation"] is None and [(e["field"], e["code"]) for e in r["errors"]] == [("input.segmentId", "NOT_FOUND")]
    assert await automations.list_automations(tenant.owner, seg.id) == []
    made = await automations.create_automation(tenant.owner, seg.id, "Owner's", "enter", "add_tag", {"tag_id": str(tag.id)})
    listed = (await api.data(LIST, {"s": gid("Segment", seg.id)}, token=analyst))["segmentAutomations"]
    assert [x["name"] for x in listed] == ["Owner's"]  # reading is fine
    r = (await api.data(UPDATE, {"i": {"id": gid("SegmentAutomation", made.id), "isActive": False}},
                        token=analyst))["updateSegmentAutomation"]
    assert [e["code"] for e in r["errors"]] == ["FORBIDDEN"]
    r = (await api.data(DELETE, {"id": gid("SegmentAutomation", made.id)}, token=analyst))["deleteSegmentAutomation"]
    assert [e["code"] for e in r["errors"]] == ["FORBIDDEN"]
    assert (await api.data(ROTATE, token=analyst))["rotateWebhookSecret"]["errors"][0]["code"] == "FORBIDDEN"
    assert [a.is_active for a in await automations.list_automations(tenant.owner, seg.id)] == [True]


async def test_another_tenant_cannot_see_or_change_automations(api: Api, tenant: TenantFixture,
                                                               other_tenant: TenantFixture) -> None:
    seg = await _static(tenant)
    tag = await create_tag(tenant.owner, {"name": "T"})
    made = await automations.create_automation(tenant.owner, seg.id, "Mine", "enter", "add_tag", {"tag_id": str(tag.id)})
    node = gid("SegmentAutomation", made.id)
    intruder = other_tenant.owner_token
    body = await api.gql(LIST, {"s": gid("Segment", seg.id)}, token=intruder)
    assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    own = (await api.data('query($id: ID!) { node(id: $id) { id ... on SegmentAutomation { name } } }', {"id": node},
                          token=tenant.owner_token))["node"]
    assert own == {"id": node, "name": "Mine"}
    seen = (await api.data('query($id: ID!) { node(id: $id) { id } }', {"id": node}, token=intruder))["node"]
    assert seen is None
    r = (await api.data(UPDATE, {"i": {"id": node, "name": "Theirs", "isActive": False}}, token=intruder))["updateSegmentAutomation"]
    assert r["automation"] is None and [(e["field"], e["code"]) for e in r["errors"]] == [("input.id", "NOT_FOUND")]
    r = (await api.data(DELETE, {"id": node}, token=intruder))["deleteSegmentAutomation"]
    assert r["deletedId"] is None and [e["code"] for e in r["errors"]] == ["NOT_FOUND"]
    other_seg = await _static(other_tenant)
    r = (await api.data(CREATE, {"i": {"segmentId": gid("Segment", other_seg.id), "name": "x", "trigger": "ENTER",
                                       "action": "ADD_TAG", "config": {"tagId": gid("Tag", tag.id)}}},
                        token=intruder))["createSegmentAutomation"]  # another tenant's tag is not found
    assert [(e["field"], e["code"]) for e in r["errors"]] == [("input.config.tagId", "NOT_FOUND")]
    [still] = await automations.list_automations(tenant.owner, seg.id)
    assert (still.name, still.is_active) == ("Mine", True)
    async with tenant_session(other_tenant.id) as s:  # row-level security: not even a count
        assert await s.scalar(select(func.count()).select_from(SegmentAutomation)) == 0


async def test_a_member_of_another_brand_cannot_see_or_change_its_automations(api: Api) -> None:
    """A marketer limited to brand B meets brand A's segment automations as absent, and they
    stay as they were."""
    t = await create_tenant_fixture(brands=("a", "b"))
    seg = await _static(t)
    made = await automations.create_automation(t.owner, seg.id, "Mine", "enter", "webhook",
                                               {"url": "https://hooks.example.com/x"})
    node = gid("SegmentAutomation", made.id)
    _, limited = await t.member("marketer", brands=["b"])
    body = await api.gql(LIST, {"s": gid("Segment", seg.id)}, token=limited)
    assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    seen = (await api.data('query($id: ID!) { node(id: $id) { id } }', {"id": node}, token=limited))["node"]
    assert seen is None
    r = (await api.data(UPDATE, {"i": {"id": node, "name": "Theirs", "isActive": False}},
                        token=limited))["updateSegmentAutomation"]
    assert r["automation"] is None and [(e["field"], e["code"]) for e in r["errors"]] == [("input.id", "NOT_FOUND")]
    r = (await api.data(DELETE, {"id": node}, token=limited))["deleteSegmentAutomation"]
    assert r["deletedId"] is None and [e["code"] for e in r["errors"]] == ["NOT_FOUND"]
    r = (await api.data(CREATE, {"i": {"segmentId": gid("Segment", seg.id), "name": "x", "trigger": "ENTER",
                                       "action": "WEBHOOK", "config": {"url": "https://hooks.example.com/y"}}},
                        token=limited))["createSegmentAutomation"]
    assert r["automation"] is None and [(e["field"], e["code"]) for e in r["errors"]] == [("input.segmentId", "NOT_FOUND")]
    [still] = await automations.list_automations(t.owner, seg.id)
    assert (still.id, still.name, still.is_active, still.config) == (made.id, "Mine", True, made.config)


async def test_a_run_left_pending_by_a_dead_worker_is_sent_again(tenant: TenantFixture, hook: Hook) -> None:
    """A worker that died after claiming executions and before queueing their retry leaves a run
    running with deliveries pending: the scheduler's sweep queues the retry again."""
    from datetime import timedelta

    from sqlalchemy import update

    from domain.automations.models import AutomationRun

    (a,) = await _people(tenant, 1)
    seg = await _static(tenant)
    auto = await automations.create_automation(tenant.owner, seg.id, "Hook", "enter", "webhook", {"url": hook.url})
    hook.statuses = [503]
    await _enter(tenant, seg.id, a)
    [run] = await _runs(tenant, auto.id)
    assert run.status == "running"
    assert await webhooks.requeue_stalled_runs(tenant.id) == 0  # recent: its own retry is on the way
    async with tenant_session(tenant.id) as s:
        await s.execute(update(AutomationRun).where(AutomationRun.tenant_id == tenant.id, AutomationRun.id == run.id)
                        .values(started_at=run.started_at - timedelta(hours=1)))
    assert await webhooks.requeue_stalled_runs(tenant.id) == 1
    assert await webhooks.deliver(tenant.id, run.id) == 0  # what the queued retry does: 200 now
    assert (await _runs(tenant, auto.id))[-1].status == "succeeded"
    assert await webhooks.requeue_stalled_runs(tenant.id) == 0
