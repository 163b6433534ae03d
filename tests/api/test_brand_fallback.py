"""``brandId`` is optional on every brand-scoped field and falls back to the ``X-Brand-Id``
header: the header alone answers what ``brandId`` answers. A field that works in one brand,
given neither, is refused with the one error ``BRAND_REQUIRED`` on ``brandId``."""

from __future__ import annotations

import pytest

from conftest import Api, TenantFixture, create_tenant_fixture
from support.nodes import make_nodes

# fields that work in one brand: (name, document taking an optional $b)
ONE_BRAND = [
    ("segmentFields", "query($b: ID) { segmentFields(brandId: $b) { field } }"),
    ("previewSegment", "query($b: ID) { previewSegment(brandId: $b, definition: {}) { totalCount edges { node { id } } } }"),
    ("deliveryProviders", "query($b: ID) { deliveryProviders(brandId: $b) { channel } }"),
    ("messagingSettings", "query($b: ID) { messagingSettings(brandId: $b) { quietHoursStart } }"),
    ("suppressions", "query($b: ID) { suppressions(brandId: $b) { edges { node { address } } } }"),
    ("conversations", "query($b: ID) { conversations(brandId: $b) { edges { node { id } } } }"),
    ("conversationCounts", "query($b: ID) { conversationCounts(brandId: $b) { open unassigned } }"),
    ("conversationLabels", "query($b: ID) { conversationLabels(brandId: $b) { id } }"),
    ("cannedResponses", "query($b: ID) { cannedResponses(brandId: $b) { id } }"),
]
# fields that narrow to a brand when one is named and answer for every brand otherwise
NARROWING = [
    ("customers", "query($b: ID) { customers(brandId: $b) { edges { node { id } } } }"),
    ("products", "query($b: ID) { products(brandId: $b) { edges { node { id } } } }"),
    ("orders", "query($b: ID) { orders(brandId: $b) { edges { node { id } } } }"),
    ("segments", "query($b: ID) { segments(brandId: $b) { edges { node { id } } } }"),
    ("campaigns", "query($b: ID) { campaigns(brandId: $b) { edges { node { id } } } }"),
]
# a customer's fields, asked of the customer of brand "a"
CUSTOMER = [
    ("Customer.orders", "orders(brandId: $b) { edges { node { id } } }"),
    ("Customer.lastOrder", "lastOrder(brandId: $b) { id }"),
    ("Customer.timeline", "timeline(brandId: $b, first: 50) { edges { node { id } } }"),
    ("Customer.consents", "consents(brandId: $b) { channel }"),
]


@pytest.fixture(scope="module")
async def world() -> tuple[TenantFixture, dict[str, str], dict[str, str]]:
    t = await create_tenant_fixture()
    return t, await make_nodes(t, "a"), await make_nodes(t, "b")


async def _answer(api: Api, t: TenantFixture, doc: str, variables: dict, brand: str | None) -> dict:
    body = await api.gql(doc, variables, token=t.owner_token, brand=t.brand_gid(brand) if brand else None)
    return body


@pytest.mark.parametrize(("name", "doc"), ONE_BRAND, ids=[n for n, _ in ONE_BRAND])
async def test_a_one_brand_field_takes_the_header_and_refuses_neither(api: Api, world, name: str, doc: str) -> None:
    t, _, _ = world
    for brand in ("a", "b"):
        named = await _answer(api, t, doc, {"b": t.brand_gid(brand)}, None)
        header = await _answer(api, t, doc, {}, brand)
        assert "errors" not in named and "errors" not in header, (named, header)
        assert header["data"] == named["data"]
    neither = await _answer(api, t, doc, {}, None)
    assert neither["data"] is None
    assert [(e["extensions"]["code"], e["extensions"]["field"]) for e in neither["errors"]] == [
        ("BRAND_REQUIRED", "brandId")], neither


async def test_the_header_picks_the_brand_of_one_brand_fields(api: Api, world) -> None:
    t, _, _ = world
    doc = dict(ONE_BRAND)["cannedResponses"]
    a, b = [(await _answer(api, t, doc, {}, brand))["data"]["cannedResponses"] for brand in ("a", "b")]
    assert len(a) == len(b) == 1 and a != b


@pytest.mark.parametrize(("name", "doc"), NARROWING, ids=[n for n, _ in NARROWING])
async def test_a_narrowing_field_takes_the_header(api: Api, world, name: str, doc: str) -> None:
    t, _, _ = world
    every = (await _answer(api, t, doc, {}, None))["data"][name]["edges"]
    answers = []
    for brand in ("a", "b"):
        named = (await _answer(api, t, doc, {"b": t.brand_gid(brand)}, None))["data"][name]["edges"]
        header = (await _answer(api, t, doc, {}, brand))["data"][name]["edges"]
        assert header == named and named, (brand, header, named)
        answers.append(named)
    assert answers[0] != answers[1] and len(every) == len(answers[0]) + len(answers[1])


@pytest.mark.parametrize(("name", "selection"), CUSTOMER, ids=[n for n, _ in CUSTOMER])
async def test_a_customer_field_takes_the_header(api: Api, world, name: str, selection: str) -> None:
    t, a, _ = world
    doc = f"query($id: ID!, $b: ID) {{ node(id: $id) {{ ... on Customer {{ {selection} }} }} }}"
    field = selection.split("(")[0]
    answers = {}
    for brand in ("a", "b"):
        named = await _answer(api, t, doc, {"id": a["Customer"], "b": t.brand_gid(brand)}, None)
        header = await _answer(api, t, doc, {"id": a["Customer"]}, brand)
        assert "errors" not in named and "errors" not in header, (named, header)
        assert header["data"] == named["data"]
        answers[brand] = named["data"]["node"][field]
    assert answers["a"] != answers["b"], answers  # the brand the header names is the one answered
