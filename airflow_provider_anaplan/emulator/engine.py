"""The emulator's task engine: runs imports, exports, processes and other actions against in-memory model data.

Tasks advance lazily on ``state.clock``: every read of a model's tasks first brings the model's queue up to date, so
no background thread is needed and tests with a hand-moved clock step time exactly. One action runs at a time per
model (Anaplan's model lock); later tasks wait in ``NOT_STARTED``. A task's data changes are applied when it starts
and undone if it is cancelled; its result, its failure dumps and an export's output file appear when it completes.
"""

from __future__ import annotations

import codecs
import copy
import csv
import io
import json
import math
import uuid
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from ._asgi import HTTPError
from .data import NUMBER, ChunkStore, ListItem, ModelData, ModelList, Module, model_data_from_seed
from .state import _FILE_DEFAULTS, EmulatorState, Model, _export_metadata, _import_metadata

NOT_STARTED = "NOT_STARTED"
IN_PROGRESS = "IN_PROGRESS"
COMPLETE = "COMPLETE"
CANCELLING = "CANCELLING"
CANCELLED = "CANCELLED"

KINDS = ("imports", "exports", "processes", "actions")
MB = 1024 * 1024


@dataclass
class EngineOptions:
    """Knobs for tests, demos and benchmarks; change them on ``engine_for(state).options``."""

    task_duration: float = 1.0  # clock seconds one action takes (a process: this much per step it runs)
    cancel_duration: float = 0.0  # clock seconds a task stays CANCELLING before it is CANCELLED
    export_chunk_bytes: int = 10 * MB  # export output is cut into chunks of this size (Anaplan: about 10 MB)
    dump_chunk_bytes: int = 10 * MB  # failure dumps are served in chunks of at most this size
    max_chunk_bytes: int = 50 * MB  # an uploaded chunk may hold at most this many bytes, uncompressed
    max_chunks: int = 1000  # a file may have at most this many chunks
    count_only_imports: bool = False  # imports count rows without parsing or storing them (large benchmarks)
    # gzip chunks are kept as they came and inflated when first read (an import, a download), not when uploaded, so a
    # benchmark's upload does not pay for the emulator's inflation; a corrupt one is then found only when read
    store_compressed_chunks: bool = False
    dump_ttl: float = 48 * 3600.0  # a dump is removed this long after it was last read


@dataclass
class StepOutcome:
    """What running one action produced: its wire result and anything that appears when the task completes."""

    result: dict[str, Any]
    dump: bytes | None = None
    export_chunks: list[bytes] | None = None
    solution_log: str | None = None


@dataclass
class Task:
    id: str
    model_id: str
    kind: str  # imports | exports | processes | actions
    object_id: str
    created: float  # clock seconds
    user_id: str
    locale: str
    mapping_parameters: list[dict[str, Any]] = field(default_factory=list)
    state: str = NOT_STARTED
    start: float | None = None
    end: float | None = None
    cancel_at: float | None = None
    progress: float = 0.0  # frozen when the task is cancelled
    outcomes: list[StepOutcome] = field(default_factory=list)
    result: dict[str, Any] | None = None
    snapshot: ModelData | None = None

    @property
    def creation_ms(self) -> int:
        return int(self.created * 1000)


@dataclass
class Dump:
    task_id: str
    data: bytes
    last_access: float


