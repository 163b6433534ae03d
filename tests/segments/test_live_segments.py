"""Live segments: a change to a customer's data moves them in or out of the live segments that
read it, through the worker, with the cause on the history, the subscription and the counters;
only the segments that read what changed are evaluated; a segment can opt out; a change
committed during a refresh is evaluated after it; and, over seeded random changes, a full
refresh after the incremental evaluations changes nothing."""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text

from conftest import Api, TenantFixture, gid
from domain.commerce.service import EventInput, OrderInput, record_order, track_event
from domain.customers.consent import Channel, set_consent
from domain.customers.service import update_customer, upsert_customer
from domain.customers.tags import create_tag, tag_customers, untag_customers
from domain.platform import outbox
from domain.platform.db import tenant_session
from domain.segments import changes, live, membership, refresh, service
from domain.segments.compiler import PURCHASE
from domain.segments.models import PendingEvaluation, SegmentKind, SegmentMembership
from domain.timeline.models import TimelineEntry
from support.ws import Client, bearer, poll

CREATE = """mutation($input: CreateSegmentInput!) { createSegment(input: $input) {
  segment { id evaluationMode staleness { stale } } errors { field code message } } }"""
ORDER = """mutation($input: RecordOrderInput!) { recordOrder(input: $input) { created errors { field code message } } }"""
CONSENT = """mutation($input: SetConsentInput!) { setConsent(input: $input) { errors { field code message } } }"""
SEGMENT = """query($id: ID!) { segment(id: $id) { memberCount evaluationMode staleness { stale }
  members(first: 20) { edges { node { customer { email } } } }
  history(first: 20) { edges { node { change cause customer { email } } } } } }"""
MEMBERSHIP = "subscription($id: ID!) { segmentMembershipChanged(segmentId: $id) { entered exited total } }"


def spend_at_least(value: float) -> dict:
    return {"match": "ALL", "rules": [{"profile": {"field": "TOTAL_ORDER_VALUE", "operator": "GREATER_THAN_OR_EQUAL",
                                                   "value": value}}]}


async def create(api: Api, t: TenantFixture, name: str, definition: dict, **extra) -> str:
    made = (await api.data(CREATE, {"input": {"brandId": t.brand_gid("a"), "name": name, "definition": definition,
                                              **extra}}, token=t.owner_token))["createSegment"]
    assert made["errors"] == [], made
    return made["segment"]["id"]


def raw(global_id: str) -> uuid.UUID:
    from graph.core.ids import decode

    return decode(global_id, "Segment")


async def segment(api: Api, t: TenantFixture, seg: str) -> dict:
    return (await api.data(SEGMENT, {"id": seg}, token=t.owner_token))["segment"]


async def until(api: Api, t: TenantFixture, seg: str, check, within: float = 15) -> dict:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        data = await segment(api, t, seg)
        if check(data) or asyncio.get_running_loop().time() > deadline:
            return data
        await asyncio.sleep(0.05)


def emails(data: dict) -> set[str]:
    return {e["node"]["customer"]["email"] for e in data["members"]["edges"]}


