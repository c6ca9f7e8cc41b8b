"""The transport against the emulator: settings, URLs, error mapping, paging, Retry-After, and the retry rule for SAFE
and ACTION requests through injected 429s, 5xx answers, connection failures, resets, dropped responses and timeouts."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import importlib.util
import ipaddress
import logging
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import certifi
import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from airflow_provider_anaplan.client import settings as settings_module
from airflow_provider_anaplan.client._transport import (
    YIELD_EVERY,
    RetryClass,
    Transport,
    anaplan_message,
    classify,
    parse_retry_after,
)
from airflow_provider_anaplan.client.auth import BasicAuth, OAuthRefreshTokenAuth, StaticTokenAuth, token_cache
from airflow_provider_anaplan.client.errors import (
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
from airflow_provider_anaplan.client.settings import ClientSettings
from airflow_provider_anaplan.emulator import DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD, EmulatorApp
from airflow_provider_anaplan.emulator._asgi import Request, Response, json_response
from airflow_provider_anaplan.emulator.auth import require_user
from tests.emulator.conftest import LiveServer

from .conftest import BASE, FAST_RETRIES, FakeClock, RecordingSleep, make_settings

PROBE = "/2/0/__probe"
ACTION_PATH = "__probe/imports/112000000001/tasks"  # ends in /tasks: an ACTION
PAGE_CAP = 1000  # the probe list answers at most this many items per page, whatever the limit asks


class Probe:
    """Test-only routes on the emulator that count their calls and can misbehave on demand."""

    def __init__(self, app: EmulatorApp, clock: FakeClock) -> None:
        self.calls: dict[str, int] = {}
        self.script: dict[str, list[Response]] = {}  # name -> responses to give before answering normally
        self.total_items = 12_345
        state = app.state

        def handler(name: str, ok: Callable[[Request], Response]) -> Callable[[Request], Any]:
            async def handle(request: Request) -> Response:
                require_user(state, request)
                self.calls[name] = self.calls.get(name, 0) + 1
                queued = self.script.get(name)
                if queued:
                    return queued.pop(0)
                return ok(request)

            return handle

        def items(request: Request) -> Response:
            offset, limit = int(request.arg("offset", "0") or 0), int(request.arg("limit", "20") or 20)
            page = [{"id": str(i)} for i in range(offset, min(offset + min(limit, PAGE_CAP), self.total_items))]
            body: dict[str, Any] = {
                "meta": {"paging": {"currentPageSize": len(page), "offset": offset, "totalSize": self.total_items}}
            }
            if page:
                body["items"] = page
            return json_response(body)

        app.router.add("GET", f"{PROBE}/items", handler("items", items))
        app.router.add("GET", f"{PROBE}/thing", handler("thing", lambda r: json_response({"thing": {"ok": True}})))
        app.router.add(
            "POST",
            f"/2/0/{ACTION_PATH}",
            handler("action", lambda r: json_response({"task": {"taskId": "ABCDEF0123456789ABCDEF0123456789"}})),
        )

    def queue(self, name: str, *responses: Response) -> None:
        self.script.setdefault(name, []).extend(responses)


@pytest.fixture
def probe(app: EmulatorApp, clock: FakeClock) -> Probe:
    return Probe(app, clock)


def error_body(status: int, message: str) -> Response:
    return json_response({"status": {"code": status, "message": message}, "path": "/x"}, status)


async def run_action(transport: Transport) -> dict[str, Any]:
    return Transport.json_of(await transport.request("POST", ACTION_PATH, json={"localeName": "en_US"}))


# --------------------------------------------------------------------------------------------------- settings
def test_settings_defaults_are_anaplan_production_hosts() -> None:
    s = ClientSettings()
    assert (s.auth_url, s.api_url, s.oauth_url) == (
        "https://auth.anaplan.com",
        "https://api.anaplan.com",
        "https://us1a.app.anaplan.com",
    )
    assert s.api_base == "https://api.anaplan.com/2/0"


def test_settings_base_url_sets_every_host_not_given() -> None:
    s = ClientSettings(base_url="http://localhost:8080/", auth_url="https://auth.example.com")
    assert (s.auth_url, s.api_url, s.oauth_url) == (
        "https://auth.example.com",
        "http://localhost:8080",
        "http://localhost:8080",
    )
    assert dataclasses.replace(s, max_attempts=2).api_url == "http://localhost:8080"


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"api_url": "https://api.anaplan.com/2/0"}, "adds /2/0"),
        ({"base_url": "http://localhost:8080/x"}, "without a path"),
        ({"auth_url": "https://auth.anaplan.com/?a=1"}, "query"),
        ({"oauth_url": "ftp://host"}, "http:// or https://"),
        ({"api_url": "https://user:pw@api.anaplan.com"}, "must not carry credentials"),
        ({"api_url": "https://api.anaplan.com:notaport"}, "not a valid URL"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"jitter": 1.5}, "jitter"),
        ({"backoff_base": -1}, "backoff_base"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"max_in_flight": 101}, "max_in_flight"),
        ({"max_in_flight": True}, "max_in_flight"),
    ],
)
def test_settings_reject_bad_values(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        ClientSettings(**options)


def test_settings_repr_hides_the_proxy() -> None:
    assert "secret" not in repr(ClientSettings(proxy="http://user:secret@proxy:3128"))


# --------------------------------------------------------------------------------------------------- retry rule table
@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/2/0/workspaces", RetryClass.SAFE),
        ("DELETE", "/2/0/models/M/imports/112000000001/tasks/T", RetryClass.SAFE),
        ("PUT", "/2/0/models/M/files/113000000001/chunks/0", RetryClass.SAFE),
        ("POST", "/2/0/models/M/files/113000000001", RetryClass.SAFE),
        ("POST", "/2/0/workspaces/W/models/M/files/113000000001/complete", RetryClass.SAFE),
        ("POST", "/token/authenticate", RetryClass.SAFE),
        ("POST", "/token/refresh", RetryClass.SAFE),
        ("POST", "/2/0/models/M/imports/112000000001/tasks", RetryClass.ACTION),
        ("POST", "/2/0/models/M/processes/118000000001/tasks", RetryClass.ACTION),
        ("POST", "/2/0/models/M/alm/syncTasks", RetryClass.ACTION),
        ("POST", "/2/0/models/M/alm/revisions", RetryClass.ACTION),
        ("POST", "/2/0/models/M/alm/comparisonReportTasks", RetryClass.ACTION),
        ("POST", "/2/0/models/M/alm/summaryReportTasks", RetryClass.ACTION),
        ("POST", "/oauth/token", RetryClass.ACTION),
        ("POST", "/2/0/workspaces/W/bulkDeleteModels", RetryClass.SAFE),  # deleting twice = deleting once
    ],
)
def test_retry_class_of_each_row(method: str, path: str, expected: RetryClass) -> None:
    assert classify(method, path) is expected


# --------------------------------------------------------------------------------------------------- URLs and errors
@pytest.mark.asyncio
async def test_relative_paths_are_under_api_2_0_and_urls_pass_through(transport: Transport) -> None:
    assert transport.url("workspaces") == f"{BASE}/2/0/workspaces"
    assert transport.url("/users/me") == f"{BASE}/2/0/users/me"
    assert transport.url("https://elsewhere.test/x") == "https://elsewhere.test/x"
    assert (await transport.get_json("/users/me"))["user"]["email"] == DEFAULT_USER_EMAIL


@pytest.mark.asyncio
async def test_404_carries_status_message_method_and_path_without_query(transport: Transport) -> None:
    with pytest.raises(NotFoundError) as info:
        await transport.get_json("workspaces/0000000000000000000000000000dead", params={"tokenish": "s3cr3t"})
    error = info.value
    assert error.status == 404 and error.method == "GET"
    assert error.path == "/2/0/workspaces/0000000000000000000000000000dead"
    assert error.anaplan_message
    assert "s3cr3t" not in str(error) and "?" not in str(error)


def _response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers, request=httpx.Request("GET", "http://x.test/p"))


def test_anaplan_message_reads_all_three_error_shapes() -> None:
    assert anaplan_message(_response(404, {"status": {"code": 404, "message": "Not Found"}})) == "Not Found"
    assert anaplan_message(_response(401, {"status": "FAILURE_BAD_CREDENTIAL", "statusMessage": "Bad"})) == "Bad"
    assert (
        anaplan_message(_response(400, {"error": "invalid_grant", "error_description": "Spent"}))
        == "invalid_grant: Spent"
    )
    assert anaplan_message(httpx.Response(502, text="<html>", request=httpx.Request("GET", "http://x.test"))) is None


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, InvalidInputError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (422, ModelStateError),
        (423, ModelStateError),
        (424, PermissionDeniedError),
        (418, AnaplanError),
    ],
)
async def test_status_maps_onto_the_error_tree(
    status: int, error_class: type[AnaplanError], transport: Transport, probe: Probe
) -> None:
    probe.queue("thing", error_body(status, f"message {status}"))
    with pytest.raises(error_class) as info:
        await transport.get_json("__probe/thing")
    assert info.value.status == status and info.value.anaplan_message == f"message {status}"
    assert probe.calls["thing"] == 1  # a 4xx is never retried


@pytest.mark.asyncio
async def test_non_json_success_body_is_a_protocol_error(transport: Transport, probe: Probe) -> None:
    probe.queue("thing", Response(200, b"<html>", "text/html"))
    with pytest.raises(AnaplanError, match="not JSON"):
        await transport.get_json("__probe/thing")


@pytest.mark.asyncio
async def test_unreachable_host_is_a_transport_error_never_a_raw_httpx_error(clock: FakeClock) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens there
    settings = ClientSettings(base_url=f"http://127.0.0.1:{port}", max_attempts=2, backoff_base=0.001, clock=clock)
    async with Transport(settings, StaticTokenAuth("a-static-token")) as t:
        with pytest.raises(TransportError, match="failed before the request was sent") as info:
            await t.get_json("users/me")
    message = str(info.value)
    assert "gave up after 2 attempt(s)" in message
    assert f"127.0.0.1:{port}: ConnectError" in message, "names the host and the cause's class"
    assert "a-static-token" not in message + repr(info.value)
    assert not any(isinstance(c, httpx.HTTPError) for c in shown_chain(info.value)), "no raw httpx error shows"


def shown_chain(error: BaseException) -> list[BaseException]:
    """The exceptions a traceback of ``error`` would show under it (its cause, or its context unless suppressed)."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None:
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
        if current is not None:
            chain.append(current)
    return chain


