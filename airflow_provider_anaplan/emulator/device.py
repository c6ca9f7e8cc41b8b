"""The OAuth device authorization grant (RFC 8628) of the emulator, with approval through the admin endpoint.

``POST /oauth/device/code`` starts a request and answers a device code (the client's secret for polling) and a user
code (what a person enters at the verification URI). The client then polls ``POST /oauth/token`` with
``grant_type=urn:ietf:params:oauth:grant-type:device_code`` and gets ``authorization_pending`` until someone approves,
``slow_down`` when it polls faster than the interval (which then grows by 5 s, as RFC 8628 §3.5 asks),
``access_denied`` after a denial and ``expired_token`` once the code has expired. An approved request is exchanged
once for an access token and, with the ``offline_access`` scope, a refresh token that rotates (or not) as its client
is configured.

There is no login page: ``GET /__emulator/oauth/device`` (the verification URI) shows the pending requests, and
``POST /__emulator/oauth/device/approve`` or ``.../deny`` decides one by its user code. Only OAuth clients without a
client secret take the device grant (Anaplan registers device-grant and authorization-code clients separately).
"""

from __future__ import annotations

import secrets
from typing import Any

from ._asgi import HTTPError, Request, Response, Router, json_response
from .admin import _bad_request, _json_object
from .auth import _oauth_error, _oauth_form, token_answer
from .faults import ADMIN_PREFIX
from .state import DEFAULT_USER_EMAIL, DeviceAuthorization, EmulatorState, OAuthClient

DEVICE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_SCOPE = "openid profile email offline_access"
SLOW_DOWN_STEP = 5  # seconds added to the interval after each slow_down (RFC 8628 §3.5)
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # no vowels, no look-alikes (RFC 8628 §6.1)
VERIFICATION_PATH = f"{ADMIN_PREFIX}/oauth/device"
_FORGET_AFTER = 3600.0  # seconds after expiry that a request is still remembered (answered expired_token)


def _origin(request: Request) -> str:
    scheme = request.scope.get("scheme", "http")
    host = request.headers.get("host")
    if not host:
        server = request.scope.get("server") or ("localhost", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scheme}://{host}"


def _normal_user_code(text: str) -> str:
    """A user code as typed by a person: case and dashes or spaces do not matter."""
    return "".join(c for c in text.upper() if c.isalnum())


def _new_user_code(state: EmulatorState) -> str:
    taken = {_normal_user_code(a.user_code) for a in state.device_authorizations.values()}
    while True:
        raw = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
        if raw not in taken:
            return f"{raw[:4]}-{raw[4:]}"


def _forget_old(state: EmulatorState) -> None:
    now = state.clock()
    for code, request in list(state.device_authorizations.items()):
        if request.expires_at + _FORGET_AFTER < now:
            del state.device_authorizations[code]


def _device_client(state: EmulatorState, form: dict[str, Any]) -> OAuthClient:
    """The device-grant client named by ``client_id``: 400/401 OAuth errors otherwise."""
    client_id = form.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise _oauth_error(400, "invalid_request", "Missing client_id")
    client = state.oauth_clients.get(client_id)
    if client is None:
        raise _oauth_error(401, "invalid_client", "Unknown client_id")
    if client.client_secret is not None:
        raise _oauth_error(
            400,
            "unauthorized_client",
            "This client is registered for the authorization code grant; the device grant needs a device grant client",
        )
    return client


def _by_user_code(state: EmulatorState, user_code: Any) -> DeviceAuthorization:
    if not isinstance(user_code, str) or not user_code.strip():
        raise _bad_request('Body must name the request: {"user_code": "XXXX-XXXX"}')
    wanted = _normal_user_code(user_code)
    for request in state.device_authorizations.values():
        if _normal_user_code(request.user_code) == wanted:
            return request
    raise HTTPError(404, "", json_response({"error": f"No device request with user code {user_code!r}"}, 404))


def _describe(state: EmulatorState, request: DeviceAuthorization) -> dict[str, Any]:
    """A request as the admin endpoint shows it (never its device code)."""
    now = state.clock()
    status = "expired" if request.status == "pending" and now >= request.expires_at else request.status
    user = state.user_by_id(request.user_id) if request.user_id else None
    out: dict[str, Any] = {
        "user_code": request.user_code,
        "client_id": request.client_id,
        "scope": request.scope,
        "status": status,
        "expires_in": max(int(request.expires_at - now), 0),
        "interval": request.interval,
    }
    if user is not None:
        out["email"] = user.email
    return out


def token_grant(state: EmulatorState, form: dict[str, Any]) -> Response:
    """``POST /oauth/token`` with the device-code grant type."""
    state.count("oauth.device_poll")
    client = _device_client(state, form)
    device_code = form.get("device_code")
    if not isinstance(device_code, str) or not device_code:
        raise _oauth_error(400, "invalid_request", "Missing device_code")
    request = state.device_authorizations.get(device_code)
    if request is None or request.client_id != client.client_id:
        raise _oauth_error(400, "invalid_grant", "Unknown device_code, or another client's")
    now = state.clock()
    if request.status == "used":
        raise _oauth_error(400, "invalid_grant", "This device_code was already exchanged for tokens")
    if request.status == "denied":
        raise _oauth_error(400, "access_denied", "The user denied the authorization request")
    if now >= request.expires_at:
        raise _oauth_error(400, "expired_token", "The device_code has expired: start a new authorization request")
    if request.status == "pending":
        too_fast = request.last_poll is not None and now - request.last_poll < request.interval
        request.last_poll = now
        if too_fast:
            request.interval += SLOW_DOWN_STEP
            raise _oauth_error(
                400, "slow_down", f"Polling too fast: wait at least {request.interval} seconds between requests"
            )
        raise _oauth_error(400, "authorization_pending", "The user has not yet approved the request")
    user = state.user_by_id(request.user_id or "")
    if user is None:
        raise _oauth_error(400, "invalid_grant", "The approving user no longer exists")
    request.status = "used"
    grant = state.issue_refresh_token(client, user.id) if "offline_access" in request.scope.split() else None
    return token_answer(state, user, client, grant)