async def test_an_order_moves_the_customer_in_and_a_consent_withdrawal_out(api: Api, tenant: TenantFixture,
                                                                          worker) -> None:
    t = tenant
    ada, _ = await upsert_customer(t.owner, {"email": "ada@x.test"}, brand_id=t.brands["a"])
    await set_consent(t.owner, ada.id, t.brands["a"], Channel.EMAIL, True)
    vip = await create(api, t, "Big spenders who may be mailed", {"match": "ALL", "rules": [
        {"profile": {"field": "TOTAL_ORDER_VALUE", "operator": "GREATER_THAN_OR_EQUAL", "value": 300}},
        {"consent": {"channel": "EMAIL", "granted": True}}]})
    await refresh.refresh(t.id, raw(vip))  # built once; from now on each change is evaluated
    assert (await segment(api, t, vip))["evaluationMode"] == "LIVE"

    client = await Client.open(api, bearer(t.owner_token))
    try:
        await client.subscribe(MEMBERSHIP, {"id": vip})
        await client.sync()
        await asyncio.sleep(0.3)  # the subscription reads the stream from here on
        placed = await api.data(ORDER, {"input": {
            "brandId": t.brand_gid("a"), "externalOrderId": "live-1", "totalCents": 42_000, "currency": "EUR",
            "placedAt": datetime.now(UTC).isoformat(), "customerId": gid("Customer", ada.id)}}, token=t.owner_token)
        assert placed["recordOrder"]["errors"] == []
        data = await until(api, t, vip, lambda d: d["memberCount"] == 1)
        assert emails(data) == {"ada@x.test"} and data["memberCount"] == 1
        assert [(e["node"]["change"], e["node"]["cause"]) for e in data["history"]["edges"]] == [("ENTERED", "CHANGE")]
        assert await poll(lambda: bool(client.data("segmentMembershipChanged")), 10), client.messages
        assert client.data("segmentMembershipChanged")[0] == {"entered": 1, "exited": 0, "total": 1}

        withdrawn = await api.data(CONSENT, {"input": {"customerId": gid("Customer", ada.id), "brandId": t.brand_gid("a"),
                                                       "channel": "EMAIL", "granted": False}}, token=t.owner_token)
        assert withdrawn["setConsent"]["errors"] == []
        data = await until(api, t, vip, lambda d: d["memberCount"] == 0)
        assert emails(data) == set() and data["memberCount"] == 0
        assert [(e["node"]["change"], e["node"]["cause"]) for e in data["history"]["edges"]][0] == ("EXITED", "CHANGE")
        assert await poll(lambda: len(client.data("segmentMembershipChanged")) >= 2, 10), client.messages
        assert client.data("segmentMembershipChanged")[1] == {"entered": 0, "exited": 1, "total": 0}
    finally:
        await client.ws.close()

    # the follow-up job writes the timeline, as after a refresh
    kinds: set[str] = set()
    for _ in range(200):
        async with tenant_session(t.id) as s:
            kinds = set(await s.scalars(select(TimelineEntry.kind).where(
                TimelineEntry.tenant_id == t.id, TimelineEntry.customer_id == ada.id,
                TimelineEntry.kind.in_(["segment_entered", "segment_exited"]))))
        if len(kinds) == 2:
            break
        await asyncio.sleep(0.05)
    assert kinds == {"segment_entered", "segment_exited"}


async def test_only_segments_that_read_what_changed_are_evaluated(api: Api, tenant: TenantFixture, worker) -> None:
    t = tenant
    bo, _ = await upsert_customer(t.owner, {"email": "bo@x.test"}, brand_id=t.brands["a"])
    gold = await create_tag(t.owner, {"name": "Gold"})
    tagged = await create(api, t, "Gold", {"match": "ALL", "rules": [{"tag": {"operator": "INCLUDES",
                                                                               "tagIds": [gid("Tag", gold.id)]}}]})
    spenders = await create(api, t, "Spenders", spend_at_least(100))
    for seg in (tagged, spenders):
        await refresh.refresh(t.id, raw(seg))
    await drain(t.id)  # bo's creation, evaluated
    # a tag written behind the application's back: nothing queues the customer for it
    async with tenant_session(t.id) as s:
        await s.execute(text("insert into customer_tags (tenant_id, customer_id, tag_id, assigned_by) "
                             "values (:t, :c, :g, 'test')"), {"t": t.id, "c": bo.id, "g": gold.id})
    await record_order(t.owner, OrderInput(brand_id=t.brands["a"], external_order_id="bo-1", total_cents=20_000,
                                           currency="EUR", placed_at=datetime.now(UTC), customer_id=bo.id))
    assert emails(await until(api, t, spenders, lambda d: d["memberCount"] == 1)) == {"bo@x.test"}
    await drain(t.id)
    # the order was evaluated against the spend rule only: the tag segment did not look at bo
    assert (await segment(api, t, tagged))["memberCount"] == 0
    assert (await refresh.refresh(t.id, raw(tagged))).entered == 1  # the refresh does


