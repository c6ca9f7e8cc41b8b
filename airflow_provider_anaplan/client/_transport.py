"""The HTTP layer: one httpx client per event loop, tokens from the cache, retries by rule, errors mapped to errors.py.

Retry rule (why ``RetryClass`` exists): a request that cannot start work twice (``SAFE``) is retried after a 401 (with
a new token), a 429, a connection that failed before anything was sent, a 500/502/503/504, a timeout, a reset or a lost
response. A request that starts work (``ACTION``: ``POST …/tasks``, the ALM task and revision POSTs, ``/oauth/token``)
is replayed only when Anaplan cannot have acted on it (401, 429, connection failed before sending); after a 5xx, a
timeout, a reset or a lost response it may or may not have started, so the caller must reconcile instead.

The token is only ever sent to the configured hosts: an absolute URL must have the origin of ``api_url`` (of
``auth_url`` or ``oauth_url`` for the auth service's own calls), else the request is refused before it is sent.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import re
import ssl
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from .auth import AnaplanAuth, Token, TokenCache, token_cache
from .errors import (
    AnaplanError,
    AnaplanTimeoutError,
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    InvalidInputError,
    ModelStateError,
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from .settings import ClientSettings, shared_ssl_context

log = logging.getLogger("airflow_provider_anaplan.client")

USER_AGENT = "airflow-provider-anaplan"
PAGE_LIMIT = 5000  # the most items Anaplan returns in one page
PAGE_CONCURRENCY = 4  # pages fetched at once once the first page gives totalSize
# Items of a page handed over between two turns of the event loop: a caller parsing each one (a page holds up to 5000)
# would otherwise keep the loop, and every trigger on it, waiting for the whole page (45 to 114 ms).
YIELD_EVERY = 250
RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})


class RetryClass(enum.Enum):
    """Whether a request may be sent again after an answer that leaves its effect unknown."""

    SAFE = "safe"  # idempotent: retried after 401, 429, connect failures, 5xx, timeouts, resets, lost responses
    ACTION = "action"  # starts work: replayed only after 401, 429 or a connection that failed before sending


# bulkDeleteModels is SAFE: deleting twice has the effect of deleting once (a replay after a lost answer reports the
# models the first call deleted as failures, "not found"; see MetadataAPI.bulk_delete_models).
_SAFE_POST = re.compile(r"(/files/[^/]+|/complete|/token/authenticate|/token/refresh|/bulkDeleteModels)/?$")


def classify(method: str, path: str) -> RetryClass:
    """The retry class of a request by method and path; an unknown POST counts as an ACTION (never double-run)."""
    method = method.upper()
    if method in ("GET", "HEAD", "OPTIONS", "DELETE", "PUT"):
        return RetryClass.SAFE
    if method == "POST" and _SAFE_POST.search(path):
        return RetryClass.SAFE
    return RetryClass.ACTION


_ERROR_CLASSES: dict[int, type[AnaplanError]] = {
    400: InvalidInputError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: InvalidInputError,
    406: InvalidInputError,
    409: ConflictError,
    410: ModelStateError,
    422: ModelStateError,
    423: ModelStateError,
    424: PermissionDeniedError,
    429: RateLimitedError,
}

_HINTS: dict[int, str] = {
    401: "check the credentials (Anaplan refused them or the token)",
    403: "the user's role lacks the permission for this call",
    404: "a wrong id, an expired object, or a model the user cannot access (Anaplan answers 404 for each)",
    409: "the model or object is busy, or the request conflicts with work already running",
    410: "the object is gone",
    422: "the model cannot accept this now (archived?)",
    423: "the model is locked",
    424: "the user's role lacks the permission for this call",
}


def anaplan_message(response: httpx.Response) -> str | None:
    """Anaplan's own message from any of its error body shapes (Integration, auth service, OAuth), else None."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    status = body.get("status")
    if isinstance(status, dict) and isinstance(status.get("message"), str):
        return status["message"]
    if isinstance(body.get("statusMessage"), str):
        return body["statusMessage"]
    if isinstance(body.get("error"), str):
        description = body.get("error_description")
        return f"{body['error']}: {description}" if isinstance(description, str) and description else body["error"]
    if isinstance(body.get("message"), str):
        return body["message"]
    return None


