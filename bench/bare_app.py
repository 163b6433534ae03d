"""The floor for ``api_bench.py``: Strawberry's own ASGI view on Starlette, answering the bench's
queries with constants of the same shape. No authentication, no database, no middleware, no
extensions: what any Strawberry-on-Starlette server pays per request.

    python -m uvicorn bare_app:create_app --factory --app-dir bench --port 8100

``BARE_APP_DATA`` names a JSON file with the ``data`` of the real API's answers to the bench's
queries (``api_bench.py`` writes it), so both send the same documents; without it the answers
are made up with the seed's sizes (3 brands, 20 campaigns each, 50 customers with 2 tags).
"""

from __future__ import annotations

import json
import os
from typing import Any

import strawberry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from strawberry.asgi import GraphQL


@strawberry.type
class Tenant:
    name: str


@strawberry.type
class Viewer:
    tenant: Tenant


@strawberry.type
class CampaignStats:
    sent: int


@strawberry.type
class Segment:
    name: str


@strawberry.type
class Campaign:
    stats: CampaignStats
    segments: list[Segment]


@strawberry.type
class CampaignEdge:
    node: Campaign


@strawberry.type
class CampaignConnection:
    edges: list[CampaignEdge]


@strawberry.type
class Brand:
    id: strawberry.ID
    name: str
    all_campaigns: strawberry.Private[list[Campaign]]

    @strawberry.field
    async def campaigns(self, first: int = 20) -> CampaignConnection:
        return CampaignConnection(edges=[CampaignEdge(node=c) for c in self.all_campaigns[:first]])


@strawberry.type
class Tag:
    name: str


@strawberry.type
class CustomerProfile:
    total_order_value_cents: int


@strawberry.type
class Customer:
    id: strawberry.ID
    email: str | None
    tags: list[Tag]
    profile: CustomerProfile


@strawberry.type
class CustomerEdge:
    node: Customer


@strawberry.type
class CustomerConnection:
    edges: list[CustomerEdge]


def _made_up() -> dict[str, Any]:
    brands = [{"id": f"QnJhbmQ6{b:032x}", "name": f"Brand {b}"} for b in range(3)]
    campaigns = [{"campaigns": {"edges": [{"node": {"stats": {"sent": 1000 + c}, "segments": [{"name": "Big spenders"}]}}
                                          for c in range(20)]}} for _ in brands]
    customers = {"edges": [{"node": {"id": f"Q3VzdG9tZXI6{n:032x}", "email": f"customer.{n}@example.com",
                                     "tags": [{"name": "vip"}, {"name": "newsletter"}],
                                     "profile": {"totalOrderValueCents": 12_345 + n}}} for n in range(50)]}
    return {"viewer": {"viewer": {"tenant": {"name": "Northwind Collective"}}}, "brands": {"brands": brands},
            "campaigns": {"brands": campaigns}, "customers": {"customers": customers}}


def load_data() -> tuple[Viewer, list[Brand], list[Customer]]:
    path = os.environ.get("BARE_APP_DATA")
    data = json.loads(open(path).read()) if path else _made_up()
    viewer = Viewer(tenant=Tenant(name=data["viewer"]["viewer"]["tenant"]["name"]))
    with_campaigns = data["campaigns"]["brands"]
    brands = [
        Brand(id=strawberry.ID(b["id"]), name=b["name"], all_campaigns=[
            Campaign(stats=CampaignStats(sent=e["node"]["stats"]["sent"]),
                     segments=[Segment(name=s["name"]) for s in e["node"]["segments"]])
            for e in (with_campaigns[i]["campaigns"]["edges"] if i < len(with_campaigns) else [])])
        for i, b in enumerate(data["brands"]["brands"])
    ]
    customers = [
        Customer(id=strawberry.ID(e["node"]["id"]), email=e["node"]["email"],
                 tags=[Tag(name=t["name"]) for t in e["node"]["tags"]],
                 profile=CustomerProfile(total_order_value_cents=e["node"]["profile"]["totalOrderValueCents"]))
        for e in data["customers"]["customers"]["edges"]
    ]
    return viewer, brands, customers


def create_app() -> Starlette:
    viewer, brands, customers = load_data()

    @strawberry.type
    class Query:
        @strawberry.field
        async def viewer(self) -> Viewer:
            return viewer

        @strawberry.field
        async def brands(self) -> list[Brand]:
            return brands

        @strawberry.field
        async def customers(self, first: int = 20) -> CustomerConnection:
            return CustomerConnection(edges=[CustomerEdge(node=c) for c in customers[:first]])

    async def healthz(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    view = GraphQL(strawberry.Schema(query=Query), graphql_ide=None)
    return Starlette(routes=[Route("/graphql", view), Route("/healthz", healthz)])
