"""Wire models: camelCase in, snake_case out, lenient about unknown fields, values and missing collections."""

from __future__ import annotations

import pydantic
import pytest

from airflow_provider_anaplan.client.models import (
    Action,
    ActionType,
    ActiveState,
    BulkDeleteResult,
    Export,
    ExportMetadata,
    File,
    Import,
    ImportMetadata,
    ImportType,
    Model,
    ModelStatus,
    Paging,
    ProcessMetadata,
    User,
    Workspace,
)

MODEL_WIRE = {
    "id": "75A40874E6B64FA3AE0743278996850F",
    "name": "Sales Forecast",
    "activeState": "PRODUCTION",
    "currentWorkspaceId": "8a81b01c7d2e4f3a9b5c6d7e8f901a2b",
    "currentWorkspaceName": "FP&A Production",
    "modelUrl": "https://us1a.app.anaplan.com/models/75A4",
    "categoryValues": [{"id": "1", "attribute": "Business Function", "categoryName": "Planning"}],
    "lastSavedSerialNumber": "2000051",
    "memoryUsage": 412352512,
    "isoCreationDate": "2024-03-11T09:12:44.000+0000",
    "modelTransactionRunning": False,
}


def test_model_from_wire() -> None:
    model = Model.model_validate(MODEL_WIRE)
    assert model.active_state == ActiveState.PRODUCTION
    assert model.current_workspace_name == "FP&A Production"
    assert model.last_saved_serial_number == 2000051
    assert model.category_values[0].category_name == "Planning"
    assert model.memory_usage == 412352512
    assert model.model_transaction_running is False
    assert not model.is_archived


@pytest.mark.parametrize("serial", ["2000051", 2000051, " 2000051 "])
def test_last_saved_serial_number_string_or_int(serial: object) -> None:
    assert Model.model_validate({**MODEL_WIRE, "lastSavedSerialNumber": serial}).last_saved_serial_number == 2000051


def test_last_saved_serial_number_garbage_is_an_error() -> None:
    with pytest.raises(pydantic.ValidationError):
        Model.model_validate({**MODEL_WIRE, "lastSavedSerialNumber": "latest"})


def test_unknown_enum_values_and_fields_are_kept_or_ignored() -> None:
    model = Model.model_validate({**MODEL_WIRE, "activeState": "HIBERNATING", "brandNewField": {"x": 1}})
    assert model.active_state == "HIBERNATING"
    assert model.active_state not in ActiveState.KNOWN
    assert not hasattr(model, "brandNewField")
    imp = Import.model_validate({"id": "112000000001", "name": "i", "importType": "FUTURE_TYPE"})
    assert imp.import_type == "FUTURE_TYPE"
    assert ImportType.MODULE_DATA in ImportType.KNOWN
    action = Action.model_validate({"id": "117000000001", "name": "a", "actionType": "QUANTUM_DELETE"})
    assert action.action_type == "QUANTUM_DELETE"
    assert ActionType.OPTIMIZER in ActionType.KNOWN
    export = Export.model_validate({"id": "116000000001", "name": "e", "exportType": "TABULAR_SINGLE_COLUMN"})
    assert export.export_type == "TABULAR_SINGLE_COLUMN"
    meta = ExportMetadata.model_validate({"dataTypes": ["NUMBER", "HYPERCUBE"], "headerNames": ["a", "b"]})
    assert meta.data_types == ("NUMBER", "HYPERCUBE")


def test_names_and_aliases_both_accepted_and_frozen() -> None:
    by_name = Workspace(id="w" * 32, name="WS", size_allowance=10, current_size=3)
    by_alias = Workspace.model_validate({"id": "w" * 32, "name": "WS", "sizeAllowance": 10, "currentSize": 3})
    assert by_name == by_alias
    assert by_alias.model_dump(by_alias=True)["sizeAllowance"] == 10
    with pytest.raises(pydantic.ValidationError):
        by_name.name = "other"  # type: ignore[misc]


