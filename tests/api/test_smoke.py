from __future__ import annotations

from conftest import Api, TenantFixture


async def test_viewer_sees_own_tenant_and_brands(api: Api, tenant: TenantFixture) -> None:
    data = await api.data(
        "{ viewer { tenant { slug features { copilotEnabled } } role allBrands brands { slug } activeBrand { slug } } }",
        token=tenant.owner_token,
        brand=tenant.brand_gid("a"),
    )
    viewer = data["viewer"]
    assert viewer["tenant"] == {"slug": tenant.slug, "features": {"copilotEnabled": False}}
    assert viewer["role"] == "OWNER"
    assert sorted(b["slug"] for b in viewer["brands"]) == ["brand-a", "brand-b"]
    assert viewer["activeBrand"] == {"slug": "brand-a"}
