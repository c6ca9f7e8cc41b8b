"""The emulated authentication service: basic and certificate login, refresh, validate, logout, and require_user."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from airflow_provider_anaplan.emulator import DEFAULT_USER_EMAIL, EmulatorApp, create_app
from airflow_provider_anaplan.emulator._asgi import Request, Response, json_response
from airflow_provider_anaplan.emulator.auth import require_user

from .conftest import FakeClock, LiveServer, basic_header, login, token_header

SPEC_FILE = Path(__file__).parents[3] / "shared" / "anaplan-openapi" / "authentication-openapi.json"
CERT_EMAIL = "cert.user@anaplan.example"  # named by the leaf certificate's subject emailAddress
SELF_SIGNED_EMAIL = "self.signed@anaplan.example"  # named by the self-signed certificate's CN
START = datetime.fromtimestamp(FakeClock().now, UTC)


# --------------------------------------------------------------------------------------------------- spec validation
@cache
def _registry() -> Registry:
    spec = json.loads(SPEC_FILE.read_text("utf-8"))  # a missing spec fails the test: nothing is skipped
    return Registry().with_resource("urn:anaplan-auth", Resource.from_contents(spec, default_specification=DRAFT4))


def assert_spec(response: httpx.Response, path: str, method: str) -> dict[str, Any]:
    """Validate a JSON response against the auth spec's schema for its status code, and return the body."""
    pointer = path.replace("~", "~0").replace("/", "~1")
    status = str(response.status_code)
    schema = {"$ref": f"urn:anaplan-auth#/paths/{pointer}/{method}/responses/{status}/content/application~1json/schema"}
    if status == "400" and path == "/token/authenticate":
        # The spec lists only 201 and 401 here; live Anaplan also answers 400 (a malformed header) with the same body.
        schema = {"$ref": "urn:anaplan-auth#/components/schemas/ErrorResponse"}
    body = response.json()
    OAS30Validator(schema, registry=_registry(), format_checker=oas30_format_checker).validate(body)
    return body


def assert_auth_error(response: httpx.Response, path: str, method: str, status: int) -> str:
    assert response.status_code == status, response.text
    body = assert_spec(response, path, method)
    assert body["status"] == ("FAILURE_BAD_HEADER" if status == 400 else "FAILURE_BAD_CREDENTIAL")
    assert body["statusMessage"]
    return body["statusMessage"]


def test_spec_file_is_present() -> None:
    assert SPEC_FILE.is_file(), f"the OpenAPI spec is missing: {SPEC_FILE}"


# --------------------------------------------------------------------------------------------------- certificates
@dataclass
class CertKit:
    """Keys and certificates generated once per module (RSA generation is the slow part)."""

    ca_key: rsa.RSAPrivateKey
    ca_cert: x509.Certificate
    leaf_key: rsa.RSAPrivateKey
    leaf_cert: x509.Certificate  # issued by ca_cert for CERT_EMAIL
    self_key: rsa.RSAPrivateKey
    self_cert: x509.Certificate  # self-signed, CN = SELF_SIGNED_EMAIL
    expired_cert: x509.Certificate  # self-signed with self_key, expired before START
    rogue_leaf: x509.Certificate  # carries ca_cert's issuer name but is signed by another key
    ec_key: ec.EllipticCurvePrivateKey
    ec_cert: x509.Certificate  # self-signed with an EC key


def _name(common_name: str, email: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if email:
        attributes.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, email))
    return x509.Name(attributes)


