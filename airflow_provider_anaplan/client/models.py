"""Pydantic models of the Integration API's wire objects: users, workspaces, models and model objects.

The models are lenient on purpose, because Anaplan adds fields and enum values without notice:

* Python names are snake_case; the wire's camelCase names are accepted as aliases (and so are the Python names);
* unknown fields are ignored;
* enum-like fields are plain ``str``, so a value this client has never seen is kept, never rejected. The values known
  today are listed in the constant classes below (``ActiveState.PRODUCTION``, ``ImportType.KNOWN``...), for callers
  that want to compare against them;
* empty collections may be missing on the wire, so every list field defaults to an empty tuple.

Instances are immutable (``frozen``): they are snapshots of what Anaplan answered.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    """Base of every wire object: camelCase aliases, names accepted too, unknown fields ignored, immutable."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        # An explicit null means "absent": the field's default (None, or an empty tuple for lists) applies.
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


# --------------------------------------------------------------------------------------------- known enum values
class ActiveState:
    """Values of ``Model.active_state`` known today (the field accepts any string)."""

    UNLOCKED = "UNLOCKED"
    PRODUCTION = "PRODUCTION"
    MAINTENANCE = "MAINTENANCE"
    PRODUCTION_MAINTENANCE = "PRODUCTION_MAINTENANCE"
    ARCHIVED = "ARCHIVED"
    LOCKED = "LOCKED"
    ACTIVE = "ACTIVE"
    KNOWN = frozenset({UNLOCKED, PRODUCTION, MAINTENANCE, PRODUCTION_MAINTENANCE, ARCHIVED, LOCKED, ACTIVE})


class ImportType:
    """Values of ``Import.import_type`` known today."""

    MODULE_DATA = "MODULE_DATA"
    HIERARCHY_DATA = "HIERARCHY_DATA"
    LINE_ITEM_DEFINITION = "LINE_ITEM_DEFINITION"
    USERS = "USERS"
    VERSIONS = "VERSIONS"
    KNOWN = frozenset({MODULE_DATA, HIERARCHY_DATA, LINE_ITEM_DEFINITION, USERS, VERSIONS})


class ImportSourceType:
    """Values of ``ImportMetadata.type`` known today: a file upload or another model."""

    FILE = "FILE"
    MODEL = "MODEL"
    KNOWN = frozenset({FILE, MODEL})


class ExportType:
    """Values of ``Export.export_type`` known today."""

    AUDIT_LOG = "AUDIT_LOG"
    GRID_CURRENT_PAGE = "GRID_CURRENT_PAGE"
    TABULAR_ALL_LINE_ITEMS = "TABULAR_ALL_LINE_ITEMS"
    TABULAR_CURRENT_LINE_ITEM = "TABULAR_CURRENT_LINE_ITEM"
    TABULAR_MULTI_COLUMN = "TABULAR_MULTI_COLUMN"
    TABULAR_SINGLE_COLUMN = "TABULAR_SINGLE_COLUMN"
    KNOWN = frozenset(
        {
            AUDIT_LOG,
            GRID_CURRENT_PAGE,
            TABULAR_ALL_LINE_ITEMS,
            TABULAR_CURRENT_LINE_ITEM,
            TABULAR_MULTI_COLUMN,
            TABULAR_SINGLE_COLUMN,
        }
    )


class ActionType:
    """Values of ``actionType`` known today (on actions, and on the steps of a process)."""

    IMPORT = "IMPORT"
    EXPORT = "EXPORT"
    DELETE_BY_SELECTION = "DELETE_BY_SELECTION"
    ORDER_HIERARCHY = "ORDER_HIERARCHY"
    OPTIMIZER = "OPTIMIZER"
    BULK_DELETE_ENTITIES = "BULK_DELETE_ENTITIES"
    SIMPLE_CREATE = "SIMPLE_CREATE"
    KNOWN = frozenset(
        {IMPORT, EXPORT, DELETE_BY_SELECTION, ORDER_HIERARCHY, OPTIMIZER, BULK_DELETE_ENTITIES, SIMPLE_CREATE}
    )


