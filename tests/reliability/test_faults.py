"""Faults survived: the client (and the hook) against the emulator over real HTTP while the emulator injects faults.

Each scenario states what a scheduler at 2 a.m. needs: the work finishes or fails clearly, no byte is lost, nothing runs
twice. Each records a row of the fault table (faults injected, from the emulator's ``faults.*`` counters; operations
completed; bytes lost; duplicate runs) that the session prints and docs/reliability.md carries.

Faults are seeded: with one request in flight at a time the same seed gives the same faults on every run. The
concurrent variants draw in arrival order, so their fault counts vary a little between runs; their assertions do not.
Waits never really happen: the client's ``sleep`` records the wait and moves the fake clocks instead.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_anaplan import exceptions
from airflow_provider_anaplan.client import (
    AnaplanClient,
    BasicAuth,
    ClientSettings,
    NotFoundError,
    OutcomeStatus,
    RateLimitedError,
    TaskCancelledError,
    TransportError,
)
from airflow_provider_anaplan.emulator import DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD, EmulatorApp, create_app
from airflow_provider_anaplan.emulator.engine import Engine, engine_for
from airflow_provider_anaplan.hooks.anaplan import AnaplanHook
from tests.emulator.conftest import FakeClock

from .conftest import (
    MODEL,
    NIGHTLY_LOAD,
    PRODUCTS_IMPORT,
    SALES_EXPORT,
    SALES_FILE,
    SALES_IMPORT,
    WORKSPACE,
    RecordFault,
    Server,
    ServerFactory,
    TickingSleep,
    injected_faults,
)

KIB = 1024
SECOND_USER = ("integration.user@anaplan.example", "second-password")
SALES_HEADER = "Region,Product,Month,Units,Revenue\n"


def sales_csv(rows: int) -> bytes:
    """A deterministic CSV in the shape of the Sales import's source (every row loads)."""
    regions, products = ("North", "South", "East", "West"), ("Laptop", "Monitor", "Support Plan")
    lines = [SALES_HEADER]
    for i in range(rows):
        lines.append(f"{regions[i % 4]},{products[i % 3]},Mar 26,{i % 97 + 1},{(i * 37) % 9000 + 100}\n")
    return "".join(lines).encode()


def settings_for(
    url: str, clock: FakeClock, sleep: TickingSleep, transport: httpx.AsyncBaseTransport | None = None, **extra: Any
) -> ClientSettings:
    options: dict[str, Any] = {
        "base_url": url,
        "clock": clock,
        "sleep": sleep,
        "timeout": 10.0,
        "backoff_base": 0.01,
        "backoff_cap": 0.05,
        "max_retry_time": 120.0,
        "max_attempts": 8,
        **extra,
    }
    if transport is not None:
        options["transport"] = transport
    return ClientSettings(**options)


def client_for(settings: ClientSettings) -> AnaplanClient:
    return AnaplanClient(BasicAuth(DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD), settings=settings)


def stored(engine: Engine, file_id: str = SALES_FILE) -> bytes:
    return b"".join(engine.store.iter_chunks(MODEL, file_id))


def bytes_lost(expected: bytes, got: bytes) -> int:
    """Bytes of ``expected`` that did not arrive as sent (length difference plus differing positions)."""
    common = min(len(expected), len(got))
    return abs(len(expected) - len(got)) + sum(
        1 for a, b in zip(expected[:common], got[:common], strict=True) if a != b
    )


def tasks_of(engine: Engine, object_id: str) -> list[Any]:
    return [t for t in engine.tasks.get(MODEL, {}).values() if t.object_id == object_id]


def runs_created(counters: dict[str, int]) -> int:
    return sum(v for k, v in counters.items() if k.startswith("tasks.create."))


def renewals(counters: dict[str, int]) -> int:
    """Token renewals after the first login: new logins, /token/refresh calls, OAuth grants beyond the first."""
    return max(counters.get("auth.authenticate", 0) - 1, 0) + counters.get("auth.refresh", 0)


