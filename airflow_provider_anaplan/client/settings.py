"""Where the client talks to Anaplan and how patiently: hosts, httpx options, retry bounds, token refresh margin."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import InitVar, dataclass, field
from urllib.parse import urlsplit

import httpx

from .errors import ConfigurationError

DEFAULT_AUTH_URL = "https://auth.anaplan.com"
DEFAULT_API_URL = "https://api.anaplan.com"
DEFAULT_OAUTH_URL = "https://us1a.app.anaplan.com"
API_PREFIX = "/2/0"

# Anaplan's reads can block while a dormant model loads, so the read timeout is generous.
DEFAULT_TIMEOUT = httpx.Timeout(connect=30.0, read=300.0, write=300.0, pool=60.0)


def _origin(name: str, value: str) -> str:
    """``value`` as a bare origin (``scheme://host[:port]``); ConfigurationError for anything with a path or query."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name} must be a URL such as 'https://host', got {value!r}")
    text = value.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise ConfigurationError(f"{name} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{name} must start with http:// or https:// and name a host, got {text!r}")
    if parts.username or parts.password:
        raise ConfigurationError(f"{name} must not carry credentials; give them to the auth class instead")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        hint = " (the client adds /2/0 itself)" if parts.path.rstrip("/").endswith(API_PREFIX) else ""
        raise ConfigurationError(
            f"{name} must be an origin without a path, query or fragment, such as "
            f"'{parts.scheme}://{parts.netloc}'{hint}; got a path {parts.path!r}"
            + (" and a query" if parts.query else "")
        )
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True, kw_only=True)
class ClientSettings:
    """Hosts, httpx options and retry policy of an Anaplan client.

    ``auth_url``, ``api_url`` and ``oauth_url`` are origins without paths (the client adds ``/2/0`` for the API);
    by default they are Anaplan's production hosts. ``base_url`` sets all three that were not given to one origin
    (the local emulator serves every service from one origin).

    Retries wait ``min(backoff_cap, backoff_base * 2 ** (n - 1))`` seconds before retry ``n``, minus up to
    ``jitter`` (a fraction, 0..1) of that, or what ``Retry-After`` asks for; at most ``max_attempts`` tries and
    ``max_retry_time`` seconds in all. Tokens are refreshed ``refresh_margin`` seconds before they expire.

    ``transport``, ``clock`` and ``sleep`` are for tests and the emulator: a custom httpx transport (e.g.
    ``httpx.ASGITransport(app=emulator)``; it is shared by the per-loop clients, which close it when they close, a
    no-op for the ASGI transport), the wall clock (epoch seconds) used for token expiry and certificate
    timestamps, and the coroutine used to wait between retries.
    """

    auth_url: str = ""
    api_url: str = ""
    oauth_url: str = ""
    base_url: InitVar[str | None] = None
    proxy: str | None = field(default=None, repr=False)  # may carry proxy credentials
    verify: bool | str | ssl.SSLContext = True
    timeout: float | httpx.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT, hash=False)
    max_attempts: int = 5
    max_retry_time: float = 300.0
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    jitter: float = 0.5
    refresh_margin: float = 300.0
    transport: httpx.AsyncBaseTransport | None = field(default=None, repr=False, compare=False)
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False, compare=False)

    def __post_init__(self, base_url: str | None) -> None:
        base = _origin("base_url", base_url) if base_url is not None else None
        for name, default in (
            ("auth_url", DEFAULT_AUTH_URL),
            ("api_url", DEFAULT_API_URL),
            ("oauth_url", DEFAULT_OAUTH_URL),
        ):
            given = getattr(self, name)
            value = _origin(name, given) if given else (base or default)
            object.__setattr__(self, name, value)
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be an integer >= 1, got {self.max_attempts!r}")
        for name in ("max_retry_time", "backoff_base", "backoff_cap", "refresh_margin"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ConfigurationError(f"{name} must be a number >= 0, got {value!r}")
        if not isinstance(self.jitter, int | float) or not 0 <= self.jitter <= 1:
            raise ConfigurationError(f"jitter must be a fraction between 0 and 1, got {self.jitter!r}")
        if self.proxy is not None:
            try:
                httpx.URL(self.proxy)
            except (httpx.InvalidURL, TypeError):
                raise ConfigurationError("proxy is not a valid URL") from None

    @property
    def api_base(self) -> str:
        """The Integration/ALM API root, ``{api_url}/2/0``."""
        return f"{self.api_url}{API_PREFIX}"


__all__ = ["DEFAULT_API_URL", "DEFAULT_AUTH_URL", "DEFAULT_OAUTH_URL", "DEFAULT_TIMEOUT", "ClientSettings"]
