"""The rows of the tenancy isolation tests: tenant A (:class:`World`), every query (:data:`READS`)
and mutation (:data:`WRITES`) of brands, members, API keys and the audit trail, and the
mutations a brand-limited admin key aims at brand "b" (:data:`BRAND_SCOPED`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from strawberry.relay import GlobalID

from conftest import TenantFixture, gid
from support.graphql import check
from support.isolation import Read

ERRORS = "errors { field code message }"


@dataclass
class World:
    """Tenant A with something of every kind to aim at."""

    t: TenantFixture
    target_id: uuid.UUID  # a marketer limited to brand "a"
    target_email: str
    key_id: uuid.UUID  # an analyst API key for every brand
    entry_gid: str  # one of A's audit entries

    def brand(self, name: str) -> str:
        return self.t.brand_gid(name)

    @property
    def target(self) -> str:
        return gid("Member", self.target_id)

    @property
    def owner(self) -> str:
        return gid("Member", self.t.owner_member_id)

    @property
    def key(self) -> str:
        return gid("ApiKey", self.key_id)

    @property
    def tenant(self) -> str:
        return gid("Tenant", self.t.id)

    def markers(self) -> list[str]:
        """Strings that appear only in answers that reveal something of tenant A."""
        raw = [self.t.id, self.t.owner_id, self.t.owner_member_id, self.target_id, self.key_id, *self.t.brands.values(),
               GlobalID.from_id(self.entry_gid).node_id]
        gids = [self.brand("a"), self.brand("b"), self.target, self.owner, self.key, self.tenant,
                self.entry_gid]
        return [str(m) for m in raw] + gids + [self.t.slug]


def _ids(items: list[dict[str, Any]]) -> set[str]:
    return {i["id"] for i in items}


def edge_ids(conn: dict[str, Any]) -> set[str]:
    return {e["node"]["id"] for e in conn["edges"]}


def _no_vars(w: World) -> dict[str, Any]:
    return {}


def _viewer_own(d: dict[str, Any], w: World) -> None:
    assert d["viewer"]["tenant"]["id"] == w.tenant
    assert _ids(d["viewer"]["brands"]) == {w.brand("a"), w.brand("b")}


def _viewer_foreign(d: dict[str, Any], w: World, b: TenantFixture) -> None:
    assert d["viewer"]["tenant"] == {"id": gid("Tenant", b.id), "slug": b.slug}
    assert d["viewer"]["principal"]["id"] == gid("Principal", b.owner_member_id)
    assert _ids(d["viewer"]["brands"]) == {b.brand_gid("a"), b.brand_gid("b")}


def _node_read(name: str, pick: Callable[[World], str]) -> Read:
    def own(d: dict[str, Any], w: World) -> None:
        assert d["node"] is not None and d["node"]["id"] == pick(w), d

    def foreign(d: dict[str, Any], w: World, b: TenantFixture) -> None:
        assert d["node"] is None, d

    return Read(f"node({name})", "query($id: ID!) { node(id: $id) { id __typename } }",
                lambda w: {"id": pick(w)}, own, foreign)


def _brand_read(name: str) -> Read:
    def own(d: dict[str, Any], w: World) -> None:
        assert d["brand"] == {"id": w.brand(name), "slug": f"brand-{name}"}

    def foreign(d: dict[str, Any], w: World, b: TenantFixture) -> None:
        assert d["brand"] is None

    return Read(f"brand({name})", "query($id: ID!) { brand(id: $id) { id slug } }",
                lambda w: {"id": w.brand(name)}, own, foreign)


READS: list[Read] = [
    Read(
        "viewer",
        "{ viewer { principal { id label } role allBrands tenant { id slug } brands { id slug } activeBrand { id } } }",
        _no_vars, _viewer_own, _viewer_foreign,
    ),
    Read(
        "brands",
        "{ brands(includeArchived: true) { id slug } }",
        _no_vars,
        lambda d, w: check(_ids(d["brands"]) == {w.brand("a"), w.brand("b")}, d),
        lambda d, w, b: check(_ids(d["brands"]) == {b.brand_gid("a"), b.brand_gid("b")}, d),
    ),
    _brand_read("a"),
    _brand_read("b"),
    _node_read("Brand", lambda w: w.brand("b")),
    _node_read("Member", lambda w: w.target),
    _node_read("owner Member", lambda w: w.owner),
    _node_read("ApiKey", lambda w: w.key),
    _node_read("Tenant", lambda w: w.tenant),
    _node_read("AuditEntry", lambda w: w.entry_gid),
    Read(
        "nodes",
        "query($ids: [ID!]!) { nodes(ids: $ids) { id __typename } }",
        lambda w: {"ids": [w.brand("a"), w.target, w.owner, w.key, w.tenant, w.entry_gid]},
        lambda d, w: check([n and n["id"] for n in d["nodes"]]
                           == [w.brand("a"), w.target, w.owner, w.key, w.tenant, w.entry_gid], d),
        lambda d, w, b: check(d["nodes"] == [None] * 6, d),
    ),
    Read(
        "members",
        "{ members { id email role brands { id } } }",
        _no_vars,
        lambda d, w: check({w.owner, w.target} <= _ids(d["members"]), d),
        lambda d, w, b: check([m["email"] for m in d["members"]] == [f"owner@{b.slug}.test"], d),
    ),
    Read(
        "apiKeys",
        "{ apiKeys(includeRevoked: true) { id name brands { id } } }",
        _no_vars,
        lambda d, w: check(w.key in _ids(d["apiKeys"]), d),
        lambda d, w, b: check(d["apiKeys"] == [], d),
    ),
    Read(
        "auditLog",
        "{ auditLog(first: 100) { edges { node { id action targetType targetId brand { id } } } } }",
        _no_vars,
        lambda d, w: check(w.entry_gid in edge_ids(d["auditLog"]), d),
        lambda d, w, b: check(
            {e["node"]["targetId"] for e in d["auditLog"]["edges"]}
            == {str(b.id), str(b.owner_member_id), *(str(i) for i in b.brands.values())}, d),
    ),
    Read(
        "auditLog(filtered)",
        "query($t: String) { auditLog(first: 100, targetType: $t) { edges { node { id targetId } } } }",
        lambda w: {"t": "Member"},
        lambda d, w: check(str(w.target_id) in {e["node"]["targetId"] for e in d["auditLog"]["edges"]}, d),
        lambda d, w, b: check(
            [e["node"]["targetId"] for e in d["auditLog"]["edges"]] == [str(b.owner_member_id)], d),
    ),
]


@dataclass(frozen=True)
class Write:
    """A mutation aimed at tenant A's objects.

    ``foreign_code``: the payload error another tenant's owner gets; None when the mutation
    takes no object of A (it then succeeds, but only inside the caller's own tenant).
    ``admin``: only owners and admins may run it.
    """

    name: str
    doc: str
    variables: Callable[[World], dict[str, Any]]
    foreign_code: str | None = "NOT_FOUND"
    admin: bool = True
    result: str = "brand"

    def __str__(self) -> str:
        return self.name


def _mutation(name: str, params: str, args: str, result: str) -> str:
    return f"mutation({params}) {{ {name}({args}) {{ {result} {{ id }} {ERRORS} }} }}"


WRITES: list[Write] = [
    Write("createBrand", _mutation("createBrand", "$input: CreateBrandInput!", "input: $input", "brand"),
          lambda w: {"input": {"name": "Brand New", "slug": "brand-new"}}, foreign_code=None),
    Write("updateBrand", _mutation("updateBrand", "$input: UpdateBrandInput!", "input: $input", "brand"),
          lambda w: {"input": {"id": w.brand("a"), "name": "Renamed", "fromEmail": "x@example.com"}}),
    Write("updateBrandVoice",
          _mutation("updateBrandVoice", "$input: UpdateBrandVoiceInput!", "input: $input", "brand"),
          lambda w: {"input": {"brandId": w.brand("b"), "tone": "shouty", "wordsToAvoid": ["cheap"]}},
          admin=False),
    Write("archiveBrand", _mutation("archiveBrand", "$id: ID!", "input: {id: $id}", "brand"),
          lambda w: {"id": w.brand("a")}),
    Write("addMember", _mutation("addMember", "$input: AddMemberInput!", "input: $input", "member"),
          lambda w: {"input": {"email": f"new@{w.t.slug}.test", "role": "ANALYST",
                               "brandIds": [w.brand("a")]}}, result="member"),
    Write("changeMemberRole", _mutation("changeMemberRole", "$u: ID!, $r: Role!", "input: {userId: $u, role: $r}", "member"),
          lambda w: {"u": w.target, "r": "AGENT"}, result="member"),
    Write("removeMember", _mutation("removeMember", "$u: ID!", "input: {userId: $u}", "member"),
          lambda w: {"u": w.target}, result="member"),
    Write("grantBrandAccess",
          _mutation("grantBrandAccess", "$u: ID!, $b: ID!", "input: {userId: $u, brandId: $b}", "member"),
          lambda w: {"u": w.target, "b": w.brand("b")}, result="member"),
    Write("revokeBrandAccess",
          _mutation("revokeBrandAccess", "$u: ID!, $b: ID!", "input: {userId: $u, brandId: $b}", "member"),
          lambda w: {"u": w.target, "b": w.brand("a")}, result="member"),
    Write("createApiKey", _mutation("createApiKey", "$input: CreateApiKeyInput!", "input: $input", "apiKey"),
          lambda w: {"input": {"name": "integration", "role": "ANALYST", "brandIds": [w.brand("a")]}},
          result="apiKey"),
    Write("revokeApiKey", _mutation("revokeApiKey", "$id: ID!", "input: {id: $id}", "apiKey"),
          lambda w: {"id": w.key}, result="apiKey"),
]


# An admin API key limited to brand "a": it has every admin right, but only on brand "a".
# (target: a marketer limited to brand "a"; ``brand`` is the brand the call aims at.)
BRAND_SCOPED: list[tuple[Write, Callable[[TenantFixture, str, str], dict[str, Any]]]] = [
    (WRITES[1], lambda t, m, brand: {"input": {"id": t.brand_gid(brand), "name": "Renamed"}}),
    (WRITES[2], lambda t, m, brand: {"input": {"brandId": t.brand_gid(brand), "tone": "dry"}}),
    (WRITES[3], lambda t, m, brand: {"id": t.brand_gid(brand)}),
    (WRITES[4], lambda t, m, brand: {"input": {"email": f"n-{brand}@{t.slug}.test", "role": "AGENT",
                                               "brandIds": [t.brand_gid(brand)]}}),
    (WRITES[7], lambda t, m, brand: {"u": m, "b": t.brand_gid(brand)}),
    (WRITES[8], lambda t, m, brand: {"u": m, "b": t.brand_gid(brand)}),
    (WRITES[9], lambda t, m, brand: {"input": {"name": "k", "role": "AGENT", "brandIds": [t.brand_gid(brand)]}}),
]