class Tap(httpx.AsyncBaseTransport):
    """A real HTTP transport that calls ``on_response(request, response)`` after each answer (to move clocks)."""

    def __init__(self, on_response: Callable[[httpx.Request, httpx.Response], None]) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.on_response = on_response

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.on_response(request, response)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def app(clock: FakeClock) -> EmulatorApp:
    return create_app(clock=clock)


@pytest.fixture
def engine(app: EmulatorApp) -> Engine:
    return engine_for(app.state)


@pytest.fixture
def server(app: EmulatorApp, plug: Callable[[EmulatorApp], Server]) -> Server:
    return plug(app)


# --------------------------------------------------------------------------------------------------- chunks under fire
@pytest.mark.asyncio
@pytest.mark.parametrize("concurrency", [1, 4])
async def test_chunked_upload_through_5xx_and_resets_is_byte_identical(
    concurrency: int,
    app: EmulatorApp,
    engine: Engine,
    server: Server,
    clock: FakeClock,
    ticking: TickingSleep,
    record_fault: RecordFault,
) -> None:
    data = sales_csv(40_000)  # about 1.2 MB: 38 chunks of 32 KiB
    app.faults.configure(rate_5xx=0.10, rate_reset=0.05)
    app.faults.reseed(2026)
    async with client_for(settings_for(server.url, clock, ticking)) as client:
        described = await client.upload_file(
            MODEL, SALES_FILE, data, workspace_id=WORKSPACE, chunk_size=32 * KIB, concurrency=concurrency
        )
    counters = dict(app.state.counters)
    chunks = -(-len(data) // (32 * KIB))
    assert described.chunk_count == chunks
    assert stored(engine) == data
    assert counters["faults.server_error"] > 0 and counters["faults.reset"] > 0
    assert counters["files.chunk_put"] >= chunks
    record_fault(
        f"upload, {chunks} chunks (concurrency {concurrency}), 10 % 5xx + 5 % resets",
        faults=injected_faults(counters),
        operations=f"1 upload of {len(data):,} bytes",
        bytes_lost=bytes_lost(data, stored(engine)),
        duplicate_runs=runs_created(counters),
        outcome="completed, byte-identical",
        counters=counters,
    )


@pytest.mark.asyncio
@pytest.mark.parametrize("concurrency", [1, 4])
async def test_chunked_download_through_5xx_and_resets_is_byte_identical(
    concurrency: int,
    app: EmulatorApp,
    engine: Engine,
    server: Server,
    clock: FakeClock,
    ticking: TickingSleep,
    record_fault: RecordFault,
    tmp_path: Path,
) -> None:
    data = sales_csv(40_000)
    async with client_for(settings_for(server.url, clock, ticking)) as client:
        await client.upload_file(MODEL, SALES_FILE, data, chunk_size=32 * KIB)
        app.state.counters.clear()
        app.faults.configure(rate_5xx=0.10, rate_reset=0.05)
        app.faults.reseed(2027)
        written = await client.download_file(
            MODEL, SALES_FILE, tmp_path / "sales.csv", workspace_id=WORKSPACE, concurrency=concurrency
        )
    counters = dict(app.state.counters)
    got = (tmp_path / "sales.csv").read_bytes()
    assert written == len(data) and got == data
    assert not (tmp_path / "sales.csv.part").exists()
    assert counters["faults.server_error"] > 0 and counters["faults.reset"] > 0
    record_fault(
        f"download, {-(-len(data) // (32 * KIB))} chunks (concurrency {concurrency}), 10 % 5xx + 5 % resets",
        faults=injected_faults(counters),
        operations=f"1 download of {len(data):,} bytes",
        bytes_lost=bytes_lost(data, got),
        duplicate_runs=runs_created(counters),
        outcome="completed, byte-identical",
        counters=counters,
    )


def test_hook_upload_and_import_through_5xx_resets_and_drops(
    app: EmulatorApp,
    engine: Engine,
    server: Server,
    clock: FakeClock,
    ticking: TickingSleep,
    record_fault: RecordFault,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Airflow path (hook.run, a fresh event loop per call): faults on every route, the import started once."""
    conn = {"conn_type": "anaplan", "login": DEFAULT_USER_EMAIL, "password": DEFAULT_USER_PASSWORD}
    conn["extra"] = {"base_url": server.url, "workspace_id": WORKSPACE, "model_id": MODEL}  # type: ignore[assignment]
    monkeypatch.setenv("AIRFLOW_CONN_ANAPLAN_FAULTS", json.dumps(conn))
    hook = AnaplanHook(
        "anaplan_faults", clock=clock, sleep=ticking, backoff_base=0.01, backoff_cap=0.05, max_attempts=8
    )
    data = sales_csv(8_000)
    app.faults.configure(rate_5xx=0.10, rate_reset=0.05, rate_drop=0.05)
    app.faults.reseed(7)
    outcomes = [
        hook.run(
            lambda c: c.upload_and_import(
                MODEL, SALES_IMPORT, data, chunk_size=16 * KIB, concurrency=1, poll_interval=1
            )
        )
        for _ in range(3)
    ]
    counters = dict(app.state.counters)
    assert all(o.status is OutcomeStatus.SUCCESS for o in outcomes)
    tasks = tasks_of(engine, SALES_IMPORT)
    assert sorted(t.id for t in tasks) == sorted(o.task_id for o in outcomes)  # one task per run, none twice
    assert stored(engine) == data
    assert sum(counters[k] for k in ("faults.server_error", "faults.reset", "faults.drop")) > 0
    record_fault(
        "hook: 3 x upload_and_import, 10 % 5xx + 5 % resets + 5 % dropped responses",
        faults=injected_faults(counters),
        operations=f"3 uploads of {len(data):,} bytes + 3 imports",
        bytes_lost=bytes_lost(data, stored(engine)),
        duplicate_runs=len(tasks) - len(outcomes),
        outcome="completed; 3 import tasks for 3 runs",
        counters=counters,
    )


# --------------------------------------------------------------------------------------------------- 429 storm
@pytest.mark.asyncio
async def test_a_429_storm_completes_and_every_wait_honours_retry_after(
    app: EmulatorApp,
    engine: Engine,
    server: Server,
    clock: FakeClock,
    ticking: TickingSleep,
    record_fault: RecordFault,
) -> None:
    retry_after, poll = 3, 0.5
    app.faults.configure(rate_429=0.5, retry_after=retry_after)
    app.faults.reseed(429)
    data = sales_csv(2_000)
    started = time.monotonic()
    async with client_for(settings_for(server.url, clock, ticking, max_attempts=12)) as client:
        workspaces = await client.list_workspaces()
        models = await client.list_models(WORKSPACE)
        await client.upload_file(MODEL, SALES_FILE, data, chunk_size=16 * KIB, concurrency=1)
        outcome = await client.run_action(MODEL, SALES_IMPORT, poll_interval=poll)
        with io.BytesIO() as sink:
            await client.download_file(MODEL, SALES_FILE, sink)
            downloaded = sink.getvalue()
    elapsed = time.monotonic() - started
    counters = dict(app.state.counters)
    storms = counters["faults.rate_limit"]
    assert workspaces and models and outcome.status is OutcomeStatus.SUCCESS and downloaded == data
    assert storms >= 10
    # Every wait after a 429 is exactly what Retry-After asked; the only other waits are the task polls.
    assert set(ticking.delays) <= {float(retry_after), poll}
    assert ticking.delays.count(float(retry_after)) == storms
    assert ticking.total == pytest.approx(storms * retry_after + ticking.delays.count(poll) * poll)
    assert elapsed < 10  # bounded: no real sleeping, no runaway retries
    assert len(tasks_of(engine, SALES_IMPORT)) == 1
    record_fault(
        f"429 storm (50 % of requests, Retry-After: {retry_after})",
        faults=injected_faults(counters),
        operations="5 operations (list x2, upload, import, download)",
        bytes_lost=bytes_lost(data, downloaded),
        duplicate_runs=runs_created(counters) - 1,
        outcome=f"completed; {storms} waits of exactly {retry_after} s",
        counters=counters,
    )


@pytest.mark.asyncio
async def test_a_retry_after_beyond_the_budget_fails_at_once_instead_of_sleeping(
    app: EmulatorApp, server: Server, clock: FakeClock, ticking: TickingSleep, record_fault: RecordFault
) -> None:
    app.faults.add_rule("rate_limit", method="GET", path=r"/workspaces$", retry_after=3600)
    async with client_for(settings_for(server.url, clock, ticking, max_retry_time=300.0)) as client:
        with pytest.raises(RateLimitedError, match=r"max_retry_time \(300 s\)") as caught:
            await client.list_workspaces()
    assert caught.value.status == 429
    assert ticking.delays == []  # it gave up instead of waiting an hour
    counters = dict(app.state.counters)
    record_fault(
        "429 with Retry-After: 3600 (over max_retry_time 300 s)",
        faults=injected_faults(counters),
        operations="0 (the call fails at once)",
        bytes_lost=0,
        duplicate_runs=0,
        outcome="RateLimitedError without waiting",
        counters=counters,
    )


# --------------------------------------------------------------------------------------------------- token expiry
async def _set_token_ttl(server: Server, seconds: float) -> None:
    async with httpx.AsyncClient() as admin:
        answer = await admin.put(f"{server.url}/__emulator/token-ttl", json={"token_ttl": seconds})
        assert answer.json() == {"token_ttl": seconds}


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["server-side expiry (401)", "client-side refresh"])
async def test_the_token_expires_in_the_middle_of_an_upload(
    mode: str, plug: Callable[[EmulatorApp], Server], ticking: TickingSleep, record_fault: RecordFault
) -> None:
    """TTL 60 s; after the 4th chunk 61 s pass on the emulator's clock. Either only the emulator knows (its clock moves,
    the client's does not: the next chunk gets a 401) or both do (the client renews before sending)."""
    server_clock = FakeClock(start=float(int(time.time())))
    client_clock = FakeClock(start=server_clock.now) if mode.startswith("server") else server_clock
    shift = 61.0 if mode.startswith("server") else 45.0  # 45 s: past the refresh point (half of 60 s), not expired
    app = create_app(clock=server_clock)
    server = plug(app)
    await _set_token_ttl(server, 60)
    puts = 0

    def after(request: httpx.Request, response: httpx.Response) -> None:
        nonlocal puts
        if request.method == "PUT" and "/chunks/" in request.url.path and response.status_code == 204:
            puts += 1
            if puts == 4:
                server_clock.advance(shift)

    data = sales_csv(12_000)
    async with client_for(settings_for(server.url, client_clock, ticking, transport=Tap(after))) as client:
        await client.upload_file(MODEL, SALES_FILE, data, chunk_size=32 * KIB, concurrency=1)
    counters = dict(app.state.counters)
    assert stored(engine_for(app.state)) == data
    assert renewals(counters) == 1
    if mode.startswith("server"):
        assert (counters["auth.authenticate"], counters.get("auth.unauthorized", 0)) == (2, 1)
    else:
        assert (counters["auth.authenticate"], counters.get("auth.refresh", 0)) == (1, 1)
        assert counters.get("auth.unauthorized", 0) == 0
    record_fault(
        f"token expires mid-upload, {mode}",
        faults=injected_faults(counters, **{"expired tokens": 1}),
        operations=f"1 upload of {len(data):,} bytes ({puts} chunks)",
        bytes_lost=bytes_lost(data, stored(engine_for(app.state))),
        duplicate_runs=runs_created(counters),
        outcome="completed; exactly 1 re-authentication" if mode.startswith("server") else "completed; 1 refresh",
        counters=counters,
    )


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["server-side expiry (401)", "client-side refresh"])
async def test_the_token_expires_while_a_task_is_polled(
    mode: str, plug: Callable[[EmulatorApp], Server], record_fault: RecordFault
) -> None:
    server_clock = FakeClock(start=float(int(time.time())))
    client_clock = FakeClock(start=server_clock.now) if mode.startswith("server") else server_clock
    app = create_app(clock=server_clock)
    engine = engine_for(app.state)
    # Server-side: a 100 s export outlives one 60 s token. Client-side: a 50 s export, refreshed once at 30 s.
    engine.options.task_duration = 100.0 if mode.startswith("server") else 50.0
    server = plug(app)
    await _set_token_ttl(server, 60)
    sleep = TickingSleep(server_clock)  # polling moves the emulator's clock (and the client's when they share one)
    async with client_for(settings_for(server.url, client_clock, sleep)) as client:
        outcome = await client.run_action(MODEL, SALES_EXPORT, poll_interval=5)
    counters = dict(app.state.counters)
    assert outcome.status is OutcomeStatus.SUCCESS
    assert len(tasks_of(engine, SALES_EXPORT)) == 1
    assert renewals(counters) == 1
    if mode.startswith("server"):
        assert counters.get("auth.unauthorized", 0) == 1
    else:
        assert counters.get("auth.refresh", 0) == 1 and counters.get("auth.unauthorized", 0) == 0
    record_fault(
        f"token expires while polling a {engine.options.task_duration:g} s task, {mode}",
        faults=injected_faults(counters, **{"expired tokens": 1}),
        operations=f"1 export run, {len(sleep.delays)} polls",
        bytes_lost=0,
        duplicate_runs=runs_created(counters) - 1,
        outcome="completed; exactly 1 re-authentication" if mode.startswith("server") else "completed; 1 refresh",
        counters=counters,
    )


# --------------------------------------------------------------------------------------------------- lost starts
FAULTY = ("faults.drop", "faults.reset", "faults.server_error")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("fault", "rule", "started"),
    [
        ("response to POST …/tasks dropped (task started)", {"fault": "drop"}, True),
        ("connection reset before POST …/tasks was handled", {"fault": "reset"}, False),
        ("503 to POST …/tasks (nothing started)", {"fault": "server_error", "status": 503}, False),
    ],
)
async def test_a_lost_start_leaves_exactly_one_task(
    fault: str,
    rule: dict[str, Any],
    started: bool,
    app: EmulatorApp,
    engine: Engine,
    server: Server,
    clock: FakeClock,
    ticking: TickingSleep,
    record_fault: RecordFault,
) -> None:
    app.faults.add_rule(method="POST", path=r"/tasks$", count=1, **rule)
    async with client_for(settings_for(server.url, clock, ticking)) as client:
        outcome = await client.run_action(MODEL, PRODUCTS_IMPORT, workspace_id=WORKSPACE, poll_interval=0.5)
    counters = dict(app.state.counters)
    (task,) = tasks_of(engine, PRODUCTS_IMPORT)
    assert outcome.ok and task.id == outcome.task_id
    assert counters["tasks.create.imports"] == 1
    # A started task is adopted (never POSTed again); one that certainly did not start is started once more.
    assert sum(1 for k in FAULTY if counters.get(k)) == 1
    record_fault(
        fault,
        faults=injected_faults(counters),
        operations="1 import run",
        bytes_lost=0,
        duplicate_runs=counters["tasks.create.imports"] - 1,
        outcome="adopted the started task" if started else "nothing had started; started once",
        counters=counters,
    )


