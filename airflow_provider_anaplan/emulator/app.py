"""The emulator's ASGI application: routing, error bodies per service, and the fault-injection hook."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from . import admin, alm, auth, bulk, device, integration
from ._asgi import HTTPError, Receive, Request, Response, Router, Scope, Send, json_response
from .faults import FaultInjector
from .state import EmulatorState, default_seed

log = logging.getLogger(__name__)

API_PREFIX = "/2/0"


def error_response(request: Request, status: int, message: str) -> Response:
    """The error body each Anaplan service sends for ``status`` (Integration/ALM, auth service, or OAuth)."""
    if request.path.startswith("/token/"):
        kind = "FAILURE_BAD_HEADER" if status == 400 else "FAILURE_BAD_CREDENTIAL"
        return json_response({"status": kind, "statusMessage": message}, status)
    if request.path.startswith("/oauth/"):
        return json_response({"error": "invalid_request", "error_description": message}, status)
    body: dict[str, Any] = {
        "status": {"code": status, "message": message or _REASONS.get(status, "Error")},
        "path": request.path,
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    return json_response(body, status)


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class EmulatorApp:
    """An ASGI application serving the auth service, OAuth, the Integration API and the admin endpoint."""

    def __init__(self, state: EmulatorState, faults: FaultInjector | None = None) -> None:
        self.state = state
        self.faults = faults or FaultInjector()
        self.faults.attach(state)  # the injector counts its faults in state.counters
        self.router = Router()
        auth.register(self.router, state)
        integration.register(self.router, state)
        alm.register(self.router, state)
        bulk.register(self.router, state)
        admin.register(self.router, state, self.faults)
        device.register(self.router, state)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        await self.faults.intercept(request, send, self.dispatch)

    async def dispatch(self, request: Request) -> Response:
        """Route one request to its handler and turn errors into Anaplan's error bodies."""
        route, params, path_exists = self.router.match(request.method, request.path)
        if route is None:
            status = 405 if path_exists else 404
            return error_response(request, status, _REASONS[status])
        request.path_params = params
        try:
            return await route.handler(request)
        except HTTPError as exc:
            return exc.response or error_response(request, exc.status, exc.message or _REASONS.get(exc.status, ""))
        except Exception:  # a bug in the emulator: answer like a server error, and say so in the log
            log.exception("emulator handler failed for %s %s", request.method, request.path)
            return error_response(request, 500, "Internal Server Error")


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app(
    seed: dict[str, Any] | None = None,
    *,
    state: EmulatorState | None = None,
    faults: FaultInjector | None = None,
    **state_options: Any,
) -> EmulatorApp:
    """Build an emulator from a seed document (the bundled one by default) or from a ready state."""
    if state is None:
        state = EmulatorState.from_seed(default_seed() if seed is None else seed, **state_options)
    return EmulatorApp(state, faults)
