"""No N+1: the SQL statement count of a nested list query does not grow with the list.

The server reports the count of each operation in ``extensions.sqlStatements``
(GRAPHQL_SQL_STATS=1, on in tests)."""

from __future__ import annotations

from conftest import Api, TenantFixture, create_tenant_fixture
from domain.audit import service as audit
from domain.platform.db import tenant_session

MEMBERS_QUERY = "{ members { email role brands { name slug } } }"
AUDIT_QUERY = """query($first: Int!) { auditLog(first: $first) { edges { node {
  action brand { name sendingIdentity { fromEmail } } } } } }"""


async def _tenant_with_members(n: int) -> TenantFixture:
    t = await create_tenant_fixture(brands=("a", "b", "c"))
    for i in range(n):
        await t.member("marketer", brands=["a", "b"] if i % 2 else ["c"])
    return t


async def _statements(api: Api, query: str, token: str, variables: dict | None = None) -> tuple[int, dict]:
    body = await api.gql(query, variables, token=token)
    assert not body.get("errors"), body
    return body["extensions"]["sqlStatements"], body["data"]


async def test_members_with_brands_is_flat(api: Api) -> None:
    small, large = await _tenant_with_members(5), await _tenant_with_members(25)
    n_small, data_small = await _statements(api, MEMBERS_QUERY, small.owner_token)
    n_large, data_large = await _statements(api, MEMBERS_QUERY, large.owner_token)
    assert len(data_small["members"]) == 6 and len(data_large["members"]) == 26
    assert all(m["brands"] for m in data_large["members"] if m["role"] == "MARKETER")
    assert n_small >= 4  # the counter sees the loaders' statements: members, grants, brands (and the tenant, once)
    assert n_small == n_large, (n_small, n_large)


async def _tenant_with_audit(n: int) -> TenantFixture:
    t = await create_tenant_fixture(brands=("a", "b"))
    async with tenant_session(t.id) as s:
        for i in range(n):
            audit.record(s, t.owner, "test.event", "Brand", t.brands["a"],
                         brand_id=t.brands["a" if i % 2 else "b"])
    return t


async def test_audit_log_with_brands_is_flat(api: Api) -> None:
    small, large = await _tenant_with_audit(5), await _tenant_with_audit(50)
    n_small, d_small = await _statements(api, AUDIT_QUERY, small.owner_token, {"first": 5})
    n_large, d_large = await _statements(api, AUDIT_QUERY, large.owner_token, {"first": 50})
    assert len(d_small["auditLog"]["edges"]) == 5 and len(d_large["auditLog"]["edges"]) == 50
    assert all(e["node"]["brand"] for e in d_large["auditLog"]["edges"])
    assert n_small >= 3  # entries, then brands through the loader (and the tenant, once)
    assert n_small == n_large, (n_small, n_large)
