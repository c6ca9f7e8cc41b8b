"""The client's auth against the emulator: every credential type, bad input, expiry, single-flight, 401, OAuth rotation,
the process-wide cache across event loops, logout, and that no secret leaks into logs, messages or reprs."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from airflow_provider_anaplan.client._transport import Transport
from airflow_provider_anaplan.client.auth import (
    AnaplanAuth,
    BasicAuth,
    CertificateAuth,
    OAuthRefreshTokenAuth,
    StaticTokenAuth,
    TokenCache,
    token_cache,
)
from airflow_provider_anaplan.client.errors import AnaplanError, AuthenticationError, ConfigurationError, ServerError
from airflow_provider_anaplan.client.settings import ClientSettings
from airflow_provider_anaplan.emulator import DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD, EmulatorApp
from airflow_provider_anaplan.emulator._asgi import json_response

from .conftest import FAST_RETRIES, FakeClock, LiveServer, make_settings

CERT_EMAIL = "cert.user@anaplan.example"
KEY_PASSWORD = "key-pass-phrase-1234"
ROTATING_CLIENT = "5f3a9c1e7b2d4f6a8c0e1b3d5f7a9c2e"
ROTATING_TOKEN = "demo-rotating-refresh-token-0001"
STATIC_CLIENT = "0d4b8e2a6c1f4a9b7e3d5c8a2f6b1e4d"
STATIC_CLIENT_SECRET = "demo-client-secret"
STATIC_REFRESH_TOKEN = "demo-static-refresh-token-0001"
TTL = 2100.0  # the emulator's token lifetime


# --------------------------------------------------------------------------------------------------- certificates
@dataclass
class Kit:
    cert_pem: bytes
    key_pem: bytes  # unencrypted
    encrypted_key_pem: bytes  # the same key, encrypted with KEY_PASSWORD
    other_key_pem: bytes  # an RSA key that does not match cert_pem
    ec_cert_pem: bytes
    ec_key_pem: bytes
    expired_cert_pem: bytes  # cert_pem's key, expired


def _cert(key: Any, email: str, *, days_from: int = -1, days_to: int = 365) -> bytes:
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "Cert User"), x509.NameAttribute(NameOID.EMAIL_ADDRESS, email)]
    )
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + timedelta(days=days_from))
        .not_valid_after(now + timedelta(days=days_to))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Any, password: str | None = None) -> bytes:
    encryption = serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


@pytest.fixture(scope="module")
def kit() -> Kit:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    return Kit(
        cert_pem=_cert(key, CERT_EMAIL),
        key_pem=_key_pem(key),
        encrypted_key_pem=_key_pem(key, KEY_PASSWORD),
        other_key_pem=_key_pem(other),
        ec_cert_pem=_cert(ec_key, CERT_EMAIL),
        ec_key_pem=_key_pem(ec_key),
        expired_cert_pem=_cert(key, CERT_EMAIL, days_from=-400, days_to=-1),
    )


def trust(app: EmulatorApp, cert_pem: bytes) -> None:
    """Register a self-signed certificate with the emulator and create the (password-less) user it names."""
    app.state.trusted_certificates_pem.append(cert_pem)
    app.state.add_user(CERT_EMAIL, None)


def counter(app: EmulatorApp, name: str) -> int:
    return app.state.counters.get(name, 0)


async def whoami(transport: Transport) -> str:
    return (await transport.get_json("users/me"))["user"]["email"]


# --------------------------------------------------------------------------------------------------- basic
@pytest.mark.asyncio
async def test_basic_auth_obtains_one_token_and_reuses_it(transport: Transport, app: EmulatorApp) -> None:
    assert await whoami(transport) == DEFAULT_USER_EMAIL
    assert await whoami(transport) == DEFAULT_USER_EMAIL
    assert counter(app, "auth.authenticate") == 1


@pytest.mark.asyncio
async def test_a_second_transport_with_the_same_credentials_shares_the_token(
    transport: Transport, settings: ClientSettings, app: EmulatorApp
) -> None:
    await whoami(transport)
    async with Transport(settings, BasicAuth(DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD)) as other:
        await whoami(other)
    assert counter(app, "auth.authenticate") == 1


@pytest.mark.asyncio
async def test_wrong_password_is_an_authentication_error(settings: ClientSettings) -> None:
    async with Transport(settings, BasicAuth(DEFAULT_USER_EMAIL, "not-the-password")) as t:
        with pytest.raises(AuthenticationError) as info:
            await t.get_json("users/me")
    assert info.value.status == 401
    assert info.value.anaplan_message == "Invalid username or password"
    assert info.value.path == "/token/authenticate"
    assert "not-the-password" not in str(info.value) + repr(info.value)


@pytest.mark.parametrize(("email", "password"), [("", "x"), ("a@b.c", ""), (None, "x"), ("a@b.c", None), ("  ", "x")])
def test_basic_auth_rejects_missing_credentials(email: Any, password: Any) -> None:
    with pytest.raises(ConfigurationError, match="Missing credentials"):
        BasicAuth(email, password)


def test_transport_without_auth_is_a_configuration_error(settings: ClientSettings) -> None:
    with pytest.raises(ConfigurationError, match="Missing credentials"):
        Transport(settings, None)


# --------------------------------------------------------------------------------------------------- certificate
@pytest.mark.parametrize("version", ["v2", "v1"])
@pytest.mark.asyncio
async def test_certificate_auth_both_payload_formats(
    version: str, kit: Kit, app: EmulatorApp, settings: ClientSettings
) -> None:
    trust(app, kit.cert_pem)
    async with Transport(settings, CertificateAuth(kit.cert_pem, kit.key_pem, payload_version=version)) as t:
        assert await whoami(t) == CERT_EMAIL
    assert counter(app, "auth.authenticate") == 1


@pytest.mark.asyncio
async def test_certificate_auth_from_paths_with_tilde_and_an_encrypted_key(
    kit: Kit, app: EmulatorApp, settings: ClientSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "cert.pem").write_bytes(kit.cert_pem)
    (tmp_path / "key.pem").write_bytes(kit.encrypted_key_pem)
    trust(app, kit.cert_pem)
    auth = CertificateAuth("~/cert.pem", Path("~/key.pem"), private_key_password=KEY_PASSWORD)
    async with Transport(settings, auth) as t:
        assert await whoami(t) == CERT_EMAIL
    assert "v2" in repr(auth) and CERT_EMAIL in repr(auth)


@pytest.mark.asyncio
async def test_certificate_v2_signs_afresh_on_every_authentication(
    kit: Kit, app: EmulatorApp, settings: ClientSettings, clock: FakeClock
) -> None:
    # The emulator refuses a replayed v2 payload, so a second authentication proves a fresh signature.
    trust(app, kit.cert_pem)
    async with Transport(settings, CertificateAuth(kit.cert_pem.decode(), kit.key_pem.decode())) as t:
        await whoami(t)
        clock.advance(TTL + 1)
        await whoami(t)
    assert counter(app, "auth.authenticate") == 2


def _bad_certificate_inputs(kit: Kit, tmp_path: Path) -> list[tuple[dict[str, Any], str]]:
    return [
        ({"certificate": b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"}, "malformed PEM"),
        ({"certificate": kit.key_pem}, "certificate is not PEM"),
        ({"private_key": b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}, "malformed PEM"),
        ({"private_key": kit.encrypted_key_pem, "private_key_password": "wrong"}, "password is wrong"),
        ({"private_key": kit.encrypted_key_pem}, "encrypted: give private_key_password"),
        ({"private_key": kit.other_key_pem}, "does not match the certificate"),
        ({"certificate": kit.ec_cert_pem, "private_key": kit.ec_key_pem}, "must be an RSA key"),
        ({"certificate": kit.expired_cert_pem}, "expired on"),
        ({"certificate": str(tmp_path / "missing.pem")}, "neither PEM content nor a readable file"),
        ({"private_key": str(tmp_path / "missing-key.pem")}, "neither PEM content nor a readable file"),
        ({"certificate": str(tmp_path / "cert\x00.pem")}, "certificate is neither PEM content .* NUL byte"),
        ({"private_key": str(tmp_path / "key\x00.pem")}, "private_key is neither PEM content .* NUL byte"),
        ({"certificate": ""}, "Missing credentials"),
        ({"private_key": None}, "Missing credentials"),
        ({"payload_version": "v3"}, "payload_version"),
    ]


def test_certificate_bad_inputs_fail_up_front_with_their_own_message(
    kit: Kit, app: EmulatorApp, tmp_path: Path
) -> None:
    for overrides, expected in _bad_certificate_inputs(kit, tmp_path):
        options = {"certificate": kit.cert_pem, "private_key": kit.key_pem, **overrides}
        with pytest.raises(ConfigurationError, match=expected):
            CertificateAuth(**options)
    assert app.state.counters == {}, "no request reached the emulator"


def test_certificate_error_messages_hold_no_key_material(kit: Kit) -> None:
    broken = kit.key_pem.replace(b"A", b"B", 50)
    with pytest.raises(ConfigurationError) as info:
        CertificateAuth(kit.cert_pem, broken.decode())
    with pytest.raises(ConfigurationError) as wrong_password:
        CertificateAuth(kit.cert_pem, kit.encrypted_key_pem, private_key_password=KEY_PASSWORD + "x")
    for error in (info.value, wrong_password.value):
        text = str(error) + repr(error)
        assert "PRIVATE KEY" not in text and KEY_PASSWORD not in text


@pytest.mark.asyncio
async def test_untrusted_certificate_is_refused_by_the_server(kit: Kit, settings: ClientSettings) -> None:
    async with Transport(settings, CertificateAuth(kit.cert_pem, kit.key_pem)) as t:
        with pytest.raises(AuthenticationError, match="not trusted"):
            await whoami(t)


# --------------------------------------------------------------------------------------------------- static token
async def _login(settings: ClientSettings) -> str:
    async with httpx.AsyncClient(transport=settings.transport) as raw:
        response = await raw.post(
            f"{settings.auth_url}/token/authenticate",
            auth=httpx.BasicAuth(DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD),
        )
    return response.json()["tokenInfo"]["tokenValue"]


@pytest.mark.asyncio
async def test_static_token_is_used_as_given_and_a_401_is_final(settings: ClientSettings, app: EmulatorApp) -> None:
    value = await _login(settings)
    async with Transport(settings, StaticTokenAuth(value)) as t:
        assert await whoami(t) == DEFAULT_USER_EMAIL
        app.state.revoke_token(app.state.tokens[value])
        with pytest.raises(AuthenticationError, match="static Anaplan token was refused"):
            await whoami(t)
    assert counter(app, "auth.authenticate") == 1  # only our own login above
    assert await token_cache.logout_all() == 0  # never logs out a token the caller handed in
    assert repr(StaticTokenAuth(value)) == "StaticTokenAuth()"


def test_static_token_must_not_be_empty() -> None:
    with pytest.raises(ConfigurationError, match="Missing credentials"):
        StaticTokenAuth("  ")


# --------------------------------------------------------------------------------------------------- expiry and refresh
@pytest.mark.asyncio
async def test_token_is_refreshed_before_it_expires(
    transport: Transport, app: EmulatorApp, clock: FakeClock, settings: ClientSettings
) -> None:
    await whoami(transport)
    first = token_cache.peek(transport.auth, settings)
    clock.advance(TTL - settings.refresh_margin + 1)  # inside the refresh margin, not yet expired
    await whoami(transport)
    second = token_cache.peek(transport.auth, settings)
    assert counter(app, "auth.refresh") == 1 and counter(app, "auth.authenticate") == 1
    assert first is not None and second is not None
    assert second.expires_at_ms is not None and first.expires_at_ms is not None
    assert second.expires_at_ms > first.expires_at_ms


@pytest.mark.asyncio
async def test_expired_token_is_replaced_by_a_new_authentication(
    transport: Transport, app: EmulatorApp, clock: FakeClock
) -> None:
    await whoami(transport)
    clock.advance(TTL + 5)
    await whoami(transport)
    assert counter(app, "auth.authenticate") == 2 and counter(app, "auth.refresh") == 0


@pytest.mark.asyncio
async def test_refused_refresh_falls_back_to_authentication(
    transport: Transport, app: EmulatorApp, clock: FakeClock, settings: ClientSettings
) -> None:
    await whoami(transport)
    token = token_cache.peek(transport.auth, settings)
    assert token is not None
    app.state.revoke_token(app.state.tokens[token.value])
    clock.advance(TTL - 60)
    await whoami(transport)
    assert counter(app, "auth.refresh") == 1 and counter(app, "auth.authenticate") == 2


@pytest.mark.parametrize("how", ["expired", "refused"])
@pytest.mark.asyncio
async def test_single_flight_100_concurrent_requests_one_authentication(
    how: str, transport: Transport, app: EmulatorApp, clock: FakeClock, settings: ClientSettings
) -> None:
    await whoami(transport)
    if how == "expired":
        clock.advance(TTL + 5)  # both the emulator and the client see the token expired
    else:
        token = token_cache.peek(transport.auth, settings)
        assert token is not None
        app.state.revoke_token(app.state.tokens[token.value])  # only the server knows: every request gets a 401
    results = await asyncio.gather(*(whoami(transport) for _ in range(100)))
    assert results == [DEFAULT_USER_EMAIL] * 100
    assert counter(app, "auth.authenticate") == 2


@pytest.mark.asyncio
async def test_401_recreates_the_token_and_replays_once(
    transport: Transport, app: EmulatorApp, settings: ClientSettings
) -> None:
    await whoami(transport)
    token = token_cache.peek(transport.auth, settings)
    assert token is not None
    app.state.revoke_token(app.state.tokens[token.value])
    before = counter(app, "auth.unauthorized")
    assert await whoami(transport) == DEFAULT_USER_EMAIL
    assert counter(app, "auth.unauthorized") == before + 1
    assert counter(app, "auth.authenticate") == 2


@pytest.mark.asyncio
async def test_a_second_401_after_the_replay_is_an_authentication_error(transport: Transport, app: EmulatorApp) -> None:
    calls = 0
    original = app.dispatch

    async def dispatch(request: Any) -> Any:
        if request.path.endswith("/users/me"):
            nonlocal calls
            calls += 1
            return json_response({"status": {"code": 401, "message": "Unauthorized"}}, 401)
        return await original(request)

    app.dispatch = dispatch  # type: ignore[method-assign]
    with pytest.raises(AuthenticationError) as info:
        await whoami(transport)
    assert calls == 2 and info.value.status == 401 and info.value.method == "GET"
    assert counter(app, "auth.authenticate") == 2


# --------------------------------------------------------------------------------------------------- OAuth
@pytest.mark.asyncio
async def test_oauth_rotation_persists_every_new_refresh_token_before_use(
    settings: ClientSettings, app: EmulatorApp, clock: FakeClock
) -> None:
    stored = [ROTATING_TOKEN]
    seen_api_calls: list[int] = []

    def persist(new_token: str) -> None:
        seen_api_calls.append(counter(app, "auth.token_use"))
        assert app.state.live_refresh_token(new_token, ROTATING_CLIENT) is not None
        stored.append(new_token)

    async with Transport(settings, OAuthRefreshTokenAuth(ROTATING_CLIENT, stored[-1], on_refresh_token=persist)) as t:
        assert await whoami(t) == DEFAULT_USER_EMAIL
        clock.advance(TTL + 5)
        assert await whoami(t) == DEFAULT_USER_EMAIL
    assert len(stored) == 3 and len(set(stored)) == 3
    assert seen_api_calls == [0, 1], "each callback ran before the new token was used"
    assert app.state.refresh_tokens[ROTATING_TOKEN].used
    assert counter(app, "oauth.token") == 2
    # A fresh auth built from the originally stored token follows the rotation inside this process.
    clock.advance(TTL + 5)
    async with Transport(
        settings, OAuthRefreshTokenAuth(ROTATING_CLIENT, ROTATING_TOKEN, on_refresh_token=persist)
    ) as t:
        assert await whoami(t) == DEFAULT_USER_EMAIL
    assert len(stored) == 4


@pytest.mark.asyncio
async def test_oauth_async_callback_and_authorization_header(settings: ClientSettings, app: EmulatorApp) -> None:
    stored: list[str] = []

    async def persist(new_token: str) -> None:
        await asyncio.sleep(0)
        stored.append(new_token)

    auth = OAuthRefreshTokenAuth(ROTATING_CLIENT, ROTATING_TOKEN, on_refresh_token=persist)
    async with Transport(settings, auth) as t:
        response = await t.request("GET", "users/me")
    assert response.request.headers["Authorization"].startswith("AnaplanAuthToken ")
    assert len(stored) == 1
    assert repr(auth) == f"OAuthRefreshTokenAuth(client_id={ROTATING_CLIENT!r})"


@pytest.mark.asyncio
async def test_oauth_non_rotating_client_with_secret(settings: ClientSettings, app: EmulatorApp) -> None:
    calls: list[str] = []
    auth = OAuthRefreshTokenAuth(STATIC_CLIENT, STATIC_REFRESH_TOKEN, STATIC_CLIENT_SECRET, calls.append)
    async with Transport(settings, auth) as t:
        assert await whoami(t) == DEFAULT_USER_EMAIL
    assert calls == []  # the same refresh token came back: nothing to persist


@pytest.mark.parametrize(
    ("client_id", "refresh_token", "secret", "match"),
    [
        (ROTATING_CLIENT, "spent-or-unknown", None, "refused the OAuth refresh token"),
        ("ffffffffffffffffffffffffffffffff", ROTATING_TOKEN, None, "Unknown client_id"),
        (STATIC_CLIENT, STATIC_REFRESH_TOKEN, "wrong-secret", "client_secret"),
    ],
)
@pytest.mark.asyncio
async def test_oauth_refusals_are_authentication_errors(
    client_id: str, refresh_token: str, secret: str | None, match: str, settings: ClientSettings
) -> None:
    async with Transport(settings, OAuthRefreshTokenAuth(client_id, refresh_token, secret)) as t:
        with pytest.raises(AuthenticationError, match=match) as info:
            await whoami(t)
    text = str(info.value) + repr(info.value)
    assert refresh_token not in text and (secret is None or secret not in text)


@pytest.mark.asyncio
async def test_oauth_failing_callback_is_reported_and_the_new_token_kept_in_memory(
    settings: ClientSettings, app: EmulatorApp
) -> None:
    stored: list[str] = []

    def flaky(new_token: str) -> None:
        if not stored:
            stored.append("failed")
            raise OSError("disk full")
        stored.append(new_token)

    auth = OAuthRefreshTokenAuth(ROTATING_CLIENT, ROTATING_TOKEN, on_refresh_token=flaky)
    async with Transport(settings, auth) as t:
        with pytest.raises(AnaplanError, match="on_refresh_token failed") as info:
            await whoami(t)
        assert "OSError" in str(info.value)
        assert await whoami(t) == DEFAULT_USER_EMAIL  # rotates again from the in-memory token
    assert len(stored) == 2 and app.state.live_refresh_token(stored[1], ROTATING_CLIENT) is not None


def test_oauth_rejects_missing_credentials() -> None:
    with pytest.raises(ConfigurationError, match="client_id"):
        OAuthRefreshTokenAuth("", ROTATING_TOKEN)
    with pytest.raises(ConfigurationError, match="refresh_token"):
        OAuthRefreshTokenAuth(ROTATING_CLIENT, "")
    with pytest.raises(ConfigurationError, match="callable"):
        OAuthRefreshTokenAuth(ROTATING_CLIENT, ROTATING_TOKEN, on_refresh_token="not callable")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------- loops and logout
def test_two_asyncio_runs_in_a_row_share_one_token(settings: ClientSettings, app: EmulatorApp) -> None:
    transport = Transport(settings, BasicAuth(DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD))

    async def work() -> str:
        try:
            return await whoami(transport)
        finally:
            await transport.aclose()

    assert asyncio.run(work()) == DEFAULT_USER_EMAIL
    assert asyncio.run(work()) == DEFAULT_USER_EMAIL
    assert counter(app, "auth.authenticate") == 1


def test_two_asyncio_runs_over_real_sockets(live_server: LiveServer, clock: FakeClock, app: EmulatorApp) -> None:
    settings = ClientSettings(base_url=live_server.url, clock=clock, timeout=5.0)
    transport = Transport(settings, BasicAuth(DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD))

    async def work() -> str:
        async with transport:
            return await whoami(transport)

    assert asyncio.run(work()) == DEFAULT_USER_EMAIL
    assert asyncio.run(work()) == DEFAULT_USER_EMAIL
    assert counter(app, "auth.authenticate") == 1


@pytest.mark.asyncio
async def test_logout_all_logs_out_tokens_the_cache_obtained(
    transport: Transport, app: EmulatorApp, settings: ClientSettings
) -> None:
    await whoami(transport)
    token = token_cache.peek(transport.auth, settings)
    assert token is not None
    await transport.aclose()  # closing a client never logs out the token it borrowed
    assert counter(app, "auth.logout") == 0
    assert await token_cache.logout_all() == 1
    assert app.state.tokens[token.value].revoked and counter(app, "auth.logout") == 1
    assert await whoami(transport) == DEFAULT_USER_EMAIL  # a new token is obtained on demand
    assert counter(app, "auth.authenticate") == 2


@pytest.mark.asyncio
async def test_tokens_are_keyed_by_auth_url(app: EmulatorApp, clock: FakeClock) -> None:
    auth = BasicAuth(DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD)
    one = make_settings(app, clock)
    two = ClientSettings(base_url="http://other.test", transport=httpx.ASGITransport(app=app), clock=clock)
    for s in (one, two):
        async with Transport(s, auth) as t:
            await whoami(t)
    assert counter(app, "auth.authenticate") == 2
    assert token_cache.peek(auth, one) != token_cache.peek(auth, two)


# --------------------------------------------------------------------------------------------------- no secret leaks
@pytest.mark.asyncio
async def test_no_secret_in_logs_messages_or_reprs(
    kit: Kit, app: EmulatorApp, settings: ClientSettings, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    trust(app, kit.cert_pem)
    texts: list[str] = []
    rotated: list[str] = []
    auths: list[AnaplanAuth] = [
        BasicAuth(DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD),
        CertificateAuth(kit.cert_pem, kit.encrypted_key_pem, KEY_PASSWORD),
        OAuthRefreshTokenAuth(ROTATING_CLIENT, ROTATING_TOKEN, on_refresh_token=rotated.append),
        OAuthRefreshTokenAuth(STATIC_CLIENT, STATIC_REFRESH_TOKEN, STATIC_CLIENT_SECRET),
    ]
    tokens: list[str] = []
    for auth in auths:
        async with Transport(settings, auth) as t:
            await whoami(t)
            clock.advance(TTL - 60)  # refresh
            await whoami(t)
            clock.advance(TTL + 5)  # re-create
            await whoami(t)
            token = token_cache.peek(auth, settings)
            assert token is not None
            tokens.append(token.value)
            app.state.revoke_token(app.state.tokens[token.value])  # 401 and replay
            await whoami(t)
            texts += [repr(auth), str(auth), repr(t), repr(token), repr(settings)]
    failures: list[Any] = [
        BasicAuth(DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD + "x"),
        OAuthRefreshTokenAuth(ROTATING_CLIENT, "an-unknown-refresh-token"),
        OAuthRefreshTokenAuth(STATIC_CLIENT, STATIC_REFRESH_TOKEN, STATIC_CLIENT_SECRET + "x"),
        StaticTokenAuth(tokens[0]),
    ]
    for auth in failures:
        async with Transport(settings, auth) as t:
            with pytest.raises(AnaplanError) as info:
                await whoami(t)
        texts += [str(info.value), repr(info.value), repr(auth), str(info.value.anaplan_message)]
    for bad in ({"private_key_password": "wrong-" + KEY_PASSWORD}, {"private_key": kit.key_pem[:200]}):
        with pytest.raises(ConfigurationError) as config_error:
            CertificateAuth(**{"certificate": kit.cert_pem, "private_key": kit.encrypted_key_pem, **bad})
        texts.append(str(config_error.value))
    texts += [record.getMessage() for record in caplog.records]
    assert any("Refreshed" in t for t in texts) and any("401" in t for t in texts), "the flows were logged"
    secrets = [
        DEFAULT_USER_PASSWORD,
        KEY_PASSWORD,
        ROTATING_TOKEN,
        "an-unknown-refresh-token",
        STATIC_REFRESH_TOKEN,
        STATIC_CLIENT_SECRET,
        *tokens,
        *rotated,
        *app.state.tokens,  # every token value the emulator ever issued
        *app.state.refresh_tokens,
    ]
    # The key in use is the encrypted one (its password is in ``secrets``); the plain key was given in a bad input.
    key_lines = [line for pem in (kit.encrypted_key_pem, kit.key_pem) for line in pem.decode().splitlines()[1:-1]]
    assert len(key_lines) > 40
    blob = "\n".join(texts)
    for secret in [*secrets, *key_lines]:
        assert secret not in blob


def test_exit_time_logout_is_best_effort_and_bounded(settings: ClientSettings, app: EmulatorApp) -> None:
    transport = Transport(settings, BasicAuth(DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD))

    async def work() -> None:
        async with transport:
            await whoami(transport)

    asyncio.run(work())
    token = token_cache.peek(transport.auth, settings)
    assert token is not None
    token_cache._logout_at_exit()  # what atexit runs: its own thread and loop
    assert app.state.tokens[token.value].revoked
    token_cache._logout_at_exit()  # nothing left: a no-op
    assert app.state.counters["auth.logout"] == 1


# --------------------------------------------------------------------------------------------------- review fixes
class AuthRecorder(httpx.AsyncBaseTransport):
    """Passes requests to the emulator and keeps the header and body of every /token/authenticate call."""

    def __init__(self, app: EmulatorApp) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.authentications: list[tuple[str, dict[str, Any]]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token/authenticate":
            self.authentications.append((request.headers["Authorization"], json.loads(request.content)))
        return await self.inner.handle_async_request(request)


@pytest.mark.parametrize("version", ["v2", "v1"])
@pytest.mark.asyncio
async def test_certificate_payload_on_the_wire(
    version: str, kit: Kit, app: EmulatorApp, settings: ClientSettings, clock: FakeClock
) -> None:
    trust(app, kit.cert_pem)
    recorder = AuthRecorder(app)
    auth = CertificateAuth(kit.cert_pem, kit.key_pem, payload_version=version)  # type: ignore[arg-type]
    async with Transport(dataclasses.replace(settings, transport=recorder), auth) as t:
        assert await whoami(t) == CERT_EMAIL
    [(header, body)] = recorder.authentications
    assert header == "CACertificate " + base64.b64encode(kit.cert_pem).decode()
    data = base64.b64decode(body["encodedData"])
    public_key = x509.load_pem_x509_certificate(kit.cert_pem).public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    # SHA512withRSA over the raw bytes, prefix included (verify raises if not)
    public_key.verify(base64.b64decode(body["encodedSignedData"]), data, padding.PKCS1v15(), hashes.SHA512())
    if version == "v2":
        assert body["encodedDataFormat"] == "v2"
        assert len(data) == 8 + 150
        assert int.from_bytes(data[:8], "big") == int(clock())  # 8-byte big-endian epoch seconds
    else:
        assert "encodedDataFormat" not in body
        assert len(data) == 150  # random bytes only, no timestamp prefix
    assert set(body) <= {"encodedData", "encodedSignedData", "encodedDataFormat"}


def test_static_token_must_be_printable_ascii_and_the_error_hides_it() -> None:
    for bad in ("tökén-sécret-value", "token with spaces", "token\r\nX-Injected: 1"):
        with pytest.raises(ConfigurationError, match="printable ASCII") as info:
            StaticTokenAuth(bad)
        assert bad.strip() not in str(info.value) + repr(info.value)
        assert "sécret" not in str(info.value) and "Injected" not in str(info.value)


@pytest.mark.asyncio
async def test_static_token_with_an_expiry_is_used_until_it_has_actually_expired(
    settings: ClientSettings, app: EmulatorApp, clock: FakeClock
) -> None:
    value = await _login(settings)
    auth = StaticTokenAuth(value, expires_at_ms=int((clock() + 120) * 1000))
    async with Transport(settings, auth) as t:
        clock.advance(100)  # inside the refresh margin: nothing could refresh it, and it is still valid
        assert await whoami(t) == DEFAULT_USER_EMAIL
        sent = counter(app, "requests")
        clock.advance(21)  # now past its expiry
        with pytest.raises(AuthenticationError, match="static Anaplan token was refused or has expired"):
            await whoami(t)
    assert counter(app, "requests") == sent, "an expired static token is not even sent"


@pytest.mark.asyncio
async def test_a_failed_proactive_refresh_falls_back_to_the_still_valid_token(
    transport: Transport, app: EmulatorApp, clock: FakeClock, settings: ClientSettings
) -> None:
    await whoami(transport)
    token = token_cache.peek(transport.auth, settings)
    app.faults.add_rule("server_error", path="^/token/", count=1000, status=503)
    clock.advance(TTL - 60)  # inside the refresh margin
    assert await whoami(transport) == DEFAULT_USER_EMAIL
    assert token_cache.peek(transport.auth, settings) == token
    failed = counter(app, "faults.server_error")
    assert failed == settings.max_attempts  # the refresh was tried (with its retries) and given up
    assert await whoami(transport) == DEFAULT_USER_EMAIL
    assert counter(app, "faults.server_error") == failed, "no new try at once after a failed one"
    clock.advance(61)  # expired: now a failure to obtain a token is the request's failure
    with pytest.raises(ServerError):
        await whoami(transport)


@pytest.mark.asyncio
async def test_the_token_lock_is_not_held_during_ordinary_requests(
    transport: Transport, app: EmulatorApp, clock: FakeClock, settings: ClientSettings
) -> None:
    await whoami(transport)
    app.faults.add_rule("delay", method="GET", path="/2/0/workspaces$", seconds=2.0)
    slow = asyncio.create_task(transport.get_json("workspaces"))
    while not counter(app, "faults.latency"):  # noqa: ASYNC110 - polls the emulator until the slow GET arrived
        await asyncio.sleep(0.005)
    clock.advance(TTL - 60)  # the next request refreshes the token first
    assert await whoami(transport) == DEFAULT_USER_EMAIL
    assert counter(app, "auth.refresh") == 1
    assert not slow.done(), "the refresh completed while the slow GET was still in flight"
    assert "workspaces" in await slow


@pytest.mark.asyncio
async def test_oauth_auth_from_a_rotated_token_read_back_follows_the_same_chain(
    settings: ClientSettings, app: EmulatorApp, clock: FakeClock
) -> None:
    stored = [ROTATING_TOKEN]
    first = OAuthRefreshTokenAuth(ROTATING_CLIENT, ROTATING_TOKEN, on_refresh_token=stored.append)
    async with Transport(settings, first) as t:
        assert await whoami(t) == DEFAULT_USER_EMAIL
    # Another hook/operator in this process builds its auth from the token storage: the rotated token.
    second = OAuthRefreshTokenAuth(ROTATING_CLIENT, stored[-1], on_refresh_token=stored.append)
    async with Transport(settings, second) as t:
        assert await whoami(t) == DEFAULT_USER_EMAIL
    assert counter(app, "oauth.token") == 1, "both share one access token"
    clock.advance(TTL + 5)
    for auth in (first, second, first):
        async with Transport(settings, auth) as t:
            assert await whoami(t) == DEFAULT_USER_EMAIL
    assert counter(app, "oauth.token") == 2 and len(stored) == 3
    assert app.state.live_refresh_token(stored[-1], ROTATING_CLIENT) is not None


@pytest.mark.asyncio
async def test_oauth_chains_are_kept_per_secret_and_oauth_url(app: EmulatorApp, clock: FakeClock) -> None:
    one = make_settings(app, clock)
    other_host = ClientSettings(base_url="http://other.test", transport=httpx.ASGITransport(app=app), clock=clock)
    auth = OAuthRefreshTokenAuth(STATIC_CLIENT, STATIC_REFRESH_TOKEN, STATIC_CLIENT_SECRET)
    same = OAuthRefreshTokenAuth(STATIC_CLIENT, STATIC_REFRESH_TOKEN, STATIC_CLIENT_SECRET)
    assert auth.cache_key(one) == same.cache_key(one)
    assert auth.cache_key(one) != OAuthRefreshTokenAuth(STATIC_CLIENT, STATIC_REFRESH_TOKEN, "x").cache_key(one)
    assert auth.cache_key(one) != auth.cache_key(other_host)
    for s in (one, other_host):
        async with Transport(s, auth) as t:
            assert await whoami(t) == DEFAULT_USER_EMAIL
    assert counter(app, "oauth.token") == 2


def test_oauth_refresh_is_single_flight_across_threads_and_event_loops(
    live_server: LiveServer, clock: FakeClock, app: EmulatorApp
) -> None:
    settings = ClientSettings(base_url=live_server.url, clock=clock, timeout=10.0, **FAST_RETRIES)
    app.faults.add_rule("delay", path="^/oauth/token", seconds=0.5, count=2)  # both threads overlap
    stored: list[str] = []
    start = threading.Barrier(2)
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        auth = OAuthRefreshTokenAuth(ROTATING_CLIENT, ROTATING_TOKEN, on_refresh_token=stored.append)

        async def work() -> str:
            async with Transport(settings, auth) as t:
                return await whoami(t)

        start.wait()
        try:
            results.append(asyncio.run(work()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and results == [DEFAULT_USER_EMAIL] * 2
    assert counter(app, "oauth.token") == 1, "one refresh grant for both threads"
    assert len(stored) == 1


@pytest.mark.asyncio
async def test_oauth_invalid_grant_retries_once_with_the_newest_token_of_the_chain(
    settings: ClientSettings, app: EmulatorApp
) -> None:
    stored: list[str] = []

    def transport() -> Transport:  # its own token cache: nothing shared but the rotation chain
        auth = OAuthRefreshTokenAuth(ROTATING_CLIENT, ROTATING_TOKEN, on_refresh_token=stored.append)
        return Transport(settings, auth, tokens=TokenCache())

    first, second = transport(), transport()
    original = app.dispatch
    raced = False

    async def dispatch(request: Any) -> Any:
        nonlocal raced
        if request.path == "/oauth/token" and not raced:
            raced = True
            await whoami(first)  # meanwhile, another user of the credential spends the refresh token
        return await original(request)

    app.dispatch = dispatch  # type: ignore[method-assign]
    assert await whoami(second) == DEFAULT_USER_EMAIL
    assert counter(app, "oauth.token") == 3  # first's grant, second's refused one, second's retry
    assert len(stored) == 2 and app.state.live_refresh_token(stored[-1], ROTATING_CLIENT) is not None


@pytest.mark.parametrize("asynchronous", [False, True])
@pytest.mark.asyncio
async def test_oauth_invalid_grant_retries_once_with_the_stored_refresh_token(
    asynchronous: bool, settings: ClientSettings, app: EmulatorApp
) -> None:
    # Another process rotated the refresh token and stored the new one; this process only knows the spent one.
    async with httpx.AsyncClient(transport=settings.transport) as raw:
        answer = await raw.post(
            f"{settings.oauth_url}/oauth/token",
            json={"grant_type": "refresh_token", "client_id": ROTATING_CLIENT, "refresh_token": ROTATING_TOKEN},
        )
    store = [answer.json()["refresh_token"]]

    async def load_async() -> str:
        return store[-1]

    def load() -> str:
        return store[-1]

    auth = OAuthRefreshTokenAuth(
        ROTATING_CLIENT,
        ROTATING_TOKEN,
        on_refresh_token=store.append,
        load_refresh_token=load_async if asynchronous else load,
    )
    async with Transport(settings, auth) as t:
        assert await whoami(t) == DEFAULT_USER_EMAIL
    assert counter(app, "oauth.token") == 3 and len(store) == 2
    # When the stored token is the refused one too, the refusal stands (one try, no loop).
    spent = OAuthRefreshTokenAuth(ROTATING_CLIENT, "spent-or-unknown", load_refresh_token=lambda: "spent-or-unknown")
    async with Transport(settings, spent) as t:
        with pytest.raises(AuthenticationError, match="invalid_grant"):
            await whoami(t)
    assert counter(app, "oauth.token") == 4


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_forgets_the_parents_tokens_and_never_logs_them_out(
    live_server: LiveServer, clock: FakeClock, app: EmulatorApp
) -> None:
    settings = ClientSettings(base_url=live_server.url, clock=clock, timeout=5.0)
    transport = Transport(settings, BasicAuth(DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD))

    async def work() -> str:
        async with transport:
            return await whoami(transport)

    asyncio.run(work())
    token = token_cache.peek(transport.auth, settings)
    assert token is not None
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 3
        try:
            code = 0 if token_cache.peek(transport.auth, settings) is None else 1
            token_cache._logout_at_exit()  # what atexit runs when the child exits
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child still knew the parent's token"
    assert counter(app, "auth.logout") == 0 and not app.state.tokens[token.value].revoked
    assert token_cache.peek(transport.auth, settings) == token  # the parent keeps its token
