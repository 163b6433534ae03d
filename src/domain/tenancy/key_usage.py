"""API keys' last use, recorded in batches off the request path.

A request with an API key only notes the time in process memory (:func:`note`: no I/O, never
fails). The API's :func:`flusher` writes what was noted every :data:`FLUSH_SECONDS`, one
statement per tenant (``api_keys.touch_many``), and once more when the process stops. A key is
written at most once every :data:`TOUCH_EVERY_SECONDS` by each process; a use in between waits
for that (or for the process to stop), so ``last_used_at`` trails the truth by up to a minute.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime

from domain.platform import flushing
from domain.tenancy import api_keys
from domain.tenancy.policies import Principal, PrincipalKind

log = logging.getLogger(__name__)

FLUSH_SECONDS = 2.0
TOUCH_EVERY_SECONDS = 60.0
MAX_PENDING = 100_000  # keys noted and not yet written; beyond it, new keys' uses are dropped

# key id -> (tenant id, latest use); written and swapped on the event loop only
_pending: dict[uuid.UUID, tuple[uuid.UUID, datetime]] = {}
_written_at: dict[uuid.UUID, float] = {}  # key id -> time.monotonic() of its last write here


def note_use(principal: Principal, used_at: datetime | None = None) -> None:
    """A request authenticated as ``principal``: if it is an API key, remember the use."""
    if principal.kind is PrincipalKind.API_KEY:
        note(principal.tenant_id, principal.id, used_at or datetime.now(UTC))


def note(tenant_id: uuid.UUID, key_id: uuid.UUID, used_at: datetime) -> None:
    """Remember a key's use, to be written by the next flush."""
    found = _pending.get(key_id)
    if found is not None:
        if used_at > found[1]:
            _pending[key_id] = (tenant_id, used_at)
    elif len(_pending) < MAX_PENDING:
        _pending[key_id] = (tenant_id, used_at)


def _due(everything: bool) -> dict[uuid.UUID, dict[uuid.UUID, datetime]]:
    """Take the uses to write now, by tenant: every one (``everything``) or those of keys not
    written in the last :data:`TOUCH_EVERY_SECONDS`; the others stay pending."""
    now = time.monotonic()
    by_tenant: dict[uuid.UUID, dict[uuid.UUID, datetime]] = {}
    for key_id, (tenant_id, used_at) in list(_pending.items()):
        if everything or now - _written_at.get(key_id, -TOUCH_EVERY_SECONDS) >= TOUCH_EVERY_SECONDS:
            del _pending[key_id]
            by_tenant.setdefault(tenant_id, {})[key_id] = used_at
    return by_tenant


async def flush(*, everything: bool = False) -> int:
    """Write the uses due (all of them with ``everything``): one statement per tenant. A
    tenant whose write fails keeps its uses for the next flush. Returns how many keys were written."""
    written = 0
    due = _due(everything)
    while due:
        tenant_id, uses = due.popitem()
        try:
            await api_keys.touch_many(tenant_id, uses)
        except Exception as exc:  # PostgreSQL away: keep them (a newer use noted since wins)
            log.warning("could not record API key use: %s", type(exc).__name__)
            _keep(tenant_id, uses)
            continue
        except BaseException:  # the flush itself is stopped: the last flush writes what it took
            for pending in (*due.items(), (tenant_id, uses)):
                _keep(*pending)
            raise
        now = time.monotonic()
        for key_id in uses:
            _written_at[key_id] = now
        written += len(uses)
    if len(_written_at) > MAX_PENDING:  # forget keys written long ago
        cutoff = time.monotonic() - TOUCH_EVERY_SECONDS
        for key_id in [k for k, at in _written_at.items() if at < cutoff]:
            del _written_at[key_id]
    return written


def _keep(tenant_id: uuid.UUID, uses: dict[uuid.UUID, datetime]) -> None:
    for key_id, used_at in uses.items():
        note(tenant_id, key_id, used_at)


def flusher() -> flushing.Flusher:
    """Writes what was noted every :data:`FLUSH_SECONDS` while the API runs, and everything at its stop."""
    return flushing.Flusher("api-key-usage", flush, FLUSH_SECONDS, final=lambda: flush(everything=True))
