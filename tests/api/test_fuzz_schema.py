"""Schema-driven fuzzing: every query and mutation, generated arguments, never an internal error.

The schema is read from the running API (introspection is on in tests). For each field of Query
and Mutation the test sends ``FUZZ_CASES`` (default 2) generated calls to the real API process:
every argument and input field gets a value of its type, most of them plausible (real ids of the
tenant, sensible text) so the call reaches the product, some hostile (NUL and over-long text,
lone surrogates, template syntax, extreme and negative numbers, malformed ids, another tenant's
ids, ids of the wrong type, empty and 1,001-item lists, deep and oddly shaped JSON, recursive
inputs nested deep, impossible dates). Calls go as the owner, a brand-limited admin key, or with
an active brand. Any 5xx, any ``INTERNAL_SERVER_ERROR`` or masked message, or a traceback in the
API log fails the test.

The sample is seeded: the seed is printed and in the failure message. ``FUZZ_SEED=<n>`` replays a
run (the default is one fixed seed, so every run of the suite sends the same calls;
``FUZZ_SEED=random`` draws a new one), ``FUZZ_CASES=<n>`` makes a longer sweep (for example ``FUZZ_CASES=50``), ``FUZZ_DEBUG=1``
prints why each refused call was refused (to keep the generator reaching the product).
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
    Undefined,
    build_client_schema,
    get_introspection_query,
    get_named_type,
)

from conftest import DATA_DIR, Api, TenantFixture, create_tenant_fixture, gid
from support.graphql import post_json

# a fixed default keeps every run of the suite the same; FUZZ_SEED=random draws a new sample
_SEED = os.environ.get("FUZZ_SEED") or "810570423"
SEED = random.SystemRandom().randrange(2**32) if _SEED == "random" else int(_SEED)
CASES = int(os.environ.get("FUZZ_CASES") or 2)
SKIP = {"importCustomers", "importOrders", "importSegmentMembers"}  # file uploads: multipart, tested elsewhere

HOSTILE_TEXT = ["", " ", "a\x00b", "x" * 10_000, "\ud800", "ünïcødé 🎉 ﷽", "'; drop table customers; --",
                "%_\\", "{{ customer.first_name }}", "{% for x in y %}{% endfor %}", "{{", "1e999", "-1",
                "<script>alert(1)</script>", "\n\t\r", "null", "#zzzzzz", "+0", "a@", "@b", "Europe/Nowhere"]
PLAUSIBLE_TEXT = {"email": ["fuzz@example.test", "FUZZ+1@Example.TEST"], "currency": ["EUR", "USD"],
                  "slug": ["fuzz-slug", "b2"], "color": ["#10b981"], "timezone": ["Europe/Paris", "UTC"],
                  "phone": ["+33612345678"], "url": ["https://example.test/hook"], "sku": ["MUG", "TEE-1"],
                  "locale": ["fr-FR", "en"], "country": ["FR"], "shortcode": ["hello"], "name": ["Fuzz name"],
                  "field": ["first_name", "total_spent_cents", "city"], "operator": ["eq", "gte", "in"]}
DATES = ["2026-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "not a date",
         "2026-02-30T00:00:00Z", "2026-01-01T00:00:00+14:00", "1970-01-01T00:00:00Z", ""]


def deep_json(depth: int) -> Any:
    value: Any = "leaf"
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


HOSTILE_JSON = [{}, [], "x", 1, -1, 1e308, True, deep_json(200), {"k" * 1000: "v"}, list(range(2000)),
                {"": None}, {"a": {"b": {"c": [1, {"d": "\x00"}]}}}, {"$where": "1"}, {"eq": [1, "a", None]}]
INTS = [0, 1, -1, 2, 100, 2**31 - 1, -(2**31), 2**31, 2**63, 1_000_000]
BIGINTS = [0, 1, -1, 2**63 - 1, -(2**63), 2**63, 10**30, 999]
FLOATS = [0.0, -1.0, 1e308, -1e308, 3.14, 1e-308, 0.5]


@dataclass
class Ids:
    """Global ids seen in responses, by type name: the fuzzed tenant's and another tenant's."""

    own: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    foreign: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    @staticmethod
    def harvest(body: Any, into: dict[str, list[str]]) -> None:
        for text in re.findall(r'"([A-Za-z0-9+/=]{20,})"', json.dumps(body)):
            try:
                type_name, raw = base64.b64decode(text, validate=True).decode().split(":", 1)
                uuid.UUID(raw)
            except (ValueError, UnicodeDecodeError):
                continue
            if text not in into[type_name]:
                into[type_name].append(text)


def type_for(arg_name: str) -> str | None:
    """The node type an id argument names: customerId -> Customer, labelIds -> ConversationLabel."""
    base = re.sub(r"Ids?$", "", arg_name)
    if not base:
        return None
    name = base[0].upper() + base[1:]
    return {"Label": "ConversationLabel", "User": "Member", "Assignee": "Member", "Excluded": "Segment",
            "ExcludedSegment": "Segment", "Included": "Segment"}.get(name, name)


class Generator:
    def __init__(self, schema: GraphQLSchema, rng: random.Random, ids: Ids) -> None:
        self.schema, self.rng, self.ids = schema, rng, ids
        self.hostile = 0.3

    def bad(self) -> bool:
        return self.rng.random() < self.hostile

    def value(self, type_: Any, name: str, depth: int = 0) -> Any:
        rng = self.rng
        if isinstance(type_, GraphQLNonNull):
            return self.value(type_.of_type, name, depth)
        if isinstance(type_, GraphQLList):
            roll = rng.random()
            if roll < 0.15:
                return []
            if roll < 0.2 and self.bad():
                n = 1001
            else:
                n = rng.choice((1, 1, 2, 3))
            return [self.value(type_.of_type, name, depth + 1) for _ in range(n)]
        if isinstance(type_, GraphQLEnumType):
            values = list(type_.values)
            return "NOPE" if self.bad() and rng.random() < 0.2 else rng.choice(values)
        if isinstance(type_, GraphQLInputObjectType):
            return self.input_object(type_, depth)
        assert isinstance(type_, GraphQLScalarType), type_
        return self.scalar(type_.name, name)

    def input_object(self, type_: GraphQLInputObjectType, depth: int) -> dict[str, Any]:
        rng, fields = self.rng, type_.fields
        if type_.is_one_of:
            chosen = rng.sample(list(fields), 2 if self.bad() and rng.random() < 0.1 and len(fields) > 1 else 1)
            return {f: self.value(fields[f].type, f, depth + 1) for f in chosen}
        out: dict[str, Any] = {}
        recursive_deep = depth < 40 and self.bad() and rng.random() < 0.3
        for fname, f in fields.items():
            required = isinstance(f.type, GraphQLNonNull) and f.default_value is Undefined
            if not required:
                if depth > 4 and not (recursive_deep and get_named_type(f.type) is type_):
                    continue
                if rng.random() < 0.45:
                    continue
                if rng.random() < 0.1:
                    out[fname] = None
                    continue
            out[fname] = self.value(f.type, fname, depth + 1)
        return out

    def scalar(self, type_name: str, name: str) -> Any:
        rng, bad = self.rng, self.bad()
        if type_name == "ID":
            return self.id_value(name, bad)
        if type_name == "String":
            if bad:
                return rng.choice(HOSTILE_TEXT)
            key = next((k for k in PLAUSIBLE_TEXT if k in name.lower()), None)
            return rng.choice(PLAUSIBLE_TEXT[key]) if key else rng.choice(["fuzz", "Fuzz text", "a", "x y z"])
        if type_name == "Int":
            return rng.choice(INTS) if bad else rng.randint(0, 50)
        if type_name == "BigInt":
            return rng.choice(BIGINTS) if bad else rng.randint(0, 100_000)
        if type_name == "Float":
            return rng.choice(FLOATS) if bad else rng.random()
        if type_name == "Boolean":
            return rng.random() < 0.5
        if type_name == "DateTime":
            return rng.choice(DATES) if bad else rng.choice(DATES[:1] + ["2025-06-01T12:00:00Z"])
        if type_name == "Date":
            return rng.choice(["0001-01-01", "9999-12-31", "1990-13-45", "", "2026-02-29"]) if bad else "1990-05-17"
        if type_name == "Time":
            return rng.choice(["25:00", "x", "23:59:59.999999", ""]) if bad else "09:30"
        if type_name == "JSON":
            return rng.choice(HOSTILE_JSON) if bad else rng.choice([{}, {"plan": "gold", "visits": 3}])
        if type_name == "Upload":
            return None
        return rng.choice(HOSTILE_TEXT)

    def id_value(self, name: str, bad: bool) -> str:
        rng = self.rng
        wanted = type_for(name)
        own = self.ids.own.get(wanted or "", []) or [i for v in self.ids.own.values() for i in v]
        if not bad:
            return rng.choice(own)
        foreign = self.ids.foreign.get(wanted or "", []) or [i for v in self.ids.foreign.values() for i in v]
        any_type = rng.choice(list(self.ids.own))
        return rng.choice([
            rng.choice(foreign),  # another tenant's object
            gid(wanted or "Customer", uuid.uuid4()),  # unknown
            rng.choice(self.ids.own[any_type]),  # maybe the wrong type
            "not-an-id", "", "a\x00b", str(uuid.uuid4()), base64.b64encode(b"Customer:not-a-uuid").decode(),
            base64.b64encode(f"Nope:{uuid.uuid4()}".encode()).decode(), "x" * 5000,
        ])


def selection(type_: Any, depth: int = 0) -> str:
    """A selection of the fields that take no required argument, a few levels deep."""
    named = get_named_type(type_)
    if isinstance(named, (GraphQLScalarType, GraphQLEnumType)):
        return ""
    if isinstance(named, GraphQLUnionType) or depth >= 3:
        return "{ __typename }"
    parts = ["__typename"]
    if isinstance(named, (GraphQLObjectType, GraphQLInterfaceType)):
        for fname, f in named.fields.items():
            if any(isinstance(a.type, GraphQLNonNull) and a.default_value is Undefined for a in f.args.values()):
                continue
            inner = get_named_type(f.type)
            if isinstance(inner, (GraphQLScalarType, GraphQLEnumType)):
                parts.append(fname)
            elif sum(" " in p for p in parts) < (10, 4, 2)[depth]:
                parts.append(f"{fname} {selection(f.type, depth + 1)}")
    return "{ " + " ".join(parts) + " }"


def document(kind: str, name: str, f: Any, args: dict[str, Any]) -> str:
    params = ", ".join(f"${a}: {f.args[a].type}" for a in args)
    call = ", ".join(f"{a}: ${a}" for a in args)
    head = f"{kind}({params})" if params else kind
    return f"{head} {{ {name}{f'({call})' if call else ''} {selection(f.type)} }}"


SEED_DATA = [
    ("mutation($b: ID!) { createTag(input: {name: \"Fuzz tag\"}) { tag { id } } "
     "upsertCustomer(input: {brandId: $b, email: \"fuzz@example.test\", firstName: \"Fuzz\"}) { customer { id } } "
     "createConversationLabel(input: {brandId: $b, name: \"Fuzz\"}) { label { id } } "
     "createCannedResponse(input: {brandId: $b, shortcode: \"fuzz\", title: \"Fuzz\", body: \"Hi\"}) "
     "{ cannedResponse { id } } "
     "createSegment(input: {brandId: $b, name: \"Fuzz segment\"}) { segment { id } } "
     "upsertProduct(input: {sku: \"MUG\", name: \"Mug\", brandId: $b, priceCents: 1200, currency: \"EUR\"}) "
     "{ product { id } } }"),
    ("mutation($b: ID!) { recordOrder(input: {brandId: $b, externalOrderId: \"fuzz-1\", totalCents: 1200, "
     "currency: \"EUR\", placedAt: \"2026-01-01T00:00:00Z\", customer: {email: \"fuzz@example.test\"}, "
     "items: [{sku: \"MUG\", quantity: 1, unitPriceCents: 1200}]}) { order { id } } "
     "trackEvent(input: {eventId: \"fuzz-e1\", name: \"viewed\", brandId: $b, "
     "customer: {email: \"fuzz@example.test\"}}) { event { id } } }"),
    ("mutation($b: ID!) { createCampaign(input: {brandId: $b, name: \"Fuzz campaign\", channel: EMAIL}) "
     "{ campaign { id } } }"),
    ("{ brands { id } members { id } apiKeys { id } tags { id } segments { edges { node { id } } } "
     "customers { edges { node { id notes { edges { node { id } } } } } } orders { edges { node { id } } } "
     "campaigns { edges { node { id } } } auditLog(first: 5) { edges { node { id } } } jobs { edges { node { id } } } "
     "viewer { tenant { id } } }"),
    ("query($b: ID!) { conversationLabels(brandId: $b) { id } cannedResponses(brandId: $b) { id } "
     "segmentAutomations { id } conversations(brandId: $b) { edges { node { id } } } }"),
]


async def seed(api: Api, t: TenantFixture, into: dict[str, list[str]]) -> None:
    """Objects of every kind the tenant can make simply, and their ids."""
    for doc in SEED_DATA:
        body = await api.gql(doc, {"b": t.brand_gid("a")} if "$b" in doc else None, token=t.owner_token)
        Ids.harvest(body, into)
    for name, value in (("Brand", t.brand_gid("a")), ("Brand", t.brand_gid("b"))):
        if value not in into[name]:
            into[name].append(value)


def internal(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in body.get("errors") or []
            if (e.get("extensions") or {}).get("code") == "INTERNAL_SERVER_ERROR"
            or e.get("message", "").startswith("Internal server error")]


def api_log_sizes() -> dict[str, int]:
    """Where the logs of the API servers this test session started end now."""
    return {str(p): p.stat().st_size for p in (DATA_DIR / "logs").glob(f"api*-{os.getpid()}.log")}


def api_log_tracebacks_since(sizes: dict[str, int]) -> list[str]:
    """The tracebacks the API servers logged after ``sizes`` was taken, each with its lines above."""
    found = []
    for path in (DATA_DIR / "logs").glob(f"api*-{os.getpid()}.log"):
        with path.open("rb") as f:
            f.seek(sizes.get(str(path), 0))
            text = f.read().decode(errors="replace")
        at = text.find("Traceback")
        while at != -1:
            found.append(text[max(0, at - 300):at + 1200])
            at = text.find("Traceback", at + 1)
    return found


async def test_no_query_or_mutation_gives_an_internal_error(api: Api) -> None:
    print(f"\nfuzz: FUZZ_SEED={SEED} FUZZ_CASES={CASES}")
    t, other = await create_tenant_fixture(), await create_tenant_fixture()
    ids = Ids()
    await seed(api, t, ids.own)
    await seed(api, other, ids.foreign)
    _, limited_key = await t.api_key("admin", brands=["a"])
    raw = await api.data(get_introspection_query(), token=t.owner_token)
    schema = build_client_schema(raw)
    rng = random.Random(SEED)
    gen = Generator(schema, rng, ids)
    fields = [("query", n, f) for n, f in schema.query_type.fields.items()]
    fields += [("mutation", n, f) for n, f in schema.mutation_type.fields.items() if n not in SKIP]
    assert len(fields) >= 95, len(fields)  # every query and mutation but the uploads

    failures: list[str] = []
    sent, refused, started = 0, 0, time.monotonic()
    log_sizes = api_log_sizes()
    for _ in range(CASES):
        for kind, name, f in fields:
            gen.hostile = rng.choice((0.0, 0.15, 0.4, 0.8))
            args = {}
            for aname, arg in f.args.items():
                required = isinstance(arg.type, GraphQLNonNull) and arg.default_value is Undefined
                if required or rng.random() < 0.6:
                    args[aname] = None if not required and rng.random() < 0.1 else gen.value(arg.type, aname)
            doc = document(kind, name, f, args)
            who = rng.random()
            token = limited_key if who < 0.2 else t.owner_token
            brand = t.brand_gid(rng.choice("ab")) if 0.2 <= who < 0.35 else None
            r = await post_json(api, doc, args, token=token, headers={"X-Brand-Id": brand} if brand else None)
            sent += 1
            shown = json.dumps(args)[:600]
            if r.status_code >= 500:
                failures.append(f"{name}: HTTP {r.status_code} {r.text[:300]} with {shown}")
                continue
            body = r.json()
            if r.status_code != 200 or body.get("data") is None:
                refused += 1
                if os.environ.get("FUZZ_DEBUG"):
                    print("refused", name, r.status_code, [e["message"][:150] for e in body.get("errors") or []])
            if bad := internal(body):
                failures.append(f"{name}: {bad[0]['message']} with {shown}")
            Ids.harvest(body.get("data"), ids.own)  # new objects become ids for later calls
    elapsed = time.monotonic() - started
    time.sleep(0.2)  # the server writes its log line after answering
    failures += [f"the API logged a traceback:\n{tb}" for tb in api_log_tracebacks_since(log_sizes)]
    print(f"fuzz: {sent} calls over {len(fields)} fields in {elapsed:.1f} s ({refused} refused before data)")
    assert not failures, (f"FUZZ_SEED={SEED} FUZZ_CASES={CASES}: {len(failures)} internal errors "
                          "(request ids in the API log):\n" + "\n".join(failures))
