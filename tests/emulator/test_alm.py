"""Emulator ALM: revisions, lineage and syncable revisions, sync tasks on the clock, reports, online status, roles."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from airflow_provider_anaplan.emulator import EmulatorApp
from airflow_provider_anaplan.emulator.alm_state import (
    REVISION_CHANNELS,
    REVISION_INITIAL,
    REVISION_REGIONS,
    SEED_COMPARISON_TASK,
    SEED_SUMMARY_TASK,
    SEED_SYNC_TASK,
    AlmState,
    alm_for,
)

from .conftest import FakeClock, login, token_header

WS = "8a81b01c7d2e4f3a9b5c6d7e8f901a2b"
WS_HR = "8a81b01c3e5f4a7b9c1d2e3f4a5b6c7d"
PROD = "75A40874E6B64FA3AE0743278996850F"  # Sales Forecast: at REVISION_REGIONS
DEV = "A1C4E2B97F3D4C5E8A6B0D2F4E6A8C01"  # Sales Forecast DEV: REVISION_INITIAL..REVISION_CHANNELS + a pending change
HR = "3C9E5A1B7D2F4E6A8B0C1D3E5F7A9B2C"  # Workforce Plan: no ALM history
SECOND_USER = "integration.user@anaplan.example"
DAY = 86_400.0


def alm_path(model: str, suffix: str) -> str:
    return f"/2/0/models/{model}/alm/{suffix}"


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


@pytest.fixture
def alm(app: EmulatorApp) -> AlmState:
    return alm_for(app.state)


async def latest(client: httpx.AsyncClient, model: str) -> str | None:
    body = (await client.get(alm_path(model, "latestRevision"))).json()
    return body["revisions"][0]["id"] if "revisions" in body else None


async def start(client: httpx.AsyncClient, model: str, kind: str, source_revision: str, source_model: str = DEV,
                target_revision: str | None = None) -> dict[str, Any]:  # fmt: skip
    body = {
        "sourceRevisionId": source_revision,
        "sourceModelId": source_model,
        "targetRevisionId": target_revision or await latest(client, model),
    }
    response = await client.post(alm_path(model, kind), json=body)
    assert response.status_code == 201, response.text
    return response.json()["task"]


async def let_days_pass(client: httpx.AsyncClient, clock: FakeClock, days: float) -> None:
    """Move the clock on, and log in again: tokens live only 35 minutes."""
    clock.advance(days * DAY)
    client.headers.update(token_header(await login(client)))


async def task(client: httpx.AsyncClient, model: str, kind: str, task_id: str) -> dict[str, Any]:
    response = await client.get(alm_path(model, f"{kind}/{task_id}"))
    assert response.status_code == 200, response.text
    return response.json()["task"]


# --------------------------------------------------------------------------------------------------- revisions
@pytest.mark.asyncio
async def test_the_seed_gives_dev_and_prod_a_shared_history(authed: httpx.AsyncClient) -> None:
    dev = (await authed.get(alm_path(DEV, "revisions"))).json()
    assert ids(dev["revisions"]) == [REVISION_INITIAL, REVISION_REGIONS, REVISION_CHANNELS]
    assert dev["meta"]["paging"] == {"currentPageSize": 3, "offset": 0, "totalSize": 3}
    prod = (await authed.get(alm_path(PROD, "revisions"))).json()["revisions"]
    assert ids(prod) == [REVISION_INITIAL, REVISION_REGIONS]
    for revision in prod:
        assert {"createdOn", "createdBy", "creationMethod", "appliedOn", "appliedBy"} <= revision.keys()
    assert prod[1]["appliedOn"] > prod[1]["createdOn"]  # applied to PROD by sync, after DEV created it
    assert await latest(authed, PROD) == REVISION_REGIONS
    body = (await authed.get(alm_path(HR, "latestRevision"))).json()
    assert "revisions" not in body and body["status"]["code"] == 200
    assert "revisions" not in (await authed.get(alm_path(HR, "revisions"))).json()

    applied = (await authed.get(alm_path(PROD, f"revisions/{REVISION_REGIONS}/appliedToModels"))).json()
    models = applied["appliedToModels"]
    assert [(m["modelId"], m["appliedMethod"]) for m in models] == [(DEV, "CREATE"), (PROD, "SYNC")]
    assert models[0]["modelName"] == "Sales Forecast DEV" and models[0]["workspaceId"] == WS
    missing = await authed.get(alm_path(PROD, f"revisions/{REVISION_CHANNELS}/appliedToModels"))
    assert missing.status_code == 404  # not (yet) in PROD's history


@pytest.mark.asyncio
async def test_revision_paging_filters_and_sort(authed: httpx.AsyncClient, clock: FakeClock) -> None:
    page = (await authed.get(alm_path(DEV, "revisions"), params={"limit": 2, "offset": 1})).json()
    assert ids(page["revisions"]) == [REVISION_REGIONS, REVISION_CHANNELS]
    assert page["meta"]["paging"]["totalSize"] == 3 and "previous" in page["meta"]["paging"]
    first = (await authed.get(alm_path(DEV, "revisions"), params={"limit": 1})).json()
    assert "next" in first["meta"]["paging"] and ids(first["revisions"]) == [REVISION_INITIAL]

    def day(offset_days: float) -> str:
        from datetime import UTC, datetime

        return datetime.fromtimestamp(clock() + offset_days * DAY, UTC).date().isoformat()

    after = (await authed.get(alm_path(DEV, "revisions"), params={"appliedAfter": day(-3)})).json()
    assert ids(after["revisions"]) == [REVISION_REGIONS, REVISION_CHANNELS]  # "on or after" the date
    before = (await authed.get(alm_path(DEV, "revisions"), params={"appliedBefore": day(-3)})).json()
    assert ids(before["revisions"]) == [REVISION_INITIAL, REVISION_REGIONS]
    window = {"appliedAfter": day(-5), "appliedBefore": day(-2)}
    assert ids((await authed.get(alm_path(DEV, "revisions"), params=window)).json()["revisions"]) == [REVISION_REGIONS]
    empty = (await authed.get(alm_path(DEV, "revisions"), params={"appliedAfter": day(1)})).json()
    assert "revisions" not in empty and empty["meta"]["paging"]["totalSize"] == 0
    for bad in ("2026-13-01", "yesterday", "2026-1-1"):
        response = await authed.get(alm_path(DEV, "revisions"), params={"appliedAfter": bad})
        assert response.status_code == 400, bad
    assert (await authed.get(alm_path(DEV, "revisions"), params={"limit": "0"})).status_code == 400

    newest = (await authed.get(alm_path(DEV, "revisions"), params={"sort": "-appliedOn"})).json()
    assert ids(newest["revisions"]) == [REVISION_CHANNELS, REVISION_REGIONS, REVISION_INITIAL]
    by_name = (await authed.get(alm_path(DEV, "revisions"), params={"sort": "name"})).json()
    assert [r["name"] for r in by_name["revisions"]] == ["Forecast by channel", "Initial build", "Regional breakdown"]


@pytest.mark.asyncio
async def test_create_revision_checks_the_body_and_needs_a_change(
    authed: httpx.AsyncClient, alm: AlmState, clock: FakeClock
) -> None:
    path = alm_path(DEV, "revisions")
    for body, reason in (
        ({"name": "x" * 61}, "name over 60"),
        ({"name": "ok", "description": "d" * 251}, "description over 250"),
        ({}, "no name"),
        ({"name": "   "}, "blank name"),
        ({"name": 7}, "name not a string"),
        ({"name": "ok", "label": "x"}, "unknown field"),
        (["name"], "not an object"),
    ):
        response = await authed.post(path, json=body)
        assert response.status_code == 400, reason
        assert response.json()["status"]["code"] == 400
    assert (
        await authed.post(path, content=b"{not json", headers={"Content-Type": "application/json"})
    ).status_code == 400

    clock.advance(60)
    response = await authed.post(path, json={"name": "n" * 60, "description": "d" * 250})
    assert response.status_code == 201, response.text
    revision = response.json()["revision"]
    assert response.json()["status"] == {"code": 201, "message": "Created"}
    assert revision["name"] == "n" * 60 and revision["description"] == "d" * 250
    assert revision["createdOn"] == revision["appliedOn"] and revision["creationMethod"] == "user"
    assert revision["id"] == revision["id"].upper() and len(revision["id"]) == 32
    assert await latest(authed, DEV) == revision["id"]
    assert alm.revisions[revision["id"]].structure == alm.structure(DEV)

    again = await authed.post(path, json={"name": "nothing new"})
    assert again.status_code == 400 and "no structural changes" in again.json()["status"]["message"]
    alm.edit(DEV, "lists", "Cities", {"parent": "Regions"})
    assert (await authed.post(path, json={"name": "Cities"})).status_code == 201
    assert (await authed.post(alm_path(HR, "revisions"), json={"name": "First"})).status_code == 201  # first: no check
    with pytest.raises(ValueError, match="category"):
        alm.edit(DEV, "views", "x", {})


# --------------------------------------------------------------------------------------------------- syncable
@pytest.mark.asyncio
async def test_syncable_revisions_follow_lineage(authed: httpx.AsyncClient, alm: AlmState) -> None:
    path = alm_path(PROD, "syncableRevisions")
    response = await authed.get(path)
    assert response.status_code == 400 and "sourceModelId" in response.json()["status"]["message"]
    assert (await authed.get(path, params={"sourceModelId": "F" * 32})).status_code == 404
    syncable = (await authed.get(path, params={"sourceModelId": DEV})).json()
    assert ids(syncable["revisions"]) == [REVISION_CHANNELS]

    new = (await authed.post(alm_path(DEV, "revisions"), json={"name": "Margin"})).json()["revision"]["id"]
    syncable = (await authed.get(path, params={"sourceModelId": DEV})).json()
    assert ids(syncable["revisions"]) == [new, REVISION_CHANNELS]  # newest first

    # DEV cannot take PROD's revisions (nothing after DEV's latest), nor can a model without any history or lineage.
    assert (
        "revisions" not in (await authed.get(alm_path(DEV, "syncableRevisions"), params={"sourceModelId": PROD})).json()
    )
    assert (
        "revisions" not in (await authed.get(alm_path(HR, "syncableRevisions"), params={"sourceModelId": DEV})).json()
    )
    await authed.post(alm_path(HR, "revisions"), json={"name": "Unrelated"})
    assert (
        "revisions" not in (await authed.get(alm_path(HR, "syncableRevisions"), params={"sourceModelId": DEV})).json()
    )

    # A structural change made in the target itself breaks compatibility until it is undone.
    alm.edit(PROD, "lists", "Local list", {"parent": ""})
    assert "revisions" not in (await authed.get(path, params={"sourceModelId": DEV})).json()
    alm.edit(PROD, "lists", "Local list", None)
    assert ids((await authed.get(path, params={"sourceModelId": DEV})).json()["revisions"]) == [new, REVISION_CHANNELS]


# --------------------------------------------------------------------------------------------------- sync tasks
@pytest.mark.asyncio
async def test_a_sync_progresses_on_the_clock_and_changes_the_target(
    authed: httpx.AsyncClient, alm: AlmState, clock: FakeClock
) -> None:
    alm.options.sync_duration = 10.0
    body = {"sourceRevisionId": REVISION_CHANNELS, "sourceModelId": DEV, "targetRevisionId": REVISION_REGIONS}
    response = await authed.post(alm_path(PROD, "syncTasks"), json=body)
    assert response.status_code == 201
    created = response.json()["task"]
    assert response.json()["meta"]["schema"].endswith("/objects/taskWithUrl")
    assert created["taskState"] == "IN_PROGRESS" and isinstance(created["creationTime"], int)
    assert created["creationTime"] == int(clock() * 1000)
    assert response.headers["location"] == created["taskUrl"]
    assert created["taskUrl"].endswith(alm_path(PROD, f"syncTasks/{created['taskId']}"))

    queued = await start(authed, PROD, "syncTasks", REVISION_CHANNELS, target_revision=REVISION_REGIONS)
    assert queued["taskState"] == "NOT_STARTED"  # one sync at a time into a model

    clock.advance(5)
    running = await task(authed, PROD, "syncTasks", created["taskId"])
    assert running["taskState"] == "IN_PROGRESS" and "result" not in running
    assert await latest(authed, PROD) == REVISION_REGIONS

    clock.advance(5)
    done = await task(authed, PROD, "syncTasks", created["taskId"])
    assert done["taskState"] == "COMPLETE" and done["currentStep"] == "Complete."
    assert done["result"] == {
        "successful": True,
        "sourceRevisionId": REVISION_CHANNELS,
        "targetRevisionId": REVISION_REGIONS,
    }
    assert await latest(authed, PROD) == REVISION_CHANNELS
    assert alm.structure(PROD) == alm.revisions[REVISION_CHANNELS].structure
    applied = (await authed.get(alm_path(PROD, "revisions"))).json()["revisions"][-1]
    assert applied["id"] == REVISION_CHANNELS and applied["appliedOn"] > applied["createdOn"]

    # The queued twin started when the first finished, and fails: its target revision is no longer the latest.
    assert (await task(authed, PROD, "syncTasks", queued["taskId"]))["taskState"] == "IN_PROGRESS"
    clock.advance(10)
    twin = await task(authed, PROD, "syncTasks", queued["taskId"])
    assert twin["taskState"] == "COMPLETE" and twin["result"]["successful"] is False
    assert twin["result"]["error"]["title"] == "Target revision mismatch"

    listed = (await authed.get(alm_path(PROD, "syncTasks"))).json()["tasks"]
    assert [t["taskId"] for t in listed] == [queued["taskId"], created["taskId"], SEED_SYNC_TASK]  # newest first
    assert set(listed[0]) == {"taskId", "taskState", "creationTime"}

    await let_days_pass(authed, clock, 2)  # finished tasks drop out after 48 hours
    assert "tasks" not in (await authed.get(alm_path(PROD, "syncTasks"))).json()
    assert (await authed.get(alm_path(PROD, f"syncTasks/{created['taskId']}"))).status_code == 404


@pytest.mark.asyncio
async def test_syncing_a_revision_that_is_not_syncable_fails(authed: httpx.AsyncClient, alm: AlmState,
                                                             clock: FakeClock) -> None:  # fmt: skip
    before = alm.structure(HR)
    await authed.post(alm_path(HR, "revisions"), json={"name": "Unrelated"})
    created = await start(authed, HR, "syncTasks", REVISION_CHANNELS)
    clock.advance(alm.options.sync_duration)
    failed = await task(authed, HR, "syncTasks", created["taskId"])
    assert failed["taskState"] == "COMPLETE" and failed["currentStep"] == "Failed."
    result = failed["result"]
    assert result["successful"] is False and result["error"]["title"] == "Revision not syncable"
    assert REVISION_CHANNELS in result["error"]["messageText"]
    assert alm.structure(HR) == before and (await latest(authed, HR)) != REVISION_CHANNELS

    # Going backwards is not syncable either: PROD already has REVISION_REGIONS.
    backwards = await start(authed, PROD, "syncTasks", REVISION_INITIAL)
    clock.advance(alm.options.sync_duration)
    assert (await task(authed, PROD, "syncTasks", backwards["taskId"]))["result"]["successful"] is False


@pytest.mark.asyncio
async def test_a_sync_can_be_made_to_fail_or_be_cancelled(authed: httpx.AsyncClient, alm: AlmState,
                                                          clock: FakeClock) -> None:  # fmt: skip
    alm.fail_next_sync(target_model_id=HR)  # aimed elsewhere: PROD's sync is not affected
    alm.fail_next_sync(target_model_id=PROD, title="Sync interrupted", message="The model was busy.")
    failing = await start(authed, PROD, "syncTasks", REVISION_CHANNELS)
    clock.advance(alm.options.sync_duration)
    result = (await task(authed, PROD, "syncTasks", failing["taskId"]))["result"]
    assert result["error"] == {"title": "Sync interrupted", "messageText": "The model was busy."}
    assert await latest(authed, PROD) == REVISION_REGIONS
    assert len(alm.failures) == 1

    cancelled = await start(authed, PROD, "syncTasks", REVISION_CHANNELS)
    alm.cancel_task(cancelled["taskId"])
    clock.advance(alm.options.sync_duration)
    state = await task(authed, PROD, "syncTasks", cancelled["taskId"])
    assert state["taskState"] == "CANCELLED" and "result" not in state and state["currentStep"] == "Cancelled."
    assert await latest(authed, PROD) == REVISION_REGIONS

    succeeding = await start(authed, PROD, "syncTasks", REVISION_CHANNELS)
    clock.advance(alm.options.sync_duration)
    assert (await task(authed, PROD, "syncTasks", succeeding["taskId"]))["result"]["successful"] is True


@pytest.mark.asyncio
async def test_task_bodies_are_checked(authed: httpx.AsyncClient) -> None:
    good = {"sourceRevisionId": REVISION_CHANNELS, "sourceModelId": DEV, "targetRevisionId": REVISION_REGIONS}
    for kind in ("syncTasks", "comparisonReportTasks", "summaryReportTasks"):
        for body in (
            {},
            {k: v for k, v in good.items() if k != "targetRevisionId"},
            {**good, "sourceModelId": ""},
            {**good, "extra": 1},
            {**good, "sourceRevisionId": "not-an-id"},
            {**good, "targetRevisionId": 12},
        ):
            response = await authed.post(alm_path(PROD, kind), json=body)
            assert response.status_code == 400, (kind, body)
        missing = await authed.post(alm_path(PROD, kind), json={})
        assert "Expected mandatory fields" in missing.json()["status"]["message"]
        unknown_source = await authed.post(alm_path(PROD, kind), json={**good, "sourceModelId": "F" * 32})
        assert unknown_source.status_code == 404
    assert (await authed.post(alm_path("F" * 32, "syncTasks"), json=good)).status_code == 404
    assert (await authed.get(alm_path(PROD, f"syncTasks/{'0' * 32}"))).status_code == 404
    # Task ids are scoped to their kind and model.
    assert (await authed.get(alm_path(PROD, f"comparisonReportTasks/{SEED_SYNC_TASK}"))).status_code == 404
    assert (await authed.get(alm_path(DEV, f"syncTasks/{SEED_SYNC_TASK}"))).status_code == 404


# --------------------------------------------------------------------------------------------------- reports
@pytest.mark.asyncio
async def test_reports_reflect_the_real_differences(authed: httpx.AsyncClient, alm: AlmState, clock: FakeClock) -> None:
    comparison = await start(authed, PROD, "comparisonReportTasks", REVISION_CHANNELS)
    summary = await start(authed, PROD, "summaryReportTasks", REVISION_CHANNELS)
    assert comparison["taskState"] == "IN_PROGRESS"
    report_path = alm_path(PROD, f"comparisonReports/{REVISION_REGIONS}/{REVISION_CHANNELS}")
    octet = {"Accept": "application/octet-stream"}
    assert (await authed.get(report_path, headers=octet)).status_code == 404  # not generated yet

    clock.advance(alm.options.report_duration)
    done = await task(authed, PROD, "comparisonReportTasks", comparison["taskId"])
    assert done["result"]["successful"] is True
    assert done["result"]["reportFileUrl"] == f"http://emulator.test{report_path}"
    assert done["result"]["targetRevisionId"] == REVISION_REGIONS

    response = await authed.get(report_path, headers=octet)
    assert response.status_code == 200 and response.headers["content-type"] == "application/octet-stream"
    rows = [line.split("\t") for line in response.text.splitlines()]
    header = rows.index(["Object Type", "Change", "Name", "Property", "Target Value", "Source Value"])
    changes = {(r[0], r[1], r[2], r[3]) for r in rows[header + 1 :]}
    assert changes == {
        ("Module", "Created", "Channel Forecast", ""),
        ("Line Item", "Created", "Channel Forecast.Units", ""),
        ("Line Item", "Created", "Channel Forecast.Share %", ""),
        ("Line Item", "Modified", "Revenue.Revenue", "formula"),
        ("Role", "Created", "Viewer", ""),
    }
    modified = next(r for r in rows[header + 1 :] if r[1] == "Modified")
    assert modified[4:] == ["Units * Price", "Units * Price * (1 - Discount %)"]
    for accept in ({"Accept": "application/json"}, {}):
        refused = await authed.get(report_path, headers=accept)
        assert refused.status_code == 406 and refused.json()["status"]["code"] == 406

    summary_path = alm_path(PROD, f"summaryReports/{REVISION_REGIONS}/{REVISION_CHANNELS}")
    assert (await task(authed, PROD, "summaryReportTasks", summary["taskId"]))["result"]["reportFileUrl"].endswith(
        summary_path
    )
    report = (await authed.get(summary_path)).json()["summaryReport"]
    assert report == {
        "targetRevisionId": REVISION_REGIONS,
        "sourceRevisionId": REVISION_CHANNELS,
        "totals": {"created": 4, "modified": 1, "deleted": 0},
        "differences": {
            "modules": {"created": 1},
            "lineItems": {"created": 2, "modified": 1},
            "rolesContents": {"created": 1},
        },
    }

    # Backwards (REVISION_CHANNELS as the target of REVISION_INITIAL's structure) things are deleted.
    alm_reverse = await start(authed, DEV, "summaryReportTasks", REVISION_INITIAL, target_revision=REVISION_CHANNELS)
    clock.advance(1)
    assert (await task(authed, DEV, "summaryReportTasks", alm_reverse["taskId"]))["result"]["successful"]
    reverse = (await authed.get(alm_path(DEV, f"summaryReports/{REVISION_CHANNELS}/{REVISION_INITIAL}"))).json()
    assert reverse["summaryReport"]["totals"] == {"created": 0, "modified": 2, "deleted": 6}

    await let_days_pass(authed, clock, 2)  # reports are kept 48 hours
    assert (await authed.get(report_path, headers=octet)).status_code == 404
    assert (await authed.get(summary_path)).status_code == 404


@pytest.mark.asyncio
async def test_report_tasks_for_unknown_revisions_fail_and_seeded_reports_exist(
    authed: httpx.AsyncClient, alm: AlmState, clock: FakeClock
) -> None:
    bad = await start(authed, PROD, "comparisonReportTasks", "A" * 32, target_revision=REVISION_REGIONS)
    clock.advance(alm.options.report_duration)
    result = (await task(authed, PROD, "comparisonReportTasks", bad["taskId"]))["result"]
    assert result["successful"] is False and result["error"]["title"] == "Revision not found"
    assert "reportFileUrl" not in result

    seeded = await task(authed, PROD, "comparisonReportTasks", SEED_COMPARISON_TASK)
    assert seeded["result"]["reportFileUrl"].startswith("http://emulator.test/2/0/")
    assert (await task(authed, PROD, "summaryReportTasks", SEED_SUMMARY_TASK))["result"]["successful"]
    old = await authed.get(
        alm_path(PROD, f"comparisonReports/{REVISION_INITIAL}/{REVISION_REGIONS}"),
        headers={"Accept": "application/octet-stream"},
    )
    assert old.status_code == 200 and b"Channels" in old.content


# --------------------------------------------------------------------------------------------------- online status
@pytest.mark.asyncio
async def test_online_status_around_a_sync(authed: httpx.AsyncClient, alm: AlmState, clock: FakeClock) -> None:
    async def active_state(model: str) -> str:
        return (await authed.get(f"/2/0/models/{model}")).json()["model"]["activeState"]

    path = f"/2/0/models/{PROD}/onlineStatus"
    response = await authed.put(path, json={"status": "offline"})
    assert response.status_code == 204 and response.content == b""
    assert await active_state(PROD) == "PRODUCTION_MAINTENANCE"
    assert (await authed.put(path, json={"status": "offline"})).status_code == 204  # idempotent
    created = await start(authed, PROD, "syncTasks", REVISION_CHANNELS)
    clock.advance(alm.options.sync_duration)
    assert (await task(authed, PROD, "syncTasks", created["taskId"]))["result"]["successful"]
    assert (await authed.post(path, json={"status": "online"})).status_code == 204  # POST works too
    assert await active_state(PROD) == "PRODUCTION"

    dev_path = f"/2/0/models/{DEV}/onlineStatus"
    assert (await authed.put(dev_path, json={"status": "offline"})).status_code == 204
    assert await active_state(DEV) == "MAINTENANCE"
    assert (await authed.put(dev_path, json={"status": "online"})).status_code == 204
    assert await active_state(DEV) == "UNLOCKED"

    for body in ({"status": "ONLINE"}, {"status": "sideways"}, {}, {"status": "online", "x": 1}):
        assert (await authed.put(path, json=body)).status_code == 400, body
    alm.state.models[DEV].active_state = "LOCKED"
    locked = await authed.put(dev_path, json={"status": "offline"})
    assert locked.status_code == 400 and "locked" in locked.json()["status"]["message"]
    assert (await authed.put(f"/2/0/models/{'F' * 32}/onlineStatus", json={"status": "online"})).status_code == 404


# --------------------------------------------------------------------------------------------------- archived, roles
@pytest.mark.asyncio
async def test_archived_models_answer_422_to_changes(authed: httpx.AsyncClient, alm: AlmState) -> None:
    alm.archive(PROD)
    good = {"sourceRevisionId": REVISION_CHANNELS, "sourceModelId": DEV, "targetRevisionId": REVISION_REGIONS}
    for method, suffix, body in (
        ("PUT", "onlineStatus", {"status": "offline"}),
        ("POST", "alm/revisions", {"name": "x"}),
        ("POST", "alm/syncTasks", good),
        ("POST", "alm/comparisonReportTasks", good),
        ("POST", "alm/summaryReportTasks", good),
    ):
        response = await authed.request(method, f"/2/0/models/{PROD}/{suffix}", json=body)
        assert response.status_code == 422, suffix
        assert "archived" in response.json()["status"]["message"]
    assert (await authed.get(alm_path(PROD, "revisions"))).status_code == 200  # reads still work
    alm.archive(PROD, False)
    alm.archive(DEV)  # an archived source is refused too
    assert (await authed.post(alm_path(PROD, "syncTasks"), json=good)).status_code == 422


@pytest.mark.asyncio
async def test_missing_roles_answer_403_and_424_on_reports(client: httpx.AsyncClient, alm: AlmState) -> None:
    client.headers.update(token_header(await login(client, SECOND_USER, "second-password")))
    good = {"sourceRevisionId": REVISION_CHANNELS, "sourceModelId": DEV, "targetRevisionId": REVISION_REGIONS}
    assert (await client.get(alm_path(PROD, "revisions"))).status_code == 200
    alm.set_workspace_admin(SECOND_USER, WS, admin=False)
    for method, suffix, body, status in (
        ("PUT", "onlineStatus", {"status": "offline"}, 403),
        ("GET", "alm/revisions", None, 403),
        ("POST", "alm/revisions", {"name": "x"}, 403),
        ("GET", "alm/latestRevision", None, 403),
        ("GET", f"alm/revisions/{REVISION_REGIONS}/appliedToModels", None, 403),
        ("GET", f"alm/syncableRevisions?sourceModelId={DEV}", None, 403),
        ("GET", "alm/syncTasks", None, 403),
        ("POST", "alm/syncTasks", good, 403),
        ("GET", f"alm/syncTasks/{SEED_SYNC_TASK}", None, 403),
        ("POST", "alm/comparisonReportTasks", good, 424),
        ("GET", f"alm/comparisonReportTasks/{SEED_COMPARISON_TASK}", None, 424),
        ("GET", f"alm/comparisonReports/{REVISION_INITIAL}/{REVISION_REGIONS}", None, 424),
        ("POST", "alm/summaryReportTasks", good, 424),
        ("GET", f"alm/summaryReportTasks/{SEED_SUMMARY_TASK}", None, 424),
        ("GET", f"alm/summaryReports/{REVISION_INITIAL}/{REVISION_REGIONS}", None, 424),
    ):
        headers = {"Accept": "application/octet-stream"} if "comparisonReports" in suffix else {}
        response = await client.request(method, f"/2/0/models/{PROD}/{suffix}", json=body, headers=headers)
        assert response.status_code == status, (method, suffix, response.status_code)
    # The role is needed on the source model's workspace as well: here the target is fine, the source is not.
    alm.set_workspace_admin(SECOND_USER, WS)
    alm.set_workspace_admin(SECOND_USER, WS_HR, admin=False)
    for kind, status in (("syncTasks", 403), ("comparisonReportTasks", 424)):
        body = {**good, "sourceModelId": HR}
        assert (await client.post(alm_path(PROD, kind), json=body)).status_code == status
    params = {"sourceModelId": HR}
    assert (await client.get(alm_path(PROD, "syncableRevisions"), params=params)).status_code == 403
    with pytest.raises(ValueError, match="no user"):
        alm.set_workspace_admin("nobody@example.com", WS)


@pytest.mark.asyncio
async def test_every_alm_route_needs_a_token(client: httpx.AsyncClient) -> None:
    for method, path in (
        ("PUT", f"/2/0/models/{PROD}/onlineStatus"),
        ("GET", alm_path(PROD, "revisions")),
        ("POST", alm_path(PROD, "syncTasks")),
        ("GET", alm_path(PROD, f"summaryReports/{REVISION_INITIAL}/{REVISION_REGIONS}")),
    ):
        assert (await client.request(method, path, json={})).status_code == 401


# --------------------------------------------------------------------------------------------------- copies
@pytest.mark.asyncio
async def test_a_copy_shares_lineage_and_deleted_models_are_marked(
    authed: httpx.AsyncClient, alm: AlmState, app: EmulatorApp
) -> None:
    test = alm.copy_model(DEV, "Sales Forecast TEST", workspace_id=WS_HR, revision_id=REVISION_REGIONS)
    assert test.id in app.state.workspaces[WS_HR].model_ids
    assert ids((await authed.get(alm_path(test.id, "revisions"))).json()["revisions"]) == [
        REVISION_INITIAL,
        REVISION_REGIONS,
    ]
    syncable = (await authed.get(alm_path(test.id, "syncableRevisions"), params={"sourceModelId": DEV})).json()
    assert ids(syncable["revisions"]) == [REVISION_CHANNELS]
    with pytest.raises(ValueError, match="not in the history"):
        alm.copy_model(PROD, "bad", revision_id=REVISION_CHANNELS)

    response = await authed.post(f"/2/0/workspaces/{WS_HR}/bulkDeleteModels", json={"modelIdsToDelete": [test.id]})
    assert response.json()["modelsDeleted"] == 1
    applied = (await authed.get(alm_path(DEV, f"revisions/{REVISION_REGIONS}/appliedToModels"))).json()
    gone = [m for m in applied["appliedToModels"] if m["modelId"] == test.id]
    assert gone and gone[0]["modelDeleted"] is True and "modelName" not in gone[0] and "workspaceId" not in gone[0]
