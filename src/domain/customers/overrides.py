"""Overrides of a customer's churn risk and lifetime value (owners and admins, with a reason),
and the customer's preferred contact method and account manager (docs/customers.md, "Overrides
and relationship"). An override lands on the timeline and in the audit log; clearing it returns
the customer to the computed value (the tenant-wide profile's)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import Enum

from sqlalchemy import select

from domain.audit import service as audit
from domain.customers.models import Customer
from domain.customers.service import load_visible
from domain.errors import ErrorCode, Validator
from domain.platform.db import tenant_session
from domain.tenancy import validation
from domain.tenancy.models import Membership
from domain.tenancy.policies import Action, Principal, authorize
from domain.timeline import service as timeline


class OverrideField(str, Enum):
    CHURN_RISK = "churn_risk"
    LIFETIME_VALUE = "lifetime_value"


class ContactMethod(str, Enum):
    EMAIL = "email"
    SMS = "sms"
    PHONE = "phone"
    PUSH = "push"


_COLUMNS = {OverrideField.CHURN_RISK: ("risk_override", "risk_override_reason", "risk_override_by", "risk_override_at"),
            OverrideField.LIFETIME_VALUE: ("value_override_cents", "value_override_reason", "value_override_by",
                                           "value_override_at")}


async def set_override(principal: Principal, customer_id: uuid.UUID, field: OverrideField, value: int | None,
                       reason: str | None) -> Customer:
    """Set (``value``) or clear (None) an override. Setting needs a reason; churn risk is 0 to
    100, a lifetime value a non-negative amount in cents."""
    authorize(principal, Action.CUSTOMER_OVERRIDE)
    v = Validator()
    reason = validation.text(v, "reason", reason, required=value is not None, max_len=500)
    if value is not None:
        if field is OverrideField.CHURN_RISK and not 0 <= value <= 100:
            v.add("value", "a churn risk is from 0 to 100")
        if field is OverrideField.LIFETIME_VALUE and value < 0:
            v.add("value", "a lifetime value must not be negative")
    v.check()
    value_col, reason_col, by_col, at_col = _COLUMNS[field]
    now = datetime.now(UTC)
    async with tenant_session(principal.tenant_id) as s:
        customer = await load_visible(s, principal, customer_id, lock=True)
        previous = getattr(customer, value_col)
        setattr(customer, value_col, value)
        setattr(customer, reason_col, reason if value is not None else None)
        setattr(customer, by_col, principal.label if value is not None else None)
        setattr(customer, at_col, now if value is not None else None)
        kind = timeline.Kind.OVERRIDE_SET if value is not None else timeline.Kind.OVERRIDE_CLEARED
        data = {"field": field.value, "value": value, "previous": previous, "reason": reason, "by": principal.label}
        timeline.write(s, principal.tenant_id, customer.id, kind, now, data=data, ref=("Customer", customer.id))
        audit.record(s, principal, f"customer.override.{'set' if value is not None else 'clear'}", "Customer",
                     customer.id, summary={"field": field.value, "value": value, "previous": previous,
                                           "reason": reason})
        await s.flush()
        await s.refresh(customer)
    return customer


async def set_relationship(principal: Principal, customer_id: uuid.UUID, *,
                           preferred_contact_method: ContactMethod | None,
                           account_manager_id: uuid.UUID | None) -> Customer:
    """Set both (None clears): the channel the customer prefers and the member who looks after
    them (a member of the tenant, not removed)."""
    authorize(principal, Action.CUSTOMER_WRITE)
    async with tenant_session(principal.tenant_id) as s:
        customer = await load_visible(s, principal, customer_id, lock=True)
        if account_manager_id is not None:
            member = await s.scalar(select(Membership).where(Membership.tenant_id == principal.tenant_id,
                                                             Membership.id == account_manager_id))
            if member is None:
                v = Validator()
                v.add("accountManagerId", "not a member of this tenant", ErrorCode.NOT_FOUND)
                v.check()
        customer.preferred_contact_method = preferred_contact_method.value if preferred_contact_method else None
        customer.account_manager_id = account_manager_id
        audit.record(s, principal, "customer.relationship", "Customer", customer.id,
                     summary={"preferred_contact_method": customer.preferred_contact_method,
                              "account_manager_id": str(account_manager_id) if account_manager_id else None})
        await s.flush()
        await s.refresh(customer)
    return customer
