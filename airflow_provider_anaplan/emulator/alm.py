"""The ALM API of the emulator, under ``/2/0/models/{modelId}/…``: online status, revisions, syncable revisions,
sync tasks, and comparison and summary reports.

Every route needs a live token and the Workspace Administrator role in the workspace of each model it touches
(403; 424 on the report routes, as live). Calls that change something on an archived model answer 422. The semantics
(structure per revision, lineage, task progress on the clock) live in ``alm_state``; see docs/emulator-alm.md.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from ._asgi import HTTPError, Request, Response, Router, empty_response, json_response
from .alm_state import (
    COMPARISON,
    COMPLETE,
    IN_PROGRESS,
    NOT_STARTED,
    SUMMARY,
    SYNC,
    AlmState,
    AlmTask,
    Applied,
    Revision,
    alm_for,
    iso,
)
from .auth import require_user
from .integration import _origin, _paged, _schema_url
from .state import EmulatorState, Model, User

API = "/2/0"
ALM = f"{API}/models/{{modelId}}/alm"
MAX_NAME = 60
MAX_DESCRIPTION = 250
_HEX32 = re.compile(r"[0-9A-Fa-f]{32}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TASK_IDS = ("sourceRevisionId", "sourceModelId", "targetRevisionId")
_SORTABLE = ("id", "name", "description", "createdOn", "createdBy", "creationMethod", "appliedOn", "appliedBy")
_OFFLINE = {"UNLOCKED": "MAINTENANCE", "PRODUCTION": "PRODUCTION_MAINTENANCE"}
_ONLINE = {offline: online for online, offline in _OFFLINE.items()}

Item = dict[str, Any]


# --------------------------------------------------------------------------------------------------- wire objects
def revision_wire(revision: Revision, entry: Applied) -> Item:
    """A revision as one model's history shows it: ``appliedOn``/``appliedBy`` say when it reached that model."""
    out: Item = {"id": revision.id, "name": revision.name}
    if revision.description is not None:
        out["description"] = revision.description
    out.update(
        {
            "createdOn": iso(revision.created_on),
            "createdBy": revision.created_by,
            "creationMethod": revision.creation_method,
            "appliedOn": iso(entry.applied_on),
            "appliedBy": entry.applied_by,
        }
    )
    return out


def _current_step(task: AlmTask) -> str:
    if task.state == NOT_STARTED:
        return "Queued."
    if task.state == IN_PROGRESS:
        return "Synchronizing the model." if task.kind == SYNC else "Generating the report."
    if task.state == COMPLETE:
        return "Complete." if (task.result or {}).get("successful") else "Failed."
    return "Cancelled."


def task_wire(request: Request, task: AlmTask) -> Item:
    out: Item = {
        "taskId": task.id,
        "currentStep": _current_step(task),
        "taskState": task.state,
        "creationTime": task.creation_ms,  # epoch ms, as Anaplan sends (the spec's date-time string is wrong, §9)
    }
    if task.state == COMPLETE and task.result is not None:
        result = dict(task.result)
        if str(result.get("reportFileUrl", "")).startswith("/"):
            result["reportFileUrl"] = _origin(request) + result["reportFileUrl"]
        out["result"] = result
    return out


def _envelope(request: Request, kind: str, model_id: str, status: int = 200) -> Item:
    message = "Created" if status == 201 else "Success"
    return {"meta": {"schema": _schema_url(request, kind, model_id)}, "status": {"code": status, "message": message}}


def _ok(request: Request, kind: str, model_id: str, **payload: Any) -> Response:
    body = _envelope(request, kind, model_id)
    body.update({k: v for k, v in payload.items() if v is not None})
    return json_response(body)


