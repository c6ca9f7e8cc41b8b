"""The OAuth device authorization grant (RFC 8628): a one-time login that yields a refresh token for a connection.

A scheduler cannot open a browser, so an OAuth connection needs a refresh token obtained once by a person:
:func:`device_login` asks Anaplan's OAuth service for a device code, hands the verification URL and the user code to a
callback (which shows them to the person), then polls the token endpoint every ``interval`` seconds until the person
approves in a browser. ``authorization_pending`` means keep waiting; ``slow_down`` adds 5 seconds to the interval for
good (RFC 8628 §3.5); ``access_denied`` and ``expired_token`` end the login with :class:`DeviceAccessDeniedError` and
:class:`DeviceCodeExpiredError`. Anaplan takes the device grant only from an OAuth client registered for it (no client
secret); the ``offline_access`` scope is what makes it issue a refresh token.

The device code, the access token and the refresh token never appear in a log line, a message or a repr.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from ._transport import USER_AGENT, error_for_response, parse_retry_after
from .errors import AuthenticationError, ConfigurationError, ProtocolError, TransportError
from .settings import ClientSettings

log = logging.getLogger("airflow_provider_anaplan.client")

DEVICE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_SCOPE = "openid profile email offline_access"
DEFAULT_INTERVAL = 5.0  # seconds, when the answer gives none (RFC 8628 §3.2)
SLOW_DOWN_STEP = 5.0  # seconds added to the interval for every slow_down (RFC 8628 §3.5)
MIN_INTERVAL = 1.0  # never poll more often than this, whatever the server says


class DeviceLoginError(AuthenticationError):
    """The device login ended without tokens."""


class DeviceAccessDeniedError(DeviceLoginError):
    """The person denied the request (``access_denied``)."""


class DeviceCodeExpiredError(DeviceLoginError):
    """Nobody approved the request before the device code expired (``expired_token``)."""


@dataclass(frozen=True)
class DeviceCode:
    """What the person needs to approve the login; ``device_code`` is the poller's secret and never shown."""

    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: float  # seconds
    interval: float  # seconds between polls
    device_code: str = field(repr=False)


@dataclass(frozen=True)
class DeviceLoginResult:
    """The tokens of an approved device login; only the client id, scope and lifetime show in a repr."""

    client_id: str
    refresh_token: str = field(repr=False)
    access_token: str = field(repr=False)
    expires_in: float | None  # the access token's lifetime in seconds
    scope: str | None


CodeCallback = Callable[[DeviceCode], Awaitable[None] | None]


def _oauth_error(response: httpx.Response) -> str | None:
    """The RFC 6749 ``error`` code of an OAuth error answer, or None."""
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else None


def _transient(response: httpx.Response) -> bool:
    return response.status_code == 429 or response.status_code >= 500


def _client_problem(client_id: str, settings: ClientSettings, response: httpx.Response, path: str) -> Exception:
    """The error for an answer that says the client cannot use the device grant, or the generic one."""
    error = _oauth_error(response)
    if error == "invalid_client":
        return AuthenticationError(
            f"Anaplan's OAuth service at {settings.oauth_url} does not know the OAuth client {client_id!r} "
            "(invalid_client): check the client id, and give the OAuth URL of the tenant's region",
            status=response.status_code,
            anaplan_message=error,
            method="POST",
            path=path,
        )
    if error == "unauthorized_client":
        return AuthenticationError(
            f"OAuth client {client_id!r} is not registered for the device grant (unauthorized_client): in Anaplan "
            "Administration > Security > OAuth, create a client of type Device Grant and use its client id",
            status=response.status_code,
            anaplan_message=error,
            method="POST",
            path=path,
        )
    return error_for_response(response, "POST", path)


async def _post(
    http: httpx.AsyncClient, settings: ClientSettings, path: str, body: dict[str, str]
) -> httpx.Response | Exception:
    """One POST to the OAuth service; a connection failure comes back as a TransportError (never raised here)."""
    try:
        return await http.post(f"{settings.oauth_url}{path}", json=body)
    except httpx.TimeoutException as exc:
        return TransportError(f"POST {path} timed out ({type(exc).__name__})", method="POST", path=path)
    except httpx.TransportError as exc:
        return TransportError(f"POST {path} failed: {type(exc).__name__}", method="POST", path=path)


