"""The metadata layer: users, workspaces, models, model status, and the files, imports, exports, processes and
actions of a model, with name-to-id resolution for each kind.

Every call checks its ids before it goes to the network (an export id where an import id belongs fails at once), and
uses the ``/workspaces/{w}/models/{m}/…`` path when the workspace is known, else ``/models/{m}/…`` (Anaplan serves
both). Lists are read across all their pages.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from ._transport import RetryClass
from .errors import InvalidInputError, NameNotFoundError, NotFoundError, ProtocolError
from .ids import ObjectKind, check_id, check_model_id, check_workspace_id, is_hex_id, is_object_id
from .models import (
    Action,
    BulkDeleteResult,
    Export,
    ExportMetadata,
    File,
    Import,
    ImportMetadata,
    Model,
    ModelStatus,
    Process,
    ProcessMetadata,
    User,
    WireModel,
    Workspace,
)

if TYPE_CHECKING:
    from ._transport import Transport

W = TypeVar("W", bound=WireModel)

#: How many close matches an unknown name's error lists.
MAX_CLOSE_MATCHES = 5


# ---------------------------------------------------------------------------------------------------- helpers
def parse(model: type[W], data: Any, what: str) -> W:
    """Validate one wire object, turning a shape the client cannot read into a :class:`ProtocolError`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors())
        raise ProtocolError(f"Anaplan answered {what} the client cannot read: {problems}") from None


def member(data: dict[str, Any], key: str, what: str) -> Any:
    """``data[key]``, or a :class:`ProtocolError` naming what was expected when Anaplan left it out."""
    if not isinstance(data, dict) or key not in data:
        raise ProtocolError(f"Anaplan answered {what} without its {key!r} member.")
    return data[key]


def sort_param(sort: str | Sequence[str] | None) -> str | None:
    """The ``sort`` query value: ``"name"``, ``"+name"``, ``"-name"`` or several (``"name,-id"`` or a list).

    A field without a direction gets ``+`` (``/models`` and ``/workspaces`` require the prefix).
    """
    if sort is None:
        return None
    parts = sort.split(",") if isinstance(sort, str) else list(sort)
    fields = []
    for part in parts:
        part = part.strip()
        if not part or part in "+-":
            raise InvalidInputError(f"sort must name a field, such as '+name' or '-name'; got {sort!r}.")
        fields.append(part if part[0] in "+-" else f"+{part}")
    return ",".join(fields)


def search_matcher(search: str) -> re.Pattern[str]:
    """The server's ``s=`` filter as a pattern: a case-insensitive substring, ``%`` any run, ``_`` one character."""
    pieces = ("." if ch == "_" else ".*" if ch == "%" else re.escape(ch) for ch in search)
    return re.compile("".join(pieces), re.IGNORECASE | re.DOTALL)


def close_matches(name: str, candidates: Iterable[str], n: int = MAX_CLOSE_MATCHES) -> list[str]:
    """The candidates closest to ``name``: case-insensitive near spellings first, then names containing it."""
    unique = list(dict.fromkeys(candidates))
    by_folded: dict[str, str] = {}
    for candidate in unique:
        by_folded.setdefault(candidate.casefold(), candidate)
    folded = name.casefold()
    found = [by_folded[c] for c in difflib.get_close_matches(folded, list(by_folded), n=n, cutoff=0.6)]
    if folded:
        found += [c for c in unique if folded in c.casefold() or (len(c) > 2 and c.casefold() in folded)]
    return list(dict.fromkeys(found))[:n]


def _sort_key(fields: str) -> Any:
    """A key function sorting wire objects by the ``sort`` fields (for lists Anaplan cannot sort itself)."""
    parsed = [(f[1:], f[0] == "-") for f in fields.split(",")]

    def key(obj: WireModel) -> tuple[Any, ...]:
        values = obj.model_dump(by_alias=True)
        return tuple(_Ordered(values.get(name), descending) for name, descending in parsed)

    return key


class _Ordered:
    """One sort field's value: None sorts last, strings case-insensitively, either direction."""

    __slots__ = ("descending", "value")

    def __init__(self, value: Any, descending: bool) -> None:
        self.value = value.casefold() if isinstance(value, str) else value
        self.descending = descending

    def __lt__(self, other: _Ordered) -> bool:
        if self.value is None or other.value is None:
            return self.value is not None and other.value is None
        try:
            less = self.value < other.value if not self.descending else other.value < self.value
        except TypeError:
            less = str(self.value) < str(other.value)
        return bool(less)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Ordered) and self.value == other.value

    __hash__ = None  # type: ignore[assignment]