class Engine:
    """Model data, file content, tasks, dumps and optimizer logs of one emulated tenant."""

    def __init__(self, state: EmulatorState, options: EngineOptions | None = None) -> None:
        self.state = state
        self.options = options or EngineOptions()
        self.store = ChunkStore()
        self.data: dict[str, ModelData] = {}
        self.import_specs: dict[tuple[str, str], dict[str, Any]] = {}
        self.export_specs: dict[tuple[str, str], dict[str, Any]] = {}
        self.action_specs: dict[tuple[str, str], dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, Task]] = {}  # model id -> task id -> task, in creation order
        self.running: dict[str, Task] = {}  # model id -> the task holding the model lock
        self.free_at: dict[str, float] = {}  # model id -> when the lock was last released
        self.dumps: dict[tuple[str, str, str], Dump] = {}  # (model, action run, object with the dump)
        self.solution_logs: dict[tuple[str, str, str], str] = {}  # (model, optimizer action, task id)

    def use_spool_dir(self, path: str) -> None:
        """Keep file content in files under ``path`` instead of memory (for gigabyte benchmarks)."""
        self.store = ChunkStore(path)

    # ------------------------------------------------------------------------------------------------ model data
    def model_data(self, model_id: str) -> ModelData:
        return self.data.setdefault(model_id, ModelData())

    # ------------------------------------------------------------------------------------------------ tasks
    def create_task(
        self, model: Model, kind: str, object_id: str, user_id: str, locale: str, mapping: list[dict[str, Any]]
    ) -> Task:
        """Queue a run of an action; it starts at once when the model is free."""
        self.tick(model.id)
        task = Task(uuid.uuid4().hex.upper(), model.id, kind, object_id, self.state.clock(), user_id, locale, mapping)
        self.tasks.setdefault(model.id, {})[task.id] = task
        self.state.count(f"tasks.create.{kind}")
        self.tick(model.id)
        return task

    def tasks_of(self, model_id: str, kind: str, object_id: str) -> list[Task]:
        self.tick(model_id)
        return [t for t in self.tasks.get(model_id, {}).values() if t.kind == kind and t.object_id == object_id]

    def task(self, model_id: str, kind: str, object_id: str, task_id: str) -> Task:
        """A task of this action, brought up to date; HTTPError(404) for an unknown id or another action's task."""
        self.tick(model_id)
        task = self.tasks.get(model_id, {}).get(task_id.upper())
        if task is None or task.kind != kind or task.object_id != object_id:
            raise HTTPError(404, f"Task {task_id} not found for {object_id}")
        return task

    def cancel(self, task: Task) -> None:
        """Start cancelling an unfinished task: it answers CANCELLING now and is CANCELLED after ``cancel_duration``."""
        self.tick(task.model_id)
        if task.state in (NOT_STARTED, IN_PROGRESS):
            task.progress = self._progress(task, self.state.clock())
            task.state = CANCELLING
            task.cancel_at = self.state.clock()
            self.state.count("tasks.cancel")

    def tick(self, model_id: str) -> None:
        """Bring the model's tasks up to the clock: finish, cancel and start tasks in the order they would have."""
        now = self.state.clock()
        tasks = self.tasks.get(model_id, {})
        for task in tasks.values():
            if task.state == CANCELLING and task.start is None:
                done = (task.cancel_at or now) + self.options.cancel_duration
                if done <= now:
                    task.state = CANCELLED
        while True:
            running = self.running.get(model_id)
            if running is not None:
                if running.state == CANCELLING:
                    done = (running.cancel_at or now) + self.options.cancel_duration
                    if done > now:
                        return
                    self._finish_cancel(running)
                    self._release(model_id, done)
                    continue
                assert running.end is not None
                if running.end > now:
                    return
                self._complete(running)
                self._release(model_id, running.end)
                continue
            waiting = next((t for t in tasks.values() if t.state == NOT_STARTED), None)
            if waiting is None:
                return
            self._start(waiting, max(self.free_at.get(model_id, waiting.created), waiting.created))

    def _release(self, model_id: str, at: float) -> None:
        self.running.pop(model_id, None)
        self.free_at[model_id] = at

    def _progress(self, task: Task, now: float) -> float:
        if task.state == COMPLETE:
            return 1.0
        if task.state != IN_PROGRESS or task.start is None or task.end is None or task.end <= task.start:
            return task.progress
        return round(min(0.99, max(0.0, (now - task.start) / (task.end - task.start))), 4)

    # ------------------------------------------------------------------------------------------------ running
    def _start(self, task: Task, at: float) -> None:
        model = self.state.models[task.model_id]
        task.state = IN_PROGRESS
        task.start = at
        self.running[task.model_id] = task
        steps = list(model.process_actions.get(task.object_id, [])) if task.kind == "processes" else [task.object_id]
        data = self.model_data(model.id)
        if any(step.startswith(("112", "117")) for step in steps):
            task.snapshot = copy.deepcopy(data)
        for step in steps:
            outcome = self._run_step(model, step, task)
            task.outcomes.append(outcome)
            if task.kind == "processes" and not outcome.result["successful"]:
                break  # a process stops at its first failed step
        task.end = at + self.options.task_duration * max(1, len(task.outcomes))
        if task.kind == "processes":
            nested = [o.result for o in task.outcomes]
            task.result = {
                "objectId": task.object_id,
                "objectName": model.processes[task.object_id]["name"],
                "successful": all(r["successful"] for r in nested) and len(nested) == len(steps),
                "failureDumpAvailable": any(r["failureDumpAvailable"] for r in nested),
                "details": [],
                "nestedResults": nested,
            }
        else:
            task.result = task.outcomes[0].result

    def _complete(self, task: Task) -> None:
        task.state = COMPLETE
        task.progress = 1.0
        task.snapshot = None
        model = self.state.models[task.model_id]
        for outcome in task.outcomes:
            object_id = outcome.result["objectId"]
            key = (task.model_id, task.object_id, object_id)
            if outcome.dump is not None:
                self.dumps[key] = Dump(task.id, outcome.dump, task.end or self.state.clock())
            elif object_id.startswith("112"):
                self.dumps.pop(key, None)  # a clean run removes the dump of the previous run
            if outcome.export_chunks is not None:
                self.store.replace(model.id, object_id, outcome.export_chunks)
                file_wire = model.files.setdefault(
                    object_id, {"id": object_id, "name": model.exports[object_id]["name"], "firstDataRow": 0}
                )
                file_wire["chunkCount"] = len(outcome.export_chunks)
            if outcome.solution_log is not None:
                self.solution_logs[(model.id, object_id, task.id)] = outcome.solution_log
        task.outcomes = []  # published: keep only the result, not a second copy of dumps and export output

    def _finish_cancel(self, task: Task) -> None:
        task.state = CANCELLED
        if task.snapshot is not None:
            self.data[task.model_id] = task.snapshot  # roll the task's changes back
        task.snapshot = None
        task.outcomes = []
        task.result = None

    def _run_step(self, model: Model, object_id: str, task: Task) -> StepOutcome:
        if object_id in model.imports:
            return self._run_import(model, object_id)
        if object_id in model.exports:
            return self._run_export(model, object_id)
        if object_id in model.actions:
            return self._run_action(model, object_id)
        return StepOutcome(_failed(object_id, object_id, "unknownAction", f"Action {object_id} does not exist"))

    # ------------------------------------------------------------------------------------------------ imports
    def _run_import(self, model: Model, import_id: str) -> StepOutcome:
        wire = model.imports[import_id]
        name = wire["name"]
        if model.import_metadata.get(import_id, {}).get("type") == "MODEL":
            detail = _detail("modelImportProcessed", f"{name}: completed", [])
            return StepOutcome(_result(import_id, name, True, False, [detail]))
        file_id = wire.get("importDataSourceId", "")
        if not self.store.has_content(model.id, file_id):
            text = f"The data source file {file_id} of {name} has no content: upload it first"
            return StepOutcome(_failed(import_id, name, "importFailed", text))
        spec = self.import_specs.get((model.id, import_id))
        file_wire = {**_FILE_DEFAULTS, **model.files.get(file_id, {})}
        if self.options.count_only_imports or spec is None:
            rows = self._count_rows(model.id, file_id, int(file_wire.get("firstDataRow") or 1))
            counts = _Counts(created=rows) if spec is not None and "list" in spec else _Counts(updated=rows)
            target = (spec or {}).get("list") or (spec or {}).get("module") or name
            kind = "hierarchy" if spec is not None and "list" in spec else "module"
            return StepOutcome(_result(import_id, name, True, False, [_rows_detail(kind, target, counts)]))
        return _RowImport(self, model, import_id, spec, file_id, file_wire).run()

    def _count_rows(self, model_id: str, file_id: str, first_data_row: int) -> int:
        lines = 0
        last = b"\n"
        for chunk in self.store.iter_chunks(model_id, file_id):
            lines += chunk.count(b"\n")
            if chunk:
                last = chunk[-1:]
        if last != b"\n":
            lines += 1
        return max(0, lines - max(0, first_data_row - 1))

    # ------------------------------------------------------------------------------------------------ exports
    def _run_export(self, model: Model, export_id: str) -> StepOutcome:
        name = model.exports[export_id]["name"]
        spec = self.export_specs.get((model.id, export_id), {})
        headers = list(spec.get("headers") or model.export_metadata.get(export_id, {}).get("headerNames", []))
        data = self.model_data(model.id)
        try:
            rows = _export_rows(data, spec)
        except KeyError as exc:
            return StepOutcome(_failed(export_id, name, "exportFailed", f"{name}: unknown model object {exc}"))
        writer = _ChunkWriter(self.options.export_chunk_bytes)
        count = 0
        if headers:
            writer.write_row(headers)
        for row in rows:
            writer.write_row(row)
            count += 1
        text = f"{name}: {count} rows exported"
        detail = _detail("exportSucceeded", text, ["exportName", name, "rowCount", str(count)])
        return StepOutcome(_result(export_id, name, True, False, [detail]), export_chunks=writer.close())

    # ------------------------------------------------------------------------------------------------ actions
    def _run_action(self, model: Model, action_id: str) -> StepOutcome:
        wire = model.actions[action_id]
        name = wire["name"]
        action_type = wire.get("actionType", "")
        spec = self.action_specs.get((model.id, action_id), {})
        data = self.model_data(model.id)
        if action_type in ("DELETE_BY_SELECTION", "BULK_DELETE_ENTITIES") and spec.get("list") in data.lists:
            model_list = data.lists[spec["list"]]
            keys = {
                key
                for key, item in model_list.items.items()
                if str(item.properties.get(spec["property"], "")) == str(spec["equals"])
            }
            data.delete_items(model_list.name, keys)
            text = f"{model_list.name}: {len(keys)} items deleted"
            detail = _detail("itemsDeleted", text, ["listName", model_list.name, "deletedCount", str(len(keys))])
            return StepOutcome(_result(action_id, name, True, False, [detail]))
        if action_type == "ORDER_HIERARCHY" and spec.get("list") in data.lists:
            model_list = data.lists[spec["list"]]
            model_list.items = dict(sorted(model_list.items.items(), key=lambda kv: kv[1].name.lower()))
            detail = _detail("hierarchyOrdered", f"{model_list.name}: {len(model_list.items)} items ordered", [])
            return StepOutcome(_result(action_id, name, True, False, [detail]))
        if action_type == "OPTIMIZER":
            log = _solution_log(name, action_id, data)
            detail = _detail("optimizerSucceeded", f"{name}: optimal solution found", [])
            return StepOutcome(_result(action_id, name, True, False, [detail]), solution_log=log)
        return StepOutcome(_result(action_id, name, True, False, []))

    # ------------------------------------------------------------------------------------------------ wire
    def task_wire(self, task: Task) -> dict[str, Any]:
        """The task-status object of ``GET …/tasks/{taskId}``."""
        now = self.state.clock()
        out: dict[str, Any] = {
            "type": "taskInformation",
            "taskId": task.id,
            "currentStep": _current_step(task),
            "progress": self._progress(task, now),
            "taskState": task.state,
            "creationTime": task.creation_ms,
        }
        if task.state == COMPLETE and task.result is not None:
            out["result"] = task.result
        return out

    # ------------------------------------------------------------------------------------------------ dumps, logs
    def dump(self, model_id: str, owner_id: str, object_id: str, task_id: str) -> bytes:
        """The failure dump of one step of a task; HTTPError(404) when there is none or it was removed."""
        key = (model_id, owner_id, object_id)
        found = self.dumps.get(key)
        now = self.state.clock()
        if found is not None and now - found.last_access > self.options.dump_ttl:
            del self.dumps[key]
            found = None
        if found is None or found.task_id != task_id.upper():
            raise HTTPError(404, "No failure dump for this task (none was written, or it was removed)")
        found.last_access = now
        return found.data

    def dump_chunks(self, data: bytes) -> list[bytes]:
        size = max(1, self.options.dump_chunk_bytes)
        return [data[i : i + size] for i in range(0, len(data), size)] or [b""]

    def solution_log(self, model: Model, action_id: str, correlation_id: str) -> str:
        action = model.actions.get(action_id)
        if action is None or action.get("actionType") != "OPTIMIZER":
            raise HTTPError(404, f"{action_id} is not an optimizer action of this model")
        self.tick(model.id)
        log = self.solution_logs.get((model.id, action_id, correlation_id.upper()))
        if log is None:
            raise HTTPError(404, f"No solution log for {correlation_id}")
        return log