# --------------------------------------------------------------------------------------------------- restarts
@pytest.mark.asyncio
async def test_an_emulator_restart_that_forgets_the_polled_task_is_a_clear_error(
    clock: FakeClock, serve: ServerFactory, ticking: TickingSleep, record_fault: RecordFault
) -> None:
    first = create_app(clock=clock)
    engine_for(first.state).options.task_duration = 100.0
    server = serve(first)
    started_at = time.monotonic()
    async with client_for(settings_for(server.url, clock, ticking, max_attempts=4)) as client:
        running = await client.run_action(MODEL, SALES_EXPORT, wait=False)
        server.stop()
        second = create_app(clock=clock)  # the restarted emulator: a fresh tenant, no tasks, no tokens
        serve(second, port=server.port)
        with pytest.raises(NotFoundError) as caught:
            await client.wait_for_task(MODEL, SALES_EXPORT, running.task_id, poll_interval=5)
    message = str(caught.value)
    assert caught.value.status == 404 and running.task_id in message and "404" in message
    assert time.monotonic() - started_at < 10
    counters = dict(second.state.counters)
    assert counters.get("auth.unauthorized", 0) == 1 and counters["auth.authenticate"] == 1  # the old token, refused
    record_fault(
        "emulator restarts and forgets the task being polled",
        faults=injected_faults(counters, **{"restart": 1}),
        operations="1 export started; the wait ends",
        bytes_lost=0,
        duplicate_runs=runs_created(counters),
        outcome="NotFoundError (HTTP 404) naming the task, at the first poll",
        counters=counters,
    )


