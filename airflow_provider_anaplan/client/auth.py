"""How the client gets Anaplan tokens (basic, CA certificate, static token, OAuth refresh token) and shares them.

Each auth class validates its credentials when it is built (before any network call) and knows how to obtain a new
token. Tokens live in :data:`token_cache`, one per (credential, auth URL) per process: a token is a plain value that
any event loop may use. A refresh is single-flight within the process: an asyncio lock per event loop, then a thread
lock per credential (waited for off the loop), both held only while a token is being obtained, never across ordinary
requests. The cache, not a client that borrowed a token, logs tokens out: at process exit (best effort) or on
``await token_cache.logout_all()``; a forked child forgets its parent's tokens and never logs them out.

OAuth refresh tokens rotate: every auth object for one OAuth client (id, secret, OAuth URL) follows one rotation chain
per process, so an auth built from any refresh token of the chain (the first, or a rotated one read back from storage)
uses the newest.

No secret (password, private key, key password, token, refresh token, client secret) appears in a repr, a message or
a log line; the cache is keyed by a keyed hash of the credential, never the credential itself.
"""

from __future__ import annotations

import abc
import asyncio
import atexit
import base64
import contextlib
import hashlib
import hmac
import inspect
import logging
import os
import re
import secrets
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self

import httpx
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .errors import (
    AnaplanError,
    AuthenticationError,
    ConfigurationError,
    InvalidInputError,
    ProtocolError,
    RateLimitedError,
    ServerError,
    TransportError,
)

if TYPE_CHECKING:
    from ._transport import RetryClass
    from .settings import ClientSettings

log = logging.getLogger("airflow_provider_anaplan.client")

_PROCESS_KEY = secrets.token_bytes(32)  # keys the credential fingerprints: they cannot be matched across processes
CERTIFICATE_RANDOM_BYTES = 150  # Anaplan needs at least 100 random bytes to sign
LOGOUT_TIMEOUT = 3.0  # seconds the exit-time logout may take in all
RENEW_BACKOFF = 30.0  # after a failed renewal of a still-valid token, seconds before the next try (at most)
_TRANSIENT = (ServerError, TransportError, RateLimitedError)  # a renewal that failed like this may work later


def _fingerprint(kind: str, *parts: str | bytes) -> str:
    """A keyed hash naming a credential in the token cache; the credential itself is never stored as a key."""
    digest = hmac.new(_PROCESS_KEY, kind.encode(), hashlib.sha256)
    for part in parts:
        raw = part.encode("utf-8") if isinstance(part, str) else part
        digest.update(len(raw).to_bytes(8, "big"))
        digest.update(raw)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------- tokens
@dataclass(frozen=True)
class Token:
    """An Anaplan token as a plain value: usable from any event loop. ``value`` never shows in a repr."""

    value: str = field(repr=False)
    expires_at_ms: int | None  # epoch milliseconds, as Anaplan sends it; None when unknown (a static token)
    obtained_at: float  # epoch seconds by the client's clock

    @property
    def expires_at(self) -> float | None:
        """Expiry in epoch seconds, or None when unknown."""
        return None if self.expires_at_ms is None else self.expires_at_ms / 1000

    def expired(self, now: float) -> bool:
        """True once the token is past its ``expiresAt``."""
        return self.expires_at is not None and now >= self.expires_at

    def needs_refresh(self, now: float, margin: float) -> bool:
        """True within ``margin`` seconds of expiry (at most half the token's lifetime, so short tokens still work)."""
        expires = self.expires_at
        if expires is None:
            return False
        margin = min(margin, max(expires - self.obtained_at, 0.0) / 2)
        return now >= expires - margin


def _is_header_safe(value: str) -> bool:
    """True for a token that can go into an HTTP header as is: printable ASCII without spaces."""
    return bool(value) and value.isascii() and all(33 <= ord(c) <= 126 for c in value)


def _token_from_auth_service(response: httpx.Response, now: float) -> Token:
    """The token in a /token/authenticate or /token/refresh answer (any 2xx; unknown fields ignored)."""
    try:
        info = response.json()["tokenInfo"]
        value, expires = info["tokenValue"], info.get("expiresAt")
        if not isinstance(value, str) or not _is_header_safe(value):
            raise TypeError
        return Token(value, int(expires) if expires is not None else None, now)
    except (ValueError, KeyError, TypeError):
        raise ProtocolError(
            f"Anaplan's auth service answered {response.request.url.path} without a readable tokenInfo",
            status=response.status_code,
            method=response.request.method,
            path=response.request.url.path,
        ) from None


