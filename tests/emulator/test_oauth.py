"""The emulated OAuth 2.0 token endpoint: the refresh_token grant, rotation, client checks and error bodies."""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from airflow_provider_anaplan.emulator import DEFAULT_USER_EMAIL, EmulatorApp
from airflow_provider_anaplan.emulator._asgi import Request, Response, json_response
from airflow_provider_anaplan.emulator.auth import require_user

from .conftest import FakeClock, LiveServer, token_header

SPEC_FILE = Path(__file__).parents[3] / "shared" / "anaplan-openapi" / "oauth-openapi.json"
TOKEN_SCHEMA = "urn:anaplan-oauth#/paths/~1oauth~1token/post/responses/200/content/application~1json/schema"
# RFC 6749 section 5.2 codes the emulator sends that the spec's ErrorPayload enum leaves out (see docs/emulator.md).
RFC_ONLY_ERRORS = ("invalid_client", "unsupported_grant_type")


# --------------------------------------------------------------------------------------------------- spec validation
@cache
def _spec() -> dict[str, Any]:
    return json.loads(SPEC_FILE.read_text("utf-8"))  # a missing spec fails the test: nothing is skipped


@cache
def _registry() -> Registry:
    return Registry().with_resource("urn:anaplan-oauth", Resource.from_contents(_spec(), default_specification=DRAFT4))