@pytest.mark.asyncio
async def test_an_emulator_that_stays_down_while_a_task_is_polled_is_a_clear_error(
    app: EmulatorApp, serve: ServerFactory, clock: FakeClock, ticking: TickingSleep, record_fault: RecordFault
) -> None:
    server = serve(app)
    engine_for(app.state).options.task_duration = 100.0
    async with client_for(settings_for(server.url, clock, ticking, max_attempts=4)) as client:
        running = await client.run_action(MODEL, SALES_EXPORT, wait=False)
        server.stop()
        with pytest.raises(TransportError, match="connection failed before the request was sent") as caught:
            await client.wait_for_task(MODEL, SALES_EXPORT, running.task_id, poll_interval=5)
    assert "gave up after 4 attempt(s)" in str(caught.value)
    assert len(ticking.delays) == 3  # three retry waits, then the error: bounded
    record_fault(
        "emulator goes away while a task is polled",
        faults={"server down": 1},
        operations="1 export started; the wait ends",
        bytes_lost=0,
        duplicate_runs=0,
        outcome="TransportError after 4 attempts",
    )


# --------------------------------------------------------------------------------------------------- task endings
async def _login(url: str, email: str, password: str) -> str:
    async with httpx.AsyncClient() as other:
        answer = await other.post(f"{url}/token/authenticate", auth=(email, password))
        return answer.json()["tokenInfo"]["tokenValue"]


