"""Bench environment: the same bootstrap as tests/conftest.py ``_bootstrap``.

``BENCH_DATABASE_URL`` (a PostgreSQL server URL as the schema owner, e.g.
postgresql://postgres@127.0.0.1:5432/postgres) when set, else an embedded server under
``.brandgraph/bench`` (or ``BENCH_DATA_DIR``). A fresh ``brandgraph_bench`` database is created
on it, migrated, and the bench connects as the row-level-security-bound app role, like the API.
Redis: ``BENCH_REDIS_URL`` when set, else an embedded one (audit entries publish to it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_DB = "brandgraph_bench"
DATA_DIR = Path(os.environ.get("BENCH_DATA_DIR") or ROOT / ".brandgraph" / "bench").resolve()
sys.path.insert(0, str(ROOT / "src"))

_embedded = None


def bootstrap() -> str:
    """Start what is needed, make a fresh migrated database; returns a description of it."""
    global _embedded
    server_url = os.environ.get("BENCH_DATABASE_URL")
    redis_url = os.environ.get("BENCH_REDIS_URL")
    where = "PostgreSQL at BENCH_DATABASE_URL"
    if not server_url or not redis_url:
        from brandgraph.embedded import EmbeddedServices

        _embedded = EmbeddedServices(DATA_DIR)
        env = _embedded.start(database=not server_url, redis=not redis_url)
        if not server_url:
            where = f"embedded PostgreSQL under {DATA_DIR}"
        server_url = server_url or env["_BRANDGRAPH_SERVER_URL"]
        redis_url = redis_url or env["REDIS_URL"]
    from domain.config import with_database

    os.environ.update({
        "BRANDGRAPH_ENV": "test",
        "DATABASE_URL": with_database(server_url, BENCH_DB),
        "BRANDGRAPH_SECRET_KEY": "bench-secret-0123456789-0123456789-0123456789",
        "LOG_LEVEL": "WARNING",
        "DATABASE_POOL_SIZE": "5",
        "REDIS_URL": redis_url,
    })
    for key in ("DATABASE_APP_URL", "DATABASE_APP_PASSWORD", "BRANDGRAPH_DATA_DIR"):
        os.environ.pop(key, None)

    from domain.config import get_settings
    from domain.platform.migrations import provision

    get_settings.cache_clear()
    provision(server_url, BENCH_DB, fresh=True)
    return where


def shutdown() -> None:
    if _embedded is not None:
        _embedded.stop()


async def setup_tenant(name: str):
    """A fresh tenant with one brand; returns (its owner principal, the brand id)."""
    import uuid

    from domain.tenancy import brands, members, tenants
    from domain.tenancy.policies import Role

    slug = f"bench-{uuid.uuid4().hex[:8]}"
    tenant = await tenants.create_tenant(slug, name)
    owner_id, _ = await members.ensure_member(tenant.id, f"owner@{slug}.test", Role.OWNER)
    owner = await members.principal_for_user(tenant.id, owner_id)
    assert owner is not None
    brand = await brands.create_brand(owner, {"name": "Bench Brand", "slug": "bench"})
    return owner, brand.id
