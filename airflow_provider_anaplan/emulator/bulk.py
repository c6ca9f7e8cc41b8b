"""Bulk routes of the Integration API v2: file upload and download, action tasks, failure dumps, optimizer logs.

Every route exists under ``/2/0/workspaces/{w}/models/{m}/…`` and ``/2/0/models/{m}/…``, as on Anaplan. The data
behind the routes (file content, model data, tasks) lives in the tenant's task engine (``engine.py``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from ._asgi import HTTPError, Request, Response, Router, empty_response, json_response
from .auth import require_user
from .engine import KINDS, Engine, Task, engine_for
from .state import _FILE_DEFAULTS, EmulatorState, Model

PREFIXES = ("/2/0/workspaces/{workspace_id}/models/{model_id}", "/2/0/models/{model_id}")
DEFAULT_PAGE_SIZE = 5000
_GZIP_TYPES = ("application/x-gzip", "application/gzip")
_SUCCESS = {"code": 200, "message": "Success"}


def register(router: Router, state: EmulatorState) -> None:
    """Add the file, task, dump and optimizer-log routes (both path forms) and create the tenant's task engine."""
    engine = engine_for(state)
    routes = _Routes(state, engine)
    table: list[tuple[str, str, Any]] = [
        ("POST", "/files/{file_id}", routes.set_chunk_count),
        ("PUT", "/files/{file_id}", routes.put_whole_file),
        ("GET", "/files/{file_id}", routes.get_whole_file),
        ("DELETE", "/files/{file_id}", routes.delete_file),
        ("POST", "/files/{file_id}/complete", routes.complete_file),
        ("GET", "/files/{file_id}/chunks", routes.list_chunks),
        ("PUT", "/files/{file_id}/chunks/{chunk_id}", routes.put_chunk),
        ("GET", "/files/{file_id}/chunks/{chunk_id}", routes.get_chunk),
        ("POST", "/{kind}/{object_id}/tasks", routes.create_task),
        ("GET", "/{kind}/{object_id}/tasks", routes.list_tasks),
        ("GET", "/{kind}/{object_id}/tasks/{task_id}", routes.get_task),
        ("DELETE", "/{kind}/{object_id}/tasks/{task_id}", routes.cancel_task),
        ("GET", "/imports/{object_id}/tasks/{task_id}/dump", routes.import_dump),
        ("GET", "/imports/{object_id}/tasks/{task_id}/dump/chunks", routes.import_dump_chunks),
        ("GET", "/imports/{object_id}/tasks/{task_id}/dump/chunks/{chunk_id}", routes.import_dump_chunk),
        ("GET", "/processes/{object_id}/tasks/{task_id}/dumps/{step_id}", routes.process_dump),
        ("GET", "/processes/{object_id}/tasks/{task_id}/dumps/{step_id}/chunks", routes.process_dump_chunks),
        ("GET", "/processes/{object_id}/tasks/{task_id}/dumps/{step_id}/chunks/{chunk_id}", routes.process_dump_chunk),
        ("GET", "/optimizeActions/{object_id}/tasks/{task_id}/solutionLogs", routes.solution_log),
    ]
    for method, suffix, handler in table:
        for prefix in PREFIXES:
            router.add(method, prefix + suffix, handler)


def _schema(model_id: str, kind: str) -> dict[str, str]:
    return {"schema": f"https://api.anaplan.com/2/0/models/{model_id}/objects/{kind}"}


