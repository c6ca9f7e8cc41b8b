"""``AnaplanHook``: turns an Airflow ``anaplan`` Connection into a ready :class:`AnaplanClient`.

Workers call the synchronous methods (each runs the async client to completion under a fresh ``asyncio.run`` and
closes that loop's HTTP client); triggers and async tasks ``await hook.aget_client()`` or ``await hook.arun(...)``,
which read the connection with ``get_async_connection`` and never touch the synchronous path on the event loop.

Within a process, hooks of one connection share one client object, hence one token per (credential, auth URL) and
one ``httpx.AsyncClient`` per event loop: a thousand triggers on one connection in a triggerer authenticate once.
Every secret (password, key, token, refresh token, client secret, a proxy URL with credentials) is registered with
Airflow's secret masker as soon as the hook knows it; tokens as soon as Anaplan hands them out.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import hmac
import logging
import os
import re
import secrets
import ssl
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret

from .. import CONN_FIELDS, UI_FIELD_BEHAVIOUR
from ..client import (
    AnaplanClient,
    BasicAuth,
    CertificateAuth,
    ClientSettings,
    OAuthRefreshTokenAuth,
    StaticTokenAuth,
)
from ..client.errors import AnaplanError as ClientAnaplanError
from ..client.errors import AuthenticationError as ClientAuthenticationError
from ..exceptions import AuthenticationError, ConfigurationError, InvalidInputError, to_airflow_error

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from ..client import (
        Action,
        Export,
        ExportMetadata,
        File,
        Import,
        ImportMetadata,
        Model,
        ModelStatus,
        Process,
        ProcessMetadata,
        User,
        Workspace,
    )
    from ..client.auth import AnaplanAuth, AuthIO, Token

log = logging.getLogger(__name__)

T = TypeVar("T")

AUTH_TYPES = ("basic", "certificate", "token", "oauth")
EXTRA_PREFIX = "extra__anaplan__"
DEFAULT_REFRESH_TOKEN_VARIABLE = "anaplan_oauth_refresh_token__{client_id}__{digest}"  # noqa: S105 - a name
"""Name of the Variable that keeps the latest rotated refresh token of a credential: the OAuth client id and the first
12 hex digits of the SHA-256 of the connection's refresh token. It names the credential, not the connection, because
the rotation chain belongs to the credential (two connections holding one refresh token must follow one chain, and the
API server tests a connection under a random transient id). "token" in the name makes Airflow hide the value."""

_SETTINGS_OPTIONS = frozenset(f.name for f in dataclasses.fields(ClientSettings)) | {"base_url"}
_URL_FIELDS = ("auth_url", "api_url", "oauth_url", "base_url")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_HOOK_KEY = secrets.token_bytes(32)  # keys the OAuth credential identities of this process


# --------------------------------------------------------------------------------------------------- masking
try:  # Airflow 3.3+: masks without a synchronous call to the supervisor on the event loop
    from airflow.sdk.log import amask_secret as _amask_secret
except ImportError:  # Airflow 3.1/3.2
    _amask_secret = None


def _mask(*values: str | None) -> None:
    """Register secrets with Airflow's masker (this process and, in a task, the supervisor)."""
    for value in values:
        if isinstance(value, str) and value.strip():
            mask_secret(value)