async def test_a_burst_of_changes_is_one_queued_evaluation(tenant: TenantFixture) -> None:
    t = tenant
    cy, _ = await upsert_customer(t.owner, {"email": "cy@x.test"}, brand_id=t.brands["a"])
    async with tenant_session(t.id) as s:
        for i in range(10):
            await changes.customers_changed(s, t.id, [cy.id], [f"event:viewed-{i % 3}"])
        rows = (await s.execute(select(PendingEvaluation.inputs).where(
            PendingEvaluation.tenant_id == t.id, PendingEvaluation.customer_id == cy.id))).scalars().all()
        sent = [m for m in outbox._pending(s) if m["topic"] == changes.evaluate_pending.actor_name]
        assert len(rows) == 1 and len(sent) == 1  # one row, its inputs the union; one message
        assert {"event:viewed-0", "event:viewed-1", "event:viewed-2"} <= set(rows[0]) and rows[0] == sorted(rows[0])


async def test_a_segment_can_opt_out_of_live_evaluation(api: Api, tenant: TenantFixture, worker) -> None:
    t = tenant
    di, _ = await upsert_customer(t.owner, {"email": "di@x.test"}, brand_id=t.brands["a"])
    heavy = await create(api, t, "Heavy", spend_at_least(100), live=False)
    watched = await create(api, t, "Watched", spend_at_least(100))
    for seg in (heavy, watched):
        await refresh.refresh(t.id, raw(seg))
    assert (await segment(api, t, heavy))["evaluationMode"] == "SCHEDULED"
    await record_order(t.owner, OrderInput(brand_id=t.brands["a"], external_order_id="di-1", total_cents=20_000,
                                           currency="EUR", placed_at=datetime.now(UTC), customer_id=di.id))
    assert (await until(api, t, watched, lambda d: d["memberCount"] == 1))["memberCount"] == 1
    await drain(t.id)
    data = await until(api, t, heavy, lambda d: d["staleness"]["stale"])
    assert data["memberCount"] == 0 and data["staleness"]["stale"] is True  # left for the scheduled refresh
    assert (await refresh.refresh(t.id, raw(heavy))).entered == 1
    assert (await segment(api, t, heavy))["staleness"]["stale"] is False


async def test_an_order_committed_during_a_refresh_ends_in_the_right_membership(
        api: Api, tenant: TenantFixture, worker, monkeypatch) -> None:
    t = tenant
    ed, _ = await upsert_customer(t.owner, {"email": "ed@x.test"}, brand_id=t.brands["a"])
    fay, _ = await upsert_customer(t.owner, {"email": "fay@x.test"}, brand_id=t.brands["a"])
    live_seg = await create(api, t, "Live spenders", spend_at_least(100))
    scheduled = await create(api, t, "Scheduled spenders", spend_at_least(100), live=False)
    for seg in (live_seg, scheduled):
        await refresh.refresh(t.id, raw(seg))
    await drain(t.id)

    # a refresh computes its members, then waits (its lock held, not committed) for the test
    computed, go_on = asyncio.Event(), asyncio.Event()
    real_apply = refresh.apply

    async def slow_apply(*args, **kwargs):
        result = await real_apply(*args, **kwargs)
        computed.set()
        await go_on.wait()
        return result

    monkeypatch.setattr(refresh, "apply", slow_apply)

    async def order_during_refresh(seg: str, who: uuid.UUID, order_id: str):
        computed.clear()
        go_on.clear()
        running = asyncio.create_task(refresh.refresh(t.id, raw(seg)))
        await computed.wait()
        await record_order(t.owner, OrderInput(brand_id=t.brands["a"], external_order_id=order_id,
                                               total_cents=20_000, currency="EUR", placed_at=datetime.now(UTC),
                                               customer_id=who))
        await live.evaluate_batch(t.id)  # finds the live segment being refreshed (unless the worker did first)
        go_on.set()
        return await running

    during = await order_during_refresh(live_seg, ed.id, "ed-1")
    assert (during.entered, during.total) == (0, 0)  # the refresh did not see the order
    data = await until(api, t, live_seg, lambda d: d["memberCount"] == 1)
    assert emails(data) == {"ed@x.test"}  # evaluated after the refresh
    assert [e["node"]["cause"] for e in data["history"]["edges"]] == ["CHANGE"]

    await drain(t.id)
    during = await order_during_refresh(scheduled, fay.id, "fay-1")
    assert (during.entered, during.total) == (1, 1)  # ed's order it saw, fay's not
    await drain(t.id)
    monkeypatch.setattr(refresh, "apply", real_apply)
    # the refresh did not clear the change it had not seen: stale until the next refresh, which takes fay
    assert (await segment(api, t, scheduled))["staleness"]["stale"] is True
    assert (await refresh.refresh(t.id, raw(scheduled))).entered == 1
    assert (await segment(api, t, scheduled))["staleness"]["stale"] is False


