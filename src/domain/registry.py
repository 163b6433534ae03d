"""Imports every bounded context's models so the metadata is complete (Alembic, tests)."""

from domain.ai import models as _ai  # noqa: F401
from domain.audit import models as _audit  # noqa: F401
from domain.automations import models as _automations  # noqa: F401
from domain.campaigns import models as _campaigns  # noqa: F401
from domain.clients import models as _clients  # noqa: F401
from domain.commerce import models as _commerce  # noqa: F401
from domain.conversations import models as _conversations  # noqa: F401
from domain.customers import models as _customers  # noqa: F401
from domain.delivery import models as _delivery  # noqa: F401
from domain.insights import models as _insights  # noqa: F401
from domain.jobs import models as _jobs  # noqa: F401
from domain.models import Base
from domain.offers import models as _offers  # noqa: F401
from domain.plans import models as _plans  # noqa: F401
from domain.profiles import models as _profiles  # noqa: F401
from domain.segments import models as _segments  # noqa: F401
from domain.tenancy import models as _tenancy  # noqa: F401
from domain.timeline import models as _timeline  # noqa: F401

metadata = Base.metadata
