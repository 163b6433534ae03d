"""segmentOverlap: sizes, pairwise intersections and unique members of up to 10 segments, from
the membership tables in one statement."""

from __future__ import annotations

from conftest import Api, TenantFixture, gid
from domain.segments import membership, service
from domain.segments.models import SegmentKind
from support.graphql import errs
from support.segments import make_shop

OVERLAP = """query($ids: [ID!]!) { segmentOverlap(segmentIds: $ids) { union
  segments { segment { name } size unique } pairs { first { name } second { name } both } } }"""


async def test_sizes_pairs_and_unique_members_of_three_segments(api: Api, tenant: TenantFixture) -> None:
    t = tenant
    shop = await make_shop(t)
    p = {k.split("@")[0]: v.id for k, v in shop["people"].items()}
    made = {}
    for name, members in (("x", ["big", "mid", "small"]), ("y", ["mid", "small", "none"]), ("z", ["small", "again"]),
                          ("empty", [])):
        seg = await service.create_segment(t.owner, t.brands["a"], SegmentKind.STATIC, {"name": name})
        if members:
            await membership.change_static_members(t.owner, seg.id, [p[m] for m in members], [])
        made[name] = gid("Segment", seg.id)
    await membership.change_static_members(t.owner, service_id(made["x"]), [], [p["big"]])  # history, not a member
    await membership.change_static_members(t.owner, service_id(made["x"]), [p["big"]], [])  # back: one open stay

    data = (await api.data(OVERLAP, {"ids": [made["x"], made["y"], made["z"], made["empty"]]},
                           token=t.owner_token))["segmentOverlap"]
    assert data["union"] == 5  # big, mid, small, none, again
    assert data["segments"] == [{"segment": {"name": "x"}, "size": 3, "unique": 1},   # big
                                {"segment": {"name": "y"}, "size": 3, "unique": 1},   # none
                                {"segment": {"name": "z"}, "size": 2, "unique": 1},   # again
                                {"segment": {"name": "empty"}, "size": 0, "unique": 0}]
    assert [(x["first"]["name"], x["second"]["name"], x["both"]) for x in data["pairs"]] == [
        ("x", "y", 2), ("x", "z", 1), ("x", "empty", 0), ("y", "z", 1), ("y", "empty", 0), ("z", "empty", 0)]

    # one id: its size; the same id twice counts once
    one = (await api.data(OVERLAP, {"ids": [made["z"], made["z"]]}, token=t.owner_token))["segmentOverlap"]
    assert one == {"union": 2, "segments": [{"segment": {"name": "z"}, "size": 2, "unique": 2}], "pairs": []}


async def test_at_most_ten_segments_and_at_least_one(api: Api, tenant: TenantFixture) -> None:
    t = tenant
    ids = [gid("Segment", (await service.create_segment(t.owner, t.brands["a"], SegmentKind.STATIC,
                                                        {"name": f"s{i}"})).id) for i in range(11)]
    body = await api.gql(OVERLAP, {"ids": ids}, token=t.owner_token)
    assert errs(body) == [("LIMIT_EXCEEDED", "segmentIds")], body
    assert errs(await api.gql(OVERLAP, {"ids": []}, token=t.owner_token)) == [("REQUIRED", "segmentIds")]
    ok = await api.data(OVERLAP, {"ids": ids[:10]}, token=t.owner_token)
    assert len(ok["segmentOverlap"]["pairs"]) == 45


def service_id(global_id: str):
    from graph.core.ids import decode

    return decode(global_id, "Segment")
