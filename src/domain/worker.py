"""The Dramatiq entry module: ``dramatiq domain.worker`` loads the broker and every actor."""

from domain.actors import load_actors
from domain.config import get_settings
from domain.platform.observability import configure_logging

load_actors()
configure_logging(get_settings().log_level)
