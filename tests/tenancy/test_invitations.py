"""Invitations: adding a member tells a tenant nothing another tenant knows of the person, and
an invitation grants nothing until the person accepts it."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

from conftest import SECRET, Api, TenantFixture

MEMBER = "id email name role status acceptedAt allBrands brands { slug }"
ADD = f"""mutation($input: AddMemberInput!) {{ addMember(input: $input) {{
  member {{ {MEMBER} }} errors {{ field code message }} }} }}"""
# the fields members had before invitations: what a leak showed through
BASIC = "id email name role allBrands createdAt brands { slug }"
ADD_BASIC = f"""mutation($input: AddMemberInput!) {{ addMember(input: $input) {{
  member {{ {BASIC} }} errors {{ field code message }} }} }}"""
ACCEPT = f"mutation {{ acceptInvitation {{ member {{ {MEMBER} }} errors {{ field code message }} }} }}"


async def _members(api: Api, t: TenantFixture, fields: str = MEMBER) -> list[dict[str, Any]]:
    return (await api.data(f"{{ members {{ {fields} }} }}", token=t.owner_token))["members"]


async def _user_rows(t: TenantFixture) -> list[tuple]:
    """What tenant ``t`` can read of the global users table (row-level security applies)."""
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    async with tenant_session(t.id) as s:
        return [tuple(r) for r in (await s.execute(text("SELECT id, email FROM users ORDER BY id"))).all()]


def _shape(payload: dict[str, Any], email: str) -> dict[str, Any]:
    """The answer with what may differ between two calls (the id, the typed e-mail) taken out."""
    member = dict(payload["member"])
    assert member.pop("email") == email
    member.pop("id")
    return {"member": member, "errors": payload["errors"]}


async def test_adding_another_tenants_member_answers_as_for_an_unknown_address(
    api: Api, tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    a, b = tenant, other_tenant
    known = f"ana-{uuid.uuid4().hex[:8]}@people.test"
    added = (await api.data(ADD_BASIC, {"input": {"email": known, "role": "ANALYST", "name": "Ana Analyst"}},
                            token=a.owner_token))["addMember"]
    a_member = added["member"]
    assert added["errors"] == [] and a_member["name"] == "Ana Analyst"
    before_a = await _members(api, a, BASIC)
    users_before_b = await _user_rows(b)

    unknown = f"nobody-{uuid.uuid4().hex[:8]}@people.test"
    answers = {}
    for email in (known, unknown):
        got = (await api.data(ADD_BASIC, {"input": {"email": email, "role": "ANALYST"}},
                              token=b.owner_token))["addMember"]
        answers[email] = got
    # nothing of what A gave (the name) and not the id A shows
    assert answers[known]["member"]["name"] is None
    assert answers[known]["member"]["id"] != a_member["id"]
    # the same answer, field for field, whether the address is A's member or known nowhere
    # (creation times aside)
    for got in answers.values():
        got["member"].pop("createdAt")
    assert _shape(answers[known], known) == _shape(answers[unknown], unknown)
    # the listing shows B what B gave, nothing else, and B reads no user row of an invited person
    listed = {m["email"]: m for m in await _members(api, b, BASIC)}
    assert listed[known]["name"] is None and listed[known]["id"] == answers[known]["member"]["id"]
    assert await _user_rows(b) == users_before_b

    statuses = {m["email"]: m["status"] for m in await _members(api, b)}
    assert statuses[known] == statuses[unknown] == "INVITED"
    # A's member is unchanged
    assert await _members(api, a, BASIC) == before_a
    # a name B gives stays B's; A's stays A's
    remove = "mutation($u: ID!) { removeMember(input: {userId: $u}) { errors { code } } }"
    assert (await api.data(remove, {"u": answers[known]["member"]["id"]}, token=b.owner_token))["removeMember"] == {
        "errors": []}
    again = (await api.data(ADD, {"input": {"email": known.upper(), "role": "ANALYST", "name": "A. A."}},
                            token=b.owner_token))["addMember"]
    assert again["member"]["name"] == "A. A." and again["member"]["email"] == known.upper()
    assert await _members(api, a, BASIC) == before_a


async def test_an_invitation_grants_nothing_until_the_person_accepts(
    api: Api, tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    from domain.tenancy.auth import mint_token
    from domain.tenancy.members import ensure_member
    from domain.tenancy.policies import Role

    a, b = tenant, other_tenant
    email = f"maya-{uuid.uuid4().hex[:8]}@people.test"
    _, token_a = await a.member("marketer", email=email)  # an active member of A
    invited = (await api.data(ADD, {"input": {"email": email, "role": "MARKETER", "name": "Maya",
                                              "brandIds": [b.brand_gid("a")]}},
                              token=b.owner_token))["addMember"]["member"]
    assert invited["status"] == "INVITED" and invited["acceptedAt"] is None

    # the person signs in to B (the operator's `brandgraph token` path finds, not accepts)
    user_id, created = await ensure_member(b.id, email, Role.ANALYST)
    assert created is False
    token_b = mint_token(b.id, user_id, email)
    viewer = await api.data("{ viewer { invitationPending permissions role } }", token=token_b)
    assert viewer["viewer"] == {"invitationPending": True, "permissions": [], "role": "MARKETER"}
    refused = await api.gql("{ brands { id } customers(first: 5) { edges { node { id } } } }", token=token_b)
    assert {e["extensions"]["code"] for e in refused["errors"]} == {"FORBIDDEN"}
    assert (await api.post("{ viewer { role } }", token=token_b, brand=b.brand_gid("a"))).status_code == 403
    write = "mutation($b: ID!) { upsertCustomer(input: {brandId: $b, email: \"x@y.test\"}) { errors { code } } }"
    assert (await api.data(write, {"b": b.brand_gid("a")}, token=token_b))["upsertCustomer"]["errors"] == [
        {"code": "FORBIDDEN"}]
    # nobody else accepts for them: not the owner, not A's token
    for other in (b.owner_token, token_a):
        assert (await api.data(ACCEPT, token=other))["acceptInvitation"]["errors"][0]["code"] == "INVALID_STATE"
    assert {m["email"]: m["status"] for m in await _members(api, b)}[email] == "INVITED"

    accepted = (await api.data(ACCEPT, token=token_b))["acceptInvitation"]
    assert accepted["errors"] == [] and accepted["member"]["status"] == "ACTIVE"
    assert accepted["member"]["id"] == invited["id"] and accepted["member"]["acceptedAt"]
    after = await api.data("{ viewer { invitationPending role brands { slug } } }", token=token_b)
    assert after["viewer"] == {"invitationPending": False, "role": "MARKETER", "brands": [{"slug": "brand-a"}]}
    assert (await api.data(ACCEPT, token=token_b))["acceptInvitation"]["errors"][0]["code"] == "INVALID_STATE"
    # A's membership was neither touched nor renamed
    mine = {m["email"]: m for m in await _members(api, a)}[email]
    assert mine["status"] == "ACTIVE" and mine["name"] is None


async def test_an_identity_provider_token_accepts_by_e_mail(api: Api, tenant: TenantFixture) -> None:
    email = f"idp-{uuid.uuid4().hex[:8]}@people.test"
    (await api.data(ADD, {"input": {"email": email, "role": "AGENT"}}, token=tenant.owner_token))
    now = int(time.time())
    token = jwt.encode({"iss": "brandgraph", "aud": "brandgraph-api", "sub": "idp|12345", "email": email.upper(),
                        "tid": str(tenant.id), "iat": now, "exp": now + 600}, SECRET, algorithm="HS256")
    assert (await api.data("{ viewer { invitationPending } }", token=token))["viewer"]["invitationPending"] is True
    accepted = (await api.data(ACCEPT, token=token))["acceptInvitation"]
    assert accepted["errors"] == [] and accepted["member"]["status"] == "ACTIVE"
    assert (await api.data("{ viewer { permissions } }", token=token))["viewer"]["permissions"]


async def test_an_owner_invitation_can_be_changed_or_withdrawn_by_the_only_owner(
    api: Api, tenant: TenantFixture
) -> None:
    t = tenant
    role = "mutation($u: ID!) { changeMemberRole(input: {userId: $u, role: ADMIN}) { member { role status } " \
           "errors { field code } } }"
    remove = "mutation($u: ID!) { removeMember(input: {userId: $u}) { member { status } errors { field code } } }"
    ids = []
    for _ in range(2):
        got = await api.data(ADD, {"input": {"email": f"owner2-{uuid.uuid4().hex[:8]}@x.test", "role": "OWNER"}},
                             token=t.owner_token)
        assert got["addMember"]["errors"] == [] and got["addMember"]["member"]["status"] == "INVITED"
        ids.append(got["addMember"]["member"]["id"])
    # the tenant's one active owner stays: the invitations are not owners yet
    assert (await api.data(role, {"u": ids[0]}, token=t.owner_token))["changeMemberRole"] == {
        "member": {"role": "ADMIN", "status": "INVITED"}, "errors": []}
    assert (await api.data(remove, {"u": ids[1]}, token=t.owner_token))["removeMember"] == {
        "member": {"status": "INVITED"}, "errors": []}
    assert ids[1] not in {m["id"] for m in await _members(api, t)}
    # the active owner still cannot leave the tenant without one
    from conftest import gid

    got = await api.data(remove, {"u": gid("Member", (await _owner_member_id(t)))}, token=t.owner_token)
    assert [e["code"] for e in got["removeMember"]["errors"]] == ["INVALID_STATE"]


async def _owner_member_id(t: TenantFixture) -> uuid.UUID:
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    async with tenant_session(t.id) as s:
        return await s.scalar(text("SELECT id FROM memberships WHERE tenant_id = :t AND role = 'owner' "
                                   "AND status = 'active'"), {"t": t.id})


def _idp_token(tenant: TenantFixture, email: str, key: Any = SECRET, alg: str = "HS256", sub: str = "idp|12345",
               **claims: Any) -> str:
    now = int(time.time())
    return jwt.encode({"iss": "brandgraph", "aud": "brandgraph-api", "sub": sub, "email": email,
                       "tid": str(tenant.id), "iat": now, "exp": now + 600, **claims}, key, algorithm=alg)


async def test_an_unverified_email_accepts_no_invitation(api: Api, tenant: TenantFixture) -> None:
    email = f"unverified-{uuid.uuid4().hex[:8]}@people.test"
    await api.data(ADD, {"input": {"email": email, "role": "AGENT"}}, token=tenant.owner_token)
    for flag in (False, "false"):
        r = await api.post(ACCEPT, token=_idp_token(tenant, email, email_verified=flag))
        assert r.status_code == 401 and "not verified" in r.text, r.text
    assert [m["status"] for m in await _members(api, tenant) if m["email"] == email] == ["INVITED"]
    accepted = (await api.data(ACCEPT, token=_idp_token(tenant, email, email_verified=True)))["acceptInvitation"]
    assert accepted["errors"] == [] and accepted["member"]["status"] == "ACTIVE"


async def test_an_outside_identity_provider_is_trusted_with_verified_emails_only(
    tenant: TenantFixture, monkeypatch: Any
) -> None:
    import pytest
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from domain.config import get_settings
    from domain.errors import Unauthenticated
    from domain.tenancy import members
    from domain.tenancy.auth import authenticate_jwt

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    monkeypatch.setenv("JWT_ALGORITHMS", "RS256,HS256")
    monkeypatch.setenv("JWT_PUBLIC_KEY", public)
    get_settings.cache_clear()
    try:
        email = f"outside-{uuid.uuid4().hex[:8]}@people.test"
        member = await members.add_member(tenant.owner, email, "agent")
        for claims in ({}, {"email_verified": False}):
            with pytest.raises(Unauthenticated, match="not verified"):
                await authenticate_jwt(_idp_token(tenant, email, key, "RS256", **claims))
        # verified, with a subject of the provider's own, a UUID included: matched by e-mail
        for sub in ("idp|12345", str(uuid.uuid4())):
            principal = await authenticate_jwt(_idp_token(tenant, email, key, "RS256", sub=sub, email_verified=True))
            assert principal.member_id == member.id and principal.invited
        # a subject equal to a Brandgraph user's id is no claim to be that user: the owner's user id
        # with the invited person's verified e-mail is the invited person, without one it is nobody
        owner = str(tenant.owner_id)
        principal = await authenticate_jwt(_idp_token(tenant, email, key, "RS256", sub=owner, email_verified=True))
        assert principal.member_id == member.id and principal.invited and principal.id != tenant.owner_id
        with pytest.raises(Unauthenticated, match="not verified"):
            await authenticate_jwt(_idp_token(tenant, email, key, "RS256", sub=owner))
        nobody = _idp_token(tenant, "", key, "RS256", sub=owner, email_verified=True)
        with pytest.raises(Unauthenticated, match="no email claim"):
            await authenticate_jwt(nobody)
        stranger = _idp_token(tenant, f"stranger-{uuid.uuid4().hex[:8]}@people.test", key, "RS256", sub=owner,
                              email_verified=True)
        with pytest.raises(Unauthenticated, match="not a member"):
            await authenticate_jwt(stranger)
        # Brandgraph's own HS256 token still names the owner by its user id
        assert (await authenticate_jwt(_idp_token(tenant, "", sub=owner))).id == tenant.owner_id
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
