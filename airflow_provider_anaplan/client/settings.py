"""Where the client talks to Anaplan and how patiently: hosts, httpx options, retry bounds, token refresh margin."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import os
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from .errors import ConfigurationError

DEFAULT_AUTH_URL = "https://auth.anaplan.com"
DEFAULT_API_URL = "https://api.anaplan.com"
DEFAULT_OAUTH_URL = "https://us1a.app.anaplan.com"
API_PREFIX = "/2/0"

#: Connections the pool of each per-loop httpx client may open at most (httpx's own default, now set explicitly).
MAX_CONNECTIONS = 100
#: Idle connections each pool keeps open at least (httpx's default); raised to ``max_in_flight`` when that is larger.
MAX_KEEPALIVE_CONNECTIONS = 20
# Anaplan's reads can block while a dormant model loads, so the read timeout is generous.
DEFAULT_TIMEOUT = httpx.Timeout(connect=30.0, read=300.0, write=300.0, pool=60.0)


def _shown(text: str) -> str:
    """``text`` for an error message, unless it may hold credentials (``user:password@``): then only a placeholder."""
    return "a URL with credentials (not shown)" if "@" in text else repr(text)


def _origin(name: str, value: str) -> str:
    """``value`` as a bare origin (``scheme://host[:port]``); ConfigurationError for anything with a path or query.

    Credentials in the URL are checked first, and no message ever echoes a value that may carry them.
    """
    if not isinstance(value, str) or not value.strip():
        shown = repr(value) if not isinstance(value, str) else "an empty string"
        raise ConfigurationError(f"{name} must be a URL such as 'https://host', got {shown}")
    text = value.strip()
    if "@" in text:  # user:password@host (also without a scheme, which urlsplit would not see as a netloc)
        raise ConfigurationError(f"{name} must not carry credentials; give them to the auth class instead")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise ConfigurationError(f"{name} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{name} must start with http:// or https:// and name a host, got {_shown(text)}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        hint = " (the client adds /2/0 itself)" if parts.path.rstrip("/").endswith(API_PREFIX) else ""
        raise ConfigurationError(
            f"{name} must be an origin without a path, query or fragment, such as "
            f"'{parts.scheme}://{parts.netloc}'{hint}; got a path {parts.path!r}"
            + (" and a query" if parts.query else "")
        )
    return f"{parts.scheme}://{parts.netloc}"


PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")


def _check_proxy(proxy: Any) -> None:
    """ConfigurationError for a proxy httpx cannot use; never echoes the proxy URL (it may carry a password)."""
    if isinstance(proxy, httpx.Proxy):
        url = proxy.url
    elif isinstance(proxy, str | httpx.URL):
        try:
            url = httpx.URL(proxy)
        except (httpx.InvalidURL, TypeError, ValueError):
            raise ConfigurationError("proxy is not a valid URL (give it as 'http://host:port')") from None
    else:
        raise ConfigurationError(f"proxy must be a URL string such as 'http://host:port', got {type(proxy).__name__}")
    if url.scheme not in PROXY_SCHEMES or not url.host:
        scheme = f"a {url.scheme}:// URL" if url.scheme else "a URL without a scheme"
        raise ConfigurationError(
            f"proxy must be an http://, https:// or socks5:// URL naming a host, got {scheme}; "
            "give it as 'http://host:port'"
        )
    if url.scheme.startswith("socks5") and importlib.util.find_spec("socksio") is None:
        raise ConfigurationError(
            "proxy is a socks5:// URL, which needs the 'socksio' package: pip install 'httpx[socks]', "
            "or use an http:// proxy"
        )


def _check_timeout(timeout: Any) -> None:
    if timeout is None or isinstance(timeout, httpx.Timeout):
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        got = repr(timeout) if isinstance(timeout, int | float) else f"a {type(timeout).__name__}"
        raise ConfigurationError(
            f"timeout must be a number of seconds > 0, an httpx.Timeout or None, got {got}; e.g. timeout=60"
        )


def _ssl_context(verify: Any) -> bool | ssl.SSLContext:
    """What httpx gets for ``verify``: a bool or SSLContext as given, a CA bundle path (file or directory, ``~``
    expanded) as an SSLContext; ConfigurationError (naming the path, never its content) when it cannot be used."""
    if isinstance(verify, bool | ssl.SSLContext):
        return verify
    if not isinstance(verify, str | os.PathLike):
        raise ConfigurationError(
            f"verify must be True, False, an ssl.SSLContext or the path of a CA bundle, got {type(verify).__name__}"
        )
    text = os.fspath(verify)
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError("verify must be True, False, an ssl.SSLContext or the path of a CA bundle")
    if "\x00" in text:
        raise ConfigurationError("verify is not a usable path: it contains a NUL byte")
    path = Path(text).expanduser()
    try:
        if path.is_dir():
            return ssl.create_default_context(capath=str(path))
        return ssl.create_default_context(cafile=str(path))
    except (OSError, ValueError, ssl.SSLError) as exc:
        reason = (
            "no such file or directory"
            if isinstance(exc, FileNotFoundError)
            else getattr(exc, "strerror", None) or getattr(exc, "reason", None) or type(exc).__name__
        )
        raise ConfigurationError(
            f"verify={text!r} is not a usable CA bundle ({reason}): give the path of a PEM file of CA certificates, "
            "a directory of them, an ssl.SSLContext, or True for the system's CAs"
        ) from None


_SHARED_CONTEXTS: dict[tuple[bool, str | None, str | None], ssl.SSLContext] = {}
_SHARED_CONTEXTS_LOCK = threading.Lock()


def shared_ssl_context(verify: bool) -> ssl.SSLContext:
    """The process-wide SSLContext httpx would build for ``verify=True``/``False``, built once and reused.

    httpx builds a new context for every client it creates, and for ``verify=True`` that loads the whole CA bundle
    (30 to 40 ms, on the event loop; the transport builds this one in a worker thread before an event loop's first
    request). A context is safe to share between clients, threads and event loops. Built as
    httpx 0.28 builds it: ``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` when set (read each time, so a change is honoured),
    else certifi's bundle; ``False`` turns verification off.
    """
    key = (verify, os.environ.get("SSL_CERT_FILE") or None, os.environ.get("SSL_CERT_DIR") or None)
    with _SHARED_CONTEXTS_LOCK:
        context = _SHARED_CONTEXTS.get(key)
        if context is None:
            context = _SHARED_CONTEXTS[key] = _new_context(*key)
        return context


def _new_context(verify: bool, cafile: str | None, capath: str | None) -> ssl.SSLContext:
    if not verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if cafile:
        return ssl.create_default_context(cafile=cafile)
    if capath:
        return ssl.create_default_context(capath=capath)
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


@dataclass(frozen=True, kw_only=True)
class ClientSettings:
    """Hosts, httpx options and retry policy of an Anaplan client.

    ``auth_url``, ``api_url`` and ``oauth_url`` are origins without paths (the client adds ``/2/0`` for the API);
    by default they are Anaplan's production hosts. ``base_url`` sets all three that were not given to one origin
    (the local emulator serves every service from one origin).

    Retries wait ``min(backoff_cap, backoff_base * 2 ** (n - 1))`` seconds before retry ``n``, minus up to
    ``jitter`` (a fraction, 0..1) of that, or what ``Retry-After`` asks for; at most ``max_attempts`` tries and
    ``max_retry_time`` seconds in all. Tokens are refreshed ``refresh_margin`` seconds before they expire.

    ``max_in_flight`` (1 to ``MAX_CONNECTIONS`` = 100, the pool's ``max_connections``; default 50) caps the HTTP
    requests one client sends at once on one event loop. Further requests wait on an ``asyncio.Semaphore`` (one per
    event loop, held only while a request is sent and its answer read, not during retry backoff or token acquisition)
    rather than in httpcore's connection-pool queue, which rescans every queued request on each send and release:
    with 1000 triggers sharing one client in a triggerer that scan stalled the loop for seconds. The pool keeps up to
    ``max(20, max_in_flight)`` idle connections, so the capped requests reuse their connections.

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
    max_in_flight: int = 50
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
        if (
            not isinstance(self.max_in_flight, int)
            or isinstance(self.max_in_flight, bool)
            or not 1 <= self.max_in_flight <= MAX_CONNECTIONS
        ):
            raise ConfigurationError(
                f"max_in_flight must be an integer from 1 to {MAX_CONNECTIONS} (the connection pool's size), "
                f"got {self.max_in_flight!r}"
            )
        if not isinstance(self.jitter, int | float) or not 0 <= self.jitter <= 1:
            raise ConfigurationError(f"jitter must be a fraction between 0 and 1, got {self.jitter!r}")
        if self.proxy is not None:
            _check_proxy(self.proxy)
        _check_timeout(self.timeout)
        object.__setattr__(self, "_verify", _ssl_context(self.verify))  # a bad CA bundle fails here, up front

    @classmethod
    def from_options(cls, settings: ClientSettings | None = None, /, **options: Any) -> ClientSettings:
        """Settings from keyword options, or ``settings`` with some of its fields replaced by them.

        An unknown option is a ConfigurationError naming it. ``base_url`` given together with ``settings`` sets every
        host (auth, API, OAuth) that is not also given as a keyword, as it does for a new ClientSettings.
        """
        unknown = sorted(set(options) - _OPTION_NAMES)
        if unknown:
            raise ConfigurationError(
                f"Unknown client setting(s): {', '.join(unknown)}; the settings are: {', '.join(sorted(_OPTION_NAMES))}"
            )
        if settings is None:
            return cls(**options)
        if not isinstance(settings, ClientSettings):
            raise ConfigurationError(f"settings must be a ClientSettings, got {type(settings).__name__}")
        if not options:
            return settings
        if options.get("base_url") is not None:
            for name in _HOST_FIELDS:
                options.setdefault(name, "")  # empty: taken from base_url by __post_init__
        return dataclasses.replace(settings, **options)

    def httpx_options(self, **overrides: Any) -> dict[str, Any]:
        """The keyword arguments of an ``httpx.AsyncClient`` for these settings (a CA bundle path as an SSLContext)."""
        options: dict[str, Any] = {
            "transport": self.transport,
            "proxy": self.proxy,
            "verify": getattr(self, "_verify", self.verify),
            "timeout": self.timeout,
            "limits": self.limits,
        }
        options.update(overrides)
        return options

    @property
    def limits(self) -> httpx.Limits:
        """The connection-pool limits of each per-loop client: ``MAX_CONNECTIONS`` (>= ``max_in_flight``) in all."""
        return httpx.Limits(
            max_connections=MAX_CONNECTIONS,
            max_keepalive_connections=max(MAX_KEEPALIVE_CONNECTIONS, self.max_in_flight),
        )

    @property
    def api_base(self) -> str:
        """The Integration/ALM API root, ``{api_url}/2/0``."""
        return f"{self.api_url}{API_PREFIX}"


_HOST_FIELDS = ("auth_url", "api_url", "oauth_url")
_OPTION_NAMES = frozenset({f.name for f in dataclasses.fields(ClientSettings)} | {"base_url"})

__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_AUTH_URL",
    "DEFAULT_OAUTH_URL",
    "DEFAULT_TIMEOUT",
    "MAX_CONNECTIONS",
    "ClientSettings",
    "shared_ssl_context",
]
