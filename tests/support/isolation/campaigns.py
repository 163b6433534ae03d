"""The rows of the campaign isolation tests: tenant A (:class:`World`), tenant B (:class:`Other`), the
fresh object a write aims at (:class:`Victim`), every campaign query (:data:`READS`) and mutation
(:data:`WRITES`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conftest import TenantFixture, gid
from support.graphql import check, codes
from support.isolation import Read

ERRORS = "errors { field code message }"


CONTENT = {"subject": "Hello {{ customer.first_name }}",
           "html": '<p>Hi <a href="https://shop.example.test/x">shop</a></p>', "text": "Hi"}


SUBSCRIPTIONS = {"campaignStats"}  # tested over graphql-transport-ws by the area's tests


@dataclass
class World:
    """Tenant A: in each brand a static segment of two consenting customers (known to that brand
    only), a draft campaign to it, a log provider for e-mail and a suppressed address."""

    t: TenantFixture
    seg: dict[str, uuid.UUID]
    customers: dict[str, list[uuid.UUID]]
    campaign: dict[str, uuid.UUID]
    suppressed: dict[str, str]
    product: dict[str, uuid.UUID]

    def brand(self, side: str) -> str:
        return self.t.brand_gid(side)

    def c(self, side: str) -> str:
        return gid("Campaign", self.campaign[side])

    def s(self, side: str) -> str:
        return gid("Segment", self.seg[side])

    def customer(self, side: str, i: int = 0) -> str:
        return gid("Customer", self.customers[side][i])

    def email(self, side: str, i: int = 0) -> str:
        return f"{self.t.slug}-{side}-{i}@example.test"

    def p(self, side: str) -> str:
        return gid("Product", self.product[side])

    def side_markers(self, side: str, *, names: bool = True) -> list[str]:
        """Strings that appear only in answers revealing something of brand ``side`` (with
        ``names``, its slug and name too: every tenant has a "brand-a", but only brand b is "brand-b")."""
        typed = [("Brand", self.t.brands[side]), ("Campaign", self.campaign[side]), ("Segment", self.seg[side]),
                 ("Product", self.product[side]), *(("Customer", c) for c in self.customers[side])]
        return ([str(v) for _, v in typed] + [gid(n, v) for n, v in typed]
                + [self.email(side, i) for i in range(len(self.customers[side]))]
                + [self.suppressed[side], f"Campaign {self.t.slug} {side}", f"SKU-{self.t.slug}-{side}"]
                + ([f"brand-{side}", f"Brand {side.upper()}"] if names else []))

    def markers(self) -> list[str]:
        """Strings that appear only in answers revealing something of tenant A."""
        return (self.side_markers("a", names=False) + self.side_markers("b", names=False)
                + [str(self.t.id), self.t.slug])


@dataclass
class Other:
    """Tenant B, with a segment, a customer and a draft campaign of its own in its brand "a"."""

    t: TenantFixture
    seg: uuid.UUID
    customer: uuid.UUID
    campaign: uuid.UUID


@dataclass
class Victim:
    """One fresh object of A's brand ``side`` for one test: a write aimed at it cannot disturb
    other tests."""

    w: World
    side: str
    campaign: uuid.UUID | None = None
    address: str | None = None
    key: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def brand(self) -> str:
        return self.w.brand(self.side)

    @property
    def c(self) -> str:
        assert self.campaign is not None
        return gid("Campaign", self.campaign)

    @property
    def segment(self) -> str:
        return self.w.s(self.side)


def mutation_doc(name: str, params: str, args: str, result: str) -> str:
    return f"mutation({params}) {{ {name}({args}) {{ {result} {ERRORS} }} }}"


CAMPAIGN = "campaign { id status name brand { id } }"


@dataclass(frozen=True)
class Write:
    """A mutation aimed at A's brand ``side``.

    ``needs``: the fresh object it names (see :func:`victim`); ``field``: where a caller that may
    not see it gets NOT_FOUND; ``result``: the payload field holding what was done; ``admin``:
    owners and admins only; ``starts``: the control starts sending.
    """

    name: str
    doc: str
    needs: str
    variables: Callable[[Victim], dict[str, Any]]
    field: str
    result: str
    admin: bool = False
    starts: bool = False

    def __str__(self) -> str:
        return self.name


WRITES: list[Write] = [
    Write("createCampaign", mutation_doc("createCampaign", "$input: CreateCampaignInput!", "input: $input", CAMPAIGN), "brand",
          lambda v: {"input": {"brandId": v.brand, "name": "New", "channel": "EMAIL", "content": CONTENT,
                               "segmentIds": [v.segment]}}, "input.brandId", "campaign"),
    Write("updateCampaign", mutation_doc("updateCampaign", "$input: UpdateCampaignInput!", "input: $input", CAMPAIGN), "draft",
          lambda v: {"input": {"id": v.c, "name": "Renamed", "costCents": 100}}, "input.id", "campaign"),
    Write("deleteCampaign", mutation_doc("deleteCampaign", "$id: ID!", "input: {id: $id}", "deletedId"), "draft",
          lambda v: {"id": v.c}, "input.id", "deletedId"),
    Write("scheduleCampaign", mutation_doc("scheduleCampaign", "$input: ScheduleCampaignInput!", "input: $input", CAMPAIGN),
          "draft", lambda v: {"input": {"id": v.c, "mode": "AT", "localTime": "2031-06-01T09:00"}}, "input.id",
          "campaign"),
    Write("unscheduleCampaign", mutation_doc("unscheduleCampaign", "$id: ID!", "input: {id: $id}", CAMPAIGN), "scheduled",
          lambda v: {"id": v.c}, "input.id", "campaign"),
    Write("launchCampaign", mutation_doc("launchCampaign", "$id: ID!, $key: String!", "input: {id: $id, idempotencyKey: $key}", CAMPAIGN),
          "draft", lambda v: {"id": v.c, "key": v.key}, "input.id", "campaign", starts=True),
    Write("pauseCampaign", mutation_doc("pauseCampaign", "$id: ID!", "input: {id: $id}", CAMPAIGN), "sending",
          lambda v: {"id": v.c}, "input.id", "campaign"),
    Write("resumeCampaign", mutation_doc("resumeCampaign", "$id: ID!", "input: {id: $id}", CAMPAIGN), "paused",
          lambda v: {"id": v.c}, "input.id", "campaign", starts=True),
    Write("cancelCampaign", mutation_doc("cancelCampaign", "$id: ID!", "input: {id: $id}", CAMPAIGN), "sending",
          lambda v: {"id": v.c}, "input.id", "campaign"),
    Write("setDeliveryProvider",
          mutation_doc("setDeliveryProvider", "$input: SetDeliveryProviderInput!", "input: $input",
             "deliveryProvider { channel provider credentialsSet webhookUrl }"), "no-sms",
          lambda v: {"input": {"brandId": v.brand, "channel": "SMS", "provider": "LOG"}}, "input.brandId",
          "deliveryProvider", admin=True),
    Write("removeDeliveryProvider",
          mutation_doc("removeDeliveryProvider", "$b: ID!, $c: MessageChannel!", "input: {brandId: $b, channel: $c}", "ok"), "push",
          lambda v: {"b": v.brand, "c": "PUSH"}, "input.brandId", "ok", admin=True),
    Write("updateMessagingSettings",
          mutation_doc("updateMessagingSettings", "$input: UpdateMessagingSettingsInput!", "input: $input",
             "messagingSettings { attributionDays sendRatePerSecond }"), "brand",
          lambda v: {"input": {"brandId": v.brand, "attributionDays": 9,
                               "sendRatePerSecond": 10 + int(v.key[:4], 16)}},  # a new value each time
          "input.brandId", "messagingSettings", admin=True),
    Write("removeSuppression",
          mutation_doc("removeSuppression", "$b: ID!, $c: MessageChannel!, $a: String!", "input: {brandId: $b, channel: $c, address: $a}",
             "ok"), "suppressed", lambda v: {"b": v.brand, "c": "EMAIL", "a": v.address}, "input.brandId", "ok", admin=True),
]


def edge_ids(conn: dict[str, Any]) -> set[str]:
    return {e["node"]["id"] for e in conn["edges"]}


def _null(name: str) -> Callable[[dict[str, Any], World, Other], None]:
    def check(body: dict[str, Any], w: World, o: Other) -> None:
        assert not body.get("errors"), body
        assert body["data"][name] is None, body

    return check


def _not_found(body: dict[str, Any], w: World, o: Other) -> None:
    assert body["data"] is None, body
    assert codes(body) == ["NOT_FOUND"], body


def _only_own(body: dict[str, Any], w: World, o: Other) -> None:
    assert not body.get("errors"), body
    assert gid("Campaign", o.campaign) in edge_ids(body["data"]["campaigns"]), body
    assert {e["node"]["brand"]["id"] for e in body["data"]["campaigns"]["edges"]} == {o.t.brand_gid("a")}, body


CAMPAIGNS = "query($b: ID) { campaigns(brandId: $b, first: 100) { edges { node { id name brand { id } } } } }"


CAMPAIGN_Q = """query($id: ID!) { campaign(id: $id) { id name content { subject } segments { id }
  stats { sent opens version } brand { id } } }"""


PREVIEW = "query($c: ID!, $u: ID!) { previewCampaign(campaignId: $c, customerId: $u) { to subject html headers } }"


AUDIENCE = "query($c: ID!) { previewCampaignAudience(campaignId: $c) { count total deferred } }"


PROVIDERS = "query($b: ID!) { deliveryProviders(brandId: $b) { channel provider credentialsSet webhookUrl } }"


SETTINGS = "query($b: ID!) { messagingSettings(brandId: $b) { attributionDays sendRatePerSecond } }"


SUPPRESSIONS = "query($b: ID!) { suppressions(brandId: $b, first: 100) { edges { node { channel address reason } } } }"


BRAND_CAMPAIGNS = "query($b: ID!) { brand(id: $b) { id campaigns(first: 100) { edges { node { id } } } } }"


NODE = "query($id: ID!) { node(id: $id) { id ... on Campaign { name } } }"


# what another tenant's owner gets is judged over the whole body: null, empty or NOT_FOUND, never data
READS: list[Read] = [
    Read("campaigns", CAMPAIGNS, lambda w: {},
         lambda d, w: check({w.c("a"), w.c("b")} <= edge_ids(d["campaigns"]), d), _only_own),
    Read("campaigns(brandId: A's)", CAMPAIGNS, lambda w: {"b": w.brand("b")},
         lambda d, w: check(w.c("b") in edge_ids(d["campaigns"]) and w.c("a") not in edge_ids(d["campaigns"]), d),
         lambda body, w, o: check(not body.get("errors") and body["data"]["campaigns"]["edges"] == []
                                   or codes(body) == ["NOT_FOUND"] and body["data"] is None, body)),
    Read("campaign", CAMPAIGN_Q, lambda w: {"id": w.c("a")},
         lambda d, w: check(d["campaign"]["id"] == w.c("a") and d["campaign"]["segments"] == [{"id": w.s("a")}], d),
         _null("campaign")),
    Read("node(Campaign)", NODE, lambda w: {"id": w.c("b")},
         lambda d, w: check(d["node"] == {"id": w.c("b"), "name": f"Campaign {w.t.slug} b"}, d), _null("node")),
    Read("Brand.campaigns", BRAND_CAMPAIGNS, lambda w: {"b": w.brand("a")},
         lambda d, w: check(w.c("a") in edge_ids(d["brand"]["campaigns"]), d), _null("brand")),
    Read("previewCampaign", PREVIEW, lambda w: {"c": w.c("a"), "u": w.customer("a")},
         lambda d, w: check(d["previewCampaign"]["to"] == w.email("a"), d), _not_found),
    Read("previewCampaignAudience", AUDIENCE, lambda w: {"c": w.c("b")},
         lambda d, w: check(d["previewCampaignAudience"]["count"] == 2, d), _not_found),
    Read("deliveryProviders", PROVIDERS, lambda w: {"b": w.brand("a")},
         lambda d, w: check({(p["channel"], p["provider"]) for p in d["deliveryProviders"]} >= {("EMAIL", "LOG")}, d),
         _not_found),
    Read("messagingSettings", SETTINGS, lambda w: {"b": w.brand("b")},
         lambda d, w: check(d["messagingSettings"]["sendRatePerSecond"] >= 1, d), _not_found),
    Read("suppressions", SUPPRESSIONS, lambda w: {"b": w.brand("a")},
         lambda d, w: check(w.suppressed["a"] in {x["node"]["address"] for x in d["suppressions"]["edges"]}, d), _not_found),
]