class AuthIO(Protocol):
    """What an auth class needs from the transport: the settings, and unauthenticated calls with retries.

    ``json`` may be a zero-argument callable, called afresh for every attempt (a single-use signed payload).
    """

    settings: ClientSettings

    async def call(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        json: Any = None,
        retry: RetryClass | None = None,
    ) -> httpx.Response: ...


# --------------------------------------------------------------------------------------------------- auth classes
class AnaplanAuth(abc.ABC):
    """Base of the credentials the client can use; subclasses validate their input when built."""

    can_create: bool = True  # can obtain a new token by itself (False for a static token)
    can_refresh: bool = True  # a token may be extended with POST /token/refresh
    logs_out: bool = True  # the cache logs its tokens out (never a token the caller handed in)

    @property
    @abc.abstractmethod
    def fingerprint(self) -> str:
        """A keyed hash that names the credential in the token cache."""

    @abc.abstractmethod
    async def create_token(self, io: AuthIO) -> Token:
        """Obtain a brand-new token."""

    def initial_token(self) -> Token | None:
        """A token known without a network call (a static token), else None."""
        return None

    def cache_key(self, settings: ClientSettings) -> tuple[str, str]:
        """Where the token cache keeps this credential's token: (fingerprint, the URL of the service that issues it)."""
        return (self.fingerprint, settings.auth_url)

    async def refresh_token(self, io: AuthIO, token: Token) -> Token:
        """Extend ``token`` with POST /token/refresh (Anaplan may keep or change its value)."""
        from ._transport import RetryClass

        response = await io.call(
            "POST",
            f"{io.settings.auth_url}/token/refresh",
            headers={"Authorization": f"AnaplanAuthToken {token.value}"},
            retry=RetryClass.SAFE,
        )
        return _token_from_auth_service(response, io.settings.clock())

    def __str__(self) -> str:
        return repr(self)


def _require_text(name: str, value: Any) -> str:
    if value is None or (isinstance(value, str | bytes) and not value.strip()):
        raise ConfigurationError(f"Missing credentials: {name} is empty")
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string, got {type(value).__name__}")
    return value


class BasicAuth(AnaplanAuth):
    """Email and password (the user must be an Exception User on SSO tenants)."""

    def __init__(self, email: str, password: str) -> None:
        self.email = _require_text("email", email).strip()
        self._password = _require_text("password", password)
        self._fingerprint = _fingerprint("basic", self.email.lower(), self._password)

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    async def create_token(self, io: AuthIO) -> Token:
        from ._transport import RetryClass

        raw = base64.b64encode(f"{self.email}:{self._password}".encode()).decode("ascii")
        response = await io.call(
            "POST",
            f"{io.settings.auth_url}/token/authenticate",
            headers={"Authorization": f"Basic {raw}"},
            retry=RetryClass.SAFE,
        )
        return _token_from_auth_service(response, io.settings.clock())

    def __repr__(self) -> str:
        return f"BasicAuth(email={self.email!r})"


def _read_pem_source(name: str, source: str | bytes | os.PathLike[str], *, secret: bool) -> bytes:
    """PEM content given inline, or read from a path (``~`` expanded)."""
    if source is None or (isinstance(source, str | bytes) and not source.strip()):
        raise ConfigurationError(f"Missing credentials: {name} is empty")
    if isinstance(source, bytes):
        return source
    if isinstance(source, str) and "-----BEGIN" in source:
        return source.encode("utf-8")
    if not isinstance(source, str | os.PathLike):
        raise ConfigurationError(f"{name} must be PEM text, PEM bytes or a file path, got {type(source).__name__}")
    text = os.fspath(source)
    path = Path(text).expanduser()
    shown = "" if secret or "\n" in text or len(text) > 300 else f" {text!r}"
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"{name} is neither PEM content nor a readable file{shown}: {exc.strerror or type(exc).__name__}"
        ) from None
    except ValueError:  # a NUL byte in the path
        raise ConfigurationError(
            f"{name} is neither PEM content nor a usable file path: it contains a NUL byte"
        ) from None


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)


def _der_item(der: bytes, at: int) -> tuple[int, int, int] | None:
    """(tag, start of content, end of content) of the DER item at ``at``, or None when it does not fit."""
    if at + 2 > len(der):
        return None
    tag, length, at = der[at], der[at + 1], at + 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4 or at + count > len(der):
            return None
        length, at = int.from_bytes(der[at : at + count], "big"), at + count
    return (tag, at, at + length) if at + length <= len(der) else None


