"""The emulator's admin endpoint (outside /2/0): fault settings, token TTL and counters at run time.

A local tool's control panel: no auth, JSON in and out, 400 with ``{"error": "..."}`` on bad input. Faults never apply
to these routes. See docs/emulator.md for the full reference.
"""

from __future__ import annotations

from typing import Any

from ._asgi import HTTPError, Request, Response, Router, json_response
from .faults import ADMIN_PREFIX, SETTING_NAMES, FaultInjector, FaultRule, make_rule, validate_settings
from .state import EmulatorState

_RULE_FIELDS = ("fault", "method", "path", "count", "status", "retry_after", "seconds")


def _bad_request(message: str) -> HTTPError:
    return HTTPError(400, message, json_response({"error": message}, 400))


async def _json_object(request: Request) -> dict[str, Any]:
    body = await request.json(error=_bad_request)
    if not isinstance(body, dict):
        raise _bad_request("Body must be a JSON object")
    return body


def _parse_rules(raw: Any) -> list[FaultRule]:
    """Validate one rule object or a list of them (a bad rule fails the whole request)."""
    entries = raw if isinstance(raw, list) else [raw]
    rules: list[FaultRule] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise _bad_request(f"A rule must be a JSON object, got {entry!r}")
        unknown = sorted(set(entry) - set(_RULE_FIELDS))
        if unknown:
            raise _bad_request(f"Unknown rule field {unknown[0]!r}; known: {', '.join(_RULE_FIELDS)}")
        if "fault" not in entry:
            raise _bad_request("A rule needs 'fault'")
        try:
            rules.append(make_rule(**entry))
        except ValueError as exc:
            raise _bad_request(str(exc)) from None
    return rules


def register(router: Router, state: EmulatorState, faults: FaultInjector) -> None:
    """Add the admin routes, and let the fault injector count its faults in ``state.counters``."""
    faults.attach(state)
    base = ADMIN_PREFIX

    @router.route("GET", f"{base}/health")
    async def health(request: Request) -> Response:
        return json_response({"status": "ok"})

    @router.route("GET", f"{base}/faults")
    async def get_faults(request: Request) -> Response:
        return json_response(faults.describe())

    @router.route("PUT", f"{base}/faults")
    @router.route("POST", f"{base}/faults")
    async def put_faults(request: Request) -> Response:
        body = await _json_object(request)
        known = {*SETTING_NAMES, "seed", "rules"}
        unknown = sorted(set(body) - known)
        if unknown:
            raise _bad_request(f"Unknown fault setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
        # Validate everything before changing anything.
        try:
            settings = validate_settings({k: v for k, v in body.items() if k in SETTING_NAMES})
        except ValueError as exc:
            raise _bad_request(str(exc)) from None
        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise _bad_request(f"seed must be a whole number or null, got {seed!r}")
        rules = _parse_rules(body["rules"]) if "rules" in body else []
        faults.configure(**settings)
        if "seed" in body:
            faults.reseed(seed)
        faults.add_rules(rules)
        return json_response(faults.describe())

    @router.route("POST", f"{base}/faults/rules")
    async def add_rules(request: Request) -> Response:
        raw = await request.json(error=_bad_request)
        if not isinstance(raw, dict | list):
            raise _bad_request("Body must be a rule object or a list of rules")
        faults.add_rules(_parse_rules(raw))
        return json_response(faults.describe(), 201)

    @router.route("DELETE", f"{base}/faults/rules")
    async def clear_rules(request: Request) -> Response:
        faults.clear_rules()
        return json_response(faults.describe())

    @router.route("POST", f"{base}/faults/reset")
    async def reset_faults(request: Request) -> Response:
        faults.reset()
        return json_response(faults.describe())

    @router.route("GET", f"{base}/token-ttl")
    async def get_token_ttl(request: Request) -> Response:
        return json_response({"token_ttl": state.token_ttl})

    @router.route("PUT", f"{base}/token-ttl")
    @router.route("POST", f"{base}/token-ttl")
    async def put_token_ttl(request: Request) -> Response:
        body = await _json_object(request)
        value = body.get("token_ttl")
        unknown = sorted(set(body) - {"token_ttl"})
        if unknown or isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
            raise _bad_request(f'Body must be {{"token_ttl": SECONDS}} with SECONDS > 0, got {body!r}')
        state.token_ttl = float(value)
        return json_response({"token_ttl": state.token_ttl})

    @router.route("GET", f"{base}/counters")
    async def get_counters(request: Request) -> Response:
        return json_response({"counters": dict(sorted(state.counters.items()))})

    @router.route("POST", f"{base}/counters/reset")
    async def reset_counters(request: Request) -> Response:
        state.counters.clear()
        return json_response({"counters": {}})
