"""Fault injection: latency, 429 with Retry-After, 5xx answers, connection resets and dropped responses.

Every request outside the admin routes (``/__emulator/...``) passes through :meth:`FaultInjector.intercept`, which, in
this order: waits the configured latency, then either resets the connection (the handler never runs), answers 429 or a
5xx (the handler never runs), or runs the handler and then either sends its response or drops it (the handler's effect
persists, the client never hears). One-shot rules aim a fault at the next N requests matching a method and a path regex;
otherwise the rates decide, drawing from one ``random.Random(seed)``: the same seed and the same sequence of requests
give the same faults.

How a reset or a drop reaches the client depends on the server:

- under uvicorn (the command line, the ``live_server`` test fixture) the connection is aborted with ``SO_LINGER 0``, so
  the client's socket sees a TCP reset: httpx raises ``httpx.ReadError`` (a ``TransportError``), or ``WriteError`` when
  it was still sending the body;
- under ``httpx.ASGITransport``, which has no connection to abort, :class:`EmulatedConnectionReset` or
  :class:`EmulatedResponseDropped` is raised out of the application; both subclass ``httpx.ReadError``, and the ASGI
  transport re-raises application exceptions unchanged (with its default ``raise_app_exceptions=True``), so the client
  sees the same ``httpx.ReadError`` it would see over a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import socket
import struct
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from http import HTTPStatus
from typing import Any

import httpx

from ._asgi import Request, Response, Send
from .state import EmulatorState

ADMIN_PREFIX = "/__emulator"
DEFAULT_5XX_STATUSES = (500, 502, 503, 504)
DEFAULT_RETRY_AFTER = 1  # seconds

RESET = "reset"
DROP = "drop"
RATE_LIMIT = "rate_limit"
SERVER_ERROR = "server_error"
DELAY = "delay"
FAULT_KINDS = (RESET, DROP, RATE_LIMIT, SERVER_ERROR, DELAY)
_KIND_ALIASES = {"429": RATE_LIMIT, "5xx": SERVER_ERROR, "latency": DELAY}

Sleep = Callable[[float], Awaitable[None]]
CallNext = Callable[[Request], Awaitable[Response]]


class EmulatedConnectionFault(httpx.ReadError):
    """Raised out of the app when a connection fault has no real connection to abort (``httpx.ASGITransport``)."""


class EmulatedConnectionReset(EmulatedConnectionFault):
    """The connection was reset before the request was handled: the handler did not run."""


class EmulatedResponseDropped(EmulatedConnectionFault):
    """The request was handled (its effect persists) but the response was dropped."""


@dataclass(frozen=True)
class FaultSettings:
    """The rate and latency knobs; rates are probabilities per request, times are seconds."""

    latency: float = 0.0
    jitter: float = 0.0  # latency is drawn uniformly from [latency - jitter, latency + jitter], never below 0
    rate_429: float = 0.0
    retry_after: int = DEFAULT_RETRY_AFTER
    rate_5xx: float = 0.0
    statuses_5xx: tuple[int, ...] = DEFAULT_5XX_STATUSES
    rate_reset: float = 0.0
    rate_drop: float = 0.0

    def wire(self) -> dict[str, Any]:
        out = asdict(self)
        out["statuses_5xx"] = list(self.statuses_5xx)
        return out


SETTING_NAMES = tuple(FaultSettings.__dataclass_fields__)


@dataclass
class FaultRule:
    """A one-shot rule: the next ``remaining`` requests matching ``method`` and ``path`` get ``fault``."""

    fault: str
    method: str | None = None  # None: any method
    path: str | None = None  # a regex searched in the request path; None: any path
    remaining: int = 1
    status: int | None = None  # server_error: the status (default: drawn from statuses_5xx)
    retry_after: int | None = None  # rate_limit: the Retry-After seconds (default: the retry_after knob)
    seconds: float | None = None  # delay: extra seconds before handling
    _pattern: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def matches(self, request: Request) -> bool:
        if self.method is not None and self.method != request.method:
            return False
        return self._pattern is None or self._pattern.search(request.path) is not None

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fault": self.fault, "method": self.method, "path": self.path, "count": self.remaining}
        for name in ("status", "retry_after", "seconds"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


# --------------------------------------------------------------------------------------------------- validation
def _rate(name: str, value: Any) -> float:
    number = _number(name, value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
    return number


def _number(name: str, value: Any, *, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not value >= minimum:  # also refuses NaN
        raise ValueError(f"{name} must be >= {minimum:g}, got {value!r}")
    if value == float("inf"):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _whole(name: str, value: Any, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return value


def _server_error_status(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 500 <= value <= 599:
        raise ValueError(f"{name} must be an HTTP status from 500 to 599, got {value!r}")
    return value


def _statuses(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"statuses_5xx must be a non-empty list of 5xx statuses, got {value!r}")
    return tuple(_server_error_status("statuses_5xx", status) for status in value)


_VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "latency": lambda v: _number("latency", v),
    "jitter": lambda v: _number("jitter", v),
    "rate_429": lambda v: _rate("rate_429", v),
    "retry_after": lambda v: _whole("retry_after", v),
    "rate_5xx": lambda v: _rate("rate_5xx", v),
    "statuses_5xx": _statuses,
    "rate_reset": lambda v: _rate("rate_reset", v),
    "rate_drop": lambda v: _rate("rate_drop", v),
}


def validate_settings(changes: dict[str, Any]) -> dict[str, Any]:
    """Check knob changes (names as in :class:`FaultSettings`); raises ValueError naming the first bad one."""
    unknown = sorted(set(changes) - set(SETTING_NAMES))
    if unknown:
        raise ValueError(f"unknown fault setting {unknown[0]!r}; known: {', '.join(SETTING_NAMES)}")
    return {name: _VALIDATORS[name](value) for name, value in changes.items()}


def make_rule(
    fault: str,
    *,
    method: str | None = None,
    path: str | None = None,
    count: int = 1,
    status: int | None = None,
    retry_after: int | None = None,
    seconds: float | None = None,
) -> FaultRule:
    """Build a validated one-shot rule; raises ValueError with a clear message on bad input."""
    kind = _KIND_ALIASES.get(str(fault).lower(), str(fault).lower()) if isinstance(fault, str) else None
    if kind not in FAULT_KINDS:
        raise ValueError(f"fault must be one of {', '.join(FAULT_KINDS)} (or 429, 5xx), got {fault!r}")
    if method is not None:
        if not isinstance(method, str) or not (method.strip().isalpha() or method.strip() == "*"):
            raise ValueError(f"method must be an HTTP method such as 'POST' (or '*'), got {method!r}")
        method = None if method.strip() == "*" else method.strip().upper()
    pattern = None
    if path is not None:
        if not isinstance(path, str):
            raise ValueError(f"path must be a regular expression string, got {path!r}")
        try:
            pattern = re.compile(path)
        except re.error as exc:
            raise ValueError(f"path is not a valid regular expression ({exc}): {path!r}") from None
    count = _whole("count", count, minimum=1)
    if status is not None:
        if kind != SERVER_ERROR:
            raise ValueError("status only applies to fault 'server_error'")
        status = _server_error_status("status", status)
    if retry_after is not None:
        if kind != RATE_LIMIT:
            raise ValueError("retry_after only applies to fault 'rate_limit'")
        retry_after = _whole("retry_after", retry_after)
    if kind == DELAY:
        if seconds is None:
            raise ValueError("fault 'delay' needs 'seconds'")
        seconds = _number("seconds", seconds)
    elif seconds is not None:
        raise ValueError("seconds only applies to fault 'delay'")
    return FaultRule(kind, method, path, count, status, retry_after, seconds, pattern)


# --------------------------------------------------------------------------------------------------- the injector
@dataclass
class _Decision:
    delay: float = 0.0
    fault: str | None = None
    status: int = 500
    retry_after: int = DEFAULT_RETRY_AFTER


class FaultInjector:
    """Decides, per request, whether to delay, fail, reset or drop it; every knob can change at run time."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        jitter: float = 0.0,
        rate_429: float = 0.0,
        retry_after: int = DEFAULT_RETRY_AFTER,
        rate_5xx: float = 0.0,
        statuses_5xx: Iterable[int] = DEFAULT_5XX_STATUSES,
        rate_reset: float = 0.0,
        rate_drop: float = 0.0,
        seed: int | None = None,
        state: EmulatorState | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._lock = threading.Lock()  # tests change knobs from their own thread while uvicorn serves in another
        self.settings = FaultSettings()
        self.configure(
            latency=latency,
            jitter=jitter,
            rate_429=rate_429,
            retry_after=retry_after,
            rate_5xx=rate_5xx,
            statuses_5xx=list(statuses_5xx),
            rate_reset=rate_reset,
            rate_drop=rate_drop,
        )
        self.seed = seed
        self._random = random.Random(seed)  # noqa: S311 - repeatable faults, not cryptography
        self.rules: list[FaultRule] = []
        self.state = state
        self._sleep = sleep

    # ----------------------------------------------------------------- configuration
    def attach(self, state: EmulatorState) -> None:
        """Count injected faults (``faults.*``) and requests in ``state.counters``."""
        self.state = state

    def configure(self, **changes: Any) -> FaultSettings:
        """Change some knobs (all or none: a bad value raises ValueError and changes nothing)."""
        checked = validate_settings(changes)
        with self._lock:
            self.settings = replace(self.settings, **checked)
            return self.settings

    def reseed(self, seed: int | None) -> None:
        """Restart the random sequence from ``seed``."""
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be a whole number or null, got {seed!r}")
        with self._lock:
            self.seed = seed
            self._random = random.Random(seed)  # noqa: S311 - repeatable faults, not cryptography

    def add_rule(self, fault: str, **options: Any) -> FaultRule:
        """Aim ``fault`` at the next ``count`` requests matching ``method`` and the ``path`` regex (see make_rule)."""
        rule = make_rule(fault, **options)
        self.add_rules([rule])
        return rule

    def add_rules(self, rules: Iterable[FaultRule]) -> None:
        """Append rules built by :func:`make_rule`; the first matching rule wins."""
        with self._lock:
            self.rules.extend(rules)

    def clear_rules(self) -> None:
        with self._lock:
            self.rules.clear()

    def reset(self) -> None:
        """No faults at all: every knob back to its default, rules cleared, the random sequence restarted."""
        with self._lock:
            self.settings = FaultSettings()
            self.rules.clear()
            self._random = random.Random(self.seed)  # noqa: S311 - repeatable faults, not cryptography

    def describe(self) -> dict[str, Any]:
        """The knobs, the seed and the pending rules, as the admin endpoint shows them."""
        with self._lock:
            return {**self.settings.wire(), "seed": self.seed, "rules": [rule.wire() for rule in self.rules]}

    # ----------------------------------------------------------------- per request
    def _count(self, name: str) -> None:
        if self.state is not None:
            self.state.count(name)

    def _decide(self, request: Request) -> _Decision:
        with self._lock:
            settings = self.settings
            # Always draw the same number of values, so that changing one rate does not shift the others' sequence.
            u_jitter, u_reset, u_429, u_5xx, u_status, u_drop = (self._random.random() for _ in range(6))
            rule = next((r for r in self.rules if r.matches(request)), None)
            if rule is not None:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self.rules.remove(rule)
        decision = _Decision(retry_after=settings.retry_after)
        decision.delay = max(0.0, settings.latency + settings.jitter * (2 * u_jitter - 1))
        decision.status = settings.statuses_5xx[int(u_status * len(settings.statuses_5xx))]
        if rule is not None and rule.fault == DELAY:
            decision.delay += rule.seconds or 0.0  # then the rates decide as for any other request
        elif rule is not None:
            decision.fault = rule.fault
            if rule.status is not None:
                decision.status = rule.status
            if rule.retry_after is not None:
                decision.retry_after = rule.retry_after
            return decision
        if u_reset < settings.rate_reset:
            decision.fault = RESET
        elif u_429 < settings.rate_429:
            decision.fault = RATE_LIMIT
        elif u_5xx < settings.rate_5xx:
            decision.fault = SERVER_ERROR
        elif u_drop < settings.rate_drop:
            decision.fault = DROP
        return decision

    async def intercept(self, request: Request, send: Send, call_next: CallNext) -> None:
        """Handle ``request`` through ``call_next`` and send the answer, unless a fault decides otherwise."""
        if is_admin_path(request.path):
            response = await call_next(request)
            await response.send_to(send)
            return
        self._count("requests")
        decision = self._decide(request)
        if decision.delay > 0:
            self._count("faults.latency")
            await self._sleep(decision.delay)
        if decision.fault == RESET:
            self._count("faults.reset")
            await _abort_connection(send, EmulatedConnectionReset("Connection reset by the emulator (fault)"))
            return
        if decision.fault == RATE_LIMIT:
            self._count("faults.rate_limit")
            message = f"Too many requests: retry after {decision.retry_after} seconds"
            response = _fault_response(request, 429, message, RATE_LIMIT)
            response.headers.append(("Retry-After", str(decision.retry_after)))
            await response.send_to(send)
            return
        if decision.fault == SERVER_ERROR:
            self._count("faults.server_error")
            self._count(f"faults.server_error.{decision.status}")
            await _fault_response(request, decision.status, "", SERVER_ERROR).send_to(send)
            return
        self._count("requests.handled")
        response = await call_next(request)
        if decision.fault == DROP:
            self._count("faults.drop")
            await _abort_connection(send, EmulatedResponseDropped("Response dropped by the emulator (fault)"))
            return
        await response.send_to(send)


