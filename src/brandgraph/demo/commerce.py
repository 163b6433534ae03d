"""The demo's commerce data: customers (some shared between brands), products, 18 months of
orders, tags, consents, tracked events and notes, through the bulk import functions and
set-based SQL, the same on every run (``random.Random(42)``)."""

from __future__ import annotations

import json
import random
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from domain.tenancy.policies import Principal

Progress = Callable[[int, int], None]

# The demo tenant's brands: sending identity and voice.
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





# (city, state, country, time zone, locale, phone prefix, name pool)
PLACES: dict[str, list[tuple[str, str | None, str, str, str, str, str]]] = {
    "aurora": [
        ("Denver", "CO", "US", "America/Denver", "en-US", "+1303555", "us"),
        ("Boulder", "CO", "US", "America/Denver", "en-US", "+1720555", "us"),
        ("Salt Lake City", "UT", "US", "America/Denver", "en-US", "+1801555", "us"),
        ("Seattle", "WA", "US", "America/Los_Angeles", "en-US", "+1206555", "us"),
        ("Portland", "OR", "US", "America/Los_Angeles", "en-US", "+1503555", "us"),
        ("Bend", "OR", "US", "America/Los_Angeles", "en-US", "+1541555", "us"),
        ("Bozeman", "MT", "US", "America/Denver", "en-US", "+1406555", "us"),
        ("Flagstaff", "AZ", "US", "America/Phoenix", "en-US", "+1928555", "us"),
        ("Asheville", "NC", "US", "America/New_York", "en-US", "+1828555", "us"),
        ("Vancouver", "BC", "CA", "America/Vancouver", "en-CA", "+1604555", "us"),
        ("Calgary", "AB", "CA", "America/Edmonton", "en-CA", "+1403555", "us"),
    ],
    "lumen": [
        ("Paris", None, "FR", "Europe/Paris", "fr-FR", "+3361", "fr"),
        ("Lyon", None, "FR", "Europe/Paris", "fr-FR", "+3362", "fr"),
        ("Bordeaux", None, "FR", "Europe/Paris", "fr-FR", "+3363", "fr"),
        ("Nantes", None, "FR", "Europe/Paris", "fr-FR", "+3364", "fr"),
        ("Marseille", None, "FR", "Europe/Paris", "fr-FR", "+3365", "fr"),
        ("Bruxelles", None, "BE", "Europe/Brussels", "fr-BE", "+32470", "fr"),
        ("Genève", None, "CH", "Europe/Zurich", "fr-CH", "+4179", "fr"),
        ("Montréal", "QC", "CA", "America/Toronto", "fr-CA", "+1514555", "fr"),
        ("Barcelona", None, "ES", "Europe/Madrid", "es-ES", "+3461", "es"),
        ("Milano", None, "IT", "Europe/Rome", "it-IT", "+39347", "it"),
    ],
    "kettle": [
        ("London", None, "GB", "Europe/London", "en-GB", "+44770", "gb"),
        ("Manchester", None, "GB", "Europe/London", "en-GB", "+44771", "gb"),
        ("Bristol", None, "GB", "Europe/London", "en-GB", "+44772", "gb"),
        ("Edinburgh", None, "GB", "Europe/London", "en-GB", "+44773", "gb"),
        ("Leeds", None, "GB", "Europe/London", "en-GB", "+44774", "gb"),
        ("Brighton", None, "GB", "Europe/London", "en-GB", "+44775", "gb"),
        ("Cardiff", None, "GB", "Europe/London", "en-GB", "+44776", "gb"),
        ("Dublin", None, "IE", "Europe/Dublin", "en-IE", "+35385", "gb"),
    ],
}
NAMES = {
    "us": (["Avery", "Jordan", "Maya", "Ethan", "Olivia", "Liam", "Harper", "Noah", "Chloe", "Lucas", "Zoe",
            "Caleb", "Riley", "Nina", "Owen", "Sofia", "Mason", "Aaliyah", "Diego", "Hannah"],
           ["Carter", "Nguyen", "Brooks", "Ramirez", "Patel", "Walsh", "Kim", "Foster", "Hayes", "Ortiz",
            "Bennett", "Price", "Sullivan", "Reyes", "Hughes", "Okafor", "Larsen", "Coleman"]),
    "fr": (["Camille", "Léa", "Hugo", "Louis", "Chloé", "Manon", "Jules", "Inès", "Théo", "Clara", "Arthur",
            "Emma", "Noémie", "Gabriel", "Zoé", "Raphaël"],
           ["Martin", "Bernard", "Dubois", "Moreau", "Laurent", "Lefèvre", "Girard", "Roux", "Fontaine",
            "Chevalier", "Mercier", "Blanc", "Benali", "Nguyen"]),
    "es": (["Lucía", "Mateo", "Martina", "Pablo", "Carmen"], ["García", "Fernández", "López", "Sánchez"]),
    "it": (["Giulia", "Marco", "Chiara", "Luca", "Francesca"], ["Rossi", "Bianchi", "Romano", "Ferrari"]),
    "gb": (["Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Jack", "Freya", "Charlie", "Poppy", "Alfie",
            "Evie", "Aisha", "Rhys", "Siobhan", "Callum"],
           ["Smith", "Jones", "Taylor", "Davies", "Evans", "Wilson", "Thomas", "Roberts", "Walker", "Wright",
            "Edwards", "Khan", "O'Brien", "MacLeod", "Ahmed"]),
}
COMPANIES = {
    "aurora": ["Peak Outfitters", "Basecamp Rentals", "Trailhead Guiding Co."],
    "lumen": ["Spa Lumière", "Institut Belle Peau", "Clinique du Parc"],
    "kettle": ["The Corner Café", "Harbour Deli", "Green Street Grocer"],
}
# sku, name, category, unit price (cents)
CATALOGUE: dict[str, dict[str, Any]] = {
    "aurora": {"prefix": "AUR", "currency": "USD", "free_shipping": 10_000, "shipping": 795, "max_qty": 2,
               "products": [
        ("AUR-TENT-2P", "Ridgeline 2P Tent", "Camping", 34_900),
        ("AUR-BAG-5C", "Switchback -5°C Sleeping Bag", "Camping", 21_900),
        ("AUR-STOVE", "Emberlite Camp Stove", "Camping", 7_900),
        ("AUR-JKT-DOWN", "Summit Down Jacket", "Apparel", 27_900),
        ("AUR-SHELL", "Stormline Rain Shell", "Apparel", 18_900),
        ("AUR-BASE-MER", "Merino Base Layer", "Apparel", 8_900),
        ("AUR-SOCK-3", "Wool Hiking Socks (3-pack)", "Apparel", 3_400),
        ("AUR-PACK-28", "Trailhead 28L Daypack", "Packs", 12_900),
        ("AUR-PACK-55", "Traverse 55L Backpack", "Packs", 24_900),
        ("AUR-BOOT", "Scree Hiking Boots", "Footwear", 17_900),
        ("AUR-POLES", "Alpine Trekking Poles", "Accessories", 8_900),
        ("AUR-LAMP", "Headlamp 400", "Accessories", 4_900),
        ("AUR-BOTTLE", "Insulated Bottle 1L", "Accessories", 3_900),
    ]},
    "lumen": {"prefix": "LUM", "currency": "EUR", "free_shipping": 5_000, "shipping": 490, "max_qty": 2,
              "products": [
        ("LUM-CLEANSE", "Gentle Cleansing Gel", "Cleansers", 1_900),
        ("LUM-MICELLAR", "Micellar Water", "Cleansers", 1_500),
        ("LUM-TONER", "Soft Exfoliating Toner", "Toners", 2_400),
        ("LUM-SERUM-HA", "Hydrating Serum", "Serums", 3_900),
        ("LUM-SERUM-C", "Vitamin C Brightening Serum", "Serums", 4_500),
        ("LUM-CREAM", "Barrier Repair Cream", "Moisturisers", 3_200),
        ("LUM-NIGHT", "Night Recovery Oil", "Moisturisers", 4_200),
        ("LUM-SPF50", "Mineral Sunscreen SPF 50", "Sun care", 2_600),
        ("LUM-EYE", "Calming Eye Cream", "Eye care", 2_900),
        ("LUM-LIP", "Nourishing Lip Balm", "Lips", 900),
        ("LUM-KIT", "Evening Routine Travel Kit", "Sets", 3_500),
    ]},
    "kettle": {"prefix": "KET", "currency": "GBP", "free_shipping": 4_000, "shipping": 350, "max_qty": 4,
               "products": [
        ("KET-SOURDOUGH", "Country Sourdough", "Bread", 550),
        ("KET-RYE", "Seeded Rye", "Bread", 520),
        ("KET-BAGUETTE", "Baguette", "Bread", 280),
        ("KET-FOCACCIA", "Rosemary Focaccia", "Bread", 600),
        ("KET-CROISSANT", "Butter Croissant", "Pastry", 260),
        ("KET-PAINCHOC", "Pain au Chocolat", "Pastry", 290),
        ("KET-CINNAMON", "Cardamom Cinnamon Bun", "Pastry", 350),
        ("KET-LEMON", "Lemon Drizzle Cake", "Cakes", 1_800),
        ("KET-SHORTBREAD", "Shortbread Tin", "Gifts", 1_200),
        ("KET-STARTER", "Sourdough Starter Kit", "Gifts", 2_400),
        ("KET-CLUB", "Monthly Bread Club", "Subscriptions", 3_200),
        ("KET-EV-SOUR", "Sourdough Masterclass", "Events", 4_500),
        ("KET-EV-TASTE", "Cheese & Bread Tasting Night", "Events", 3_500),
        ("KET-EV-PASTRY", "Viennoiserie Workshop", "Events", 5_500),
    ]},
}
# Catalogue attributes (docs/offers.md): Kettle & Crumb sells events (workshops and tastings in
# its bakeries), Aurora Outdoor products with styles and designers.
# sku -> kind, genres, type, creators, city, country
ATTRIBUTES: dict[str, tuple[str, list[str], str, list[str], str | None, str | None]] = {
    "KET-EV-SOUR": ("event", ["baking", "sourdough"], "workshop", ["Hannah Reid"], "London", "GB"),
    "KET-EV-TASTE": ("event", ["cheese", "bread"], "tasting", ["Tom Ellis"], "Bristol", "GB"),
    "KET-EV-PASTRY": ("event", ["baking", "pastry"], "workshop", ["Camille Dubois"], "London", "GB"),
    "KET-SOURDOUGH": ("product", ["bread", "sourdough"], "loaf", ["Hannah Reid"], None, None),
    "KET-CROISSANT": ("product", ["pastry"], "viennoiserie", ["Camille Dubois"], None, None),
    "KET-PAINCHOC": ("product", ["pastry"], "viennoiserie", ["Camille Dubois"], None, None),
    "AUR-TENT-2P": ("product", ["camping", "backpacking"], "tent", ["Lena Ortiz"], None, None),
    "AUR-BAG-5C": ("product", ["camping", "backpacking"], "sleeping bag", ["Lena Ortiz"], None, None),
    "AUR-JKT-DOWN": ("product", ["alpine", "hiking"], "jacket", ["Sam Whitaker"], None, None),
    "AUR-SHELL": ("product", ["hiking"], "jacket", ["Sam Whitaker"], None, None),
    "AUR-PACK-55": ("product", ["backpacking"], "backpack", ["Lena Ortiz"], None, None),
    "AUR-BOOT": ("product", ["hiking", "alpine"], "footwear", ["Sam Whitaker"], None, None),
}
# Kettle & Crumb's next events, not sold yet: the demo's best-fit customers are scored for them.
# sku, name, price (cents), days from now, genres, type, creators, city
UPCOMING = [
    ("KET-EV-SUMMER", "Summer Bread Festival", 4_000, 30, ["baking", "sourdough", "bread"], "festival",
     ["Hannah Reid"], "London"),
    ("KET-EV-CROISSANT", "Croissant Lab", 5_000, 45, ["pastry"], "workshop", ["Camille Dubois"], "London"),
]


