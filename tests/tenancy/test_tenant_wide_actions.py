"""Tenant-wide actions: a principal limited to some brands changes nothing outside them.

Every mutation of the schema (read from the built schema, so a new one fails
:func:`test_every_mutation_is_classified` until it is added here) is one of:

* ``TENANT_WIDE``: its effect reaches every brand (a brand, a tag, a custom attribute
  declaration, a profile rebuild, people, keys, the webhook secret). A brand-limited principal
  is refused (``FORBIDDEN``) and nothing of the tenant changes; a principal that sees every brand
  does it. Each has a real call below (:data:`TENANT_WIDE_CALLS`), with the whole tenant's rows
  compared before and after.
* ``BRAND``: it acts on objects of one brand (a campaign, a segment, a conversation…); aimed at a
  brand the principal may not use it answers ``NOT_FOUND`` and writes nothing.
* ``KNOWN``: it acts on the tenant's shared customer records, but only on customers known to the
  principal's brands (``brandId`` is required of a brand-limited principal where the mutation
  takes one).
* ``OWN``: it acts on the caller's own membership only (accepting an invitation).

``BRAND``, ``KNOWN`` and ``OWN`` mutations are proven by the brand-limited rows of the isolation tests
(``tests/support/isolation/``, run by ``test_isolation.py``, ``test_customers_isolation.py``,
``test_segments_isolation.py``, ``test_campaigns_isolation.py``, ``test_conversations_isolation.py``)
or by :data:`BRAND_CALLS`
below; :func:`test_every_brand_scoped_mutation_has_a_brand_limited_row` checks that each has one.
The table in docs/security.md ("Tenant-wide actions") must say the same as :data:`SCOPES`.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from conftest import ROOT, Api, TenantFixture, gid
from support.isolation import ai, campaigns, conversations, customers, segments
from support.isolation import tenancy as isolation
from support.segments import settle

TENANT_WIDE, BRAND, KNOWN, OWN = "tenant-wide", "brand", "known customers", "own membership"

SCOPES: dict[str, str] = {
    # tenancy
    "createBrand": TENANT_WIDE, "updateBrand": BRAND, "updateBrandVoice": BRAND, "archiveBrand": BRAND,
    "addMember": TENANT_WIDE, "changeMemberRole": TENANT_WIDE, "removeMember": TENANT_WIDE,
    "grantBrandAccess": TENANT_WIDE, "revokeBrandAccess": TENANT_WIDE, "createApiKey": TENANT_WIDE,
    "revokeApiKey": TENANT_WIDE, "acceptInvitation": OWN,
    # customers
    "upsertCustomer": KNOWN, "updateCustomer": KNOWN, "createTag": TENANT_WIDE, "updateTag": TENANT_WIDE,
    "deleteTag": TENANT_WIDE, "tagCustomers": KNOWN, "untagCustomers": KNOWN, "addCustomerNote": KNOWN,
    "setConsent": KNOWN, "setCustomerOverride": KNOWN, "setCustomerRelationship": KNOWN,
    # commerce
    "recordOrder": BRAND, "trackEvent": BRAND, "upsertProduct": BRAND,
    # offers
    "createSegmentFromRecommendations": BRAND, "setRecommendationWeights": BRAND,
    "createAlertRule": BRAND, "deleteAlertRule": BRAND, "markAlertsRead": BRAND,
    # segments
    "createSegment": BRAND, "updateSegment": BRAND, "archiveSegment": BRAND, "duplicateSegment": BRAND,
    "refreshSegment": BRAND, "addSegmentMembers": BRAND, "removeSegmentMembers": BRAND,
    "importSegmentMembers": BRAND, "declareCustomAttribute": TENANT_WIDE, "createSegmentAutomation": BRAND,
    "updateSegmentAutomation": BRAND, "deleteSegmentAutomation": BRAND, "rotateWebhookSecret": TENANT_WIDE,
    # campaigns and delivery
    "createCampaign": BRAND, "updateCampaign": BRAND, "deleteCampaign": BRAND, "scheduleCampaign": BRAND,
    "unscheduleCampaign": BRAND, "launchCampaign": BRAND, "pauseCampaign": BRAND, "resumeCampaign": BRAND,
    "cancelCampaign": BRAND, "setDeliveryProvider": BRAND, "removeDeliveryProvider": BRAND,
    "updateMessagingSettings": BRAND, "removeSuppression": BRAND,
    # conversations
    "startConversation": BRAND, "replyToConversation": BRAND, "addConversationNote": BRAND,
    "receiveChatMessage": BRAND, "assignConversation": BRAND, "setConversationStatus": BRAND,
    "snoozeConversation": BRAND, "setConversationPriority": BRAND, "labelConversation": BRAND,
    "unlabelConversation": BRAND, "markConversationRead": BRAND, "createConversationLabel": BRAND,
    "createCannedResponse": BRAND, "updateCannedResponse": BRAND, "deleteCannedResponse": BRAND,
    # jobs
    "importCustomers": BRAND, "importOrders": BRAND, "rebuildProfiles": TENANT_WIDE, "exportTimeline": KNOWN,
    # client apps
    "createClientApp": TENANT_WIDE, "updateClientApp": TENANT_WIDE, "deleteClientApp": TENANT_WIDE,
    "assignApiKeysToClientApp": TENANT_WIDE, "uploadTrustedDocuments": TENANT_WIDE, "removeTrustedDocuments": TENANT_WIDE,
    # AI settings (the copilot module)
    "setAiConnection": TENANT_WIDE, "testAiConnection": TENANT_WIDE, "removeAiConnection": TENANT_WIDE,
    "updateAiSettings": TENANT_WIDE, "rewriteText": BRAND, "draftCampaignCopy": BRAND, "suggestReply": BRAND,
    "summarizeConversation": BRAND, "draftSegment": BRAND, "summarizeCustomer": BRAND,
    "designWithCanva": BRAND,
}


def schema_mutations() -> set[str]:
    from graph.schema import build_schema

    return set(build_schema()._schema.mutation_type.fields)


def test_every_mutation_is_classified() -> None:
    """A new mutation fails here until it is classified (and documented in docs/security.md)."""
    mutations = schema_mutations()
    assert mutations, "the schema has no mutations?"
    assert sorted(mutations - set(SCOPES)) == [], "classify these mutations in SCOPES"
    assert sorted(set(SCOPES) - mutations) == [], "these mutations are gone from the schema"


def test_the_documented_list_is_the_tested_one() -> None:
    text = (ROOT / "docs" / "security.md").read_text()
    section = text.split("## Tenant-wide actions", 1)[1].split("\n## ", 1)[0]
    documented = {}
    for name, scope in re.findall(r"^\| `(\w+)` \| ([^|]+?) \|", section, re.M):
        documented[name] = {"tenant-wide: refused": TENANT_WIDE, "brand": BRAND,
                            "known customers": KNOWN, "own membership": OWN}.get(scope.strip(), scope.strip())
    assert documented == SCOPES


def test_the_policy_refuses_every_tenant_wide_action_to_a_brand_limited_principal() -> None:
    """The actions behind the tenant-wide mutations are the policy's TENANT_WIDE set."""
    from domain.errors import PermissionDenied
    from domain.tenancy.policies import TENANT_WIDE as POLICY
    from domain.tenancy.policies import Action, Principal, PrincipalKind, Role, authorize

    assert {c.action for c in TENANT_WIDE_CALLS} == {a.value for a in POLICY}
    everywhere = Principal(uuid.uuid4(), PrincipalKind.API_KEY, uuid.uuid4(), Role.ADMIN, "k", None)
    limited = Principal(uuid.uuid4(), PrincipalKind.API_KEY, uuid.uuid4(), Role.ADMIN, "k", frozenset({uuid.uuid4()}))
    for action in Action:
        authorize(everywhere, action)
        if action in POLICY:
            with pytest.raises(PermissionDenied, match="concerns every brand"):
                authorize(limited, action)
        else:
            authorize(limited, action)
    # and viewer.permissions does not offer them to the limited principal
    assert limited.actions == frozenset(Action) - POLICY
    assert everywhere.actions == frozenset(Action)