def _is_encrypted_key_pem(data: bytes) -> bool:
    """True when ``data`` holds a well-formed encrypted key (so a failure to load it is the password's fault): a PKCS#8
    ``ENCRYPTED PRIVATE KEY`` block whose DER is an EncryptedPrivateKeyInfo, or a traditional ``… PRIVATE KEY`` block
    with ``Proc-Type: 4,ENCRYPTED`` and ``DEK-Info`` headers and a base64 body of whole cipher blocks."""
    for label, body in _PEM_BLOCK.findall(data):
        lines = [line.strip() for line in body.strip().splitlines()]
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines if b":" in line)}
        payload = b"".join(b"".join(line.split()) for line in lines if b":" not in line)
        try:
            der = base64.b64decode(payload, validate=True)
        except ValueError:
            continue
        if label == b"ENCRYPTED PRIVATE KEY":
            outer = _der_item(der, 0)
            algorithm = _der_item(der, outer[1]) if outer and outer[0] == 0x30 and outer[2] == len(der) else None
            oid = _der_item(der, algorithm[1]) if algorithm and algorithm[0] == 0x30 else None
            octets = _der_item(der, algorithm[2]) if algorithm and oid and oid[0] == 0x06 else None
            if octets and octets[0] == 0x04 and octets[2] == len(der):
                return True
        elif (
            label.endswith(b"PRIVATE KEY")
            and headers.get(b"proc-type", b"").replace(b" ", b"") == b"4,ENCRYPTED"
            and b"," in headers.get(b"dek-info", b"")
            and der
            and len(der) % 8 == 0
        ):
            return True
    return False


def _load_private_key(data: bytes, password: str | bytes | None) -> Any:
    encrypted = b"ENCRYPTED" in data.split(b"-----END", 1)[0]
    if b"-----BEGIN" not in data:
        raise ConfigurationError("private_key is not PEM: expected a '-----BEGIN ... PRIVATE KEY-----' block")
    if encrypted and not password:
        raise ConfigurationError("private_key is encrypted: give private_key_password")
    secret = password.encode("utf-8") if isinstance(password, str) else password
    try:
        return serialization.load_pem_private_key(data, password=secret if encrypted else None)
    except ValueError:
        if encrypted and _is_encrypted_key_pem(data):
            raise ConfigurationError("private_key_password is wrong: the private key could not be decrypted") from None
        raise ConfigurationError("private_key is malformed PEM: it could not be read as a private key") from None
    except (TypeError, UnsupportedAlgorithm):
        raise ConfigurationError("private_key uses an unsupported format or algorithm") from None