async def drain(tenant_id: uuid.UUID) -> None:
    """Evaluate what is queued (here or in the worker) until nothing is left."""
    for _ in range(400):
        await live.evaluate_batch(tenant_id)
        async with tenant_session(tenant_id) as s:
            left = await s.scalar(select(func.count()).select_from(PendingEvaluation).where(
                PendingEvaluation.tenant_id == tenant_id))
        if not left:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the evaluation queue did not drain")


async def test_a_full_refresh_after_random_live_changes_changes_nothing(tenant: TenantFixture) -> None:
    seed = int(os.environ.get("BRANDGRAPH_LIVE_SEED") or random.randrange(1 << 30))
    print(f"BRANDGRAPH_LIVE_SEED={seed}")
    rng = random.Random(seed)
    t = tenant
    brand = t.brands["a"]
    now = datetime.now(UTC)
    people = [(await upsert_customer(t.owner, {"email": f"p{i}@x.test", "attributes": {"plan": "free"}},
                                     brand_id=brand))[0] for i in range(8)]
    tags = [await create_tag(t.owner, {"name": f"T{i}"}) for i in range(2)]
    picked = await service.create_segment(t.owner, brand, SegmentKind.STATIC, {"name": "picked"})
    definitions = {
        "spend": {"match": "all", "rules": [{"kind": "profile", "field": "total_order_value",
                                             "operator": "greater_than_or_equal", "value": 150}]},
        "browsers": {"match": "any", "rules": [
            {"kind": "event", "name": "viewed", "operator": "greater_than_or_equal", "value": 2, "within_days": 7},
            {"kind": "tag", "operator": "includes", "value": [str(tags[0].id)]}]},
        "mailable": {"match": "all", "rules": [{"kind": "consent", "field": "email", "operator": "equals", "value": True},
                                               {"kind": "tag", "operator": "not_in", "value": [str(tags[1].id)]}]},
        "pro": {"match": "any", "rules": [{"kind": "attribute", "field": "country", "operator": "equals", "value": "FR"},
                                          {"kind": "segment", "operator": "includes", "value": [str(picked.id)]}]},
        "tents": {"match": "all", "rules": [{"kind": "purchase", "field": "sku", "operator": "in", "value": ["TENT"]}]},
    }
    segs = {name: await service.create_segment(t.owner, brand, SegmentKind.DYNAMIC, {"name": name}, definition=d)
            for name, d in definitions.items()}
    # refers to two others: evaluated again when their members change
    segs["both"] = await service.create_segment(t.owner, brand, SegmentKind.DYNAMIC, {"name": "both"}, definition={
        "match": "all", "rules": [{"kind": "segment", "operator": "includes", "value": [str(segs["spend"].id)]},
                                  {"kind": "segment", "operator": "not_in", "value": [str(segs["mailable"].id)]}]})
    await drain(t.id)
    for seg in segs.values():
        await refresh.refresh(t.id, seg.id)

    async def change(step: int) -> str:
        who = rng.choice(people)
        match rng.randrange(8):
            case 0:
                await record_order(t.owner, OrderInput(
                    brand_id=brand, external_order_id=f"r-{step}", total_cents=rng.choice([3_000, 9_000, 16_000]),
                    currency="EUR", placed_at=now - timedelta(days=rng.choice([1, 30])), customer_id=who.id,
                    items=[]))
                return "order"
            case 1:
                from domain.commerce.service import OrderLine

                await record_order(t.owner, OrderInput(
                    brand_id=brand, external_order_id=f"r-{step}", total_cents=5_000, currency="EUR",
                    placed_at=now - timedelta(days=2), customer_id=who.id,
                    items=[OrderLine(sku=rng.choice(["TENT", "MUG"]), quantity=1, unit_price_cents=5_000)]))
                return "order with items"
            case 2:
                await track_event(t.owner, EventInput(event_id=f"e-{step}", name="viewed", customer_id=who.id,
                                                      brand_id=brand, occurred_at=now - timedelta(days=rng.choice([1, 20]))))
                return "event"
            case 3:
                tag = rng.choice(tags)
                if rng.random() < 0.6:
                    await tag_customers(t.owner, [who.id], [tag.id])
                else:
                    await untag_customers(t.owner, [who.id], [tag.id])
                return "tag"
            case 4:
                await set_consent(t.owner, who.id, brand, Channel.EMAIL, rng.random() < 0.6)
                return "consent"
            case 5:
                await update_customer(t.owner, who.id, {"country": rng.choice(["FR", "DE"])})
                return "attribute"
            case _:
                if rng.random() < 0.6:
                    await membership.change_static_members(t.owner, picked.id, [who.id], [])
                else:
                    await membership.change_static_members(t.owner, picked.id, [], [who.id])
                return "static membership"

    done = []
    for step in range(int(os.environ.get("BRANDGRAPH_LIVE_STEPS") or 60)):
        done.append(await change(step))
        await drain(t.id)
    order = ["spend", "browsers", "mailable", "pro", "tents", "both"]  # referenced segments first
    for name in order:
        result = await refresh.refresh(t.id, segs[name].id)
        assert (result.entered, result.exited) == (0, 0), (seed, name, done)
    async with tenant_session(t.id) as s:  # and every counter matches its members
        for name in order:
            seg = await service.load(s, t.owner, segs[name].id)
            count = await s.scalar(select(func.count()).select_from(SegmentMembership).where(
                SegmentMembership.tenant_id == t.id, SegmentMembership.segment_id == seg.id,
                SegmentMembership.exited_at.is_(None)))
            assert seg.member_count == count, (seed, name)
    assert set(done) >= {"order", "event", "tag", "consent"}, done
    assert PURCHASE in (segs["tents"].inputs or [])


