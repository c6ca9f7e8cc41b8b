"""A very small ASGI toolkit for the emulator: requests, responses, a router and HTTP errors.

The emulator needs full control over the wire (exact status codes, bodies Anaplan sends, dropped connections), so it is
written against raw ASGI rather than a web framework. Nothing here knows about Anaplan.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Request:
    """One HTTP request as the emulator's handlers see it."""

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self._receive = receive
        self._body: bytes | None = None
        self.method: str = scope["method"].upper()
        self.path: str = unquote(scope["path"])
        raw_query = scope.get("query_string", b"").decode("latin-1")
        self.query: dict[str, list[str]] = parse_qs(raw_query, keep_blank_values=True)
        self.headers: dict[str, str] = {}
        for name, value in scope.get("headers", []):
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text
        self.path_params: dict[str, str] = {}

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of query parameter ``name``, or ``default`` when it is absent."""
        values = self.query.get(name)
        return values[0] if values else default

    async def body(self) -> bytes:
        """The whole request body (read once, then cached)."""
        if self._body is None:
            parts: list[bytes] = []
            while True:
                message = await self._receive()
                if message["type"] == "http.disconnect":
                    break
                parts.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            self._body = b"".join(parts)
        return self._body

    async def json(self, *, error: Callable[[str], Exception] | None = None) -> Any:
        """The body parsed as JSON; raises ``error(reason)`` (default: a 400 HTTPError) when it is not JSON."""
        raw = await self.body()
        try:
            return json.loads(raw.decode("utf-8")) if raw.strip() else None
        except (UnicodeDecodeError, ValueError) as exc:
            if error is not None:
                raise error(f"Malformed JSON body: {exc}") from None
            raise HTTPError(400, f"Malformed JSON body: {exc}") from None


@dataclass
class Response:
    """A complete HTTP response."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)

    def header_list(self) -> list[tuple[bytes, bytes]]:
        out = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers]
        if self.content_type is not None:
            out.append((b"content-type", self.content_type.encode("latin-1")))
        out.append((b"content-length", str(len(self.body)).encode("latin-1")))
        return out

    async def send_to(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.header_list()})
        await send({"type": "http.response.body", "body": self.body})


def json_response(data: Any, status: int = 200, headers: Iterable[tuple[str, str]] = ()) -> Response:
    """A JSON response with Anaplan's content type."""
    body = json.dumps(data, separators=(",", ":")).encode("utf-8")
    return Response(status=status, body=body, content_type="application/json", headers=list(headers))


def empty_response(status: int = 204, headers: Iterable[tuple[str, str]] = ()) -> Response:
    """A response with no body (204 No Content and friends)."""
    return Response(status=status, headers=list(headers))


class HTTPError(Exception):
    """Raised by handlers to answer with an error; ``response`` overrides the default body when given."""

    def __init__(self, status: int, message: str = "", response: Response | None = None) -> None:
        super().__init__(message or str(status))
        self.status = status
        self.message = message
        self.response = response


Handler = Callable[[Request], Awaitable[Response]]

_PARAM = re.compile(r"\{(\w+)\}")


@dataclass
class Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Handler


class Router:
    """Maps (method, path template) to handlers; templates use ``{name}`` for one path segment."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, template: str, handler: Handler) -> None:
        pieces = _PARAM.split(template)  # literal, name, literal, name, ..., literal
        regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(pieces))
        self.routes.append(Route(method.upper(), template, re.compile(f"^{regex}/?$"), handler))

    def route(self, method: str, *templates: str) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add`; one handler may serve several templates."""

        def decorate(handler: Handler) -> Handler:
            for template in templates:
                self.add(method, template, handler)
            return handler

        return decorate

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """Find the route for a request: (route, path params, whether the path exists under another method)."""
        path_exists = False
        for route in self.routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            if route.method == method:
                return route, found.groupdict(), True
            path_exists = True
        return None, {}, path_exists