def register(router: Router, state: EmulatorState) -> None:
    """Add ``POST /oauth/device/code`` and the admin routes that show, approve and deny device requests."""

    @router.route("POST", "/oauth/device/code")
    async def device_code(request: Request) -> Response:
        state.count("oauth.device_code")
        form = await _oauth_form(request)
        client = _device_client(state, form)
        scope = form.get("scope", DEFAULT_SCOPE)
        if not isinstance(scope, str) or not scope.split():
            raise _oauth_error(400, "invalid_request", "scope must be a space-separated list of scopes")
        _forget_old(state)
        user_code = _new_user_code(state)
        authorization = DeviceAuthorization(
            device_code=secrets.token_urlsafe(32),
            user_code=user_code,
            client_id=client.client_id,
            scope=" ".join(scope.split()),
            expires_at=state.clock() + state.device_code_ttl,
            interval=state.device_interval,
        )
        state.device_authorizations[authorization.device_code] = authorization
        verification = f"{_origin(request)}{VERIFICATION_PATH}"
        body = {
            "device_code": authorization.device_code,
            "user_code": user_code,
            "verification_uri": verification,
            "verification_uri_complete": f"{verification}?user_code={user_code}",
            "expires_in": int(state.device_code_ttl),
            "interval": authorization.interval,
        }
        return json_response(body)

    @router.route("GET", VERIFICATION_PATH)
    async def show(request: Request) -> Response:
        wanted = request.arg("user_code")
        if wanted:
            return json_response(_describe(state, _by_user_code(state, wanted)))
        requests = [_describe(state, r) for r in state.device_authorizations.values()]
        return json_response(
            {
                "requests": requests,
                "approve": f"POST {VERIFICATION_PATH}/approve "
                + '{"user_code": "XXXX-XXXX", "email": "demo@anaplan.example"}',
                "deny": f'POST {VERIFICATION_PATH}/deny {{"user_code": "XXXX-XXXX"}}',
            }
        )

    def _decide(body: dict[str, Any], allowed: set[str]) -> DeviceAuthorization:
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise _bad_request(f"Unknown field {unknown[0]!r}; known: {', '.join(sorted(allowed))}")
        found = _by_user_code(state, body.get("user_code"))
        if found.status != "pending":
            raise HTTPError(409, "", json_response({"error": f"The request is already {found.status}"}, 409))
        if state.clock() >= found.expires_at:
            raise HTTPError(409, "", json_response({"error": "The request has expired"}, 409))
        return found

    @router.route("POST", f"{VERIFICATION_PATH}/approve")
    async def approve(request: Request) -> Response:
        body = await _json_object(request)
        found = _decide(body, {"user_code", "email"})
        email = body.get("email")
        if email is None:
            email = DEFAULT_USER_EMAIL if DEFAULT_USER_EMAIL in state.users else next(iter(state.users), "")
        user = state.users.get(email.lower()) if isinstance(email, str) else None
        if user is None:
            raise _bad_request(f"No user with email {email!r} in the emulated tenant")
        found.status, found.user_id = "approved", user.id
        return json_response(_describe(state, found))

    @router.route("POST", f"{VERIFICATION_PATH}/deny")
    async def deny(request: Request) -> Response:
        found = _decide(await _json_object(request), {"user_code"})
        found.status = "denied"
        return json_response(_describe(state, found))

    @router.route("GET", f"{VERIFICATION_PATH}/settings")
    async def get_settings(request: Request) -> Response:
        return json_response({"interval": state.device_interval, "expires_in": state.device_code_ttl})

    @router.route("PUT", f"{VERIFICATION_PATH}/settings")
    @router.route("POST", f"{VERIFICATION_PATH}/settings")
    async def put_settings(request: Request) -> Response:
        body = await _json_object(request)
        unknown = sorted(set(body) - {"interval", "expires_in"})
        interval, expires_in = (
            body.get("interval", state.device_interval),
            body.get("expires_in", state.device_code_ttl),
        )
        if (
            unknown
            or isinstance(interval, bool)
            or not isinstance(interval, int)
            or interval < 0
            or isinstance(expires_in, bool)
            or not isinstance(expires_in, int | float)
            or not 0 < expires_in < float("inf")
        ):
            raise _bad_request(
                f'Body must be {{"interval": SECONDS, "expires_in": SECONDS}} with a whole interval >= 0 and '
                f"expires_in > 0 (either may be left out), got {body!r}"
            )
        state.device_interval, state.device_code_ttl = interval, float(expires_in)
        return json_response({"interval": state.device_interval, "expires_in": state.device_code_ttl})
