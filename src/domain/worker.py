"""The Dramatiq entry module: ``dramatiq domain.worker`` loads the broker and every actor."""

from domain.platform.jobs import broker  # noqa: F401  (sets the global broker first)
from domain.audit import actors as _audit_actors  # noqa: F401,E402
from domain.exports import timeline as _export_actors  # noqa: F401,E402
from domain.imports import actors as _import_actors  # noqa: F401,E402
from domain.profiles import actors as _profile_actors  # noqa: F401,E402
from domain.tenancy import actors as _tenancy_actors  # noqa: F401,E402
from domain.config import get_settings  # noqa: E402
from domain.platform.observability import configure_logging  # noqa: E402

configure_logging(get_settings().log_level)
