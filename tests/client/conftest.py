"""Fixtures for client tests: the emulator in-process (httpx ASGI transport) or on loopback (uvicorn), and a ready
``Transport`` logged in as the emulator's default user.

The client never imports the emulator; only these tests put the two together.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from airflow_provider_anaplan.client._transport import Transport
from airflow_provider_anaplan.client.auth import BasicAuth, token_cache
from airflow_provider_anaplan.client.settings import ClientSettings
from airflow_provider_anaplan.emulator import DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD, EmulatorApp, create_app
from tests.emulator.conftest import FakeClock, LiveServer, live_server, live_server_factory  # noqa: F401 - fixtures

BASE = "http://emulator.test"
FAST_RETRIES: dict[str, Any] = {"backoff_base": 0.001, "backoff_cap": 0.005, "max_retry_time": 60.0}


class RecordingSleep:
    """Stands in for ``asyncio.sleep`` between retries: records each delay and only yields to the loop, so a
    ``Retry-After: 30`` costs no time and tests can assert the delays the client chose."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


@pytest.fixture(autouse=True)
def _fresh_token_cache() -> Iterator[None]:
    """Every test starts and ends with an empty process-wide token cache (forgotten, not logged out)."""
    token_cache.clear()
    yield
    token_cache.clear()


@pytest.fixture
def clock() -> FakeClock:
    """A hand-moved clock starting at the real time; give it to both the emulator and the client."""
    return FakeClock(start=float(int(time.time())))


@pytest.fixture
def app(clock: FakeClock) -> EmulatorApp:
    """The emulator with the bundled seed and the shared hand-moved clock."""
    return create_app(clock=clock)


def make_settings(app: Any, clock: Callable[[], float] | None = None, **overrides: Any) -> ClientSettings:
    """Settings that reach ``app`` in-process through httpx's ASGI transport, with tiny retry delays."""
    options: dict[str, Any] = {**FAST_RETRIES, **overrides}
    if clock is not None:
        options.setdefault("clock", clock)
    return ClientSettings(base_url=BASE, transport=httpx.ASGITransport(app=app), **options)


@pytest.fixture
def sleeps() -> RecordingSleep:
    """The retry waits of the ``settings``/``live_settings`` clients (recorded, not slept)."""
    return RecordingSleep()


@pytest.fixture
def settings(app: EmulatorApp, clock: FakeClock, sleeps: RecordingSleep) -> ClientSettings:
    """Client settings pointed at the in-process emulator (retry waits recorded in ``sleeps``, not slept)."""
    return make_settings(app, clock, sleep=sleeps)


@pytest.fixture
def basic_auth() -> BasicAuth:
    """The emulator's default user."""
    return BasicAuth(DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD)


@pytest_asyncio.fixture
async def transport(settings: ClientSettings, basic_auth: BasicAuth) -> AsyncIterator[Transport]:
    """A ready Transport on the in-process emulator, as the default user."""
    t = Transport(settings, basic_auth)
    yield t
    await t.aclose()


@pytest.fixture
def live_settings(live_server: LiveServer, clock: FakeClock, sleeps: RecordingSleep) -> ClientSettings:  # noqa: F811
    """Client settings pointed at the emulator over real HTTP (retry waits recorded in ``sleeps``, not slept)."""
    return ClientSettings(base_url=live_server.url, clock=clock, timeout=5.0, sleep=sleeps, **FAST_RETRIES)


@pytest_asyncio.fixture
async def live_transport(live_settings: ClientSettings, basic_auth: BasicAuth) -> AsyncIterator[Transport]:
    """A ready Transport on the loopback emulator, as the default user."""
    t = Transport(live_settings, basic_auth)
    yield t
    await t.aclose()
