"""Running actions against the emulator: imports with rejected rows and their dumps, processes with a failing step,
exports downloaded, cancel, reattach, reconciling a start whose answer was lost, timeouts, and the verdict itself."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from airflow_provider_anaplan.client import (
    AnaplanClient,
    AnaplanTimeoutError,
    BasicAuth,
    ClientSettings,
    ConflictError,
    InvalidInputError,
    NameNotFoundError,
    NotFoundError,
    OutcomeStatus,
    ServerError,
    TaskCancelledError,
    TaskFailedError,
    TaskInfo,
    TaskState,
    TransportError,
    evaluate_task,
)
from airflow_provider_anaplan.emulator import EmulatorApp, create_app
from airflow_provider_anaplan.emulator.engine import Engine, engine_for
from tests.emulator.conftest import FakeClock, LiveServer

from .conftest import BASE, FAST_RETRIES
from .test_files import MODEL, SALES_EXPORT, SALES_FILE, WORKSPACE, Recorder, TickingSleep, with_bulk_routes

PRODUCTS_IMPORT, EMPLOYEES_IMPORT, SALES_IMPORT, VERSIONS_IMPORT = (
    "112000000002",
    "112000000000",
    "112000000001",
    "112000000003",
)
EMPLOYEES_FILE = "113000000000"
EMPLOYEES_EXPORT = "116000000001"
NIGHTLY_LOAD = "118000000000"
DELETE_CLOSED, SORT_PRODUCTS, OPTIMIZE = "117000000000", "117000000001", "117000000002"
POLL = 0.25  # with TickingSleep, polling moves the fake clock: a 1 s task finishes in four polls

SALES_WITH_BAD_ROWS = (
    "Region,Product,Month,Units,Revenue\n"
    "North,Laptop,Mar 26,10,12000\n"
    "South,Monitor,Mar 26,ten,2000\n"  # bad number
    "East,Hoverboard,Mar 26,1,100\n"  # unknown product
    "West,Support Plan,Mar 26,5,1000\n"
    ",Laptop,Apr 26,1,1\n"  # missing key
    ",,,,\n"  # blank: ignored
    'North,"Analytics Suite",Apr 26,2,"6,000"\n'
)


@pytest.fixture
def app(clock: FakeClock) -> EmulatorApp:
    return with_bulk_routes(create_app(clock=clock))


@pytest.fixture
def engine(app: EmulatorApp) -> Engine:
    return engine_for(app.state)


@pytest.fixture
def ticking(clock: FakeClock) -> TickingSleep:
    return TickingSleep(clock)


@pytest.fixture
def recorder(app: EmulatorApp) -> Recorder:
    return Recorder(httpx.ASGITransport(app=app))


def client_settings(transport: httpx.AsyncBaseTransport, clock: FakeClock, sleep: TickingSleep) -> ClientSettings:
    return ClientSettings(base_url=BASE, transport=transport, clock=clock, sleep=sleep, **FAST_RETRIES)


@pytest_asyncio.fixture
async def client(
    recorder: Recorder, clock: FakeClock, ticking: TickingSleep, basic_auth: BasicAuth
) -> AsyncIterator[AnaplanClient]:
    async with AnaplanClient(basic_auth, settings=client_settings(recorder, clock, ticking)) as c:
        yield c


def tasks_of(engine: Engine, object_id: str) -> list[Any]:
    return [t for t in engine.tasks.get(MODEL, {}).values() if t.object_id == object_id]


def dump_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode())))


# ---------------------------------------------------------------------------------------------------- running
@pytest.mark.asyncio
async def test_run_an_import_to_success(client: AnaplanClient, ticking: TickingSleep, engine: Engine) -> None:
    outcome = await client.run_action(MODEL, PRODUCTS_IMPORT, workspace_id=WORKSPACE, poll_interval=POLL)
    assert outcome.status is OutcomeStatus.SUCCESS and outcome.ok and outcome.done
    assert outcome.task.task_state == TaskState.COMPLETE
    assert outcome.counts["successRowCount"] == 2
    assert outcome.failed_rows == 0 and not outcome.failure_dump_available
    assert "completed successfully" in outcome.message
    assert set(ticking.delays) == {POLL}
    (task,) = tasks_of(engine, PRODUCTS_IMPORT)
    assert task.id == outcome.task_id
    assert task.locale == "en_US"
    listed = await client.list_tasks(MODEL, PRODUCTS_IMPORT)
    assert [t.task_id for t in listed] == [outcome.task_id]
    status = await client.get_task(MODEL, "Products from Products.csv", outcome.task_id)
    assert status.result is not None and status.result.successful is True


@pytest.mark.asyncio
async def test_actions_by_name_of_every_kind(client: AnaplanClient, engine: Engine, tmp_path: Path) -> None:
    sort = await client.run_action(MODEL, "Sort Products", poll_interval=POLL)
    assert sort.ok and sort.action_id == SORT_PRODUCTS and sort.action_name == "Sort Products"
    deleted = await client.run_action(MODEL, "Delete Closed Employees", kind="action", poll_interval=POLL)
    assert deleted.ok
    assert "E004" not in engine.data[MODEL].lists["Employees"].items
    export = await client.run_action(MODEL, "Sales Report.csv", kind="exports", poll_interval=POLL)
    assert export.counts["rowCount"] >= 1
    model_import = await client.run_action("Sales Forecast", VERSIONS_IMPORT, poll_interval=POLL)
    assert model_import.ok


@pytest.mark.asyncio
async def test_an_unknown_action_name_lists_close_matches(client: AnaplanClient) -> None:
    with pytest.raises(NameNotFoundError, match="Sort Products"):
        await client.run_action(MODEL, "Sort Product")
    with pytest.raises(NameNotFoundError, match="No export named 'Sort Products'"):
        await client.run_action(MODEL, "Sort Products", kind="export")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.run_action(MODEL, SALES_EXPORT, kind="import"), "is an export id, not an import id"),
        (lambda c: c.run_action(MODEL, SALES_FILE), "is a file id: run_action takes the id of an import"),
        (lambda c: c.run_action(MODEL, "101000000000"), "list id"),
        (lambda c: c.upload_and_import(MODEL, SALES_EXPORT, b"x"), "is an export id, not an import id"),
        (lambda c: c.upload_and_import(MODEL, NIGHTLY_LOAD, b"x"), "is a process id, not an import id"),
        (lambda c: c.export_and_download(MODEL, SALES_IMPORT, "/tmp/x"), "is an import id, not an export id"),
        (lambda c: c.get_failure_dump(MODEL, SALES_EXPORT, "A" * 32, "/tmp/x"), "get_failure_dump takes the id of"),
        (lambda c: c.get_solution_log(MODEL, SALES_IMPORT, "A" * 32), "is an import id, not an action id"),
        (lambda c: c.get_task(MODEL, SALES_IMPORT, "not-a-task"), "task id"),
        (lambda c: c.run_action(MODEL, SALES_IMPORT, kind="widget"), "kind must be"),
        (lambda c: c.run_action(MODEL, SALES_EXPORT, mapping_parameters={"Version": 3}), "entity name"),
        (lambda c: c.run_action(MODEL, SALES_IMPORT, poll_interval=0), "poll_interval"),
        (lambda c: c.run_action(MODEL, SALES_IMPORT, timeout=-1), "timeout"),
    ],
)
async def test_wrong_ids_and_options_fail_before_any_call(
    client: AnaplanClient, recorder: Recorder, call: Callable[[AnaplanClient], Any], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        result = await call(client)
        if isinstance(result, AsyncIterator):
            await anext(result)
    assert not recorder.calls()


@pytest.mark.asyncio
async def test_mapping_parameters_are_sent(client: AnaplanClient, engine: Engine) -> None:
    outcome = await client.run_action(
        MODEL, SALES_IMPORT, mapping_parameters={"Version": "Actual"}, wait=False, poll_interval=POLL
    )
    assert outcome.status is OutcomeStatus.RUNNING and not outcome.done
    (task,) = tasks_of(engine, SALES_IMPORT)
    assert task.mapping_parameters == [{"entityType": "Version", "entityName": "Actual"}]
    with pytest.raises(InvalidInputError, match="apply to imports and processes"):
        await client.run_action(MODEL, SALES_EXPORT, mapping_parameters=[("Version", "Actual")])


@pytest.mark.asyncio
async def test_queued_actions_wait_for_the_model(client: AnaplanClient, engine: Engine) -> None:
    first, second = await asyncio.gather(
        client.run_action(MODEL, PRODUCTS_IMPORT, poll_interval=POLL),
        client.run_action(MODEL, SALES_EXPORT, poll_interval=POLL),
    )
    assert first.ok and second.ok
    exported = tasks_of(engine, SALES_EXPORT)[0]
    assert exported.start >= tasks_of(engine, PRODUCTS_IMPORT)[0].end


# ---------------------------------------------------------------------------------------------------- imports, dumps
@pytest.mark.asyncio
async def test_import_with_bad_rows_gives_counts_and_a_matching_dump(
    client: AnaplanClient, engine: Engine, tmp_path: Path
) -> None:
    engine.options.dump_chunk_bytes = 50  # the dump comes back in several chunks
    outcome = await client.upload_and_import(MODEL, SALES_IMPORT, SALES_WITH_BAD_ROWS, poll_interval=POLL)
    assert outcome.status is OutcomeStatus.PARTIAL_SUCCESS and outcome.ok
    assert outcome.counts["successRowCount"] == 3
    assert outcome.counts["totalRowCount"] == 7
    assert (outcome.failed_rows, outcome.ignored_rows) == (3, 1)
    assert outcome.failure_dump_available
    assert "3 row(s) rejected and 1 ignored" in outcome.message
    assert "get_failure_dump" in outcome.message

    target = tmp_path / "dump.csv"
    written = await client.get_failure_dump(MODEL, SALES_IMPORT, outcome.task_id, target)
    rows = dump_rows(target.read_bytes())
    assert written == target.stat().st_size
    assert rows[0] == ["_Status_", "Region", "Product", "Month", "Units", "Revenue", "_Line_", "_Error_1_"]
    assert [row[:6] for row in rows[1:]] == [
        ["E", "South", "Monitor", "Mar 26", "ten", "2000"],
        ["E", "East", "Hoverboard", "Mar 26", "1", "100"],
        ["E", "", "Laptop", "Apr 26", "1", "1"],
    ]
    assert [row[6] for row in rows[1:]] == ["3", "4", "6"]
    streamed = b"".join(
        [c async for c in client.stream_failure_dump(MODEL, "Sales Actuals from Sales Actuals.csv", outcome.task_id)]
    )
    assert streamed == target.read_bytes()
    assert len(dump_rows(streamed)) == 1 + outcome.failed_rows


@pytest.mark.asyncio
async def test_rejected_rows_can_fail_the_run(client: AnaplanClient) -> None:
    with pytest.raises(TaskFailedError, match="rejected") as caught:
        await client.upload_and_import(
            MODEL, SALES_IMPORT, SALES_WITH_BAD_ROWS, poll_interval=POLL, fail_on_rejected_rows=True
        )
    assert caught.value.outcome.status is OutcomeStatus.PARTIAL_SUCCESS  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_an_import_that_rejects_every_row_fails_and_points_at_its_dump(client: AnaplanClient) -> None:
    with pytest.raises(TaskFailedError) as caught:
        await client.upload_and_import(
            MODEL,
            "Employees from Employees.csv",
            "Code,Name,Parent,Start Date,Salary\nE9,X,Mars,,1\n",
            poll_interval=POLL,
        )
    error = caught.value
    assert not isinstance(error, TaskCancelledError)
    outcome = error.outcome  # type: ignore[attr-defined]
    assert outcome.status is OutcomeStatus.FAILED and outcome.failed_rows == 1
    assert "get_failure_dump" in str(error) and "1 failed" in str(error)
    dump = b"".join([c async for c in await client.get_failure_dump(MODEL, EMPLOYEES_IMPORT, outcome.task_id)])
    assert "Parent not found in Regions: Mars" in dump.decode()


@pytest.mark.asyncio
async def test_an_import_without_content_fails_with_anaplans_reason(client: AnaplanClient) -> None:
    await client.delete_file(MODEL, SALES_FILE)
    with pytest.raises(TaskFailedError, match="no content") as caught:
        await client.run_action(MODEL, SALES_IMPORT, poll_interval=POLL)
    assert "get_failure_dump" not in str(caught.value)


@pytest.mark.asyncio
async def test_a_dump_that_expired(client: AnaplanClient) -> None:
    bad = await client.upload_and_import(MODEL, SALES_IMPORT, SALES_WITH_BAD_ROWS, poll_interval=POLL)
    clean = await client.upload_and_import(
        MODEL, SALES_IMPORT, "Region,Product,Month,Units,Revenue\nNorth,Laptop,May 26,1,1\n", poll_interval=POLL
    )
    assert clean.status is OutcomeStatus.SUCCESS
    with pytest.raises(NotFoundError, match="48 h") as caught:
        await client.get_failure_dump(MODEL, SALES_IMPORT, bad.task_id, io.BytesIO())
    assert caught.value.status == 404
    with pytest.raises(NotFoundError, match="Run the action again"):
        await client.get_failure_dump(MODEL, SALES_IMPORT, clean.task_id, io.BytesIO())


# ---------------------------------------------------------------------------------------------------- processes
@pytest.mark.asyncio
async def test_a_process_with_a_failing_step_names_it_and_fetches_its_dump(client: AnaplanClient) -> None:
    await client.upload_file(MODEL, EMPLOYEES_FILE, b"Code,Name,Parent,Start Date,Salary\nE020,Nobody,Atlantis,,1\n")
    with pytest.raises(TaskFailedError) as caught:
        await client.run_action(MODEL, "Nightly Load", poll_interval=POLL)
    message = str(caught.value)
    assert "process 118000000000 'Nightly Load' failed at step 2, import 112000000000" in message
    assert "object_id='112000000000'" in message
    outcome = caught.value.outcome  # type: ignore[attr-defined]
    assert [s.object_id for s in outcome.steps] == [PRODUCTS_IMPORT, EMPLOYEES_IMPORT]
    assert [s.status for s in outcome.steps] == [OutcomeStatus.SUCCESS, OutcomeStatus.FAILED]
    assert outcome.failed_step.number == 2 and outcome.failed_step.object_id == EMPLOYEES_IMPORT
    assert [s.object_id for s in outcome.dump_steps] == [EMPLOYEES_IMPORT]

    chosen = b"".join([c async for c in client.stream_failure_dump(MODEL, NIGHTLY_LOAD, outcome.task_id)])
    named = b"".join(
        [c async for c in client.stream_failure_dump(MODEL, NIGHTLY_LOAD, outcome.task_id, object_id=EMPLOYEES_IMPORT)]
    )
    assert chosen == named
    assert dump_rows(chosen)[1][:7] == ["E", "E020", "Nobody", "Atlantis", "", "1", "2"]
    with pytest.raises(NotFoundError, match="step 112000000002"):
        await client.get_failure_dump(MODEL, NIGHTLY_LOAD, outcome.task_id, io.BytesIO(), object_id=PRODUCTS_IMPORT)


@pytest.mark.asyncio
async def test_a_process_that_succeeds_reports_every_step(client: AnaplanClient) -> None:
    outcome = await client.run_action(MODEL, NIGHTLY_LOAD, poll_interval=POLL)
    assert outcome.status is OutcomeStatus.SUCCESS
    assert [s.object_id for s in outcome.steps] == [PRODUCTS_IMPORT, EMPLOYEES_IMPORT, SALES_IMPORT, SALES_EXPORT]
    assert [s.number for s in outcome.steps] == [1, 2, 3, 4]
    with pytest.raises(NotFoundError, match="No step"):
        await client.get_failure_dump(MODEL, NIGHTLY_LOAD, outcome.task_id, io.BytesIO())


# ---------------------------------------------------------------------------------------------------- exports
@pytest.mark.asyncio
async def test_export_and_download_in_several_chunks(
    client: AnaplanClient, engine: Engine, recorder: Recorder, tmp_path: Path
) -> None:
    engine.options.export_chunk_bytes = 40
    target = tmp_path / "report.csv"
    outcome = await client.export_and_download(MODEL, "Sales Report.csv", target, poll_interval=POLL)
    assert outcome.ok and outcome.counts["rowCount"] >= 2
    expected = b"".join(engine.store.iter_chunks(MODEL, SALES_EXPORT))
    assert target.read_bytes() == expected
    assert target.read_bytes().startswith(b"Region,Product,Month,Units,Revenue\n")
    assert len(recorder.calls("GET", f"/files/{SALES_EXPORT}/chunks/")) == -(-len(expected) // 40) > 2


# ---------------------------------------------------------------------------------------------------- cancel
@pytest.mark.asyncio
async def test_cancel_waits_until_cancelled(client: AnaplanClient, engine: Engine, ticking: TickingSleep) -> None:
    engine.options.cancel_duration = 2.0
    started = await client.run_action(MODEL, EMPLOYEES_IMPORT, wait=False)
    outcome = await client.cancel_task(MODEL, EMPLOYEES_IMPORT, started.task_id, poll_interval=0.5)
    assert outcome.status is OutcomeStatus.CANCELLED and not outcome.ok
    assert sum(ticking.delays) >= 2.0
    assert (await client.get_task(MODEL, EMPLOYEES_IMPORT, started.task_id)).task_state == TaskState.CANCELLED
    assert "E005" not in engine.data[MODEL].lists["Employees"].items  # rolled back
    # Cancelling a finished task changes nothing and says what it came to.
    done = await client.run_action(MODEL, PRODUCTS_IMPORT, poll_interval=POLL)
    again = await client.cancel_task(MODEL, PRODUCTS_IMPORT, done.task_id)
    assert again.status is OutcomeStatus.SUCCESS


@pytest.mark.asyncio
async def test_a_cancelled_task_ends_the_wait(client: AnaplanClient, recorder: Recorder) -> None:
    started = await client.run_action(MODEL, SALES_EXPORT, wait=False)
    await client.cancel_task(MODEL, SALES_EXPORT, started.task_id, wait=False)
    with pytest.raises(TaskCancelledError, match="cancelled") as caught:
        await client.wait_for_task(MODEL, SALES_EXPORT, started.task_id, poll_interval=POLL)
    assert isinstance(caught.value, TaskFailedError)


@pytest.mark.asyncio
async def test_a_task_cancelled_by_someone_else_while_waiting(
    client: AnaplanClient, engine: Engine, ticking: TickingSleep
) -> None:
    engine.options.task_duration = 10.0

    def cancel_behind_the_clients_back() -> None:
        for task in tasks_of(engine, NIGHTLY_LOAD):
            engine.cancel(task)

    ticking.hooks.append(cancel_behind_the_clients_back)
    with pytest.raises(TaskCancelledError, match="process 118000000000"):
        await client.run_action(MODEL, NIGHTLY_LOAD, poll_interval=1.0)


@pytest.mark.asyncio
async def test_a_timeout_cancels_the_task(client: AnaplanClient, engine: Engine) -> None:
    engine.options.task_duration = 100.0
    with pytest.raises(AnaplanTimeoutError, match="did not finish within 3 s") as caught:
        await client.run_action(MODEL, SALES_IMPORT, poll_interval=1.0, timeout=3)
    assert "asked to cancel" in str(caught.value)
    (task,) = tasks_of(engine, SALES_IMPORT)
    assert task.state in (TaskState.CANCELLING, TaskState.CANCELLED)
    assert (await client.get_task(MODEL, SALES_IMPORT, task.id)).task_state == TaskState.CANCELLED


# ---------------------------------------------------------------------------------------------------- reattach
@pytest.mark.asyncio
async def test_reattach_to_a_running_task_instead_of_starting_another(
    client: AnaplanClient, engine: Engine, recorder: Recorder
) -> None:
    assert await client.find_running_task(MODEL, SALES_EXPORT) is None
    first = await client.run_action(MODEL, SALES_EXPORT, wait=False)
    running = await client.find_running_task(MODEL, "Sales Report.csv")
    assert running is not None and running.task_id == first.task_id and running.is_active

    outcome = await client.run_action(MODEL, SALES_EXPORT, reattach=True, poll_interval=POLL)
    assert outcome.task_id == first.task_id and outcome.ok
    assert len(tasks_of(engine, SALES_EXPORT)) == 1
    assert len(recorder.calls("POST", "/tasks")) == 1
    assert await client.find_running_task(MODEL, SALES_EXPORT) is None
    # Nothing running: reattach starts a new task.
    second = await client.run_action(MODEL, SALES_EXPORT, reattach=True, wait=False)
    assert second.task_id != first.task_id


@pytest.mark.asyncio
async def test_find_running_task_takes_the_newest(client: AnaplanClient, engine: Engine) -> None:
    older = await client.run_action(MODEL, SALES_EXPORT, wait=False)
    blocker = await client.run_action(MODEL, PRODUCTS_IMPORT, wait=False)
    newer = await client.run_action(MODEL, SALES_EXPORT, wait=False)
    assert blocker.task_id
    found = await client.find_running_task(MODEL, SALES_EXPORT)
    assert found is not None and found.task_id == newer.task_id != older.task_id


# ---------------------------------------------------------------------------------------------------- reconcile
@pytest.mark.asyncio
async def test_a_start_whose_answer_was_lost_is_reconciled_to_exactly_one_task(
    app: EmulatorApp, client: AnaplanClient, engine: Engine, recorder: Recorder
) -> None:
    app.faults.add_rule("drop", method="POST", path=r"/tasks$", count=1)
    outcome = await client.run_action(MODEL, PRODUCTS_IMPORT, poll_interval=POLL)
    assert outcome.ok
    assert app.state.counters["faults.drop"] == 1
    (task,) = tasks_of(engine, PRODUCTS_IMPORT)
    assert task.id == outcome.task_id
    assert len(recorder.calls("POST", "/tasks")) == 1  # never sent again


@pytest.mark.asyncio
async def test_a_start_that_failed_before_anaplan_acted_is_sent_again(
    app: EmulatorApp, client: AnaplanClient, engine: Engine, recorder: Recorder
) -> None:
    app.faults.add_rule("server_error", method="POST", path=r"/tasks$", count=1, status=503)
    outcome = await client.run_action(MODEL, PRODUCTS_IMPORT, poll_interval=POLL)
    assert outcome.ok
    assert len(tasks_of(engine, PRODUCTS_IMPORT)) == 1
    assert len(recorder.calls("POST", "/tasks")) == 2


@pytest.mark.asyncio
async def test_a_start_that_keeps_failing_says_nothing_started(
    app: EmulatorApp, client: AnaplanClient, engine: Engine
) -> None:
    app.faults.add_rule("server_error", method="POST", path=r"/tasks$", count=5, status=500)
    with pytest.raises(ServerError, match="nothing was started, so running it again is safe"):
        await client.run_action(MODEL, PRODUCTS_IMPORT, poll_interval=POLL)
    assert tasks_of(engine, PRODUCTS_IMPORT) == []


class BeforeStart(Recorder):
    """Runs ``hook(request)`` once, just before the first ``POST …/tasks`` reaches the emulator."""

    def __init__(self, inner: httpx.AsyncBaseTransport, hook: Callable[[httpx.Request], Any]) -> None:
        super().__init__(inner)
        self.hook: Callable[[httpx.Request], Any] | None = hook

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.hook is not None and request.method == "POST" and request.url.path.endswith("/tasks"):
            hook, self.hook = self.hook, None
            await hook(request)
        return await super().handle_async_request(request)


@pytest.mark.asyncio
async def test_two_new_tasks_after_a_lost_start_are_not_guessed_between(
    app: EmulatorApp, clock: FakeClock, ticking: TickingSleep, basic_auth: BasicAuth, engine: Engine
) -> None:
    inner = httpx.ASGITransport(app=app)

    async def rival_starts_first(request: httpx.Request) -> None:
        rival = httpx.Request("POST", request.url, headers=request.headers, content=request.content)
        assert (await inner.handle_async_request(rival)).status_code == 200
        app.faults.add_rule("drop", method="POST", path=r"/tasks$", count=1)  # then the client's answer is lost

    transport = BeforeStart(inner, rival_starts_first)
    async with AnaplanClient(basic_auth, settings=client_settings(transport, clock, ticking)) as client:
        with pytest.raises(ConflictError, match="2 tasks of it appeared"):
            await client.run_action(MODEL, PRODUCTS_IMPORT, poll_interval=POLL)
    assert len(tasks_of(engine, PRODUCTS_IMPORT)) == 2


@pytest.mark.asyncio
async def test_a_lost_task_list_during_reconcile_raises_the_original_error(
    app: EmulatorApp, clock: FakeClock, ticking: TickingSleep, basic_auth: BasicAuth
) -> None:
    async def break_things(request: httpx.Request) -> None:
        app.faults.add_rule("drop", method="POST", path=r"/tasks$", count=1)
        app.faults.add_rule("server_error", method="GET", path=r"/tasks$", count=50, status=503)

    transport = BeforeStart(httpx.ASGITransport(app=app), break_things)
    async with AnaplanClient(basic_auth, settings=client_settings(transport, clock, ticking)) as client:
        with pytest.raises(TransportError, match="reconcile"):
            await client.run_action(MODEL, PRODUCTS_IMPORT, poll_interval=POLL)


@pytest.mark.asyncio
async def test_reconcile_over_a_real_socket(
    app: EmulatorApp,
    live_server_factory: Callable[[EmulatorApp], LiveServer],
    clock: FakeClock,
    ticking: TickingSleep,
    basic_auth: BasicAuth,
    engine: Engine,
) -> None:
    server = live_server_factory(app)
    app.faults.add_rule("drop", method="POST", path=r"/tasks$", count=1)
    settings = ClientSettings(base_url=server.url, clock=clock, sleep=ticking, timeout=10.0, **FAST_RETRIES)
    async with AnaplanClient(basic_auth, settings=settings) as client:
        outcome = await client.run_action(MODEL, SALES_EXPORT, workspace_id=WORKSPACE, poll_interval=POLL)
    assert outcome.ok
    assert app.state.counters["faults.drop"] == 1
    assert [t.id for t in tasks_of(engine, SALES_EXPORT)] == [outcome.task_id]


# ---------------------------------------------------------------------------------------------------- optimizer
@pytest.mark.asyncio
async def test_optimizer_solution_log(client: AnaplanClient) -> None:
    outcome = await client.run_action(MODEL, "Optimize Territories", poll_interval=POLL)
    log = await client.get_solution_log(MODEL, OPTIMIZE, outcome.task_id, workspace_id=WORKSPACE)
    assert "Status: OPTIMAL" in log
    with pytest.raises(NotFoundError, match="optimizer action"):
        await client.get_solution_log(MODEL, DELETE_CLOSED, outcome.task_id)


# ---------------------------------------------------------------------------------------------------- the verdict
TASK_ID = "0123456789ABCDEF0123456789ABCDEF"


def task(state: str = "COMPLETE", result: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"taskId": TASK_ID, "taskState": state, **extra}
    if result is not None:
        body["result"] = result
    return body


@pytest.mark.parametrize("state", ["NOT_STARTED", "IN_PROGRESS", "CANCELLING", "SOMETHING_NEW", None])
def test_unfinished_states_are_running(state: str | None) -> None:
    outcome = evaluate_task(task(state, progress=0.5) if state else {"taskId": TASK_ID})
    assert outcome.status is OutcomeStatus.RUNNING and not outcome.done
    assert outcome.raise_for_status() is outcome


def test_cancelled_without_a_result() -> None:
    outcome = evaluate_task(task("CANCELLED", cancelledBy="someone@example.com"), action_id=SALES_IMPORT)
    assert outcome.status is OutcomeStatus.CANCELLED
    assert "someone@example.com" in outcome.message
    with pytest.raises(TaskCancelledError):
        outcome.raise_for_status()


def test_complete_without_a_result() -> None:
    assert evaluate_task(task(currentStep="Complete.")).status is OutcomeStatus.SUCCESS
    assert evaluate_task(task(currentStep="Failed.")).status is OutcomeStatus.FAILED
    assert evaluate_task(task()).status is OutcomeStatus.FAILED


def test_failed_outright_even_if_the_result_says_successful() -> None:
    outcome = evaluate_task(task(currentStep="Failed.", result={"successful": True, "objectId": SALES_IMPORT}))
    assert outcome.status is OutcomeStatus.FAILED


def test_lenient_details() -> None:
    result = {
        "successful": True,
        "objectId": SALES_IMPORT,
        "objectName": "Sales",
        "futureField": {"x": 1},
        "details": [
            {"type": "moduleRowsProcessed", "values": ["successRowCount", 5, "ignoredCount", "2", "note", None, "odd"]},
            {"localMessageText": "second detail", "values": ["successRowCount", "1", "failedCount", "x"]},
        ],
    }
    outcome = evaluate_task(task(result=result))
    assert outcome.counts == {"successRowCount": 6, "ignoredCount": 2}
    assert outcome.status is OutcomeStatus.PARTIAL_SUCCESS  # ignored rows only
    assert outcome.ignored_rows == 2 and outcome.failed_rows == 0
    assert "second detail" in outcome.message
    assert not outcome.failure_dump_available


def test_a_failed_nested_step_fails_a_process_that_claims_success() -> None:
    result = {
        "successful": True,
        "objectId": NIGHTLY_LOAD,
        "nestedResults": [
            {"objectId": PRODUCTS_IMPORT, "successful": True},
            {
                "objectId": EMPLOYEES_IMPORT,
                "successful": False,
                "failureDumpAvailable": True,
                "details": [{"localMessageText": "Employees: 4 failed", "values": ["failedCount", "4"]}],
            },
        ],
    }
    outcome = evaluate_task(TaskInfo.model_validate(task(result=result)))
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.failed_step is not None and outcome.failed_step.number == 2
    assert "failed at step 2, import 112000000000: Employees: 4 failed" in outcome.message
    assert outcome.failed_rows == 4
    with pytest.raises(TaskFailedError, match="object_id='112000000000'"):
        outcome.raise_for_status()


def test_a_process_with_a_dump_on_a_successful_step_is_partial() -> None:
    result = {
        "successful": True,
        "failureDumpAvailable": True,
        "objectId": NIGHTLY_LOAD,
        "nestedResults": [
            {"objectId": PRODUCTS_IMPORT, "successful": True, "failureDumpAvailable": True},
            {"objectId": SALES_EXPORT, "successful": True},
        ],
    }
    outcome = evaluate_task(task(result=result))
    assert outcome.status is OutcomeStatus.PARTIAL_SUCCESS
    assert [s.object_id for s in outcome.dump_steps] == [PRODUCTS_IMPORT]
    with pytest.raises(TaskFailedError):
        outcome.raise_for_status(fail_on_rejected_rows=True)