# --- the tenant, as the calls see it ---------------------------------------------------------


@dataclass
class World:
    """Tenant A: the customer shop of test_customers_isolation (customers of brand a, of brand b
    and of both; tag VIP on ``both`` and ``only_b``), and people and keys to aim at."""

    shop: customers.Shop
    limited_member: uuid.UUID  # a marketer limited to brand "a"
    b_member: uuid.UUID  # a marketer limited to brand "b"
    ab_member: uuid.UUID  # a marketer limited to brands "a" and "b"
    a_key: uuid.UUID  # an analyst key limited to brand "a"
    static: dict[str, uuid.UUID]  # a static segment per brand
    automation: dict[str, uuid.UUID]  # an automation per brand
    client_app: uuid.UUID | None = None  # a client app whose current manifest lists CURRENT_DOC, not OLD_DOC

    @property
    def t(self) -> TenantFixture:
        return self.shop.t

    def brand(self, name: str) -> str:
        return self.t.brand_gid(name)

    def tag(self, name: str = "vip") -> str:
        return gid("Tag", getattr(self.shop, name))


async def make_world(t: TenantFixture) -> World:
    from domain.automations import service as automations
    from domain.segments.models import SegmentKind
    from domain.segments.service import create_segment

    shop = await customers.make_shop(t, full=False)
    limited, _ = await t.member("marketer", brands=["a"])
    b_member, _ = await t.member("marketer", brands=["b"])
    ab_member, _ = await t.member("marketer", brands=["a", "b"])
    a_key, _ = await t.api_key("analyst", brands=["a"])
    static, automation = {}, {}
    for side in ("a", "b"):
        seg = await create_segment(t.owner, t.brands[side], SegmentKind.STATIC, {"name": f"Picked {side}"})
        static[side] = seg.id
        made = await automations.create_automation(t.owner, seg.id, f"Tag {side}", "enter", "add_tag",
                                                   {"tag_id": str(shop.spare)})
        automation[side] = made.id
    from domain.clients import service as clients

    app = await clients.create_client_app(t.owner, "Partner")
    await clients.upload_manifest(t.owner, app.app.id, {_sha(OLD_DOC): OLD_DOC, _sha(CURRENT_DOC): CURRENT_DOC})
    await clients.upload_manifest(t.owner, app.app.id, {_sha(CURRENT_DOC): CURRENT_DOC})
    from domain.ai import service as ai_service
    from domain.tenancy.tenants import set_feature

    await set_feature(t.slug, "copilot", True)  # AI settings belong to the copilot module
    await ai_service.set_connection(t.owner, "openai", credentials={"api_key": "sk-tenant-wide-0123456789"})
    return World(shop, limited, b_member, ab_member, a_key, static, automation, app.app.id)


