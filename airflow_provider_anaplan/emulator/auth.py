"""The authentication service (/token/...) and OAuth (/oauth/...) of the emulator.

``require_user`` is the gate every Integration/ALM route calls: it turns the ``Authorization`` header into a user or
answers 401. Error bodies for /token/* come from ``app.error_response`` (``FAILURE_BAD_HEADER`` for 400,
``FAILURE_BAD_CREDENTIAL`` otherwise); OAuth errors are built here because they carry an RFC 6749 error code.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
from typing import Any
from urllib.parse import parse_qs

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from ._asgi import HTTPError, Request, Response, Router, empty_response, json_response
from .state import EmulatorState, OAuthClient, RefreshToken, Token, User

log = logging.getLogger(__name__)

VALIDATION_URL = "https://auth.anaplan.com/token/validate"
MIN_RANDOM_BYTES = 100  # Anaplan requires at least 100 random bytes in encodedData
V2_PREFIX_BYTES = 8  # v2: a big-endian timestamp in front of the random bytes
V2_MAX_SKEW = 900.0  # seconds a v2 timestamp may differ from the emulator's clock
_MILLISECONDS_FROM = 10**11  # a v2 timestamp this large is in milliseconds (as seconds it would be the year 5138)
OAUTH_SCOPE = "openid email offline_access"  # what Anaplan grants; it drops "profile"


# --------------------------------------------------------------------------------------------------- header parsing
def _authorization(request: Request) -> tuple[str, str] | None:
    """The ``Authorization`` header split into (lower-cased scheme, credentials), or None when absent or blank."""
    raw = request.headers.get("authorization", "").strip()
    if not raw:
        return None
    scheme, _, credentials = raw.partition(" ")
    return scheme.lower(), credentials.strip()


def _b64decode(text: str) -> bytes:
    """Strict base64 (whitespace ignored); raises ValueError on anything else."""
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


def require_user(state: EmulatorState, request: Request) -> User:
    """The user behind an API call's ``AnaplanAuthToken`` (or ``Bearer``) header; raises HTTPError(401) otherwise."""
    state.count("auth.token_use")
    header = _authorization(request)
    if header is None or header[0] not in ("anaplanauthtoken", "bearer") or not header[1]:
        state.count("auth.unauthorized")
        raise HTTPError(401, "Authorization header missing or not 'AnaplanAuthToken <token>'")
    token = state.live_token(header[1])
    user = state.user_by_id(token.user_id) if token is not None else None
    if user is None:
        state.count("auth.unauthorized")
        raise HTTPError(401, "Token is invalid, expired or revoked")
    return user


def _session_token(state: EmulatorState, request: Request, *, wrong_scheme_status: int) -> tuple[Token, User]:
    """The live token (and its user) named by an auth-service call's ``AnaplanAuthToken`` header.

    Anaplan's auth service refuses ``Bearer`` (and any other scheme) here: validate and refresh answer 400, logout 401.
    """
    header = _authorization(request)
    if header is None:
        raise HTTPError(401, "Authorization header missing")
    scheme, value = header
    if scheme != "anaplanauthtoken" or not value:
        raise HTTPError(wrong_scheme_status, "Invalid header: expected 'Authorization: AnaplanAuthToken <token>'")
    token = state.live_token(value)
    user = state.user_by_id(token.user_id) if token is not None else None
    if token is None or user is None:
        raise HTTPError(401, "Token is invalid, expired or logged out")
    return token, user


def _token_info(token: Token) -> dict[str, Any]:
    return {
        "tokenId": token.token_id,
        "tokenValue": token.value,
        "expiresAt": token.expires_at_ms(),
        "refreshTokenId": token.refresh_token_id,
    }


def _token_body(token: Token, message: str) -> dict[str, Any]:
    return {
        "meta": {"validationUrl": VALIDATION_URL},
        "status": "SUCCESS",
        "statusMessage": message,
        "tokenInfo": _token_info(token),
    }