# --------------------------------------------------------------------------------------------- requests in flight
class InFlight:
    """An ASGI wrapper that counts the HTTP requests the wrapped app is handling at once, and the most seen."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.now = 0
        self.most = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await self.app(scope, receive, send)
        finally:
            self.now -= 1


@pytest.mark.asyncio
async def test_requests_in_flight_are_capped_at_max_in_flight(app: EmulatorApp, probe: Probe) -> None:
    counter = InFlight(app)
    settings = ClientSettings(
        base_url=BASE, transport=httpx.ASGITransport(app=counter), max_in_flight=3, **FAST_RETRIES
    )
    app.faults.add_rule("delay", method="GET", path="__probe/thing", count=20, seconds=0.05)
    async with Transport(settings, BasicAuth(DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD)) as transport:
        results = await asyncio.gather(*(transport.get_json("__probe/thing") for _ in range(20)))
    assert results == [{"thing": {"ok": True}}] * 20
    assert probe.calls["thing"] == 20
    assert app.state.counters.get("faults.latency") == 20  # each request was held at the emulator: they overlap
    assert counter.most == 3  # never more than max_in_flight at once (the token request went first, on its own)
    assert counter.now == 0

    # The control: with a higher cap the same requests do overlap further, so the cap above is what held them.
    counter.most = 0
    app.faults.add_rule("delay", method="GET", path="__probe/thing", count=20, seconds=0.05)
    wider = dataclasses.replace(settings, max_in_flight=20)
    async with Transport(wider, BasicAuth(DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD)) as transport:
        await asyncio.gather(*(transport.get_json("__probe/thing") for _ in range(20)))
    assert counter.most > 3


def test_pool_is_at_least_max_in_flight() -> None:
    limits = ClientSettings(max_in_flight=100).httpx_options()["limits"]
    assert limits.max_connections >= 100 and limits.max_keepalive_connections == 100
    assert ClientSettings().max_in_flight == 50


# --------------------------------------------------------------------------------------------------- paging
@pytest.mark.asyncio
async def test_paginate_strides_by_the_servers_page_size_past_5000_items(transport: Transport, probe: Probe) -> None:
    items = [item async for item in transport.paginate("__probe/items", "items")]
    assert [int(i["id"]) for i in items] == list(range(probe.total_items))
    assert probe.calls["items"] == -(-probe.total_items // PAGE_CAP)  # 13 pages of at most 1000


@pytest.mark.asyncio
async def test_paginate_with_a_missing_key_is_empty(transport: Transport, probe: Probe) -> None:
    probe.total_items = 0
    assert [item async for item in transport.paginate("__probe/items", "items")] == []
    assert [item async for item in transport.paginate("__probe/thing", "things")] == []


@pytest.mark.asyncio
async def test_paginate_real_emulator_list(transport: Transport) -> None:
    workspaces = [w async for w in transport.paginate("workspaces", "workspaces", limit=1)]
    assert workspaces and all("id" in w for w in workspaces)


# --------------------------------------------------------------------------------------------------- Retry-After
@pytest.mark.asyncio
async def test_retry_after_in_seconds_is_honoured(
    transport: Transport, app: EmulatorApp, probe: Probe, sleeps: RecordingSleep
) -> None:
    app.faults.add_rule("rate_limit", method="GET", path="__probe/thing", retry_after=7)
    assert await transport.get_json("__probe/thing") == {"thing": {"ok": True}}
    assert sleeps.delays == [7.0]


@pytest.mark.asyncio
async def test_retry_after_as_an_http_date_is_honoured(
    transport: Transport, probe: Probe, sleeps: RecordingSleep, clock: FakeClock
) -> None:
    when = format_datetime(datetime.fromtimestamp(clock() + 30, UTC), usegmt=True)
    probe.queue("thing", json_response({"status": {"code": 429, "message": "Slow down"}}, 429, [("Retry-After", when)]))
    assert await transport.get_json("__probe/thing") == {"thing": {"ok": True}}
    assert sleeps.delays == [pytest.approx(30.0, abs=1.0)]


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("12", 0.0) == 12.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", 40.0) == 60.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", 400.0) == 0.0  # in the past: at once
    assert parse_retry_after("soon", 0.0) is None
    assert parse_retry_after(None, 0.0) is None


@pytest.mark.asyncio
async def test_retry_after_beyond_the_retry_budget_fails_at_once(
    app: EmulatorApp, clock: FakeClock, probe: Probe, basic_auth: BasicAuth, sleeps: RecordingSleep
) -> None:
    app.faults.add_rule("rate_limit", path="__probe/thing", retry_after=600)
    async with Transport(make_settings(app, clock, sleep=sleeps, max_retry_time=30), basic_auth) as t:
        with pytest.raises(RateLimitedError, match="max_retry_time") as info:
            await t.get_json("__probe/thing")
    assert info.value.status == 429 and sleeps.delays == []


# --------------------------------------------------------------------------------------------------- SAFE requests
@pytest.mark.asyncio
@pytest.mark.parametrize("fault", ["rate_limit", "server_error", "reset", "drop"])
async def test_safe_request_completes_through_injected_faults(
    fault: str, transport: Transport, app: EmulatorApp, probe: Probe
) -> None:
    app.faults.add_rule(fault, method="GET", path="__probe/thing", count=2)
    assert await transport.get_json("__probe/thing") == {"thing": {"ok": True}}
    assert app.state.counters.get(f"faults.{fault}") == 2


@pytest.mark.asyncio
async def test_authentication_is_retried_after_a_5xx(transport: Transport, app: EmulatorApp) -> None:
    app.faults.add_rule("server_error", path="^/token/authenticate", count=2, status=503)
    assert (await transport.get_json("users/me"))["user"]["email"] == DEFAULT_USER_EMAIL
    assert app.state.counters["auth.authenticate"] == 1


@pytest.mark.asyncio
async def test_retries_are_bounded_by_attempts_with_exponential_backoff(
    app: EmulatorApp, clock: FakeClock, probe: Probe, basic_auth: BasicAuth, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="airflow_provider_anaplan.client")
    sleeps = RecordingSleep()
    app.faults.add_rule("server_error", path="__probe/thing", count=10, status=503)
    settings = make_settings(app, clock, sleep=sleeps, max_attempts=4, jitter=0, backoff_base=0.01, backoff_cap=0.03)
    async with Transport(settings, basic_auth) as t:
        with pytest.raises(ServerError, match="gave up after 4 attempt") as info:
            await t.get_json("__probe/thing")
    assert info.value.status == 503
    assert sleeps.delays == [0.01, 0.02, 0.03]
    retries = [r for r in caplog.records if r.name == "airflow_provider_anaplan.client" and "retry" in r.getMessage()]
    assert len(retries) == 3 and all(r.levelno == logging.WARNING for r in retries)
    assert "GET /2/0/__probe/thing: HTTP 503; retry 1 of 3" in retries[0].getMessage()


@pytest.mark.asyncio
async def test_retries_are_bounded_by_total_time(
    app: EmulatorApp, clock: FakeClock, probe: Probe, basic_auth: BasicAuth
) -> None:
    sleeps = RecordingSleep()
    app.faults.add_rule("server_error", path="__probe/thing", count=50)
    settings = make_settings(
        app, clock, sleep=sleeps, max_attempts=50, jitter=0, backoff_base=1, backoff_cap=1, max_retry_time=3.5
    )
    async with Transport(settings, basic_auth) as t:
        with pytest.raises(ServerError, match="max_retry_time"):
            await t.get_json("__probe/thing")
    assert sleeps.delays == [1, 1, 1]


# --------------------------------------------------------------------------------------------------- ACTION requests
class FailFirstConnects(httpx.AsyncBaseTransport):
    """Wraps a transport; the first ``count`` requests to ``path_part`` fail to connect (nothing is sent)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, path_part: str, count: int) -> None:
        self.inner, self.path_part, self.count = inner, path_part, count

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.path_part in request.url.path and self.count > 0:
            self.count -= 1
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