OLD_DOC, CURRENT_DOC, NEW_DOC = "query Old { viewer { role } }", "query Current { brands { id } }", "query New { tags { id } }"


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
async def world(tenant: TenantFixture) -> World:
    return await make_world(tenant)


VOLATILE = {"api_keys": {"last_used_at"}}  # written when a key is used, whatever it asks
# messages on their way out, emptied by the relay at its own pace; API use counted per consumer
# and hour (every request counts, a refused one too: what it asked for did not happen)
TRANSPORT = {"outbox", "api_usage"}


async def everything(t: TenantFixture) -> dict[str, list[str]]:
    """Every row of every tenant-owned table (and the tenant's own row), as row-level security
    lets the tenant see them, once live segment evaluation of earlier changes has settled (its
    queue empties on its own time)."""
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    await settle(t.id)
    out: dict[str, list[str]] = {}
    async with tenant_session(t.id) as s:
        tables = list((await s.execute(text("""
            SELECT c.relname FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace
              JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
             WHERE n.nspname = ANY (current_schemas(false)) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
               AND has_table_privilege(c.oid, 'SELECT')
             ORDER BY 1"""))).scalars())
        assert {"brands", "tags", "customer_tags", "custom_attributes", "jobs", "api_keys"} <= set(tables), tables
        for table in [*(name for name in tables if name not in TRANSPORT), "tenants"]:
            column = "id" if table == "tenants" else "tenant_id"
            rows = (await s.execute(text(f"SELECT * FROM {table} WHERE {column} = :t"), {"t": t.id})).mappings()
            skip = VOLATILE.get(table, set())
            out[table] = sorted(json.dumps({k: str(v) for k, v in row.items() if k not in skip}, sort_keys=True)
                                for row in rows)
    return out


