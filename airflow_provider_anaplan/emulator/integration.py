"""The Integration API v2 (/2/0/...) of the emulator: users, workspaces, models and model objects (metadata).

Every route needs a live token (``auth.require_user``). Collections page with ``offset``/``limit`` (at most 5000 per
page) and report ``meta.paging``; a collection key is left out of the body when the page is empty, as Anaplan does.
Model-object routes exist in both forms, ``/workspaces/{w}/models/{m}/...`` and ``/models/{m}/...``; in the first form
a model that is not in the workspace is 404. See docs/emulator.md for the routes, the paging rules and the places where
the emulator answers 500 because Anaplan does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, urlencode

from ._asgi import HTTPError, Request, Response, Router, json_response
from .auth import require_user
from .state import EmulatorState, Model, User, Workspace

API = "/2/0"
MAX_PAGE_SIZE = 5000  # Anaplan's page size cap and its default page size
_OBJECT_ID = re.compile(r"\d{12}")  # model objects: a 3-digit type prefix and 9 digits

Item = dict[str, Any]


# --------------------------------------------------------------------------------------------------- envelope helpers
def _origin(request: Request) -> str:
    scheme = request.scope.get("scheme", "http")
    host = request.headers.get("host")
    if not host:
        server = request.scope.get("server") or ("localhost", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scheme}://{host}"


def _schema_url(request: Request, kind: str, model_id: str | None = None) -> str:
    scope = f"/models/{model_id}" if model_id else ""
    return f"{_origin(request)}{API}{scope}/objects/{kind}"


def _ok(schema: str, **payload: Any) -> Response:
    return json_response({"meta": {"schema": schema}, "status": {"code": 200, "message": "Success"}, **payload})


def _bool_param(request: Request, name: str) -> bool:
    raw = request.arg(name)
    if raw is None or raw == "":
        return False
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise HTTPError(400, f"Invalid value '{raw}' for parameter '{name}': expected true or false")


def _int_param(request: Request, name: str, minimum: int) -> int | None:
    raw = request.arg(name)
    if raw is None:
        return None
    if not re.fullmatch(r"\d{1,18}", raw.strip()) or int(raw) < minimum:
        raise HTTPError(400, f"Invalid value '{raw}' for parameter '{name}': expected an integer >= {minimum}")
    return int(raw)


def _page_url(request: Request, limit: int, offset: int) -> str:
    params = [(k, v) for k, values in request.query.items() if k not in ("limit", "offset") for v in values]
    params += [("limit", str(limit)), ("offset", str(offset))]
    return f"{_origin(request)}{quote(request.path)}?{urlencode(params)}"


def _paged(request: Request, key: str, schema: str, items: list[Item]) -> Response:
    """One page of ``items`` under ``key`` (left out when the page is empty) with ``meta.paging``."""
    offset = _int_param(request, "offset", 0) or 0
    limit = min(_int_param(request, "limit", 1) or MAX_PAGE_SIZE, MAX_PAGE_SIZE)
    page = items[offset : offset + limit]
    paging: dict[str, Any] = {"currentPageSize": len(page), "offset": offset, "totalSize": len(items)}
    if offset + len(page) < len(items):
        paging["next"] = _page_url(request, limit, offset + limit)
    if offset > 0:
        paging["previous"] = _page_url(request, limit, max(offset - limit, 0))
    body: dict[str, Any] = {"meta": {"paging": paging, "schema": schema}, "status": {"code": 200, "message": "Success"}}
    if page:
        body[key] = page
    return json_response(body)


def _sort_value(value: Any) -> tuple[int, Any]:
    if value is None:
        return (2, "")
    if isinstance(value, str):
        return (1, value.casefold())
    return (0, value)


def _sorted(items: list[Item], keys: list[tuple[str, bool]]) -> list[Item]:
    """``items`` ordered by ``keys`` = [(field, descending)], the first key most significant."""
    out = list(items)
    for name, descending in reversed(keys):
        out.sort(key=lambda item, n=name: _sort_value(item.get(n)), reverse=descending)
    return out


def _sort_parts(raw: str) -> list[str]:
    # An unencoded "+" in a query string arrives as a space ("sort=+name" -> " name"): read it as the "+" it was.
    return ["+" + part[1:].strip() if part.startswith(" ") else part.strip() for part in raw.split(",")]


def _strict_sort(request: Request, items: list[Item], fields: Iterable[str]) -> list[Item]:
    """``sort=+a,-b`` where every part needs its prefix and a sortable field; anything else is 400 (workspaces,
    models, users)."""
    raw = request.arg("sort")
    if raw is None:
        return items
    allowed = set(fields)
    keys: list[tuple[str, bool]] = []
    for part in _sort_parts(raw):
        if len(part) < 2 or part[0] not in "+-" or part[1:] not in allowed:
            raise HTTPError(400, f"Invalid sort '{raw}': use +field or -field with one of {', '.join(sorted(allowed))}")
        keys.append((part[1:], part[0] == "-"))
    return _sorted(items, keys)


def _lenient_sort(request: Request, items: list[Item]) -> list[Item]:
    """``sort`` on model-object lists: an optional +/- prefix; ``name`` and ``id`` reorder, other fields are ignored."""
    raw = request.arg("sort")
    if not raw:
        return items
    keys: list[tuple[str, bool]] = []
    for part in _sort_parts(raw):
        descending = part.startswith("-")
        name = part.lstrip("+-")
        if name in ("name", "id"):
            keys.append((name, descending))
    return _sorted(items, keys) if keys else items


def _search(request: Request, items: list[Item], text: Callable[[Item], Iterable[str]]) -> list[Item]:
    """``s=``: a case-insensitive substring match, with ``%`` for any run of characters and ``_`` for one."""
    raw = request.arg("s")
    if not raw:
        return items
    pattern = re.compile("".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in raw), re.IGNORECASE)
    return [item for item in items if any(pattern.search(value or "") for value in text(item))]


# --------------------------------------------------------------------------------------------------- wire objects
def _workspace_wire(workspace: Workspace, tenant_details: bool) -> Item:
    out: Item = {"id": workspace.id, "name": workspace.name, "active": workspace.active}
    if tenant_details:
        out["sizeAllowance"] = workspace.size_allowance
        out["currentSize"] = workspace.current_size
    return out


def _model_wire(state: EmulatorState, request: Request, model: Model, details: bool) -> Item:
    workspace = state.workspaces.get(model.workspace_id)
    out: Item = {
        "id": model.id,
        "name": model.name,
        "activeState": model.active_state,
        "currentWorkspaceId": model.workspace_id,
        "currentWorkspaceName": workspace.name if workspace else "",
        "modelUrl": (
            f"{_origin(request)}/anaplan/framework.jsp?selectedWorkspaceId={model.workspace_id}"
            f"&selectedModelId={model.id}"
        ),
        "categoryValues": list(model.category_values),
    }
    if details:
        out.update(model.details)
    return out


def _process_step(model: Model, object_id: str, show_source: bool) -> Item:
    """One step of ``processMetadata.actions``: the action's list entry plus its ``actionType``."""
    if object_id in model.imports:
        entry = model.imports[object_id]
        step: Item = {"id": object_id, "name": entry["name"], "actionType": "IMPORT"}
        step.update({k: entry[k] for k in ("importDataSourceId", "importType") if k in entry})
        if show_source:
            source_type = model.import_metadata.get(object_id, {}).get("type", "FILE")
            source: Item = {"type": source_type}
            if "importDataSourceId" in entry:
                source["importDataSourceId"] = entry["importDataSourceId"]
            if source_type == "MODEL":
                source["sourceModelId"] = model.id
            step["importDataSource"] = source
        return step
    if object_id in model.exports:
        entry = model.exports[object_id]
        step = {"id": object_id, "name": entry["name"], "actionType": "EXPORT"}
        step.update({k: entry[k] for k in ("exportType", "exportFormat", "layout") if k in entry})
        return step
    if object_id in model.actions:
        entry = model.actions[object_id]
        return {"id": object_id, "name": entry["name"], "actionType": entry.get("actionType", "ACTION")}
    return {"id": object_id, "name": object_id, "actionType": "UNKNOWN"}