def _int_arg(request: Request, name: str, default: int) -> int:
    raw = request.arg(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPError(400, f"Query parameter {name} must be an integer") from None
    if value < 0:
        raise HTTPError(400, f"Query parameter {name} must not be negative")
    return value


def _paged(request: Request, model_id: str, kind: str, key: str, items: list[dict[str, Any]]) -> Response:
    """A listing with ``meta.paging``; the payload key is left out when the page is empty, as Anaplan does."""
    offset = _int_arg(request, "offset", 0)
    limit = _int_arg(request, "limit", DEFAULT_PAGE_SIZE) or DEFAULT_PAGE_SIZE
    page = items[offset : offset + limit]
    paging: dict[str, Any] = {"currentPageSize": len(page), "offset": offset, "totalSize": len(items)}
    base = f"https://api.anaplan.com{request.path}"
    if offset + limit < len(items):
        paging["next"] = f"{base}?{urlencode({'limit': limit, 'offset': offset + limit})}"
    if offset > 0:
        paging["previous"] = f"{base}?{urlencode({'limit': limit, 'offset': max(0, offset - limit)})}"
    body: dict[str, Any] = {"meta": {"paging": paging, **_schema(model_id, kind)}, "status": _SUCCESS}
    if page:
        body[key] = page
    return json_response(body)


def _chunk_list(chunks: int) -> list[dict[str, Any]]:
    return [{"id": str(i), "name": f"Chunk {i}"} for i in range(chunks)]


_MAX_CHUNK_ID_DIGITS = 18  # far beyond any chunk count; int() of 4300+ digits raises ValueError


def _chunk_index(raw: str, limit: int | None = None) -> int:
    """A chunk id as an index: ASCII decimal digits only (``isdigit()`` alone also accepts '²'); 404 for anything
    else, 400 on a PUT (``limit`` given) for an index beyond the file's chunk limit, however many digits it has."""
    shown = raw if len(raw) <= 40 else raw[:40] + "..."
    if not (raw.isascii() and raw.isdigit()):
        raise HTTPError(404, f"Chunk {shown} not found")
    if len(raw.lstrip("0")) > _MAX_CHUNK_ID_DIGITS:
        if limit is not None:
            raise HTTPError(400, f"Chunk {shown} is beyond the limit of {limit} chunks per file")
        raise HTTPError(404, f"Chunk {shown} not found")
    index = int(raw)
    if limit is not None and index >= limit:
        raise HTTPError(400, f"Chunk {index} is beyond the limit of {limit} chunks per file")
    return index


class _Routes:
    def __init__(self, state: EmulatorState, engine: Engine) -> None:
        self.state = state
        self.engine = engine

    # ------------------------------------------------------------------------------------------------ lookups
    def _model(self, request: Request) -> Model:
        require_user(self.state, request)
        model = self.state.models.get(request.path_params["model_id"])
        workspace_id = request.path_params.get("workspace_id")
        if model is None or (workspace_id is not None and model.workspace_id != workspace_id):
            raise HTTPError(404, "Model not found")
        return model

    def _file(self, request: Request) -> tuple[Model, dict[str, Any]]:
        model = self._model(request)
        file_wire = model.files.get(request.path_params["file_id"])
        if file_wire is None:
            raise HTTPError(404, f"File {request.path_params['file_id']} not found")
        return model, file_wire

    def _action(self, request: Request) -> tuple[Model, str, str]:
        model = self._model(request)
        kind, object_id = request.path_params.get("kind", ""), request.path_params["object_id"]
        if kind not in KINDS:
            raise HTTPError(404, "Not Found")
        if object_id not in getattr(model, kind):
            raise HTTPError(404, f"{object_id} is not one of this model's {kind}")
        return model, kind, object_id

    def _task(self, request: Request, kind: str | None = None) -> Task:
        if kind is not None:
            request.path_params["kind"] = kind
        model, kind, object_id = self._action(request)
        return self.engine.task(model.id, kind, object_id, request.path_params["task_id"])

    # ------------------------------------------------------------------------------------------------ files
    async def set_chunk_count(self, request: Request) -> Response:
        model = self._model(request)
        body = await request.json()
        count = body.get("chunkCount") if isinstance(body, dict) else None
        if not isinstance(count, int) or isinstance(count, bool) or count < -1:
            raise HTTPError(400, "Body must be {'chunkCount': N} with N >= 0, or -1 when the count is unknown")
        if count > self.engine.options.max_chunks:
            raise HTTPError(400, f"A file may have at most {self.engine.options.max_chunks} chunks")
        file_id = request.path_params["file_id"]
        file_wire = model.files.get(file_id)
        if file_wire is None:  # Anaplan silently creates a new import file named after the unknown id
            file_wire = {**_FILE_DEFAULTS, "id": _new_file_id(model), "name": file_id}
            model.files[file_wire["id"]] = file_wire
            self.state.count("files.created")
        self.engine.store.clear(model.id, file_wire["id"])
        file_wire["chunkCount"] = count
        return json_response({"meta": _schema(model.id, "file"), "status": _SUCCESS, "file": file_wire})

    async def put_chunk(self, request: Request) -> Response:
        model, file_wire = self._file(request)
        index = _chunk_index(request.path_params["chunk_id"], self.engine.options.max_chunks)
        raw = await request.body()
        limit = self.engine.options.max_chunk_bytes
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type in _GZIP_TYPES and self.engine.options.store_compressed_chunks:
            _check_gzip_lightly(raw, limit)
            self.engine.store.put(model.id, file_wire["id"], index, raw, inflate=_stored_gzip_inflater(limit))
        else:
            self.engine.store.put(model.id, file_wire["id"], index, self._chunk_body(request, raw))
        self.state.count("files.chunk_put")
        return empty_response(204)

    def _chunk_body(self, request: Request, raw: bytes) -> bytes:
        limit = self.engine.options.max_chunk_bytes
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        data = _gunzip(raw, limit) if content_type in _GZIP_TYPES else raw
        if len(data) > limit:
            raise HTTPError(413, f"A chunk may hold at most {limit} bytes uncompressed")
        return data

    async def complete_file(self, request: Request) -> Response:
        model, file_wire = self._file(request)
        if not (await request.body()).strip():
            # Live Anaplan answers a bodiless complete with a 500; clients must send a body such as {"id": …}.
            raise HTTPError(500, "Internal Server Error")
        body = await request.json()
        if not isinstance(body, dict):
            raise HTTPError(400, "Body must be a JSON object such as {'id': '<fileId>'}")
        indexes = self.engine.store.indexes(model.id, file_wire["id"])
        if indexes != list(range(len(indexes))):
            missing = sorted(set(range(max(indexes) + 1)) - set(indexes))
            raise HTTPError(400, f"Chunks are missing: {missing}")
        file_wire["chunkCount"] = len(indexes)
        return json_response({"meta": _schema(model.id, "file"), "status": _SUCCESS, "file": file_wire})

    async def put_whole_file(self, request: Request) -> Response:
        model, file_wire = self._file(request)
        data = await request.body()
        if len(data) > self.engine.options.max_chunk_bytes:
            raise HTTPError(413, f"A single-shot upload may hold at most {self.engine.options.max_chunk_bytes} bytes")
        self.engine.store.clear(model.id, file_wire["id"])
        if data:
            self.engine.store.put(model.id, file_wire["id"], 0, data)
        file_wire["chunkCount"] = 1 if data else 0
        return empty_response(204)

    async def get_whole_file(self, request: Request) -> Response:
        model, file_wire = self._file(request)
        if not self.engine.store.has_content(model.id, file_wire["id"]):
            raise HTTPError(404, f"File {file_wire['id']} has no content")
        body = b"".join(self.engine.store.iter_chunks(model.id, file_wire["id"]))
        return Response(200, body, "application/octet-stream")

    async def delete_file(self, request: Request) -> Response:
        model, file_wire = self._file(request)
        self.engine.store.clear(model.id, file_wire["id"])  # chunkCount is left as it was: live it goes stale too
        return empty_response(204)

    async def list_chunks(self, request: Request) -> Response:
        model, file_wire = self._file(request)
        indexes = self.engine.store.indexes(model.id, file_wire["id"])
        chunks = [{"id": str(i), "name": f"Chunk {i}"} for i in indexes]
        return _paged(request, model.id, "chunk", "chunks", chunks)

    async def get_chunk(self, request: Request) -> Response:
        model, file_wire = self._file(request)
        index = _chunk_index(request.path_params["chunk_id"])
        data = self.engine.store.read(model.id, file_wire["id"], index)
        if data is None:
            raise HTTPError(404, f"Chunk {index} of file {file_wire['id']} not found")
        self.state.count("files.chunk_get")
        return Response(200, data, "application/octet-stream")

    # ------------------------------------------------------------------------------------------------ tasks
    async def create_task(self, request: Request) -> Response:
        user = require_user(self.state, request)
        model, kind, object_id = self._action(request)
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("localeName"), str) or not body["localeName"]:
            raise HTTPError(400, "Body must be a JSON object with localeName, e.g. {'localeName': 'en_US'}")
        mapping = body.get("mappingParameters", [])
        if not isinstance(mapping, list) or not all(
            isinstance(m, dict) and isinstance(m.get("entityType"), str) and isinstance(m.get("entityName"), str)
            for m in mapping
        ):
            raise HTTPError(400, "mappingParameters must be a list of {'entityType': …, 'entityName': …}")
        if model.active_state == "ARCHIVED":
            raise HTTPError(422, "The model is archived")
        task = self.engine.create_task(model, kind, object_id, user.id, body["localeName"], mapping)
        payload = {"taskId": task.id, "taskState": task.state, "creationTime": task.creation_ms}
        return json_response({"meta": _schema(model.id, "task"), "status": _SUCCESS, "task": payload})

    async def list_tasks(self, request: Request) -> Response:
        model, kind, object_id = self._action(request)
        tasks = self.engine.tasks_of(model.id, kind, object_id)
        if (request.arg("sort") or "").startswith("-"):
            tasks = list(reversed(tasks))
        items = [{"taskId": t.id, "taskState": t.state, "creationTime": t.creation_ms} for t in tasks]
        return _paged(request, model.id, "task", "tasks", items)

    async def get_task(self, request: Request) -> Response:
        task = self._task(request)
        body = {"meta": _schema(task.model_id, "taskInformation"), "status": _SUCCESS}
        return json_response({**body, "task": self.engine.task_wire(task)})

    async def cancel_task(self, request: Request) -> Response:
        task = self._task(request)
        self.engine.cancel(task)
        body = {"meta": _schema(task.model_id, "taskInformation"), "status": _SUCCESS}
        return json_response({**body, "task": self.engine.task_wire(task)})

    # ------------------------------------------------------------------------------------------------ dumps
    def _dump(self, request: Request, kind: str) -> tuple[Task, bytes]:
        task = self._task(request, kind)
        step_id = request.path_params.get("step_id", task.object_id)
        return task, self.engine.dump(task.model_id, task.object_id, step_id, task.id)

    async def import_dump(self, request: Request) -> Response:
        _, data = self._dump(request, "imports")
        return Response(200, data, "text/plain; charset=utf-8")

    async def import_dump_chunks(self, request: Request) -> Response:
        task, data = self._dump(request, "imports")
        return _paged(request, task.model_id, "chunk", "chunks", _chunk_list(len(self.engine.dump_chunks(data))))

    async def import_dump_chunk(self, request: Request) -> Response:
        _, data = self._dump(request, "imports")
        return self._dump_chunk(request, data)

    async def process_dump(self, request: Request) -> Response:
        _, data = self._dump(request, "processes")
        return Response(200, data, "text/plain; charset=utf-8")

    async def process_dump_chunks(self, request: Request) -> Response:
        task, data = self._dump(request, "processes")
        return _paged(request, task.model_id, "chunk", "chunks", _chunk_list(len(self.engine.dump_chunks(data))))

    async def process_dump_chunk(self, request: Request) -> Response:
        _, data = self._dump(request, "processes")
        return self._dump_chunk(request, data)

    def _dump_chunk(self, request: Request, data: bytes) -> Response:
        chunks = self.engine.dump_chunks(data)
        index = _chunk_index(request.path_params["chunk_id"])
        if index >= len(chunks):
            raise HTTPError(404, f"Chunk {index} not found")
        return Response(200, chunks[index], "text/plain; charset=utf-8")

    # ------------------------------------------------------------------------------------------------ optimizer
    async def solution_log(self, request: Request) -> Response:
        model = self._model(request)
        log = self.engine.solution_log(model, request.path_params["object_id"], request.path_params["task_id"])
        return Response(200, log.encode("utf-8"), "text/plain; charset=utf-8")


