"""A reference evaluator for segment definitions, in plain Python, and a seeded generator of
shops and rule trees to run it against the compiled SQL.

The evaluator reads the rows a test wrote (customers, brand memberships, profiles, orders with
their items and products, events, tags, consents, segment memberships) as Python values and
decides, from docs/segments.md, which customers of a brand satisfy a raw JSON definition. It
shares no code with ``domain.segments``: not the parser, not the compiler.

Semantics it encodes (docs/segments.md, "Definitions"):
- a segment sees the brand's customers only; profile metrics, orders and consents of that brand;
  events of that brand or of none;
- a missing profile metric reads as 0 (churn risk as 100); a date rule on a missing date is false;
- text compares ignore case (contains too); SKUs and event names are matched as written;
- money values are major units, compared with amounts kept in cents;
- a comparison with a missing value is false, except ``not_equals`` and ``not_in`` (true) and
  ``not_exists`` (true);
- dates compare by their UTC day; ``within_days`` N means at or after now - N days and
  ``older_than_days`` N before it; a date attribute counts as its UTC midnight;
- purchase equals/in: at least ``min_count`` (default 1) orders of the brand, not cancelled or
  refunded, with a matching line, optionally within ``within_days``; not_equals/not_in: none;
- event rules compare the number of the customer's matching events with the value; property
  filters: numbers compare with JSON numbers only, booleans with JSON booleans, texts with the
  property's text (a number's text included), ignoring case;
- an empty ALL group matches everyone, an empty ANY group no one.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

BRAND_A, BRAND_B = "a", "b"
NOT_COUNTED = {"cancelled", "refunded"}


@dataclass
class World:
    """The rows of one shop as written to the database, and the clock the segments read."""

    now: datetime
    brand: uuid.UUID  # the brand the segments belong to
    customers: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)  # id -> column values
    in_brand: set[uuid.UUID] = field(default_factory=set)  # customer_brands rows of `brand`
    profiles: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)  # brand profile by customer
    orders: list[dict[str, Any]] = field(default_factory=list)  # with "items": [{sku, category, product_brand}]
    events: list[dict[str, Any]] = field(default_factory=list)
    tags: dict[uuid.UUID, set[uuid.UUID]] = field(default_factory=dict)  # customer -> tag ids
    consents: set[tuple[uuid.UUID, uuid.UUID, str]] = field(default_factory=set)  # granted (customer, brand, channel)
    segments: dict[uuid.UUID, set[uuid.UUID]] = field(default_factory=dict)  # segment -> open members

    # --- the evaluator ------------------------------------------------------------------

    def members(self, definition: dict) -> set[uuid.UUID]:
        return {c for c in self.in_brand if self.group(definition, c)}

    def group(self, g: dict, c: uuid.UUID) -> bool:
        results = [self.rule(r, c) for r in g.get("rules", [])] + [self.group(x, c) for x in g.get("groups", [])]
        return all(results) if g.get("match", "all").lower() == "all" else any(results)

    def rule(self, r: dict, c: uuid.UUID) -> bool:
        kind = r["kind"]
        if kind == "profile":
            return self._profile(r, c)
        if kind == "attribute":
            return self._attribute(r, c)
        if kind == "purchase":
            n = self._purchases(r, c)
            return n == 0 if r["operator"] in ("not_equals", "not_in") else n >= (r.get("min_count") or 1)
        if kind == "event":
            return _compare_number(self._events(r, c), r["operator"], r["value"])
        if kind == "tag":
            has = bool(self.tags.get(c, set()) & {uuid.UUID(v) for v in r["value"]})
            return has if r["operator"] == "includes" else not has
        if kind == "consent":
            granted = (c, self.brand, r["field"]) in self.consents
            return granted if r["value"] else not granted
        if kind == "segment":
            member = any(c in self.segments.get(uuid.UUID(v), set()) for v in r["value"])
            return member if r["operator"] == "includes" else not member
        raise AssertionError(kind)

    def _profile(self, r: dict, c: uuid.UUID) -> bool:
        p = self.profiles.get(c)
        f, op, v = r["field"], r["operator"], r.get("value")
        if f in ("first_order_date", "last_order_date"):
            at = p[f.replace("_date", "_at")] if p else None
            return _compare_date(at, op, v, self.now)
        if f in ("total_order_value", "average_order_value"):
            cents = p[f + "_cents"] if p else 0
            return _compare_number(Decimal(cents) / 100, op, v)
        default = 100 if f == "churn_risk" else 0
        return _compare_number(p[f] if p else default, op, v)

    def _attribute(self, r: dict, c: uuid.UUID) -> bool:
        row = self.customers[c]
        f, op, v = r["field"], r["operator"], r.get("value")
        if f.startswith("attributes."):
            name = f.removeprefix("attributes.")
            declared = CUSTOM[name]
            raw = row["attributes"].get(name)
            if declared == "number":
                x = raw if isinstance(raw, (int, float)) and not isinstance(raw, bool) else None
                return _compare_number(x, op, v)
            if declared == "boolean":
                x = raw if isinstance(raw, bool) else None
                return _compare_bool(x, op, v)
            if declared == "date":
                x = _iso_day(raw) if isinstance(raw, str) else None
                at = datetime(x.year, x.month, x.day, tzinfo=UTC) if x else None
                return _compare_date(at, op, v, self.now)
            x = None if raw is None or isinstance(raw, (dict, list)) else _json_text(raw)
            return _compare_text(x, op, v)
        if f == "age":
            b = row["birth_date"]
            today = self.now.astimezone(UTC).date()
            age = None if b is None else today.year - b.year - ((today.month, today.day) < (b.month, b.day))
            return _compare_number(age, op, v)
        return _compare_text(row[f], op, v)

    def _purchases(self, r: dict, c: uuid.UUID) -> int:
        values = r["value"] if isinstance(r["value"], list) else [r["value"]]
        since = self.now - timedelta(days=r["within_days"]) if r.get("within_days") else None
        n = 0
        for o in self.orders:
            if o["customer_id"] != c or o["brand_id"] != self.brand or o["status"] in NOT_COUNTED:
                continue
            if since is not None and o["placed_at"] < since:
                continue
            for item in o["items"]:
                if r["field"] == "sku" and item["sku"] in values:
                    break
                if r["field"] == "category" and item["category"] is not None and \
                        item["category"].lower() in [x.lower() for x in values]:
                    break
                if r["field"] == "brand" and item["product_brand"] is not None and \
                        item["product_brand"] in [uuid.UUID(x) for x in values]:
                    break
            else:
                continue
            n += 1
        return n

    def _events(self, r: dict, c: uuid.UUID) -> int:
        since = self.now - timedelta(days=r["within_days"]) if r.get("within_days") else None
        n = 0
        for e in self.events:
            if e["customer_id"] != c or e["name"] != r["name"] or e["brand_id"] not in (self.brand, None):
                continue
            if since is not None and e["occurred_at"] < since:
                continue
            if all(_property(e["properties"], pf) for pf in r.get("properties", [])):
                n += 1
        return n


CUSTOM = {"plan": "string", "seats": "number", "trial": "boolean", "signup": "date"}


def _json_text(x: Any) -> str:
    """PostgreSQL's text of a JSON scalar (``->>``)."""
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, float):  # written as JSON text, read back as PostgreSQL prints that numeric
        import json

        return format(Decimal(json.dumps(x)), "f")
    return str(x)


