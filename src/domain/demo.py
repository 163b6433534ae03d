"""The demo tenant a new user lands in: three brands, a few members, an API key."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from domain.errors import NotFound
from domain.tenancy import api_keys, brands, members, tenants
from domain.tenancy.policies import Principal, PrincipalKind, Role

DEMO_SLUG = "demo"
DEMO_OWNER = "owner@demo.brandgraph.dev"

BRANDS = [
    dict(name="Aurora Outdoor", slug="aurora", timezone="America/Denver", from_name="Aurora Outdoor",
         from_email="hello@aurora.example", reply_to="care@aurora.example", sms_sender="AURORA",
         voice_tone="warm, adventurous, plain-spoken",
         voice_style_guide="Short sentences. Lead with the trail, not the product.",
         voice_words_to_use=["trail", "layer up", "built to last"],
         voice_words_to_avoid=["cheap", "revolutionary"],
         voice_sample_copy="First frost is here. Layer up for the ridge line."),
    dict(name="Lumen Skin", slug="lumen", timezone="Europe/Paris", from_name="Lumen",
         from_email="bonjour@lumen.example", reply_to="care@lumen.example", sms_sender="LUMEN",
         voice_tone="calm, expert, reassuring",
         voice_style_guide="Evidence first; never promise miracles.",
         voice_words_to_use=["gentle", "dermatologist-tested"],
         voice_words_to_avoid=["anti-aging", "flawless"],
         voice_sample_copy="Your evening routine, simplified: three steps, ten minutes."),
    dict(name="Kettle & Crumb", slug="kettle", timezone="Europe/London", from_name="Kettle & Crumb",
         from_email="hello@kettle.example", reply_to="orders@kettle.example", sms_sender="KETTLE",
         voice_tone="cosy, witty, generous",
         voice_style_guide="Talk like the baker behind the counter.",
         voice_words_to_use=["fresh from the oven", "treat"],
         voice_words_to_avoid=["processed"],
         voice_sample_copy="The sourdough is out of the oven. Yours is waiting."),
]


@dataclass
class DemoCredentials:
    tenant_id: uuid.UUID
    owner_id: uuid.UUID
    brand_ids: dict[str, uuid.UUID]
    api_key: str | None  # only when this run created it


async def demo_tenant_id() -> uuid.UUID | None:
    try:
        return await tenants.tenant_id_for_slug(DEMO_SLUG)
    except NotFound:
        return None


async def seed_demo() -> DemoCredentials:
    """Create the demo tenant once; later calls return its ids and create nothing."""
    tenant_id = await demo_tenant_id()
    created = tenant_id is None
    if created:
        tenant_id = (await tenants.create_tenant(DEMO_SLUG, "Northwind Collective", plan="growth")).id
    owner_id, _ = await members.ensure_member(tenant_id, DEMO_OWNER, Role.OWNER)
    owner = Principal(tenant_id=tenant_id, kind=PrincipalKind.USER, id=owner_id, role=Role.OWNER,
                      label=DEMO_OWNER, brand_ids=None)
    secret = None
    if created:
        for fields in BRANDS:
            await brands.create_brand(owner, fields)
        by_slug = {b.slug: b.id for b in await brands.list_brands(owner)}
        await members.add_member(owner, "maya@demo.brandgraph.dev", "marketer", name="Maya Marketer",
                                 brand_ids=[by_slug["aurora"], by_slug["lumen"]])
        await members.add_member(owner, "alex@demo.brandgraph.dev", "agent", name="Alex Agent",
                                 brand_ids=[by_slug["kettle"]])
        await members.add_member(owner, "ana@demo.brandgraph.dev", "analyst", name="Ana Analyst")
        _, secret = await api_keys.create_api_key(owner, "Demo storefront integration", "marketer")
    by_slug = {b.slug: b.id for b in await brands.list_brands(owner)}
    return DemoCredentials(tenant_id=tenant_id, owner_id=owner_id, brand_ids=by_slug, api_key=secret)
