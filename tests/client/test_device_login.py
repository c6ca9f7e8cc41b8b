"""device_login against the emulator in-process: pending, slow_down, approval, denial, expiry, and no leaked secret."""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from airflow_provider_anaplan.client.auth import OAuthRefreshTokenAuth
from airflow_provider_anaplan.client.client import AnaplanClient
from airflow_provider_anaplan.client.device import (
    DeviceAccessDeniedError,
    DeviceCode,
    DeviceCodeExpiredError,
    DeviceLoginError,
    device_login,
)
from airflow_provider_anaplan.client.errors import AuthenticationError, ConfigurationError, TransportError
from airflow_provider_anaplan.emulator import DEFAULT_USER_EMAIL, EmulatorApp

from .conftest import BASE, FakeClock, make_settings

ROTATING_CLIENT = "5f3a9c1e7b2d4f6a8c0e1b3d5f7a9c2e"
SECRET_CLIENT = "0d4b8e2a6c1f4a9b7e3d5c8a2f6b1e4d"
ADMIN = "/__emulator/oauth/device"


class Scripted:
    """The client's sleep: records each wait and moves the shared clock by it (or by ``short[n]`` for wait n, to
    poll too early); ``actions[n]`` runs after wait n, e.g. an approval through the admin endpoint."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.delays: list[float] = []
        self.actions: dict[int, Callable[[], Awaitable[Any]]] = {}
        self.short: dict[int, float] = {}

    async def __call__(self, seconds: float) -> None:
        n = len(self.delays)
        self.delays.append(seconds)
        self.clock.advance(self.short.get(n, seconds))
        if n in self.actions:
            await self.actions[n]()


class Harness:
    def __init__(self, app: EmulatorApp, clock: FakeClock) -> None:
        self.app = app
        self.sleep = Scripted(clock)
        self.settings = make_settings(app, clock, sleep=self.sleep)
        self.codes: list[DeviceCode] = []

    def on_code(self, code: DeviceCode) -> None:
        self.codes.append(code)

    async def admin(self, action: str, **body: Any) -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=BASE) as admin:
            response = await admin.post(f"{ADMIN}/{action}", json={"user_code": self.codes[-1].user_code, **body})
            assert response.status_code == 200, response.text

    def after_wait(self, n: int, action: str, **body: Any) -> None:
        self.sleep.actions[n] = lambda: self.admin(action, **body)

    async def login(self, client_id: str = ROTATING_CLIENT, **kwargs: Any) -> Any:
        return await device_login(client_id, self.on_code, settings=self.settings, **kwargs)


@pytest.fixture
def harness(app: EmulatorApp, clock: FakeClock) -> Harness:
    return Harness(app, clock)


@pytest.mark.asyncio
async def test_pending_until_approved_then_the_refresh_token_works(harness: Harness, app: EmulatorApp) -> None:
    harness.after_wait(2, "approve")  # approved while the third poll is on its way
    result = await harness.login()
    (code,) = harness.codes
    assert code.verification_uri.endswith(ADMIN) and code.user_code in (code.verification_uri_complete or "")
    assert (code.interval, code.expires_in) == (5.0, 900.0)
    assert harness.sleep.delays == [5.0, 5.0, 5.0]  # two authorization_pending answers, then the tokens
    assert app.state.counters["oauth.device_poll"] == 3
    assert result.client_id == ROTATING_CLIENT and result.scope and "offline_access" in result.scope
    # the refresh token is what an oauth connection needs
    stored: list[str] = []
    auth = OAuthRefreshTokenAuth(ROTATING_CLIENT, result.refresh_token, on_refresh_token=stored.append)
    async with AnaplanClient(auth, settings=harness.settings) as client:
        assert (await client.get_current_user()).email == DEFAULT_USER_EMAIL
    assert stored and stored[0] != result.refresh_token  # the rotating client rotated it


@pytest.mark.asyncio
async def test_slow_down_adds_five_seconds_for_good(harness: Harness) -> None:
    harness.sleep.short[1] = 2.0  # the second poll arrives 2 s after the first: the server says slow_down
    harness.after_wait(3, "approve")
    await harness.login()
    assert harness.sleep.delays == [5.0, 5.0, 10.0, 10.0]


@pytest.mark.asyncio
async def test_a_small_interval_is_raised_to_one_second(harness: Harness, app: EmulatorApp) -> None:
    app.state.device_interval = 0
    harness.after_wait(0, "approve")
    await harness.login(scope="openid email offline_access")
    assert harness.sleep.delays == [1.0]


@pytest.mark.asyncio
async def test_denied(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    harness.after_wait(1, "deny")
    with pytest.raises(DeviceAccessDeniedError, match="was denied \\(access_denied\\)") as caught:
        await harness.login()
    assert isinstance(caught.value, AuthenticationError) and caught.value.anaplan_message == "access_denied"
    assert harness.codes[0].device_code not in str(caught.value) + repr(caught.value) + caplog.text


@pytest.mark.asyncio
async def test_expired(harness: Harness, app: EmulatorApp) -> None:
    app.state.device_code_ttl = 12
    with pytest.raises(DeviceCodeExpiredError, match="expired \\(expired_token\\) before anyone approved it"):
        await harness.login()
    assert harness.sleep.delays == [5.0, 5.0, 5.0]  # pending at 5 and 10 s; expired at 15 s


@pytest.mark.asyncio
async def test_expires_locally_when_the_server_keeps_saying_pending(harness: Harness, app: EmulatorApp) -> None:
    app.state.device_code_ttl = 12

    async def dispatch(request: Any) -> Any:
        if request.path == "/oauth/token":  # the code never expires on the server
            app.state.device_authorizations[next(iter(app.state.device_authorizations))].expires_at += 100
        return await original(request)

    original = app.dispatch
    app.dispatch = dispatch  # type: ignore[method-assign]
    with pytest.raises(DeviceCodeExpiredError):
        await harness.login()
    assert len(harness.sleep.delays) == 3


@pytest.mark.asyncio
async def test_transient_failures_while_polling_are_tolerated(harness: Harness, app: EmulatorApp) -> None:
    app.faults.add_rule("server_error", method="POST", path="^/oauth/token$", count=1, status=503)
    app.faults.add_rule("reset", method="POST", path="^/oauth/token$", count=1)
    harness.after_wait(2, "approve")
    result = await harness.login()
    assert result.refresh_token and len(harness.sleep.delays) == 3


@pytest.mark.asyncio
async def test_polling_gives_up_after_max_attempts_failures(harness: Harness, app: EmulatorApp) -> None:
    app.faults.add_rule("reset", method="POST", path="^/oauth/token$", count=10)
    with pytest.raises(TransportError):
        await harness.login()
    assert len(harness.sleep.delays) == harness.settings.max_attempts


@pytest.mark.asyncio
async def test_clients_that_cannot_use_the_device_grant(harness: Harness) -> None:
    with pytest.raises(AuthenticationError, match=r"does not know the OAuth client '0{32}' \(invalid_client\)"):
        await harness.login("0" * 32)
    with pytest.raises(AuthenticationError, match="is not registered for the device grant"):
        await harness.login(SECRET_CLIENT)
    with pytest.raises(ConfigurationError, match="client_id is empty"):
        await harness.login(" ")
    with pytest.raises(ConfigurationError, match="on_code must be a callable"):
        await device_login(ROTATING_CLIENT, "print", settings=harness.settings)  # type: ignore[arg-type]
    assert harness.codes == []


@pytest.mark.asyncio
async def test_no_offline_access_means_no_refresh_token(harness: Harness) -> None:
    harness.after_wait(0, "approve")
    with pytest.raises(DeviceLoginError, match="request the offline_access scope"):
        await harness.login(scope="openid email")


@pytest.mark.asyncio
async def test_async_callback_and_oauth_url_option(app: EmulatorApp, clock: FakeClock) -> None:
    sleep = Scripted(clock)
    seen: list[str] = []

    async def show(code: DeviceCode) -> None:
        seen.append(code.user_code)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as admin:
            await admin.post(f"{ADMIN}/approve", json={"user_code": code.user_code})

    settings = make_settings(app, clock, sleep=sleep)
    result = await device_login(ROTATING_CLIENT, show, settings=settings, oauth_url=BASE)
    assert seen and result.refresh_token


@pytest.mark.asyncio
async def test_secrets_never_reach_logs_messages_or_reprs(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    harness.after_wait(1, "approve")
    result = await harness.login()
    code = harness.codes[0]
    texts = [repr(code), str(code), repr(result), str(result), caplog.text]
    harness.codes.clear()
    harness.sleep.delays.clear()
    harness.after_wait(1, "deny")
    with pytest.raises(DeviceAccessDeniedError) as caught:
        await harness.login()
    texts += [str(caught.value), repr(caught.value), caplog.text]
    secrets = [code.device_code, harness.codes[0].device_code, result.refresh_token, result.access_token]
    for text in texts:
        for secret in secrets:
            for form in (secret, base64.b64encode(secret.encode()).decode()):
                assert form not in text
    assert code.user_code in caplog.text  # what a person needs to see is logged
    assert "Device login for OAuth client" in caplog.text