def changed(before: dict[str, list[str]], after: dict[str, list[str]]) -> set[str]:
    return {t for t in before.keys() | after.keys() if before.get(t) != after.get(t)}


# --- calls -------------------------------------------------------------------------------------

ERRORS = "errors { field code message }"


@dataclass(frozen=True)
class Call:
    """One mutation: its document, variables (a brand-limited principal's, aimed at brand "a" or
    at no brand), the payload field that holds its object, and the tables a success changes."""

    name: str
    doc: str
    variables: Callable[[World], dict[str, Any]]
    result: str | None
    tables: frozenset[str]
    action: str = ""  # the policy action (tenant-wide calls)
    upload: bytes | None = None

    def __str__(self) -> str:
        return self.name


def _m(name: str, params: str, args: str, result: str | None) -> str:
    head = f"mutation({params}) " if params else "mutation "
    return f"{head}{{ {name}{f'({args})' if args else ''} {{ {result or ''} {ERRORS} }} }}"


def call(name: str, params: str, args: str, result: str | None, select: str, variables: Callable[[World], dict],
         tables: set[str], action: str = "", upload: bytes | None = None) -> Call:
    return Call(name, _m(name, params, args, f"{result} {select}" if result else None), variables,
                result, frozenset(tables), action, upload)


TENANT_WIDE_CALLS: list[Call] = [
    call("createBrand", "$input: CreateBrandInput!", "input: $input", "brand", "{ id }",
         lambda w: {"input": {"name": "Brand New", "slug": f"brand-new-{uuid.uuid4().hex[:6]}"}},
         {"brands"}, "brand:create"),
    call("createTag", "$input: TagInput!", "input: $input", "tag", "{ id }",
         lambda w: {"input": {"name": "Fresh"}}, {"tags"}, "tag:manage"),
    call("updateTag", "$input: UpdateTagInput!", "input: $input", "tag", "{ id name }",
         lambda w: {"input": {"id": w.tag(), "name": "Renamed"}}, {"tags"}, "tag:manage"),
    # VIP is on "both" and on "only_b", a customer brand a does not know
    call("deleteTag", "$id: ID!", "input: {id: $id}", "tag", "{ id }",
         lambda w: {"id": w.tag()}, {"tags", "customer_tags"}, "tag:manage"),
    call("declareCustomAttribute", "$input: DeclareCustomAttributeInput!", "input: $input", "customAttribute",
         "{ name }", lambda w: {"input": {"name": "loyalty_tier", "type": "STRING"}}, {"custom_attributes"},
         "tag:manage"),
    call("rebuildProfiles", "", "", "job", "{ id kind result }", lambda w: {}, {"jobs"}, "profile:rebuild"),
    call("rotateWebhookSecret", "", "", "secret", "", lambda w: {}, {"tenants"}, "webhook_secret:rotate"),
    call("addMember", "$input: AddMemberInput!", "input: $input", "member", "{ id }",
         lambda w: {"input": {"email": f"new-{uuid.uuid4().hex[:6]}@{w.t.slug}.test", "role": "ANALYST",
                              "brandIds": [w.brand("a")]}}, {"memberships"}, "member:manage"),
    call("changeMemberRole", "$u: ID!, $r: Role!", "input: {userId: $u, role: $r}", "member", "{ id role }",
         lambda w: {"u": gid("Member", w.limited_member), "r": "AGENT"}, {"memberships"}, "member:manage"),
    call("removeMember", "$u: ID!", "input: {userId: $u}", "member", "{ id }",
         lambda w: {"u": gid("Member", w.limited_member)}, {"memberships"}, "member:manage"),
    call("grantBrandAccess", "$u: ID!, $b: ID!", "input: {userId: $u, brandId: $b}", "member", "{ id }",
         lambda w: {"u": gid("Member", w.b_member), "b": w.brand("a")}, {"brand_grants"}, "member:manage"),
    call("revokeBrandAccess", "$u: ID!, $b: ID!", "input: {userId: $u, brandId: $b}", "member", "{ id }",
         lambda w: {"u": gid("Member", w.ab_member), "b": w.brand("a")}, {"brand_grants"}, "member:manage"),
    call("createApiKey", "$input: CreateApiKeyInput!", "input: $input", "apiKey", "{ id }",
         lambda w: {"input": {"name": "integration", "role": "ANALYST", "brandIds": [w.brand("a")]}},
         {"api_keys"}, "api_key:manage"),
    call("revokeApiKey", "$id: ID!", "input: {id: $id}", "apiKey", "{ id }",
         lambda w: {"id": gid("ApiKey", w.a_key)}, {"api_keys"}, "api_key:manage"),
    call("createClientApp", "$input: CreateClientAppInput!", "input: $input", "clientApp", "{ id }",
         lambda w: {"input": {"name": "Partner", "persistedOnly": True}}, {"client_apps"}, "client_app:manage"),
    call("updateClientApp", "$input: UpdateClientAppInput!", "input: $input", "clientApp", "{ id }",
         lambda w: {"input": {"id": gid("ClientApp", w.client_app), "persistedOnly": True}}, {"client_apps"},
         "client_app:manage"),
    call("assignApiKeysToClientApp", "$input: AssignApiKeysInput!", "input: $input", "clientApp", "{ id }",
         lambda w: {"input": {"clientAppId": gid("ClientApp", w.client_app), "apiKeyIds": [gid("ApiKey", w.a_key)]}},
         {"api_keys"}, "client_app:manage"),
    call("uploadTrustedDocuments", "$input: UploadTrustedDocumentsInput!", "input: $input", "manifest", "{ version }",
         lambda w: {"input": {"clientAppId": gid("ClientApp", w.client_app),
                              "manifest": {_sha(NEW_DOC): NEW_DOC, _sha(CURRENT_DOC): CURRENT_DOC}}},
         {"trusted_documents", "trusted_manifests"}, "client_app:manage"),
    call("removeTrustedDocuments", "$input: RemoveTrustedDocumentsInput!", "input: $input", "removedIds", "",
         lambda w: {"input": {"clientAppId": gid("ClientApp", w.client_app), "documentIds": [f"sha256:{_sha(OLD_DOC)}"]}},
         {"trusted_documents"}, "client_app:manage"),
    call("deleteClientApp", "$input: DeleteClientAppInput!", "input: $input", "deletedId", "",
         lambda w: {"input": {"id": gid("ClientApp", w.client_app)}},
         {"client_apps", "trusted_documents", "trusted_manifests"}, "client_app:manage"),
    call("setAiConnection", "$input: SetAiConnectionInput!", "input: $input", "connection", "{ provider }",
         lambda w: {"input": {"provider": "ANTHROPIC", "apiKey": "sk-ant-tenant-wide-0123456789"}},
         {"ai_connections"}, "ai_settings:manage"),
    # the session's API reaches no AI provider: the test records UNREACHABLE
    call("testAiConnection", "$input: AiProviderInput!", "input: $input", "connection", "{ lastTest { status } }",
         lambda w: {"input": {"provider": "OPENAI"}}, {"ai_connections"}, "ai_settings:manage"),
    call("removeAiConnection", "$input: AiProviderInput!", "input: $input", "removedProvider", "",
         lambda w: {"input": {"provider": "OPENAI"}}, {"ai_connections"}, "ai_settings:manage"),
    call("updateAiSettings", "$input: UpdateAiSettingsInput!", "input: $input", "settings", "{ default { model } }",
         lambda w: {"input": {"default": {"provider": "OPENAI", "model": "gpt-4.1"}}}, {"ai_settings"},
         "ai_settings:manage"),
]