@pytest.mark.asyncio
async def test_action_is_replayed_after_429(transport: Transport, app: EmulatorApp, probe: Probe) -> None:
    app.faults.add_rule("rate_limit", method="POST", path="/tasks$", count=2)
    assert (await run_action(transport))["task"]["taskId"]
    assert probe.calls["action"] == 1


@pytest.mark.asyncio
async def test_action_is_replayed_after_a_connection_that_failed_before_sending(
    app: EmulatorApp, clock: FakeClock, probe: Probe, basic_auth: BasicAuth
) -> None:
    settings = make_settings(app, clock)
    flaky = FailFirstConnects(httpx.ASGITransport(app=app), "/tasks", 2)
    async with Transport(dataclasses.replace(settings, transport=flaky), basic_auth) as t:
        assert (await run_action(t))["task"]["taskId"]
    assert probe.calls["action"] == 1 and flaky.count == 0


@pytest.mark.asyncio
async def test_action_is_replayed_once_after_401_with_a_new_token(
    transport: Transport, app: EmulatorApp, probe: Probe, settings: ClientSettings
) -> None:
    await transport.get_json("users/me")
    token = token_cache.peek(transport.auth, settings)
    assert token is not None
    app.state.revoke_token(app.state.tokens[token.value])
    assert (await run_action(transport))["task"]["taskId"]
    assert probe.calls["action"] == 1 and app.state.counters["auth.authenticate"] == 2


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_action_is_never_retried_after_a_5xx(status: int, transport: Transport, probe: Probe) -> None:
    probe.queue("action", error_body(status, "Something broke"))
    with pytest.raises(ServerError) as info:
        await run_action(transport)
    assert probe.calls["action"] == 1, "the handler ran once: no retry"
    message = str(info.value)
    assert "may or may not have started" in message and "listing the action's tasks" in message
    assert info.value.status == status and info.value.method == "POST"


