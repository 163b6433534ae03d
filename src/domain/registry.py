"""Imports every bounded context's models so the metadata is complete (Alembic, tests)."""

from domain.audit import models as _audit  # noqa: F401
from domain.platform.models import Base
from domain.tenancy import models as _tenancy  # noqa: F401

metadata = Base.metadata
