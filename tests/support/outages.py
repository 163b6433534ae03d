"""Stopping the suite's own embedded Redis for a while (the outage tests)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

import conftest


def embedded() -> Any:
    """The suite's embedded PostgreSQL and Redis; skips the test when the suite runs on servers
    it did not start (TEST_DATABASE_URL / TEST_REDIS_URL set)."""
    found = conftest._embedded
    if found is None or "redis" not in found.started or "postgres" not in found.started:
        pytest.skip("needs the suite's embedded PostgreSQL and Redis (TEST_DATABASE_URL / TEST_REDIS_URL unset)")
    return found


@contextlib.asynccontextmanager
async def redis_down() -> AsyncIterator[None]:
    """Redis killed outright for the block, then started again on the same socket (its data
    comes back from the append-only file)."""
    redis = embedded().redis
    redis._proc.kill()
    redis._proc.wait()
    try:
        yield
    finally:
        await asyncio.to_thread(redis.start)
