"""Fault injection: latency, 429 with Retry-After, 5xx answers, connection resets and dropped responses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ._asgi import Request, Response, Send


class FaultInjector:
    """Decides, per request, whether to delay, fail, reset or drop it (placeholder: passes everything through)."""

    async def intercept(
        self, request: Request, send: Send, call_next: Callable[[Request], Awaitable[Response]]
    ) -> None:
        response = await call_next(request)
        await response.send_to(send)