# --------------------------------------------------------------------------------------------------- request checks
def _date_param(request: Request, name: str) -> date | None:
    raw = request.arg(name)
    if raw is None or raw == "":
        return None
    try:
        if not _DATE.fullmatch(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise HTTPError(400, f"Invalid value '{raw}' for parameter '{name}': expected a date YYYY-MM-DD") from None


def _sorted_revisions(request: Request, items: list[Item]) -> list[Item]:
    """``sort=field`` or ``-field`` (``+`` optional) on revision fields; unknown fields are ignored (as on object
    lists)."""
    raw = request.arg("sort")
    if not raw:
        return items
    out = list(items)
    for part in reversed([p.strip() for p in raw.split(",")]):
        name = part.lstrip("+- ")
        if name in _SORTABLE:
            out.sort(key=lambda item, n=name: str(item.get(n, "")).casefold(), reverse=part.startswith("-"))
    return out


async def _body(request: Request, allowed: tuple[str, ...]) -> Item:
    body = await request.json()
    if not isinstance(body, dict):
        raise HTTPError(400, "The request body must be a JSON object")
    for key in body:
        if key not in allowed:
            raise HTTPError(400, f"Identified an unrecognized '{key}' field in the request body")
    return body


async def _task_ids(request: Request) -> tuple[str, str, str]:
    """(sourceRevisionId, sourceModelId, targetRevisionId) from a sync or report task body; 400 when one is missing
    or is not a 32-hex-character id."""
    body = await _body(request, _TASK_IDS)
    if any(not body.get(key) for key in _TASK_IDS):
        raise HTTPError(400, "Expected mandatory fields 'sourceRevisionId', 'sourceModelId' and 'targetRevisionId'")
    for key in _TASK_IDS:
        value = body[key]
        if not isinstance(value, str) or not _HEX32.fullmatch(value):
            raise HTTPError(400, f"Invalid value for '{key}': expected a 32-character hexadecimal id")
    return body["sourceRevisionId"].upper(), body["sourceModelId"].upper(), body["targetRevisionId"].upper()


# --------------------------------------------------------------------------------------------------- routes
def register(router: Router, state: EmulatorState) -> None:
    """Add the ALM routes."""
    alm: AlmState = alm_for(state)

    def model(request: Request, model_id: str | None = None) -> Model:
        found = state.find_model(model_id or request.path_params["modelId"])
        if found is None:
            raise HTTPError(404, "Model not found")
        return found

    def require_admin(user: User, models: list[Model], status: int = 403) -> None:
        for m in models:
            if not alm.is_workspace_admin(user.id, m.workspace_id):
                raise HTTPError(status, f"Workspace Administrator role required in workspace {m.workspace_id}")

    def require_live(models: list[Model]) -> None:
        for m in models:
            if m.active_state == "ARCHIVED":
                raise HTTPError(422, f"Model {m.id} is archived")

    def target(request: Request, status: int = 403) -> tuple[User, Model]:
        """The caller and the path's model, after the token, existence and role checks."""
        user = require_user(state, request)
        found = model(request)
        require_admin(user, [found], status)
        return user, found

    # ------------------------------------------------------------------ online status
    async def online_status(request: Request) -> Response:
        _user, found = target(request)
        require_live([found])
        body = await _body(request, ("status",))
        status = body.get("status")
        if status not in ("online", "offline"):
            raise HTTPError(400, "Expected 'status' to be 'online' or 'offline'")
        if found.active_state == "LOCKED":
            raise HTTPError(400, f"Model {found.id} is locked")
        mapping = _OFFLINE if status == "offline" else _ONLINE
        found.active_state = mapping.get(found.active_state, found.active_state)
        state.count(f"alm.online_status.{status}")
        return empty_response(204)

    router.add("PUT", f"{API}/models/{{modelId}}/onlineStatus", online_status)
    router.add("POST", f"{API}/models/{{modelId}}/onlineStatus", online_status)

    # ------------------------------------------------------------------ revisions
    @router.route("GET", f"{ALM}/revisions")
    async def list_revisions(request: Request) -> Response:
        _user, found = target(request)
        after, before = _date_param(request, "appliedAfter"), _date_param(request, "appliedBefore")
        alm.tick()
        items: list[Item] = []
        for revision, entry in alm.history(found.id):
            applied = datetime.fromtimestamp(entry.applied_on, UTC).date()
            if (after is None or applied >= after) and (before is None or applied <= before):
                items.append(revision_wire(revision, entry))
        return _paged(
            request, "revisions", _schema_url(request, "revision", found.id), _sorted_revisions(request, items)
        )

    @router.route("POST", f"{ALM}/revisions")
    async def create_revision(request: Request) -> Response:
        user, found = target(request)
        require_live([found])
        body = await _body(request, ("name", "description"))
        name, description = body.get("name"), body.get("description")
        if not isinstance(name, str) or not name.strip():
            raise HTTPError(400, "Expected mandatory field 'name'")
        if len(name) > MAX_NAME:
            raise HTTPError(400, f"'name' must be at most {MAX_NAME} characters long")
        if description is not None and not isinstance(description, str):
            raise HTTPError(400, "'description' must be a string")
        if description is not None and len(description) > MAX_DESCRIPTION:
            raise HTTPError(400, f"'description' must be at most {MAX_DESCRIPTION} characters long")
        alm.tick()
        revision = alm.create_revision(found.id, name, description, user.id)
        entry = alm.model(found.id).entry(revision.id)
        assert entry is not None
        body = _envelope(request, "revision", found.id, 201)
        body["revision"] = revision_wire(revision, entry)
        return json_response(body, 201)

    @router.route("GET", f"{ALM}/latestRevision")
    async def latest_revision(request: Request) -> Response:
        _user, found = target(request)
        alm.tick()
        latest = alm.latest_revision(found.id)
        revisions = [revision_wire(*latest)] if latest else None  # no key at all when the model has no revision
        return _ok(request, "revision", found.id, revisions=revisions)

    @router.route("GET", f"{ALM}/revisions/{{revisionId}}/appliedToModels")
    async def applied_to_models(request: Request) -> Response:
        _user, found = target(request)
        alm.tick()
        revision_id = request.path_params["revisionId"].upper()
        if alm.model(found.id).entry(revision_id) is None:
            raise HTTPError(404, f"Revision {revision_id} not found in model {found.id}")
        items: list[Item] = []
        for model_id, entry in alm.applied_to(revision_id):
            item: Item = {"modelId": model_id}
            other = state.find_model(model_id)
            if other is None:
                item["modelDeleted"] = True
            else:
                item.update({"modelName": other.name, "workspaceId": other.workspace_id})
            item.update(
                {"appliedBy": entry.applied_by, "appliedOn": iso(entry.applied_on), "appliedMethod": entry.method}
            )
            items.append(item)
        return _ok(request, "appliedToModel", found.id, appliedToModels=items)

    @router.route("GET", f"{ALM}/syncableRevisions")
    async def syncable_revisions(request: Request) -> Response:
        user, found = target(request)
        source_id = request.arg("sourceModelId")
        if not source_id:
            raise HTTPError(400, "Expected mandatory parameter 'sourceModelId'")
        source = model(request, source_id.upper())
        require_admin(user, [source])
        alm.tick()
        items = [revision_wire(r, a) for r, a in alm.syncable(found.id, source.id)]
        return _ok(request, "revision", found.id, revisions=items or None)

    # ------------------------------------------------------------------ tasks
    async def start_task(request: Request, kind: str) -> Response:
        denied = 403 if kind == SYNC else 424
        user, found = target(request, denied)
        require_live([found])
        source_revision_id, source_model_id, target_revision_id = await _task_ids(request)
        source = model(request, source_model_id)
        require_admin(user, [source], denied)
        require_live([source])
        report_path = ""
        if kind != SYNC:
            report = "comparisonReports" if kind == COMPARISON else "summaryReports"
            report_path = f"{API}/models/{found.id}/alm/{report}/{target_revision_id}/{source_revision_id}"
        task = alm.create_task(
            kind, found.id, source.id, source_revision_id, target_revision_id, user.id, report_path=report_path
        )
        collection = {SYNC: "syncTasks", COMPARISON: "comparisonReportTasks", SUMMARY: "summaryReportTasks"}[kind]
        url = f"{_origin(request)}{API}/models/{found.id}/alm/{collection}/{task.id}"
        body = _envelope(request, "taskWithUrl", found.id, 201)
        body["task"] = {"taskId": task.id, "taskUrl": url, "taskState": task.state, "creationTime": task.creation_ms}
        return json_response(body, 201, headers=[("Location", url)])

    async def get_task(request: Request, kind: str, param: str) -> Response:
        _user, found = target(request, 403 if kind == SYNC else 424)
        task = alm.task(kind, found.id, request.path_params[param])
        if task is None:
            raise HTTPError(404, "Task not found")
        return _ok(request, "task", found.id, task=task_wire(request, task))

    @router.route("POST", f"{ALM}/syncTasks")
    async def create_sync_task(request: Request) -> Response:
        return await start_task(request, SYNC)

    @router.route("GET", f"{ALM}/syncTasks")
    async def list_sync_tasks(request: Request) -> Response:
        _user, found = target(request)
        tasks = [
            {"taskId": t.id, "taskState": t.state, "creationTime": t.creation_ms} for t in alm.sync_tasks(found.id)
        ]
        return _ok(request, "task", found.id, tasks=tasks or None)

    @router.route("GET", f"{ALM}/syncTasks/{{syncTaskId}}")
    async def get_sync_task(request: Request) -> Response:
        return await get_task(request, SYNC, "syncTaskId")

    @router.route("POST", f"{ALM}/comparisonReportTasks")
    async def create_comparison_task(request: Request) -> Response:
        return await start_task(request, COMPARISON)

    @router.route("GET", f"{ALM}/comparisonReportTasks/{{taskId}}")
    async def get_comparison_task(request: Request) -> Response:
        return await get_task(request, COMPARISON, "taskId")

    @router.route("POST", f"{ALM}/summaryReportTasks")
    async def create_summary_task(request: Request) -> Response:
        return await start_task(request, SUMMARY)

    @router.route("GET", f"{ALM}/summaryReportTasks/{{taskId}}")
    async def get_summary_task(request: Request) -> Response:
        return await get_task(request, SUMMARY, "taskId")

    # ------------------------------------------------------------------ reports
    @router.route("GET", f"{ALM}/comparisonReports/{{targetRevisionId}}/{{sourceRevisionId}}")
    async def get_comparison_report(request: Request) -> Response:
        _user, found = target(request, 424)
        if "application/octet-stream" not in request.headers.get("accept", "").lower():
            raise HTTPError(406, "The comparison report is served only as 'Accept: application/octet-stream'")
        params = request.path_params
        report = alm.report(COMPARISON, found.id, params["targetRevisionId"], params["sourceRevisionId"])
        if report is None:
            raise HTTPError(404, "Report not found or expired")
        return Response(status=200, body=report.comparison_tsv, content_type="application/octet-stream")

    @router.route("GET", f"{ALM}/summaryReports/{{targetRevisionId}}/{{sourceRevisionId}}")
    async def get_summary_report(request: Request) -> Response:
        _user, found = target(request, 424)
        params = request.path_params
        report = alm.report(SUMMARY, found.id, params["targetRevisionId"], params["sourceRevisionId"])
        if report is None:
            raise HTTPError(404, "Report not found or expired")
        return json_response({"summaryReport": report.summary})  # bare, as the spec describes this answer


__all__ = ["register", "revision_wire", "task_wire"]