def _model_status(state: EmulatorState, model: Model) -> Item:
    return {
        "taskId": None,
        "currentStep": "Open" if model.is_open else "Closed",
        "progress": -1.0,
        "tooltip": None,
        "creationTime": int(state.clock() * 1000),
        "exportTaskType": None,
        "peakMemoryUsageEstimate": None,
        "peakMemoryUsageTime": None,
    }


# --------------------------------------------------------------------------------------------------- routes
def _both_forms(suffix: str) -> tuple[str, str]:
    """The model-scoped templates for ``suffix`` in both path forms."""
    return (f"{API}/workspaces/{{workspaceId}}/models/{{modelId}}{suffix}", f"{API}/models/{{modelId}}{suffix}")


def register(router: Router, state: EmulatorState) -> None:
    """Add the /2/0 metadata routes."""

    def user_of(request: Request) -> User:
        return require_user(state, request)

    def workspace_of(request: Request) -> Workspace:
        workspace = state.workspaces.get(request.path_params["workspaceId"])
        if workspace is None:
            raise HTTPError(404)
        return workspace

    def model_of(request: Request) -> Model:
        workspace_id = request.path_params.get("workspaceId")
        if workspace_id is not None:
            workspace_of(request)
        model = state.find_model(request.path_params["modelId"], workspace_id)
        if model is None:
            raise HTTPError(404)
        return model

    # ------------------------------------------------------------------ users
    def user_list_text(item: Item) -> list[str]:
        return [item.get("email", ""), item.get("firstName", ""), item.get("lastName", "")]

    @router.route("GET", f"{API}/users/me")
    async def get_me(request: Request) -> Response:
        user = user_of(request)
        return _ok(_schema_url(request, "user"), user=user.wire())

    @router.route("GET", f"{API}/users")
    async def list_users(request: Request) -> Response:
        user_of(request)
        users = [u.wire() for u in state.users.values()]
        users = _search(request, users, user_list_text)
        users = _strict_sort(request, users, ("firstName", "lastName", "email", "active", "lastLoginDate"))
        return _paged(request, "users", _schema_url(request, "user"), users)

    @router.route("GET", f"{API}/users/{{userId}}")
    async def get_user(request: Request) -> Response:
        user_of(request)
        user = state.user_by_id(request.path_params["userId"])
        if user is None:
            raise HTTPError(404)
        return _ok(_schema_url(request, "user"), user=user.wire())

    # ------------------------------------------------------------------ workspaces
    @router.route("GET", f"{API}/workspaces")
    async def list_workspaces(request: Request) -> Response:
        user_of(request)
        details = _bool_param(request, "tenantDetails")
        items = [_workspace_wire(w, True) for w in state.workspaces.values()]
        items = _search(request, items, lambda item: [item["name"]])
        items = _strict_sort(request, items, ("name", "sizeAllowance"))
        if not details:
            items = [{k: item[k] for k in ("id", "name", "active")} for item in items]
        return _paged(request, "workspaces", _schema_url(request, "workspace"), items)

    @router.route("GET", f"{API}/workspaces/{{workspaceId}}")
    async def get_workspace(request: Request) -> Response:
        user_of(request)
        details = _bool_param(request, "tenantDetails")
        workspace = workspace_of(request)
        return _ok(_schema_url(request, "workspace"), workspace=_workspace_wire(workspace, details))

    @router.route("POST", f"{API}/workspaces/{{workspaceId}}/bulkDeleteModels")
    async def bulk_delete_models(request: Request) -> Response:
        user_of(request)
        workspace = workspace_of(request)
        body = await request.json()
        model_ids = body.get("modelIdsToDelete") if isinstance(body, dict) else None
        if not isinstance(model_ids, list) or not all(isinstance(m, str) for m in model_ids):
            raise HTTPError(400, 'Request body must be {"modelIdsToDelete": ["<modelId>", ...]}')
        deleted = 0
        failures: list[Item] = []
        for model_id in dict.fromkeys(model_ids):
            model = state.find_model(model_id, workspace.id)
            if model is None:
                failures.append({"modelId": model_id, "message": "Model not found in this workspace"})
            elif model.is_open:
                failures.append({"modelId": model_id, "message": "Model is open; close it before deleting it"})
            else:
                state.delete_model(model_id)
                deleted += 1
        payload: Item = {"modelsDeleted": deleted}
        if failures:
            payload["bulkDeleteModelsFailures"] = failures
        return _ok(_schema_url(request, "bulkDeleteModels"), **payload)

    # ------------------------------------------------------------------ models
    def model_list_text(item: Item) -> list[str]:
        return [item["name"]]

    @router.route("GET", f"{API}/models")
    async def list_models(request: Request) -> Response:
        user_of(request)
        details = _bool_param(request, "modelDetails")
        items = [_model_wire(state, request, m, details) for m in state.models.values()]
        items = _search(request, items, model_list_text)
        items = _strict_sort(request, items, ("name", "activeState"))
        return _paged(request, "models", _schema_url(request, "model"), items)

    @router.route("GET", f"{API}/workspaces/{{workspaceId}}/models")
    async def list_workspace_models(request: Request) -> Response:
        user_of(request)
        details = _bool_param(request, "modelDetails")
        workspace = workspace_of(request)
        items = [_model_wire(state, request, m, details) for m in state.workspace_models(workspace.id)]
        return _paged(request, "models", _schema_url(request, "model"), items)

    @router.route("GET", f"{API}/models/{{modelId}}")
    async def get_model(request: Request) -> Response:
        user_of(request)
        details = _bool_param(request, "modelDetails")
        model = model_of(request)
        return _ok(_schema_url(request, "model"), model=_model_wire(state, request, model, details))

    @router.route("GET", f"{API}/workspaces/{{workspaceId}}/models/{{modelId}}")
    async def get_workspace_model(request: Request) -> Response:
        # Live Anaplan has no GET on this path: it answers 405 (anaplan-openapi integration/README, issue #25).
        user_of(request)
        raise HTTPError(405)

    @router.route("GET", *_both_forms("/status"))
    async def get_model_status(request: Request) -> Response:
        # Live answers the bare object, without meta/status (anaplan-api.md §3.7).
        user_of(request)
        model = model_of(request)
        return json_response({"requestStatus": _model_status(state, model)})

    @router.route("POST", f"{API}/workspaces/{{workspaceId}}/models/{{modelId}}/status")
    async def post_model_status(request: Request) -> Response:
        # The form Anaplan's help pages document, with the usual envelope.
        user_of(request)
        model = model_of(request)
        return _ok(_schema_url(request, "modelStatus", model.id), requestStatus=_model_status(state, model))

    # ------------------------------------------------------------------ model objects
    def object_list(kind: str, key: str, items_of: Callable[[Model], Iterable[Item]]) -> None:
        async def handler(request: Request) -> Response:
            user_of(request)
            model = model_of(request)
            items = sorted((dict(item) for item in items_of(model)), key=lambda item: item["id"])
            items = _lenient_sort(request, items)
            return _paged(request, key, _schema_url(request, kind, model.id), items)

        router.route("GET", *_both_forms(f"/{key}"))(handler)

    object_list("file", "files", lambda m: m.files.values())
    object_list("import", "imports", lambda m: m.imports.values())
    object_list("export", "exports", lambda m: m.exports.values())
    object_list("process", "processes", lambda m: m.processes.values())
    object_list("action", "actions", lambda m: m.actions.values())

    @router.route("GET", *_both_forms("/imports/{importId}"))
    async def get_import(request: Request) -> Response:
        user_of(request)
        model = model_of(request)
        import_id = request.path_params["importId"]
        metadata = model.import_metadata.get(import_id)
        if metadata is None:
            if _OBJECT_ID.fullmatch(import_id):
                # Live Anaplan answers a well-formed but unknown import id with 500, not 404 (anaplan-api.md §3.3).
                raise HTTPError(500, "Internal Server Error")
            raise HTTPError(404)
        return _ok(_schema_url(request, "importMetadata", model.id), importMetadata=metadata)

    @router.route("GET", *_both_forms("/exports/{exportId}"))
    async def get_export(request: Request) -> Response:
        user_of(request)
        model = model_of(request)
        metadata = model.export_metadata.get(request.path_params["exportId"])
        if metadata is None:
            raise HTTPError(404)
        return _ok(_schema_url(request, "exportMetadata", model.id), exportMetadata=metadata)

    @router.route("GET", *_both_forms("/processes/{processId}"))
    async def get_process(request: Request) -> Response:
        user_of(request)
        show_source = request.arg("showImportDataSource", "") == "true"  # any other value means false
        model = model_of(request)
        process_id = request.path_params["processId"]
        process = model.processes.get(process_id)
        if process is None:
            raise HTTPError(404)
        steps = [
            _process_step(model, object_id, show_source) for object_id in model.process_actions.get(process_id, [])
        ]
        return _ok(_schema_url(request, "process"), processMetadata={"name": process["name"], "actions": steps})