# ---------------------------------------------------------------------------------------------------- import rows
@dataclass
class _Counts:
    created: int = 0
    updated: int = 0
    failed: int = 0
    ignored: int = 0

    @property
    def success(self) -> int:
        return self.created + self.updated


class _RowImport:
    """One file-based import: parse the source CSV, load the rows that are valid, dump the rest."""

    def __init__(
        self,
        engine: Engine,
        model: Model,
        import_id: str,
        spec: dict[str, Any],
        file_id: str,
        file_wire: dict[str, Any],
    ) -> None:
        self.engine = engine
        self.model = model
        self.import_id = import_id
        self.name = model.imports[import_id]["name"]
        self.spec = spec
        self.file_id = file_id
        self.file = file_wire
        self.data = engine.model_data(model.id)
        self.counts = _Counts()
        self.dump = io.StringIO()
        self.dump_writer = csv.writer(self.dump, quoting=csv.QUOTE_ALL, lineterminator="\n")

    def run(self) -> StepOutcome:
        lines = _text_lines(self.engine.store.iter_chunks(self.model.id, self.file_id), self.file["encoding"])
        separator = self.file.get("separator") or ","
        quote = self.file.get("delimiter") or '"'
        reader = csv.reader(lines, delimiter=separator, quotechar=quote)
        header_row = int(self.file.get("headerRow") or 0)
        first_data_row = int(self.file.get("firstDataRow") or 1)
        columns = list(self.model.import_metadata.get(self.import_id, {}).get("source", {}).get("headerNames", []))
        try:
            load_row, target, kind = self._loader()
        except KeyError as exc:
            return StepOutcome(_failed(self.import_id, self.name, "importFailed", f"{self.name}: no target {exc}"))
        if header_row <= 0 and (failure := self._missing_columns(columns)):
            return failure
        dump_started = False
        for line, record in enumerate(reader, start=1):
            if line == header_row:
                columns = [c.strip() for c in record]
                if failure := self._missing_columns(columns):
                    return failure
                continue
            if line < first_data_row:
                continue
            values = {col: (record[i].strip() if i < len(record) else "") for i, col in enumerate(columns)}
            if not any(values.values()):
                self.counts.ignored += 1
                continue
            error = load_row(values)
            if error is not None:
                if not dump_started:
                    self.dump_writer.writerow(["_Status_", *columns, "_Line_", "_Error_1_"])
                    dump_started = True
                padded = [record[i] if i < len(record) else "" for i in range(len(columns))]
                self.dump_writer.writerow(["E", *padded, str(line), error])
                self.counts.failed += 1
        failed = self.counts.failed
        successful = not (failed and self.counts.success == 0)  # every row rejected: the import failed
        result = _result(self.import_id, self.name, successful, bool(failed), [_rows_detail(kind, target, self.counts)])
        return StepOutcome(result, dump=self.dump.getvalue().encode("utf-8") if failed else None)

    def _missing_columns(self, columns: list[str]) -> StepOutcome | None:
        """A failed outcome when a column the import maps is not in the source file's header."""
        wanted = [self.spec.get(k) for k in ("code", "name", "parent")]
        wanted += list(self.spec.get("properties", {}).values())
        wanted += list(self.spec.get("dimensions", {}).values()) + list(self.spec.get("lineItems", {}).values())
        missing = [c for c in wanted if c and c not in columns]
        if not missing:
            return None
        text = f"{self.name}: column(s) {', '.join(missing)} not found in the source file"
        return StepOutcome(_failed(self.import_id, self.name, "importFailed", text))

    def _loader(self) -> tuple[Any, str, str]:
        if "list" in self.spec:
            model_list = self.data.lists[self.spec["list"]]
            return self._list_row(model_list), model_list.name, "hierarchy"
        module = self.data.modules[self.spec["module"]]
        return self._module_row(module), module.name, "module"

    def _list_row(self, model_list: ModelList) -> Any:
        spec = self.spec
        parent_list = self.data.lists.get(model_list.parent_list or model_list.name, model_list)
        parents = parent_list.lookup()
        own = model_list.lookup()

        def load(values: dict[str, str]) -> str | None:
            code = values.get(spec["code"], "") if spec.get("code") else ""
            name = values.get(spec["name"], "") if spec.get("name") else ""
            if not code and not name:
                return "Item code and name are both blank"
            parent_key = ""
            if spec.get("parent") and values.get(spec["parent"]):
                parent_value = values[spec["parent"]]
                found = parents.get(parent_value)
                if found is None:
                    return f"Parent not found in {parent_list.name}: {parent_value}"
                parent_key = found
            properties: dict[str, Any] = {}
            for prop, column in spec.get("properties", {}).items():
                raw = values.get(column, "")
                if raw == "":
                    continue
                if model_list.properties.get(prop) == NUMBER:
                    number = _number(raw)
                    if number is None:
                        return f"Invalid number for {prop}: {raw}"
                    properties[prop] = number
                else:
                    properties[prop] = raw
            existing_key = own.get(code) if code else own.get(name)
            if existing_key is not None:
                item = model_list.items[existing_key]
                item.name = name or item.name
                item.parent = parent_key or item.parent
                item.properties.update(properties)
                self.counts.updated += 1
            else:
                item = ListItem(code, name or code, parent_key, {**model_list.defaults, **properties})
                model_list.items[item.key] = item
                own[item.name] = item.key
                if code:
                    own[code] = item.key
                if parent_list is model_list:
                    parents[item.name] = item.key
                    if code:
                        parents[code] = item.key
                self.counts.created += 1
            return None

        return load

    def _module_row(self, module: Module) -> Any:
        spec = self.spec
        lookups = {dim: self.data.lists[dim].lookup() for dim in module.dimensions}

        def load(values: dict[str, str]) -> str | None:
            coord: list[str] = []
            for dim in module.dimensions:
                column = spec["dimensions"][dim]
                raw = values.get(column, "")
                if raw == "":
                    return f"Missing value for {dim} (column {column})"
                key = lookups[dim].get(raw)
                if key is None:
                    return f"Item not found in {dim}: {raw}"
                coord.append(key)
            cell: dict[str, Any] = {}
            for line_item, column in spec.get("lineItems", {}).items():
                raw = values.get(column, "")
                if raw == "":
                    continue
                if module.line_items.get(line_item) == NUMBER:
                    number = _number(raw)
                    if number is None:
                        return f"Invalid number for {line_item}: {raw}"
                    cell[line_item] = number
                else:
                    cell[line_item] = raw
            module.cells.setdefault(tuple(coord), {}).update(cell)
            self.counts.updated += 1
            return None

        return load