@pytest.mark.asyncio
@pytest.mark.parametrize("fault", ["drop", "reset"])
async def test_action_is_never_retried_after_a_lost_response_or_reset(
    fault: str, transport: Transport, app: EmulatorApp, probe: Probe
) -> None:
    app.faults.add_rule(fault, method="POST", path="/tasks$", count=5)
    with pytest.raises(TransportError, match="may or may not have started"):
        await run_action(transport)
    assert probe.calls.get("action", 0) == (1 if fault == "drop" else 0)
    assert app.state.counters.get(f"faults.{fault}") == 1, "sent once, never again"


@pytest.mark.asyncio
async def test_oauth_token_request_is_never_retried_after_a_lost_response(
    settings: ClientSettings, app: EmulatorApp
) -> None:
    app.faults.add_rule("drop", path="^/oauth/token", count=5)
    auth = OAuthRefreshTokenAuth("5f3a9c1e7b2d4f6a8c0e1b3d5f7a9c2e", "demo-rotating-refresh-token-0001")
    async with Transport(settings, auth) as t:
        with pytest.raises(TransportError, match="re-read the stored refresh token"):
            await t.get_json("users/me")
    assert app.state.counters["oauth.token"] == 1


# --------------------------------------------------------------------------------------------------- over real sockets
@pytest.mark.asyncio
async def test_live_safe_request_survives_resets_and_drops(
    live_transport: Transport, app: EmulatorApp, probe: Probe
) -> None:
    app.faults.add_rule("reset", method="GET", path="__probe/thing")
    app.faults.add_rule("drop", method="GET", path="__probe/thing")
    app.faults.add_rule("server_error", method="GET", path="__probe/thing", status=502)
    assert await live_transport.get_json("__probe/thing") == {"thing": {"ok": True}}
    assert probe.calls["thing"] == 2  # the dropped answer and the final one


