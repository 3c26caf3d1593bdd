"""Shared fixtures: every test talks to a real redis-server.

Set ``QMS_TEST_REDIS_URL`` to test against a Redis you run yourself;
otherwise one embedded redis-server is started for the whole session.

That Redis may be shared with other people or test runs, so tests never
FLUSHDB/FLUSHALL: each test writes under keys (or hall ids) of its own,
made unique with ``uuid4``, and deletes what it must.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

# The project is not installed in the test venv, and pytest puts only tests/
# on sys.path: make the project root importable (pyproject's pytest
# ``pythonpath = ["."]`` or ``pip install -e .`` would make this a no-op).
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from qms.embedded_redis import EmbeddedRedis  # noqa: E402
from queue_core.redis_client import create_redis  # noqa: E402


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the session's Redis."""
    override = os.environ.get("QMS_TEST_REDIS_URL")
    if override:
        yield override
        return
    # everysec: the tests do not need a disk flush per write, and it is faster.
    server = EmbeddedRedis.start(tmp_path_factory.mktemp("redis"), fsync="everysec")
    try:
        yield server.url
    finally:
        server.stop()


# Named by ``name=`` so the function does not shadow the ``redis`` package here.
@pytest.fixture(name="redis")
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    """A fresh ``create_redis`` client per test, closed afterwards.

    Async fixtures and tests share one session-wide event loop (pyproject's
    ``asyncio_default_*_loop_scope``); the client is per test so that a test
    that breaks its connections cannot affect the next one.
    """
    client = create_redis(redis_url)
    try:
        yield client
    finally:
        await client.aclose()