def _iso_day(s: str) -> date | None:
    try:
        return date.fromisoformat(s[:10]) if len(s) >= 10 and s[4] == "-" and s[7] == "-" else None
    except ValueError:
        return None


def _without_value(x: Any, op: str) -> bool | None:
    """The answer of ``exists`` and ``not_exists``, and of any other operator on a missing value
    (only the negative ones hold); None when ``x`` has to be compared."""
    if op == "exists":
        return x is not None
    if op == "not_exists":
        return x is None
    if x is None:
        return op in ("not_equals", "not_in")
    return None


def _compare_number(x: Any, op: str, v: Any) -> bool:
    if (settled := _without_value(x, op)) is not None:
        return settled
    x = Decimal(str(x))

    def d(y: Any) -> Decimal:
        return Decimal(str(y))

    return {
        "equals": lambda: x == d(v), "not_equals": lambda: x != d(v),
        "greater_than": lambda: x > d(v), "less_than": lambda: x < d(v),
        "greater_than_or_equal": lambda: x >= d(v), "less_than_or_equal": lambda: x <= d(v),
        "between": lambda: d(v[0]) <= x <= d(v[1]),
        "in": lambda: x in [d(y) for y in v], "not_in": lambda: x not in [d(y) for y in v],
    }[op]()