@pytest.mark.asyncio
async def test_live_action_with_a_dropped_response_runs_once(
    live_transport: Transport, app: EmulatorApp, probe: Probe
) -> None:
    app.faults.add_rule("drop", method="POST", path="/tasks$", count=3)
    with pytest.raises(TransportError, match="may or may not have started"):
        await run_action(live_transport)
    assert probe.calls["action"] == 1


@pytest.mark.asyncio
@pytest.mark.parametrize(("retry", "runs"), [(RetryClass.SAFE, 2), (RetryClass.ACTION, 1)])
async def test_live_timeouts_retry_safe_requests_only(
    retry: RetryClass, runs: int, live_settings: ClientSettings, app: EmulatorApp, probe: Probe
) -> None:
    settings = dataclasses.replace(live_settings, timeout=httpx.Timeout(0.1, connect=2.0))
    app.faults.add_rule("delay", path="__probe/thing", seconds=0.3)
    async with Transport(settings, BasicAuth(DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD)) as t:
        if retry is RetryClass.SAFE:
            assert Transport.json_of(await t.request("GET", "__probe/thing", retry=retry)) == {"thing": {"ok": True}}
        else:
            with pytest.raises(AnaplanTimeoutError, match=r"timed out .*; the action may or may not have started"):
                await t.request("GET", "__probe/thing", retry=retry)
    assert app.state.counters["faults.latency"] == 1
    assert app.state.counters["requests"] == 1 + runs  # the authentication, then the probe once or twice


@pytest.mark.asyncio
async def test_authentication_error_from_a_bad_password_is_not_retried(
    settings: ClientSettings, app: EmulatorApp
) -> None:
    async with Transport(settings, BasicAuth(DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD + "!")) as t:
        with pytest.raises(AuthenticationError):
            await t.get_json("users/me")
    assert app.state.counters["auth.authenticate"] == 1


# --------------------------------------------------------------------------------------------------- review fixes
SECRET = "hunter2-proxy-pass"


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"oauth_url": f"ftp://user:{SECRET}@host"}, "must not carry credentials"),
        ({"api_url": f"user:{SECRET}@host"}, "must not carry credentials"),
        ({"base_url": f"gopher://u:{SECRET}@host/path"}, "must not carry credentials"),
        ({"proxy": f"ftp://user:{SECRET}@proxy.test:21"}, "proxy must be an http://, https:// or socks5:// URL"),
        ({"proxy": f"http://user:{SECRET}@proxy.test:notaport"}, "proxy is not a valid URL"),
        ({"proxy": 3128}, "proxy must be a URL string"),
        ({"verify": "/missing.pem"}, r"verify='/missing.pem' is not a usable CA bundle \(no such file"),
        ({"verify": "/tmp/ca\x00.pem"}, "NUL byte"),
        ({"verify": 3}, "verify must be True, False, an ssl.SSLContext or the path"),
        ({"timeout": "abc"}, "timeout must be a number of seconds > 0.*got a str"),
        ({"timeout": -1}, "timeout must be a number of seconds > 0.*got -1"),
        ({"timeout": True}, "timeout must be"),
    ],
)
def test_settings_fail_with_a_configuration_error_that_never_echoes_credentials(
    options: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match) as info:
        ClientSettings(**options)
    assert SECRET not in str(info.value) + repr(info.value)


def test_settings_socks_proxy_without_socksio_is_a_configuration_error() -> None:
    if importlib.util.find_spec("socksio") is not None:
        assert ClientSettings(proxy="socks5://proxy.test:1080").proxy
        return
    with pytest.raises(ConfigurationError, match="socksio") as info:
        ClientSettings(proxy=f"socks5://user:{SECRET}@proxy.test:1080")
    assert SECRET not in str(info.value)