# --------------------------------------------------------------------------------------------------- basic
def _basic_user(state: EmulatorState, credentials: str) -> User:
    try:
        decoded = _b64decode(credentials).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise HTTPError(400, "Invalid header: Basic credentials are not base64 of 'email:password'") from None
    email, colon, password = decoded.partition(":")
    if not colon or not email:
        raise HTTPError(400, "Invalid header: Basic credentials are not base64 of 'email:password'")
    user = state.users.get(email.lower())
    if user is None or user.password is None or not hmac.compare_digest(user.password.encode(), password.encode()):
        raise HTTPError(401, "Invalid username or password")
    return user


# --------------------------------------------------------------------------------------------------- certificate
def _presented_certificate(credentials: str) -> x509.Certificate:
    """The certificate in a ``CACertificate`` header: base64 of the whole PEM text, or base64 of the DER bytes."""
    try:
        raw = _b64decode(credentials)
        if raw.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificates(raw)[0]  # a chain may follow the leaf; only the leaf counts
        return x509.load_der_x509_certificate(raw)
    except ValueError:
        raise HTTPError(400, "Invalid header: CACertificate must carry a base64 PEM or DER certificate") from None


def _trusted_certificates(state: EmulatorState) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for pem in state.trusted_certificates_pem:
        try:
            out.extend(x509.load_pem_x509_certificates(pem))
        except ValueError:
            log.warning("ignoring a trusted certificate entry that is not PEM: %.40r", pem)
    return out


def _within_validity(cert: x509.Certificate, now: float) -> bool:
    return cert.not_valid_before_utc.timestamp() <= now <= cert.not_valid_after_utc.timestamp()


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value.ca)
    except x509.ExtensionNotFound:
        return False


def _is_trusted(cert: x509.Certificate, anchors: list[x509.Certificate], now: float) -> bool:
    """Trusted when registered itself, or directly issued (signature checked) by a registered, valid CA certificate."""
    for anchor in anchors:
        if cert == anchor:
            return True
        if not (_is_ca(anchor) and _within_validity(anchor, now)):
            continue
        try:
            cert.verify_directly_issued_by(anchor)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return True
    return False


def _certificate_emails(cert: x509.Certificate) -> list[str]:
    """Addresses that may name the user: subject emailAddress, SAN rfc822Name, then a CN that looks like an email."""
    emails = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)]
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        emails.extend(san.get_values_for_type(x509.RFC822Name))
    except x509.ExtensionNotFound:
        pass
    emails.extend(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME) if "@" in str(a.value))
    return emails


def _signed_payload(body: Any) -> tuple[bytes, bytes, bool]:
    """(data, signature, is_v2) from the certificate request body; HTTPError(400) when it is malformed."""
    if not isinstance(body, dict):
        raise HTTPError(400, "Certificate authentication needs a JSON body with encodedData and encodedSignedData")
    encoded_data, encoded_signature = body.get("encodedData"), body.get("encodedSignedData")
    if not isinstance(encoded_data, str) or not isinstance(encoded_signature, str):
        raise HTTPError(400, "Certificate authentication needs a JSON body with encodedData and encodedSignedData")
    data_format = body.get("encodedDataFormat")
    if data_format not in (None, "v1", "v2"):
        raise HTTPError(400, f"Unsupported encodedDataFormat {data_format!r}: use 'v2' (or omit it for v1)")
    try:
        return _b64decode(encoded_data), _b64decode(encoded_signature), data_format == "v2"
    except ValueError:
        raise HTTPError(400, "encodedData and encodedSignedData must be base64") from None


def _v2_timestamp(data: bytes) -> float:
    """The v2 prefix as epoch seconds; clients write either seconds or milliseconds."""
    value = int.from_bytes(data[:V2_PREFIX_BYTES], "big")
    return value / 1000 if value >= _MILLISECONDS_FROM else float(value)


