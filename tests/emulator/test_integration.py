"""The emulator's Integration API metadata routes (/2/0): users, workspaces, models, model status and model objects."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import pytest_asyncio

from airflow_provider_anaplan.emulator import create_app
from airflow_provider_anaplan.emulator.state import BULK_WORKSPACE_ID, bulk_seed

from .conftest import BASE, FakeClock, login, token_header

API = "/2/0"
WS = "8a81b01c7d2e4f3a9b5c6d7e8f901a2b"  # FP&A Production
WS_HR = "8a81b01c3e5f4a7b9c1d2e3f4a5b6c7d"  # HR Planning
MODEL = "75A40874E6B64FA3AE0743278996850F"  # Sales Forecast (open)
MODEL_DEV = "A1C4E2B97F3D4C5E8A6B0D2F4E6A8C01"  # Sales Forecast DEV: no exports, processes or actions
MODEL_HR = "3C9E5A1B7D2F4E6A8B0C1D3E5F7A9B2C"  # Workforce Plan, in WS_HR
USER_ID = "8a81b09d5f1e4c2a9b3e7d6f10a2c4e8"

BULK_MODELS = 5100  # plus the 3 seed models: 5103 > one 5000-item page
BULK_OBJECTS = 5003


def both_forms(model: str = MODEL, workspace: str = WS) -> list[str]:
    return [f"{API}/workspaces/{workspace}/models/{model}", f"{API}/models/{model}"]


FORMS = pytest.mark.parametrize("base", both_forms(), ids=["workspace-form", "model-form"])


# --------------------------------------------------------------------------------------------------- users
@pytest.mark.asyncio
async def test_users_me_is_the_caller(authed: httpx.AsyncClient) -> None:
    response = await authed.get(f"{API}/users/me")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == {"code": 200, "message": "Success"}
    assert body["meta"]["schema"].endswith("/2/0/objects/user")
    assert body["user"]["id"] == USER_ID
    assert body["user"]["email"] == "demo@anaplan.example"


@pytest.mark.asyncio
async def test_user_by_id_and_unknown_user(authed: httpx.AsyncClient) -> None:
    other = "8a81b09d7c3b4d5e9f0a1b2c3d4e5f60"
    assert (await authed.get(f"{API}/users/{other}")).json()["user"]["email"] == "integration.user@anaplan.example"
    missing = await authed.get(f"{API}/users/{'0' * 32}")
    assert missing.status_code == 404
    assert missing.json()["status"] == {"code": 404, "message": "Not Found"}


@pytest.mark.asyncio
async def test_user_list_sorts_and_searches(authed: httpx.AsyncClient) -> None:
    body = (await authed.get(f"{API}/users", params={"sort": "-email"})).json()
    assert [u["email"] for u in body["users"]] == ["integration.user@anaplan.example", "demo@anaplan.example"]
    found = (await authed.get(f"{API}/users", params={"s": "integ%user"})).json()
    assert [u["email"] for u in found["users"]] == ["integration.user@anaplan.example"]


# --------------------------------------------------------------------------------------------------- workspaces
@pytest.mark.asyncio
async def test_workspaces_list_without_and_with_tenant_details(authed: httpx.AsyncClient) -> None:
    plain = (await authed.get(f"{API}/workspaces")).json()
    assert plain["meta"]["paging"] == {"currentPageSize": 2, "offset": 0, "totalSize": 2}
    assert all(set(w) == {"id", "name", "active"} for w in plain["workspaces"])
    detailed = (await authed.get(f"{API}/workspaces", params={"tenantDetails": "true"})).json()
    by_id = {w["id"]: w for w in detailed["workspaces"]}
    assert by_id[WS]["sizeAllowance"] == 10737418240
    assert by_id[WS]["currentSize"] == 2147483648


@pytest.mark.asyncio
async def test_workspaces_sort_and_search(authed: httpx.AsyncClient) -> None:
    names = [w["name"] for w in (await authed.get(f"{API}/workspaces", params={"sort": "-name"})).json()["workspaces"]]
    assert names == ["HR Planning", "FP&A Production"]
    names = [w["name"] for w in (await authed.get(f"{API}/workspaces", params={"sort": "+name"})).json()["workspaces"]]
    assert names == ["FP&A Production", "HR Planning"]
    found = (await authed.get(f"{API}/workspaces", params={"s": "h_ plan"})).json()
    assert [w["name"] for w in found["workspaces"]] == ["HR Planning"]
    none = (await authed.get(f"{API}/workspaces", params={"s": "payroll"})).json()
    assert "workspaces" not in none
    assert none["meta"]["paging"]["totalSize"] == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("sort", ["name", "+size", "-", "+name,bogus", "+currentSize"])
async def test_workspaces_reject_a_bad_sort(authed: httpx.AsyncClient, sort: str) -> None:
    response = await authed.get(f"{API}/workspaces", params={"sort": sort})
    assert response.status_code == 400
    assert response.json()["status"]["code"] == 400


@pytest.mark.asyncio
async def test_get_workspace(authed: httpx.AsyncClient) -> None:
    body = (await authed.get(f"{API}/workspaces/{WS}")).json()
    assert body["workspace"] == {"id": WS, "name": "FP&A Production", "active": True}
    detailed = (await authed.get(f"{API}/workspaces/{WS}", params={"tenantDetails": "true"})).json()
    assert detailed["workspace"]["sizeAllowance"] == 10737418240
    assert (await authed.get(f"{API}/workspaces/{'f' * 32}")).status_code == 404
    assert (await authed.get(f"{API}/workspaces/{WS}", params={"tenantDetails": "maybe"})).status_code == 400


# --------------------------------------------------------------------------------------------------- models
@pytest.mark.asyncio
async def test_models_list_every_model_of_the_user(authed: httpx.AsyncClient) -> None:
    body = (await authed.get(f"{API}/models")).json()
    assert {m["id"] for m in body["models"]} == {MODEL, MODEL_DEV, MODEL_HR}
    hr = next(m for m in body["models"] if m["id"] == MODEL_HR)
    assert hr["currentWorkspaceId"] == WS_HR
    assert hr["currentWorkspaceName"] == "HR Planning"
    assert hr["activeState"] == "UNLOCKED"
    assert "memoryUsage" not in hr


@pytest.mark.asyncio
async def test_model_details_add_memory_and_dates(authed: httpx.AsyncClient) -> None:
    plain = (await authed.get(f"{API}/models/{MODEL}")).json()["model"]
    assert plain["name"] == "Sales Forecast"
    assert plain["categoryValues"][0]["attribute"] == "Business Function"
    assert "memoryUsage" not in plain
    detailed = (await authed.get(f"{API}/models/{MODEL}", params={"modelDetails": "true"})).json()["model"]
    assert detailed["memoryUsage"] == 412352512
    assert detailed["lastSavedSerialNumber"] == 2000051
    assert detailed["isoCreationDate"] == "2024-03-11T09:12:44.000+0000"
    listed = (await authed.get(f"{API}/models", params={"modelDetails": "true"})).json()["models"]
    assert all("memoryUsage" in m for m in listed)


@pytest.mark.asyncio
async def test_models_sort_and_search(authed: httpx.AsyncClient) -> None:
    names = [m["name"] for m in (await authed.get(f"{API}/models", params={"sort": "+name"})).json()["models"]]
    assert names == ["Sales Forecast", "Sales Forecast DEV", "Workforce Plan"]
    names = [m["name"] for m in (await authed.get(f"{API}/models", params={"sort": "-name"})).json()["models"]]
    assert names == ["Workforce Plan", "Sales Forecast DEV", "Sales Forecast"]
    found = (await authed.get(f"{API}/models", params={"s": "dev"})).json()["models"]
    assert [m["id"] for m in found] == [MODEL_DEV]
    assert (await authed.get(f"{API}/models", params={"sort": "+memoryUsage"})).status_code == 400


@pytest.mark.asyncio
async def test_workspace_models_and_unknown_ids(authed: httpx.AsyncClient) -> None:
    body = (await authed.get(f"{API}/workspaces/{WS}/models")).json()
    assert [m["id"] for m in body["models"]] == [MODEL, MODEL_DEV]
    assert (await authed.get(f"{API}/workspaces/{'f' * 32}/models")).status_code == 404
    assert (await authed.get(f"{API}/models/{'F' * 32}")).status_code == 404


@pytest.mark.asyncio
async def test_get_model_under_a_workspace_is_405_as_live(authed: httpx.AsyncClient) -> None:
    response = await authed.get(f"{API}/workspaces/{WS}/models/{MODEL}")
    assert response.status_code == 405
    assert response.json()["status"] == {"code": 405, "message": "Method Not Allowed"}


@pytest.mark.asyncio
async def test_model_status_is_bare_on_get_and_enveloped_on_post(authed: httpx.AsyncClient, clock: FakeClock) -> None:
    for path in (f"{API}/models/{MODEL}/status", f"{API}/workspaces/{WS}/models/{MODEL}/status"):
        body = (await authed.get(path)).json()
        assert set(body) == {"requestStatus"}
        assert body["requestStatus"]["currentStep"] == "Open"
        assert body["requestStatus"]["progress"] == -1.0
        assert body["requestStatus"]["creationTime"] == int(clock.now * 1000)
    closed = (await authed.get(f"{API}/models/{MODEL_DEV}/status")).json()
    assert closed["requestStatus"]["currentStep"] == "Closed"
    posted = await authed.post(f"{API}/workspaces/{WS}/models/{MODEL_DEV}/status")
    assert posted.status_code == 200
    assert posted.json()["status"]["code"] == 200
    assert posted.json()["requestStatus"]["currentStep"] == "Closed"
    assert (await authed.get(f"{API}/workspaces/{WS_HR}/models/{MODEL}/status")).status_code == 404


# --------------------------------------------------------------------------------------------------- model objects
EXPECTED_IDS = {
    "files": ["113000000000", "113000000001", "113000000002", "116000000000", "116000000001"],
    "imports": ["112000000000", "112000000001", "112000000002", "112000000003"],
    "exports": ["116000000000", "116000000001"],
    "processes": ["118000000000", "118000000001"],
    "actions": ["117000000000", "117000000001", "117000000002"],
}
SCHEMA_KIND = {"files": "file", "imports": "import", "exports": "export", "processes": "process", "actions": "action"}


@pytest.mark.asyncio
@FORMS
@pytest.mark.parametrize("kind", sorted(EXPECTED_IDS))
async def test_model_object_lists_in_both_forms(authed: httpx.AsyncClient, base: str, kind: str) -> None:
    response = await authed.get(f"{base}/{kind}")
    assert response.status_code == 200
    body = response.json()
    assert [item["id"] for item in body[kind]] == EXPECTED_IDS[kind]
    assert body["meta"]["paging"] == {
        "currentPageSize": len(EXPECTED_IDS[kind]),
        "offset": 0,
        "totalSize": len(body[kind]),
    }
    assert body["meta"]["schema"].endswith(f"/2/0/models/{MODEL}/objects/{SCHEMA_KIND[kind]}")


@pytest.mark.asyncio
async def test_list_entries_carry_the_wire_fields(authed: httpx.AsyncClient) -> None:
    imports = (await authed.get(f"{API}/models/{MODEL}/imports")).json()["imports"]
    assert imports[0] == {
        "id": "112000000000",
        "name": "Employees from Employees.csv",
        "importDataSourceId": "113000000000",
        "importType": "HIERARCHY_DATA",
    }
    files = (await authed.get(f"{API}/models/{MODEL}/files")).json()["files"]
    products = next(f for f in files if f["id"] == "113000000002")
    # seed_data.json gives the file its initial content in one chunk; the listing reports the chunks really stored
    assert products["separator"] == "\t" and products["encoding"] == "ISO-8859-1" and products["chunkCount"] == 1
    chunks = (await authed.get(f"{API}/models/{MODEL}/files/113000000002/chunks")).json()["chunks"]
    assert len(chunks) == products["chunkCount"]
    actions = (await authed.get(f"{API}/models/{MODEL}/actions")).json()["actions"]
    assert actions[2] == {"id": "117000000002", "name": "Optimize Territories", "actionType": "OPTIMIZER"}


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["exports", "processes", "actions"])
async def test_an_empty_collection_omits_its_key(authed: httpx.AsyncClient, kind: str) -> None:
    for base in both_forms(MODEL_DEV):
        body = (await authed.get(f"{base}/{kind}")).json()
        assert kind not in body
        assert body["meta"]["paging"] == {"currentPageSize": 0, "offset": 0, "totalSize": 0}
        assert body["status"]["code"] == 200


@pytest.mark.asyncio
async def test_model_object_sort(authed: httpx.AsyncClient) -> None:
    url = f"{API}/models/{MODEL}/actions"
    by_name = [a["name"] for a in (await authed.get(url, params={"sort": "name"})).json()["actions"]]
    assert by_name == ["Delete Closed Employees", "Optimize Territories", "Sort Products"]
    by_id_desc = [a["id"] for a in (await authed.get(url, params={"sort": "-id"})).json()["actions"]]
    assert by_id_desc == list(reversed(EXPECTED_IDS["actions"]))
    unknown = await authed.get(url, params={"sort": "-bogus"})  # not validated by Anaplan: default order
    assert unknown.status_code == 200
    assert [a["id"] for a in unknown.json()["actions"]] == EXPECTED_IDS["actions"]


@pytest.mark.asyncio
async def test_a_model_outside_the_workspace_is_404(authed: httpx.AsyncClient) -> None:
    for suffix in ("files", "imports", "imports/112000000000", "exports/116000000000", "processes", "actions"):
        response = await authed.get(f"{API}/workspaces/{WS_HR}/models/{MODEL}/{suffix}")
        assert response.status_code == 404, suffix
        assert response.json()["path"] == f"{API}/workspaces/{WS_HR}/models/{MODEL}/{suffix}"
    assert (await authed.get(f"{API}/workspaces/{'f' * 32}/models/{MODEL}/imports")).status_code == 404
    assert (await authed.get(f"{API}/models/{'F' * 32}/imports")).status_code == 404


@pytest.mark.asyncio
@FORMS
async def test_import_metadata(authed: httpx.AsyncClient, base: str) -> None:
    body = (await authed.get(f"{base}/imports/112000000002")).json()
    meta = body["importMetadata"]
    assert meta["name"] == "Products from Products.csv"
    assert meta["type"] == "FILE"
    assert meta["source"]["headerNames"] == ["Code", "Name", "Category"]
    assert meta["source"]["columnCount"] == 3
    assert meta["source"]["columnSeparator"] == "\t"  # from the source file
    assert meta["source"]["textEncoding"] == "ISO-8859-1"
    model_import = (await authed.get(f"{base}/imports/112000000003")).json()["importMetadata"]
    assert model_import["type"] == "MODEL"
    assert "source" not in model_import


@pytest.mark.asyncio
@FORMS
async def test_a_fabricated_import_id_answers_500_as_live(authed: httpx.AsyncClient, base: str) -> None:
    response = await authed.get(f"{base}/imports/112999999999")
    assert response.status_code == 500
    assert response.json()["status"]["code"] == 500
    assert (await authed.get(f"{base}/imports/not-an-import")).status_code == 404


@pytest.mark.asyncio
@FORMS
async def test_export_metadata(authed: httpx.AsyncClient, base: str) -> None:
    meta = (await authed.get(f"{base}/exports/116000000000")).json()["exportMetadata"]
    assert meta["headerNames"] == ["Region", "Product", "Month", "Units", "Revenue"]
    assert meta["columnCount"] == 5
    assert meta["dataTypes"] == ["ENTITY", "ENTITY", "ENTITY", "NUMBER", "NUMBER"]
    assert meta["exportFormat"] == "text/csv"
    assert meta["rowCount"] == 1200
    assert (await authed.get(f"{base}/exports/116999999999")).status_code == 404


@pytest.mark.asyncio
@FORMS
async def test_process_metadata_lists_its_steps_in_order(authed: httpx.AsyncClient, base: str) -> None:
    meta = (await authed.get(f"{base}/processes/118000000000")).json()["processMetadata"]
    assert meta["name"] == "Nightly Load"
    assert [(s["id"], s["actionType"]) for s in meta["actions"]] == [
        ("112000000002", "IMPORT"),
        ("112000000000", "IMPORT"),
        ("112000000001", "IMPORT"),
        ("116000000000", "EXPORT"),
    ]
    assert meta["actions"][0]["importDataSourceId"] == "113000000002"
    assert "importDataSource" not in meta["actions"][0]
    shown = (await authed.get(f"{base}/processes/118000000000", params={"showImportDataSource": "true"})).json()
    assert shown["processMetadata"]["actions"][0]["importDataSource"] == {
        "importDataSourceId": "113000000002",
        "type": "FILE",
    }
    reset = (await authed.get(f"{base}/processes/118000000001")).json()["processMetadata"]["actions"]
    assert reset[0] == {"id": "117000000000", "name": "Delete Closed Employees", "actionType": "DELETE_BY_SELECTION"}
    assert (await authed.get(f"{base}/processes/118999999999")).status_code == 404


# --------------------------------------------------------------------------------------------------- auth
PROTECTED = [
    ("GET", f"{API}/users/me"),
    ("GET", f"{API}/workspaces"),
    ("GET", f"{API}/models/{MODEL}"),
    ("GET", f"{API}/workspaces/{WS}/models/{MODEL}/imports"),
    ("GET", f"{API}/models/{MODEL}/imports/112000000000"),
    ("GET", f"{API}/models/{MODEL}/status"),
    ("POST", f"{API}/workspaces/{WS}/bulkDeleteModels"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize("header", [None, "AnaplanAuthToken not-a-token", "Basic ZGVtbzp4"])
async def test_metadata_needs_a_live_token(
    client: httpx.AsyncClient, method: str, path: str, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    response = await client.request(method, path, headers=headers)
    assert response.status_code == 401
    assert response.json()["status"]["code"] == 401


@pytest.mark.asyncio
async def test_bearer_and_expiry(client: httpx.AsyncClient, clock: FakeClock) -> None:
    token = await login(client)
    assert (await client.get(f"{API}/workspaces", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    clock.advance(2101)
    assert (await client.get(f"{API}/workspaces", headers=token_header(token))).status_code == 401


# --------------------------------------------------------------------------------------------------- paging
@functools.cache
def _bulk_seed() -> dict[str, Any]:
    return bulk_seed(models=BULK_MODELS, objects=BULK_OBJECTS)


@pytest_asyncio.fixture
async def bulk(clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    """A client, already logged in, on an emulator holding more than 5000 models and 5000 of each model object."""
    app = create_app(_bulk_seed(), clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        c.headers.update(token_header(await login(c)))
        yield c


async def _walk_pages(client: httpx.AsyncClient, url: str, key: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Follow ``meta.paging.next`` from ``url``; returns every id and every page's paging block."""
    ids: list[str] = []
    pagings: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url:
        body = (await client.get(next_url)).json()
        pagings.append(body["meta"]["paging"])
        ids += [item["id"] for item in body.get(key, [])]
        next_url = body["meta"]["paging"].get("next")
        assert len(pagings) < 10
    return ids, pagings