def _compare_bool(x: bool | None, op: str, v: Any) -> bool:
    if op == "exists":
        return x is not None
    if op == "not_exists":
        return x is None
    if op == "equals":
        return x is not None and x == v
    if op == "not_equals":
        return x is None or x != v
    raise AssertionError(op)


def _compare_text(x: str | None, op: str, v: Any) -> bool:
    if (settled := _without_value(x, op)) is not None:
        return settled
    x = x.lower()
    return {
        "equals": lambda: x == v.lower(), "not_equals": lambda: x != v.lower(),
        "contains": lambda: v.lower() in x,
        "in": lambda: x in [y.lower() for y in v], "not_in": lambda: x not in [y.lower() for y in v],
    }[op]()


def _compare_date(at: datetime | None, op: str, v: Any, now: datetime) -> bool:
    if op == "exists":
        return at is not None
    if op == "not_exists":
        return at is None
    if at is None:
        return False
    if op == "within_days":
        return at >= now - timedelta(days=v)
    if op == "older_than_days":
        return at < now - timedelta(days=v)
    day = at.astimezone(UTC).date()
    if op == "between":
        return date.fromisoformat(v[0]) <= day <= date.fromisoformat(v[1])
    return day > date.fromisoformat(v) if op == "greater_than" else day < date.fromisoformat(v)


def _property(props: dict, pf: dict) -> bool:
    key, op, v = pf["property"], pf["operator"], pf.get("value")
    present = key in props
    if op == "exists":
        return present
    if op == "not_exists":
        return not present
    raw = props.get(key)
    sample = v[0] if isinstance(v, list) else v
    if op in ("greater_than", "less_than") or (isinstance(sample, (int, float)) and not isinstance(sample, bool)):
        x = raw if isinstance(raw, (int, float)) and not isinstance(raw, bool) else None
        return _compare_number(x, op, v)
    if isinstance(sample, bool):
        x = raw if isinstance(raw, bool) else None
        return _compare_bool(x, op, v)
    x = None if raw is None else (_json_compact(raw) if isinstance(raw, (dict, list)) else _json_text(raw))
    return _compare_text(x, op, v)


def _json_compact(x: Any) -> str:
    import json

    return json.dumps(x, separators=(", ", ": "))


# --- the generator ------------------------------------------------------------------------

CLOCKS = [  # instants the segments are evaluated at: just after midnight UTC (a day that is still
    # yesterday west of Greenwich), the last second of a leap day, a plain afternoon
    datetime(2026, 3, 1, 0, 30, tzinfo=UTC),
    datetime(2028, 2, 29, 23, 59, 59, tzinfo=UTC),
    datetime(2026, 7, 14, 15, 0, tzinfo=UTC),
]
ZONES = [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=9, minutes=30)), timezone(timedelta(hours=14))]
WINDOWS = [1, 7, 30, 365]  # within_days / older_than_days values the data sits around
TEXTS = {
    "buyer_type": ["retail", "Retail", "WHOLESALE", "", None],
    "city": ["Paris", "paris", "PARIS ", "Saint-Malo", "100%_off", "a_b", "", None],
    "state": ["CA", "ca", "Île", None],
    "country": ["FR", "fr", "DE", "", None],
    "timezone": ["Europe/Paris", "America/New_York", None],
    "company": ["ACME", "Acme Corp", "50% off_co", "o'brien", None],
    "phone": ["+33 6 12 34", "+1 555", None],
}
PLAN = ["pro", "Pro", "free", "", 5, 5.0, True, None, {"x": 1}, ["pro"], "MISSING"]
SEATS = [0, 10, 10.5, -3, "10", True, None, 1e20, "MISSING"]
TRIAL = [True, False, "true", 1, None, "MISSING"]
SIGNUP = ["2026-02-20", "2026-02-28T23:00:00-05:00", "2026-03-01", "2028-02-29", "2026-07-14",
          "2026-02-30", "2026-13-01", "not a date", "2026", 20260101, None, "MISSING"]
SKUS = ["TENT", "tent", "MUG", "STOVE-2", "50%_OFF"]
CATEGORIES = ["Camping", "camping", "Kitchen", None]
PROPERTY_KEYS = ["sku", "price", "gift", "note", "absent"]
EVENT_NAMES = ["product_viewed", "Product_Viewed", "cart.added"]