def _reconcile_hint(path: str) -> str:
    if path.rstrip("/").endswith("/oauth/token"):
        return "the refresh token may or may not have been spent: re-read the stored refresh token before trying again"
    return (
        "the action may or may not have started: reconcile by listing the action's tasks "
        "(GET …/tasks) before running it again"
    )


def error_for_response(response: httpx.Response, method: str, path: str, note: str = "") -> AnaplanError:
    """The error for a non-success answer, carrying the status, Anaplan's message, the method and the path."""
    status = response.status_code
    message = anaplan_message(response)
    if status in _ERROR_CLASSES:
        cls = _ERROR_CLASSES[status]
    elif status >= 500:
        cls = ServerError
    else:
        cls = AnaplanError
    reason = response.reason_phrase or ""
    text = f"{method} {path} failed with HTTP {status}{' ' + reason if reason else ''}"
    if message:
        text += f": {message}"
    hint = _HINTS.get(status)
    if hint:
        text += f" ({hint})"
    if note:
        text += f"; {note}"
    return cls(text, status=status, anaplan_message=message, method=method, path=path)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date), or None when absent/unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # asctime and "-0000" forms: HTTP dates are always UTC, never local time
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")


def _cause(exc: BaseException) -> str:
    """A short, secret-free account of a low-level failure: its class and its message (credentials in any URL
    masked), or the TLS reason for a certificate that could not be verified."""
    verify = _certificate_failure(exc)
    if verify is not None:
        return verify
    text = _USERINFO.sub("***@", str(exc)).strip()
    if len(text) > 200:
        text = text[:200] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _certificate_failure(exc: BaseException) -> str | None:
    """``SSL: CERTIFICATE_VERIFY_FAILED (<reason>)`` when the failure is a server certificate that could not be
    verified (it will not heal by retrying), else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return f"SSL: CERTIFICATE_VERIFY_FAILED ({current.verify_message or current.reason or 'not trusted'})"
        if "CERTIFICATE_VERIFY_FAILED" in str(current):
            return "SSL: CERTIFICATE_VERIFY_FAILED"
        current = current.__cause__ or current.__context__
    return None


def _origin_of(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return (url.scheme, url.host.lower(), url.port or default)


class _Failure(enum.Enum):
    CONNECT = "the connection failed before the request was sent"
    TIMEOUT = "the request timed out"
    LOST = "the connection was reset or the response was lost"


async def _cancel_all(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel tasks fetched ahead that are no longer wanted, wait for them, and retrieve their outcome."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
        for task in pending:
            if not task.cancelled():
                task.exception()  # retrieved: a fetch that failed after it stopped being wanted is moot


_DRAINED = httpx.ByteStream(b"")


def _release(response: httpx.Response) -> None:
    """Break the reference cycle httpx 0.28 leaves in every response, once its body has been read and its stream closed.

    ``AsyncClient.send`` sets ``response.stream = BoundAsyncStream(..., response=response)``: the response refers to
    itself, so it (with its request body, e.g. an uploaded chunk, and its content) would live until the cyclic garbage
    collector runs rather than be freed when the caller drops it; over many chunks memory piles up. The stream is
    spent by then, so an empty one takes its place (reading the response again returns the cached content).
    """
    response.stream = _DRAINED


BufferFactory = Callable[[int], bytearray]
"""Gives the bytearray a body of the given length is read into: empty (a new one, filled by appending) or of exactly
that length (one reused from an earlier body, overwritten in place)."""


def new_buffer(size: int) -> bytearray:
    """A new, empty buffer: it grows as the body arrives, so no page is zero-filled first.

    ``bytearray(size)`` would zero every page of a chunk on the event loop in one go (the GIL held throughout, so a
    worker thread would not help); under memory pressure (the page cache full of the file being written) each new
    page can wait for the kernel to reclaim one, and a 25 MiB allocation stalled the loop for up to 370 ms. Appending
    spreads that cost over the parts as they arrive (glibc grows a large block with ``mremap``, without copying).
    """
    return bytearray()


async def _send_into_buffer(
    client: httpx.AsyncClient, request: httpx.Request, make_buffer: BufferFactory
) -> tuple[httpx.Response, bytearray | None]:
    """Send and read a successful response's body into one bytearray (an error's body is read as usual)."""
    response = await client.send(request, stream=True)
    try:
        if response.status_code >= 400:
            await response.aread()
            return response, None
        length = response.headers.get("Content-Length", "")
        identity = response.headers.get("Content-Encoding", "identity").strip().lower() in ("", "identity")
        if not (identity and length.isascii() and length.isdigit() and len(length) < 12):
            buffer = bytearray()
            async for part in response.aiter_bytes():
                buffer += part
            return response, buffer
        expected = int(length)
        buffer = make_buffer(expected)
        filled = 0
        async for part in response.aiter_bytes():  # identity: the parts as received, not copied
            end = filled + len(part)
            if end > expected:
                raise httpx.RemoteProtocolError("the response body is longer than its Content-Length")
            buffer[filled:end] = part  # overwrites a reused buffer in place, appends to a new one
            filled = end
        if filled != expected:
            raise httpx.RemoteProtocolError(f"the response body ended after {filled} of {expected} bytes")
        return response, buffer
    finally:
        await response.aclose()
        _release(response)


class Transport:
    """Authenticated requests to Anaplan with retries, backoff and error mapping; usable from any event loop.

    Loop-bound state (the ``httpx.AsyncClient`` and the ``asyncio.Semaphore`` that caps requests in flight at
    ``settings.max_in_flight``) is created per event loop, so one Transport can serve several ``asyncio.run`` calls
    in a row; ``aclose()`` closes the current loop's client.
    """

    def __init__(
        self,
        settings: ClientSettings | None = None,
        auth: AnaplanAuth | None = None,
        *,
        tokens: TokenCache | None = None,
    ) -> None:
        if auth is None:
            raise ConfigurationError(
                "Missing credentials: give BasicAuth, CertificateAuth, OAuthRefreshTokenAuth or StaticTokenAuth"
            )
        if not isinstance(auth, AnaplanAuth):
            raise ConfigurationError(f"auth must be an AnaplanAuth, got {type(auth).__name__}")
        self.settings = settings or ClientSettings()
        self.auth = auth
        self.tokens = tokens or token_cache
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
        # Per loop, created with its client: requests past max_in_flight wait here (O(1) wake-ups) rather than in
        # httpcore's pool queue, which rescans every waiting request on each send and release.
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._mutex = threading.Lock()
        self._closing: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"Transport(api={self.settings.api_url!r}, auth={self.auth!r})"

    # ----------------------------------------------------------------- per-loop httpx client
    def _client(self) -> httpx.AsyncClient:
        return self._client_and_gate()[0]

    def _client_and_gate(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        """This event loop's httpx client and the semaphore that caps its requests in flight."""
        loop = asyncio.get_running_loop()
        with self._mutex:
            # Clients of loops that ended (asyncio.run without aclose) would otherwise live as long as the transport:
            # their open connections keep the dead loop, the weak key, alive.
            dead = [(other, c) for other, c in list(self._clients.items()) if other is not loop and other.is_closed()]
            for other, _ in dead:
                self._clients.pop(other, None)
                self._gates.pop(other, None)
            client = self._clients.get(loop)
            gate = self._gates.get(loop)
            if client is None or client.is_closed:
                try:
                    options = self.settings.httpx_options()
                    if options["transport"] is None and isinstance(options["verify"], bool):
                        # One context per process, not one per client: loading the CA bundle takes 30-40 ms.
                        options["verify"] = shared_ssl_context(options["verify"])
                    client = httpx.AsyncClient(**options, follow_redirects=False, headers={"User-Agent": USER_AGENT})
                except (OSError, ValueError, TypeError, ImportError, ssl.SSLError) as exc:
                    # ClientSettings checks these up front; this is the last line for what slips through.
                    raise ConfigurationError(
                        f"The HTTP client could not be set up from the settings (proxy, verify, timeout): "
                        f"{type(exc).__name__}"
                    ) from None
                self._clients[loop] = client
                gate = None
            if gate is None:
                gate = self._gates[loop] = asyncio.Semaphore(self.settings.max_in_flight)
        for _, old in dead:
            self._discard(old, loop)
        return client, gate

    async def _prepare_ssl_context(self) -> None:
        """Build the process-wide SSLContext this loop's first client will use in a worker thread, not on the loop.

        Loading the CA bundle takes 25 ms on a quiet machine and 100 ms or more on a busy one; OpenSSL reads it with
        the GIL released, so the loop (a triggerer's, serving every other trigger) keeps running meanwhile.
        """
        options = self.settings.httpx_options()
        if options["transport"] is None and isinstance(options["verify"], bool):
            await asyncio.to_thread(shared_ssl_context, options["verify"])

    def _discard(self, client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
        """Best effort: close a client whose event loop has ended. Its own connections are closed from this loop
        where they can be; a transport given in the settings is shared with the live clients, so it is left open."""
        if client.is_closed or self.settings.transport is not None:
            return

        async def close() -> None:
            try:
                await client.aclose()
            except Exception as exc:  # connections bound to a closed loop may refuse: the GC closes their sockets
                log.debug("Could not close an HTTP client of an ended event loop: %s", type(exc).__name__)

        task = loop.create_task(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Close this event loop's HTTP client (tokens stay in the process-wide cache)."""
        loop = asyncio.get_running_loop()
        with self._mutex:
            client = self._clients.pop(loop, None)
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ----------------------------------------------------------------- URLs
    def url(self, path_or_url: str) -> str:
        """An absolute URL: as given when it has a scheme, else relative to ``{api_url}/2/0/``."""
        if path_or_url[:8].lower().startswith(("http://", "https://")):
            return path_or_url
        return f"{self.settings.api_base}/{path_or_url.lstrip('/')}"

    def _check_origin(self, url: httpx.URL, path_or_url: str, auth: bool) -> None:
        """Credentials go only to the configured hosts: the API for authenticated requests, the auth service or
        OAuth for the auth classes' own calls. InvalidInputError, before anything is sent, for any other host."""
        s = self.settings
        allowed = (s.api_url,) if auth else (s.auth_url, s.oauth_url)
        origin = _origin_of(url)
        if any(origin == _origin_of(httpx.URL(a)) for a in allowed):
            return
        where = "api_url" if auth else "auth_url or oauth_url"
        shown = f"{url.scheme}://{url.host}" + (f":{url.port}" if url.port else "")
        raise InvalidInputError(
            f"Refusing to send Anaplan credentials to {shown}: an absolute URL must be on the configured {where} "
            f"({', '.join(allowed)}); give a path relative to {s.api_base} instead"
        )

    # ----------------------------------------------------------------- requests
    async def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        retry: RetryClass | None = None,
    ) -> httpx.Response:
        """Send an authenticated request and return the successful response; raise an AnaplanError otherwise.

        ``retry`` defaults to :func:`classify` of the method and path.
        """
        response, _ = await self._send(
            method, path_or_url, params=params, json=json, content=content, headers=headers, retry=retry, auth=True
        )
        return response

    async def request_bytes(
        self,
        method: str,
        path_or_url: str,
        *,
        headers: dict[str, str] | None = None,
        retry: RetryClass | None = None,
        buffers: BufferFactory = new_buffer,
    ) -> bytearray:
        """Like :meth:`request`, but return the body alone, read straight into one buffer (a file chunk's bytes).

        The body is streamed into a ``bytearray`` sized from ``Content-Length`` (when the body is not content-encoded),
        so a large body is held once, not as many small parts and then joined into a second copy as
        ``Response.read`` does. ``buffers`` gives that bytearray (a caller reading many chunks hands back spent ones
        to reuse). A body cut short is retried as a lost response (for SAFE requests).
        """
        _, body = await self._send(
            method,
            path_or_url,
            params=None,
            json=None,
            content=None,
            headers=headers,
            retry=retry,
            auth=True,
            into=buffers,
        )
        assert body is not None
        return body

    async def call(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        json: Any = None,
        retry: RetryClass | None = None,
    ) -> httpx.Response:
        """An unauthenticated request (the auth service and OAuth), with the same retries and error mapping."""
        response, _ = await self._send(
            method, url, params=None, json=json, content=None, headers=headers, retry=retry, auth=False
        )
        return response

    async def get_json(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET a JSON object (retried as SAFE)."""
        response = await self.request("GET", path, params=params)
        return self.json_of(response)

    @staticmethod
    def json_of(response: httpx.Response) -> dict[str, Any]:
        """The JSON object in a response; ProtocolError when it is something else ({} for an empty body)."""
        method, path = response.request.method, response.request.url.path
        if not response.content.strip():
            return {}
        try:
            body = response.json()
        except ValueError:
            raise ProtocolError(
                f"{method} {path} answered HTTP {response.status_code} with a body that is not JSON",
                status=response.status_code,
                method=method,
                path=path,
            ) from None
        if not isinstance(body, dict):
            raise ProtocolError(
                f"{method} {path} answered a JSON {type(body).__name__}, not an object",
                status=response.status_code,
                method=method,
                path=path,
            )
        return body

    async def paginate(
        self,
        path: str,
        key: str,
        params: dict[str, Any] | None = None,
        limit: int = PAGE_LIMIT,
        concurrency: int = PAGE_CONCURRENCY,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item under ``key`` across pages, striding by the server's ``currentPageSize`` to ``totalSize``.

        Once the first page gives the page size and ``totalSize``, the next pages are fetched ``concurrency`` at a
        time (items are still yielded in order). Each page's own ``currentPageSize`` and ``totalSize`` steer what
        follows, as when fetching one page after another: pages fetched ahead at a stride the server no longer uses
        are dropped and fetched again from the right offset, and a ``totalSize`` that grows is followed.
        A page without ``key`` has no items (Anaplan drops the key of an empty collection).
        """

        async def fetch(offset: int) -> tuple[list[Any], int | None, int | None]:
            body = await self.get_json(path, {**(params or {}), "offset": offset, "limit": limit})
            items = body.get(key) or []
            if not isinstance(items, list):
                raise ProtocolError(f"GET {httpx.URL(self.url(path)).path}: {key!r} is not a list", method="GET")
            paging = (body.get("meta") or {}).get("paging") or {}
            page_size = paging.get("currentPageSize", len(items))
            total = paging.get("totalSize")
            if not isinstance(page_size, int) or isinstance(page_size, bool) or page_size <= 0:
                return items, None, None
            return items, page_size, total if isinstance(total, int) and not isinstance(total, bool) else None

        window: deque[tuple[int, asyncio.Task[tuple[list[Any], int | None, int | None]]]] = deque()
        window.append((0, asyncio.ensure_future(fetch(0))))
        stride: int | None = None  # the page size pages are fetched ahead at, once the first page gave it
        ahead = 0  # the next offset to fetch
        try:
            while window:
                at, task = window.popleft()
                items, page_size, total = await task
                for index, item in enumerate(items):
                    if index and not index % YIELD_EVERY:  # a caller parsing each item keeps the loop otherwise
                        await asyncio.sleep(0)
                    yield item
                if page_size is None or total is None:
                    return
                offset = at + page_size  # the next offset to yield from
                if offset >= total:
                    return
                if page_size != stride:  # the first page, or the server changed its page size: fetch from here
                    await _cancel_all(task for _, task in window)
                    window.clear()
                    stride, ahead = page_size, offset
                while len(window) < max(1, concurrency) and ahead < total:
                    window.append((ahead, asyncio.ensure_future(fetch(ahead))))
                    ahead += page_size  # the stride, from here on
        finally:
            await _cancel_all(task for _, task in window)

    # ----------------------------------------------------------------- the retry loop
    def _backoff(self, retry_number: int) -> float:
        s = self.settings
        delay = min(s.backoff_cap, s.backoff_base * 2 ** (retry_number - 1))
        return delay * (1 - s.jitter * random.random())  # noqa: S311 - jitter, not cryptography

    async def _send(
        self,
        method: str,
        path_or_url: str,
        *,
        params: dict[str, Any] | None,
        json: Any,
        content: bytes | None,
        headers: dict[str, str] | None,
        retry: RetryClass | None,
        auth: bool,
        into: BufferFactory | None = None,
    ) -> tuple[httpx.Response, bytearray | None]:
        """The retry loop; returns the successful response and, with ``into``, its body read into a bytearray (the
        response's own content is then left empty)."""
        s = self.settings
        method = method.upper()
        url = self.url(path_or_url)
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            raise InvalidInputError(f"Not a valid URL or path: {path_or_url!r}") from None
        path = parsed.path
        self._check_origin(parsed, path_or_url, auth)
        host = parsed.host + (f":{parsed.port}" if parsed.port else "")
        retry = retry or classify(method, path)
        if asyncio.get_running_loop() not in self._clients:
            await self._prepare_ssl_context()
        client, gate = self._client_and_gate()
        started = time.monotonic()
        slept = 0.0
        attempt = 0
        retries = 0
        replayed_401 = False
        stale: Token | None = None
        while True:
            attempt += 1
            token: Token | None = None
            request_headers = {"Accept": "application/json", **(headers or {})}
            if auth:
                token = await self.tokens.get(self.auth, self, stale=stale)
                stale = None
                request_headers["Authorization"] = f"AnaplanAuthToken {token.value}"
            body = json() if callable(json) else json
            failure: _Failure | None = None
            cause = ""
            response: httpx.Response | None = None
            if client.is_closed:
                raise self._closed_error(method, path, retries)
            try:
                request = client.build_request(
                    method, url, params=params, json=body, content=content, headers=request_headers
                )
            except UnicodeEncodeError:  # its repr would hold the whole header value: a token, maybe
                raise InvalidInputError(
                    f"{method} {path}: a header value is not ASCII (tokens and header values must be)",
                    method=method,
                    path=path,
                ) from None
            except httpx.InvalidURL:
                raise InvalidInputError(f"Not a valid URL or path: {path_or_url!r}") from None
            buffer: bytearray | None = None
            try:
                async with gate:  # only the send and the read: never a backoff sleep or a token request
                    if into is not None:
                        response, buffer = await _send_into_buffer(client, request, into)
                    else:
                        response = await client.send(request)
                        _release(response)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError) as exc:
                failure, cause = _Failure.CONNECT, _cause(exc)
                if _certificate_failure(exc) is not None:  # a certificate that cannot be verified will not heal
                    raise TransportError(
                        f"{method} {path} failed: the TLS certificate of {host} could not be verified ({cause}); "
                        "not retried. Give verify= the CA bundle that signed it (a path or an ssl.SSLContext), or "
                        "check that the URL names the right host",
                        method=method,
                        path=path,
                    ) from None
            except httpx.TimeoutException as exc:
                failure, cause = _Failure.TIMEOUT, _cause(exc)
            except httpx.DecodingError as exc:  # the answer arrived, but its body could not be decoded
                note = f"; {_reconcile_hint(path)}" if retry is RetryClass.ACTION else ""
                raise ProtocolError(
                    f"{method} {path}: {host} answered, but the response body could not be decoded "
                    f"({_cause(exc)}){note}",
                    method=method,
                    path=path,
                ) from None
            except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                failure, cause = _Failure.LOST, _cause(exc)
            except httpx.HTTPError as exc:  # a local problem (bad URL scheme, protocol misuse): not worth a retry
                raise TransportError(
                    f"{method} {path} could not be sent to {host}: {_cause(exc)}", method=method, path=path
                ) from None
            except httpx.InvalidURL:
                raise InvalidInputError(f"Not a valid URL or path: {path_or_url!r}") from None
            except RuntimeError:
                if client.is_closed:  # aclose() ran while this request was in flight
                    raise self._closed_error(method, path, retries) from None
                raise

            retry_after: float | None = None
            if response is not None:
                status = response.status_code
                if status < 400:
                    return response, buffer
                if status == 401 and auth and not replayed_401 and token is not None:
                    # A refused token: re-create it (single-flight) and replay once; not counted as an attempt.
                    replayed_401 = True
                    stale = token
                    attempt -= 1
                    log.info("%s %s answered 401; obtaining a new token and replaying once", method, path)
                    continue
                if status != 429 and status not in RETRYABLE_STATUSES:
                    raise error_for_response(response, method, path)
                if status != 429 and retry is RetryClass.ACTION:
                    raise error_for_response(response, method, path, _reconcile_hint(path))
                # Any retried answer may say when to come back (429, and 503 in particular).
                retry_after = parse_retry_after(response.headers.get("Retry-After"), s.clock())
                reason = f"HTTP {status}"
            else:
                assert failure is not None
                cause = f"{host}: {cause}"
                if failure is not _Failure.CONNECT and retry is RetryClass.ACTION:
                    raise self._failure_error(failure, method, path, _reconcile_hint(path), cause)
                reason = f"{failure.value} ({cause})"

            delay = retry_after if retry_after is not None else self._backoff(retries + 1)
            elapsed = max(time.monotonic() - started, slept)
            if attempt >= s.max_attempts or elapsed + delay > s.max_retry_time:
                why = (
                    f"gave up after {attempt} attempt(s)"
                    if attempt >= s.max_attempts
                    else f"gave up: waiting {delay:.1f} s more would pass max_retry_time ({s.max_retry_time:g} s)"
                )
                if response is not None:
                    raise error_for_response(response, method, path, why)
                assert failure is not None
                raise self._failure_error(failure, method, path, why, cause)
            retries += 1
            log.warning(
                "%s %s: %s; retry %d of %d in %.2f s%s",
                method,
                path,
                reason,
                retries,
                s.max_attempts - 1,
                delay,
                " (as Retry-After asks)" if retry_after is not None else "",
            )
            await s.sleep(delay)
            slept += delay

    @staticmethod
    def _failure_error(failure: _Failure, method: str, path: str, note: str, cause: str) -> AnaplanError:
        cls = AnaplanTimeoutError if failure is _Failure.TIMEOUT else TransportError
        return cls(f"{method} {path} failed: {failure.value} ({cause}); {note}", method=method, path=path)

    @staticmethod
    def _closed_error(method: str, path: str, retries: int) -> TransportError:
        when = f" after {retries} retr{'y' if retries == 1 else 'ies'}" if retries else ""
        return TransportError(
            f"{method} {path} was abandoned{when}: the client was closed (aclose) while the request was in flight",
            method=method,
            path=path,
        )


__all__ = [
    "PAGE_CONCURRENCY",
    "PAGE_LIMIT",
    "RetryClass",
    "Transport",
    "anaplan_message",
    "classify",
    "error_for_response",
    "parse_retry_after",
]