def test_settings_accept_usable_verify_and_timeout_values(tmp_path: Any) -> None:
    assert ClientSettings(timeout=None).timeout is None
    assert ClientSettings(timeout=12).httpx_options()["timeout"] == 12
    assert ClientSettings(verify=False).httpx_options()["verify"] is False
    context = ClientSettings(verify=certifi.where()).httpx_options()["verify"]
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    (tmp_path / "empty.pem").write_text("not a certificate")
    with pytest.raises(ConfigurationError, match="not a usable CA bundle"):
        ClientSettings(verify=str(tmp_path / "empty.pem"))


class Recorder(httpx.AsyncBaseTransport):
    """Passes requests on and records each one."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)


@pytest.mark.asyncio
async def test_credentials_are_sent_only_to_the_configured_hosts(
    settings: ClientSettings, app: EmulatorApp, basic_auth: BasicAuth
) -> None:
    recorder = Recorder(httpx.ASGITransport(app=app))
    async with Transport(dataclasses.replace(settings, transport=recorder), basic_auth) as t:
        assert (await t.get_json(f"{BASE}/2/0/users/me"))["user"]["email"] == DEFAULT_USER_EMAIL  # same origin
        assert (await t.get_json("HTTP://EMULATOR.TEST:80/2/0/users/me"))["user"]["email"] == DEFAULT_USER_EMAIL
        sent = len(recorder.requests)
        for url in (
            "https://elsewhere.test/2/0/users/me",
            "http://emulator.test:8080/2/0/users/me",  # another port
            "https://emulator.test/2/0/users/me",  # another scheme
            "http://emulator.test.evil.test/2/0/users/me",
        ):
            with pytest.raises(InvalidInputError, match="Refusing to send Anaplan credentials") as info:
                await t.request("GET", url)
            assert "configured api_url (http://emulator.test)" in str(info.value)
        with pytest.raises(InvalidInputError, match="auth_url or oauth_url"):
            await t.call("POST", "https://elsewhere.test/token/authenticate", headers={"Authorization": "Basic eA=="})
    assert len(recorder.requests) == sent, "nothing was sent to another host"


def test_parse_retry_after_dates_without_a_zone_are_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "XYZ+05")  # a local time five hours behind UTC
    time.tzset()
    try:
        assert parse_retry_after("Thu Jan  1 00:01:40 1970", 40.0) == 60.0  # asctime form
        assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 -0000", 40.0) == 60.0
        assert parse_retry_after("Thursday, 01-Jan-70 00:01:40 GMT", 40.0) == 60.0  # RFC 850 form
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [503, 500, 502, 504])
async def test_retry_after_is_honoured_on_a_retried_5xx(
    status: int, transport: Transport, probe: Probe, sleeps: RecordingSleep
) -> None:
    busy = json_response({"status": {"code": status, "message": "Busy"}}, status, [("Retry-After", "7")])
    probe.queue("thing", busy)
    assert await transport.get_json("__probe/thing") == {"thing": {"ok": True}}
    assert sleeps.delays == [7.0]


@pytest.mark.asyncio
async def test_a_body_that_cannot_be_decoded_is_a_protocol_error_not_a_send_failure(
    transport: Transport, probe: Probe
) -> None:
    probe.queue("thing", Response(200, b"this is not gzip", "application/json", [("Content-Encoding", "gzip")]))
    with pytest.raises(ProtocolError, match="answered, but the response body could not be decoded") as info:
        await transport.get_json("__probe/thing")
    assert "could not be sent" not in str(info.value) and "DecodingError" in str(info.value)
    assert probe.calls["thing"] == 1


@pytest.mark.asyncio
async def test_aclose_during_a_retry_is_a_transport_error(
    app: EmulatorApp, clock: FakeClock, probe: Probe, basic_auth: BasicAuth
) -> None:
    transports: list[Transport] = []

    async def close_while_waiting(seconds: float) -> None:
        await transports[0].aclose()  # e.g. a task's on_kill closing the client between two attempts

    app.faults.add_rule("server_error", path="__probe/thing", count=1, status=503)
    t = Transport(make_settings(app, clock, sleep=close_while_waiting), basic_auth)
    transports.append(t)
    with pytest.raises(TransportError, match="abandoned after 1 retry: the client was closed"):
        await t.get_json("__probe/thing")
    assert probe.calls.get("thing", 0) == 0  # the 503 came from the fault injector; nothing was sent again


@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_clients_of_ended_event_loops_are_dropped(live_settings: ClientSettings, basic_auth: BasicAuth) -> None:
    t = Transport(live_settings, basic_auth)

    async def call_without_closing() -> int:
        await t.get_json("users/me")
        return len(t._clients)

    async def call_and_close() -> int:
        async with t:
            return await call_without_closing()

    assert asyncio.run(call_without_closing()) == 1  # asyncio.run ends; the client (and its connection) stays
    gc.collect()
    assert asyncio.run(call_and_close()) == 1, "the ended loop's client was dropped"
    assert len(t._clients) == 0
    gc.collect()  # the dropped client's socket belonged to the ended loop: the GC closes it (with a ResourceWarning)


# --------------------------------------------------------------------------------------------------- TLS
def _self_signed(tmp_path: Any) -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "emulator.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "server.pem", tmp_path / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


class HttpsEmulator:
    """The emulator served by uvicorn over TLS on 127.0.0.1, with a self-signed certificate."""

    def __init__(self, app: EmulatorApp, cert: str, key: str) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="critical", lifespan="on", ssl_certfile=cert, ssl_keyfile=key
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="emulator-https", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.01)
        return f"https://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.mark.asyncio
async def test_an_untrusted_certificate_fails_at_once_naming_host_and_reason(
    app: EmulatorApp, clock: FakeClock, basic_auth: BasicAuth, tmp_path: Any
) -> None:
    cert, key = _self_signed(tmp_path)
    with HttpsEmulator(app, cert, key) as url:
        sleeps = RecordingSleep()
        untrusted = ClientSettings(base_url=url, clock=clock, sleep=sleeps, timeout=5.0)
        async with Transport(untrusted, basic_auth) as t:
            with pytest.raises(TransportError) as info:
                await t.get_json("users/me")
        message = str(info.value)
        assert "SSL: CERTIFICATE_VERIFY_FAILED" in message and url.removeprefix("https://") in message
        assert "not retried" in message and "verify=" in message
        assert sleeps.delays == [], "a certificate that cannot be verified is not retried"
        assert DEFAULT_USER_PASSWORD not in message
        # The same server with its certificate as the CA bundle (a path, ~ expanded): trusted.
        trusted = ClientSettings(base_url=url, clock=clock, timeout=5.0, verify=cert)
        async with Transport(trusted, basic_auth) as t:
            assert (await t.get_json("users/me"))["user"]["email"] == DEFAULT_USER_EMAIL


# ------------------------------------------------------------------------------------------------ memory, TLS, paging
def mock_settings(handler: Callable[[httpx.Request], Any], **overrides: Any) -> ClientSettings:
    return ClientSettings(base_url=BASE, transport=httpx.MockTransport(handler), **{**FAST_RETRIES, **overrides})


@pytest.mark.asyncio
async def test_finished_responses_and_their_bodies_are_freed_without_the_cycle_collector() -> None:
    # httpx 0.28 leaves a reference cycle in every response (response.stream -> BoundAsyncStream -> response); with it,
    # every uploaded chunk (the request body) and downloaded chunk (the content) lived until the collector ran.
    seen: list[tuple[weakref.ref[httpx.Request], weakref.ref[httpx.Response]]] = []
    body = bytes(range(256)) * 4096  # 1 MiB

    def handler(request: httpx.Request) -> httpx.Response:
        response = httpx.Response(200, content=body if request.method == "GET" else b"")
        seen.append((weakref.ref(request), weakref.ref(response)))
        return response

    async with Transport(mock_settings(handler), StaticTokenAuth("a-static-token")) as t:
        gc.collect()
        gc.disable()
        try:
            answer = await t.request("PUT", "models/M/files/113000000001/chunks/0", content=b"x" * (1 << 20))
            request_ref, response_ref = seen[-1]
            assert response_ref() is answer
            del answer
            assert response_ref() is None and request_ref() is None, "the PUT's response or request outlived its use"

            chunk = await t.request_bytes("GET", "models/M/files/113000000001/chunks/0")
            assert chunk == body and isinstance(chunk, bytearray)
            assert all(ref() is None for pair in seen for ref in pair), "a chunk download's response is still alive"

            answer = await t.request("GET", "models/M/files/113000000001/chunks/0")
            assert answer.content == body  # the content stays readable after the stream is released
            assert answer.read() == body
            del answer
            assert all(ref() is None for pair in seen for ref in pair)
        finally:
            gc.enable()


@pytest.mark.asyncio
@pytest.mark.parametrize("encoded", [False, True])
async def test_request_bytes_reads_the_body_into_one_buffer(encoded: bool) -> None:
    import gzip

    body = b"Region,Units\n" + b"North,1\n" * 50_000

    def handler(request: httpx.Request) -> httpx.Response:
        if encoded:
            return httpx.Response(200, content=gzip.compress(body), headers={"Content-Encoding": "gzip"})
        return httpx.Response(200, content=body)

    async with Transport(mock_settings(handler), StaticTokenAuth("a-static-token")) as t:
        assert await t.request_bytes("GET", "models/M/files/F/chunks/0") == body


@pytest.mark.asyncio
async def test_request_bytes_retries_a_body_cut_short_and_maps_errors() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if request.url.path.endswith("/missing"):
            return httpx.Response(404, json={"status": {"code": 404, "message": "Chunk not found"}})
        if len(calls) == 1:  # announces 100 bytes, sends 10
            return httpx.Response(200, content=b"0123456789", headers={"Content-Length": "100"})
        return httpx.Response(200, content=b"9" * 100)

    async with Transport(mock_settings(handler, sleep=RecordingSleep()), StaticTokenAuth("a-static-token")) as t:
        assert await t.request_bytes("GET", "models/M/files/F/chunks/0") == b"9" * 100
        assert len(calls) == 2
        with pytest.raises(NotFoundError, match="Chunk not found"):
            await t.request_bytes("GET", "models/M/files/F/chunks/missing")


def test_one_ssl_context_per_process_is_shared_by_the_clients_of_every_loop(monkeypatch: pytest.MonkeyPatch) -> None:

    made: list[Any] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        made.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setattr(settings_module, "_SHARED_CONTEXTS", {})
    transport = Transport(ClientSettings(base_url="https://anaplan.example"), StaticTokenAuth("a-static-token"))

    async def open_client() -> ssl.SSLContext:
        client = transport._client()
        context = client._transport._pool._ssl_context  # type: ignore[attr-defined]
        await transport.aclose()
        return context

    contexts = [asyncio.run(open_client()) for _ in range(3)]
    contexts.append(asyncio.run(open_client()))
    assert all(c is contexts[0] for c in contexts)
    assert made == [{"cafile": certifi.where()}], made  # the CA bundle is loaded once, not once per client
    assert contexts[0].verify_mode == ssl.CERT_REQUIRED and contexts[0].check_hostname
    unverified = settings_module.shared_ssl_context(False)
    assert unverified.verify_mode == ssl.CERT_NONE and not unverified.check_hostname
    assert settings_module.shared_ssl_context(False) is unverified


@pytest.mark.asyncio
async def test_the_ca_bundle_is_loaded_off_the_event_loop_before_the_first_request(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ssl.create_default_context
    threads: list[threading.Thread] = []

    def recording(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", recording)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setattr(settings_module, "_SHARED_CONTEXTS", {})
    auth = BasicAuth(DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD)
    async with Transport(ClientSettings(base_url=live_server.url), auth) as transport:
        assert (await transport.get_json("workspaces"))["workspaces"]
    assert len(threads) == 1 and threads[0] is not threading.current_thread()  # a worker thread, not the loop's


@pytest.mark.asyncio
async def test_a_long_page_is_handed_over_in_slices_so_the_event_loop_keeps_running() -> None:
    listing = PagedList(total=1000, page=1000, delay=0)  # one page of 1000 items, fetched in one request
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count_turns())
    seen: list[int] = []
    async with Transport(mock_settings(listing), StaticTokenAuth("a-static-token")) as t:
        async for _item in t.paginate("things", "items"):
            seen.append(turns)  # a caller doing work per item without awaiting, as a parser does
    counter.cancel()
    assert len(seen) == 1000 and listing.offsets == [0]
    assert len(set(seen)) == 1000 // YIELD_EVERY  # the loop ran between slices of the page, not only after it


class PagedList:
    """A listing of ``total`` items served ``page`` at a time after ``delay`` s, counting requests in flight."""

    def __init__(self, total: int, page: int, delay: float = 0.01) -> None:
        self.total, self.page, self.delay = total, page, delay
        self.offsets: list[int] = []
        self.in_flight = self.max_in_flight = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        offset = int(request.url.params["offset"])
        self.offsets.append(offset)
        size = self.page_size(offset)
        items = [{"id": i} for i in range(offset, min(offset + size, self.total))]
        paging = {"currentPageSize": len(items), "offset": offset, "totalSize": self.total}
        return httpx.Response(200, json={"meta": {"paging": paging}, **({"items": items} if items else {})})

    def page_size(self, offset: int) -> int:
        return self.page


@pytest.mark.asyncio
async def test_paginate_fetches_the_next_pages_a_few_at_a_time_and_yields_in_order() -> None:
    listing = PagedList(total=10_050, page=1000, delay=0.05)
    async with Transport(mock_settings(listing), StaticTokenAuth("a-static-token")) as t:
        started = time.monotonic()
        items = [item["id"] async for item in t.paginate("things", "items")]
        elapsed = time.monotonic() - started
    assert items == list(range(10_050))
    assert sorted(listing.offsets) == list(range(0, 10_050, 1000))  # each page once, none past totalSize
    assert listing.max_in_flight == 4
    assert elapsed < 8 * listing.delay, elapsed  # 1 + ceil(10 / 4) rounds, not 11 requests one after another


@pytest.mark.asyncio
async def test_paginate_follows_a_server_that_changes_its_page_size_or_total() -> None:
    class Shrinking(PagedList):
        def page_size(self, offset: int) -> int:
            return 100 if offset >= 300 else self.page  # pages fetched ahead at the old stride are refetched

    listing = Shrinking(total=1000, page=300)
    async with Transport(mock_settings(listing), StaticTokenAuth("a-static-token")) as t:
        assert [item["id"] async for item in t.paginate("things", "items")] == list(range(1000))

    class Growing(PagedList):
        async def __call__(self, request: httpx.Request) -> httpx.Response:
            response = await super().__call__(request)
            self.total = 1500  # items added after the first page was read
            return response

    listing = Growing(total=1000, page=100)
    async with Transport(mock_settings(listing), StaticTokenAuth("a-static-token")) as t:
        assert [item["id"] async for item in t.paginate("things", "items")] == list(range(1500))


@pytest.mark.asyncio
async def test_stopping_a_listing_early_cancels_the_pages_fetched_ahead() -> None:
    listing = PagedList(total=10_000, page=100)
    async with Transport(mock_settings(listing), StaticTokenAuth("a-static-token")) as t:
        pages = t.paginate("things", "items")
        async for item in pages:
            if item["id"] == 150:
                break
        await pages.aclose()  # type: ignore[attr-defined]
        assert listing.in_flight == 0
        assert len(listing.offsets) <= 5
