"""Fault injection (latency, 429, 5xx, resets, drops, one-shot rules) and the admin endpoint that changes it."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from airflow_provider_anaplan.emulator import EmulatorApp, FaultInjector, create_app
from airflow_provider_anaplan.emulator.faults import EmulatedConnectionReset, EmulatedResponseDropped

from .conftest import BASE, FakeClock, LiveServer, basic_header, login, token_header

UNKNOWN = "/2/0/no/such/route"  # answers 404 when no fault hits, so the handler's work is visible and cheap


class FakeSleep:
    """Records the delays the injector asks for instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def asgi_client(app: EmulatorApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


async def statuses(app: EmulatorApp, count: int, path: str = UNKNOWN) -> list[int]:
    async with asgi_client(app) as client:
        return [(await client.get(path)).status_code for _ in range(count)]


# --------------------------------------------------------------------------------------------------- latency
@pytest.mark.asyncio
async def test_latency_delays_every_request_by_the_configured_time(clock: FakeClock) -> None:
    sleep = FakeSleep()
    app = create_app(clock=clock, faults=FaultInjector(latency=0.25, sleep=sleep))
    assert await statuses(app, 3) == [404, 404, 404]
    assert sleep.delays == [0.25, 0.25, 0.25]
    assert app.state.counters["faults.latency"] == 3


@pytest.mark.asyncio
async def test_latency_jitter_stays_in_range_and_repeats_with_the_seed(clock: FakeClock) -> None:
    runs = []
    for _ in range(2):
        sleep = FakeSleep()
        app = create_app(clock=clock, faults=FaultInjector(latency=0.2, jitter=0.1, seed=7, sleep=sleep))
        await statuses(app, 20)
        runs.append(sleep.delays)
    assert runs[0] == runs[1]
    assert all(0.1 <= delay <= 0.3 for delay in runs[0])
    assert len(set(runs[0])) > 1


@pytest.mark.asyncio
async def test_latency_really_waits(clock: FakeClock) -> None:
    app = create_app(clock=clock, faults=FaultInjector(latency=0.05))
    started = time.monotonic()
    assert await statuses(app, 1) == [404]
    assert time.monotonic() - started >= 0.05


# --------------------------------------------------------------------------------------------------- 429 and 5xx
@pytest.mark.asyncio
async def test_rate_429_answers_with_retry_after_before_the_handler_runs(clock: FakeClock) -> None:
    app = create_app(clock=clock, faults=FaultInjector(rate_429=1.0, retry_after=7))
    async with asgi_client(app) as client:
        response = await client.get("/2/0/users/me", headers=token_header("whatever"))
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "7"
        body = response.json()
        assert body["status"]["code"] == 429 and "retry after 7" in body["status"]["message"]
        assert body["path"] == "/2/0/users/me"
        assert "auth.token_use" not in app.state.counters  # the handler never ran

        auth = await client.post("/token/authenticate", headers=basic_header())
        assert auth.status_code == 429 and auth.headers["Retry-After"] == "7"
        assert set(auth.json()) == {"status", "statusMessage"}  # the auth service's error body
    assert app.state.counters["faults.rate_limit"] == 2
    assert not app.state.tokens


@pytest.mark.asyncio
async def test_5xx_rate_is_deterministic_given_a_seed(clock: FakeClock) -> None:
    def build(seed: int) -> EmulatorApp:
        return create_app(clock=clock, faults=FaultInjector(rate_5xx=0.5, statuses_5xx=[502, 503], seed=seed))

    first, again, other = await statuses(build(42), 40), await statuses(build(42), 40), await statuses(build(43), 40)
    assert first == again
    assert first != other
    assert set(first) == {404, 502, 503}
    server_errors = first.count(502) + first.count(503)
    assert 8 <= server_errors <= 32
    app = build(42)
    await statuses(app, 40)
    assert app.state.counters["faults.server_error"] == server_errors
    assert app.state.counters["faults.server_error.502"] == first.count(502)


@pytest.mark.asyncio
async def test_5xx_body_is_the_integration_error_body(clock: FakeClock) -> None:
    app = create_app(clock=clock, faults=FaultInjector(rate_5xx=1.0, statuses_5xx=[504]))
    async with asgi_client(app) as client:
        response = await client.get("/2/0/workspaces")
    assert response.status_code == 504
    assert response.json()["status"] == {"code": 504, "message": "Gateway Timeout"}
    assert response.headers["X-Emulator-Fault"] == "server_error"


# --------------------------------------------------------------------------------------------------- resets and drops
def test_reset_over_uvicorn_happens_before_the_handler_runs(app: EmulatorApp, live_server: LiveServer) -> None:
    app.faults.add_rule("reset", method="POST", path="^/token/authenticate$")
    with httpx.Client(base_url=live_server.url, timeout=5) as client:
        with pytest.raises(httpx.TransportError):
            client.post("/token/authenticate", headers=basic_header())
        assert "auth.authenticate" not in app.state.counters
        assert not app.state.tokens
        assert app.state.counters["faults.reset"] == 1
        assert client.post("/token/authenticate", headers=basic_header()).status_code == 201  # the rule is spent


def test_drop_over_uvicorn_happens_after_the_handler_ran(app: EmulatorApp, live_server: LiveServer) -> None:
    app.faults.add_rule("drop", method="POST", path="^/token/authenticate$")
    with httpx.Client(base_url=live_server.url, timeout=5) as client:
        with pytest.raises(httpx.TransportError):
            client.post("/token/authenticate", headers=basic_header())
        assert app.state.counters["auth.authenticate"] == 1
        assert len(app.state.tokens) == 1  # the token exists, the client never heard of it
        assert app.state.counters["faults.drop"] == 1
        assert client.post("/token/authenticate", headers=basic_header()).status_code == 201
    assert len(app.state.tokens) == 2


@pytest.mark.asyncio
async def test_reset_and_drop_under_asgi_transport_raise_httpx_read_errors(clock: FakeClock) -> None:
    app = create_app(clock=clock, faults=FaultInjector(rate_reset=1.0))
    async with asgi_client(app) as client:
        with pytest.raises(httpx.ReadError) as reset:
            await client.post("/token/authenticate", headers=basic_header())
        assert isinstance(reset.value, EmulatedConnectionReset)
        assert not app.state.tokens

        app.faults.configure(rate_reset=0.0, rate_drop=1.0)
        with pytest.raises(httpx.ReadError) as drop:
            await client.post("/token/authenticate", headers=basic_header())
        assert isinstance(drop.value, EmulatedResponseDropped)
        assert len(app.state.tokens) == 1
    assert app.state.counters["faults.reset"] == 1 and app.state.counters["faults.drop"] == 1


# --------------------------------------------------------------------------------------------------- one-shot rules
@pytest.mark.asyncio
async def test_one_shot_rule_hits_exactly_the_next_n_matching_requests(app: EmulatorApp) -> None:
    app.faults.add_rule("5xx", method="get", path=r"^/2/0/no/", count=2, status=503)
    app.faults.add_rule("429", method="*", path="^/2/0/other$", retry_after=3)
    async with asgi_client(app) as client:
        assert (await client.post(UNKNOWN)).status_code == 404  # other method: no match, not consumed
        assert (await client.get("/2/0/workspaces")).status_code != 503  # other path
        assert [(await client.get(UNKNOWN)).status_code for _ in range(3)] == [503, 503, 404]
        limited = await client.get("/2/0/other")
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
        assert (await client.get("/2/0/other")).status_code == 404
    assert app.faults.rules == []


@pytest.mark.asyncio
async def test_delay_rule_adds_to_the_latency(clock: FakeClock) -> None:
    sleep = FakeSleep()
    app = create_app(clock=clock, faults=FaultInjector(latency=0.1, sleep=sleep))
    app.faults.add_rule("delay", seconds=2.0)
    assert await statuses(app, 2) == [404, 404]
    assert sleep.delays == [pytest.approx(2.1), 0.1]


@pytest.mark.parametrize(
    ("fault", "options", "message"),
    [
        ("explode", {}, "fault must be one of"),
        ("reset", {"path": "("}, "not a valid regular expression"),
        ("reset", {"count": 0}, "count must be a whole number >= 1"),
        ("5xx", {"status": 404}, "from 500 to 599"),
        ("reset", {"status": 500}, "status only applies"),
        ("delay", {}, "needs 'seconds'"),
        ("reset", {"method": "GE T"}, "method must be"),
    ],
)
def test_bad_rules_are_refused(fault: str, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FaultInjector().add_rule(fault, **options)


def test_bad_knobs_are_refused_and_change_nothing() -> None:
    faults = FaultInjector(rate_429=0.5)
    for bad in ({"rate_429": 1.5}, {"latency": -1}, {"statuses_5xx": []}, {"retry_after": 1.5}, {"nope": 1}):
        with pytest.raises(ValueError):
            faults.configure(rate_5xx=0.5, **bad)
    assert faults.settings.rate_429 == 0.5 and faults.settings.rate_5xx == 0.0


# --------------------------------------------------------------------------------------------------- admin endpoint
@pytest.mark.asyncio
async def test_admin_changes_faults_at_run_time(client: httpx.AsyncClient, app: EmulatorApp) -> None:
    shown = (await client.get("/__emulator/faults")).json()
    assert shown["rate_429"] == 0.0 and shown["statuses_5xx"] == [500, 502, 503, 504] and shown["rules"] == []

    changed = await client.put("/__emulator/faults", json={"rate_429": 1, "retry_after": 9, "seed": 5})
    assert changed.status_code == 200
    assert changed.json()["rate_429"] == 1 and changed.json()["seed"] == 5
    limited = await client.get(UNKNOWN)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "9"

    reset = await client.post("/__emulator/faults/reset")
    assert reset.json()["rate_429"] == 0.0
    assert (await client.get(UNKNOWN)).status_code == 404


@pytest.mark.asyncio
async def test_admin_adds_and_clears_one_shot_rules(client: httpx.AsyncClient) -> None:
    added = await client.post(
        "/__emulator/faults/rules",
        json=[{"fault": "server_error", "status": 502, "path": "^/2/0/no/", "count": 2}, {"fault": "reset"}],
    )
    assert added.status_code == 201
    assert [rule["fault"] for rule in added.json()["rules"]] == ["server_error", "reset"]
    assert (await client.get(UNKNOWN)).status_code == 502
    cleared = await client.delete("/__emulator/faults/rules")
    assert cleared.json()["rules"] == []
    assert (await client.get(UNKNOWN)).status_code == 404

    via_put = await client.put("/__emulator/faults", json={"rules": {"fault": "429", "method": "GET"}})
    assert via_put.json()["rules"] == [{"fault": "rate_limit", "method": "GET", "path": None, "count": 1}]
    assert (await client.get(UNKNOWN)).status_code == 429


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        ("PUT", "/__emulator/faults", {"rate_5xx": 2}, "rate_5xx must be between 0 and 1"),
        ("PUT", "/__emulator/faults", {"rate_drops": 0.1}, "Unknown fault setting 'rate_drops'"),
        ("PUT", "/__emulator/faults", {"seed": "x"}, "seed must be a whole number"),
        ("PUT", "/__emulator/faults", [1], "Body must be a JSON object"),
        ("PUT", "/__emulator/faults", b"{not json", "Malformed JSON body"),
        ("POST", "/__emulator/faults/rules", {"fault": "reset", "path": "["}, "not a valid regular expression"),
        ("POST", "/__emulator/faults/rules", {"path": "x"}, "A rule needs 'fault'"),
        ("POST", "/__emulator/faults/rules", {"fault": "reset", "when": 1}, "Unknown rule field 'when'"),
        ("PUT", "/__emulator/token-ttl", {"token_ttl": 0}, "token_ttl"),
        ("PUT", "/__emulator/token-ttl", {"ttl": 5}, "token_ttl"),
    ],
)
async def test_admin_refuses_bad_input_with_400(
    client: httpx.AsyncClient, app: EmulatorApp, method: str, path: str, body: object, message: str
) -> None:
    before = app.faults.describe()
    content = body if isinstance(body, bytes) else None
    response = await client.request(method, path, json=None if content else body, content=content)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert app.faults.describe() == before
    assert app.state.token_ttl == 2100.0