def is_admin_path(path: str) -> bool:
    """True for the emulator's own admin routes, which faults never touch."""
    return path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")


def _fault_response(request: Request, status: int, message: str, kind: str) -> Response:
    from .app import error_response  # app imports this module: import at call time

    if not message:
        try:
            message = HTTPStatus(status).phrase
        except ValueError:
            message = "Server Error"
    response = error_response(request, status, message)
    response.headers.append(("X-Emulator-Fault", kind))
    return response


def _server_transport(send: Send) -> Any:
    """The connection's asyncio transport when ``send`` is uvicorn's (a bound method of its request cycle)."""
    owner = getattr(send, "__self__", None)
    transport = getattr(owner, "transport", None)
    return transport if callable(getattr(transport, "abort", None)) else None


async def _abort_connection(send: Send, error: EmulatedConnectionFault) -> None:
    """Reset the client's connection, or raise ``error`` when there is no connection to reset (ASGITransport)."""
    transport = _server_transport(send)
    if transport is None:
        raise error
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, AttributeError):  # linger 0: close with RST, not FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    # The server learns of the lost connection on a later loop turn; returning before then would make uvicorn log
    # "returned without starting response" and try to answer 500 on the dead connection.
    cycle = send.__self__  # type: ignore[attr-defined]
    for _ in range(100):
        if getattr(cycle, "disconnected", True):
            break
        await asyncio.sleep(0)