async def _amask(*values: str | None) -> None:
    """:func:`_mask` for code on an event loop: never a blocking supervisor call on the loop itself."""
    wanted = [v for v in values if isinstance(v, str) and v.strip()]
    if not wanted:
        return
    if _amask_secret is not None:
        for value in wanted:
            await _amask_secret(value)
    else:
        from asgiref.sync import sync_to_async

        await sync_to_async(_mask)(*wanted)


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking Airflow call (Variables, supervisor comms) off the event loop."""
    from asgiref.sync import sync_to_async

    return await sync_to_async(fn)(*args)


# --------------------------------------------------------------------------------------------------- PEM text
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)


def rebuild_pem(text: str) -> str:
    """PEM text with its line structure restored; anything that is not PEM (a path) is returned unchanged.

    Connection forms have one-line fields: a PEM pasted there arrives with its newlines turned into spaces (or as
    literal ``\\n``). The base64 body is re-wrapped at 64 columns and RFC 1421 headers of encrypted legacy keys
    (``Proc-Type: 4,ENCRYPTED``, ``DEK-Info: ...``) are put back on their own lines.
    """
    if "-----BEGIN" not in text:
        return text
    text = text.replace("\\n", "\n").replace("\r\n", "\n")
    blocks = []
    for match in _PEM_BLOCK.finditer(text):
        label, tokens = match.group(1).strip(), match.group(2).split()
        headers = []
        while len(tokens) >= 2 and tokens[0].endswith(":"):
            headers.append(f"{tokens[0]} {tokens[1]}")
            tokens = tokens[2:]
        body = "".join(tokens)
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        blocks.append("\n".join([f"-----BEGIN {label}-----", *headers, *([""] if headers else []), *lines]))
        blocks[-1] += f"\n-----END {label}-----\n"
    return "".join(blocks) if blocks else text


def _pem_secrets(text: str) -> list[str]:
    """The forms in which a private key could show up in a log: as given, rebuilt, and line by line."""
    rebuilt = rebuild_pem(text)
    lines = [line for line in rebuilt.splitlines() if len(line) >= 16 and not line.startswith("-----")]
    return [text, rebuilt, *lines]


# --------------------------------------------------------------------------------------------------- rotated tokens
class RefreshTokenStore(Protocol):
    """Where the latest rotated OAuth refresh token of a connection lives, readable by the next task and the
    triggerer. Both methods are synchronous; the hook calls them off the event loop."""

    def load(self) -> str | None:
        """The stored refresh token, or None when nothing is stored."""

    def save(self, refresh_token: str) -> None:
        """Persist a new refresh token; raise when it could not be stored."""


def _in_task_context() -> bool:
    """True in a process run by an Airflow supervisor (task, triggerer, DAG processor): use the Task SDK there."""
    task_runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    return getattr(task_runner, "SUPERVISOR_COMMS", None) is not None


class VariableRefreshTokenStore:
    """Keeps the refresh token in an Airflow Variable (the default store of ``auth_type=oauth`` connections).

    Task code cannot write Connections in Airflow 3, but it can write Variables. In a task or the triggerer this
    goes through the Task SDK (the Execution API); in the API server, the CLI or a script, through the metadata
    database. The default name contains "token", so Airflow hides the value in the UI and masks it in logs.
    """

    def __init__(self, key: str) -> None:
        self.key = key

    def load(self) -> str | None:
        try:
            if _in_task_context():
                from airflow.sdk import Variable

                value = Variable.get(self.key, default=None)
            else:
                from airflow.models.variable import Variable as VariableModel

                value = VariableModel.get(self.key, default_var=None)
        except Exception as exc:
            log.warning("Could not read the Airflow Variable %s (%s); using the connection's token", self.key, exc)
            return None
        return value.strip() if isinstance(value, str) and value.strip() else None

    def save(self, refresh_token: str) -> None:
        description = "Latest rotated Anaplan OAuth refresh token (written by airflow-provider-anaplan)"
        if _in_task_context():
            from airflow.sdk import Variable

            Variable.set(self.key, refresh_token, description=description)
        else:
            from airflow.models.variable import Variable as VariableModel

            VariableModel.set(self.key, refresh_token, description=description)

    def __repr__(self) -> str:
        return f"VariableRefreshTokenStore(key={self.key!r})"


class CallbackRefreshTokenStore:
    """A store made of the user's callables: ``save(token)`` and, optionally, ``load() -> token | None``."""

    def __init__(self, save: Callable[[str], Any], load: Callable[[], str | None] | None = None) -> None:
        if not callable(save) or (load is not None and not callable(load)):
            raise ConfigurationError("on_refresh_token (and load_refresh_token, when given) must be callables")
        self._save, self._load = save, load

    def load(self) -> str | None:
        return self._load() if self._load is not None else None

    def save(self, refresh_token: str) -> None:
        self._save(refresh_token)

    def __repr__(self) -> str:
        return "CallbackRefreshTokenStore()"


# --------------------------------------------------------------------------------------------------- auth classes
class _MaskTokens:
    """Mixin: every token the credential obtains is masked before anyone can log it."""

    async def create_token(self, io: AuthIO) -> Token:
        token = await super().create_token(io)  # type: ignore[misc]
        await _amask(token.value)
        return token

    async def refresh_token(self, io: AuthIO, token: Token) -> Token:
        renewed = await super().refresh_token(io, token)  # type: ignore[misc]
        await _amask(renewed.value)
        return renewed


class _HookBasicAuth(_MaskTokens, BasicAuth):
    pass


class _HookCertificateAuth(_MaskTokens, CertificateAuth):
    pass


_refresh_locks: dict[str, threading.Lock] = {}
_refresh_locks_mutex = threading.Lock()


@contextlib.asynccontextmanager
async def _one_refresh_at_a_time(key: str) -> AsyncIterator[None]:
    """A process-wide lock per OAuth credential (the token cache's lock is per event loop), polled so that waiting
    never blocks the loop and a cancelled waiter never leaves the lock taken."""
    with _refresh_locks_mutex:
        lock = _refresh_locks.setdefault(key, threading.Lock())
    while not lock.acquire(blocking=False):  # noqa: ASYNC110 - a thread lock, not an event of this loop
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        lock.release()


def _is_invalid_grant(exc: ClientAuthenticationError) -> bool:
    return exc.status in (400, 401) and "invalid_grant" in (exc.anaplan_message or "")