async def request_device_code(
    http: httpx.AsyncClient, settings: ClientSettings, client_id: str, scope: str = DEFAULT_SCOPE
) -> DeviceCode:
    """``POST /oauth/device/code``, tried again after connection failures, 429 and 5xx (a new code is harmless)."""
    path = "/oauth/device/code"
    attempt = 0
    while True:
        attempt += 1
        outcome = await _post(http, settings, path, {"client_id": client_id, "scope": scope})
        retryable = isinstance(outcome, Exception) or _transient(outcome)
        if not retryable or attempt >= settings.max_attempts:
            break
        delay = min(settings.backoff_cap, settings.backoff_base * 2 ** (attempt - 1))
        if isinstance(outcome, httpx.Response):
            delay = parse_retry_after(outcome.headers.get("retry-after"), settings.clock()) or delay
        log.info("Requesting a device code failed (attempt %d); trying again in %.1f s", attempt, delay)
        await settings.sleep(delay)
    if isinstance(outcome, Exception):
        raise outcome
    if not outcome.is_success:
        raise _client_problem(client_id, settings, outcome, path)
    try:
        data = outcome.json()
        device_code, user_code = data["device_code"], data["user_code"]
        uri, complete = data["verification_uri"], data.get("verification_uri_complete")
        expires_in = float(data["expires_in"])
        interval = float(DEFAULT_INTERVAL if data.get("interval") is None else data["interval"])
        if not all(isinstance(v, str) and v for v in (device_code, user_code, uri)):
            raise TypeError
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ProtocolError(
            "Anaplan's OAuth service answered /oauth/device/code without a readable device_code, user_code, "
            "verification_uri and expires_in",
            status=outcome.status_code,
            method="POST",
            path=path,
        ) from None
    return DeviceCode(
        user_code=user_code,
        verification_uri=uri,
        verification_uri_complete=complete if isinstance(complete, str) and complete else None,
        expires_in=expires_in,
        interval=max(interval, MIN_INTERVAL),
        device_code=device_code,
    )


async def poll_for_tokens(
    http: httpx.AsyncClient, settings: ClientSettings, client_id: str, code: DeviceCode
) -> DeviceLoginResult:
    """Poll ``POST /oauth/token`` with the device code until approval, denial or expiry (RFC 8628 §3.4, §3.5)."""
    path = "/oauth/token"
    body = {"grant_type": DEVICE_GRANT_TYPE, "client_id": client_id, "device_code": code.device_code}
    interval = code.interval
    deadline = settings.clock() + code.expires_in
    failures = 0
    while True:
        await settings.sleep(interval)
        outcome = await _post(http, settings, path, body)
        if isinstance(outcome, Exception) or _transient(outcome):
            failures += 1
            if failures >= settings.max_attempts:
                if isinstance(outcome, Exception):
                    raise outcome
                raise error_for_response(outcome, "POST", path, "gave up waiting for the device login")
            reason = type(outcome).__name__ if isinstance(outcome, Exception) else f"HTTP {outcome.status_code}"
            log.warning("Polling for the device login failed (%s); polling again in %.0f s", reason, interval)
            if isinstance(outcome, httpx.Response):
                wait = parse_retry_after(outcome.headers.get("retry-after"), settings.clock())
                if wait is not None and wait > interval:
                    await settings.sleep(wait - interval)
        elif outcome.is_success:
            return _tokens(outcome, client_id, path)
        else:
            failures = 0
            error = _oauth_error(outcome)
            if error == "slow_down":
                interval += SLOW_DOWN_STEP
                log.info("Anaplan asked to poll more slowly; polling every %.0f s", interval)
            elif error == "access_denied":
                raise DeviceAccessDeniedError(
                    f"The device login for OAuth client {client_id!r} was denied (access_denied): the person who "
                    "opened the verification URL declined it. Run the device login again to retry.",
                    status=outcome.status_code,
                    anaplan_message=error,
                    method="POST",
                    path=path,
                )
            elif error == "expired_token":
                raise _expired(client_id, code, outcome.status_code)
            elif error != "authorization_pending":
                raise _client_problem(client_id, settings, outcome, path)
        if settings.clock() >= deadline:
            raise _expired(client_id, code, None)