def _text_lines(chunks: Iterable[bytes], encoding: str) -> Iterator[str]:
    """Decode chunks incrementally and yield lines with their endings (what ``csv.reader`` wants)."""
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    first = True
    for chunk in chunks:
        text = pending + decoder.decode(chunk)
        if first:
            text = text.removeprefix("\ufeff")
            first = False
        lines = text.splitlines(keepends=True)
        pending = lines.pop() if lines and not lines[-1].endswith(("\n", "\r")) else ""
        yield from lines
    tail = pending + decoder.decode(b"", final=True)
    if tail:
        yield tail


def _number(raw: str) -> float | None:
    try:
        value = float(raw.replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


# ---------------------------------------------------------------------------------------------------- exports
def _export_rows(data: ModelData, spec: dict[str, Any]) -> Iterator[list[str]]:
    if "list" in spec:
        model_list = data.lists[spec["list"]]
        parent_list = data.lists.get(model_list.parent_list or model_list.name, model_list)
        for item in model_list.items.values():
            row = []
            for column in spec["columns"]:
                if column == "code":
                    row.append(item.code)
                elif column == "name":
                    row.append(item.name)
                elif column == "parent":
                    parent = parent_list.items.get(item.parent)
                    row.append(parent.name if parent else "")
                else:
                    row.append(_render(item.properties.get(column, "")))
            yield row
        return
    if "module" not in spec:
        return
    module = data.modules[spec["module"]]
    dims = [c["dimension"] for c in spec["columns"] if "dimension" in c]
    positions = [module.dimensions.index(d) for d in dims]
    orders = {d: {k: i for i, k in enumerate(data.lists[d].items)} for d in module.dimensions}
    groups: dict[tuple[str, ...], dict[str, Any]] = {}
    for coord in sorted(
        module.cells, key=lambda c: [orders[d].get(k, 0) for d, k in zip(module.dimensions, c, strict=True)]
    ):
        group = groups.setdefault(tuple(coord[p] for p in positions), {})
        for line_item, value in module.cells[coord].items():
            if isinstance(value, float) and isinstance(group.get(line_item, 0.0), float):
                group[line_item] = group.get(line_item, 0.0) + value  # columns leave a dimension out: sum over it
            else:
                group[line_item] = value
    for key, values in groups.items():
        row = []
        dim_values = dict(zip(dims, key, strict=True))
        for column in spec["columns"]:
            if "dimension" in column:
                item = data.lists[column["dimension"]].items.get(dim_values[column["dimension"]])
                row.append(item.name if item else dim_values[column["dimension"]])
            else:
                row.append(_render(values.get(column["lineItem"], "")))
        yield row


def _render(value: Any) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return str(value)


class _ChunkWriter:
    """CSV rows written into fixed-size byte chunks (the last one shorter)."""

    def __init__(self, chunk_bytes: int) -> None:
        self.size = max(1, chunk_bytes)
        self.buffer = bytearray()
        self.chunks: list[bytes] = []
        self.text = io.StringIO()
        self.writer = csv.writer(self.text, lineterminator="\n")

    def write_row(self, row: list[str]) -> None:
        self.writer.writerow(row)
        self.buffer += self.text.getvalue().encode("utf-8")
        self.text.seek(0)
        self.text.truncate()
        while len(self.buffer) >= self.size:
            self.chunks.append(bytes(self.buffer[: self.size]))
            del self.buffer[: self.size]

    def close(self) -> list[bytes]:
        if self.buffer:
            self.chunks.append(bytes(self.buffer))
            self.buffer.clear()
        return self.chunks


# ---------------------------------------------------------------------------------------------------- results
def _detail(kind: str, text: str, values: list[str]) -> dict[str, Any]:
    return {"type": kind, "localMessageText": text, "occurrences": 0, "values": values}


def _result(object_id: str, name: str, successful: bool, dump: bool, details: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "objectId": object_id,
        "objectName": name,
        "successful": successful,
        "failureDumpAvailable": dump,
        "details": details,
    }


def _failed(object_id: str, name: str, kind: str, text: str) -> dict[str, Any]:
    return _result(object_id, name, False, False, [_detail(kind, text, [])])


def _rows_detail(kind: str, target: str, counts: _Counts) -> dict[str, Any]:
    """Row counts as Anaplan reports them: ``values`` alternate key and value, all strings."""
    success, created, updated = counts.success, counts.created, counts.updated
    total = success + counts.failed + counts.ignored
    if counts.failed:
        detail_type = f"{kind}RowsProcessedWithFailures"
        text = (
            f"{target}: {success} ({created}/{updated}) rows successful, 0 (0/0) rows has warnings, "
            f"{counts.failed} failed, {counts.ignored} ignored"
        )
    else:
        detail_type = f"{kind}RowsProcessed"
        text = f"{target}: {success} ({created}/{updated}) rows successful, {counts.ignored} ignored"
    pairs = {
        f"{kind}Name": target,
        "successRowCount": success,
        "successCreateCount": created,
        "successUpdateCount": updated,
        "warningsRowCount": 0,
        "warningsCreateCount": 0,
        "warningsUpdateCount": 0,
        "failedCount": counts.failed,
        "ignoredCount": counts.ignored,
        "totalRowCount": total,
        "totalCreateCount": created,
        "totalUpdateCount": updated,
        "invalidCount": counts.failed,
        "updatedCount": updated,
        "renamedCount": 0,
        "createdCount": created,
    }
    values = [str(x) for pair in pairs.items() for x in pair]
    return _detail(detail_type, text, values)


def _current_step(task: Task) -> str:
    if task.state == COMPLETE:
        return "Complete." if task.result and task.result.get("successful") else "Failed."
    return {
        NOT_STARTED: "Waiting for the model ...",
        IN_PROGRESS: "Processing ...",
        CANCELLING: "Cancelling ...",
        CANCELLED: "Cancelled.",
    }[task.state]


def _solution_log(name: str, action_id: str, data: ModelData) -> str:
    variables = sum(len(m.cells) * max(1, len(m.line_items)) for m in data.modules.values())
    return (
        f"Optimizer solution log for {name} ({action_id})\n"
        f"Variables: {variables}\n"
        "Constraints: 0\n"
        "Status: OPTIMAL\n"
        "Objective value: 0\n"
    )


# ---------------------------------------------------------------------------------------------------- seeding
def default_seed_data() -> dict[str, Any]:
    """The bundled model data (``seed_data.json``), keyed by model id."""
    return json.loads(resources.files(__package__).joinpath("seed_data.json").read_text("utf-8"))


def load_model_data(state: EmulatorState, data: dict[str, Any]) -> None:
    """Load model data, import/export/action rules, extra model objects and initial file content into a tenant.

    ``data`` maps model ids to entries; models the tenant does not have are skipped. Extra ``files``, ``imports``,
    ``exports``, ``processes`` and ``actions`` use the same shape as in ``seed.json`` and are added to the model.
    """
    engine = engine_for(state)
    for model_id, entry in data.items():
        model = state.models.get(model_id)
        if model is None or model_id.startswith("_"):
            continue
        _add_model_objects(model, entry)
        engine.data[model_id] = model_data_from_seed(entry)
        for import_id, spec in entry.get("importRules", {}).items():
            engine.import_specs[(model_id, import_id)] = spec
        for export_id, spec in entry.get("exportRules", {}).items():
            engine.export_specs[(model_id, export_id)] = spec
        for action_id, spec in entry.get("actionRules", {}).items():
            engine.action_specs[(model_id, action_id)] = spec
        for file_id, content in entry.get("fileContents", {}).items():
            file_wire = model.files.get(file_id)
            if file_wire is None:
                continue
            text = "".join(content) if isinstance(content, list) else content
            engine.store.replace(model_id, file_id, [text.encode(file_wire.get("encoding", "UTF-8"))])
            file_wire["chunkCount"] = 1


def _add_model_objects(model: Model, entry: dict[str, Any]) -> None:
    for f in entry.get("files", []):
        model.files[f["id"]] = {**_FILE_DEFAULTS, **{k: v for k, v in f.items() if not k.startswith("_")}}
    for imp in entry.get("imports", []):
        model.imports[imp["id"]] = {k: imp[k] for k in ("id", "name", "importDataSourceId", "importType") if k in imp}
        model.import_metadata[imp["id"]] = _import_metadata(imp, model)
    for exp in entry.get("exports", []):
        keys = ("id", "name", "exportType", "exportFormat", "encoding", "layout")
        model.exports[exp["id"]] = {k: exp[k] for k in keys if k in exp}
        model.export_metadata[exp["id"]] = _export_metadata(exp)
        model.files.setdefault(
            exp["id"], {"id": exp["id"], "name": exp["name"], "chunkCount": 0, "firstDataRow": 0, "headerRow": 0}
        )
    for proc in entry.get("processes", []):
        model.processes[proc["id"]] = {"id": proc["id"], "name": proc["name"]}
        model.process_actions[proc["id"]] = list(proc.get("actions", []))
    for act in entry.get("actions", []):
        model.actions[act["id"]] = {k: act[k] for k in ("id", "name", "actionType") if k in act}


_ENGINES: weakref.WeakKeyDictionary[EmulatorState, Engine] = weakref.WeakKeyDictionary()


def engine_for(state: EmulatorState, *, seed_data: dict[str, Any] | None = None) -> Engine:
    """The task engine of a tenant, created on first use with the bundled model data (or ``seed_data``)."""
    engine = _ENGINES.get(state)
    if engine is None:
        engine = Engine(state)
        _ENGINES[state] = engine
        load_model_data(state, default_seed_data() if seed_data is None else seed_data)
    return engine