def _item_attributes(sku: str, now: datetime) -> dict[str, Any]:
    if sku not in ATTRIBUTES:
        return {}
    kind, genres, type_, creators, city, country = ATTRIBUTES[sku]
    out: dict[str, Any] = {"kind": kind, "genres": genres, "type": type_, "creators": creators}
    if city:
        out |= {"city": city, "country": country}
    return out
PAGES = {"aurora": ["/", "/collections/camping", "/collections/apparel", "/journal/layering-101", "/stores"],
         "lumen": ["/", "/routines/evening", "/collections/serums", "/journal/spf-myths", "/quiz"],
         "kettle": ["/", "/menu", "/bread-club", "/journal/starter-care", "/visit"]}
CAMPAIGNS = {"aurora": ["First frost", "Trail season", "Gear care guide"],
             "lumen": ["Evening routine", "SPF reminder", "New: Vitamin C"],
             "kettle": ["Bread club", "Christmas orders", "Starter workshop"]}
NOTES = [
    ("aurora", "Called about a torn tent seam; sending a repair kit under warranty.", "action"),
    ("aurora", "Guides groups in the Wasatch; interested in a pro discount.", "info"),
    ("lumen", "Sensitive skin: recommended the fragrance-free routine.", "info"),
    ("lumen", "Reported a reaction to the Vitamin C serum; refund issued, follow up in two weeks.", "warning"),
    ("kettle", "Orders for the café every Friday; prefers 7am delivery.", "info"),
    ("kettle", "Delivery missed twice in December: offer a free loaf with the next order.", "action"),
    (None, "Shops with two of our brands; good candidate for the cross-brand loyalty pilot.", "info"),
    (None, "Asked us to use their work e-mail for invoices.", "info"),
]
PHONE_LENGTH = {"US": 12, "CA": 12, "FR": 12, "BE": 12, "CH": 12, "ES": 12, "IT": 13, "GB": 13, "IE": 13}
DAYS = 548  # 18 months


