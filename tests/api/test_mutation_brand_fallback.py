"""A brand-scoped mutation's ``input.brandId`` is optional: without it the request's active brand
(``X-Brand-Id``) is used; with neither, the payload carries one error, ``input.brandId`` /
BRAND_REQUIRED (the code a query field answers too), and nothing is written. A brandId in the input wins over the header."""

from __future__ import annotations

from typing import Any

from conftest import Api, TenantFixture

LABEL = """mutation($i: CreateConversationLabelInput!) { createConversationLabel(input: $i) {
  label { id name } errors { field code message } } }"""
LABELS = "query($b: ID!) { conversationLabels(brandId: $b) { name } }"
SEGMENT = """mutation($i: CreateSegmentInput!) { createSegment(input: $i) {
  segment { name brand { id } } errors { field code message } } }"""


async def _labels(api: Api, t: TenantFixture, brand: str) -> list[str]:
    return [x["name"] for x in (await api.data(LABELS, {"b": t.brand_gid(brand)}, token=t.owner_token))
            ["conversationLabels"]]


async def test_brand_id_falls_back_to_the_header_and_is_required_without_it(api: Api, tenant: TenantFixture) -> None:
    tok = tenant.owner_token
    by_header: dict[str, Any] = (await api.data(LABEL, {"i": {"name": "By header"}}, token=tok,
                                                brand=tenant.brand_gid("b")))["createConversationLabel"]
    assert by_header["errors"] == [] and by_header["label"]["name"] == "By header"
    assert "By header" in await _labels(api, tenant, "b") and "By header" not in await _labels(api, tenant, "a")

    explicit = (await api.data(LABEL, {"i": {"name": "Explicit", "brandId": tenant.brand_gid("a")}}, token=tok,
                               brand=tenant.brand_gid("b")))["createConversationLabel"]
    assert explicit["errors"] == [] and "Explicit" in await _labels(api, tenant, "a")

    for doc, name, variables in ((LABEL, "createConversationLabel", {"i": {"name": "Nowhere"}}),
                                 (SEGMENT, "createSegment", {"i": {"name": "Nowhere"}})):
        missing = (await api.data(doc, variables, token=tok))[name]
        assert [(e["field"], e["code"]) for e in missing["errors"]] == [("input.brandId", "BRAND_REQUIRED")], missing
        assert "X-Brand-Id" in missing["errors"][0]["message"]
    assert "Nowhere" not in await _labels(api, tenant, "a") + await _labels(api, tenant, "b")