@pytest.mark.asyncio
async def test_a_task_cancelled_from_outside_ends_the_wait_as_cancelled(
    app: EmulatorApp,
    engine: Engine,
    server: Server,
    clock: FakeClock,
    ticking: TickingSleep,
    record_fault: RecordFault,
) -> None:
    engine.options.task_duration = 30.0
    token = await _login(server.url, *SECOND_USER)

    async def someone_cancels() -> None:
        for task in tasks_of(engine, NIGHTLY_LOAD):
            if task.state == "IN_PROGRESS":
                async with httpx.AsyncClient(headers={"Authorization": f"AnaplanAuthToken {token}"}) as other:
                    path = f"/2/0/models/{MODEL}/processes/{NIGHTLY_LOAD}/tasks/{task.id}"
                    assert (await other.delete(server.url + path)).status_code == 200

    ticking.hooks.append(someone_cancels)
    async with client_for(settings_for(server.url, clock, ticking)) as client:
        with pytest.raises(TaskCancelledError, match="cancelled") as caught:
            await client.run_action(MODEL, "Nightly Load", poll_interval=5)
    counters = dict(app.state.counters)
    (task,) = tasks_of(engine, NIGHTLY_LOAD)
    assert task.state == "CANCELLED" and counters["tasks.cancel"] == 1
    assert "process 118000000000" in str(caught.value)
    record_fault(
        "task cancelled from outside (another user's DELETE)",
        faults=injected_faults(counters, **{"external cancel": 1}),
        operations="1 process run, ended CANCELLED",
        bytes_lost=0,
        duplicate_runs=runs_created(counters) - 1,
        outcome="TaskCancelledError naming the process",
        counters=counters,
    )