class CertificateAuth(AnaplanAuth):
    """A CA certificate and its RSA private key (PEM content or paths); the v2 signed payload by default.

    Everything is checked here, before any network call: readable PEM, the key password, an RSA key, a key that
    matches the certificate, and a certificate that is currently valid.
    """

    def __init__(
        self,
        certificate: str | bytes | os.PathLike[str],
        private_key: str | bytes | os.PathLike[str],
        private_key_password: str | bytes | None = None,
        payload_version: Literal["v1", "v2"] = "v2",
    ) -> None:
        if payload_version not in ("v1", "v2"):
            raise ConfigurationError(f"payload_version must be 'v1' or 'v2', got {payload_version!r}")
        self.payload_version = payload_version
        cert_data = _read_pem_source("certificate", certificate, secret=False)
        if b"-----BEGIN CERTIFICATE-----" not in cert_data:
            raise ConfigurationError("certificate is not PEM: expected a '-----BEGIN CERTIFICATE-----' block")
        try:
            self._certificate = x509.load_pem_x509_certificates(cert_data)[0]  # the leaf; a chain may follow
        except ValueError:
            raise ConfigurationError(
                "certificate is malformed PEM: it could not be read as an X.509 certificate"
            ) from None
        key = _load_private_key(_read_pem_source("private_key", private_key, secret=True), private_key_password)
        if not isinstance(key, rsa.RSAPrivateKey):
            kind = type(key).__name__.lstrip("_").replace("PrivateKey", "") or "non-RSA"
            raise ConfigurationError(f"private_key must be an RSA key (Anaplan signs with SHA512withRSA), got {kind}")
        cert_key = self._certificate.public_key()
        if not isinstance(cert_key, rsa.RSAPublicKey) or cert_key.public_numbers() != key.public_key().public_numbers():
            raise ConfigurationError(
                f"private_key does not match the certificate ({self.subject}): "
                "give the key the certificate was made for"
            )
        now = datetime.now(UTC)
        if now > self._certificate.not_valid_after_utc:
            raise ConfigurationError(
                f"certificate {self.subject} expired on {self._certificate.not_valid_after_utc:%Y-%m-%d}"
            )
        if now < self._certificate.not_valid_before_utc:
            raise ConfigurationError(
                f"certificate {self.subject} is not valid before {self._certificate.not_valid_before_utc:%Y-%m-%d}"
            )
        self._key = key
        leaf_pem = self._certificate.public_bytes(serialization.Encoding.PEM)
        self._header = "CACertificate " + base64.b64encode(leaf_pem).decode("ascii")
        self._fingerprint = _fingerprint("certificate", self._certificate.public_bytes(serialization.Encoding.DER))

    @classmethod
    def from_pkcs12(
        cls,
        keystore: str | bytes | os.PathLike[str],
        keystore_password: str | bytes | None = None,
        *,
        key_alias: str | None = None,
        payload_version: Literal["v1", "v2"] = "v2",
    ) -> Self:
        """From a PKCS#12 bundle (``.p12``/``.pfx``): its bytes, a path, or base64 text, with its password.

        Read in memory (nothing is written to disk); ``key_alias`` (the friendly name) is checked when given.
        """
        from .keystores import certificate_auth_from_entry, read_pkcs12

        entry = read_pkcs12(keystore, keystore_password, key_alias=key_alias)
        return certificate_auth_from_entry(cls, entry, payload_version)

    @classmethod
    def from_jks(
        cls,
        keystore: str | bytes | os.PathLike[str],
        keystore_password: str | bytes | None = None,
        key_password: str | bytes | None = None,
        *,
        key_alias: str | None = None,
        payload_version: Literal["v1", "v2"] = "v2",
    ) -> Self:
        """From a Java keystore (JKS or JCEKS; needs ``pip install 'airflow-provider-anaplan[jks]'``).

        ``key_password`` defaults to the store password; ``key_alias`` may be left out when the keystore holds one
        key entry.
        """
        from .keystores import certificate_auth_from_entry, read_jks

        entry = read_jks(keystore, keystore_password, key_password, key_alias=key_alias)
        return certificate_auth_from_entry(cls, entry, payload_version)

    @classmethod
    def from_keystore(
        cls,
        keystore: str | bytes | os.PathLike[str],
        keystore_password: str | bytes | None = None,
        *,
        keystore_type: str | None = None,
        key_password: str | bytes | None = None,
        key_alias: str | None = None,
        payload_version: Literal["v1", "v2"] = "v2",
    ) -> Self:
        """From a PKCS#12 bundle or a Java keystore; ``keystore_type`` (``pkcs12`` or ``jks``) is detected when
        not given."""
        from .keystores import certificate_auth_from_entry, read_keystore

        entry = read_keystore(
            keystore, keystore_password, keystore_type=keystore_type, key_password=key_password, key_alias=key_alias
        )
        return certificate_auth_from_entry(cls, entry, payload_version)

    @property
    def subject(self) -> str:
        """The certificate's subject, for messages."""
        return self._certificate.subject.rfc4514_string()

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def signed_payload(self, now: float) -> dict[str, str]:
        """A fresh signed body for /token/authenticate: random bytes (v2: after an 8-byte big-endian epoch-seconds
        prefix) signed SHA512withRSA."""
        data = secrets.token_bytes(CERTIFICATE_RANDOM_BYTES)
        if self.payload_version == "v2":
            data = int(now).to_bytes(8, "big") + data
        signature = self._key.sign(data, padding.PKCS1v15(), hashes.SHA512())
        body = {
            "encodedData": base64.b64encode(data).decode("ascii"),
            "encodedSignedData": base64.b64encode(signature).decode("ascii"),
        }
        if self.payload_version == "v2":
            body["encodedDataFormat"] = "v2"
        return body

    async def create_token(self, io: AuthIO) -> Token:
        from ._transport import RetryClass

        # v2 payloads are single-use, so every attempt (retries included) signs a fresh one.
        response = await io.call(
            "POST",
            f"{io.settings.auth_url}/token/authenticate",
            headers={"Authorization": self._header},
            json=lambda: self.signed_payload(io.settings.clock()),
            retry=RetryClass.SAFE,
        )
        return _token_from_auth_service(response, io.settings.clock())

    def __repr__(self) -> str:
        return f"CertificateAuth(subject={self.subject!r}, payload_version={self.payload_version!r})"