@pytest.mark.asyncio
async def test_models_page_at_5000_and_next_walks_the_rest(bulk: httpx.AsyncClient) -> None:
    ids, pagings = await _walk_pages(bulk, f"{API}/models", "models")
    total = BULK_MODELS + 3
    assert len(ids) == total == len(set(ids))
    assert [p["currentPageSize"] for p in pagings] == [5000, total - 5000]
    assert all(p["totalSize"] == total for p in pagings)
    assert pagings[0]["next"] == f"{BASE}{API}/models?limit=5000&offset=5000"
    assert "previous" not in pagings[0]
    assert pagings[1]["previous"] == f"{BASE}{API}/models?limit=5000&offset=0"
    assert "next" not in pagings[1]


@pytest.mark.asyncio
async def test_limit_above_5000_is_capped(bulk: httpx.AsyncClient) -> None:
    body = (await bulk.get(f"{API}/models", params={"limit": 20000})).json()
    assert len(body["models"]) == 5000
    assert body["meta"]["paging"]["next"].endswith("limit=5000&offset=5000")


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["files", "imports", "exports", "processes", "actions"])
async def test_model_objects_page_over_5000(bulk: httpx.AsyncClient, kind: str) -> None:
    model = "B0" + "0" * 30
    ids, pagings = await _walk_pages(bulk, f"{API}/workspaces/{BULK_WORKSPACE_ID}/models/{model}/{kind}", kind)
    expected = BULK_OBJECTS * (2 if kind == "files" else 1)  # every export's output file is in the file list too
    assert len(ids) == expected == len(set(ids))
    assert ids == sorted(ids)
    assert [p["offset"] for p in pagings] == list(range(0, expected, 5000))


