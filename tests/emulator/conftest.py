"""Fixtures for emulator tests: the app in-process (httpx ASGI transport) and on a real loopback socket (uvicorn)."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
import pytest_asyncio
import uvicorn

from airflow_provider_anaplan.emulator import DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD, EmulatorApp, create_app

BASE = "http://emulator.test"


def basic_header(email: str = DEFAULT_USER_EMAIL, password: str = DEFAULT_USER_PASSWORD) -> dict[str, str]:
    """An ``Authorization: Basic`` header for the given credentials."""
    raw = base64.b64encode(f"{email}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


class FakeClock:
    """A clock the tests move by hand, so token expiry needs no sleeping."""

    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(clock: FakeClock) -> EmulatorApp:
    """The emulator with the bundled seed and a hand-moved clock."""
    return create_app(clock=clock)


@pytest_asyncio.fixture
async def client(app: EmulatorApp) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client wired to the emulator in-process through the ASGI transport."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


async def login(
    client: httpx.AsyncClient, email: str = DEFAULT_USER_EMAIL, password: str = DEFAULT_USER_PASSWORD
) -> str:
    """Authenticate with basic auth and return the token value."""
    response = await client.post("/token/authenticate", headers=basic_header(email, password))
    assert response.status_code == 201, response.text
    return response.json()["tokenInfo"]["tokenValue"]


def token_header(token: str) -> dict[str, str]:
    return {"Authorization": f"AnaplanAuthToken {token}"}


@pytest_asyncio.fixture
async def authed(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The in-process client with a valid token for the default user already in its headers."""
    client.headers.update(token_header(await login(client)))
    return client


class LiveServer:
    """The emulator served by uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, app: EmulatorApp) -> None:
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name="emulator-uvicorn", daemon=True)
        self.url = ""

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live_server_factory() -> Iterator[Callable[[EmulatorApp], LiveServer]]:
    """Start any emulator app on a real loopback socket; every server started is stopped after the test."""
    started: list[LiveServer] = []

    def start(app: EmulatorApp) -> LiveServer:
        server = LiveServer(app)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def live_server(app: EmulatorApp, live_server_factory: Callable[[EmulatorApp], LiveServer]) -> LiveServer:
    """The default emulator on a real loopback socket."""
    return live_server_factory(app)