class StaticTokenAuth(AnaplanAuth):
    """A token obtained elsewhere; the client can neither renew nor log it out, so a 401 is final."""

    can_create = False
    can_refresh = False
    logs_out = False

    def __init__(self, token: str, expires_at_ms: int | None = None) -> None:
        value = _require_text("token", token).strip()
        if not _is_header_safe(value):  # checked here: httpx would fail later with the token in its message
            raise ConfigurationError(
                "token must be printable ASCII without spaces (an Anaplan token value as Anaplan issued it)"
            )
        if expires_at_ms is not None and (isinstance(expires_at_ms, bool) or not isinstance(expires_at_ms, int)):
            raise ConfigurationError(
                f"expires_at_ms must be epoch milliseconds (an int), got {type(expires_at_ms).__name__}"
            )
        self._token = Token(value, expires_at_ms, time.time())
        self._fingerprint = _fingerprint("static", self._token.value)

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def initial_token(self) -> Token:
        return self._token

    async def create_token(self, io: AuthIO) -> Token:
        raise AuthenticationError(
            "The static Anaplan token was refused or has expired; the client cannot renew it. Give a fresh token, or "
            "use basic, certificate or OAuth credentials so the client can obtain tokens itself."
        )

    def __repr__(self) -> str:
        return "StaticTokenAuth()"


RefreshTokenCallback = Callable[[str], Awaitable[None] | None]
RefreshTokenLoader = Callable[[], Awaitable[str | None] | str | None]


@dataclass
class _Chain:
    """The refresh tokens of one OAuth rotation chain in this process: every token seen (as keyed hashes) and the
    newest, which is the only one still usable when the client rotates."""

    id: str
    newest: str = field(repr=False)
    known: set[str] = field(default_factory=set, repr=False)


# Rotation chains per OAuth credential and OAuth URL: (client_id, keyed hash of the secret, OAuth URL) -> chains.
# An auth built from any token of a chain maps to that chain, so two auths for one credential never spend each
# other's refresh tokens; an unknown refresh token starts a chain of its own.
_chains: dict[tuple[str, str, str], list[_Chain]] = {}
_chains_mutex = threading.Lock()


def _token_mark(refresh_token: str) -> str:
    return _fingerprint("oauth-refresh-token", refresh_token)


def _is_invalid_grant(error: AnaplanError) -> bool:
    return error.status in (400, 401) and "invalid_grant" in (error.anaplan_message or "")