def assert_token_response(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    OAS30Validator({"$ref": TOKEN_SCHEMA}, registry=_registry(), format_checker=oas30_format_checker).validate(body)
    assert body["token_type"] == "Bearer"
    assert {"access_token", "refresh_token", "scope", "expires_in"} <= set(body)
    return body


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> None:
    """Check status and error code, and validate the body against the spec's OAuthError response."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    schema = _spec()["paths"]["/oauth/token"]["post"]["responses"][str(status)]
    assert schema == {"$ref": "#/components/responses/OAuthError"}
    payload = copy.deepcopy(_spec()["components"]["schemas"]["ErrorPayload"])
    if error in RFC_ONLY_ERRORS:
        payload["properties"]["error"]["enum"].append(error)  # the one allowed deviation from the spec
    OAS30Validator(payload, format_checker=oas30_format_checker).validate(body)


def test_spec_file_is_present() -> None:
    assert SPEC_FILE.is_file(), f"the OpenAPI spec is missing: {SPEC_FILE}"


# --------------------------------------------------------------------------------------------------- seeded clients
@dataclass
class Grant:
    client_id: str
    client_secret: str | None
    refresh_token: str

    def body(self, refresh_token: str | None = None, **extra: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "refresh_token": refresh_token or self.refresh_token,
        }
        if self.client_secret is not None:
            out["client_secret"] = self.client_secret
        out.update(extra)
        return out


def _seeded_grant(app: EmulatorApp, *, rotatable: bool) -> Grant:
    client = next(c for c in app.state.oauth_clients.values() if c.rotatable is rotatable)
    token = next(t.value for t in app.state.refresh_tokens.values() if t.client_id == client.client_id)
    return Grant(client.client_id, client.client_secret, token)


@pytest.fixture
def rotating(app: EmulatorApp) -> Grant:
    """The seed's rotatable client (a device-grant style client without a secret)."""
    return _seeded_grant(app, rotatable=True)


@pytest.fixture
def static(app: EmulatorApp) -> Grant:
    """The seed's non-rotatable client (an auth-code style client with a secret)."""
    grant = _seeded_grant(app, rotatable=False)
    assert grant.client_secret is not None
    return grant


WHOAMI = "/2/0/emulator-test/oauth-whoami"


def add_whoami_route(app: EmulatorApp) -> None:
    """A stand-in Integration route guarded by require_user."""

    async def whoami(request: Request) -> Response:
        return json_response({"email": require_user(app.state, request).email})

    app.router.add("GET", WHOAMI, whoami)


# --------------------------------------------------------------------------------------------------- rotation
@pytest.mark.asyncio
async def test_rotatable_refresh_token_is_single_use(client: httpx.AsyncClient, rotating: Grant) -> None:
    first = assert_token_response(await client.post("/oauth/token", json=rotating.body()))
    assert first["refresh_token"] != rotating.refresh_token
    assert first["scope"] == "openid email offline_access"
    assert first["expires_in"] == 2100

    reused = await client.post("/oauth/token", json=rotating.body())
    assert_oauth_error(reused, 400, "invalid_grant")

    second = assert_token_response(await client.post("/oauth/token", json=rotating.body(first["refresh_token"])))
    assert second["refresh_token"] not in (first["refresh_token"], rotating.refresh_token)
    assert second["access_token"] != first["access_token"]
    assert_oauth_error(
        await client.post("/oauth/token", json=rotating.body(first["refresh_token"])), 400, "invalid_grant"
    )


@pytest.mark.asyncio
async def test_rotated_refresh_token_expires_after_client_ttl(
    app: EmulatorApp, client: httpx.AsyncClient, clock: FakeClock, rotating: Grant
) -> None:
    issued = assert_token_response(await client.post("/oauth/token", json=rotating.body()))
    clock.advance(app.state.oauth_clients[rotating.client_id].refresh_token_ttl + 1)
    expired = await client.post("/oauth/token", json=rotating.body(issued["refresh_token"]))
    assert_oauth_error(expired, 400, "invalid_grant")


@pytest.mark.asyncio
async def test_non_rotatable_refresh_token_is_returned_unchanged(
    client: httpx.AsyncClient, clock: FakeClock, static: Grant
) -> None:
    first = assert_token_response(await client.post("/oauth/token", json=static.body()))
    clock.advance(10 * 365 * 86400)  # non-rotatable refresh tokens never expire
    second = assert_token_response(await client.post("/oauth/token", json=static.body()))
    assert first["refresh_token"] == second["refresh_token"] == static.refresh_token
    assert first["access_token"] != second["access_token"]


@pytest.mark.asyncio
async def test_form_encoded_body_is_accepted(client: httpx.AsyncClient, rotating: Grant) -> None:
    response = await client.post("/oauth/token", data=rotating.body())
    assert_token_response(response)


# --------------------------------------------------------------------------------------------------- access tokens
@pytest.mark.asyncio
@pytest.mark.parametrize("scheme", ["AnaplanAuthToken", "Bearer"])
async def test_access_token_works_on_the_api(
    app: EmulatorApp, client: httpx.AsyncClient, rotating: Grant, scheme: str
) -> None:
    add_whoami_route(app)
    access = assert_token_response(await client.post("/oauth/token", json=rotating.body()))["access_token"]
    response = await client.get(WHOAMI, headers={"Authorization": f"{scheme} {access}"})
    assert response.status_code == 200
    assert response.json() == {"email": DEFAULT_USER_EMAIL}


@pytest.mark.asyncio
async def test_access_token_expires_after_token_ttl(
    app: EmulatorApp, client: httpx.AsyncClient, clock: FakeClock, static: Grant
) -> None:
    add_whoami_route(app)
    body = assert_token_response(await client.post("/oauth/token", json=static.body()))
    clock.advance(body["expires_in"] + 1)
    assert (await client.get(WHOAMI, headers=token_header(body["access_token"]))).status_code == 401


@pytest.mark.asyncio
async def test_id_token_names_the_user(client: httpx.AsyncClient, rotating: Grant) -> None:
    body = assert_token_response(await client.post("/oauth/token", json=rotating.body()))
    payload = body["id_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["email"] == DEFAULT_USER_EMAIL
    assert claims["aud"] == rotating.client_id


# --------------------------------------------------------------------------------------------------- refusals
@pytest.mark.asyncio
async def test_unknown_client_is_refused(client: httpx.AsyncClient, rotating: Grant) -> None:
    response = await client.post("/oauth/token", json=rotating.body(client_id="0" * 32))
    assert_oauth_error(response, 401, "invalid_client")


@pytest.mark.asyncio
@pytest.mark.parametrize("secret", ["wrong-secret", None])
async def test_wrong_or_missing_client_secret_is_refused(
    client: httpx.AsyncClient, static: Grant, secret: str | None
) -> None:
    body = static.body(client_secret=secret)
    if secret is None:
        del body["client_secret"]
    assert_oauth_error(await client.post("/oauth/token", json=body), 401, "invalid_client")


@pytest.mark.asyncio
async def test_refresh_token_of_another_client_is_refused(
    client: httpx.AsyncClient, rotating: Grant, static: Grant
) -> None:
    response = await client.post("/oauth/token", json=static.body(rotating.refresh_token))
    assert_oauth_error(response, 400, "invalid_grant")
    # the refusal did not consume the rotating client's token
    assert_token_response(await client.post("/oauth/token", json=rotating.body()))


@pytest.mark.asyncio
async def test_unknown_refresh_token_is_refused(client: httpx.AsyncClient, rotating: Grant) -> None:
    response = await client.post("/oauth/token", json=rotating.body("no-such-refresh-token"))
    assert_oauth_error(response, 400, "invalid_grant")


@pytest.mark.asyncio
@pytest.mark.parametrize("grant_type", ["client_credentials", "password"])  # the device grant: test_device_grant.py
async def test_unsupported_grant_type(client: httpx.AsyncClient, rotating: Grant, grant_type: str) -> None:
    response = await client.post("/oauth/token", json=rotating.body(grant_type=grant_type))
    assert_oauth_error(response, 400, "unsupported_grant_type")


@pytest.mark.asyncio
@pytest.mark.parametrize("missing", ["grant_type", "client_id", "refresh_token"])
async def test_missing_parameter_is_invalid_request(client: httpx.AsyncClient, rotating: Grant, missing: str) -> None:
    body = rotating.body()
    del body[missing]
    assert_oauth_error(await client.post("/oauth/token", json=body), 400, "invalid_request")


@pytest.mark.asyncio
@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b""])
async def test_malformed_body_is_invalid_request(client: httpx.AsyncClient, content: bytes) -> None:
    response = await client.post("/oauth/token", content=content, headers={"Content-Type": "application/json"})
    assert_oauth_error(response, 400, "invalid_request")


# --------------------------------------------------------------------------------------------------- over a socket
def test_oauth_rotation_over_loopback(live_server: LiveServer, app: EmulatorApp) -> None:
    rotating = _seeded_grant(app, rotatable=True)
    with httpx.Client(base_url=live_server.url) as http:
        first = assert_token_response(http.post("/oauth/token", json=rotating.body()))
        assert_oauth_error(http.post("/oauth/token", json=rotating.body()), 400, "invalid_grant")
        assert_token_response(http.post("/oauth/token", json=rotating.body(first["refresh_token"])))
        validated = http.get("/token/validate", headers=token_header(first["access_token"]))
        assert validated.status_code == 200
        assert validated.json()["userInfo"]["userId"] == DEFAULT_USER_EMAIL