def test_nulls_and_missing_collections_default() -> None:
    model = Model.model_validate({"id": "M" * 32, "name": "m", "categoryValues": None, "activeState": None})
    assert model.category_values == ()
    assert model.active_state is None
    meta = ExportMetadata.model_validate({"headerNames": None})
    assert meta.header_names == () and meta.data_types == () and meta.list_names == ()
    process = ProcessMetadata.model_validate({"name": "p"})
    assert process.actions == ()


def test_user_and_status_and_paging() -> None:
    user = User.model_validate(
        {
            "id": "8a81b09d5f1e4c2a9b3e7d6f10a2c4e8",
            "email": "demo@anaplan.example",
            "firstName": "Demo",
            "lastName": "Integrator",
            "active": True,
            "emailOptIn": False,
            "customerId": "c",
            "lastLoginDate": "2026-01-01T00:00:00.000+0000",
        }
    )
    assert (user.first_name, user.email_opt_in) == ("Demo", False)
    status = ModelStatus.model_validate(
        {"requestStatus": None, "currentStep": "Closed", "progress": -1.0, "taskId": None, "creationTime": 17}
    )
    assert status.current_step == "Closed" and status.is_idle and status.task_id is None
    assert not ModelStatus(progress=0.4).is_idle
    paging = Paging.model_validate({"currentPageSize": 20, "offset": 40, "totalSize": 61, "next": "http://x"})
    assert (paging.current_page_size, paging.offset, paging.total_size, paging.previous) == (20, 40, 61, None)


def test_file_import_and_metadata() -> None:
    file = File.model_validate(
        {"id": "113000000000", "name": "Employees.csv", "chunkCount": 2, "firstDataRow": 2, "headerRow": 1}
    )
    assert (file.chunk_count, file.first_data_row, file.header_row) == (2, 2, 1)
    imp = Import.model_validate(
        {
            "id": "112000000000",
            "name": "Employees",
            "importDataSourceId": "113000000000",
            "importType": "HIERARCHY_DATA",
            "importDataSource": {"importDataSourceId": "113000000000", "type": "FILE"},
        }
    )
    assert imp.import_data_source_id == "113000000000"
    assert imp.import_data_source is not None and imp.import_data_source.type == "FILE"
    meta = ImportMetadata.model_validate(
        {
            "name": "Employees",
            "type": "FILE",
            "source": {
                "textEncoding": "UTF-8",
                "columnSeparator": ",",
                "headerNames": ["Code", "Name"],
                "columnCount": 2,
            },
        }
    )
    assert meta.header_names == ("Code", "Name")
    assert meta.source is not None and meta.source.column_separator == ","
    assert ImportMetadata.model_validate({"name": "From model", "type": "MODEL"}).header_names == ()


def test_process_metadata_steps() -> None:
    meta = ProcessMetadata.model_validate(
        {
            "name": "Nightly",
            "actions": [
                {
                    "id": "112000000000",
                    "name": "Import",
                    "actionType": "IMPORT",
                    "importDataSourceId": "113000000000",
                    "importDataSource": {"importDataSourceId": "113000000000", "type": "FILE"},
                },
                {"id": "116000000000", "name": "Export", "actionType": "EXPORT", "exportFormat": "text/csv"},
                {"id": "117000000000", "name": "Delete", "actionType": "SOMETHING_NEW"},
            ],
        }
    )
    assert [s.action_type for s in meta.actions] == ["IMPORT", "EXPORT", "SOMETHING_NEW"]
    assert meta.actions[0].import_data_source_id == "113000000000"
    assert meta.actions[1].export_format == "text/csv"


def test_bulk_delete_result() -> None:
    assert BulkDeleteResult.model_validate({"meta": {}, "status": {}, "modelsDeleted": 2}).failures == ()
    result = BulkDeleteResult.model_validate(
        {"modelsDeleted": 0, "bulkDeleteModelsFailures": [{"modelId": "M" * 32, "message": "Model is open"}]}
    )
    assert result.failures[0].model_id == "M" * 32
    assert result.failures[0].message == "Model is open"