# ------------------------------------------------------------------------------------------------------- paging
class Paging(WireModel):
    """``meta.paging`` of a list answer: where this page starts, how many it holds, and how many there are."""

    current_page_size: int = 0
    offset: int = 0
    total_size: int = 0
    next: str | None = None
    previous: str | None = None


# ------------------------------------------------------------------------------------- users, workspaces, models
class User(WireModel):
    """An Anaplan user, as ``GET /users/me`` describes the one behind the token."""

    id: str
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    active: bool | None = None
    email_opt_in: bool | None = None
    customer_id: str | None = None
    last_login_date: str | None = None


class Workspace(WireModel):
    """A workspace; ``size_allowance`` and ``current_size`` (bytes) come only with ``tenantDetails=true``."""

    id: str
    name: str
    active: bool | None = None
    size_allowance: int | None = None
    current_size: int | None = None


class CategoryValue(WireModel):
    """A model category value (e.g. Business Function: Planning)."""

    id: str | None = None
    attribute: str | None = None
    category_id: str | None = None
    category_name: str | None = None
    customer_id: str | None = None


class Model(WireModel):
    """A model; the last-saved serial number, memory usage and dates come only with ``modelDetails=true``."""

    id: str
    name: str
    active_state: str | None = None
    current_workspace_id: str | None = None
    current_workspace_name: str | None = None
    model_url: str | None = None
    category_values: tuple[CategoryValue, ...] = ()
    last_saved_serial_number: int | None = None
    last_modified_by_user_guid: str | None = None
    memory_usage: int | float | None = None
    iso_creation_date: str | None = None
    last_modified: str | None = None
    model_transaction_running: bool | None = None

    @field_validator("last_saved_serial_number", mode="before")
    @classmethod
    def _serial_number(cls, value: Any) -> Any:
        # The spec types it as a string and some tenants send a number: accept both, as an int.
        if isinstance(value, str):
            text = value.strip()
            return int(text) if text.lstrip("-").isdigit() else value
        return value

    @property
    def is_archived(self) -> bool:
        """True when the model is archived (not actionable until it is restored)."""
        return self.active_state == ActiveState.ARCHIVED


class ModelStatus(WireModel):
    """The live state of a model (``GET …/models/{m}/status``): open, closed or mid-load, and its progress."""

    current_step: str | None = None
    progress: float | None = None
    creation_time: int | None = None
    task_id: str | None = None
    tooltip: str | None = None
    export_task_type: str | None = None
    peak_memory_usage_estimate: int | None = None
    peak_memory_usage_time: int | None = None

    @property
    def is_idle(self) -> bool:
        """True when no step is running (Anaplan reports a progress of -1.0 then, whether open or closed)."""
        return self.progress is None or self.progress < 0


class BulkDeleteFailure(WireModel):
    """One model that ``bulkDeleteModels`` could not delete, with Anaplan's reason."""

    model_id: str | None = None
    message: str | None = None


class BulkDeleteResult(WireModel):
    """The answer of ``POST /workspaces/{w}/bulkDeleteModels``: how many were deleted, and which were not."""

    models_deleted: int = 0
    failures: tuple[BulkDeleteFailure, ...] = Field(default=(), alias="bulkDeleteModelsFailures")


# ------------------------------------------------------------------------------------------------ model objects
class File(WireModel):
    """A file of a model: an import source (113…) or an export's output (116…, the export's own id)."""

    id: str
    name: str
    chunk_count: int | None = None
    delimiter: str | None = None
    encoding: str | None = None
    first_data_row: int | None = None
    format: str | None = None
    header_row: int | None = None
    separator: str | None = None
    origin: str | None = None
    language: str | None = None
    country: str | None = None
    code: str | None = None