def _certificate_user(state: EmulatorState, credentials: str, body: Any) -> User:
    cert = _presented_certificate(credentials)
    data, signature, is_v2 = _signed_payload(body)
    now = state.clock()
    public_key = cert.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise HTTPError(401, "Certificate key must be RSA (SHA512withRSA signatures only)")
    if now > cert.not_valid_after_utc.timestamp():
        raise HTTPError(401, "Certificate has expired")
    if now < cert.not_valid_before_utc.timestamp():
        raise HTTPError(401, "Certificate is not yet valid")
    if not _is_trusted(cert, _trusted_certificates(state), now):
        raise HTTPError(401, "Certificate is not trusted: neither it nor its issuing CA is registered")
    random_bytes = len(data) - (V2_PREFIX_BYTES if is_v2 else 0)
    if random_bytes < MIN_RANDOM_BYTES:
        raise HTTPError(401, f"encodedData must hold at least {MIN_RANDOM_BYTES} random bytes")
    try:
        public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA512())
    except InvalidSignature:
        raise HTTPError(
            401, "Signature does not verify: encodedSignedData must be SHA512withRSA by the cert's key"
        ) from None
    if is_v2:
        stamp = _v2_timestamp(data)
        if abs(now - stamp) > V2_MAX_SKEW:
            raise HTTPError(401, f"v2 timestamp is more than {int(V2_MAX_SKEW)} s away from the server clock")
        digest = hashlib.sha256(data).hexdigest()
        if not state.claim_certificate_payload(digest, forget_after=stamp + V2_MAX_SKEW):
            raise HTTPError(401, "v2 payload was already used: sign fresh data for every request")
    for email in _certificate_emails(cert):
        user = state.users.get(email.lower())
        if user is not None:
            return user
    raise HTTPError(401, "No user matches the certificate's subject email")


# --------------------------------------------------------------------------------------------------- OAuth
def _oauth_error(status: int, error: str, description: str) -> HTTPError:
    return HTTPError(status, description, json_response({"error": error, "error_description": description}, status))


