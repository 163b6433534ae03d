"""What plans meter: monthly quota use, and the API's use per consumer and hour."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import Enum

from sqlalchemy import BigInteger, Date, DateTime, ForeignKeyConstraint, Integer, String
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from domain.models import Base


class ConsumerKind(str, Enum):
    """Whose bucket an operation draws from, and whose use ``api_usage`` counts."""

    CLIENT_APP = "client_app"
    API_KEY = "api_key"
    USER = "user"


class QuotaUsage(Base):
    """A monthly quota's use in one calendar month (UTC). Count quotas (active segments) have no
    row: they count what exists."""

    __tablename__ = "quota_usage"
    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    quota: Mapped[str] = mapped_column(String(32), primary_key=True)
    period_start: Mapped[date] = mapped_column(Date, primary_key=True)
    used: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")


class ApiUsage(Base):
    """One API consumer's use in one UTC hour: a client app, else an API key, else a user
    (``consumer_kind`` ``client_app`` | ``api_key`` | ``user``; ``consumer_id`` its id).
    Written in batches off the request path (``domain/plans/api_usage.py``)."""

    __tablename__ = "api_usage"
    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    consumer_kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    consumer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    requests: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    cost: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    throttled: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