# ------------------------------------------------------------------------------------------------- the API
class MetadataAPI:
    """Read (and bulk-delete) what a user can see in Anaplan, and resolve names to ids.

    Built on a :class:`Transport`; :class:`AnaplanClient` inherits these methods.
    """

    _transport: Transport

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    # ------------------------------------------------------------------------------ users and workspaces
    async def get_current_user(self) -> User:
        """The user behind the credentials (``GET /users/me``): a cheap check that authentication works."""
        data = await self._transport.get_json("users/me")
        return parse(User, member(data, "user", "a user"), "a user")

    async def list_workspaces(
        self, *, tenant_details: bool = True, search: str | None = None, sort: str | Sequence[str] | None = None
    ) -> list[Workspace]:
        """Every workspace the user can see, optionally filtered by ``search`` (``s=``) and sorted (``+name``)."""
        params: dict[str, Any] = {}
        if tenant_details:
            params["tenantDetails"] = "true"
        if search:
            params["s"] = search
        if sort_value := sort_param(sort):
            params["sort"] = sort_value
        return [
            parse(Workspace, item, "a workspace") async for item in self._paginate("workspaces", "workspaces", params)
        ]

    async def get_workspace(self, workspace_id: str, *, tenant_details: bool = True) -> Workspace:
        """One workspace by id; falls back to the list, because ``GET /workspaces/{w}`` is 404 for non-admins."""
        check_workspace_id(workspace_id)
        params = {"tenantDetails": "true"} if tenant_details else None
        try:
            data = await self._transport.get_json(f"workspaces/{workspace_id}", params)
        except NotFoundError:
            for workspace in await self.list_workspaces(tenant_details=tenant_details):
                if workspace.id == workspace_id:
                    return workspace
            raise NotFoundError(f"No workspace with id {workspace_id!r} is visible to this user.", status=404) from None
        return parse(Workspace, member(data, "workspace", "a workspace"), "a workspace")

    # --------------------------------------------------------------------------------------- models
    async def list_models(
        self,
        workspace_id: str | None = None,
        *,
        model_details: bool = False,
        search: str | None = None,
        sort: str | Sequence[str] | None = None,
    ) -> list[Model]:
        """The models of one workspace, or every model of the user's default tenant.

        ``search`` keeps the models whose name matches Anaplan's ``s=`` filter (substring, ``%`` and ``_``
        wildcards, any case); ``sort`` orders them (``+name``, ``-activeState``). The tenant-wide list sends both to
        Anaplan; since Anaplan ignores ``s=`` there unless the user is a Tenant Admin, and the workspace list offers
        neither, the client also applies them itself.
        """
        params: dict[str, Any] = {}
        if model_details:
            params["modelDetails"] = "true"
        sort_value = sort_param(sort)
        if workspace_id is not None:
            check_workspace_id(workspace_id)
            path = f"workspaces/{workspace_id}/models"
        else:
            path = "models"
            if search:
                params["s"] = search
            if sort_value:
                params["sort"] = sort_value
        models = [parse(Model, item, "a model") async for item in self._paginate(path, "models", params)]
        if search:
            matcher = search_matcher(search)
            models = [m for m in models if matcher.search(m.name)]
        if sort_value and workspace_id is not None:
            models.sort(key=_sort_key(sort_value))
        return models

    async def get_model(self, model_id: str, *, model_details: bool = True) -> Model:
        """One model by id, with its details (last saved serial number, memory usage, dates) by default."""
        check_model_id(model_id)
        params = {"modelDetails": "true"} if model_details else None
        data = await self._transport.get_json(f"models/{model_id}", params)
        return parse(Model, member(data, "model", "a model"), "a model")

    async def get_model_status(self, model_id: str, workspace_id: str | None = None) -> ModelStatus:
        """The live state of a model: open, closed or loading, and the progress of its current step."""
        path = f"{self._model_path(model_id, workspace_id)}/status"
        data = await self._transport.get_json(path)
        return parse(ModelStatus, member(data, "requestStatus", "a model status"), "a model status")

    async def bulk_delete_models(self, workspace_id: str, model_ids: Iterable[str]) -> BulkDeleteResult:
        """Delete models of a workspace in one call; the result lists those Anaplan refused (e.g. open models).

        The call is retried like a DELETE after a lost answer. A model the lost first call deleted is then reported by
        the replay as a failure ("not found") instead of as deleted: list the workspace's models to confirm.
        """
        check_workspace_id(workspace_id)
        ids = list(dict.fromkeys(check_model_id(m) for m in model_ids))
        if not ids:
            return BulkDeleteResult(models_deleted=0)
        # Deleting is idempotent in effect, so this POST may be replayed like a DELETE; a replay after a lost
        # answer reports the models deleted the first time as failures, which the caller can check with list_models.
        response = await self._transport.request(
            "POST", f"workspaces/{workspace_id}/bulkDeleteModels", json={"modelIdsToDelete": ids}, retry=RetryClass.SAFE
        )
        try:
            data = response.json()
        except ValueError:
            raise ProtocolError("Anaplan answered bulkDeleteModels with a body that is not JSON.") from None
        return parse(BulkDeleteResult, data, "a bulk delete result")

    # -------------------------------------------------------------------------------- model objects
    async def list_files(
        self, model_id: str, workspace_id: str | None = None, *, sort: str | Sequence[str] | None = None
    ) -> list[File]:
        """The files of a model: import sources (113…) and export outputs (116…)."""
        return await self._list_objects(File, "files", model_id, workspace_id, sort)

    async def list_imports(
        self, model_id: str, workspace_id: str | None = None, *, sort: str | Sequence[str] | None = None
    ) -> list[Import]:
        """The imports of a model, each with the file it reads (``import_data_source_id``)."""
        return await self._list_objects(Import, "imports", model_id, workspace_id, sort)

    async def list_exports(
        self, model_id: str, workspace_id: str | None = None, *, sort: str | Sequence[str] | None = None
    ) -> list[Export]:
        """The exports of a model."""
        return await self._list_objects(Export, "exports", model_id, workspace_id, sort)

    async def list_processes(
        self, model_id: str, workspace_id: str | None = None, *, sort: str | Sequence[str] | None = None
    ) -> list[Process]:
        """The processes of a model."""
        return await self._list_objects(Process, "processes", model_id, workspace_id, sort)

    async def list_actions(
        self, model_id: str, workspace_id: str | None = None, *, sort: str | Sequence[str] | None = None
    ) -> list[Action]:
        """The other actions of a model (117…: delete by selection, sort, optimizer…)."""
        return await self._list_objects(Action, "actions", model_id, workspace_id, sort)

    async def get_import_metadata(
        self, model_id: str, import_id: str, workspace_id: str | None = None
    ) -> ImportMetadata:
        """What an import expects: source type, file layout and column headers, and the file to upload.

        The id is first looked up in the model's import list: Anaplan answers a fabricated import id with a 500,
        which would otherwise be retried and then reported as a server fault.
        """
        listed = await self.find_import(model_id, check_id(import_id, ObjectKind.IMPORT), workspace_id)
        path = f"{self._model_path(model_id, workspace_id)}/imports/{import_id}"
        data = await self._transport.get_json(path)
        metadata = parse(ImportMetadata, member(data, "importMetadata", "import metadata"), "import metadata")
        return metadata.model_copy(
            update={
                "id": listed.id,
                "import_type": listed.import_type,
                "import_data_source_id": listed.import_data_source_id
                or (listed.import_data_source.import_data_source_id if listed.import_data_source else None),
            }
        )

    async def get_export_metadata(
        self, model_id: str, export_id: str, workspace_id: str | None = None
    ) -> ExportMetadata:
        """What an export writes: format, encoding, separators, column headers and types, and a row estimate."""
        check_id(export_id, ObjectKind.EXPORT)
        path = f"{self._model_path(model_id, workspace_id)}/exports/{export_id}"
        data = await self._transport.get_json(path)
        metadata = parse(ExportMetadata, member(data, "exportMetadata", "export metadata"), "export metadata")
        return metadata.model_copy(update={"id": export_id})

    async def get_process_metadata(
        self,
        model_id: str,
        process_id: str,
        workspace_id: str | None = None,
        *,
        show_import_data_source: bool = True,
    ) -> ProcessMetadata:
        """The steps of a process in order (imports with their source files, exports, other actions)."""
        check_id(process_id, ObjectKind.PROCESS)
        path = f"{self._model_path(model_id, workspace_id)}/processes/{process_id}"
        params = {"showImportDataSource": "true"} if show_import_data_source else None
        data = await self._transport.get_json(path, params)
        metadata = parse(ProcessMetadata, member(data, "processMetadata", "process metadata"), "process metadata")
        return metadata.model_copy(update={"id": process_id})

    # -------------------------------------------------------------------------- finding by name or id
    async def find_workspace(self, name_or_id: str) -> Workspace:
        """The workspace with this id or name; an unknown name fails with the closest names listed."""
        workspaces = await self.list_workspaces()
        return _pick(ObjectKind.WORKSPACE, name_or_id, workspaces, "the workspaces visible to this user")

    async def find_model(self, name_or_id: str, workspace_id: str | None = None) -> Model:
        """The model with this id or name, in one workspace or (without one) in the user's default tenant."""
        where = f"workspace {workspace_id}" if workspace_id else "the models visible to this user"
        models = await self.list_models(workspace_id)
        return _pick(ObjectKind.MODEL, name_or_id, models, where)

    async def find_file(self, model_id: str, name_or_id: str, workspace_id: str | None = None) -> File:
        """The file of a model with this id or name."""
        return await self._find(File, ObjectKind.FILE, "files", model_id, name_or_id, workspace_id)

    async def find_import(self, model_id: str, name_or_id: str, workspace_id: str | None = None) -> Import:
        """The import of a model with this id or name."""
        return await self._find(Import, ObjectKind.IMPORT, "imports", model_id, name_or_id, workspace_id)

    async def find_export(self, model_id: str, name_or_id: str, workspace_id: str | None = None) -> Export:
        """The export of a model with this id or name."""
        return await self._find(Export, ObjectKind.EXPORT, "exports", model_id, name_or_id, workspace_id)

    async def find_process(self, model_id: str, name_or_id: str, workspace_id: str | None = None) -> Process:
        """The process of a model with this id or name."""
        return await self._find(Process, ObjectKind.PROCESS, "processes", model_id, name_or_id, workspace_id)

    async def find_action(self, model_id: str, name_or_id: str, workspace_id: str | None = None) -> Action:
        """The action (117…) of a model with this id or name."""
        return await self._find(Action, ObjectKind.ACTION, "actions", model_id, name_or_id, workspace_id)

    # ------------------------------------------------------------------------------- resolving to ids
    async def resolve_workspace(self, name_or_id: str) -> str:
        """A workspace id from an id (returned as is, without a call) or a name (looked up)."""
        if _given_id(ObjectKind.WORKSPACE, name_or_id):
            return name_or_id
        return (await self.find_workspace(name_or_id)).id

    async def resolve_model(self, name_or_id: str, workspace_id: str | None = None) -> str:
        """A model id from an id (returned as is, without a call) or a name (looked up, in the workspace if given)."""
        if _given_id(ObjectKind.MODEL, name_or_id):
            return name_or_id
        return (await self.find_model(name_or_id, workspace_id)).id

    async def resolve_file(self, model_id: str, name_or_id: str, workspace_id: str | None = None) -> str:
        """A file id from an id (checked, returned without a call) or a name (looked up in the model)."""
        if _given_id(ObjectKind.FILE, name_or_id):
            return name_or_id
        return (await self.find_file(model_id, name_or_id, workspace_id)).id

    async def resolve_import(self, model_id: str, name_or_id: str, workspace_id: str | None = None) -> str:
        """An import id from an id (checked, returned without a call) or a name (looked up in the model)."""
        if _given_id(ObjectKind.IMPORT, name_or_id):
            return name_or_id
        return (await self.find_import(model_id, name_or_id, workspace_id)).id

    async def resolve_export(self, model_id: str, name_or_id: str, workspace_id: str | None = None) -> str:
        """An export id from an id (checked, returned without a call) or a name (looked up in the model)."""
        if _given_id(ObjectKind.EXPORT, name_or_id):
            return name_or_id
        return (await self.find_export(model_id, name_or_id, workspace_id)).id

    async def resolve_process(self, model_id: str, name_or_id: str, workspace_id: str | None = None) -> str:
        """A process id from an id (checked, returned without a call) or a name (looked up in the model)."""
        if _given_id(ObjectKind.PROCESS, name_or_id):
            return name_or_id
        return (await self.find_process(model_id, name_or_id, workspace_id)).id

    async def resolve_action(self, model_id: str, name_or_id: str, workspace_id: str | None = None) -> str:
        """An action id from an id (checked, returned without a call) or a name (looked up in the model)."""
        if _given_id(ObjectKind.ACTION, name_or_id):
            return name_or_id
        return (await self.find_action(model_id, name_or_id, workspace_id)).id

    # -------------------------------------------------------------------------------------- internals
    @staticmethod
    def _model_path(model_id: str, workspace_id: str | None) -> str:
        """``workspaces/{w}/models/{m}`` when the workspace is known, else ``models/{m}`` (ids checked)."""
        check_model_id(model_id)
        if workspace_id is None:
            return f"models/{model_id}"
        check_workspace_id(workspace_id)
        return f"workspaces/{workspace_id}/models/{model_id}"

    def _paginate(self, path: str, key: str, params: dict[str, Any] | None = None) -> Any:
        return self._transport.paginate(path, key, params or None)

    async def _list_objects(
        self,
        model: type[W],
        collection: str,
        model_id: str,
        workspace_id: str | None,
        sort: str | Sequence[str] | None,
    ) -> list[W]:
        path = f"{self._model_path(model_id, workspace_id)}/{collection}"
        params: dict[str, Any] = {}
        if sort_value := sort_param(sort):
            params["sort"] = sort_value
        what = f"an item of {collection}"
        return [parse(model, item, what) async for item in self._paginate(path, collection, params)]

    async def _find(
        self,
        model: type[W],
        kind: ObjectKind,
        collection: str,
        model_id: str,
        name_or_id: str,
        workspace_id: str | None,
    ) -> W:
        _given_id(kind, name_or_id)  # a malformed or wrong-kind id fails here, before the list is read
        items = await self._list_objects(model, collection, model_id, workspace_id, None)
        where = f"model {model_id}" + (f" of workspace {workspace_id}" if workspace_id else "")
        return _pick(kind, name_or_id, items, where)


