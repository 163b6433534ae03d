"""The Dramatiq entry module: ``dramatiq domain.worker`` loads the broker and every actor, and
runs the outbox relay in each worker process."""

import dramatiq.worker

from domain.actors import load_actors
from domain.config import get_settings
from domain.platform.broker import broker
from domain.platform.observability import configure_logging
from domain.platform.outbox_relay import OutboxRelay

# After Redis comes back, consumers restart (and unacknowledged results are acknowledged) within
# half a second instead of Dramatiq's 3 s and 5 s: queued work resumes as soon as the outbox
# relay has drained.
dramatiq.worker.CONSUMER_RESTART_DELAY_SECS = 0.5
dramatiq.worker.POST_PROCESS_MESSAGE_RETRY_DELAY_SECS = 0.5

load_actors()
# job messages and events leave even when no API process runs
broker.add_middleware(OutboxRelay())
configure_logging(get_settings().log_level)