class OAuthRefreshTokenAuth(AnaplanAuth):
    """An OAuth client id and refresh token (plus the secret of an authorization-code client).

    Rotating refresh tokens are single-use: each new one is passed to ``on_refresh_token`` (sync or async), which must
    persist it before it returns; only then is the new access token used. Every auth object for the same client, secret
    and OAuth URL in this process follows one rotation chain: one built from an older token of the chain uses the
    newest. When Anaplan refuses the refresh token (``invalid_grant``: another thread or process spent it), the newest
    token of the chain and then ``load_refresh_token`` (sync or async, returning the persisted refresh token) are read
    again, and the refresh is tried once more if either differs from the refused one.
    """

    can_refresh = False  # access tokens are renewed with the refresh grant, not /token/refresh
    logs_out = False  # OAuth access tokens expire on their own; /token/logout is for auth-service tokens

    def __init__(
        self,
        client_id: str,
        refresh_token: str,
        client_secret: str | None = None,
        on_refresh_token: RefreshTokenCallback | None = None,
        *,
        load_refresh_token: RefreshTokenLoader | None = None,
    ) -> None:
        self.client_id = _require_text("client_id", client_id).strip()
        self._initial_refresh_token = _require_text("refresh_token", refresh_token).strip()
        if client_secret is not None and not isinstance(client_secret, str):
            raise ConfigurationError(f"client_secret must be a string, got {type(client_secret).__name__}")
        self._client_secret = client_secret or None
        if on_refresh_token is not None and not callable(on_refresh_token):
            raise ConfigurationError("on_refresh_token must be a callable that persists the new refresh token")
        if load_refresh_token is not None and not callable(load_refresh_token):
            raise ConfigurationError("load_refresh_token must be a callable that returns the stored refresh token")
        self.on_refresh_token = on_refresh_token
        self.load_refresh_token = load_refresh_token
        self._secret_mark = _fingerprint("oauth-secret", self._client_secret or "")
        self._fingerprint = _fingerprint(
            "oauth", self.client_id, self._client_secret or "", self._initial_refresh_token
        )

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def _chain(self, oauth_url: str) -> _Chain:
        """The rotation chain this auth's refresh token belongs to at ``oauth_url`` (started when unknown)."""
        mark = _token_mark(self._initial_refresh_token)
        with _chains_mutex:
            chains = _chains.setdefault((self.client_id, self._secret_mark, oauth_url), [])
            for chain in chains:
                if mark in chain.known:
                    return chain
            chain = _Chain(
                id=_fingerprint("oauth-chain", self.client_id, self._secret_mark, oauth_url, mark),
                newest=self._initial_refresh_token,
                known={mark},
            )
            chains.append(chain)
            return chain

    @staticmethod
    def _newest(chain: _Chain) -> str:
        with _chains_mutex:
            return chain.newest

    @staticmethod
    def _advance(chain: _Chain, refresh_token: str) -> None:
        with _chains_mutex:
            chain.newest = refresh_token
            chain.known.add(_token_mark(refresh_token))

    def cache_key(self, settings: ClientSettings) -> tuple[str, str]:
        # Keyed by the rotation chain, so auths built from different tokens of one chain share one access token.
        return (self._chain(settings.oauth_url).id, settings.oauth_url)

    async def create_token(self, io: AuthIO) -> Token:
        chain = self._chain(io.settings.oauth_url)
        tried = self._newest(chain)
        try:
            return await self._grant(io, chain, tried)
        except AuthenticationError as exc:
            if not _is_invalid_grant(exc):
                raise
            newer = await self._newer_refresh_token(chain, tried, exc)
            if newer is None:
                raise
            log.info(
                "Anaplan refused the OAuth refresh token of client %s (already used?); a newer one is known, trying "
                "it once",
                self.client_id,
            )
            return await self._grant(io, chain, newer)

    async def _newer_refresh_token(self, chain: _Chain, tried: str, refused: AuthenticationError) -> str | None:
        """The chain's newest refresh token, else the persisted one, when it differs from ``tried``; else None."""
        newest = self._newest(chain)
        if newest != tried:
            return newest
        if self.load_refresh_token is None:
            return None
        try:
            loaded = self.load_refresh_token()
            if inspect.isawaitable(loaded):
                loaded = await loaded
        except Exception as exc:
            raise AuthenticationError(
                f"{refused} Reading the stored refresh token with load_refresh_token failed too "
                f"({type(exc).__name__}).",
                status=refused.status,
                anaplan_message=refused.anaplan_message,
                method=refused.method,
                path=refused.path,
            ) from None
        if not isinstance(loaded, str) or not loaded.strip() or loaded.strip() == tried:
            return None
        loaded = loaded.strip()
        self._advance(chain, loaded)  # the stored token is the chain's newest (another process rotated it)
        return loaded

    async def _grant(self, io: AuthIO, chain: _Chain, refresh_token: str) -> Token:
        """One refresh grant with ``refresh_token``; a rotated refresh token is persisted before the access token is
        returned."""
        from ._transport import RetryClass

        body = {"grant_type": "refresh_token", "client_id": self.client_id, "refresh_token": refresh_token}
        if self._client_secret:
            body["client_secret"] = self._client_secret
        try:
            response = await io.call("POST", f"{io.settings.oauth_url}/oauth/token", json=body, retry=RetryClass.ACTION)
        except (InvalidInputError, AuthenticationError) as exc:
            if exc.status not in (400, 401):
                raise
            raise AuthenticationError(
                f"Anaplan refused the OAuth refresh token of client {self.client_id!r}"
                + (f": {exc.anaplan_message}" if exc.anaplan_message else "")
                + ". It may be expired, revoked or already used (rotating refresh tokens are single-use): re-read "
                "the stored refresh token, or authorize the client again.",
                status=exc.status,
                anaplan_message=exc.anaplan_message,
                method=exc.method,
                path=exc.path,
            ) from None
        now = io.settings.clock()
        try:
            data = response.json()
            access, expires_in = data["access_token"], data.get("expires_in")
            new_refresh = data.get("refresh_token")
            if not isinstance(access, str) or not _is_header_safe(access):
                raise TypeError
            expires_at_ms = int((now + float(expires_in)) * 1000) if expires_in is not None else None
        except (ValueError, KeyError, TypeError):
            raise ProtocolError(
                "Anaplan's OAuth service answered /oauth/token without a readable access_token",
                status=response.status_code,
                method="POST",
                path="/oauth/token",
            ) from None
        if isinstance(new_refresh, str) and new_refresh and new_refresh != refresh_token:
            await self._persist(chain, new_refresh)
        return Token(access, expires_at_ms, now)

    async def _persist(self, chain: _Chain, new_refresh: str) -> None:
        """Hand a rotated refresh token to the callback, then remember it for this process."""
        self._advance(chain, new_refresh)  # the old one is spent either way: keep the new one in memory first
        if self.on_refresh_token is None:
            log.warning(
                "Anaplan rotated the OAuth refresh token of client %s, but no on_refresh_token callback is set: "
                "the new refresh token lives only in this process's memory",
                self.client_id,
            )
            return
        try:
            outcome = self.on_refresh_token(new_refresh)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception as exc:
            raise AnaplanError(
                f"on_refresh_token failed ({type(exc).__name__}) to persist the rotated OAuth refresh token of client "
                f"{self.client_id!r}; the previous refresh token is spent, so store the new one before running again"
            ) from exc
        log.info("Persisted the rotated OAuth refresh token of client %s", self.client_id)

    def __repr__(self) -> str:
        return f"OAuthRefreshTokenAuth(client_id={self.client_id!r})"