def _given_id(kind: ObjectKind, value: str) -> bool:
    """True when ``value`` is an id of ``kind`` rather than a name; a wrong-kind id raises :class:`InvalidInputError`.

    For model objects any 12-digit value counts as an id (no object name is 12 digits in practice), so an id with
    another kind's prefix is rejected with a message naming both kinds, instead of being looked up as a name.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"A {kind.value} name or id must be a non-empty string, got {value!r}.")
    if kind in (ObjectKind.WORKSPACE, ObjectKind.MODEL):
        return is_hex_id(value)
    if is_object_id(value):
        check_id(value, kind)
        return True
    return False


def _pick(kind: ObjectKind, name_or_id: str, items: Sequence[W], where: str) -> W:
    """The one item whose id or name is ``name_or_id``; a clear error when there is none, or several."""
    if _given_id(kind, name_or_id):
        for item in items:
            if getattr(item, "id", None) == name_or_id:
                return item
        known = ", ".join(f"{getattr(i, 'name', '?')!r} ({getattr(i, 'id', '?')})" for i in items[:20]) or "none"
        raise NotFoundError(f"No {kind.value} with id {name_or_id!r} in {where}. Known {kind.value}s: {known}.")
    matches = [item for item in items if getattr(item, "name", None) == name_or_id]
    if len(matches) > 1 and kind is ObjectKind.MODEL:
        # The same name may be used in several workspaces, where one copy is often archived.
        live = [m for m in matches if not getattr(m, "is_archived", False)]
        matches = live or matches
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        ids = ", ".join(str(getattr(m, "id", "?")) for m in matches)
        hint = " Give the workspace, or the id," if kind is ObjectKind.MODEL else " Give the id"
        raise InvalidInputError(
            f"{len(matches)} {kind.value}s are named {name_or_id!r} in {where} ({ids}).{hint} instead."
        )
    names = [str(getattr(item, "name", "")) for item in items]
    raise NameNotFoundError(kind.value, name_or_id, where, names, close_matches(name_or_id, names))


__all__ = ["MetadataAPI", "close_matches", "search_matcher", "sort_param"]
