"""Segment automations (enter, exit, periodic): see run_for_changes."""

from __future__ import annotations

import uuid
from datetime import datetime


async def run_for_changes(tenant_id: uuid.UUID, segment_id: uuid.UUID, at: datetime) -> None:
    """Run the segment's enter/exit automations for the membership changes made at ``at``."""