# brand-scoped mutations the isolation tests have no brand-limited row for: (call, the same aimed at brand b)
MEMBERS_CSV = b"email\nboth@%s.test\n"


def _automation_input(w: World, side: str) -> dict[str, Any]:
    return {"i": {"segmentId": gid("Segment", w.static[side]), "name": "New", "trigger": "ENTER",
                  "action": "ADD_TAG", "config": {"tagId": w.tag("spare")}}}


BRAND_CALLS: list[tuple[Call, Callable[[World, str], dict[str, Any]], str]] = [
    (call("createSegmentAutomation", "$i: CreateSegmentAutomationInput!", "input: $i", "automation", "{ id }",
          lambda w: _automation_input(w, "a"), {"segment_automations"}),
     _automation_input, "input.segmentId"),
    (call("updateSegmentAutomation", "$i: UpdateSegmentAutomationInput!", "input: $i", "automation",
          "{ id isActive }", lambda w: {"i": {"id": gid("SegmentAutomation", w.automation["a"]), "isActive": False}},
          {"segment_automations"}),
     lambda w, side: {"i": {"id": gid("SegmentAutomation", w.automation[side]), "isActive": False}}, "input.id"),
    (call("deleteSegmentAutomation", "$id: ID!", "input: {id: $id}", "deletedId", "",
          lambda w: {"id": gid("SegmentAutomation", w.automation["a"])}, {"segment_automations"}),
     lambda w, side: {"id": gid("SegmentAutomation", w.automation[side])}, "input.id"),
    (call("importSegmentMembers", "$s: ID!, $file: Upload!", "input: {segmentId: $s, file: $file}", "job", "{ id kind }",
          lambda w: {"s": gid("Segment", w.static["a"])}, {"jobs", "job_files"}, upload=b"email\nx@example.com\n"),
     lambda w, side: {"s": gid("Segment", w.static[side])}, "input.segmentId"),
]