class _HookOAuthAuth(OAuthRefreshTokenAuth):
    """OAuth with rotation persisted to a :class:`RefreshTokenStore` and one second chance after ``invalid_grant``.

    Its identity in the token cache is the connection's credential (client, secret, the connection's refresh token
    and the store), not the refresh token of the moment, so every hook of the connection in this process follows one
    rotation chain and shares one access token.
    """

    def __init__(
        self,
        client_id: str,
        refresh_token: str,
        client_secret: str | None,
        *,
        connection_refresh_token: str,
        store: RefreshTokenStore | None,
        store_key: str,
    ) -> None:
        super().__init__(client_id, refresh_token, client_secret, on_refresh_token=self._rotated)
        self._secret = client_secret
        self._connection_refresh_token = connection_refresh_token
        self._current = refresh_token.strip()
        self._store = store
        self._successor: OAuthRefreshTokenAuth | None = None
        digest = hmac.new(_HOOK_KEY, b"hook-oauth", hashlib.sha256)
        for part in (self.client_id, client_secret or "", connection_refresh_token.strip(), store_key):
            digest.update(len(part.encode()).to_bytes(8, "big") + part.encode())
        self._identity = digest.hexdigest()

    @property
    def fingerprint(self) -> str:
        return self._identity

    async def create_token(self, io: AuthIO) -> Token:
        async with _one_refresh_at_a_time(self._identity):
            try:
                if self._successor is not None:
                    token = await self._successor.create_token(io)
                else:
                    token = await super().create_token(io)
            except ClientAuthenticationError as exc:
                if not _is_invalid_grant(exc):
                    raise
                token = await self._second_chance(io, exc)
        await _amask(token.value)
        return token

    async def _second_chance(self, io: AuthIO, refused: ClientAuthenticationError) -> Token:
        """Another process may have rotated the token: re-read the store (then the connection) and try once more."""
        tried = self._current
        stored = await _in_thread(self._store.load) if self._store is not None else None
        candidates = [t for t in (stored, self._connection_refresh_token) if t and t.strip() != tried]
        if not candidates:
            raise AuthenticationError(
                f"{refused} The stored refresh token is the one Anaplan refused, so nothing newer exists: authorize "
                f"the OAuth client again and put the new refresh token in the connection's oauth_refresh_token.",
                status=refused.status,
                anaplan_message=refused.anaplan_message,
                method=refused.method,
                path=refused.path,
            ) from None
        candidate = candidates[0].strip()
        await _amask(candidate)
        log.info("Anaplan refused the OAuth refresh token of client %s; trying the stored one once", self.client_id)
        successor = OAuthRefreshTokenAuth(self.client_id, candidate, self._secret, on_refresh_token=self._rotated)
        self._current = candidate
        token = await successor.create_token(io)
        self._successor = successor
        return token

    async def _rotated(self, new_refresh_token: str) -> None:
        """The client's ``on_refresh_token``: mask, remember and persist a rotated refresh token before it is used."""
        await _amask(new_refresh_token)
        self._current = new_refresh_token
        if self._store is None:
            log.warning(
                "Anaplan rotated the OAuth refresh token of client %s and no store is configured: the new token lives "
                "only in this process",
                self.client_id,
            )
            return
        await _in_thread(self._store.save, new_refresh_token)
        log.info("Stored the rotated OAuth refresh token of client %s in %r", self.client_id, self._store)


# --------------------------------------------------------------------------------------------------- connection
@dataclasses.dataclass(frozen=True)
class _Resolved:
    """What the hook made of its connection: the credential, the settings, the defaults."""

    auth: AnaplanAuth
    settings: ClientSettings
    auth_type: str
    workspace_id: str | None
    model_id: str | None


@dataclasses.dataclass
class _Parsed:
    """A validated connection before the OAuth store is read (that read is sync or async, depending on the caller)."""

    conn_id: str
    auth_type: str
    fields: dict[str, Any]
    settings: ClientSettings
    secrets: list[str]
    store: RefreshTokenStore | None
    workspace_id: str | None
    model_id: str | None

    auth: AnaplanAuth | None = None  # built at parse time, except OAuth (it needs the stored refresh token)

    def finish(self, stored_refresh_token: str | None) -> _Resolved:
        return _Resolved(
            auth=self.auth or self._build_auth(stored_refresh_token),
            settings=self.settings,
            auth_type=self.auth_type,
            workspace_id=self.workspace_id,
            model_id=self.model_id,
        )

    def _build_auth(self, stored_refresh_token: str | None) -> AnaplanAuth:
        f = self.fields
        try:
            if self.auth_type == "basic":
                return _HookBasicAuth(f["login"], f["password"])
            if self.auth_type == "certificate" and f.get("keystore"):
                return _HookCertificateAuth.from_keystore(
                    f["keystore"],
                    f.get("keystore_password"),
                    keystore_type=f.get("keystore_type"),
                    key_password=f.get("key_password"),
                    key_alias=f.get("key_alias"),
                )
            if self.auth_type == "certificate":
                return _HookCertificateAuth(
                    rebuild_pem(f["certificate"]), rebuild_pem(f["private_key"]), f.get("private_key_password")
                )
            if self.auth_type == "token":
                return StaticTokenAuth(f["token"])
            store_key = getattr(self.store, "key", None) or repr(self.store)
            if not (stored_refresh_token or f["oauth_refresh_token"]):
                if isinstance(self.store, VariableRefreshTokenStore):
                    where = (
                        f"the Airflow Variable {store_key} holds no refresh token: run python -m "
                        f"airflow_provider_anaplan.oauth device-login --client-id {f['oauth_client_id']} "
                        f"--store-variable {store_key}"
                    )
                else:
                    where = f"the refresh token store {store_key} holds none"
                raise ConfigurationError(
                    f"extra oauth_refresh_token is empty and {where}, or put a refresh token in oauth_refresh_token"
                )
            return _HookOAuthAuth(
                f["oauth_client_id"],
                stored_refresh_token or f["oauth_refresh_token"],
                f.get("oauth_client_secret"),
                connection_refresh_token=f["oauth_refresh_token"] or "",
                store=self.store,
                store_key=store_key,
            )
        except ClientAnaplanError as exc:
            raise ConfigurationError(f"Anaplan connection {self.conn_id!r} ({self.auth_type} auth): {exc}") from None