async def test_a_time_window_expires_a_member_with_no_change_at_all(api: Api, tenant: TenantFixture) -> None:
    t = tenant
    gus, _ = await upsert_customer(t.owner, {"email": "gus@x.test"}, brand_id=t.brands["a"])
    hal, _ = await upsert_customer(t.owner, {"email": "hal@x.test"}, brand_id=t.brands["a"])
    now = datetime.now(UTC)
    for who, days_ago in ((gus, 6), (hal, 1)):
        await track_event(t.owner, EventInput(event_id=f"{who.email}-v", name="viewed", customer_id=who.id,
                                              brand_id=t.brands["a"], occurred_at=now - timedelta(days=days_ago)))
    recent = await create(api, t, "Viewed this week", {"match": "ALL", "rules": [
        {"event": {"name": "viewed", "operator": "GREATER_THAN_OR_EQUAL", "value": 1, "withinDays": 7}}]})
    lapsed = await create(api, t, "Last order over 30 days ago", {"match": "ALL", "rules": [
        {"profile": {"field": "LAST_ORDER_DATE", "operator": "OLDER_THAN_DAYS", "value": 30}}]})
    await record_order(t.owner, OrderInput(brand_id=t.brands["a"], external_order_id="hal-1", total_cents=1_000,
                                           currency="EUR", placed_at=now - timedelta(days=29), customer_id=hal.id))
    await drain(t.id)
    for seg in (recent, lapsed):
        await refresh.refresh(t.id, raw(seg))
    assert emails(await segment(api, t, recent)) == {"gus@x.test", "hal@x.test"}
    assert emails(await segment(api, t, lapsed)) == set()

    # an hour on, no edge passed: nobody is looked at
    assert await live.sweep(t.id, now + timedelta(hours=1)) == 0
    # two days on, gus's view left the window and hal's order reached 30 days, with nothing changed
    assert await live.sweep(t.id, now + timedelta(days=2)) == 2
    data = await segment(api, t, recent)
    assert emails(data) == {"hal@x.test"}
    assert [(e["node"]["change"], e["node"]["cause"], e["node"]["customer"]["email"])
            for e in data["history"]["edges"]][0] == ("EXITED", "TIME", "gus@x.test")
    data = await segment(api, t, lapsed)
    assert emails(data) == {"hal@x.test"} and data["history"]["edges"][0]["node"]["cause"] == "TIME"
    # a later sweep starts where this one ended
    assert await live.sweep(t.id, now + timedelta(days=2, minutes=5)) == 0