def _certificate(
    subject: x509.Name,
    public_key: Any,
    issuer: x509.Name,
    signing_key: Any,
    *,
    is_ca: bool = False,
    not_before: datetime = START - timedelta(days=1),
    not_after: datetime = START + timedelta(days=365),
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    return builder.sign(signing_key, hashes.SHA256())


@pytest.fixture(scope="module")
def certs() -> CertKit:
    def rsa_key() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    ca_key, leaf_key, self_key = rsa_key(), rsa_key(), rsa_key()
    ca_name = _name("Emulator Test CA")
    ca_cert = _certificate(ca_name, ca_key.public_key(), ca_name, ca_key, is_ca=True)
    leaf_cert = _certificate(_name("Cert User", CERT_EMAIL), leaf_key.public_key(), ca_name, ca_key)
    self_name = _name(SELF_SIGNED_EMAIL)
    self_cert = _certificate(self_name, self_key.public_key(), self_name, self_key)
    expired = _certificate(
        self_name,
        self_key.public_key(),
        self_name,
        self_key,
        not_before=START - timedelta(days=400),
        not_after=START - timedelta(days=1),
    )
    rogue_leaf = _certificate(_name("Cert User", CERT_EMAIL), leaf_key.public_key(), ca_name, self_key)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_name = _name("EC User", CERT_EMAIL)
    ec_cert = _certificate(ec_name, ec_key.public_key(), ec_name, ec_key)
    return CertKit(ca_key, ca_cert, leaf_key, leaf_cert, self_key, self_cert, expired, rogue_leaf, ec_key, ec_cert)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def trust(app: EmulatorApp, *certificates: x509.Certificate) -> None:
    """Register certificates and create the users they name (certificate users have no password)."""
    app.state.trusted_certificates_pem.extend(_pem(c) for c in certificates)
    app.state.add_user(CERT_EMAIL, None)
    app.state.add_user(SELF_SIGNED_EMAIL, None)


def v2_data(stamp: int, random_size: int = 100) -> bytes:
    return stamp.to_bytes(8, "big") + os.urandom(random_size)


def cert_request(
    cert: x509.Certificate,
    key: Any,
    *,
    data: bytes | None = None,
    v2: bool = False,
    der: bool = False,
    signed: bytes | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``client.post('/token/authenticate', ...)`` with certificate auth."""
    data = os.urandom(150) if data is None else data
    if signed is None:
        signed = data
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(signed, padding.PKCS1v15(), hashes.SHA512())
    else:
        signature = key.sign(signed, ec.ECDSA(hashes.SHA512()))
    encoding = serialization.Encoding.DER if der else serialization.Encoding.PEM
    header = base64.b64encode(cert.public_bytes(encoding)).decode()
    body: dict[str, Any] = {
        "encodedData": base64.b64encode(data).decode(),
        "encodedSignedData": base64.b64encode(signature).decode(),
    }
    if v2:
        body["encodedDataFormat"] = "v2"
    return {"headers": {"Authorization": f"CACertificate {header}"}, "json": body}


async def validated_email(client: httpx.AsyncClient, token: str) -> str:
    response = await client.get("/token/validate", headers=token_header(token))
    assert response.status_code == 200, response.text
    return assert_spec(response, "/token/validate", "get")["userInfo"]["userId"]


# --------------------------------------------------------------------------------------------------- basic
@pytest.mark.asyncio
async def test_basic_login_returns_201_and_a_token(client: httpx.AsyncClient, clock: FakeClock) -> None:
    response = await client.post("/token/authenticate", headers=basic_header())
    assert response.status_code == 201
    body = assert_spec(response, "/token/authenticate", "post")
    assert body["status"] == "SUCCESS"
    assert body["statusMessage"] == "Login successful"
    assert body["meta"] == {"validationUrl": "https://auth.anaplan.com/token/validate"}
    info = body["tokenInfo"]
    assert set(info) == {"tokenId", "tokenValue", "expiresAt", "refreshTokenId"}
    assert info["expiresAt"] == int((clock.now + 2100) * 1000)
    assert await validated_email(client, info["tokenValue"]) == DEFAULT_USER_EMAIL


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("email", "password"),
    [(DEFAULT_USER_EMAIL, "wrong"), ("nobody@anaplan.example", "emulator-password"), (DEFAULT_USER_EMAIL, "")],
)
async def test_basic_login_refuses_bad_credentials(client: httpx.AsyncClient, email: str, password: str) -> None:
    response = await client.post("/token/authenticate", headers=basic_header(email, password))
    assert_auth_error(response, "/token/authenticate", "post", 401)


@pytest.mark.asyncio
async def test_basic_login_refuses_a_user_without_password(app: EmulatorApp, client: httpx.AsyncClient) -> None:
    app.state.add_user(CERT_EMAIL, None)
    response = await client.post("/token/authenticate", headers=basic_header(CERT_EMAIL, ""))
    assert_auth_error(response, "/token/authenticate", "post", 401)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "authorization",
    [
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        "AnaplanAuthToken abc",
        "Bearer abc",
        "Negotiate abc",
    ],
)
async def test_malformed_authenticate_header_is_400(client: httpx.AsyncClient, authorization: str) -> None:
    response = await client.post("/token/authenticate", headers={"Authorization": authorization})
    assert_auth_error(response, "/token/authenticate", "post", 400)


@pytest.mark.asyncio
async def test_missing_authenticate_header_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/token/authenticate")
    assert_auth_error(response, "/token/authenticate", "post", 401)


@pytest.mark.asyncio
async def test_token_ttl_setting_sets_expiry(clock: FakeClock) -> None:
    app = create_app(clock=clock, token_ttl=60)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emulator.test") as client:
        response = await client.post("/token/authenticate", headers=basic_header())
    assert response.json()["tokenInfo"]["expiresAt"] == int((clock.now + 60) * 1000)


# --------------------------------------------------------------------------------------------------- certificates
@pytest.mark.asyncio
@pytest.mark.parametrize("der", [False, True], ids=["pem-header", "der-header"])
async def test_certificate_v1_self_signed_trusted(
    app: EmulatorApp, client: httpx.AsyncClient, certs: CertKit, der: bool
) -> None:
    trust(app, certs.self_cert)
    response = await client.post("/token/authenticate", **cert_request(certs.self_cert, certs.self_key, der=der))
    assert response.status_code == 201, response.text
    body = assert_spec(response, "/token/authenticate", "post")
    assert body["statusMessage"] == "Login successful"
    assert await validated_email(client, body["tokenInfo"]["tokenValue"]) == SELF_SIGNED_EMAIL


@pytest.mark.asyncio
async def test_certificate_v1_leaf_issued_by_trusted_ca(
    app: EmulatorApp, client: httpx.AsyncClient, certs: CertKit
) -> None:
    trust(app, certs.ca_cert)
    response = await client.post("/token/authenticate", **cert_request(certs.leaf_cert, certs.leaf_key))
    assert response.status_code == 201, response.text
    token = assert_spec(response, "/token/authenticate", "post")["tokenInfo"]["tokenValue"]
    assert await validated_email(client, token) == CERT_EMAIL


@pytest.mark.asyncio
async def test_certificate_v1_payload_may_be_reused(
    app: EmulatorApp, client: httpx.AsyncClient, certs: CertKit
) -> None:
    trust(app, certs.ca_cert)
    request = cert_request(certs.leaf_cert, certs.leaf_key)
    assert (await client.post("/token/authenticate", **request)).status_code == 201
    assert (await client.post("/token/authenticate", **request)).status_code == 201


@pytest.mark.asyncio
@pytest.mark.parametrize("unit", ["seconds", "milliseconds"])
async def test_certificate_v2_accepts_seconds_or_milliseconds(
    app: EmulatorApp, client: httpx.AsyncClient, clock: FakeClock, certs: CertKit, unit: str
) -> None:
    trust(app, certs.ca_cert)
    stamp = int(clock.now) if unit == "seconds" else int(clock.now * 1000)
    request = cert_request(certs.leaf_cert, certs.leaf_key, data=v2_data(stamp), v2=True)
    response = await client.post("/token/authenticate", **request)
    assert response.status_code == 201, response.text
    assert_spec(response, "/token/authenticate", "post")


@pytest.mark.asyncio
@pytest.mark.parametrize("offset", [-600, 600])
async def test_certificate_v2_tolerates_clock_skew(
    app: EmulatorApp, client: httpx.AsyncClient, clock: FakeClock, certs: CertKit, offset: int
) -> None:
    trust(app, certs.ca_cert)
    request = cert_request(certs.leaf_cert, certs.leaf_key, data=v2_data(int(clock.now) + offset), v2=True)
    assert (await client.post("/token/authenticate", **request)).status_code == 201


@pytest.mark.asyncio
async def test_certificate_v2_replay_is_refused(
    app: EmulatorApp, client: httpx.AsyncClient, clock: FakeClock, certs: CertKit
) -> None:
    trust(app, certs.ca_cert)
    request = cert_request(certs.leaf_cert, certs.leaf_key, data=v2_data(int(clock.now)), v2=True)
    assert (await client.post("/token/authenticate", **request)).status_code == 201
    message = assert_auth_error(await client.post("/token/authenticate", **request), "/token/authenticate", "post", 401)
    assert "already used" in message
    fresh = cert_request(certs.leaf_cert, certs.leaf_key, data=v2_data(int(clock.now)), v2=True)
    assert (await client.post("/token/authenticate", **fresh)).status_code == 201


FORGERIES = {
    "tampered-data": "does not verify",
    "untrusted-cert": "not trusted",
    "key-not-matching-cert": "does not verify",
    "rogue-issuer-with-trusted-ca-name": "not trusted",
    "too-short-data": "at least 100 random bytes",
    "too-short-v2-random-part": "at least 100 random bytes",
    "ec-key": "must be RSA",
    "expired-cert": "expired",
    "stale-v2-timestamp": "timestamp",
    "future-v2-timestamp": "timestamp",
    "v2-without-timestamp-signed": "does not verify",
    "no-matching-user": "No user",
}


@pytest.mark.asyncio
@pytest.mark.parametrize("case", list(FORGERIES))
async def test_certificate_forgeries_are_refused(
    app: EmulatorApp, client: httpx.AsyncClient, clock: FakeClock, certs: CertKit, case: str
) -> None:
    trust(app, certs.ca_cert, certs.self_cert)
    now = int(clock.now)
    data = os.urandom(150)
    fresh_v2 = v2_data(now)
    leaf, leaf_key = certs.leaf_cert, certs.leaf_key
    stranger = _name(CERT_EMAIL)  # a self-signed certificate nobody registered
    nobody = _name("nobody@anaplan.example")  # issued by the trusted CA, but names no user
    requests: dict[str, Callable[[], dict[str, Any]]] = {
        "tampered-data": lambda: cert_request(leaf, leaf_key, data=data, signed=data[:-1] + b"\x00"),
        "untrusted-cert": lambda: cert_request(
            _certificate(stranger, leaf_key.public_key(), stranger, leaf_key), leaf_key
        ),
        "key-not-matching-cert": lambda: cert_request(leaf, certs.self_key),
        "rogue-issuer-with-trusted-ca-name": lambda: cert_request(certs.rogue_leaf, leaf_key),
        "too-short-data": lambda: cert_request(leaf, leaf_key, data=os.urandom(99)),
        "too-short-v2-random-part": lambda: cert_request(leaf, leaf_key, data=v2_data(now, 99), v2=True),
        "ec-key": lambda: cert_request(certs.ec_cert, certs.ec_key),
        "expired-cert": lambda: cert_request(certs.expired_cert, certs.self_key),
        "stale-v2-timestamp": lambda: cert_request(leaf, leaf_key, data=v2_data(now - 3600), v2=True),
        "future-v2-timestamp": lambda: cert_request(leaf, leaf_key, data=v2_data(now + 3600), v2=True),
        "v2-without-timestamp-signed": lambda: cert_request(
            leaf, leaf_key, data=fresh_v2, signed=fresh_v2[8:], v2=True
        ),
        "no-matching-user": lambda: cert_request(
            _certificate(nobody, leaf_key.public_key(), certs.ca_cert.subject, certs.ca_key), leaf_key
        ),
    }
    response = await client.post("/token/authenticate", **requests[case]())
    message = assert_auth_error(response, "/token/authenticate", "post", 401)
    assert FORGERIES[case] in message
    assert app.state.tokens == {}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("header", "body"),
    [
        ("CACertificate not-base64!!", {"encodedData": "AA==", "encodedSignedData": "AA=="}),
        (
            f"CACertificate {base64.b64encode(b'not a certificate').decode()}",
            {"encodedData": "", "encodedSignedData": ""},
        ),
        (None, None),
        (None, {"encodedData": "AA=="}),
        (None, {"encodedData": "!!", "encodedSignedData": "AA=="}),
        (None, {"encodedData": "AA==", "encodedSignedData": "AA==", "encodedDataFormat": "v3"}),
        (None, ["not", "an", "object"]),
    ],
)
async def test_malformed_certificate_request_is_400(
    app: EmulatorApp, client: httpx.AsyncClient, certs: CertKit, header: str | None, body: Any
) -> None:
    trust(app, certs.self_cert)
    good = base64.b64encode(_pem(certs.self_cert)).decode()
    headers = {"Authorization": header or f"CACertificate {good}"}
    response = await client.post("/token/authenticate", headers=headers, json=body)
    assert_auth_error(response, "/token/authenticate", "post", 400)


@pytest.mark.asyncio
async def test_certificate_body_that_is_not_json_is_400(
    app: EmulatorApp, client: httpx.AsyncClient, certs: CertKit
) -> None:
    trust(app, certs.self_cert)
    headers = {"Authorization": f"CACertificate {base64.b64encode(_pem(certs.self_cert)).decode()}"}
    response = await client.post("/token/authenticate", headers=headers, content=b"{nope")
    assert_auth_error(response, "/token/authenticate", "post", 400)


# --------------------------------------------------------------------------------------------------- token upkeep
@pytest.mark.asyncio
async def test_token_expires_after_ttl(client: httpx.AsyncClient, clock: FakeClock) -> None:
    token = await login(client)
    clock.advance(2099)
    assert (await client.get("/token/validate", headers=token_header(token))).status_code == 200
    clock.advance(2)
    for method, path in [("get", "/token/validate"), ("post", "/token/refresh"), ("post", "/token/logout")]:
        response = await client.request(method.upper(), path, headers=token_header(token))
        assert_auth_error(response, path, method, 401)


@pytest.mark.asyncio
async def test_refresh_keeps_the_value_and_extends_expiry(client: httpx.AsyncClient, clock: FakeClock) -> None:
    first = (await client.post("/token/authenticate", headers=basic_header())).json()["tokenInfo"]
    clock.advance(1000)
    response = await client.post("/token/refresh", headers=token_header(first["tokenValue"]))
    assert response.status_code == 200
    body = assert_spec(response, "/token/refresh", "post")
    assert body["status"] == "SUCCESS"
    assert body["statusMessage"] == "Token refreshed"
    assert body["meta"]["validationUrl"] == "https://auth.anaplan.com/token/validate"
    info = body["tokenInfo"]
    assert info["tokenValue"] == first["tokenValue"]
    assert info["tokenId"] == first["tokenId"]
    assert info["refreshTokenId"] == first["refreshTokenId"]
    assert info["expiresAt"] == int((clock.now + 2100) * 1000) > first["expiresAt"]
    clock.advance(1500)  # past the original expiry, inside the refreshed one
    validated = await client.get("/token/validate", headers=token_header(info["tokenValue"]))
    assert validated.status_code == 200
    assert validated.json()["tokenInfo"]["expiresAt"] == info["expiresAt"]


@pytest.mark.asyncio
async def test_validate_describes_token_and_user(app: EmulatorApp, client: httpx.AsyncClient) -> None:
    info = (await client.post("/token/authenticate", headers=basic_header())).json()["tokenInfo"]
    response = await client.get("/token/validate", headers=token_header(info["tokenValue"]))
    assert response.status_code == 200
    body = assert_spec(response, "/token/validate", "get")
    user = app.state.users[DEFAULT_USER_EMAIL]
    assert body["status"] == "SUCCESS"
    assert body["statusMessage"] == "Token validated"
    assert body["meta"] == {"validationUrl": "https://auth.anaplan.com/token/validate"}
    assert body["tokenInfo"] == {"expiresAt": info["expiresAt"], "tokenId": info["tokenId"]}
    assert body["userInfo"] == {"userGuid": user.id, "userId": user.email, "customerGuid": user.customer_id}


@pytest.mark.asyncio
async def test_logout_revokes_the_token(client: httpx.AsyncClient) -> None:
    token = await login(client)
    other = await login(client)
    response = await client.post("/token/logout", headers=token_header(token))
    assert response.status_code == 204
    assert response.content == b""
    for method, path in [("get", "/token/validate"), ("post", "/token/refresh"), ("post", "/token/logout")]:
        response = await client.request(method.upper(), path, headers=token_header(token))
        assert_auth_error(response, path, method, 401)
    assert (await client.get("/token/validate", headers=token_header(other))).status_code == 200


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("get", "/token/validate", 400), ("post", "/token/refresh", 400), ("post", "/token/logout", 401)],
)
async def test_bearer_is_refused_by_the_auth_service(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    token = await login(client)
    response = await client.request(method.upper(), path, headers={"Authorization": f"Bearer {token}"})
    assert_auth_error(response, path, method, status)
    assert (await client.get("/token/validate", headers=token_header(token))).status_code == 200  # not revoked


@pytest.mark.asyncio
@pytest.mark.parametrize(("method", "path"), [("get", "/token/validate"), ("post", "/token/refresh")])
async def test_unknown_token_is_401(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(method.upper(), path, headers=token_header("no-such-token"))
    assert_auth_error(response, path, method, 401)


@pytest.mark.asyncio
async def test_requests_are_counted(app: EmulatorApp, client: httpx.AsyncClient) -> None:
    token = await login(client)
    await client.post("/token/refresh", headers=token_header(token))
    await client.get("/token/validate", headers=token_header(token))
    await client.post("/token/logout", headers=token_header(token))
    counters = app.state.counters
    assert [counters.get(n) for n in ("auth.authenticate", "auth.refresh", "auth.validate", "auth.logout")] == [1] * 4


# --------------------------------------------------------------------------------------------------- require_user
WHOAMI = "/2/0/emulator-test/whoami"


def add_whoami_route(app: EmulatorApp) -> None:
    """A stand-in Integration route that is guarded by require_user."""

    async def whoami(request: Request) -> Response:
        return json_response({"email": require_user(app.state, request).email})

    app.router.add("GET", WHOAMI, whoami)


@pytest.mark.asyncio
@pytest.mark.parametrize("scheme", ["AnaplanAuthToken", "Bearer"])
async def test_require_user_accepts_anaplan_token_and_bearer(
    app: EmulatorApp, client: httpx.AsyncClient, scheme: str
) -> None:
    add_whoami_route(app)
    token = await login(client)
    response = await client.get(WHOAMI, headers={"Authorization": f"{scheme} {token}"})
    assert response.status_code == 200
    assert response.json() == {"email": DEFAULT_USER_EMAIL}
    assert app.state.counters["auth.token_use"] == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("case", ["expired", "revoked", "unknown", "missing", "basic-scheme", "empty-token"])
async def test_require_user_rejects_with_integration_401(
    app: EmulatorApp, client: httpx.AsyncClient, clock: FakeClock, case: str
) -> None:
    add_whoami_route(app)
    token = await login(client)
    headers = token_header(token)
    if case == "expired":
        clock.advance(2101)
    elif case == "revoked":
        await client.post("/token/logout", headers=headers)
    elif case == "unknown":
        headers = token_header("no-such-token")
    elif case == "missing":
        headers = {}
    elif case == "basic-scheme":
        headers = basic_header()
    else:
        headers = {"Authorization": "AnaplanAuthToken "}
    response = await client.get(WHOAMI, headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert body["status"]["code"] == 401
    assert body["status"]["message"]
    assert body["path"] == WHOAMI
    assert app.state.counters["auth.unauthorized"] == 1


# --------------------------------------------------------------------------------------------------- over a socket
def test_auth_round_trip_over_loopback(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url) as http:
        response = http.post("/token/authenticate", headers=basic_header())
        assert response.status_code == 201
        token = assert_spec(response, "/token/authenticate", "post")["tokenInfo"]["tokenValue"]
        refreshed = http.post("/token/refresh", headers=token_header(token))
        assert assert_spec(refreshed, "/token/refresh", "post")["tokenInfo"]["tokenValue"] == token
        assert assert_spec(http.get("/token/validate", headers=token_header(token)), "/token/validate", "get")
        assert http.post("/token/logout", headers=token_header(token)).status_code == 204
        assert_auth_error(http.get("/token/validate", headers=token_header(token)), "/token/validate", "get", 401)
        wrong = http.post("/token/authenticate", headers=basic_header(password="wrong"))
        assert_auth_error(wrong, "/token/authenticate", "post", 401)


def test_certificate_v2_over_loopback(
    app: EmulatorApp, live_server: LiveServer, clock: FakeClock, certs: CertKit
) -> None:
    trust(app, certs.ca_cert)
    request = cert_request(certs.leaf_cert, certs.leaf_key, data=v2_data(int(clock.now * 1000)), v2=True)
    with httpx.Client(base_url=live_server.url) as http:
        response = http.post("/token/authenticate", **request)
        assert response.status_code == 201, response.text
        assert_spec(response, "/token/authenticate", "post")
        assert_auth_error(http.post("/token/authenticate", **request), "/token/authenticate", "post", 401)


@pytest.mark.asyncio
async def test_unparsable_trusted_entry_is_ignored(app: EmulatorApp, client: httpx.AsyncClient, certs: CertKit) -> None:
    app.state.trusted_certificates_pem.append(b"not a certificate")
    trust(app, certs.self_cert)
    response = await client.post("/token/authenticate", **cert_request(certs.self_cert, certs.self_key))
    assert response.status_code == 201, response.text