@pytest.mark.asyncio
async def test_admin_token_ttl_applies_to_tokens_issued_afterwards(
    client: httpx.AsyncClient, app: EmulatorApp, clock: FakeClock
) -> None:
    assert (await client.get("/__emulator/token-ttl")).json() == {"token_ttl": 2100.0}
    old_token = await login(client)
    assert (await client.put("/__emulator/token-ttl", json={"token_ttl": 60})).json() == {"token_ttl": 60.0}
    response = await client.post("/token/authenticate", headers=basic_header())
    assert response.json()["tokenInfo"]["expiresAt"] == int((clock.now + 60) * 1000)
    new_token = response.json()["tokenInfo"]["tokenValue"]

    clock.advance(59)
    assert (await client.get("/token/validate", headers=token_header(new_token))).status_code == 200
    clock.advance(2)
    assert (await client.get("/token/validate", headers=token_header(new_token))).status_code == 401
    assert (await client.get("/token/validate", headers=token_header(old_token))).status_code == 200


@pytest.mark.asyncio
async def test_admin_counters_and_health(client: httpx.AsyncClient) -> None:
    assert (await client.get("/__emulator/health")).json() == {"status": "ok"}
    await login(client)
    counters = (await client.get("/__emulator/counters")).json()["counters"]
    assert counters["auth.authenticate"] == 1 and counters["requests"] == 1 and counters["requests.handled"] == 1
    assert (await client.post("/__emulator/counters/reset")).json() == {"counters": {}}
    assert (await client.get("/__emulator/counters")).json() == {"counters": {}}


def test_admin_routes_are_exempt_from_faults(
    app: EmulatorApp, live_server_factory: Callable[[EmulatorApp], LiveServer]
) -> None:
    app.faults.configure(rate_reset=1.0, rate_429=1.0, rate_5xx=1.0, rate_drop=1.0)
    app.faults.add_rule("reset", path="^/__emulator")
    server = live_server_factory(app)
    with httpx.Client(base_url=server.url, timeout=5) as client:
        for path in ("/__emulator/health", "/__emulator/faults", "/__emulator/counters", "/__emulator/token-ttl"):
            assert client.get(path).status_code == 200, path
        with pytest.raises(httpx.TransportError):
            client.get(UNKNOWN)
        assert client.post("/__emulator/faults/reset").status_code == 200
        assert client.get(UNKNOWN).status_code == 404
    assert app.state.counters["requests"] == 2  # only the two API requests went through the injector