@dataclass
class _Person:
    n: int
    home: str  # the brand market they live in
    fields: dict[str, Any]
    brands: list[str] = field(default_factory=list)


class _Bar:
    """Turns the import's Progress calls (and our own steps) into ``progress(done, total)``."""

    def __init__(self, callback: Progress | None, total: int) -> None:
        self.callback, self.total, self.count = callback, total, 0

    def step(self, n: int = 1) -> None:
        self.count = min(self.total, self.count + n)
        if self.callback is not None:
            self.callback(self.count, self.total)

    async def set_total(self, n: int) -> None:  # the import's Progress protocol
        pass

    async def advance(self, n: int) -> None:
        self.step(n)


def _ascii(value: str) -> str:
    return unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode().lower().replace("'", "")


def _people(rnd: random.Random, per_brand: int) -> list[_Person]:
    """Customers of the three brands: each brand has ``per_brand``; neighbours share a fifth."""
    overlap = per_brand // 5
    slugs = list(CATALOGUE)
    total = len(slugs) * per_brand - (len(slugs) - 1) * overlap
    people: list[_Person] = []
    for n in range(total):
        home = slugs[min(len(slugs) - 1, n // (per_brand - overlap))]
        city, state, country, tz, locale, phone, pool = rnd.choice(PLACES[home])
        first, last = rnd.choice(NAMES[pool][0]), rnd.choice(NAMES[pool][1])
        wholesale = rnd.random() < 0.05
        fields: dict[str, Any] = {
            "externalId": f"demo-{n + 1:04d}",
            "email": f"{_ascii(first)}.{_ascii(last)}{n + 1}@{rnd.choice(['example.com', 'example.net', 'example.org'])}",
            "firstName": first, "lastName": last, "city": city, "state": state, "country": country,
            "timezone": tz, "locale": locale, "buyerType": "wholesale" if wholesale else "consumer",
            "attributes": {"acquisition": rnd.choice(["instagram", "search", "referral", "newsletter", "store"])},
        }
        if rnd.random() < 0.7:  # E.164: +1 and 10 digits, +44 and 10, +33 and 9...
            fields["phone"] = phone + "".join(str(rnd.randint(0, 9)) for _ in range(PHONE_LENGTH[country] - len(phone)))
        if rnd.random() < 0.6:
            fields["birthDate"] = f"{rnd.randint(1950, 2004)}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}"
        if wholesale:
            fields["company"] = rnd.choice(COMPANIES[home])
        people.append(_Person(n, home, {k: v for k, v in fields.items() if v is not None}))
    for i, slug in enumerate(slugs):  # brand i: people [i * (per_brand - overlap), + per_brand)
        for person in people[i * (per_brand - overlap):i * (per_brand - overlap) + per_brand]:
            person.brands.append(slug)
    for person in people[:10]:  # a few shop with every brand
        for slug in slugs:
            if slug not in person.brands:
                person.brands.append(slug)
    return people


def _orders(rnd: random.Random, slug: str, person: _Person, now: datetime, counter: list[int]) -> list[dict]:
    cat = CATALOGUE[slug]
    segment = rnd.random()
    count = (0 if segment < 0.12 else rnd.randint(1, 2) if segment < 0.55 else rnd.randint(3, 7) if segment < 0.92
             else rnd.randint(8, 20))
    lapsed = rnd.random() < 0.18  # bought, then went quiet: "At risk"
    out = []
    for _ in range(count):
        days = rnd.randint(200, DAYS) if lapsed else int(DAYS * rnd.random() ** (1.6 if count > 7 else 1))
        placed = now - timedelta(days=days, hours=1, seconds=rnd.randint(0, 86_399))
        lines = []
        for sku, name, category, price in rnd.sample(cat["products"], rnd.choice([1, 1, 1, 2, 2, 3, 4])):
            lines.append({"sku": sku, "name": name, "category": category, "quantity": rnd.randint(1, cat["max_qty"]),
                          "unitPriceCents": price, **_item_attributes(sku, now)})
        subtotal = sum(line["quantity"] * line["unitPriceCents"] for line in lines)
        status = (rnd.choice(["placed", "paid"]) if days < 3 else
                  rnd.choices(["fulfilled", "refunded", "cancelled"], [94, 3, 3])[0])
        counter[0] += 1
        out.append({
            "externalOrderId": f"{cat['prefix']}-{10_000 + counter[0]}", "customerExternalId": person.fields["externalId"],
            "totalCents": subtotal + (0 if subtotal >= cat["free_shipping"] else cat["shipping"]),
            "currency": cat["currency"], "status": status, "placedAt": placed.isoformat(), "items": lines,
        })
    return out


def _events(rnd: random.Random, slug: str, person: _Person, orders: list[dict], newsletter: bool,
            now: datetime) -> list[tuple[str, str, dict, datetime]]:
    """(key, name, properties, occurred_at) of the person's tracked events with ``slug``."""
    recent = bool(orders) and min(now - datetime.fromisoformat(o["placedAt"]) for o in orders) < timedelta(days=150)
    count = rnd.randint(2, 8) if not orders else rnd.randint(4, 24) if recent else rnd.randint(1, 6)
    window = 90 if recent or not orders else DAYS
    products = CATALOGUE[slug]["products"]
    out = []
    for i in range(count):
        at = now - timedelta(days=rnd.uniform(0, window), minutes=1)
        if recent is False and orders:
            at = now - timedelta(days=rnd.uniform(200, DAYS))
        kind = rnd.choices(["page_viewed", "product_viewed", "cart_abandoned", "newsletter_opened"],
                           [45, 35, 8, 12 if newsletter else 0])[0]
        sku, name, _, price = rnd.choice(products)
        props = {"page_viewed": {"path": rnd.choice(PAGES[slug])},
                 "product_viewed": {"sku": sku, "name": name},
                 "cart_abandoned": {"sku": sku, "value_cents": price * rnd.randint(1, 2)},
                 "newsletter_opened": {"campaign": rnd.choice(CAMPAIGNS[slug])}}[kind]
        out.append((f"demo-{slug}-{person.fields['externalId']}-{i}", kind, props, at))
    return out


async def without_customers(tenant_id: uuid.UUID) -> bool:
    from domain.platform.db import tenant_session

    async with tenant_session(tenant_id) as s:
        return (await s.scalar(text("SELECT NOT EXISTS (SELECT 1 FROM customers WHERE tenant_id = :t)"),
                               {"t": tenant_id}))


EVENTS_SQL = """
WITH ev AS (
  INSERT INTO tracked_events (tenant_id, id, customer_id, brand_id, name, properties, occurred_at, idempotency_key)
  SELECT cast(:t AS uuid), gen_random_uuid(), c.id, x.brand_id, x.name, cast(x.props AS jsonb), x.at, x.key
    FROM unnest(cast(:ext AS text[]), cast(:brand AS uuid[]), cast(:name AS text[]), cast(:props AS text[]),
                cast(:at AS timestamptz[]), cast(:key AS text[])) AS x (ext, brand_id, name, props, at, key)
    JOIN customers c ON c.tenant_id = :t AND c.external_id = x.ext
  ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
  RETURNING id, customer_id, brand_id, name, properties, occurred_at
)
INSERT INTO timeline_events (tenant_id, customer_id, occurred_at, id, brand_id, kind, data, ref_type, ref_id)
SELECT cast(:t AS uuid), ev.customer_id, ev.occurred_at, gen_random_uuid(), ev.brand_id, 'event_tracked',
       jsonb_build_object('name', ev.name, 'properties', ev.properties), 'TrackedEvent', ev.id::text
  FROM ev
"""


async def _upcoming_events(owner: Principal, brand_id: uuid.UUID, now: datetime) -> None:
    from domain.commerce.service import ProductAttributes, upsert_product

    for sku, name, price, days, genres, type_, creators, city in UPCOMING:
        starts = (now + timedelta(days=days)).replace(hour=18)
        await upsert_product(owner, sku, name, brand_id=brand_id, category="Events", price_cents=price,
                             currency="GBP", attributes=ProductAttributes(
                                 kind="event", genres=genres, product_type=type_, creators=creators, city=city,
                                 country="GB", starts_at=starts, ends_at=starts + timedelta(hours=3)))


async def seed_commerce(owner: Principal, by_slug: dict[str, uuid.UUID], progress: Progress | None = None, *,
                        customers_per_brand: int = 200) -> dict[str, int]:
    """Customers, orders, events, notes and profiles for the demo brands (idempotent: every
    write is keyed on an external id, an order id or an event id)."""
    from domain.customers import notes
    from domain.imports.customers import import_customers
    from domain.imports.orders import import_orders
    from domain.platform.db import tenant_session
    from domain.profiles import service as profiles

    rnd = random.Random(42)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    tenant_id = owner.tenant_id
    people = _people(rnd, customers_per_brand)
    counters: dict[str, list[int]] = {slug: [0] for slug in CATALOGUE}
    customer_rows: dict[str, list[dict]] = {slug: [] for slug in CATALOGUE}
    order_rows: dict[str, list[dict]] = {slug: [] for slug in CATALOGUE}
    events: list[tuple[str, uuid.UUID, str, str, datetime, str]] = []
    spend: dict[str, int] = {}
    for person in people:
        for slug in person.brands:
            orders = _orders(rnd, slug, person, now, counters[slug])
            order_rows[slug] += orders
            spend[person.fields["externalId"]] = spend.get(person.fields["externalId"], 0) + sum(
                o["totalCents"] for o in orders)
            consents = {"consent_email": rnd.choices(["yes", "no", None], [72, 10, 18])[0],
                        "consent_sms": rnd.choices(["yes", "no", None], [30, 10, 60])[0],
                        "consent_push": rnd.choices(["yes", None], [15, 85])[0],
                        "consent_ads": rnd.choices(["yes", "no", None], [35, 15, 50])[0]}
            tags = []
            if consents["consent_email"] == "yes" and rnd.random() < 0.8:
                tags.append("Newsletter")
            if person.fields["buyerType"] == "wholesale":
                tags.append("Wholesale")
            last = max((datetime.fromisoformat(o["placedAt"]) for o in orders), default=None)
            if len(orders) >= 2 and last is not None and now - last > timedelta(days=150):
                tags.append("At risk")
            if any(len(o["items"]) >= 3 for o in orders) and rnd.random() < 0.3:
                tags.append("Gift buyer")
            customer_rows[slug].append({**person.fields, **{k: v for k, v in consents.items() if v}, "tags": tags})
            for key, name, props, at in _events(rnd, slug, person, orders, "Newsletter" in tags, now):
                events.append((person.fields["externalId"], by_slug[slug], name, json.dumps(props), at, key))
    vip = sorted(spend, key=lambda k: -spend[k])[:max(1, len(spend) * 8 // 100)]
    vip_set = set(vip)
    for rows in customer_rows.values():
        for row in rows:
            if row["externalId"] in vip_set:
                row["tags"] = [*row["tags"], "VIP"]

    n_orders = sum(len(rows) for rows in order_rows.values())
    bar = _Bar(progress, sum(len(r) for r in customer_rows.values()) + n_orders + len(events) + len(NOTES) + 1)
    bar.step(0)
    for slug, rows in customer_rows.items():
        await import_customers(tenant_id, by_slug[slug], rows, bar, label="demo seed")
    for slug, rows in order_rows.items():
        await import_orders(tenant_id, by_slug[slug], rows, bar, label="demo seed")
    for start in range(0, len(events), 5_000):
        batch = events[start:start + 5_000]
        async with tenant_session(tenant_id) as s:
            await s.execute(text(EVENTS_SQL), {"t": tenant_id, **dict(zip(
                ("ext", "brand", "name", "props", "at", "key"), (list(col) for col in zip(*batch, strict=True)),
                strict=True))})
        bar.step(len(batch))
    async with tenant_session(tenant_id) as s:
        ids = dict((await s.execute(text("SELECT external_id, id FROM customers WHERE tenant_id = :t"),
                                    {"t": tenant_id})).all())
    shared = [p for p in people if len(p.brands) == len(CATALOGUE)]
    for i, (slug, body, kind) in enumerate(NOTES):
        who = shared[i % len(shared)] if slug is None else next(
            p for p in people[(i * 37) % len(people):] + people if slug in p.brands)
        await notes.add_note(owner, ids[who.fields["externalId"]], body, type=notes.NoteType(kind),
                             brand_id=by_slug[slug] if slug else None)
        bar.step()
    await _upcoming_events(owner, by_slug["kettle"], now)
    async with tenant_session(tenant_id) as s:  # events arrived after the orders: recompute everyone
        await profiles.refresh(s, tenant_id, None)
    bar.step()
    return {"customers": len(people), "orders": n_orders, "events": len(events), "notes": len(NOTES)}
