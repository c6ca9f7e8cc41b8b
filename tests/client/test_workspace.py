"""The metadata layer over real HTTP against the emulator (httpx ASGI transport): every call, both path forms,
paging, sort and search, name resolution, and the checks that fail before any network call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from airflow_provider_anaplan.client._transport import Transport
from airflow_provider_anaplan.client.auth import BasicAuth
from airflow_provider_anaplan.client.errors import (
    InvalidInputError,
    NameNotFoundError,
    NotFoundError,
    ProtocolError,
    ServerError,
)
from airflow_provider_anaplan.client.models import ActiveState, ImportSourceType
from airflow_provider_anaplan.client.settings import ClientSettings
from airflow_provider_anaplan.client.workspace import MetadataAPI, close_matches, search_matcher, sort_param
from airflow_provider_anaplan.emulator import EmulatorApp
from airflow_provider_anaplan.emulator._asgi import json_response
from airflow_provider_anaplan.emulator.auth import require_user
from airflow_provider_anaplan.emulator.state import Model as EmulatorModel
from tests.emulator.conftest import FakeClock

from .conftest import BASE, FAST_RETRIES

FPA = "8a81b01c7d2e4f3a9b5c6d7e8f901a2b"  # "FP&A Production"
HR = "8a81b01c3e5f4a7b9c1d2e3f4a5b6c7d"  # "HR Planning"
SALES = "75A40874E6B64FA3AE0743278996850F"  # "Sales Forecast" in FP&A (open)
DEV = "A1C4E2B97F3D4C5E8A6B0D2F4E6A8C01"  # "Sales Forecast DEV" in FP&A (closed)
WORKFORCE = "3C9E5A1B7D2F4E6A8B0C1D3E5F7A9B2C"  # "Workforce Plan" in HR
UNKNOWN_MODEL = "0123456789ABCDEF0123456789ABCDEF"


class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes requests to the emulator and records each one, to see which paths were called (and how often)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def api_calls(self) -> list[str]:
        """``METHOD path?query`` of every Integration API call (not the auth service's)."""
        return [f"{r.method} {r.url.raw_path.decode()}" for r in self.requests if r.url.path.startswith("/2/0/")]


@pytest.fixture
def recorder(app: EmulatorApp) -> RecordingTransport:
    return RecordingTransport(httpx.ASGITransport(app=app))


@pytest_asyncio.fixture
async def api(recorder: RecordingTransport, clock: FakeClock, basic_auth: BasicAuth) -> AsyncIterator[MetadataAPI]:
    """The metadata layer on a Transport that reaches the in-process emulator through ``recorder``."""
    settings = ClientSettings(base_url=BASE, transport=recorder, clock=clock, **FAST_RETRIES)
    transport = Transport(settings, basic_auth)
    yield MetadataAPI(transport)
    await transport.aclose()


class NoNetwork:
    """A stand-in transport that fails the test if the metadata layer uses it at all."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the network was used ({name}) although the input was invalid")


# -------------------------------------------------------------------------------------------- users, workspaces
@pytest.mark.asyncio
async def test_current_user(api: MetadataAPI) -> None:
    user = await api.get_current_user()
    assert user.email == "demo@anaplan.example"
    assert (user.first_name, user.last_name) == ("Demo", "Integrator")
    assert len(user.id) == 32


@pytest.mark.asyncio
async def test_list_workspaces_details_search_and_sort(api: MetadataAPI, recorder: RecordingTransport) -> None:
    workspaces = await api.list_workspaces()
    assert {w.name for w in workspaces} == {"FP&A Production", "HR Planning"}
    assert all(w.size_allowance and w.current_size is not None for w in workspaces)
    assert all(w.size_allowance is None for w in await api.list_workspaces(tenant_details=False))
    assert [w.name for w in await api.list_workspaces(search="hr")] == ["HR Planning"]
    assert [w.name for w in await api.list_workspaces(search="fp_a")] == ["FP&A Production"]
    assert [w.name for w in await api.list_workspaces(sort="-name")] == ["HR Planning", "FP&A Production"]
    assert [w.name for w in await api.list_workspaces(sort="name")] == ["FP&A Production", "HR Planning"]
    calls = recorder.api_calls()
    assert any("s=hr" in c for c in calls)
    assert any("sort=%2Bname" in c for c in calls)  # the prefix is added and sent encoded, not as a space


@pytest.mark.asyncio
async def test_get_workspace(api: MetadataAPI) -> None:
    workspace = await api.get_workspace(HR)
    assert workspace.name == "HR Planning"
    assert workspace.size_allowance == 5368709120
    with pytest.raises(NotFoundError, match="No workspace with id"):
        await api.get_workspace("0" * 32)


# --------------------------------------------------------------------------------------------------- models
@pytest.mark.asyncio
async def test_list_models_tenant_and_workspace(api: MetadataAPI, recorder: RecordingTransport) -> None:
    models = await api.list_models()
    assert {m.id for m in models} == {SALES, DEV, WORKFORCE}
    assert all(m.last_saved_serial_number is None for m in models)  # details only on request
    in_fpa = await api.list_models(FPA, model_details=True)
    assert {m.id for m in in_fpa} == {SALES, DEV}
    assert {m.current_workspace_name for m in in_fpa} == {"FP&A Production"}
    assert {m.last_saved_serial_number for m in in_fpa} == {2000051, 2000117}
    assert any(c.startswith(f"GET /2/0/workspaces/{FPA}/models?") for c in recorder.api_calls())


@pytest.mark.asyncio
async def test_list_models_search_and_sort(api: MetadataAPI, recorder: RecordingTransport) -> None:
    assert [m.name for m in await api.list_models(search="dev")] == ["Sales Forecast DEV"]
    assert [m.name for m in await api.list_models(sort="-name")] == [
        "Workforce Plan",
        "Sales Forecast DEV",
        "Sales Forecast",
    ]
    assert [m.name for m in await api.list_models(sort=["activeState", "-name"])] == [
        "Sales Forecast",  # PRODUCTION
        "Workforce Plan",  # UNLOCKED
        "Sales Forecast DEV",  # UNLOCKED
    ]
    assert any("sort=%2BactiveState%2C-name" in c for c in recorder.api_calls())
    # The workspace list offers neither: the client filters and sorts it itself.
    assert [m.name for m in await api.list_models(FPA, sort="-name")] == ["Sales Forecast DEV", "Sales Forecast"]
    assert [m.name for m in await api.list_models(FPA, search="%DEV")] == ["Sales Forecast DEV"]
    assert not any(("s=" in c or "sort=" in c) for c in recorder.api_calls() if f"/workspaces/{FPA}/" in c)


@pytest.mark.asyncio
async def test_list_models_search_applied_even_when_the_server_ignores_it(app: EmulatorApp, clock: FakeClock) -> None:
    """Anaplan ignores ``s=`` on /models unless the user is a Tenant Admin: the client still filters."""

    def ignore_search(request: httpx.Request) -> httpx.URL:
        return request.url.copy_remove_param("s")

    class DropSearch(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            request.url = ignore_search(request)
            return await httpx.ASGITransport(app=app).handle_async_request(request)

    settings = ClientSettings(base_url=BASE, transport=DropSearch(), clock=clock, **FAST_RETRIES)
    async with Transport(settings, BasicAuth("demo@anaplan.example", "emulator-password")) as transport:
        models = await MetadataAPI(transport).list_models(search="workforce")
    assert [m.name for m in models] == ["Workforce Plan"]


@pytest.mark.asyncio
async def test_get_model(api: MetadataAPI, recorder: RecordingTransport) -> None:
    model = await api.get_model(SALES)
    assert model.name == "Sales Forecast"
    assert model.active_state == ActiveState.PRODUCTION
    assert model.last_saved_serial_number == 2000051
    assert model.memory_usage == 412352512
    assert recorder.api_calls()[-1] == f"GET /2/0/models/{SALES}?modelDetails=true"
    assert (await api.get_model(SALES, model_details=False)).last_saved_serial_number is None
    with pytest.raises(NotFoundError) as caught:
        await api.get_model(UNKNOWN_MODEL)
    assert caught.value.status == 404


@pytest.mark.parametrize("workspace_id", [None, FPA])
@pytest.mark.asyncio
async def test_model_status_both_path_forms(
    api: MetadataAPI, recorder: RecordingTransport, workspace_id: str | None
) -> None:
    open_status = await api.get_model_status(SALES, workspace_id)
    closed_status = await api.get_model_status(DEV, workspace_id)
    assert (open_status.current_step, closed_status.current_step) == ("Open", "Closed")
    assert open_status.is_idle and open_status.progress == -1.0
    assert open_status.creation_time
    prefix = f"/2/0/workspaces/{FPA}/models/" if workspace_id else "/2/0/models/"
    assert recorder.api_calls()[-1] == f"GET {prefix}{DEV}/status"


@pytest.mark.asyncio
async def test_bulk_delete_models(api: MetadataAPI, app: EmulatorApp, recorder: RecordingTransport) -> None:
    result = await api.bulk_delete_models(FPA, [DEV, SALES, DEV])
    assert result.models_deleted == 1
    assert [(f.model_id, "open" in (f.message or "")) for f in result.failures] == [(SALES, True)]
    assert {m.id for m in await api.list_models(FPA)} == {SALES}
    assert DEV not in app.state.models
    calls_before = len(recorder.requests)
    assert (await api.bulk_delete_models(FPA, [])).models_deleted == 0  # nothing to do: no call
    assert len(recorder.requests) == calls_before
    with pytest.raises(InvalidInputError, match="is not a model id"):
        await api.bulk_delete_models(FPA, ["Sales Forecast"])


@pytest.mark.asyncio
async def test_bulk_delete_models_is_retried_after_a_dropped_answer(
    api: MetadataAPI, app: EmulatorApp, recorder: RecordingTransport
) -> None:
    # SAFE by design (classify agrees): deleting twice has the effect of deleting once. The first call deleted DEV
    # but its answer was lost; the replay finds DEV gone, so Anaplan's final answer reports it as a failure ("not
    # found") rather than as deleted. The models are deleted either way; a caller who needs the count lists the
    # workspace's models afterwards, as the docstring of bulk_delete_models says.
    app.faults.add_rule("drop", method="POST", path="/bulkDeleteModels$", count=1)
    result = await api.bulk_delete_models(FPA, [DEV])
    bulk_calls = [c for c in recorder.api_calls() if c.endswith("/bulkDeleteModels")]
    assert len(bulk_calls) == 2 and app.state.counters["faults.drop"] == 1, "retried once after the dropped answer"
    assert DEV not in app.state.models and {m.id for m in await api.list_models(FPA)} == {SALES}
    assert result.models_deleted == 0
    assert [(f.model_id, "not found" in (f.message or "")) for f in result.failures] == [(DEV, True)]


# ---------------------------------------------------------------------------------------- model objects
@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("list_files", {"113000000000", "113000000001", "113000000002", "116000000000", "116000000001"}),
        ("list_imports", {"112000000000", "112000000001", "112000000002", "112000000003"}),
        ("list_exports", {"116000000000", "116000000001"}),
        ("list_processes", {"118000000000", "118000000001"}),
        ("list_actions", {"117000000000", "117000000001", "117000000002"}),
    ],
)
@pytest.mark.asyncio
async def test_object_lists_in_both_path_forms(
    api: MetadataAPI, recorder: RecordingTransport, method: str, expected: set[str]
) -> None:
    by_model = await getattr(api, method)(SALES)
    by_workspace = await getattr(api, method)(SALES, FPA)
    assert {o.id for o in by_model} == expected
    assert by_model == by_workspace
    collection = method.removeprefix("list_")
    calls = [c.split("?")[0] for c in recorder.api_calls()]
    assert calls == [f"GET /2/0/models/{SALES}/{collection}", f"GET /2/0/workspaces/{FPA}/models/{SALES}/{collection}"]


@pytest.mark.asyncio
async def test_object_list_sort(api: MetadataAPI, recorder: RecordingTransport) -> None:
    names = [i.name for i in await api.list_imports(SALES, sort="-name")]
    assert names == sorted(names, key=str.casefold, reverse=True)
    assert [e.id for e in await api.list_exports(SALES, FPA, sort="-id")] == ["116000000001", "116000000000"]
    assert any("sort=-name" in c for c in recorder.api_calls())


@pytest.mark.asyncio
async def test_object_fields(api: MetadataAPI) -> None:
    files = {f.id: f for f in await api.list_files(SALES)}
    assert files["113000000002"].separator == "\t"
    assert files["113000000002"].encoding == "ISO-8859-1"
    assert files["116000000000"].header_row == 0  # an export's output file
    imports = {i.id: i for i in await api.list_imports(SALES)}
    assert imports["112000000000"].import_data_source_id == "113000000000"
    assert imports["112000000000"].import_type == "HIERARCHY_DATA"
    actions = {a.id: a.action_type for a in await api.list_actions(SALES)}
    assert actions["117000000002"] == "OPTIMIZER"


@pytest.mark.asyncio
async def test_empty_collections(api: MetadataAPI) -> None:
    assert await api.list_exports(DEV) == []
    assert await api.list_processes(DEV, FPA) == []
    assert await api.list_actions(DEV) == []


@pytest.mark.parametrize("workspace_id", [None, FPA])
@pytest.mark.asyncio
async def test_import_metadata(api: MetadataAPI, recorder: RecordingTransport, workspace_id: str | None) -> None:
    meta = await api.get_import_metadata(SALES, "112000000001", workspace_id)
    assert meta.id == "112000000001"
    assert meta.type == ImportSourceType.FILE
    assert meta.import_type == "MODULE_DATA"
    assert meta.import_data_source_id == "113000000001"
    assert meta.header_names == ("Region", "Product", "Month", "Units", "Revenue")
    assert meta.source is not None and meta.source.column_count == 5 and meta.source.header_row == 1
    prefix = f"/2/0/workspaces/{FPA}/models/{SALES}" if workspace_id else f"/2/0/models/{SALES}"
    assert [c.split("?")[0] for c in recorder.api_calls()] == [
        f"GET {prefix}/imports",
        f"GET {prefix}/imports/112000000001",
    ]


@pytest.mark.asyncio
async def test_import_metadata_of_a_model_import(api: MetadataAPI) -> None:
    meta = await api.get_import_metadata(SALES, "112000000003")
    assert meta.type == ImportSourceType.MODEL
    assert meta.source is None
    assert meta.header_names == ()


@pytest.mark.asyncio
async def test_fabricated_import_id_is_not_found_not_a_server_error(
    api: MetadataAPI, recorder: RecordingTransport
) -> None:
    # Anaplan (and the emulator) answer 500 for a well-formed import id that does not exist ...
    with pytest.raises(ServerError):
        await api._transport.get_json(f"models/{SALES}/imports/112000000099")
    recorder.requests.clear()
    # ... so the client looks the id up in the import list first and never asks for its metadata.
    with pytest.raises(NotFoundError) as caught:
        await api.get_import_metadata(SALES, "112000000099", FPA)
    assert not isinstance(caught.value, ServerError)
    assert "No import with id '112000000099' in model" in str(caught.value)
    assert "'Employees from Employees.csv' (112000000000)" in str(caught.value)
    assert [c.split("?")[0] for c in recorder.api_calls()] == [f"GET /2/0/workspaces/{FPA}/models/{SALES}/imports"]


@pytest.mark.parametrize("workspace_id", [None, HR])
@pytest.mark.asyncio
async def test_export_metadata(api: MetadataAPI, workspace_id: str | None) -> None:
    meta = await api.get_export_metadata(WORKFORCE, "116000000010", workspace_id)
    assert meta.id == "116000000010"
    assert meta.header_names == ("Cost Center", "Headcount")
    assert meta.data_types == ("ENTITY", "NUMBER")
    assert meta.list_names == ("Cost Centers",)
    assert (meta.column_count, meta.row_count, meta.export_format) == (2, 40, "text/csv")


@pytest.mark.parametrize("workspace_id", [None, FPA])
@pytest.mark.asyncio
async def test_process_metadata(api: MetadataAPI, recorder: RecordingTransport, workspace_id: str | None) -> None:
    meta = await api.get_process_metadata(SALES, "118000000000", workspace_id)
    assert meta.id == "118000000000"
    assert meta.name == "Nightly Load"
    assert [s.id for s in meta.actions] == ["112000000002", "112000000000", "112000000001", "116000000000"]
    assert [s.action_type for s in meta.actions] == ["IMPORT", "IMPORT", "IMPORT", "EXPORT"]
    first = meta.actions[0]
    assert first.import_data_source is not None and first.import_data_source.import_data_source_id == "113000000002"
    assert recorder.api_calls()[-1].endswith("/processes/118000000000?showImportDataSource=true")
    plain = await api.get_process_metadata(SALES, "118000000001", workspace_id, show_import_data_source=False)
    assert [s.action_type for s in plain.actions] == ["DELETE_BY_SELECTION", "IMPORT"]
    assert plain.actions[1].import_data_source is None


@pytest.mark.asyncio
async def test_unknown_process_and_export_are_not_found(api: MetadataAPI) -> None:
    with pytest.raises(NotFoundError):
        await api.get_process_metadata(SALES, "118000000099")
    with pytest.raises(NotFoundError):
        await api.get_export_metadata(SALES, "116000000099", FPA)
    with pytest.raises(NotFoundError):
        await api.list_imports(UNKNOWN_MODEL)
    with pytest.raises(NotFoundError):  # a model of another workspace, in the workspace form
        await api.list_imports(WORKFORCE, FPA)


# ---------------------------------------------------------------------------------------------------- paging
@pytest.mark.asyncio
async def test_paging_over_more_than_5000_items(
    api: MetadataAPI, app: EmulatorApp, recorder: RecordingTransport
) -> None:
    model = app.state.models[DEV]
    for i in range(5003):
        object_id = f"112{100000 + i:09d}"
        model.imports[object_id] = {"id": object_id, "name": f"Import {i:05d}", "importType": "MODULE_DATA"}
    imports = await api.list_imports(DEV, FPA)
    assert len(imports) == 5004
    assert len({i.id for i in imports}) == 5004
    pages = [c for c in recorder.api_calls() if c.startswith(f"GET /2/0/workspaces/{FPA}/models/{DEV}/imports?")]
    assert len(pages) == 2
    assert "offset=0" in pages[0] and "offset=5000" in pages[1]
    # A name on the second page resolves too.
    assert await api.resolve_import(DEV, "Import 05002", FPA) == "112000105002"


# --------------------------------------------------------------------------------------------- resolution
@pytest.mark.asyncio
async def test_resolve_each_kind_by_name(api: MetadataAPI) -> None:
    assert await api.resolve_workspace("HR Planning") == HR
    assert await api.resolve_model("Sales Forecast") == SALES
    assert await api.resolve_model("Sales Forecast DEV", FPA) == DEV
    assert await api.resolve_file(SALES, "Products.csv") == "113000000002"
    assert await api.resolve_file(SALES, "Sales Report.csv", FPA) == "116000000000"
    assert await api.resolve_import(SALES, "Employees from Employees.csv") == "112000000000"
    assert await api.resolve_export(SALES, "Employees Grid.csv", FPA) == "116000000001"
    assert await api.resolve_process(SALES, "Reset Forecast") == "118000000001"
    assert await api.resolve_action(SALES, "Optimize Territories", FPA) == "117000000002"


@pytest.mark.asyncio
async def test_find_returns_the_object(api: MetadataAPI) -> None:
    assert (await api.find_workspace(FPA)).name == "FP&A Production"
    assert (await api.find_model(WORKFORCE)).current_workspace_id == HR
    assert (await api.find_import(SALES, "112000000001")).import_data_source_id == "113000000001"
    assert (await api.find_export(SALES, "Sales Report.csv")).export_format == "text/csv"
    assert (await api.find_process(SALES, "Nightly Load", FPA)).id == "118000000000"
    assert (await api.find_action(SALES, "117000000000")).action_type == "DELETE_BY_SELECTION"
    assert (await api.find_file(SALES, "113000000001")).name == "Sales Actuals.csv"
    with pytest.raises(NotFoundError, match="No export with id '116000000099'"):
        await api.find_export(SALES, "116000000099")


@pytest.mark.asyncio
async def test_ids_resolve_without_a_call(api: MetadataAPI, recorder: RecordingTransport) -> None:
    assert await api.resolve_workspace(HR) == HR
    assert await api.resolve_model(SALES) == SALES
    assert await api.resolve_file(SALES, "116000000000") == "116000000000"
    assert await api.resolve_import(SALES, "112000000000") == "112000000000"
    assert await api.resolve_export(SALES, "116000000000") == "116000000000"
    assert await api.resolve_process(SALES, "118000000000") == "118000000000"
    assert await api.resolve_action(SALES, "117000000000") == "117000000000"
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("call", "close"),
    [
        (lambda api: api.resolve_workspace("HR Planing"), ["HR Planning"]),
        (lambda api: api.resolve_model("sales forcast"), ["Sales Forecast", "Sales Forecast DEV"]),
        (lambda api: api.resolve_file(SALES, "products.csv"), ["Products.csv"]),
        (lambda api: api.resolve_import(SALES, "Employees"), ["Employees from Employees.csv"]),
        (lambda api: api.resolve_export(SALES, "Sales Report", FPA), ["Sales Report.csv"]),
        (lambda api: api.resolve_process(SALES, "Nightly Laod"), ["Nightly Load"]),
        (lambda api: api.resolve_action(SALES, "Optimise Territories"), ["Optimize Territories"]),
    ],
)
@pytest.mark.asyncio
async def test_unknown_names_list_the_closest(api: MetadataAPI, call: Any, close: list[str]) -> None:
    with pytest.raises(NameNotFoundError) as caught:
        await call(api)
    error = caught.value
    assert error.close_matches[: len(close)] == close
    assert "Did you mean: " + ", ".join(repr(c) for c in close) in str(error)
    assert isinstance(error, NotFoundError) and isinstance(error, InvalidInputError)


@pytest.mark.asyncio
async def test_unknown_name_without_close_matches_lists_known_names(api: MetadataAPI) -> None:
    with pytest.raises(NameNotFoundError) as caught:
        await api.resolve_process(SALES, "zzz", FPA)
    assert caught.value.close_matches == []
    assert "'Nightly Load'" in str(caught.value) and "'Reset Forecast'" in str(caught.value)
    assert f"model {SALES} of workspace {FPA}" in str(caught.value)


@pytest.mark.asyncio
async def test_ambiguous_model_name(api: MetadataAPI, app: EmulatorApp) -> None:
    copy = EmulatorModel(id="F" * 32, name="Sales Forecast", workspace_id=HR)
    app.state.models[copy.id] = copy
    app.state.workspaces[HR].model_ids.append(copy.id)
    with pytest.raises(InvalidInputError, match="2 models are named 'Sales Forecast'") as caught:
        await api.resolve_model("Sales Forecast")
    assert not isinstance(caught.value, NotFoundError)
    assert await api.resolve_model("Sales Forecast", HR) == copy.id
    assert await api.resolve_model("Sales Forecast", FPA) == SALES
    copy.active_state = "ARCHIVED"  # an archived copy does not make the name ambiguous
    assert await api.resolve_model("Sales Forecast") == SALES


# ------------------------------------------------------------------------------------ bad input, no network
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda api: api.get_import_metadata(SALES, "116000000000"),
            "'116000000000' is an export id, not an import id",
        ),
        (
            lambda api: api.get_export_metadata(SALES, "112000000000"),
            "'112000000000' is an import id, not an export id",
        ),
        (lambda api: api.get_process_metadata(SALES, "117000000000"), "is an action id, not a process id"),
        (lambda api: api.resolve_import(SALES, "118000000000"), "'118000000000' is a process id, not an import id"),
        (lambda api: api.find_import(SALES, "116000000000"), "is an export id, not an import id"),
        (lambda api: api.resolve_file(SALES, "112000000000"), "is an import id, not a file id"),
        (lambda api: api.resolve_action(SALES, "118000000000"), "is a process id, not an action id"),
        (lambda api: api.resolve_export(SALES, "113000000000"), "is a file id, not an export id"),
        (lambda api: api.resolve_process(SALES, "112000000000"), "is an import id, not a process id"),
        (lambda api: api.find_action(SALES, "999000000000"), "999 is not a prefix this client knows"),
        (lambda api: api.list_imports("Sales Forecast"), "'Sales Forecast' is not a model id"),
        (lambda api: api.list_files(SALES, "FP&A"), "'FP&A' is not a workspace id"),
        (lambda api: api.get_model(SALES[:-1]), "is not a model id"),
        (lambda api: api.get_workspace("HR Planning"), "is not a workspace id"),
        (lambda api: api.get_model_status("x"), "is not a model id"),
        (lambda api: api.list_models("HR Planning"), "is not a workspace id"),
        (lambda api: api.resolve_import(SALES, ""), "must be a non-empty string"),
        (lambda api: api.list_imports(SALES, sort="+"), "sort must name a field"),
    ],
)
@pytest.mark.asyncio
async def test_bad_input_fails_before_any_network_call(call: Any, message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        await call(MetadataAPI(NoNetwork()))  # type: ignore[arg-type]
    assert message in str(caught.value)


@pytest.mark.asyncio
async def test_wrong_prefix_never_reaches_the_emulator(api: MetadataAPI, app: EmulatorApp) -> None:
    await api.get_current_user()  # log in first, so any later request would show in the emulator's counters
    before = dict(app.state.counters)
    with pytest.raises(InvalidInputError, match="is an export id, not an import id"):
        await api.get_import_metadata(SALES, "116000000001", FPA)
    assert app.state.counters == before


# ------------------------------------------------------------------------------------------ lenient parsing
@pytest.mark.asyncio
async def test_unknown_enum_values_do_not_crash(api: MetadataAPI, app: EmulatorApp) -> None:
    app.state.models[DEV].active_state = "HIBERNATING"
    app.state.models[DEV].imports["112000000000"]["importType"] = "QUANTUM_DATA"
    app.state.models[DEV].imports["112000000000"]["somethingNew"] = {"nested": [1, 2]}
    model = next(m for m in await api.list_models(FPA) if m.id == DEV)
    assert model.active_state == "HIBERNATING"
    assert model.active_state not in ActiveState.KNOWN
    assert (await api.list_imports(DEV))[0].import_type == "QUANTUM_DATA"
    assert await api.resolve_model("Sales Forecast DEV") == DEV


@pytest.mark.asyncio
async def test_an_unreadable_model_from_the_emulator_is_a_protocol_error(api: MetadataAPI, app: EmulatorApp) -> None:
    app.state.models[SALES].details["lastSavedSerialNumber"] = "latest"  # not a number
    with pytest.raises(ProtocolError, match="lastSavedSerialNumber"):
        await api.get_model(SALES)


# The emulator's routes never answer these malformed shapes (its state cannot hold a user without an id or a status
# without requestStatus), so the emulator is made to answer one route with the body as is: the request still goes over
# HTTP through the real Transport (token, headers, status, JSON parsing); only the route's body is replaced.
@pytest.mark.parametrize(
    ("route", "body", "call", "message"),
    [
        ("/2/0/users/me", {"status": {"code": 200}}, lambda api: api.get_current_user(), "without its 'user' member"),
        (
            "/2/0/users/me",
            {"user": {"email": "x@y.z"}},
            lambda api: api.get_current_user(),
            "a user the client cannot read: id",
        ),
        (
            f"/2/0/models/{SALES}/imports",
            {"imports": [{"name": "no id"}], "meta": {"paging": {"currentPageSize": 1, "totalSize": 1, "offset": 0}}},
            lambda api: api.list_imports(SALES),
            "an item of imports the client cannot read",
        ),
        (f"/2/0/models/{SALES}/status", {"status": {}}, lambda api: api.get_model_status(SALES), "'requestStatus'"),
    ],
)
@pytest.mark.asyncio
async def test_unreadable_answers_are_protocol_errors(
    route: str, body: dict[str, Any], call: Any, message: str, api: MetadataAPI, app: EmulatorApp
) -> None:
    original = app.dispatch
    answered: list[str] = []

    async def dispatch(request: Any) -> Any:
        if request.path == route:
            require_user(app.state, request)  # still authenticated like the real route
            answered.append(request.path)
            return json_response(body)
        return await original(request)

    app.dispatch = dispatch  # type: ignore[method-assign]
    with pytest.raises(ProtocolError) as caught:
        await call(api)
    assert message in str(caught.value)
    assert answered == [route]


# ----------------------------------------------------------------------------------------------- helpers
def test_sort_param() -> None:
    assert sort_param(None) is None
    assert sort_param("name") == "+name"
    assert sort_param("-name") == "-name"
    assert sort_param("name, -activeState") == "+name,-activeState"
    assert sort_param(["+name", "id"]) == "+name,+id"
    for bad in ("", "+", "name,,id"):
        with pytest.raises(InvalidInputError):
            sort_param(bad)


def test_search_matcher() -> None:
    assert search_matcher("plan").search("HR Planning")
    assert search_matcher("f_a").search("FP&A") is None
    assert search_matcher("p_a").search("FP&A Production")
    assert search_matcher("P&A%tion").search("FP&A Production")
    assert search_matcher("a.b").search("axb") is None  # regex characters are literal


def test_close_matches() -> None:
    names = ["Sales Forecast", "Sales Forecast DEV", "Workforce Plan"]
    assert close_matches("sales forcast", names)[:2] == ["Sales Forecast", "Sales Forecast DEV"]
    assert close_matches("Workforce", names) == ["Workforce Plan"]
    assert close_matches("zzz", names) == []
    assert len(close_matches("a", [f"a{i}" for i in range(20)])) == 5
