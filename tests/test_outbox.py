"""The outbox under row-level security: a tenant writes only its own rows, and the relay's
cross-tenant functions refuse to run inside a tenant transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from conftest import TenantFixture


@pytest.mark.parametrize("call", ["select bg_outbox_lead()", "select * from bg_outbox_claim(10)",
                                  "select bg_outbox_sent(array[]::uuid[], array[]::uuid[])"])
async def test_relay_functions_refuse_a_tenant_transaction(tenant: TenantFixture, call: str) -> None:
    from domain.platform.db import tenant_session

    with pytest.raises(DBAPIError, match="runs outside tenant transactions"):
        async with tenant_session(tenant.id) as s:
            await s.execute(text(call))


async def test_a_tenant_cannot_write_an_outbox_row_for_another(tenant: TenantFixture,
                                                               other_tenant: TenantFixture) -> None:
    from domain.platform import outbox
    from domain.platform.db import tenant_session

    with pytest.raises(DBAPIError, match="row-level security"):
        async with tenant_session(tenant.id) as s:
            outbox.publish(s, other_tenant.id, "probe", {"n": 1})  # written at commit, refused there
    async with tenant_session(tenant.id) as s:  # its own: written, and visible to its transaction
        outbox.publish(s, tenant.id, "probe", {"n": 2})
        await outbox.flush(s)
        assert (await s.execute(text("select tenant_id, payload from outbox where topic = 'probe'"))).all() == [
            (tenant.id, {"n": 2})]
        await s.rollback()