@pytest.mark.asyncio
async def test_a_task_queued_behind_another_action_waits_and_completes(
    app: EmulatorApp,
    engine: Engine,
    server: Server,
    clock: FakeClock,
    ticking: TickingSleep,
    record_fault: RecordFault,
) -> None:
    engine.options.task_duration = 20.0
    token = await _login(server.url, *SECOND_USER)
    async with httpx.AsyncClient(headers={"Authorization": f"AnaplanAuthToken {token}"}) as other:
        path = f"/2/0/workspaces/{WORKSPACE}/models/{MODEL}/imports/{PRODUCTS_IMPORT}/tasks"
        answer = await other.post(server.url + path, json={"localeName": "en_US"})
        assert answer.status_code == 200
    async with client_for(settings_for(server.url, clock, ticking)) as client:
        outcome = await client.run_action(MODEL, SALES_EXPORT, poll_interval=5)
    (blocker,) = tasks_of(engine, PRODUCTS_IMPORT)
    (export,) = tasks_of(engine, SALES_EXPORT)
    assert outcome.status is OutcomeStatus.SUCCESS and outcome.task_id == export.id
    assert export.created < blocker.end <= export.start  # it was queued, then ran once the model was free
    counters = dict(app.state.counters)
    record_fault(
        "model busy with another action (task queued NOT_STARTED)",
        faults=injected_faults(counters, **{"blocking action": 1}),
        operations="1 export run (waited 20 s for the model)",
        bytes_lost=0,
        duplicate_runs=len(tasks_of(engine, SALES_EXPORT)) - 1,
        outcome="completed after the blocker",
        counters=counters,
    )


