"""Churn risk and lifetime value overrides (owners and admins, with a reason, on the timeline and
in the audit log; clearing returns to the computed value), preferred contact method and account
manager."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from conftest import Api, TenantFixture, gid
from domain.commerce.service import OrderInput, record_order
from domain.customers.service import upsert_customer
from domain.platform.db import tenant_session

OVERRIDE = """mutation($i: SetCustomerOverrideInput!) { setCustomerOverride(input: $i) {
  customer { churnRisk { value computed override reason setBy setAt }
             lifetimeValue { valueCents computedCents overrideCents reason setBy } }
  errors { field code } } }"""
RELATIONSHIP = """mutation($i: SetCustomerRelationshipInput!) { setCustomerRelationship(input: $i) {
  customer { preferredContactMethod accountManagerId } errors { field code } } }"""
READ = """query($id: ID!) { customer(id: $id) { churnRisk { value computed override }
  lifetimeValue { valueCents computedCents overrideCents }
  timeline(first: 10) { edges { node { kind ... on OtherTimelineEvent { data } } } } } }"""


async def _buyer(t: TenantFixture, email: str = "vip@example.test", brand: str = "a"):
    c, _ = await upsert_customer(t.owner, {"email": email}, brand_id=t.brands[brand])
    await record_order(t.owner, OrderInput(brand_id=t.brands[brand], external_order_id=f"{email}-1", total_cents=12_345,
                                           currency="EUR", placed_at=datetime.now(UTC) - timedelta(days=200),
                                           customer_id=c.id))
    return c.id


async def _audit_actions(t: TenantFixture) -> list[str]:
    async with tenant_session(t.id) as s:
        return list((await s.execute(text("SELECT action FROM audit_log WHERE tenant_id = :t AND action LIKE"
                                          " 'customer.override%' ORDER BY occurred_at"), {"t": t.id})).scalars())


async def test_an_override_wins_until_cleared_and_is_recorded(api: Api, tenant: TenantFixture) -> None:
    customer = gid("Customer", await _buyer(tenant))
    before = (await api.data(READ, {"id": customer}, token=tenant.owner_token))["customer"]
    computed_risk = before["churnRisk"]["computed"]
    assert before["churnRisk"] == {"value": computed_risk, "computed": computed_risk, "override": None}
    assert before["lifetimeValue"] == {"valueCents": 12_345, "computedCents": 12_345, "overrideCents": None}

    out = (await api.data(OVERRIDE, {"i": {"customerId": customer, "field": "CHURN_RISK", "value": 5,
                                           "reason": "Renewed the annual contract"}},
                          token=tenant.owner_token))["setCustomerOverride"]
    assert out["errors"] == []
    risk = out["customer"]["churnRisk"]
    assert (risk["value"], risk["computed"], risk["override"], risk["reason"], risk["setBy"]) == (
        5, computed_risk, 5, "Renewed the annual contract", f"owner@{tenant.slug}.test")
    out = (await api.data(OVERRIDE, {"i": {"customerId": customer, "field": "LIFETIME_VALUE", "value": 1_000_000,
                                           "reason": "Offline wholesale orders"}},
                          token=tenant.owner_token))["setCustomerOverride"]
    assert out["customer"]["lifetimeValue"]["valueCents"] == 1_000_000
    assert out["customer"]["lifetimeValue"]["computedCents"] == 12_345

    cleared = (await api.data(OVERRIDE, {"i": {"customerId": customer, "field": "CHURN_RISK", "value": None}},
                              token=tenant.owner_token))["setCustomerOverride"]
    assert cleared["customer"]["churnRisk"] == {"value": computed_risk, "computed": computed_risk, "override": None,
                                                "reason": None, "setBy": None, "setAt": None}
    after = (await api.data(READ, {"id": customer}, token=tenant.owner_token))["customer"]
    kinds = [e["node"]["kind"] for e in after["timeline"]["edges"]]
    assert kinds.count("OVERRIDE_SET") == 2 and kinds.count("OVERRIDE_CLEARED") == 1
    first_set = next(e["node"]["data"] for e in after["timeline"]["edges"]
                     if e["node"]["kind"] == "OVERRIDE_SET" and e["node"]["data"]["field"] == "churn_risk")
    assert first_set["value"] == 5 and first_set["reason"] == "Renewed the annual contract"
    assert await _audit_actions(tenant) == ["customer.override.set", "customer.override.set",
                                            "customer.override.clear"]


async def test_bad_overrides_are_refused_and_change_nothing(api: Api, tenant: TenantFixture) -> None:
    customer = gid("Customer", await _buyer(tenant))
    for value, reason, field, error in ((101, "why", "CHURN_RISK", "input.value"), (-1, "why", "LIFETIME_VALUE",
                                                                                    "input.value"),
                                        (50, None, "CHURN_RISK", "input.reason"), (50, "  ", "CHURN_RISK",
                                                                                  "input.reason")):
        out = (await api.data(OVERRIDE, {"i": {"customerId": customer, "field": field, "value": value,
                                               "reason": reason}}, token=tenant.owner_token))["setCustomerOverride"]
        assert out["customer"] is None and [e["field"] for e in out["errors"]] == [error], (value, reason, out)
    assert await _audit_actions(tenant) == []


async def test_only_owners_and_admins_override_and_only_visible_customers(
        api: Api, tenant: TenantFixture, other_tenant: TenantFixture) -> None:
    customer = gid("Customer", await _buyer(tenant, brand="a"))
    _, marketer = await tenant.member("marketer")
    _, admin_b = await tenant.api_key("admin", brands=["b"])  # an admin key limited to brand b
    _, admin = await tenant.member("admin")
    variables = {"i": {"customerId": customer, "field": "CHURN_RISK", "value": 1, "reason": "x"}}
    refused = (await api.data(OVERRIDE, variables, token=marketer))["setCustomerOverride"]
    assert refused["customer"] is None and refused["errors"][0]["code"] == "FORBIDDEN"
    for token in (admin_b, other_tenant.owner_token):  # a customer they cannot see
        out = (await api.data(OVERRIDE, variables, token=token))["setCustomerOverride"]
        assert out["customer"] is None and out["errors"][0]["code"] == "NOT_FOUND"
        rel = (await api.data(RELATIONSHIP, {"i": {"customerId": customer, "preferredContactMethod": "SMS"}},
                              token=token))["setCustomerRelationship"]
        assert rel["customer"] is None and rel["errors"][0]["code"] == "NOT_FOUND"
    assert await _audit_actions(tenant) == []
    ok = (await api.data(OVERRIDE, variables, token=admin))["setCustomerOverride"]
    assert ok["errors"] == [] and ok["customer"]["churnRisk"]["override"] == 1


async def test_preferred_contact_and_account_manager(api: Api, tenant: TenantFixture,
                                                     other_tenant: TenantFixture) -> None:
    customer = gid("Customer", await _buyer(tenant))
    manager_id, _ = await tenant.member("agent")
    _, agent = await tenant.member("agent")
    out = (await api.data(RELATIONSHIP, {"i": {"customerId": customer, "preferredContactMethod": "PHONE",
                                               "accountManagerId": gid("Member", manager_id)}},
                          token=agent))["setCustomerRelationship"]
    assert out == {"errors": [], "customer": {"preferredContactMethod": "PHONE",
                                              "accountManagerId": gid("Member", manager_id)}}
    foreign_member, _ = await other_tenant.member("agent")
    bad = (await api.data(RELATIONSHIP, {"i": {"customerId": customer,
                                               "accountManagerId": gid("Member", foreign_member)}},
                          token=agent))["setCustomerRelationship"]
    assert bad["customer"] is None and bad["errors"] == [{"field": "input.accountManagerId", "code": "NOT_FOUND"}]
    cleared = (await api.data(RELATIONSHIP, {"i": {"customerId": customer}}, token=agent))["setCustomerRelationship"]
    assert cleared["customer"] == {"preferredContactMethod": None, "accountManagerId": None}