async def run(api: Api, c: Call, variables: dict[str, Any], token: str) -> dict[str, Any]:
    return await customers.run_write(api, c, variables, token)  # type: ignore[arg-type]


def assert_refused(payload: dict[str, Any], c: Call, expected: tuple[str | None, str]) -> None:
    assert [(e["field"], e["code"]) for e in payload["errors"]] == [expected], payload
    if c.result is not None:
        assert payload[c.result] is None, payload


def assert_done(payload: dict[str, Any], c: Call) -> None:
    assert payload["errors"] == [], payload
    if c.result is not None:
        assert payload[c.result] is not None, payload


# the brand-limited principals: (role, api key?); the admin key holds every action of its role
LIMITED = ["admin-key", "marketer", "marketer-key"]


async def principal(t: TenantFixture, kind: str, brands: list[str] | None) -> str:
    role, _, key = kind.partition("-")
    return (await t.api_key(role, brands=brands))[1] if key else (await t.member(role, brands=brands))[1]


def role_may(kind: str, action: str) -> bool:
    from domain.tenancy.policies import ROLE_ACTIONS, Action, Role

    return Action(action) in ROLE_ACTIONS[Role(kind.partition("-")[0])]


@pytest.mark.parametrize("kind", LIMITED)
@pytest.mark.parametrize("c", TENANT_WIDE_CALLS, ids=str)
async def test_brand_limited_principal_is_refused_tenant_wide_actions(
    api: Api, world: World, kind: str, c: Call
) -> None:
    t = world.t
    token = await principal(t, kind, ["a"])
    variables = c.variables(world)
    before = await everything(t)
    result = await run(api, c, variables, token)
    assert_refused(result, c, (None, "FORBIDDEN"))
    if role_may(kind, c.action):  # refused for the brand limit, not for the role
        assert "concerns every brand" in result["errors"][0]["message"], result
    assert changed(before, await everything(t)) == set(), "a refused tenant-wide action wrote"
    # control: a principal that sees every brand (of the same role, when the role may) does it
    control = await principal(t, kind, None) if role_may(kind, c.action) else t.owner_token
    done = await run(api, c, variables, control)
    assert_done(done, c)
    assert c.tables <= changed(before, await everything(t)), c.tables


async def test_deleting_a_tenant_wide_tag_reaches_customers_of_other_brands(api: Api, world: World) -> None:
    """Why deleteTag is tenant-wide: the tag is on a customer only brand b knows."""
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    async def holders() -> set[uuid.UUID]:
        async with tenant_session(world.t.id) as s:
            return set((await s.execute(text("SELECT customer_id FROM customer_tags WHERE tag_id = :t"),
                                        {"t": world.shop.vip})).scalars())

    assert await holders() == {world.shop.both, world.shop.only_b}
    token = await principal(world.t, "admin-key", ["a"])
    c = TENANT_WIDE_CALLS[3]
    assert_refused(await run(api, c, c.variables(world), token), c, (None, "FORBIDDEN"))
    assert await holders() == {world.shop.both, world.shop.only_b}
    assert_done(await run(api, c, c.variables(world), world.t.owner_token), c)
    assert await holders() == set()