@pytest.mark.asyncio
async def test_a_dump_that_expired_is_a_not_found_error_that_says_what_to_do(
    app: EmulatorApp,
    engine: Engine,
    server: Server,
    clock: FakeClock,
    ticking: TickingSleep,
    record_fault: RecordFault,
) -> None:
    bad_rows = SALES_HEADER + "North,Laptop,Mar 26,10,12000\nSouth,Monitor,Mar 26,ten,2000\n"
    async with client_for(settings_for(server.url, clock, ticking)) as client:
        outcome = await client.upload_and_import(MODEL, SALES_IMPORT, bad_rows, poll_interval=1)
        assert outcome.status is OutcomeStatus.PARTIAL_SUCCESS and outcome.failure_dump_available
        with io.BytesIO() as sink:
            await client.get_failure_dump(MODEL, SALES_IMPORT, outcome.task_id, sink)
            assert b"ten" in sink.getvalue()
        clock.advance(engine.options.dump_ttl + 1)
        with pytest.raises(NotFoundError, match="48 h") as caught:
            await client.get_failure_dump(MODEL, SALES_IMPORT, outcome.task_id, io.BytesIO())
    assert caught.value.status == 404 and "Run the action again" in str(caught.value)
    counters = dict(app.state.counters)
    record_fault(
        "failure dump expired (48 h after last read)",
        faults=injected_faults(counters, **{"expired dump": 1}),
        operations="1 import (partial), 1 dump read",
        bytes_lost=0,
        duplicate_runs=runs_created(counters) - 1,
        outcome="NotFoundError: dump gone, run the action again",
        counters=counters,
    )


def test_the_hook_turns_a_fault_it_cannot_survive_into_an_airflow_error(
    app: EmulatorApp, server: Server, clock: FakeClock, ticking: TickingSleep, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = {"conn_type": "anaplan", "login": DEFAULT_USER_EMAIL, "password": DEFAULT_USER_PASSWORD}
    conn["extra"] = {"base_url": server.url}  # type: ignore[assignment]
    monkeypatch.setenv("AIRFLOW_CONN_ANAPLAN_STORM", json.dumps(conn))
    app.faults.add_rule("server_error", path=r"/workspaces$", count=10, status=503)
    hook = AnaplanHook("anaplan_storm", clock=clock, sleep=ticking, max_attempts=3, backoff_base=0.01)
    with pytest.raises(exceptions.ServerError, match="gave up after 3 attempt") as caught:
        hook.list_workspaces()
    assert caught.value.status == 503 and len(ticking.delays) == 2
    asyncio.run(asyncio.sleep(0))  # the hook's loops are closed; nothing is left running