def _near(now: datetime, rnd: random.Random) -> datetime:
    """An instant around a window edge: exactly on it, a second either side, or a day away."""
    days = rnd.choice(WINDOWS + [0, 2, 400])
    offset = rnd.choice([timedelta(0), timedelta(0), timedelta(0), timedelta(seconds=1), timedelta(seconds=-1), timedelta(hours=3),
                         timedelta(days=-1), timedelta(minutes=-31)])
    return (now - timedelta(days=days) + offset).astimezone(rnd.choice(ZONES))


def _birth(now: datetime, rnd: random.Random) -> date | None:
    today = now.date()
    years = rnd.choice([1, 17, 18, 30, 65])  # a birth date in the past
    pick = rnd.randrange(6)
    if pick == 0:
        return None
    if pick == 1:
        return date(2000, 2, 29)
    base = today.replace(year=today.year - years) if not (today.month == 2 and today.day == 29) \
        else date(today.year - years, 2, 28)
    return base + timedelta(days={2: 0, 3: 1, 4: -1, 5: rnd.randrange(-200, 200)}[pick])


@dataclass
class ShopPlan:
    """What a seeded shop holds, before ids from the database exist."""

    customers: list[dict[str, Any]]
    products: list[dict[str, Any]]


def plan_customers(rnd: random.Random, now: datetime, n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        attrs = {}
        for name, pool in (("plan", PLAN), ("seats", SEATS), ("trial", TRIAL), ("signup", SIGNUP)):
            x = rnd.choice(pool)
            if x != "MISSING":
                attrs[name] = x
        row = {name: rnd.choice(pool) for name, pool in TEXTS.items()}
        row.update(email=rnd.choice([f"c{i}@Shop.test", f"C{i}@shop.TEST", None]), birth_date=_birth(now, rnd),
                   attributes=attrs)
        out.append(row)
    return out


def plan_profile(rnd: random.Random, now: datetime) -> dict[str, Any]:
    first = _near(now, rnd) if rnd.random() < 0.8 else None
    last = _near(now, rnd) if first is not None and rnd.random() < 0.9 else None
    return {
        "total_order_value_cents": rnd.choice([0, 1, 9_999, 10_000, 10_001, 25_050, 123_456]),
        "total_order_count": rnd.choice([0, 1, 2, 5]),
        "average_order_value_cents": rnd.choice([0, 5_000, 12_550, 99_999]),
        "first_order_at": first, "last_order_at": last,
        "purchase_frequency": Decimal(rnd.choice(["0", "0.5", "1.250", "2.333", "10"])),
        "engagement_score": rnd.choice([0, 1, 59, 60, 61, 100]),
        "churn_risk": rnd.choice([0, 40, 99, 100]),
    }


def plan_event_properties(rnd: random.Random) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for key, pool in (("sku", SKUS + [12, None]), ("price", [0, 99.5, 100, 120, "120", None, True]),
                      ("gift", [True, False, "true", None]), ("note", ["Big TENT sale", "100%", {"a": 1}])):
        if rnd.random() < 0.7:
            props[key] = rnd.choice(pool)
    return props


class RuleMaker:
    """Random valid rules of every kind and operator, with values that sit on the data's edges."""

    def __init__(self, rnd: random.Random, world: World, tags: list[uuid.UUID], segments: list[uuid.UUID],
                 brands: list[uuid.UUID]) -> None:
        self.rnd, self.world, self.tag_ids, self.segment_ids, self.brand_ids = rnd, world, tags, segments, brands

    def all_shapes(self) -> list[dict]:
        """One rule for every field and operator (the catalogue's shapes), values drawn at random."""
        from domain.segments import dsl  # the catalogue only: which fields take which operators

        out = []
        for spec in dsl.PROFILE_FIELDS.values():
            out += [self.profile(spec.name, op.value) for op in spec.operators]
        attrs = [(s.name, s.type.value, s.operators) for s in dsl.ATTRIBUTE_FIELDS.values()]
        attrs += [(f"attributes.{n}", t, dsl.OPS_BY_TYPE[dsl.CUSTOM_TYPES[t]]) for n, t in CUSTOM.items()]
        for name, _type, ops in attrs:
            out += [self.attribute(name, op.value) for op in ops]
        for window in [None, *WINDOWS]:  # every window, on rows that sit on its edge to the second
            for spec in dsl.PURCHASE_FIELDS.values():
                out += [self.purchase(spec.name, op.value, window) for op in spec.operators]
            out += [self.event(op.value, window=window) for op in dsl.EVENT_COUNT_OPS]
        out += [self.event("greater_than_or_equal", prop_op=op.value, key=key)
                for op in dsl.EVENT_PROPERTY_OPS for key in PROPERTY_KEYS]
        for key in PROPERTY_KEYS:  # a value of each JSON type against properties of each type
            for v in (True, False, 120, 99.5, "120", "true", "TENT"):
                rule = self.event("greater_than_or_equal", prop_op="equals", key=key)
                rule["value"], rule["properties"][0]["value"] = 1, v
                out.append(rule)
        out += [self.tag(op.value) for op in dsl.TAG_OPS]
        out += [self.consent(ch) for ch in dsl.CONSENT_CHANNELS]
        out += [self.segment(op.value) for op in dsl.SEGMENT_OPS]
        return out

    def any_rule(self) -> dict:
        return self.rnd.choice(self.all_shapes())

    # values ------------------------------------------------------------------------------

    def number(self, kind: str) -> Any:
        r = self.rnd
        pools = {"money": [0, 0.01, 99.99, 100, 100.01, 250.5, 125.5, 50, 1234.56],
                 "integer": [0, 1, 2, 5, 17, 18, 59, 60, 61, 100, -1],
                 "number": [0, 0.5, 1.25, 2.333, 10, 10.5, -3, 1e20]}
        return r.choice(pools[kind])

    def shaped(self, op: str, one, kind: str | None = None) -> Any:
        if op in ("exists", "not_exists"):
            return None
        if op in ("within_days", "older_than_days"):
            return self.rnd.choice(WINDOWS + [0, 2])
        if op == "between":
            return sorted([one(), one()])
        if op in ("in", "not_in"):
            return [one() for _ in range(self.rnd.randint(1, 3))]
        return one()

    def day(self) -> str:
        d = (self.world.now - timedelta(days=self.rnd.choice(WINDOWS + [0, 2, 400]) + self.rnd.choice([0, 1, -1])))
        return d.date().isoformat()

    def text(self, field: str, op: str) -> str:
        if op == "contains":
            return self.rnd.choice(["a", "PAR", "%", "_", "0%_", "'", "corp", "shop.test", "55"])
        pool = TEXTS.get(field, []) + ["pro", "PRO", "free", "5", "true", "nobody", ""]
        if field == "email":
            pool = [c["email"] for c in self.world.customers.values() if c["email"]][:6] + ["nobody@x.test"]
        return self.rnd.choice([x for x in pool if x is not None])

    # rules -------------------------------------------------------------------------------

    def profile(self, f: str, op: str) -> dict:
        if f.endswith("_date"):
            one = self.day
        else:
            kind = "money" if f.endswith("_value") else "number" if f == "purchase_frequency" else "integer"
            one = lambda: self.number(kind)  # noqa: E731
        return {"kind": "profile", "field": f, "operator": op, "value": self.shaped(op, one)}

    def attribute(self, f: str, op: str) -> dict:
        t = CUSTOM.get(f.removeprefix("attributes."), "integer" if f == "age" else "string") \
            if f.startswith("attributes.") or f == "age" else "string"
        if t == "number":
            one = lambda: self.number("number")  # noqa: E731
        elif t == "integer":
            one = lambda: self.number("integer")  # noqa: E731
        elif t == "boolean":
            one = lambda: self.rnd.choice([True, False])  # noqa: E731
        elif t == "date":
            one = self.day
        else:
            one = lambda: self.text(f, op)  # noqa: E731
        value = self.text(f, op) if op == "contains" else self.shaped(op, one)
        return {"kind": "attribute", "field": f, "operator": op, "value": value}

    def purchase(self, f: str, op: str, window: int | None | bool = False) -> dict:
        r = self.rnd
        one = {"sku": lambda: r.choice(SKUS + ["NONE"]), "category": lambda: r.choice(["Camping", "KITCHEN", "garden"]),
               "brand": lambda: str(r.choice(self.brand_ids))}[f]
        value = [one() for _ in range(r.randint(1, 3))] if op in ("in", "not_in") else one()
        rule = {"kind": "purchase", "field": f, "operator": op, "value": value}
        if window is False:
            window = r.choice(WINDOWS + [2]) if r.random() < 0.6 else None
        if window is not None:
            rule["within_days"] = window
        if r.random() < 0.4:
            rule["min_count"] = r.choice([1, 2, 3])
        return rule

    def event(self, op: str, prop_op: str | None = None, key: str | None = None,
              window: int | None | bool = False) -> dict:
        r = self.rnd
        one = lambda: r.choice([0, 1, 2, 3, 5])  # noqa: E731
        rule = {"kind": "event", "name": r.choice(EVENT_NAMES + ["never_seen"]), "operator": op,
                "value": self.shaped(op, one)}
        if window is False:
            window = r.choice(WINDOWS + [2]) if r.random() < 0.6 else None
        if window is not None:
            rule["within_days"] = window
        ops = [prop_op] if prop_op else [r.choice(["equals", "not_equals", "contains", "in", "not_in", "greater_than",
                                                   "less_than", "exists", "not_exists"]) for _ in range(r.randint(0, 2))]
        rule["properties"] = [self.property_filter(o, key) for o in ops]
        return rule

    def property_filter(self, op: str, key: str | None = None) -> dict:
        r = self.rnd
        key = key or r.choice(PROPERTY_KEYS)
        if op in ("exists", "not_exists"):
            return {"property": key, "operator": op}
        if op in ("greater_than", "less_than"):
            return {"property": key, "operator": op, "value": r.choice([0, 99.5, 100, 119.99, 120])}
        if op == "contains":
            return {"property": key, "operator": op, "value": r.choice(["ten", "%", "12", "TRUE", "sale"])}
        if op in ("in", "not_in"):
            return {"property": key, "operator": op,
                    "value": [r.choice(SKUS + ["120", "true", "12"]) for _ in range(r.randint(1, 2))]}
        return {"property": key, "operator": op, "value": r.choice(SKUS + [120, 100, 12, True, False, "120", "true"])}

    def tag(self, op: str) -> dict:
        return {"kind": "tag", "operator": op,
                "value": [str(x) for x in self.rnd.sample(self.tag_ids, self.rnd.randint(1, 2))]}

    def consent(self, channel: str) -> dict:
        return {"kind": "consent", "field": channel, "operator": "equals", "value": self.rnd.choice([True, False])}

    def segment(self, op: str) -> dict:
        return {"kind": "segment", "operator": op,
                "value": [str(x) for x in self.rnd.sample(self.segment_ids, self.rnd.randint(1, 2))]}

    # trees -------------------------------------------------------------------------------

    def tree(self, depth: int = 1, max_depth: int = 5, budget: list[int] | None = None) -> dict:
        r = self.rnd
        budget = budget if budget is not None else [r.randint(1, 50)]
        rules = []
        for _ in range(r.choice([0, 1, 1, 2, 3])):
            if budget[0] <= 0:
                break
            budget[0] -= 1
            rules.append(self.any_rule())
        groups = []
        if depth < max_depth:
            for _ in range(r.choice([0, 0, 1, 2])):
                groups.append(self.tree(depth + 1, max_depth, budget))
        return {"match": r.choice(["all", "any"]), "rules": rules, "groups": groups}

    def full(self, max_depth: int = 5, max_rules: int = 50) -> dict:
        """At both limits: groups down to the depth limit, the rule limit spread over them."""
        per = max_rules // max_depth
        g: dict = {"match": "any", "rules": [self.any_rule() for _ in range(per)], "groups": []}
        for _ in range(max_depth - 1):
            g = {"match": "any" if g["match"] == "all" else "all", "rules": [self.any_rule() for _ in range(per)],
                 "groups": [g]}
        return g

    def deep(self, max_depth: int = 5) -> dict:
        """A chain of groups down to the depth limit, alternating ALL and ANY, a rule at each level."""
        g: dict = {"match": self.rnd.choice(["all", "any"]), "rules": [self.any_rule()], "groups": []}
        for _ in range(max_depth - 1):
            g = {"match": "any" if g["match"] == "all" else "all", "rules": [self.any_rule()], "groups": [g]}
        return g