@contextlib.asynccontextmanager
async def _holding(lock: threading.Lock) -> AsyncIterator[None]:
    """Hold a thread lock from a coroutine: waited for in a worker thread, so the event loop never blocks; a waiter
    cancelled meanwhile releases the lock as soon as its thread gets it."""
    if not lock.acquire(blocking=False):
        acquiring = asyncio.ensure_future(asyncio.to_thread(lock.acquire))
        try:
            await asyncio.shield(acquiring)
        except BaseException:
            acquiring.add_done_callback(
                lambda done: lock.release() if not done.cancelled() and done.exception() is None else None
            )
            raise
    try:
        yield
    finally:
        lock.release()


# --------------------------------------------------------------------------------------------------- the token cache
@dataclass
class _Entry:
    auth: AnaplanAuth
    settings: ClientSettings
    token: Token | None = None
    locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = field(
        default_factory=weakref.WeakKeyDictionary
    )
    # Single-flight across threads (each with its own event loop): held only while a token is obtained.
    renewing: threading.Lock = field(default_factory=threading.Lock)
    renew_not_before: float = 0.0  # after a failed renewal of a still-valid token: no new try before this


class TokenCache:
    """Process-wide tokens keyed by (credential fingerprint, auth URL), with a single-flight refresh per event loop."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._mutex = threading.Lock()
        self._atexit_registered = False
        _caches.add(self)

    def _after_fork_in_child(self) -> None:
        """Forget the parent's tokens (never log them out: they are the parent's) and renew every lock, which a
        thread of the parent may have held at the fork."""
        self._mutex = threading.Lock()
        self._entries = {}

    def _entry(self, auth: AnaplanAuth, settings: ClientSettings) -> _Entry:
        key = auth.cache_key(settings)
        with self._mutex:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(auth, settings)
            else:
                entry.auth, entry.settings = auth, settings
            return entry

    def _lock(self, entry: _Entry) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._mutex:
            lock = entry.locks.get(loop)
            if lock is None:
                lock = entry.locks[loop] = asyncio.Lock()
            return lock

    @staticmethod
    def _usable(entry: _Entry, auth: AnaplanAuth, token: Token | None, stale: Token | None, now: float) -> bool:
        if token is None or (stale is not None and token.value == stale.value) or token.expired(now):
            return False
        if not (auth.can_create or auth.can_refresh):
            return True  # nothing could replace it: use it until it has actually expired
        return not token.needs_refresh(now, entry.settings.refresh_margin) or now < entry.renew_not_before

    def peek(self, auth: AnaplanAuth, settings: ClientSettings) -> Token | None:
        """The cached token for this credential and host, if any (no network call)."""
        return self._entry(auth, settings).token

    async def get(self, auth: AnaplanAuth, io: AuthIO, *, stale: Token | None = None) -> Token:
        """A live token for ``auth``; ``stale`` is a token the API just refused with 401, which must be re-created."""
        settings = io.settings
        entry = self._entry(auth, settings)
        if entry.token is None:
            entry.token = auth.initial_token()
        token = entry.token
        if self._usable(entry, auth, token, stale, settings.clock()):
            assert token is not None
            return token
        # Held only while a token is obtained: first this loop's asyncio lock (so one coroutine per loop waits for
        # the thread lock), then the credential's thread lock (so one thread of the process renews).
        async with self._lock(entry), _holding(entry.renewing):
            token = entry.token
            now = settings.clock()
            if self._usable(entry, auth, token, stale, now):
                assert token is not None
                return token
            renewed = await self._renew(entry, auth, io, token, stale, now)
            entry.token = renewed
            if auth.logs_out and renewed is not token:
                self._register_atexit()
            return renewed

    async def _renew(
        self, entry: _Entry, auth: AnaplanAuth, io: AuthIO, token: Token | None, stale: Token | None, now: float
    ) -> Token:
        refused = stale is not None and token is not None and token.value == stale.value
        valid = token is not None and not refused and not token.expired(now)
        try:
            if valid and auth.can_refresh:
                assert token is not None
                try:
                    renewed = await auth.refresh_token(io, token)
                    log.info("Refreshed the Anaplan token of %r before it expires", auth)
                    return renewed
                except AuthenticationError:
                    log.info("Anaplan refused to refresh the token of %r; authenticating again", auth)
            if refused:
                log.info("Anaplan refused the token of %r (401); obtaining a new one", auth)
            created = await auth.create_token(io)
            log.info("Obtained a new Anaplan token for %r", auth)
            return created
        except _TRANSIENT as exc:
            if not valid:
                raise
            assert token is not None and token.expires_at is not None
            left = token.expires_at - io.settings.clock()
            entry.renew_not_before = io.settings.clock() + min(RENEW_BACKOFF, max(left / 2, 0.0))
            log.warning(
                "Could not renew the Anaplan token of %r ahead of its expiry (%s); using the current one, valid for "
                "%.0f s more",
                auth,
                type(exc).__name__,
                left,
            )
            return token

    def clear(self) -> None:
        """Forget every token and OAuth rotation chain without logging any out (tests)."""
        with self._mutex:
            self._entries.clear()
        with _chains_mutex:
            _chains.clear()

    async def logout_all(self, within: float = LOGOUT_TIMEOUT) -> int:
        """Log out (POST /token/logout) every token this process obtained and forget them; returns how many went.

        Best effort: failures are logged, never raised. Tokens handed in by the caller are never logged out.
        """
        with self._mutex:
            entries = [e for e in self._entries.values() if e.token is not None and e.auth.logs_out]
            for entry in entries:
                entry.locks = weakref.WeakKeyDictionary()
        now = time.time()
        jobs = []
        for entry in entries:
            token, entry.token = entry.token, None
            if token is not None and not token.expired(entry.settings.clock()):
                jobs.append(_logout(entry.settings, token, within))
        if not jobs:
            return 0
        try:
            results = await asyncio.wait_for(asyncio.gather(*jobs, return_exceptions=True), within + 1)
        except TimeoutError:
            log.info("Logging out Anaplan tokens took longer than %.1f s; giving up", time.time() - now)
            return 0
        return sum(1 for r in results if r is True)

    def _register_atexit(self) -> None:
        with self._mutex:
            if self._atexit_registered:
                return
            self._atexit_registered = True
        atexit.register(self._logout_at_exit)

    def _logout_at_exit(self) -> None:
        """Run :meth:`logout_all` in a helper thread with its own loop, bounded in time."""
        if not any(e.token is not None and e.auth.logs_out for e in list(self._entries.values())):
            return
        thread = threading.Thread(target=lambda: asyncio.run(self.logout_all()), name="anaplan-logout", daemon=True)
        thread.start()
        thread.join(LOGOUT_TIMEOUT + 2)


async def _logout(settings: ClientSettings, token: Token, within: float) -> bool:
    try:
        async with httpx.AsyncClient(**settings.httpx_options(timeout=within)) as client:
            response = await client.post(
                f"{settings.auth_url}/token/logout", headers={"Authorization": f"AnaplanAuthToken {token.value}"}
            )
        if response.is_success:
            return True
        log.info("Anaplan answered %s to a token logout", response.status_code)
    except Exception as exc:  # best effort at exit: never let a logout break anything
        log.info("Could not log out an Anaplan token: %s", type(exc).__name__)
    return False


_caches: weakref.WeakSet[TokenCache] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A forked child starts with no tokens (its parent's stay the parent's: never used or logged out here) and
    fresh locks; the OAuth rotation chains are kept, so the child knows the newest refresh tokens."""
    global _chains_mutex
    _chains_mutex = threading.Lock()
    for cache in list(_caches):
        cache._after_fork_in_child()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)

token_cache = TokenCache()
"""The process-wide token cache every client uses by default."""

__all__ = [
    "AnaplanAuth",
    "BasicAuth",
    "CertificateAuth",
    "OAuthRefreshTokenAuth",
    "StaticTokenAuth",
    "Token",
    "TokenCache",
    "token_cache",
]