UPDATE_BRAND = """mutation($input: UpdateBrandInput!) { updateBrand(input: $input) {
  brand { segmentRefreshHours } errors { field code message } } }"""


async def test_the_brand_sets_the_backstop_refresh_cadence(api: Api, tenant: TenantFixture) -> None:
    t = tenant
    seg = raw(await create(api, t, "Backstopped", spend_at_least(1)))
    await refresh.refresh(t.id, seg)
    assert await refresh.refresh_stale(t.id) == 0  # fresh, and not stale

    async def refreshed_hours_ago(hours: int) -> None:
        async with tenant_session(t.id) as s:
            await s.execute(text("update segments set last_refreshed_at = now() - make_interval(hours => :h) "
                                 "where id = :id"), {"h": hours, "id": seg})

    await refreshed_hours_ago(25)
    assert await refresh.refresh_stale(t.id) == 1  # the default: at least daily
    await refreshed_hours_ago(25)
    changed = (await api.data(UPDATE_BRAND, {"input": {"id": t.brand_gid("a"), "segmentRefreshHours": 48}},
                              token=t.owner_token))["updateBrand"]
    assert changed == {"brand": {"segmentRefreshHours": 48}, "errors": []}
    assert await refresh.refresh_stale(t.id) == 0
    await refreshed_hours_ago(49)
    assert await refresh.refresh_stale(t.id) == 1
    refused = (await api.data(UPDATE_BRAND, {"input": {"id": t.brand_gid("a"), "segmentRefreshHours": 0}},
                              token=t.owner_token))["updateBrand"]
    assert [(e["field"], e["code"]) for e in refused["errors"]] == [("input.segmentRefreshHours", "INVALID")]


async def test_queued_evaluations_stay_in_their_tenant_and_brand(api: Api, tenant: TenantFixture,
                                                                 other_tenant: TenantFixture) -> None:
    a, b = tenant, other_tenant
    ours = {}
    for t in (a, b):
        ours[t.id] = {side: await service.create_segment(t.owner, t.brands[side], SegmentKind.DYNAMIC,
                                                         {"name": f"spenders {side}"},
                                                         definition={"match": "all", "rules": [
                                                             {"kind": "profile", "field": "total_order_value",
                                                              "operator": "greater_than_or_equal", "value": 1}]})
                      for side in ("a", "b")}
        for seg in ours[t.id].values():
            await refresh.refresh(t.id, seg.id)
    jo, _ = await upsert_customer(a.owner, {"email": "jo@x.test"}, brand_id=a.brands["a"])
    await drain(a.id)
    async with tenant_session(a.id) as s:  # queued, not yet evaluated
        await changes.customers_changed(s, a.id, [jo.id], [PURCHASE])
    async with tenant_session(b.id) as s:  # the other tenant sees nothing of it, and evaluates nothing
        assert await s.scalar(select(func.count()).select_from(PendingEvaluation)) == 0
    assert await live.evaluate_batch(b.id) == 0
    await record_order(a.owner, OrderInput(brand_id=a.brands["a"], external_order_id="jo-1", total_cents=5_000,
                                           currency="EUR", placed_at=datetime.now(UTC), customer_id=jo.id))
    await drain(a.id)

    async def members(t: TenantFixture, side: str) -> int:
        async with tenant_session(t.id) as s:
            return await s.scalar(select(func.count()).select_from(SegmentMembership).where(
                SegmentMembership.segment_id == ours[t.id][side].id, SegmentMembership.exited_at.is_(None)))

    # jo is a customer of brand a of tenant A: brand b's segment and tenant B's are untouched
    assert [await members(a, "a"), await members(a, "b"), await members(b, "a"), await members(b, "b")] == [1, 0, 0, 0]