def _text(value: Any) -> str | None:
    """A connection value as stripped text, None when empty."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _normalized_extra(extra: dict[str, Any]) -> dict[str, Any]:
    """The extra with the UI's historical ``extra__anaplan__`` prefix removed and empty values dropped."""
    out: dict[str, Any] = {}
    for key, value in extra.items():
        name = key[len(EXTRA_PREFIX) :] if key.startswith(EXTRA_PREFIX) else key
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        out[name] = value.strip() if isinstance(value, str) else value
    return out


@functools.lru_cache(maxsize=32)
def _ca_bundle_context(path: str) -> ssl.SSLContext:
    """One SSL context per CA bundle, so clients of equal settings stay equal (and share their HTTP client)."""
    return ssl.create_default_context(cafile=path)


def _verify_option(value: Any, problem: Callable[[str], ConfigurationError]) -> bool | ssl.SSLContext:
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    path = os.path.expanduser(text)
    if not os.path.isfile(path):
        raise problem(f"extra verify is {text!r}: give true, false, or the path of a PEM CA bundle that exists")
    try:
        return _ca_bundle_context(path)
    except (ssl.SSLError, OSError) as exc:
        raise problem(f"extra verify: {text!r} is not a readable PEM CA bundle ({exc})") from None


def _timeout_option(value: Any, problem: Callable[[str], ConfigurationError]) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise problem(f"extra timeout must be a number of seconds greater than 0, got {value!r}")
    return seconds


def default_refresh_token_variable(client_id: str, refresh_token: str) -> str:
    """The default Variable name for the rotated refresh tokens of this OAuth credential."""
    digest = hashlib.sha256(refresh_token.strip().encode()).hexdigest()[:12]
    safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", client_id.strip())
    return DEFAULT_REFRESH_TOKEN_VARIABLE.format(client_id=safe_id, digest=digest)


def _infer_auth_type(extra: dict[str, Any]) -> str:
    if extra.get("oauth_refresh_token") or extra.get("oauth_client_id"):
        return "oauth"
    if extra.get("certificate") or extra.get("private_key") or extra.get("keystore"):
        return "certificate"
    if extra.get("token"):
        return "token"
    return "basic"


def _keystore_fields(
    extra: dict[str, Any], fields: dict[str, Any], problem: Callable[[str], ConfigurationError]
) -> list[str]:
    """Read the keystore extras into ``fields``; returns the secrets to mask (the keystore's text, its passwords)."""
    from ..client.errors import ConfigurationError as ClientConfigurationError
    from ..client.keystores import normal_keystore_type

    keystore = _text(extra.get("keystore")) or ""
    mixed = [name for name in ("certificate", "private_key", "private_key_password") if _text(extra.get(name))]
    if mixed:
        raise problem(
            f"give either extra keystore or certificate and private_key, not both (also set: {', '.join(mixed)})"
        )
    try:
        keystore_type = normal_keystore_type(_text(extra.get("keystore_type")))
    except ClientConfigurationError as exc:
        raise problem(f"extra {exc}") from None
    passwords = {name: extra.get(name) for name in ("keystore_password", "key_password")}
    passwords = {name: None if value is None else str(value) for name, value in passwords.items()}
    fields.update(keystore=keystore, keystore_type=keystore_type, key_alias=_text(extra.get("key_alias")), **passwords)
    secrets = [value for value in passwords.values() if value]
    is_path = len(keystore) < 1024 and "\x00" not in keystore and os.path.isfile(os.path.expanduser(keystore))
    if not is_path:
        # the keystore's content (base64): masked whole and line by line, as a PEM key is
        secrets += [keystore, "".join(keystore.split())]
        secrets += [line for line in keystore.split() if len(line) >= 16]
    return secrets