def _expired(client_id: str, code: DeviceCode, status: int | None) -> DeviceCodeExpiredError:
    return DeviceCodeExpiredError(
        f"The device code for OAuth client {client_id!r} expired (expired_token) before anyone approved it: run the "
        f"device login again and approve within {code.expires_in:.0f} s at the verification URL",
        status=status,
        anaplan_message="expired_token" if status is not None else None,
        method="POST",
        path="/oauth/token",
    )


def _tokens(response: httpx.Response, client_id: str, path: str) -> DeviceLoginResult:
    try:
        data = response.json()
        access, refresh = data["access_token"], data.get("refresh_token")
        if not isinstance(access, str) or not access:
            raise TypeError
        expires_in = data.get("expires_in")
        scope = data.get("scope")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ProtocolError(
            "Anaplan's OAuth service approved the device login but answered without a readable access_token",
            status=response.status_code,
            method="POST",
            path=path,
        ) from None
    if not isinstance(refresh, str) or not refresh:
        raise DeviceLoginError(
            f"The device login for OAuth client {client_id!r} was approved, but Anaplan issued no refresh token: "
            "request the offline_access scope",
            status=response.status_code,
            method="POST",
            path=path,
        )
    return DeviceLoginResult(
        client_id=client_id,
        refresh_token=refresh,
        access_token=access,
        expires_in=float(expires_in) if isinstance(expires_in, int | float) else None,
        scope=scope if isinstance(scope, str) else None,
    )


async def device_login(
    client_id: str,
    on_code: CodeCallback,
    *,
    settings: ClientSettings | None = None,
    scope: str = DEFAULT_SCOPE,
    **options: Any,
) -> DeviceLoginResult:
    """Run the whole device login and return the tokens (``result.refresh_token`` goes into the connection).

    :param client_id: The device-grant OAuth client's id.
    :param on_code: Called (sync or async) with the :class:`DeviceCode` once it exists: show
        ``verification_uri_complete`` (or ``verification_uri`` and ``user_code``) to the person who approves.
    :param settings: Where Anaplan's OAuth service is (``oauth_url``), TLS, proxy and timeouts; ``options`` are
        :class:`ClientSettings` fields that override it (e.g. ``oauth_url="https://eu3.app.anaplan.com"``).
    :param scope: The scopes to request; keep ``offline_access``, which is what yields a refresh token.
    :raises DeviceAccessDeniedError: the person denied the request.
    :raises DeviceCodeExpiredError: nobody approved it in time.
    """
    if not isinstance(client_id, str) or not client_id.strip():
        raise ConfigurationError("Missing credentials: client_id is empty (the device-grant OAuth client's id)")
    if not callable(on_code):
        raise ConfigurationError("on_code must be a callable that shows the verification URL and user code")
    if not isinstance(scope, str) or not scope.split():
        raise ConfigurationError("scope must be a space-separated list of OAuth scopes")
    client_id = client_id.strip()
    settings = ClientSettings.from_options(settings, **options)
    async with httpx.AsyncClient(
        **settings.httpx_options(), follow_redirects=False, headers={"User-Agent": USER_AGENT}
    ) as http:
        code = await request_device_code(http, settings, client_id, " ".join(scope.split()))
        log.info(
            "Device login for OAuth client %s: waiting for approval of user code %s (expires in %.0f s)",
            client_id,
            code.user_code,
            code.expires_in,
        )
        shown = on_code(code)
        if inspect.isawaitable(shown):
            await shown
        result = await poll_for_tokens(http, settings, client_id, code)
    log.info("Device login for OAuth client %s approved", client_id)
    return result


__all__ = [
    "DEFAULT_SCOPE",
    "DEVICE_GRANT_TYPE",
    "DeviceAccessDeniedError",
    "DeviceCode",
    "DeviceCodeExpiredError",
    "DeviceLoginError",
    "DeviceLoginResult",
    "device_login",
    "poll_for_tokens",
    "request_device_code",
]