def _gunzip(raw: bytes, limit: int) -> bytes:
    """Decompress a gzip body (several members allowed), refusing more than ``limit`` bytes of output."""
    out = bytearray()
    rest = raw
    try:
        while rest:
            decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out += decompressor.decompress(rest, limit + 1 - len(out))
            if len(out) > limit:
                raise HTTPError(413, f"A chunk may hold at most {limit} bytes uncompressed")
            if not decompressor.eof:
                raise HTTPError(400, "The gzip chunk is truncated")
            rest = decompressor.unused_data
    except zlib.error as exc:
        raise HTTPError(400, f"The chunk is not valid gzip: {exc}") from None
    return bytes(out)


def _check_gzip_lightly(raw: bytes, limit: int) -> None:
    """What can be checked of a gzip chunk without inflating it: the magic bytes, and the size its trailer records
    (ISIZE, the uncompressed size modulo 2**32, of the last member); the rest is checked when it is inflated."""
    if len(raw) < 18 or raw[:2] != b"\x1f\x8b":
        raise HTTPError(400, "The chunk is not valid gzip: no gzip header")
    if int.from_bytes(raw[-4:], "little") > limit:
        raise HTTPError(413, f"A chunk may hold at most {limit} bytes uncompressed")


def _stored_gzip_inflater(limit: int) -> Callable[[bytes], bytes]:
    def inflate(raw: bytes) -> bytes:
        return _gunzip(raw, limit)  # HTTPError 400/413 for a chunk that turns out corrupt or too large

    return inflate


def _new_file_id(model: Model) -> str:
    """The next free 113… id in the model (what Anaplan hands out for a file created by an unknown id)."""
    taken = [int(f) for f in model.files if f.startswith("113") and f.isdigit()]
    return str(max(taken, default=113_000_000_000) + 1)