class ImportDataSource(WireModel):
    """Where an import reads from: a file (``type`` FILE) or another model, list or view."""

    import_data_source_id: str | None = None
    type: str | None = None
    source_model_id: str | None = None
    source_model_name: str | None = None
    source_workspace_id: str | None = None


class Import(WireModel):
    """An import definition (112…); ``import_data_source_id`` is the file (113…) to upload before running it."""

    id: str
    name: str
    import_data_source_id: str | None = None
    import_type: str | None = None
    import_data_source: ImportDataSource | None = None
    code: str | None = None


class ImportSource(WireModel):
    """The file layout an import expects: encoding, separators, header and first data rows, column headers."""

    text_encoding: str | None = None
    column_separator: str | None = None
    text_delimiter: str | None = None
    header_row: int | None = None
    first_data_row: int | None = None
    decimal_separator: str | None = None
    header_names: tuple[str, ...] = ()
    column_count: int | None = None


class ImportMetadata(WireModel):
    """What ``GET …/imports/{id}`` says of an import, plus the id, type and data source from the import list.

    ``type`` is FILE or MODEL; MODEL imports have no ``source``. ``id``, ``import_type`` and
    ``import_data_source_id`` are not on this wire object: the client fills them in from the model's import list.
    """

    name: str
    type: str | None = None
    source: ImportSource | None = None
    id: str | None = None
    import_type: str | None = None
    import_data_source_id: str | None = None

    @property
    def header_names(self) -> tuple[str, ...]:
        """The column headers the import expects in its source file (empty for a MODEL import)."""
        return self.source.header_names if self.source else ()


class Export(WireModel):
    """An export definition (116…); its output file has the same id."""

    id: str
    name: str
    export_type: str | None = None
    export_format: str | None = None
    encoding: str | None = None
    layout: str | None = None
    code: str | None = None


class ExportMetadata(WireModel):
    """What ``GET …/exports/{id}`` says of an export's output; ``row_count`` is Anaplan's estimate.

    ``id`` is not on this wire object: the client fills it in.
    """

    column_count: int | None = None
    data_types: tuple[str, ...] = ()
    delimiter: str | None = None
    encoding: str | None = None
    export_format: str | None = None
    header_names: tuple[str, ...] = ()
    list_names: tuple[str, ...] = ()
    row_count: int | None = None
    separator: str | None = None
    layout: str | None = None
    id: str | None = None


class Process(WireModel):
    """A process (118…): an ordered list of imports, exports and actions run as one task."""

    id: str
    name: str
    code: str | None = None


class ProcessStep(WireModel):
    """One step of a process: an import, an export or another action, with what its type needs."""

    id: str
    name: str | None = None
    action_type: str | None = None
    import_data_source_id: str | None = None
    import_type: str | None = None
    import_data_source: ImportDataSource | None = None
    export_type: str | None = None
    export_format: str | None = None
    layout: str | None = None


class ProcessMetadata(WireModel):
    """What ``GET …/processes/{id}`` says of a process: its name and its steps in order.

    ``id`` is not on this wire object: the client fills it in.
    """

    name: str
    actions: tuple[ProcessStep, ...] = ()
    id: str | None = None


class Action(WireModel):
    """A model action other than an import, export or process (117…): delete, sort, optimizer…"""

    id: str
    name: str
    action_type: str | None = None
    code: str | None = None


__all__ = [
    "Action",
    "ActionType",
    "ActiveState",
    "BulkDeleteFailure",
    "BulkDeleteResult",
    "CategoryValue",
    "Export",
    "ExportMetadata",
    "ExportType",
    "File",
    "Import",
    "ImportDataSource",
    "ImportMetadata",
    "ImportSource",
    "ImportSourceType",
    "ImportType",
    "Model",
    "ModelStatus",
    "Paging",
    "Process",
    "ProcessMetadata",
    "ProcessStep",
    "User",
    "WireModel",
    "Workspace",
]
