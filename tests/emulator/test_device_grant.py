"""The emulator's OAuth device grant (RFC 8628): /oauth/device/code, the device-code token grant, admin approval."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from airflow_provider_anaplan.emulator import DEFAULT_USER_EMAIL, EmulatorApp, create_app
from airflow_provider_anaplan.emulator.state import OAuthClient

from .conftest import BASE, FakeClock, token_header
from .test_openapi_walk import Specs

ROTATING_CLIENT = "5f3a9c1e7b2d4f6a8c0e1b3d5f7a9c2e"  # seed: rotatable, no secret (a device-grant client)
SECRET_CLIENT = "0d4b8e2a6c1f4a9b7e3d5c8a2f6b1e4d"  # seed: with a secret (an authorization-code client)
STATIC_DEVICE_CLIENT = "7c1e5a9b3d2f4e6a8b0c2d4e6f8a1b3c"  # added below: a non-rotatable device-grant client
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
ADMIN = "/__emulator/oauth/device"


@pytest.fixture(scope="module")
def specs() -> Specs:
    return Specs.load()


def assert_valid(specs: Specs, response: httpx.Response, pointer: str) -> None:
    errors = specs.errors("oauth", pointer, response.json())
    assert not errors, [e.message for e in errors]


TOKEN_OK = "/paths/~1oauth~1token/post/responses/200/content/application~1json/schema"
CODE_OK = "/paths/~1oauth~1device~1code/post/responses/200/content/application~1json/schema"
ERROR = "/components/schemas/ErrorPayload"


async def start(client: httpx.AsyncClient, client_id: str = ROTATING_CLIENT, **extra: Any) -> dict[str, Any]:
    response = await client.post("/oauth/device/code", json={"client_id": client_id, **extra})
    assert response.status_code == 200, response.text
    return response.json()


async def poll(client: httpx.AsyncClient, device_code: str, client_id: str = ROTATING_CLIENT) -> httpx.Response:
    return await client.post(
        "/oauth/token", json={"grant_type": DEVICE_GRANT, "client_id": client_id, "device_code": device_code}
    )


def error_of(response: httpx.Response) -> str:
    return response.json()["error"]


@pytest.mark.asyncio
async def test_device_code_answer_follows_the_spec(client: httpx.AsyncClient, specs: Specs) -> None:
    response = await client.post("/oauth/device/code", json={"client_id": ROTATING_CLIENT, "scope": "openid email"})
    assert response.status_code == 200
    assert_valid(specs, response, CODE_OK)
    body = response.json()
    assert body["expires_in"] == 900 and body["interval"] == 5
    assert body["verification_uri"] == f"{BASE}{ADMIN}"
    assert body["verification_uri_complete"] == f"{BASE}{ADMIN}?user_code={body['user_code']}"
    assert len(body["user_code"]) == 9 and body["user_code"][4] == "-"
    assert len(body["device_code"]) >= 32
    second = await start(client)
    assert second["device_code"] != body["device_code"] and second["user_code"] != body["user_code"]


@pytest.mark.asyncio
async def test_pending_then_approved_then_used(
    client: httpx.AsyncClient, clock: FakeClock, specs: Specs, app: EmulatorApp
) -> None:
    code = await start(client)
    pending = await poll(client, code["device_code"])
    assert pending.status_code == 400 and error_of(pending) == "authorization_pending"
    assert_valid(specs, pending, ERROR)
    approved = await client.post(f"{ADMIN}/approve", json={"user_code": code["user_code"].lower().replace("-", "")})
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert approved.json()["email"] == DEFAULT_USER_EMAIL and "device_code" not in approved.text
    clock.advance(5)
    tokens = await poll(client, code["device_code"])
    assert tokens.status_code == 200, tokens.text
    assert_valid(specs, tokens, TOKEN_OK)
    body = tokens.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "openid email offline_access"
    me = await client.get("/2/0/users/me", headers=token_header(body["access_token"]))
    assert me.json()["user"]["email"] == DEFAULT_USER_EMAIL
    clock.advance(5)
    again = await poll(client, code["device_code"])
    assert again.status_code == 400 and error_of(again) == "invalid_grant"  # a device code is exchanged once
    # the refresh token rotates, as the client is configured
    refreshed = await client.post(
        "/oauth/token",
        json={"grant_type": "refresh_token", "client_id": ROTATING_CLIENT, "refresh_token": body["refresh_token"]},
    )
    assert refreshed.status_code == 200 and refreshed.json()["refresh_token"] != body["refresh_token"]
    assert app.state.counters["oauth.device_code"] == 1 and app.state.counters["oauth.device_poll"] == 3


@pytest.mark.asyncio
async def test_a_non_rotatable_device_client_keeps_its_refresh_token(
    app: EmulatorApp, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    app.state.oauth_clients[STATIC_DEVICE_CLIENT] = OAuthClient(STATIC_DEVICE_CLIENT, rotatable=False)
    code = await start(client, STATIC_DEVICE_CLIENT)
    await client.post(
        f"{ADMIN}/approve", json={"user_code": code["user_code"], "email": "integration.user@anaplan.example"}
    )
    refresh = (await poll(client, code["device_code"], STATIC_DEVICE_CLIENT)).json()["refresh_token"]
    body = {"grant_type": "refresh_token", "client_id": STATIC_DEVICE_CLIENT, "refresh_token": refresh}
    for _ in range(2):
        answer = await client.post("/oauth/token", json=body)
        assert answer.status_code == 200 and answer.json()["refresh_token"] == refresh
    me = await client.get("/2/0/users/me", headers=token_header(answer.json()["access_token"]))
    assert me.json()["user"]["email"] == "integration.user@anaplan.example"


@pytest.mark.asyncio
async def test_polling_faster_than_the_interval_is_slow_down_and_the_interval_grows(
    client: httpx.AsyncClient, clock: FakeClock, specs: Specs
) -> None:
    code = await start(client)
    assert error_of(await poll(client, code["device_code"])) == "authorization_pending"
    clock.advance(4)  # less than 5
    slow = await poll(client, code["device_code"])
    assert slow.status_code == 400 and error_of(slow) == "slow_down"
    assert_valid(specs, slow, ERROR)
    assert "10 seconds" in slow.json()["error_description"]
    clock.advance(5)  # the old interval is no longer enough
    assert error_of(await poll(client, code["device_code"])) == "slow_down"
    clock.advance(15)  # the interval is now 15
    assert error_of(await poll(client, code["device_code"])) == "authorization_pending"
    shown = (await client.get(ADMIN, params={"user_code": code["user_code"]})).json()
    assert shown["interval"] == 15 and shown["status"] == "pending"


@pytest.mark.asyncio
async def test_denied_and_expired(client: httpx.AsyncClient, clock: FakeClock, specs: Specs) -> None:
    denied = await start(client)
    answer = await client.post(f"{ADMIN}/deny", json={"user_code": denied["user_code"]})
    assert answer.status_code == 200 and answer.json()["status"] == "denied"
    refused = await poll(client, denied["device_code"])
    assert refused.status_code == 400 and error_of(refused) == "access_denied"
    assert_valid(specs, refused, ERROR)
    late = await start(client)
    clock.advance(900)
    expired = await poll(client, late["device_code"])
    assert expired.status_code == 400 and error_of(expired) == "expired_token"
    assert_valid(specs, expired, ERROR)
    assert (await client.get(ADMIN, params={"user_code": late["user_code"]})).json()["status"] == "expired"
    too_late = await client.post(f"{ADMIN}/approve", json={"user_code": late["user_code"]})
    assert too_late.status_code == 409 and "expired" in too_late.json()["error"]


@pytest.mark.asyncio
async def test_bad_requests(app: EmulatorApp, client: httpx.AsyncClient, specs: Specs) -> None:
    unknown = await client.post("/oauth/device/code", json={"client_id": "0" * 32})
    assert unknown.status_code == 401 and error_of(unknown) == "invalid_client"
    secret = await client.post("/oauth/device/code", json={"client_id": SECRET_CLIENT})
    assert secret.status_code == 400 and error_of(secret) == "unauthorized_client"
    assert_valid(specs, secret, ERROR)
    assert error_of(await client.post("/oauth/device/code", json={})) == "invalid_request"
    assert error_of(await client.post("/oauth/device/code", json={"client_id": ROTATING_CLIENT, "scope": 7})) == (
        "invalid_request"
    )
    code = await start(client)
    app.state.oauth_clients[STATIC_DEVICE_CLIENT] = OAuthClient(STATIC_DEVICE_CLIENT)
    assert error_of(await poll(client, code["device_code"], STATIC_DEVICE_CLIENT)) == "invalid_grant"  # not its code
    assert error_of(await poll(client, "made-up")) == "invalid_grant"
    missing = await client.post("/oauth/token", json={"grant_type": DEVICE_GRANT, "client_id": ROTATING_CLIENT})
    assert missing.status_code == 400 and error_of(missing) == "invalid_request"


@pytest.mark.asyncio
async def test_form_encoded_requests_and_no_refresh_token_without_offline_access(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    started = await client.post("/oauth/device/code", data={"client_id": ROTATING_CLIENT, "scope": "openid email"})
    code = started.json()
    await client.post(f"{ADMIN}/approve", json={"user_code": code["user_code"]})
    answer = await client.post(
        "/oauth/token",
        data={"grant_type": DEVICE_GRANT, "client_id": ROTATING_CLIENT, "device_code": code["device_code"]},
    )
    assert answer.status_code == 200 and "refresh_token" not in answer.json()
    assert answer.json()["scope"] == "openid email"


@pytest.mark.asyncio
async def test_admin_routes(client: httpx.AsyncClient, clock: FakeClock) -> None:
    code = await start(client)
    listing = await client.get(ADMIN)
    assert listing.status_code == 200 and code["device_code"] not in listing.text
    (shown,) = listing.json()["requests"]
    assert shown["user_code"] == code["user_code"] and shown["status"] == "pending" and shown["expires_in"] == 900
    assert (await client.get(ADMIN, params={"user_code": "ZZZZ-ZZZZ"})).status_code == 404
    assert (await client.post(f"{ADMIN}/approve", json={"user_code": "ZZZZ-ZZZZ"})).status_code == 404
    assert (await client.post(f"{ADMIN}/approve", json={})).status_code == 400
    nobody = await client.post(f"{ADMIN}/approve", json={"user_code": code["user_code"], "email": "no@one.example"})
    assert nobody.status_code == 400 and "no@one.example" in nobody.json()["error"]
    extra = await client.post(f"{ADMIN}/deny", json={"user_code": code["user_code"], "email": "x"})
    assert extra.status_code == 400
    assert (await client.post(f"{ADMIN}/deny", json={"user_code": code["user_code"]})).status_code == 200
    twice = await client.post(f"{ADMIN}/approve", json={"user_code": code["user_code"]})
    assert twice.status_code == 409 and "denied" in twice.json()["error"]
    # settings: apply to device codes issued afterwards
    assert (await client.get(f"{ADMIN}/settings")).json() == {"interval": 5, "expires_in": 900.0}
    changed = await client.put(f"{ADMIN}/settings", json={"interval": 1, "expires_in": 30})
    assert changed.json() == {"interval": 1, "expires_in": 30.0}
    later = await start(client)
    assert (later["interval"], later["expires_in"]) == (1, 30)
    for bad in ({"interval": -1}, {"interval": 1.5}, {"expires_in": 0}, {"interval": True}, {"speed": 1}):
        answer = await client.post(f"{ADMIN}/settings", json=bad)
        assert answer.status_code == 400, bad


@pytest.mark.asyncio
async def test_state_options_set_the_defaults() -> None:
    app = create_app(clock=FakeClock(), device_interval=2, device_code_ttl=60)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        code = await start(client)
    assert (code["interval"], code["expires_in"]) == (2, 60)