async def test_viewer_permissions_leave_out_tenant_wide_actions_for_a_brand_limited_key(
    api: Api, tenant: TenantFixture
) -> None:
    query = "{ viewer { allBrands permissions } }"
    everywhere = (await api.data(query, token=await principal(tenant, "admin-key", None)))["viewer"]
    limited = (await api.data(query, token=await principal(tenant, "admin-key", ["a"])))["viewer"]
    assert everywhere["allBrands"] is True and limited["allBrands"] is False
    wide = {"BRAND_CREATE", "TAG_MANAGE", "PROFILE_REBUILD", "WEBHOOK_SECRET_ROTATE", "MEMBER_MANAGE",
            "API_KEY_MANAGE", "CLIENT_APP_MANAGE", "AI_SETTINGS_MANAGE"}
    assert wide <= set(everywhere["permissions"])
    assert set(everywhere["permissions"]) - set(limited["permissions"]) == wide


@pytest.mark.parametrize(("c", "aimed", "field"), BRAND_CALLS, ids=[str(c) for c, _, _ in BRAND_CALLS])
async def test_brand_limited_principal_changes_nothing_of_brand_b(
    api: Api, world: World, c: Call, aimed: Callable[[World, str], dict[str, Any]], field: str
) -> None:
    t = world.t
    token = await principal(t, "admin-key", ["a"])
    before = await everything(t)
    result = await run(api, c, aimed(world, "b"), token)
    assert_refused(result, c, (field, "NOT_FOUND"))
    assert changed(before, await everything(t)) == set()
    # control: the same principal, on brand a
    assert_done(await run(api, c, aimed(world, "a"), token), c)
    assert c.tables <= changed(before, await everything(t)), c.tables


# --- the caller's own membership ----------------------------------------------------------------

ACCEPT = _m("acceptInvitation", "", "", "member { id status }")


async def test_accepting_an_invitation_changes_only_the_callers_membership(api: Api, world: World) -> None:
    """An invited marketer limited to brand a accepts: its own membership becomes active, and
    nothing else of the tenant changes. A brand-limited principal cannot accept for anyone."""
    from domain.tenancy import members
    from domain.tenancy.auth import mint_token

    t = world.t
    email = f"invited-{uuid.uuid4().hex[:8]}@{t.slug}.test"
    invited = await members.add_member(t.owner, email, "marketer", brand_ids=[t.brands["a"]])
    token = mint_token(t.id, invited.user_id, email)
    key = await principal(t, "admin-key", ["a"])
    before = await everything(t)
    refused = (await api.data(ACCEPT, token=key))["acceptInvitation"]  # not the key's own invitation
    assert refused["member"] is None and [e["code"] for e in refused["errors"]] == ["INVALID_STATE"], refused
    assert changed(before, await everything(t)) == set()
    accepted = (await api.data(ACCEPT, token=token))["acceptInvitation"]
    assert accepted["errors"] == [] and accepted["member"] == {"id": gid("Member", invited.id), "status": "ACTIVE"}
    after = await everything(t)
    assert changed(before, after) <= {"memberships", "audit_log"}
    rows = set(before["memberships"]) ^ set(after["memberships"])
    assert {json.loads(r)["id"] for r in rows} == {str(invited.id)}, rows


# --- imports: tags are tenant-wide there too ---------------------------------------------------