@pytest.mark.asyncio
async def test_small_pages_keep_other_parameters(bulk: httpx.AsyncClient) -> None:
    url = f"{API}/workspaces/{BULK_WORKSPACE_ID}/models"
    first = (await bulk.get(url, params={"modelDetails": "true", "limit": 2, "offset": 4})).json()
    assert [m["name"] for m in first["models"]] == ["Bulk Model 00004", "Bulk Model 00005"]
    paging = first["meta"]["paging"]
    assert paging == {
        "currentPageSize": 2,
        "offset": 4,
        "totalSize": BULK_MODELS,
        "next": f"{BASE}{url}?modelDetails=true&limit=2&offset=6",
        "previous": f"{BASE}{url}?modelDetails=true&limit=2&offset=2",
    }
    sorted_page = (await bulk.get(f"{API}/models", params={"sort": "-name", "limit": 1})).json()
    assert sorted_page["models"][0]["name"] == "Workforce Plan"
    assert "sort=-name" in sorted_page["meta"]["paging"]["next"]


@pytest.mark.asyncio
async def test_an_offset_past_the_end_is_an_empty_page(authed: httpx.AsyncClient) -> None:
    body = (await authed.get(f"{API}/models/{MODEL}/imports", params={"offset": 10, "limit": 3})).json()
    assert "imports" not in body
    assert body["meta"]["paging"]["currentPageSize"] == 0
    assert body["meta"]["paging"]["totalSize"] == 4
    assert "next" not in body["meta"]["paging"]
    assert body["meta"]["paging"]["previous"].endswith("limit=3&offset=7")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "params", [{"limit": "0"}, {"limit": "-1"}, {"limit": "ten"}, {"offset": "-5"}, {"offset": "1.5"}]
)
async def test_bad_paging_values_are_400(authed: httpx.AsyncClient, params: dict[str, str]) -> None:
    for url in (f"{API}/models", f"{API}/models/{MODEL}/files", f"{API}/workspaces"):
        response = await authed.get(url, params=params)
        assert response.status_code == 400, url
        assert response.json()["status"]["code"] == 400