def parse_connection(
    conn_id: str,
    conn: Connection,
    extra: dict[str, Any],
    client_options: dict[str, Any] | None = None,
    store: RefreshTokenStore | None = None,
) -> _Parsed:
    """Validate a connection (no network call); ConfigurationError naming the field and what to put there."""

    def problem(text: str) -> ConfigurationError:
        return ConfigurationError(f"Anaplan connection {conn_id!r}: {text}")

    extra = _normalized_extra(extra or {})
    options = dict(client_options or {})
    fields: dict[str, Any] = {"login": _text(conn.login), "password": conn.password or None}
    secret_values: list[str] = [conn.password or ""]

    raw_type = extra.get("auth_type")
    auth_type = str(raw_type).strip().lower() if raw_type else _infer_auth_type(extra)
    if auth_type not in AUTH_TYPES:
        raise problem(f"extra auth_type is {raw_type!r}; use one of {', '.join(AUTH_TYPES)}")

    if auth_type == "basic":
        if not fields["login"]:
            raise problem("auth_type basic needs Login: put the Anaplan user's email address in the Login field")
        if not fields["password"]:
            raise problem("auth_type basic needs Password: put the Anaplan user's password in the Password field")
    elif auth_type == "certificate" and _text(extra.get("keystore")):
        secret_values += _keystore_fields(extra, fields, problem)
    elif auth_type == "certificate":
        certificate, key = _text(extra.get("certificate")), _text(extra.get("private_key"))
        if not certificate:
            raise problem(
                "auth_type certificate needs extra certificate: the CA certificate as PEM text or a file path"
                + (" (private_key is given without its certificate)" if key else "")
                + (", or extra keystore: a PKCS#12 or Java keystore" if not key else "")
            )
        if not key:
            raise problem(
                "certificate is given without extra private_key: put the certificate's RSA private key there, as PEM "
                "text or a file path (and private_key_password when the key is encrypted)"
            )
        key_password = extra.get("private_key_password")
        key_password = None if key_password is None else str(key_password)
        fields.update(certificate=certificate, private_key=key, private_key_password=key_password)
        secret_values += _pem_secrets(key) if "-----BEGIN" in key else []
        secret_values.append(key_password or "")
    elif auth_type == "token":
        token = _text(extra.get("token"))
        if not token:
            raise problem("auth_type token needs extra token: an Anaplan token obtained elsewhere")
        fields["token"] = token
        secret_values.append(token)
    else:
        client_id, refresh = _text(extra.get("oauth_client_id")), _text(extra.get("oauth_refresh_token"))
        if not client_id:
            raise problem("auth_type oauth needs extra oauth_client_id: the client id of the OAuth client in Anaplan")
        if not refresh and not _text(extra.get("oauth_refresh_token_variable")):
            raise problem(
                "auth_type oauth needs extra oauth_refresh_token: the refresh token Anaplan issued when the client "
                "was authorized (or extra oauth_refresh_token_variable naming the Airflow Variable that holds it, as "
                "python -m airflow_provider_anaplan.oauth device-login --store-variable writes it)"
            )
        secret = _text(extra.get("oauth_client_secret"))
        fields.update(oauth_client_id=client_id, oauth_refresh_token=refresh, oauth_client_secret=secret)
        secret_values += [refresh or "", secret or ""]
        if store is None:
            variable = _text(extra.get("oauth_refresh_token_variable")) or default_refresh_token_variable(
                client_id, refresh
            )
            store = VariableRefreshTokenStore(variable)

    settings_kwargs: dict[str, Any] = {}
    for name in _URL_FIELDS:
        value = _text(extra.get(name))
        if value:
            settings_kwargs[name] = value
    proxy = _text(extra.get("proxy"))
    if proxy:
        settings_kwargs["proxy"] = proxy
        secret_values.append(proxy)  # masked whole in any case: it may carry credentials
        try:
            parts = urlsplit(proxy)
            host = parts.hostname
        except ValueError:
            parts, host = None, None
        if parts is None or parts.scheme not in ("http", "https", "socks5", "socks5h") or not host:
            raise problem("extra proxy must be a URL such as http://proxy.example:3128 (user:password@ allowed)")
        secret_values.append(unquote(parts.password or ""))
    if extra.get("verify") is not None:
        settings_kwargs["verify"] = _verify_option(extra["verify"], problem)
    if extra.get("timeout") is not None:
        settings_kwargs["timeout"] = _timeout_option(extra["timeout"], problem)
    unknown = sorted(set(options) - _SETTINGS_OPTIONS)
    if unknown:
        raise problem(f"unknown client option(s) {', '.join(unknown)}; known: {', '.join(sorted(_SETTINGS_OPTIONS))}")
    settings_kwargs.update(options)
    try:
        settings = ClientSettings(**settings_kwargs)
    except ClientAnaplanError as exc:
        field = str(exc).split(" ", 1)[0]
        from_extra = field in (*_URL_FIELDS, "proxy") and field not in options
        raise problem(f"extra {exc}" if from_extra else f"client option {exc}") from None
    except TypeError as exc:
        raise problem(f"invalid client option: {exc}") from None

    parsed = _Parsed(
        conn_id=conn_id,
        auth_type=auth_type,
        fields=fields,
        settings=settings,
        secrets=[s for s in secret_values if s],
        store=store if auth_type == "oauth" else None,
        workspace_id=_text(extra.get("workspace_id")),
        model_id=_text(extra.get("model_id")),
    )
    if auth_type != "oauth":
        parsed.auth = parsed._build_auth(None)  # bad PEM, a wrong key password... fail now, at hook build
    return parsed


# --------------------------------------------------------------------------------------------------- shared clients
_clients: dict[tuple[Any, ...], AnaplanClient] = {}
_clients_mutex = threading.Lock()