async def test_a_brand_limited_import_assigns_existing_tags_and_creates_none(
    api: Api, world: World, worker: Any
) -> None:
    shop = world.shop
    csv = (f"email,tags\nnew-1@{shop.t.slug}.test,VIP\nnew-2@{shop.t.slug}.test,Brand New Tag\n"
           f"new-3@{shop.t.slug}.test,\n").encode()
    doc = customers.IMPORT_CUSTOMERS
    c = Call("importCustomers", doc, lambda w: {"brandId": w.brand("a")}, "job", frozenset(), upload=csv)

    async def tags() -> list[str]:
        return sorted(t["name"] for t in (await api.data("{ tags { name } }", token=shop.token))["tags"])

    assert await tags() == ["Spare", "VIP"]
    token = await principal(shop.t, "marketer", ["a"])
    started = await run(api, c, c.variables(world), token)
    assert_done(started, c)
    job = await customers.wait_job(api, token, started["job"]["id"])
    assert job["result"]["created"] == 2, job
    assert job["result"]["rejected"] == 1, job
    assert [(e["line"], e["field"]) for e in job["result"]["errors"]] == [(3, "tags")], job
    assert await tags() == ["Spare", "VIP"]  # nothing new
    vip = (await api.data("query($t: [ID!]) { customers(tagIds: $t, first: 100) { edges { node { email } } } }",
                          {"t": [world.tag()]}, token=shop.token))["customers"]
    assert f"new-1@{shop.t.slug}.test" in json.dumps(vip)
    # control: the same file, by the owner, creates the tag
    started = await run(api, c, c.variables(world), shop.token)
    job = await customers.wait_job(api, shop.token, started["job"]["id"])
    assert job["result"]["rejected"] == 0, job
    assert await tags() == ["Brand New Tag", "Spare", "VIP"]


# --- every brand-scoped mutation has a brand-limited row somewhere ----------------------------


def brand_limited_rows() -> dict[str, str]:
    """Mutation -> the test that aims it, as a brand-limited principal, at brand b."""
    out: dict[str, str] = {}
    for op, _ in isolation.BRAND_SCOPED:
        out.setdefault(op.name, "tenancy/test_isolation.py::"
                                "test_brand_limited_admin_key_cannot_change_brand_b")
    for row in customers.LIMITED_WRITES:
        out.setdefault(row[1].name, "customers/test_customers_isolation.py::"
                                    "test_brand_limited_principal_touches_nothing_only_brand_b_knows")
    for w in segments.BRAND_WRITES:
        out.setdefault(w.op, "segments/test_segments_isolation.py::"
                             "test_brand_limited_principal_cannot_touch_brand_b")
    for w in campaigns.WRITES:
        out.setdefault(w.name, "campaigns/test_campaigns_isolation.py::"
                               "test_brand_limited_principal_cannot_touch_brand_b")
    for w in conversations.WRITES:
        out.setdefault(w.op, "conversations/test_conversations_isolation.py::"
                             "test_brand_limited_principal_cannot_touch_brand_b")
    for w in ai.BRAND_WRITES:
        out.setdefault(w.name, "ai/test_ai_isolation.py::test_brand_limited_principal_drafts_nothing_of_brand_b")
    for c, _, _ in BRAND_CALLS:
        out.setdefault(c.name, "tenancy/test_tenant_wide_actions.py::"
                               "test_brand_limited_principal_changes_nothing_of_brand_b")
    for name in ("setCustomerOverride", "setCustomerRelationship"):
        out.setdefault(name, "offers/test_overrides.py::"
                             "test_only_owners_and_admins_override_and_only_visible_customers")
    for name in ("createSegmentFromRecommendations", "setRecommendationWeights"):
        out.setdefault(name, "offers/test_recommendations.py::test_a_member_of_another_brand_sees_and_changes_nothing")
    for name in ("createAlertRule", "deleteAlertRule", "markAlertsRead"):
        out.setdefault(name, "offers/test_alerts.py::test_another_tenant_or_brand_or_role_sees_and_changes_no_alerts")
    out.setdefault("acceptInvitation", "tenancy/test_tenant_wide_actions.py::"
                                       "test_accepting_an_invitation_changes_only_the_callers_membership")
    return out


def test_every_brand_scoped_mutation_has_a_brand_limited_row() -> None:
    rows = brand_limited_rows()
    missing = sorted(name for name, scope in SCOPES.items() if scope != TENANT_WIDE and name not in rows)
    assert missing == [], "add a brand-limited row (aimed at brand b, effects checked) for these"
    assert {c.name for c in TENANT_WIDE_CALLS} == {n for n, s in SCOPES.items() if s == TENANT_WIDE}