# --------------------------------------------------------------------------------------------------- bulk delete
@pytest.mark.asyncio
async def test_bulk_delete_models(authed: httpx.AsyncClient) -> None:
    url = f"{API}/workspaces/{WS}/bulkDeleteModels"
    response = await authed.post(url, json={"modelIdsToDelete": [MODEL_DEV, MODEL, MODEL_HR]})
    assert response.status_code == 200
    body = response.json()
    assert body["modelsDeleted"] == 1
    failures = {f["modelId"]: f["message"] for f in body["bulkDeleteModelsFailures"]}
    assert set(failures) == {MODEL, MODEL_HR}  # MODEL is open; MODEL_HR lives in another workspace
    assert (await authed.get(f"{API}/models/{MODEL_DEV}")).status_code == 404
    assert [m["id"] for m in (await authed.get(f"{API}/workspaces/{WS}/models")).json()["models"]] == [MODEL]
    clean = (
        await authed.post(f"{API}/workspaces/{WS_HR}/bulkDeleteModels", json={"modelIdsToDelete": [MODEL_HR]})
    ).json()
    assert clean["modelsDeleted"] == 1
    assert "bulkDeleteModelsFailures" not in clean


@pytest.mark.asyncio
@pytest.mark.parametrize("body", [None, [], {"modelIdsToDelete": MODEL}, {"modelIdsToDelete": [1]}, {"ids": []}])
async def test_bulk_delete_rejects_a_bad_body(authed: httpx.AsyncClient, body: Any) -> None:
    response = await authed.post(f"{API}/workspaces/{WS}/bulkDeleteModels", json=body)
    assert response.status_code == 400
    not_json = await authed.post(
        f"{API}/workspaces/{WS}/bulkDeleteModels", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 400
    unknown = await authed.post(f"{API}/workspaces/{'f' * 32}/bulkDeleteModels", json={"modelIdsToDelete": []})
    assert unknown.status_code == 404


# --------------------------------------------------------------------------------------------------- real HTTP
def test_metadata_over_a_real_socket(live_server) -> None:
    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        auth = http.post("/token/authenticate", auth=("demo@anaplan.example", "emulator-password"))
        assert auth.status_code == 201
        http.headers["Authorization"] = f"AnaplanAuthToken {auth.json()['tokenInfo']['tokenValue']}"
        first = http.get(f"{API}/models", params={"limit": 2}).json()
        assert first["meta"]["paging"]["totalSize"] == 3
        next_url = first["meta"]["paging"]["next"]
        assert urlsplit(next_url).netloc == urlsplit(live_server.url).netloc  # points back at this server
        second = http.get(next_url).json()
        assert [m["id"] for m in first["models"] + second["models"]] == [MODEL, MODEL_DEV, MODEL_HR]
        imports = http.get(f"{API}/workspaces/{WS}/models/{MODEL}/imports/").json()
        assert len(imports["imports"]) == 4