async def _oauth_form(request: Request) -> dict[str, Any]:
    """The /oauth/token parameters from a JSON body (Anaplan's documented form) or a form-encoded one (oauthlib's)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        raw = await request.body()
        try:
            fields = parse_qs(raw.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise _oauth_error(400, "invalid_request", "Form body is not UTF-8") from None
        return {name: values[0] for name, values in fields.items()}
    body = await request.json(error=lambda reason: _oauth_error(400, "invalid_request", reason))
    if not isinstance(body, dict):
        raise _oauth_error(400, "invalid_request", "Body must be a JSON object")
    return body


def _oauth_client(state: EmulatorState, form: dict[str, Any]) -> OAuthClient:
    client_id = form.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise _oauth_error(400, "invalid_request", "Missing client_id")
    client = state.oauth_clients.get(client_id)
    if client is None:
        raise _oauth_error(401, "invalid_client", "Unknown client_id")
    if client.client_secret is not None:
        secret = form.get("client_secret")
        if not isinstance(secret, str) or not hmac.compare_digest(secret.encode(), client.client_secret.encode()):
            raise _oauth_error(401, "invalid_client", "Client authentication failed: wrong or missing client_secret")
    return client


def _b64url_json(value: dict[str, Any]) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _id_token(state: EmulatorState, user: User, client: OAuthClient) -> str:
    """An unsigned (alg "none") OpenID id_token: clients only pass it through, so a signature would add nothing."""
    now = int(state.clock())
    claims = {
        "iss": "https://us1a.app.anaplan.com",
        "sub": user.id,
        "aud": client.client_id,
        "email": user.email,
        "iat": now,
        "exp": now + int(state.token_ttl),
    }
    return f"{_b64url_json({'alg': 'none', 'typ': 'JWT'})}.{_b64url_json(claims)}."


def token_answer(state: EmulatorState, user: User, client: OAuthClient, grant: RefreshToken | None) -> Response:
    """A successful /oauth/token answer: a new access token for ``user``, and ``grant`` as the refresh token."""
    access = state.issue_token(user)
    body: dict[str, Any] = {"access_token": access.value}
    if grant is not None:
        body["refresh_token"] = grant.value
    scope = OAUTH_SCOPE if grant is not None else " ".join(s for s in OAUTH_SCOPE.split() if s != "offline_access")
    body.update(
        id_token=_id_token(state, user, client),
        scope=scope,
        expires_in=int(state.token_ttl),
        token_type="Bearer",  # noqa: S106 - a token type, not a secret
    )
    return json_response(body)


# --------------------------------------------------------------------------------------------------- routes
def register(router: Router, state: EmulatorState) -> None:
    """Add the /token and /oauth routes."""

    @router.route("POST", "/token/authenticate")
    async def authenticate(request: Request) -> Response:
        state.count("auth.authenticate")
        header = _authorization(request)
        if header is None:
            raise HTTPError(401, "Authorization header missing: use Basic or CACertificate")
        scheme, credentials = header
        if scheme == "basic":
            user = _basic_user(state, credentials)
        elif scheme == "cacertificate":
            body = await request.json(error=lambda reason: HTTPError(400, reason))
            user = _certificate_user(state, credentials, body)
        else:
            raise HTTPError(400, "Invalid header: use 'Basic <credentials>' or 'CACertificate <certificate>'")
        token = state.issue_token(user)
        return json_response(_token_body(token, "Login successful"), 201)

    @router.route("POST", "/token/refresh")
    async def refresh(request: Request) -> Response:
        state.count("auth.refresh")
        token, _user = _session_token(state, request, wrong_scheme_status=400)
        state.extend_token(token)
        return json_response(_token_body(token, "Token refreshed"))

    @router.route("GET", "/token/validate")
    async def validate(request: Request) -> Response:
        state.count("auth.validate")
        token, user = _session_token(state, request, wrong_scheme_status=400)
        body = {
            "meta": {"validationUrl": VALIDATION_URL},
            "status": "SUCCESS",
            "statusMessage": "Token validated",
            "tokenInfo": {"expiresAt": token.expires_at_ms(), "tokenId": token.token_id},
            "userInfo": {"userGuid": user.id, "userId": user.email, "customerGuid": user.customer_id},
        }
        return json_response(body)

    @router.route("POST", "/token/logout")
    async def logout(request: Request) -> Response:
        state.count("auth.logout")
        token, _user = _session_token(state, request, wrong_scheme_status=401)
        state.revoke_token(token)
        return empty_response(204)

    @router.route("POST", "/oauth/token")
    async def oauth_token(request: Request) -> Response:
        state.count("oauth.token")
        form = await _oauth_form(request)
        grant_type = form.get("grant_type")
        if not isinstance(grant_type, str) or not grant_type:
            raise _oauth_error(400, "invalid_request", "Missing grant_type")
        if grant_type == "urn:ietf:params:oauth:grant-type:device_code":
            from .device import token_grant  # device.py builds on this module's helpers

            return token_grant(state, form)
        if grant_type != "refresh_token":
            raise _oauth_error(400, "unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
        client = _oauth_client(state, form)
        presented = form.get("refresh_token")
        if not isinstance(presented, str) or not presented:
            raise _oauth_error(400, "invalid_request", "Missing refresh_token")
        grant = state.live_refresh_token(presented, client.client_id)
        user = state.user_by_id(grant.user_id) if grant is not None else None
        if grant is None or user is None:
            raise _oauth_error(
                400, "invalid_grant", "Refresh token is unknown, expired, already used or another client's"
            )
        if client.rotatable:
            grant.used = True  # single use: the next refresh must present the new token
            grant = state.issue_refresh_token(client, user.id)
        return token_answer(state, user, client, grant)
