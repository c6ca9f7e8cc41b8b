"""Emulator tasks: imports that load data and dump bad rows, exports in chunks, processes, actions, queueing, cancel."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import pytest

from airflow_provider_anaplan.emulator import EmulatorApp, create_app
from airflow_provider_anaplan.emulator.engine import Engine, engine_for

from .conftest import FakeClock, login, token_header
from .test_bulk import MODEL_ONLY, WS_MODEL, assert_matches_spec, upload, with_bulk_routes

DURATION = 10.0
PRODUCTS_IMPORT, EMPLOYEES_IMPORT, SALES_IMPORT, VERSIONS_IMPORT = (
    "112000000002",
    "112000000000",
    "112000000001",
    "112000000003",
)
PRODUCTS_FILE, EMPLOYEES_FILE, SALES_FILE = "113000000002", "113000000000", "113000000001"
SALES_EXPORT, EMPLOYEES_EXPORT = "116000000000", "116000000001"
NIGHTLY_LOAD = "118000000000"
DELETE_CLOSED, SORT_PRODUCTS, OPTIMIZE = "117000000000", "117000000001", "117000000002"
STATUS_PATH = "/workspaces/{workspaceId}/models/{modelId}/{kind}/{id}/tasks/{{taskId}}"
SPEC_TASK = {
    "imports": "/workspaces/{workspaceId}/models/{modelId}/imports/{importId}/tasks",
    "exports": "/workspaces/{workspaceId}/models/{modelId}/exports/{exportId}/tasks",
    "processes": "/workspaces/{workspaceId}/models/{modelId}/processes/{processId}/tasks",
    "actions": "/workspaces/{workspaceId}/models/{modelId}/actions/{actionId}/tasks",
}


@pytest.fixture
def app(clock: FakeClock) -> EmulatorApp:
    app = with_bulk_routes(create_app(clock=clock))
    engine_for(app.state).options.task_duration = DURATION
    return app


@pytest.fixture
def engine(app: EmulatorApp) -> Engine:
    return engine_for(app.state)


async def start(client: httpx.AsyncClient, kind: str, object_id: str, base: str = WS_MODEL, **extra: Any) -> str:
    response = await client.post(f"{base}/{kind}/{object_id}/tasks", json={"localeName": "en_US", **extra})
    assert response.status_code == 200, response.text
    assert_matches_spec(response.json(), SPEC_TASK[kind], "post")
    return response.json()["task"]["taskId"]


async def status(client: httpx.AsyncClient, kind: str, object_id: str, task_id: str, base: str = WS_MODEL) -> Any:
    response = await client.get(f"{base}/{kind}/{object_id}/tasks/{task_id}")
    assert response.status_code == 200, response.text
    assert_matches_spec(response.json(), SPEC_TASK[kind] + "/{taskId}")
    return response.json()["task"]


def counts(detail: dict[str, Any]) -> dict[str, str]:
    values = detail["values"]
    return dict(zip(values[::2], values[1::2], strict=True))


async def download(client: httpx.AsyncClient, file_id: str) -> bytes:
    listing = (await client.get(f"{WS_MODEL}/files/{file_id}/chunks")).json()
    parts = [(await client.get(f"{WS_MODEL}/files/{file_id}/chunks/{c['id']}")).content for c in listing["chunks"]]
    return b"".join(parts)


SALES_WITH_BAD_ROWS = [
    "Region,Product,Month,Units,Revenue\n",
    "North,Laptop,Mar 26,10,12000\n",
    "South,Monitor,Mar 26,ten,2000\n",  # bad number
    "East,Hoverboard,Mar 26,1,100\n",  # unknown product
    "West,Support Plan,Mar 26,5,1000\n",
    ",Laptop,Apr 26,1,1\n",  # missing key
    ",,,,\n",  # blank: ignored
    'North,"Analytics Suite",Apr 26,2,"6,000"\n',
]


# ---------------------------------------------------------------------------------------------------- lifecycle
@pytest.mark.asyncio
@pytest.mark.parametrize("base", [WS_MODEL, MODEL_ONLY])
async def test_task_moves_through_its_states_on_the_clock(
    authed: httpx.AsyncClient, clock: FakeClock, base: str
) -> None:
    task_id = await start(authed, "imports", PRODUCTS_IMPORT, base)
    assert len(task_id) == 32 and task_id == task_id.upper()
    first = await status(authed, "imports", PRODUCTS_IMPORT, task_id, base)
    assert first["taskState"] == "IN_PROGRESS"
    assert first["progress"] == 0.0
    assert "result" not in first
    clock.advance(DURATION / 2)
    half = await status(authed, "imports", PRODUCTS_IMPORT, task_id, base)
    assert half["taskState"] == "IN_PROGRESS" and half["progress"] == 0.5
    clock.advance(DURATION / 2)
    done = await status(authed, "imports", PRODUCTS_IMPORT, task_id, base)
    assert done["taskState"] == "COMPLETE"
    assert done["currentStep"] == "Complete."
    assert done["progress"] == 1.0
    result = done["result"]
    assert result["successful"] is True and result["failureDumpAvailable"] is False
    assert result["objectId"] == PRODUCTS_IMPORT
    assert counts(result["details"][0])["successRowCount"] == "2"


@pytest.mark.asyncio
async def test_task_list(authed: httpx.AsyncClient, clock: FakeClock) -> None:
    empty = await authed.get(f"{WS_MODEL}/exports/{SALES_EXPORT}/tasks")
    assert empty.status_code == 200
    assert "tasks" not in empty.json()
    assert_matches_spec(empty.json(), SPEC_TASK["exports"])
    first = await start(authed, "exports", SALES_EXPORT)
    clock.advance(1)
    second = await start(authed, "exports", SALES_EXPORT)
    await start(authed, "imports", PRODUCTS_IMPORT)  # another action's task is not listed
    listing = (await authed.get(f"{MODEL_ONLY}/exports/{SALES_EXPORT}/tasks")).json()
    assert_matches_spec(listing, SPEC_TASK["exports"])
    assert [t["taskId"] for t in listing["tasks"]] == [first, second]
    assert listing["tasks"][0]["taskState"] == "IN_PROGRESS"
    assert listing["tasks"][1]["taskState"] == "NOT_STARTED"
    assert listing["meta"]["paging"]["totalSize"] == 2
    newest_first = (
        await authed.get(f"{WS_MODEL}/exports/{SALES_EXPORT}/tasks", params={"sort": "-creationDate"})
    ).json()
    assert [t["taskId"] for t in newest_first["tasks"]] == [second, first]
    for kind, object_id in (("imports", PRODUCTS_IMPORT), ("processes", NIGHTLY_LOAD), ("actions", DELETE_CLOSED)):
        await start(authed, kind, object_id)
        assert_matches_spec((await authed.get(f"{WS_MODEL}/{kind}/{object_id}/tasks")).json(), SPEC_TASK[kind])


@pytest.mark.asyncio
async def test_bad_task_requests(authed: httpx.AsyncClient) -> None:
    # An id of the wrong kind for the call, an unknown id, an unknown task.
    assert (
        await authed.post(f"{WS_MODEL}/exports/{SALES_IMPORT}/tasks", json={"localeName": "en_US"})
    ).status_code == 404
    assert (
        await authed.post(f"{WS_MODEL}/imports/112999999999/tasks", json={"localeName": "en_US"})
    ).status_code == 404
    assert (await authed.post(f"{WS_MODEL}/widgets/1/tasks", json={"localeName": "en_US"})).status_code == 404
    assert (await authed.get(f"{WS_MODEL}/imports/{SALES_IMPORT}/tasks/{'A' * 32}")).status_code == 404
    # Bodies: a locale is required; mapping parameters must be entityType/entityName pairs.
    assert (await authed.post(f"{WS_MODEL}/imports/{SALES_IMPORT}/tasks")).status_code == 400
    assert (await authed.post(f"{WS_MODEL}/imports/{SALES_IMPORT}/tasks", json={})).status_code == 400
    bad_mapping = {"localeName": "en_US", "mappingParameters": [{"entityType": "Version"}]}
    assert (await authed.post(f"{WS_MODEL}/imports/{SALES_IMPORT}/tasks", json=bad_mapping)).status_code == 400
    mapping = [{"entityType": "Version", "entityName": "Actual"}]
    await start(authed, "imports", SALES_IMPORT, mappingParameters=mapping)
    # A task id of one action is unknown under another.
    task_id = await start(authed, "exports", SALES_EXPORT)
    assert (await authed.get(f"{WS_MODEL}/exports/116000000001/tasks/{task_id}")).status_code == 404


@pytest.mark.asyncio
async def test_task_routes_need_a_token(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{WS_MODEL}/imports/{SALES_IMPORT}/tasks", json={"localeName": "en_US"})
    assert response.status_code == 401


# ---------------------------------------------------------------------------------------------------- imports
@pytest.mark.asyncio
async def test_import_with_bad_rows_reports_counts_and_a_matching_dump(
    authed: httpx.AsyncClient, clock: FakeClock, engine: Engine
) -> None:
    engine.options.dump_chunk_bytes = 50
    await upload(authed, WS_MODEL, SALES_FILE, [line.encode() for line in SALES_WITH_BAD_ROWS], gzipped=True)
    task_id = await start(authed, "imports", SALES_IMPORT)
    # No dump while the task runs.
    assert (await authed.get(f"{WS_MODEL}/imports/{SALES_IMPORT}/tasks/{task_id}/dump")).status_code == 404
    clock.advance(DURATION)
    result = (await status(authed, "imports", SALES_IMPORT, task_id))["result"]
    assert result["successful"] is True
    assert result["failureDumpAvailable"] is True
    detail = result["details"][0]
    assert detail["type"] == "moduleRowsProcessedWithFailures"
    numbers = counts(detail)
    assert numbers["successRowCount"] == "3"
    assert numbers["failedCount"] == "3"
    assert numbers["ignoredCount"] == "1"
    assert numbers["totalRowCount"] == "7"
    assert "3 failed, 1 ignored" in detail["localMessageText"]

    dump = await authed.get(f"{WS_MODEL}/imports/{SALES_IMPORT}/tasks/{task_id}/dump")
    assert dump.status_code == 200
    assert dump.headers["content-type"].startswith("text/plain")
    rows = list(csv.reader(io.StringIO(dump.text)))
    assert rows[0] == ["_Status_", "Region", "Product", "Month", "Units", "Revenue", "_Line_", "_Error_1_"]
    assert [row[:6] for row in rows[1:]] == [
        ["E", "South", "Monitor", "Mar 26", "ten", "2000"],
        ["E", "East", "Hoverboard", "Mar 26", "1", "100"],
        ["E", "", "Laptop", "Apr 26", "1", "1"],
    ]
    assert [row[6] for row in rows[1:]] == ["3", "4", "6"]
    assert "ten" in rows[1][7] and "Hoverboard" in rows[2][7] and "Regions" in rows[3][7]

    listing = (await authed.get(f"{WS_MODEL}/imports/{SALES_IMPORT}/tasks/{task_id}/dump/chunks")).json()
    assert_matches_spec(
        listing, "/workspaces/{workspaceId}/models/{modelId}/imports/{importId}/tasks/{taskId}/dump/chunks"
    )
    assert len(listing["chunks"]) > 1
    parts = [
        (await authed.get(f"{WS_MODEL}/imports/{SALES_IMPORT}/tasks/{task_id}/dump/chunks/{c['id']}")).content
        for c in listing["chunks"]
    ]
    assert b"".join(parts) == dump.content
    assert (
        await authed.get(f"{WS_MODEL}/imports/{SALES_IMPORT}/tasks/{task_id}/dump/chunks/{len(parts)}")
    ).status_code == 404

    # The good rows really landed in the model: the sales export shows them.
    export_id = await start(authed, "exports", SALES_EXPORT)
    clock.advance(DURATION)
    assert (await status(authed, "exports", SALES_EXPORT, export_id))["taskState"] == "COMPLETE"
    exported = (await download(authed, SALES_EXPORT)).decode()
    assert "North,Laptop,Mar 26,10,12000\n" in exported
    assert "North,Analytics Suite,Apr 26,2,6000\n" in exported
    assert "Hoverboard" not in exported and "ten" not in exported


@pytest.mark.asyncio
async def test_list_import_creates_and_updates_items_and_rejects_unknown_parents(
    authed: httpx.AsyncClient, clock: FakeClock
) -> None:
    content = "Code,Name,Parent,Start Date,Salary\nE001,Ada King,North,,86000\nE010,New Hire,Mars,,1\nE011,Temp,,,abc\n"
    await upload(authed, WS_MODEL, EMPLOYEES_FILE, [content.encode()])
    task_id = await start(authed, "imports", EMPLOYEES_IMPORT)
    clock.advance(DURATION)
    result = (await status(authed, "imports", EMPLOYEES_IMPORT, task_id))["result"]
    numbers = counts(result["details"][0])
    assert result["details"][0]["type"] == "hierarchyRowsProcessedWithFailures"
    assert (numbers["successUpdateCount"], numbers["successCreateCount"], numbers["failedCount"]) == ("1", "0", "2")
    dump = (await authed.get(f"{WS_MODEL}/imports/{EMPLOYEES_IMPORT}/tasks/{task_id}/dump")).text
    assert "Parent not found in Regions: Mars" in dump
    assert "Invalid number for Salary: abc" in dump
    export_id = await start(authed, "exports", EMPLOYEES_EXPORT)
    clock.advance(DURATION)
    await status(authed, "exports", EMPLOYEES_EXPORT, export_id)
    assert "E001,Ada King,North\n" in (await download(authed, EMPLOYEES_EXPORT)).decode()


@pytest.mark.asyncio
async def test_import_reads_the_source_files_separator_and_encoding(
    authed: httpx.AsyncClient, clock: FakeClock
) -> None:
    # Products.csv is tab-separated ISO-8859-1 in the seed.
    content = "Code\tName\tCategory\nP700\tCafé Kit\tServices\n".encode("iso-8859-1")
    await upload(authed, WS_MODEL, PRODUCTS_FILE, [content])
    task_id = await start(authed, "imports", PRODUCTS_IMPORT)
    clock.advance(DURATION)
    result = (await status(authed, "imports", PRODUCTS_IMPORT, task_id))["result"]
    assert counts(result["details"][0])["successCreateCount"] == "1"


@pytest.mark.asyncio
async def test_import_with_a_missing_column_or_no_content_fails(authed: httpx.AsyncClient, clock: FakeClock) -> None:
    await upload(authed, WS_MODEL, SALES_FILE, [b"Region,Product,Month,Units\nNorth,Laptop,Mar 26,1\n"])
    task_id = await start(authed, "imports", SALES_IMPORT)
    clock.advance(DURATION)
    task = await status(authed, "imports", SALES_IMPORT, task_id)
    assert task["taskState"] == "COMPLETE"
    assert task["currentStep"] == "Failed."
    assert task["result"]["successful"] is False
    assert task["result"]["failureDumpAvailable"] is False
    assert "Revenue" in task["result"]["details"][0]["localMessageText"]

    await authed.delete(f"{WS_MODEL}/files/{SALES_FILE}")
    task_id = await start(authed, "imports", SALES_IMPORT)
    clock.advance(DURATION)
    task = await status(authed, "imports", SALES_IMPORT, task_id)
    assert task["result"]["successful"] is False
    assert "no content" in task["result"]["details"][0]["localMessageText"]


@pytest.mark.asyncio
async def test_count_only_imports_count_rows_without_loading_them(
    authed: httpx.AsyncClient, clock: FakeClock, engine: Engine
) -> None:
    engine.options.count_only_imports = True
    before = {k: dict(v) for k, v in engine.data["75A40874E6B64FA3AE0743278996850F"].modules["Sales"].cells.items()}
    rows = b"".join(b"North,Laptop,Mar 26,%d,%d\n" % (i, i) for i in range(5000))
    chunks = [b"Region,Product,Month,Units,Revenue\n" + rows[:40_000], rows[40_000:]]
    await upload(authed, WS_MODEL, SALES_FILE, chunks)
    task_id = await start(authed, "imports", SALES_IMPORT)
    clock.advance(DURATION)
    result = (await status(authed, "imports", SALES_IMPORT, task_id))["result"]
    assert counts(result["details"][0])["successRowCount"] == "5000"
    assert engine.data["75A40874E6B64FA3AE0743278996850F"].modules["Sales"].cells == before


@pytest.mark.asyncio
async def test_model_sourced_import_runs_without_a_file(authed: httpx.AsyncClient, clock: FakeClock) -> None:
    task_id = await start(authed, "imports", VERSIONS_IMPORT)
    clock.advance(DURATION)
    assert (await status(authed, "imports", VERSIONS_IMPORT, task_id))["result"]["successful"] is True


# ---------------------------------------------------------------------------------------------------- dumps
@pytest.mark.asyncio
async def test_a_dump_is_removed_by_the_next_clean_run(authed: httpx.AsyncClient, clock: FakeClock) -> None:
    await upload(authed, WS_MODEL, SALES_FILE, [line.encode() for line in SALES_WITH_BAD_ROWS])
    bad_run = await start(authed, "imports", SALES_IMPORT)
    clock.advance(DURATION)
    assert (await status(authed, "imports", SALES_IMPORT, bad_run))["result"]["failureDumpAvailable"] is True
    assert (await authed.get(f"{WS_MODEL}/imports/{SALES_IMPORT}/tasks/{bad_run}/dump")).status_code == 200

    await upload(authed, WS_MODEL, SALES_FILE, [b"Region,Product,Month,Units,Revenue\nNorth,Laptop,May 26,1,1\n"])
    clean_run = await start(authed, "imports", SALES_IMPORT)
    # Until the clean run completes, the old dump is still there.
    assert (await authed.get(f"{WS_MODEL}/imports/{SALES_IMPORT}/tasks/{bad_run}/dump")).status_code == 200
    clock.advance(DURATION)
    assert (await status(authed, "imports", SALES_IMPORT, clean_run))["result"]["failureDumpAvailable"] is False
    expired = await authed.get(f"{WS_MODEL}/imports/{SALES_IMPORT}/tasks/{bad_run}/dump")
    assert expired.status_code == 404
    assert (await authed.get(f"{WS_MODEL}/imports/{SALES_IMPORT}/tasks/{bad_run}/dump/chunks")).status_code == 404
    assert (await authed.get(f"{WS_MODEL}/imports/{SALES_IMPORT}/tasks/{clean_run}/dump")).status_code == 404


@pytest.mark.asyncio
async def test_a_dump_expires_48_hours_after_it_was_last_read(
    authed: httpx.AsyncClient, clock: FakeClock, engine: Engine
) -> None:
    await upload(authed, WS_MODEL, SALES_FILE, [line.encode() for line in SALES_WITH_BAD_ROWS])
    task_id = await start(authed, "imports", SALES_IMPORT)
    clock.advance(DURATION)
    await status(authed, "imports", SALES_IMPORT, task_id)
    clock.advance(engine.options.dump_ttl - 1)
    authed.headers.update(token_header(await login(authed)))  # the first token expired long ago
    assert (await authed.get(f"{WS_MODEL}/imports/{SALES_IMPORT}/tasks/{task_id}/dump")).status_code == 200
    clock.advance(engine.options.dump_ttl + 1)
    authed.headers.update(token_header(await login(authed)))
    assert (await authed.get(f"{WS_MODEL}/imports/{SALES_IMPORT}/tasks/{task_id}/dump")).status_code == 404


# ---------------------------------------------------------------------------------------------------- processes
@pytest.mark.asyncio
async def test_process_with_a_failing_step_reports_the_step_and_its_dump(
    authed: httpx.AsyncClient, clock: FakeClock
) -> None:
    # Step 1 (products) is clean; step 2 (employees) rejects every row, so it fails and the process stops there.
    await upload(authed, WS_MODEL, EMPLOYEES_FILE, [b"Code,Name,Parent,Start Date,Salary\nE020,Nobody,Atlantis,,1\n"])
    task_id = await start(authed, "processes", NIGHTLY_LOAD)
    clock.advance(DURATION)
    running = await status(authed, "processes", NIGHTLY_LOAD, task_id)
    assert running["taskState"] == "IN_PROGRESS"  # two steps ran: twice the duration
    clock.advance(DURATION)
    task = await status(authed, "processes", NIGHTLY_LOAD, task_id)
    assert task["taskState"] == "COMPLETE"
    assert task["currentStep"] == "Failed."
    result = task["result"]
    assert result["successful"] is False
    assert result["failureDumpAvailable"] is True
    assert result["objectId"] == NIGHTLY_LOAD
    steps = result["nestedResults"]
    assert [s["objectId"] for s in steps] == [PRODUCTS_IMPORT, EMPLOYEES_IMPORT]
    assert [s["successful"] for s in steps] == [True, False]
    assert [s["failureDumpAvailable"] for s in steps] == [False, True]
    assert all("details" in s for s in steps)

    base = f"{WS_MODEL}/processes/{NIGHTLY_LOAD}/tasks/{task_id}/dumps"
    dump = await authed.get(f"{base}/{EMPLOYEES_IMPORT}")
    assert dump.status_code == 200
    rows = list(csv.reader(io.StringIO(dump.text)))
    assert rows[1][:7] == ["E", "E020", "Nobody", "Atlantis", "", "1", "2"]
    listing = (await authed.get(f"{base}/{EMPLOYEES_IMPORT}/chunks")).json()
    assert listing["chunks"] == [{"id": "0", "name": "Chunk 0"}]
    assert (await authed.get(f"{base}/{EMPLOYEES_IMPORT}/chunks/0")).content == dump.content
    assert (await authed.get(f"{base}/{PRODUCTS_IMPORT}")).status_code == 404  # a clean step has no dump
    # The model-only path form serves the same dump.
    alt = f"{MODEL_ONLY}/processes/{NIGHTLY_LOAD}/tasks/{task_id}/dumps/{EMPLOYEES_IMPORT}"
    assert (await authed.get(alt)).content == dump.content


@pytest.mark.asyncio
async def test_process_that_succeeds_runs_every_step_and_exports(authed: httpx.AsyncClient, clock: FakeClock) -> None:
    task_id = await start(authed, "processes", NIGHTLY_LOAD)
    clock.advance(4 * DURATION)
    result = (await status(authed, "processes", NIGHTLY_LOAD, task_id))["result"]
    assert result["successful"] is True
    assert [s["objectId"] for s in result["nestedResults"]] == [
        PRODUCTS_IMPORT,
        EMPLOYEES_IMPORT,
        SALES_IMPORT,
        SALES_EXPORT,
    ]
    assert "West,Support Plan,Feb 26,25,5000" in (await download(authed, SALES_EXPORT)).decode()


# ---------------------------------------------------------------------------------------------------- exports
@pytest.mark.asyncio
async def test_export_spans_several_chunks(authed: httpx.AsyncClient, clock: FakeClock, engine: Engine) -> None:
    engine.options.export_chunk_bytes = 64
    months = [f"{m} 26" for m in ("Jan", "Feb", "Mar", "Apr", "May", "Jun")]
    lines = "".join(
        f"West,{p},{m},{i},{i * 10}\n" for i, (p, m) in enumerate((p, m) for p in ("Laptop", "Monitor") for m in months)
    )
    await upload(authed, WS_MODEL, SALES_FILE, [("Region,Product,Month,Units,Revenue\n" + lines).encode()])
    await start(authed, "imports", SALES_IMPORT)
    task_id = await start(authed, "exports", SALES_EXPORT)
    clock.advance(2 * DURATION)
    result = (await status(authed, "exports", SALES_EXPORT, task_id))["result"]
    assert result["successful"] is True
    assert result["details"][0]["type"] == "exportSucceeded"

    listing = (await authed.get(f"{WS_MODEL}/files/{SALES_EXPORT}/chunks")).json()
    assert len(listing["chunks"]) > 3
    body = await download(authed, SALES_EXPORT)
    chunk_sizes = [
        len((await authed.get(f"{WS_MODEL}/files/{SALES_EXPORT}/chunks/{c['id']}")).content) for c in listing["chunks"]
    ]
    assert all(size == 64 for size in chunk_sizes[:-1])
    assert body == (await authed.get(f"{WS_MODEL}/files/{SALES_EXPORT}")).content
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert rows[0] == ["Region", "Product", "Month", "Units", "Revenue"]
    assert len(rows) == 1 + 2 + 12  # the header, the two seeded cells and the twelve imported ones
    assert rows[1:4] == [
        ["North", "Laptop", "Jan 26", "12", "14400"],
        ["South", "Analytics Suite", "Jan 26", "3", "9000"],
        ["West", "Laptop", "Jan 26", "0", "0"],
    ]
    assert ["West", "Monitor", "Jun 26", "11", "110"] in rows


@pytest.mark.asyncio
async def test_export_file_is_replaced_only_when_the_export_completes(
    authed: httpx.AsyncClient, clock: FakeClock
) -> None:
    assert (await authed.get(f"{WS_MODEL}/files/{SALES_EXPORT}")).status_code == 404  # never exported yet
    task_id = await start(authed, "exports", SALES_EXPORT)
    clock.advance(DURATION / 2)
    assert (await authed.get(f"{WS_MODEL}/files/{SALES_EXPORT}")).status_code == 404
    clock.advance(DURATION / 2)
    await status(authed, "exports", SALES_EXPORT, task_id)
    assert (await authed.get(f"{WS_MODEL}/files/{SALES_EXPORT}")).status_code == 200


# ---------------------------------------------------------------------------------------------------- queue, cancel
@pytest.mark.asyncio
async def test_one_action_at_a_time_per_model(authed: httpx.AsyncClient, clock: FakeClock) -> None:
    first = await start(authed, "imports", PRODUCTS_IMPORT)
    second = await start(authed, "exports", SALES_EXPORT)
    other_model = await start(authed, "imports", "112000000010", base="/2/0/models/3C9E5A1B7D2F4E6A8B0C1D3E5F7A9B2C")
    queued = await status(authed, "exports", SALES_EXPORT, second)
    assert queued["taskState"] == "NOT_STARTED"
    assert queued["progress"] == 0.0
    assert "result" not in queued
    other = await status(
        authed, "imports", "112000000010", other_model, base="/2/0/models/3C9E5A1B7D2F4E6A8B0C1D3E5F7A9B2C"
    )
    assert other["taskState"] == "IN_PROGRESS"  # the lock is per model
    clock.advance(DURATION)
    assert (await status(authed, "imports", PRODUCTS_IMPORT, first))["taskState"] == "COMPLETE"
    assert (await status(authed, "exports", SALES_EXPORT, second))["taskState"] == "IN_PROGRESS"
    clock.advance(DURATION)
    assert (await status(authed, "exports", SALES_EXPORT, second))["taskState"] == "COMPLETE"


@pytest.mark.asyncio
async def test_a_queue_catches_up_after_a_long_pause(authed: httpx.AsyncClient, clock: FakeClock) -> None:
    ids = [await start(authed, "exports", SALES_EXPORT) for _ in range(3)]
    clock.advance(2.5 * DURATION)
    states = [(await status(authed, "exports", SALES_EXPORT, i))["taskState"] for i in ids]
    assert states == ["COMPLETE", "COMPLETE", "IN_PROGRESS"]
    assert (await status(authed, "exports", SALES_EXPORT, ids[2]))["progress"] == 0.5


@pytest.mark.asyncio
async def test_cancel_rolls_the_changes_back(authed: httpx.AsyncClient, clock: FakeClock, engine: Engine) -> None:
    engine.options.cancel_duration = 2.0
    task_id = await start(authed, "imports", EMPLOYEES_IMPORT)  # the seeded file adds E005 and E006
    clock.advance(DURATION / 2)
    cancelled = await authed.delete(f"{WS_MODEL}/imports/{EMPLOYEES_IMPORT}/tasks/{task_id}")
    assert cancelled.status_code == 200
    assert_matches_spec(cancelled.json(), SPEC_TASK["imports"] + "/{taskId}")
    assert cancelled.json()["task"]["taskState"] == "CANCELLING"
    queued = await start(authed, "exports", EMPLOYEES_EXPORT)
    clock.advance(1.0)
    assert (await status(authed, "imports", EMPLOYEES_IMPORT, task_id))["taskState"] == "CANCELLING"
    assert (await status(authed, "exports", EMPLOYEES_EXPORT, queued))["taskState"] == "NOT_STARTED"
    clock.advance(1.0)
    task = await status(authed, "imports", EMPLOYEES_IMPORT, task_id)
    assert task["taskState"] == "CANCELLED"
    assert task["currentStep"] == "Cancelled."
    assert "result" not in task
    clock.advance(DURATION)
    assert (await status(authed, "exports", EMPLOYEES_EXPORT, queued))["taskState"] == "COMPLETE"
    exported = (await download(authed, EMPLOYEES_EXPORT)).decode()
    assert "E001,Ada Lovelace,North" in exported
    assert "E005" not in exported and "E006" not in exported
    # Cancelling a finished task changes nothing.
    again = await authed.delete(f"{WS_MODEL}/imports/{EMPLOYEES_IMPORT}/tasks/{task_id}")
    assert again.json()["task"]["taskState"] == "CANCELLED"


@pytest.mark.asyncio
async def test_cancel_a_process_rolls_back_its_finished_steps(
    authed: httpx.AsyncClient, clock: FakeClock, engine: Engine
) -> None:
    products_before = list(engine.data["75A40874E6B64FA3AE0743278996850F"].lists["Products"].items)
    task_id = await start(authed, "processes", NIGHTLY_LOAD, base=MODEL_ONLY)
    clock.advance(2.5 * DURATION)
    response = await authed.delete(f"{MODEL_ONLY}/processes/{NIGHTLY_LOAD}/tasks/{task_id}")
    assert response.json()["task"]["taskState"] == "CANCELLING"  # cancel_duration 0: CANCELLED on the next read
    assert (await status(authed, "processes", NIGHTLY_LOAD, task_id))["taskState"] == "CANCELLED"
    assert list(engine.data["75A40874E6B64FA3AE0743278996850F"].lists["Products"].items) == products_before
    assert (await authed.get(f"{WS_MODEL}/files/{SALES_EXPORT}")).status_code == 404  # its export never wrote


@pytest.mark.asyncio
async def test_cancel_a_queued_task(authed: httpx.AsyncClient, clock: FakeClock) -> None:
    first = await start(authed, "imports", PRODUCTS_IMPORT)
    second = await start(authed, "imports", SALES_IMPORT)
    response = await authed.delete(f"{WS_MODEL}/imports/{SALES_IMPORT}/tasks/{second}")
    assert response.json()["task"]["taskState"] == "CANCELLING"
    assert (await status(authed, "imports", SALES_IMPORT, second))["taskState"] == "CANCELLED"
    clock.advance(DURATION)
    assert (await status(authed, "imports", PRODUCTS_IMPORT, first))["taskState"] == "COMPLETE"
    assert (await status(authed, "imports", SALES_IMPORT, second))["taskState"] == "CANCELLED"


# ---------------------------------------------------------------------------------------------------- actions
@pytest.mark.asyncio
async def test_delete_by_selection_and_order_change_the_data(
    authed: httpx.AsyncClient, clock: FakeClock, engine: Engine
) -> None:
    task_id = await start(authed, "actions", DELETE_CLOSED)
    clock.advance(DURATION)
    result = (await status(authed, "actions", DELETE_CLOSED, task_id))["result"]
    assert result["successful"] is True and result["failureDumpAvailable"] is False
    employees = engine.data["75A40874E6B64FA3AE0743278996850F"].lists["Employees"].items
    assert "E004" not in employees and "E001" in employees

    task_id = await start(authed, "actions", SORT_PRODUCTS)
    clock.advance(DURATION)
    await status(authed, "actions", SORT_PRODUCTS, task_id)
    names = [i.name for i in engine.data["75A40874E6B64FA3AE0743278996850F"].lists["Products"].items.values()]
    assert names == sorted(names, key=str.lower)


@pytest.mark.asyncio
async def test_optimizer_returns_a_solution_log(authed: httpx.AsyncClient, clock: FakeClock) -> None:
    task_id = await start(authed, "actions", OPTIMIZE)
    log_path = f"{WS_MODEL}/optimizeActions/{OPTIMIZE}/tasks/{task_id}/solutionLogs"
    assert (await authed.get(log_path)).status_code == 404  # not finished yet
    clock.advance(DURATION)
    assert (await status(authed, "actions", OPTIMIZE, task_id))["result"]["successful"] is True
    log = await authed.get(log_path)
    assert log.status_code == 200
    assert log.headers["content-type"].startswith("text/plain")
    assert "Status: OPTIMAL" in log.text
    assert (
        await authed.get(f"{MODEL_ONLY}/optimizeActions/{OPTIMIZE}/tasks/{task_id}/solutionLogs")
    ).status_code == 200
    wrong_action = f"{WS_MODEL}/optimizeActions/{DELETE_CLOSED}/tasks/{task_id}/solutionLogs"
    assert (await authed.get(wrong_action)).status_code == 404