def shared_client(auth: AnaplanAuth, settings: ClientSettings) -> AnaplanClient:
    """The process-wide client for this credential and these settings (one HTTP client per event loop inside)."""
    key = (
        type(auth),
        auth.fingerprint,
        settings,
        id(settings.transport),
        id(settings.clock),
        id(settings.sleep),
    )
    with _clients_mutex:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = AnaplanClient(auth, settings=settings)
        return client


def forget_shared_clients() -> None:
    """Drop the process-wide clients (tests; a forked process). Tokens live on in the client's token cache."""
    with _clients_mutex:
        _clients.clear()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


# --------------------------------------------------------------------------------------------------- the hook
class AnaplanHook(BaseHook):
    """Anaplan from Airflow: credentials and defaults from an ``anaplan`` connection, calls through the async client.

    :param anaplan_conn_id: The Airflow connection to use (conn type ``anaplan``).
    :param workspace_id: Default workspace (id or name), overriding the connection's ``workspace_id``.
    :param model_id: Default model (id or name), overriding the connection's ``model_id``.
    :param refresh_token_store: Where rotated OAuth refresh tokens are kept (``load()``/``save(token)``); default an
        Airflow Variable (see :class:`VariableRefreshTokenStore`).
    :param on_refresh_token: Instead of a store: a callable that persists each rotated refresh token.
    :param load_refresh_token: With ``on_refresh_token``: a callable returning the stored refresh token (or None).
    :param client_options: :class:`ClientSettings` fields (``timeout``, ``max_attempts``, ``base_url``...), which win
        over the connection's extras.

    Built outside an event loop (a worker), the hook reads and validates its connection at once, so a broken
    connection fails here with a message that names the field. Built on an event loop (a trigger), it waits for
    :meth:`aget_client`, which reads the connection asynchronously.
    """

    conn_name_attr = "anaplan_conn_id"
    default_conn_name = "anaplan_default"
    conn_type = "anaplan"
    hook_name = "Anaplan"

    def __init__(
        self,
        anaplan_conn_id: str = default_conn_name,
        workspace_id: str | None = None,
        model_id: str | None = None,
        *,
        refresh_token_store: RefreshTokenStore | None = None,
        on_refresh_token: Callable[[str], Any] | None = None,
        load_refresh_token: Callable[[], str | None] | None = None,
        **client_options: Any,
    ) -> None:
        super().__init__()
        self.anaplan_conn_id = anaplan_conn_id
        self._workspace_id = workspace_id
        self._model_id = model_id
        if on_refresh_token is not None:
            if refresh_token_store is not None:
                raise ConfigurationError("give either refresh_token_store or on_refresh_token, not both")
            refresh_token_store = CallbackRefreshTokenStore(on_refresh_token, load_refresh_token)
        self._store = refresh_token_store
        unknown = sorted(set(client_options) - _SETTINGS_OPTIONS)
        if unknown:
            raise ConfigurationError(
                f"AnaplanHook got unknown option(s) {', '.join(unknown)}; client options are "
                f"{', '.join(sorted(_SETTINGS_OPTIONS))}"
            )
        self._client_options = client_options
        self._resolved: _Resolved | None = None
        if _running_loop() is None:
            self._resolve()

    # ----------------------------------------------------------------- connection
    def _resolve(self) -> _Resolved:
        """Read, validate and mask the connection (sync path: workers, the API server, the CLI)."""
        if self._resolved is None:
            if _running_loop() is not None:
                raise RuntimeError(
                    "AnaplanHook's synchronous methods cannot run on an event loop (they would block it): "
                    "use await hook.aget_client() or await hook.arun(...)"
                )
            conn = self.get_connection(self.anaplan_conn_id)
            parsed = parse_connection(self.anaplan_conn_id, conn, conn.extra_dejson, self._client_options, self._store)
            _mask(*parsed.secrets)
            stored = parsed.store.load() if parsed.store is not None else None
            _mask(stored)
            self._resolved = parsed.finish(stored)
        return self._resolved

    async def _aresolve(self) -> _Resolved:
        """Read, validate and mask the connection without blocking the event loop (triggers, async tasks)."""
        if self._resolved is None:
            from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson

            conn = await get_async_connection(self.anaplan_conn_id, hook=self)
            extra = await get_async_extra_dejson(conn)
            parsed = parse_connection(self.anaplan_conn_id, conn, extra, self._client_options, self._store)
            await _amask(*parsed.secrets)
            stored = await _in_thread(parsed.store.load) if parsed.store is not None else None
            await _amask(stored)
            if self._resolved is None:
                self._resolved = parsed.finish(stored)
        return self._resolved

    @property
    def auth_type(self) -> str | None:
        """The connection's auth type (basic, certificate, token, oauth), once the connection has been read."""
        return self._resolved.auth_type if self._resolved else None

    @property
    def workspace_id(self) -> str | None:
        """The default workspace: the hook's, else the connection's (known once the connection has been read)."""
        return self._workspace_id or (self._resolved.workspace_id if self._resolved else None)

    @property
    def model_id(self) -> str | None:
        """The default model: the hook's, else the connection's (known once the connection has been read)."""
        return self._model_id or (self._resolved.model_id if self._resolved else None)

    # ----------------------------------------------------------------- clients
    def get_conn(self) -> AnaplanClient:
        """The shared async client of this connection (for :meth:`run`, or for your own event loop)."""
        resolved = self._resolve()
        return shared_client(resolved.auth, resolved.settings)

    async def aget_client(self) -> AnaplanClient:
        """The shared async client, for triggers and async tasks: reads the connection asynchronously.

        Do not close it: other hooks and triggers of this connection in the process use the same HTTP client.
        """
        resolved = await self._aresolve()
        return shared_client(resolved.auth, resolved.settings)

    aget_conn = aget_client

    def run(self, fn: Callable[[AnaplanClient], Awaitable[T]]) -> T:
        """Run ``fn(client)`` to completion from synchronous code, e.g. ``hook.run(lambda c: c.list_workspaces())``.

        Any client coroutine is reachable this way. Each call runs under a fresh ``asyncio.run`` and closes that
        loop's HTTP client at the end; the token stays cached for the next call. Client errors come out as their
        Airflow twins (:mod:`airflow_provider_anaplan.exceptions`). On an event loop, use :meth:`arun` instead.
        """
        if _running_loop() is not None:
            raise RuntimeError("AnaplanHook.run() cannot be called on a running event loop; await hook.arun() instead")
        client = self.get_conn()

        async def main() -> T:
            try:
                return await fn(client)
            finally:
                await client.aclose()

        try:
            return asyncio.run(main())
        except ClientAnaplanError as exc:
            raise to_airflow_error(exc) from exc.__cause__

    async def arun(self, fn: Callable[[AnaplanClient], Awaitable[T]]) -> T:
        """Await ``fn(client)`` on the current event loop with the shared client; errors as their Airflow twins."""
        client = await self.aget_client()
        try:
            return await fn(client)
        except ClientAnaplanError as exc:
            raise to_airflow_error(exc) from exc.__cause__

    # ----------------------------------------------------------------- defaults
    async def aresolve_location(
        self, client: AnaplanClient, workspace: str | None = None, model: str | None = None
    ) -> tuple[str | None, str]:
        """(workspace id, model id) from ids or names, falling back to the hook's and the connection's defaults."""
        workspace = workspace or self.workspace_id
        model = model or self.model_id
        if not model:
            raise InvalidInputError(
                f"No Anaplan model given: pass model_id, or set model_id in the extra of connection "
                f"{self.anaplan_conn_id!r}"
            )
        workspace_id = await client.resolve_workspace(workspace) if workspace else None
        return workspace_id, await client.resolve_model(model, workspace_id)

    def resolve_location(self, workspace: str | None = None, model: str | None = None) -> tuple[str | None, str]:
        """Synchronous :meth:`aresolve_location`."""
        self._resolve()
        return self.run(lambda c: self.aresolve_location(c, workspace, model))

    def _in_model(self, method: str, model: str | None, workspace: str | None, *args: Any, **kwargs: Any) -> Any:
        """Call ``client.<method>(model_id, *args, workspace_id, **kwargs)`` with the location resolved first."""
        self._resolve()

        async def call(client: AnaplanClient) -> Any:
            workspace_id, model_id = await self.aresolve_location(client, workspace, model)
            return await getattr(client, method)(model_id, *args, workspace_id, **kwargs)

        return self.run(call)

    # ----------------------------------------------------------------- auth and metadata (sync, for workers)
    def get_current_user(self) -> User:
        """The user behind the credentials: proves that authentication works."""
        return self.run(lambda c: c.get_current_user())

    def list_workspaces(self, **kwargs: Any) -> list[Workspace]:
        """Every workspace the user can see (``search=``, ``sort=``, ``tenant_details=``)."""
        return self.run(lambda c: c.list_workspaces(**kwargs))

    def get_workspace(self, workspace: str | None = None) -> Workspace:
        """One workspace by id or name (default: the hook's or connection's workspace)."""
        workspace = workspace or self.workspace_id
        if not workspace:
            raise InvalidInputError(f"No Anaplan workspace given, and connection {self.anaplan_conn_id!r} sets none")
        return self.run(lambda c: c.find_workspace(workspace))

    def list_models(self, workspace: str | None = None, **kwargs: Any) -> list[Model]:
        """The models of a workspace (id or name; default the hook's), or of the user's tenant without one."""
        self._resolve()
        workspace = workspace or self.workspace_id

        async def call(client: AnaplanClient) -> list[Model]:
            workspace_id = await client.resolve_workspace(workspace) if workspace else None
            return await client.list_models(workspace_id, **kwargs)

        return self.run(call)

    def get_model(self, model: str | None = None, workspace: str | None = None) -> Model:
        """One model by id or name (default: the hook's or connection's model), with its details."""
        self._resolve()

        async def call(client: AnaplanClient) -> Model:
            _, model_id = await self.aresolve_location(client, workspace, model)
            return await client.get_model(model_id)

        return self.run(call)

    def get_model_status(self, model: str | None = None, workspace: str | None = None) -> ModelStatus:
        """Whether the model is open, closed or loading."""
        return self._in_model("get_model_status", model, workspace)

    def list_files(self, model: str | None = None, workspace: str | None = None) -> list[File]:
        """The files of a model."""
        return self._in_model("list_files", model, workspace)

    def list_imports(self, model: str | None = None, workspace: str | None = None) -> list[Import]:
        """The imports of a model."""
        return self._in_model("list_imports", model, workspace)

    def list_exports(self, model: str | None = None, workspace: str | None = None) -> list[Export]:
        """The exports of a model."""
        return self._in_model("list_exports", model, workspace)

    def list_processes(self, model: str | None = None, workspace: str | None = None) -> list[Process]:
        """The processes of a model."""
        return self._in_model("list_processes", model, workspace)

    def list_actions(self, model: str | None = None, workspace: str | None = None) -> list[Action]:
        """The other actions of a model."""
        return self._in_model("list_actions", model, workspace)

    def get_import_metadata(
        self, import_: str, model: str | None = None, workspace: str | None = None
    ) -> ImportMetadata:
        """What an import (id or name) expects."""
        return self._by_name("import", "get_import_metadata", import_, model, workspace)

    def get_export_metadata(
        self, export: str, model: str | None = None, workspace: str | None = None
    ) -> ExportMetadata:
        """What an export (id or name) writes."""
        return self._by_name("export", "get_export_metadata", export, model, workspace)

    def get_process_metadata(
        self, process: str, model: str | None = None, workspace: str | None = None
    ) -> ProcessMetadata:
        """The steps of a process (id or name)."""
        return self._by_name("process", "get_process_metadata", process, model, workspace)

    def resolve_object(self, kind: str, name_or_id: str, model: str | None = None, workspace: str | None = None) -> str:
        """The id of a file, import, export, process or action of the model, from its id or name."""
        if kind not in ("file", "import", "export", "process", "action"):
            raise InvalidInputError(f"kind must be file, import, export, process or action, got {kind!r}")
        return self._in_model(f"resolve_{kind}", model, workspace, name_or_id)

    def _by_name(self, kind: str, method: str, name_or_id: str, model: str | None, workspace: str | None) -> Any:
        self._resolve()

        async def call(client: AnaplanClient) -> Any:
            workspace_id, model_id = await self.aresolve_location(client, workspace, model)
            object_id = await getattr(client, f"resolve_{kind}")(model_id, name_or_id, workspace_id)
            return await getattr(client, method)(model_id, object_id, workspace_id)

        return self.run(call)

    # ----------------------------------------------------------------- test_connection
    def test_connection(self) -> tuple[bool, str]:
        """Authenticate and list workspaces; ``(False, reason)`` instead of raising (``airflow connections test``)."""

        def check() -> tuple[_Resolved, list[Workspace]]:
            resolved = self._resolve()
            return resolved, self.run(lambda c: c.list_workspaces(tenant_details=False))

        try:
            if _running_loop() is None:
                resolved, workspaces = check()
            else:  # called on an event loop: check on a thread of its own rather than block or fail
                with concurrent.futures.ThreadPoolExecutor(1) as pool:
                    resolved, workspaces = pool.submit(check).result()
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
        return True, f"Authenticated with {resolved.auth_type} auth; {len(workspaces)} workspace(s) visible"

    # ----------------------------------------------------------------- connection form (Airflow 3.1)
    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extra fields of the connection form, for Airflow 3.1 (3.2+ reads ``conn-fields`` instead)."""
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextAreaFieldWidget, BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import IntegerField, PasswordField, StringField
        from wtforms.validators import Optional, any_of

        widgets: dict[str, Any] = {}
        for name, spec in CONN_FIELDS.items():
            schema = spec["schema"]
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            label, description = lazy_gettext(spec["label"]), spec["description"]
            if schema.get("format") == "password":
                widgets[name] = PasswordField(label, widget=BS3PasswordFieldWidget(), description=description)
            elif "integer" in types:
                widgets[name] = IntegerField(
                    label, validators=[Optional()], widget=BS3TextFieldWidget(), description=description
                )
            elif "enum" in schema:
                widgets[name] = StringField(
                    label,
                    validators=[any_of(schema["enum"])],
                    default=schema.get("default"),
                    widget=BS3TextFieldWidget(),
                    description=description,
                )
            elif schema.get("format") == "multiline":
                widgets[name] = StringField(label, widget=BS3TextAreaFieldWidget(), description=description)
            else:
                widgets[name] = StringField(label, widget=BS3TextFieldWidget(), description=description)
        return widgets

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden, relabelled and placeholder standard fields, for Airflow 3.1 (3.2+ reads ``ui-field-behaviour``)."""
        return {
            "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
            "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
            "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
        }

    def __repr__(self) -> str:
        return f"AnaplanHook(anaplan_conn_id={self.anaplan_conn_id!r})"


__all__ = [
    "AUTH_TYPES",
    "DEFAULT_REFRESH_TOKEN_VARIABLE",
    "AnaplanHook",
    "CallbackRefreshTokenStore",
    "RefreshTokenStore",
    "VariableRefreshTokenStore",
    "default_refresh_token_variable",
    "forget_shared_clients",
    "parse_connection",
    "rebuild_pem",
    "shared_client",
]
