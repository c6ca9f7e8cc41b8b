"""Running actions: start a task, wait for it, cancel it, reattach to it, fetch its failure dumps and solution logs.

* **Which action.** An id says its kind by its prefix (112 import, 116 export, 118 process, 117 action); a name is
  looked up among the kinds the call accepts. An id of a kind the call does not take fails before any network call.
* **No double runs.** ``POST …/tasks`` is never retried blindly: when its answer is lost or is a 5xx, the action may or
  may not have started, so the action's task list is read again and the one task that appeared since just before
  the POST is adopted. Only when none appeared is the POST sent again. ``reattach=True`` adopts a task of the same
  action that is already running instead of starting another (for a retried Airflow task).
* **One verdict.** :func:`~airflow_provider_anaplan.client.task_models.evaluate_task` decides what a task came to;
  waits raise :class:`TaskFailedError` (naming the step, and the dump to fetch) or :class:`TaskCancelledError`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

from ._transport import RetryClass
from .errors import (
    AnaplanError,
    AnaplanTimeoutError,
    ConflictError,
    InvalidInputError,
    NameNotFoundError,
    NotFoundError,
    ServerError,
    TransportError,
)
from .files import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_CONCURRENCY,
    Destination,
    FilesAPI,
    UploadSource,
    write_chunks,
)
from .ids import PREFIX_KINDS, ObjectKind, check_id, check_task_id, is_object_id
from .task_models import OutcomeStatus, TaskInfo, TaskOutcome, TaskState, evaluate_task
from .workspace import close_matches, member, parse

log = logging.getLogger("airflow_provider_anaplan.client")

#: Anaplan's own advice is to poll a task no more often than every 5 seconds.
DEFAULT_POLL_INTERVAL = 5.0
#: How long a wait lasts by default before it gives up (and cancels the task).
DEFAULT_TASK_TIMEOUT = 24 * 3600.0
DEFAULT_LOCALE = "en_US"
#: How many times a task is started when Anaplan confirms that an earlier try started nothing.
START_ATTEMPTS = 2

_SEGMENTS = {
    ObjectKind.IMPORT: "imports",
    ObjectKind.EXPORT: "exports",
    ObjectKind.PROCESS: "processes",
    ObjectKind.ACTION: "actions",
}
_RUNNABLE = tuple(_SEGMENTS)
_KIND_WORDS = {
    **{kind.value: kind for kind in _SEGMENTS},
    **{segment: kind for kind, segment in _SEGMENTS.items()},
}


@dataclass(frozen=True)
class ActionRef:
    """An action resolved to ids: where its tasks live."""

    model_id: str
    workspace_id: str | None
    model_path: str
    kind: ObjectKind
    action_id: str
    name: str | None = None

    @property
    def path(self) -> str:
        """``…/models/{m}/{imports|exports|processes|actions}/{id}``."""
        return f"{self.model_path}/{_SEGMENTS[self.kind]}/{self.action_id}"

    def describe(self) -> str:
        return f"{self.kind.value} {self.action_id}" + (f" ({self.name})" if self.name else "")


def _kind(value: ObjectKind | str | None) -> ObjectKind | None:
    if value is None:
        return None
    kind = _KIND_WORDS.get(str(value).strip().lower())
    if kind is None:
        raise InvalidInputError(f"kind must be one of import, export, process or action, got {value!r}.")
    return kind


def mapping_parameters_body(value: Any) -> list[dict[str, str]]:
    """``mappingParameters`` from ``{"Version": "Actual"}``, pairs, or ``[{"entityType", "entityName"}]``.

    Raises ``InvalidInputError`` for anything else; the operators call it to check a rendered value before a run."""
    if value is None:
        return []
    items: Iterable[Any] = value.items() if isinstance(value, Mapping) else value
    if isinstance(value, str | bytes) or not isinstance(items, Iterable):
        raise InvalidInputError(f"mapping_parameters must be a mapping or a list, got {type(value).__name__}.")
    out: list[dict[str, str]] = []
    for item in items:
        if isinstance(item, Mapping):
            entity_type = item.get("entityType", item.get("entity_type"))
            entity_name = item.get("entityName", item.get("entity_name"))
        elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2:
            entity_type, entity_name = item
        else:
            entity_type = entity_name = None
        if not isinstance(entity_type, str) or not isinstance(entity_name, str) or not entity_type or not entity_name:
            raise InvalidInputError(
                "Each mapping parameter needs an entity type and an entity name, e.g. {'Version': 'Actual'} or "
                f"[{{'entityType': 'Version', 'entityName': 'Actual'}}]; got {item!r}."
            )
        out.append({"entityType": entity_type, "entityName": entity_name})
    return out


def _check_wait(poll_interval: float, timeout: float | None) -> None:
    if not isinstance(poll_interval, int | float) or isinstance(poll_interval, bool) or poll_interval <= 0:
        raise InvalidInputError(f"poll_interval must be a number of seconds > 0, got {poll_interval!r}.")
    if timeout is not None and (not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout < 0):
        raise InvalidInputError(f"timeout must be a number of seconds >= 0 or None, got {timeout!r}.")


def _wrong_kind(value: str, allowed: Sequence[ObjectKind], call: str) -> InvalidInputError:
    actual = PREFIX_KINDS.get(value[:3])
    if actual is None:
        what = "not the id of anything that can be run"
    else:
        what = f"{'an' if actual.value[0] in 'aeio' else 'a'} {actual.value} id"
    kinds = [f"{k.value} ({_PREFIXES[k]}…)" for k in allowed]
    accepted = kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " or " + kinds[-1]
    return InvalidInputError(f"{value!r} is {what}: {call} takes the id of an {accepted}.")


_PREFIXES = {ObjectKind.IMPORT: "112", ObjectKind.EXPORT: "116", ObjectKind.ACTION: "117", ObjectKind.PROCESS: "118"}


class TasksAPI(FilesAPI):
    """Run imports, exports, processes and other actions, and follow their tasks to a verdict."""

    # ------------------------------------------------------------------------------------------ resolving
    async def resolve_action(
        self,
        model: str,
        action: str,
        *,
        workspace_id: str | None = None,
        kind: ObjectKind | str | None = None,
        allowed: Sequence[ObjectKind] = _RUNNABLE,
        call: str = "run_action",
    ) -> ActionRef:
        """The action named by ``action`` (an id, or a name looked up among the ``allowed`` kinds) in a model."""
        wanted = _kind(kind)
        if wanted is not None:
            if wanted not in allowed:
                raise InvalidInputError(f"{call} does not take {wanted.value}s.")
            allowed = (wanted,)
        if not isinstance(action, str) or not action.strip():
            raise InvalidInputError(f"An action name or id must be a non-empty string, got {action!r}.")
        if is_object_id(action):
            if len(allowed) == 1:
                check_id(action, allowed[0])  # names both kinds when they differ
            elif PREFIX_KINDS.get(action[:3]) not in allowed:
                raise _wrong_kind(action, allowed, call)
            model_id, workspace, model_path = await self._locate(model, workspace_id)
            found_kind = PREFIX_KINDS[action[:3]]
            return ActionRef(model_id, workspace, model_path, found_kind, action)

        model_id, workspace, model_path = await self._locate(model, workspace_id)
        listers = {
            ObjectKind.IMPORT: self.list_imports,
            ObjectKind.EXPORT: self.list_exports,
            ObjectKind.PROCESS: self.list_processes,
            ObjectKind.ACTION: self.list_actions,
        }
        lists = await asyncio.gather(*(listers[k](model_id, workspace) for k in allowed))
        matches = [(k, item) for k, items in zip(allowed, lists, strict=True) for item in items if item.name == action]
        where = f"model {model_id}" + (f" of workspace {workspace}" if workspace else "")
        if len(matches) == 1:
            found_kind, item = matches[0]
            return ActionRef(model_id, workspace, model_path, found_kind, item.id, item.name)
        if matches:
            ids = ", ".join(f"{k.value} {item.id}" for k, item in matches)
            raise InvalidInputError(f"{len(matches)} objects are named {action!r} in {where} ({ids}). Give the id.")
        names = [item.name for items in lists for item in items]
        word = allowed[0].value if len(allowed) == 1 else "action"
        raise NameNotFoundError(word, action, where, names, close_matches(action, names))

    # ------------------------------------------------------------------------------------------ running
    async def run_action(
        self,
        model: str,
        action: str,
        *,
        workspace_id: str | None = None,
        kind: ObjectKind | str | None = None,
        wait: bool = True,
        mapping_parameters: Any = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float | None = DEFAULT_TASK_TIMEOUT,  # noqa: ASYNC109 - a deadline on the Anaplan task, in settings.clock time
        locale: str = DEFAULT_LOCALE,
        reattach: bool = False,
        fail_on_rejected_rows: bool = False,
        cancel_on_timeout: bool = True,
    ) -> TaskOutcome:
        """Run an import, export, process or other action; with ``wait``, follow it to its verdict.

        ``action`` is an id (its prefix gives the kind) or a name; ``kind`` narrows a name's lookup and makes an id
        of another kind an error. ``mapping_parameters`` (imports and processes): ``{"Version": "Actual"}``.
        ``reattach``: adopt a task of this action that is still running instead of starting another.

        With ``wait`` the outcome is a success or a partial success (rows rejected or ignored; raised too with
        ``fail_on_rejected_rows``); a failure raises :class:`TaskFailedError`, a cancelled task
        :class:`TaskCancelledError`, and no verdict within ``timeout`` seconds :class:`AnaplanTimeoutError` (after
        cancelling the task, with ``cancel_on_timeout``). Without ``wait`` the outcome is RUNNING, with the task id.
        """
        mapping = mapping_parameters_body(mapping_parameters)
        _check_wait(poll_interval, timeout)
        ref = await self.resolve_action(model, action, workspace_id=workspace_id, kind=kind)
        return await self._run(
            ref,
            mapping=mapping,
            wait=wait,
            poll_interval=poll_interval,
            timeout=timeout,
            locale=locale,
            reattach=reattach,
            fail_on_rejected_rows=fail_on_rejected_rows,
            cancel_on_timeout=cancel_on_timeout,
        )

    async def _run(
        self,
        ref: ActionRef,
        *,
        mapping: list[dict[str, str]],
        wait: bool,
        poll_interval: float,
        timeout: float | None,  # noqa: ASYNC109 - a deadline on the Anaplan task, in settings.clock time
        locale: str,
        reattach: bool,
        fail_on_rejected_rows: bool,
        cancel_on_timeout: bool,
    ) -> TaskOutcome:
        if mapping and ref.kind not in (ObjectKind.IMPORT, ObjectKind.PROCESS):
            raise InvalidInputError(f"Mapping parameters apply to imports and processes, not to {ref.describe()}.")
        info = await self._running_task(ref) if reattach else None
        if info is not None:
            log.info("Reattaching to task %s of %s (%s)", info.task_id, ref.describe(), info.task_state)
        else:
            info = await self._start(ref, mapping, locale)
            log.info("Started task %s of %s", info.task_id, ref.describe())
        if not wait:
            return evaluate_task(info, action_id=ref.action_id, action_name=ref.name)
        return await self._wait(ref, info.task_id, poll_interval, timeout, cancel_on_timeout, fail_on_rejected_rows)

    async def _start(self, ref: ActionRef, mapping: list[dict[str, str]], locale: str) -> TaskInfo:
        """POST …/tasks once; after an answer that leaves it unknown whether a task started, reconcile."""
        if not isinstance(locale, str) or not locale:
            raise InvalidInputError(f"locale must be a locale name such as 'en_US', got {locale!r}.")
        body: dict[str, Any] = {"localeName": locale}
        if mapping:
            body["mappingParameters"] = mapping
        known = {task.task_id for task in await self._list_task_infos(ref)}
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                response = await self._transport.request(
                    "POST", f"{ref.path}/tasks", json=body, retry=RetryClass.ACTION
                )
            except (ServerError, TransportError) as exc:
                try:
                    appeared = [t for t in await self._list_task_infos(ref) if t.task_id not in known]
                except AnaplanError:
                    raise exc from None
                if len(appeared) == 1:
                    log.warning(
                        "Starting %s failed (%s), but task %s of it appeared meanwhile; adopting it",
                        ref.describe(),
                        exc,
                        appeared[0].task_id,
                    )
                    return appeared[0]
                if appeared:
                    ids = ", ".join(t.task_id for t in appeared)
                    raise ConflictError(
                        f"Starting {ref.describe()} failed ({exc}), and {len(appeared)} tasks of it appeared meanwhile "
                        f"({ids}), so the client cannot tell which is its own. Check them in Anaplan before running "
                        "it again."
                    ) from None
                if attempt == START_ATTEMPTS:
                    raise type(exc)(
                        f"{exc}. No task of {ref.describe()} appeared after {attempt} tries: nothing was started, so "
                        "running it again is safe.",
                        status=exc.status,
                        anaplan_message=exc.anaplan_message,
                        method=exc.method,
                        path=exc.path,
                    ) from None
                log.warning(
                    "Starting %s failed (%s) and no task of it appeared; starting it again", ref.describe(), exc
                )
                await self._transport.settings.sleep(min(5.0, self._transport.settings.backoff_base))
                continue
            data = self._transport.json_of(response)
            raw = data.get("task") if isinstance(data.get("task"), dict) else data
            info = parse(TaskInfo, raw, "a started task")
            if not info.task_id:
                raise AnaplanError(f"Anaplan started {ref.describe()} but answered an empty task id.")
            if info.task_state is None:
                info = info.model_copy(update={"task_state": TaskState.NOT_STARTED})
            return info
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------------------------------ task status
    async def _list_task_infos(self, ref: ActionRef) -> list[TaskInfo]:
        return [
            parse(TaskInfo, item, "an item of tasks")
            async for item in self._transport.paginate(f"{ref.path}/tasks", "tasks")
        ]

    async def _get_task_info(self, ref: ActionRef, task_id: str) -> TaskInfo:
        data = await self._transport.get_json(f"{ref.path}/tasks/{task_id}")
        return parse(TaskInfo, member(data, "task", "a task status"), "a task status")

    async def list_tasks(
        self,
        model: str,
        action: str,
        *,
        workspace_id: str | None = None,
        kind: ObjectKind | str | None = None,
    ) -> list[TaskInfo]:
        """The tasks of an action, oldest first (id, state and creation time of each)."""
        ref = await self.resolve_action(model, action, workspace_id=workspace_id, kind=kind, call="list_tasks")
        return await self._list_task_infos(ref)

    async def get_task(
        self,
        model: str,
        action: str,
        task_id: str,
        *,
        workspace_id: str | None = None,
        kind: ObjectKind | str | None = None,
    ) -> TaskInfo:
        """The status of one task of an action (state, progress, current step, and the result once finished)."""
        check_task_id(task_id)
        ref = await self.resolve_action(model, action, workspace_id=workspace_id, kind=kind, call="get_task")
        return await self._get_task_info(ref, task_id)

    async def get_task_outcome(
        self,
        model: str,
        action: str,
        task_id: str,
        *,
        workspace_id: str | None = None,
        kind: ObjectKind | str | None = None,
    ) -> TaskOutcome:
        """The verdict on one task now (RUNNING while it runs); raises nothing for a failed or cancelled task."""
        check_task_id(task_id)
        ref = await self.resolve_action(model, action, workspace_id=workspace_id, kind=kind, call="get_task_outcome")
        return evaluate_task(await self._get_task_info(ref, task_id), action_id=ref.action_id, action_name=ref.name)

    async def find_running_task(
        self,
        model: str,
        action: str,
        *,
        workspace_id: str | None = None,
        kind: ObjectKind | str | None = None,
    ) -> TaskInfo | None:
        """The newest task of this action that has not finished (NOT_STARTED or IN_PROGRESS), or None.

        A retried Airflow task calls this (or ``run_action(reattach=True)``) to follow the run its previous try
        started instead of starting a second one. The task may have been started by anyone with access.
        """
        ref = await self.resolve_action(model, action, workspace_id=workspace_id, kind=kind, call="find_running_task")
        return await self._running_task(ref)

    async def _running_task(self, ref: ActionRef) -> TaskInfo | None:
        active = [t for t in await self._list_task_infos(ref) if t.is_active]
        if not active:
            return None
        return max(enumerate(active), key=lambda pair: (pair[1].creation_time or 0, pair[0]))[1]

    async def wait_for_task(
        self,
        model: str,
        action: str,
        task_id: str,
        *,
        workspace_id: str | None = None,
        kind: ObjectKind | str | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float | None = DEFAULT_TASK_TIMEOUT,  # noqa: ASYNC109 - a deadline on the Anaplan task, in settings.clock time
        fail_on_rejected_rows: bool = False,
        cancel_on_timeout: bool = True,
    ) -> TaskOutcome:
        """Poll a task every ``poll_interval`` seconds until it finishes; the verdict, or the errors of run_action."""
        check_task_id(task_id)
        _check_wait(poll_interval, timeout)
        ref = await self.resolve_action(model, action, workspace_id=workspace_id, kind=kind, call="wait_for_task")
        return await self._wait(ref, task_id, poll_interval, timeout, cancel_on_timeout, fail_on_rejected_rows)

    async def _wait(
        self,
        ref: ActionRef,
        task_id: str,
        poll_interval: float,
        timeout: float | None,  # noqa: ASYNC109 - a deadline on the Anaplan task, in settings.clock time
        cancel_on_timeout: bool,
        fail_on_rejected_rows: bool,
    ) -> TaskOutcome:
        settings = self._transport.settings
        deadline = None if timeout is None else settings.clock() + timeout
        while True:
            outcome = evaluate_task(
                await self._get_task_info(ref, task_id), action_id=ref.action_id, action_name=ref.name
            )
            if outcome.done:
                return outcome.raise_for_status(fail_on_rejected_rows=fail_on_rejected_rows)
            now = settings.clock()
            if deadline is not None and now >= deadline:
                note = ""
                if cancel_on_timeout:
                    try:
                        await self._transport.request("DELETE", f"{ref.path}/tasks/{task_id}")
                        note = " It was asked to cancel, which rolls its changes back."
                    except AnaplanError as exc:
                        note = f" Cancelling it failed too ({exc}); cancel it in Anaplan."
                raise AnaplanTimeoutError(
                    f"Task {task_id} of {ref.describe()} did not finish within {timeout:g} s "
                    f"(last state {outcome.task.task_state}).{note}"
                )
            delay = poll_interval if deadline is None else max(0.0, min(poll_interval, deadline - now))
            await settings.sleep(delay)

    async def cancel_task(
        self,
        model: str,
        action: str,
        task_id: str,
        *,
        workspace_id: str | None = None,
        kind: ObjectKind | str | None = None,
        wait: bool = True,
        poll_interval: float = 1.0,
        timeout: float | None = 600.0,  # noqa: ASYNC109 - a deadline on the Anaplan task, in settings.clock time
    ) -> TaskOutcome:
        """Cancel a task (``DELETE`` on it; Anaplan rolls its changes back) and wait until it is CANCELLED.

        Returns the verdict: CANCELLED, or what the task came to if it finished before the cancel reached it (or
        RUNNING without ``wait``). Nothing is raised for the cancellation itself.
        """
        check_task_id(task_id)
        _check_wait(poll_interval, timeout)
        ref = await self.resolve_action(model, action, workspace_id=workspace_id, kind=kind, call="cancel_task")
        response = await self._transport.request("DELETE", f"{ref.path}/tasks/{task_id}")
        data = self._transport.json_of(response)
        info = (
            parse(TaskInfo, data["task"], "a task status")
            if isinstance(data.get("task"), dict) and data["task"].get("taskId")
            else await self._get_task_info(ref, task_id)
        )
        log.info("Cancelling task %s of %s (%s)", task_id, ref.describe(), info.task_state)
        settings = self._transport.settings
        deadline = None if timeout is None else settings.clock() + timeout
        while wait and not info.is_terminal:
            now = settings.clock()
            if deadline is not None and now >= deadline:
                raise AnaplanTimeoutError(
                    f"Task {task_id} of {ref.describe()} was asked to cancel but is still {info.task_state} after "
                    f"{timeout:g} s."
                )
            await settings.sleep(poll_interval if deadline is None else max(0.0, min(poll_interval, deadline - now)))
            info = await self._get_task_info(ref, task_id)
        return evaluate_task(info, action_id=ref.action_id, action_name=ref.name)

    # ------------------------------------------------------------------------------------------ pipelines
    async def upload_and_import(
        self,
        model: str,
        import_: str,
        source: UploadSource,
        *,
        workspace_id: str | None = None,
        file: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        compress: bool | int = True,
        concurrency: int = DEFAULT_CONCURRENCY,
        wait: bool = True,
        mapping_parameters: Any = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float | None = DEFAULT_TASK_TIMEOUT,  # noqa: ASYNC109 - a deadline on the Anaplan task, in settings.clock time
        locale: str = DEFAULT_LOCALE,
        fail_on_rejected_rows: bool = False,
        cancel_on_timeout: bool = True,
    ) -> TaskOutcome:
        """Upload ``source`` into the file an import reads (or ``file``), then run the import.

        The verdict and errors are those of :meth:`run_action`; fetch rejected rows with :meth:`get_failure_dump`.
        """
        mapping = mapping_parameters_body(mapping_parameters)
        _check_wait(poll_interval, timeout)
        ref = await self.resolve_action(
            model, import_, workspace_id=workspace_id, allowed=(ObjectKind.IMPORT,), call="upload_and_import"
        )
        if file is None:
            listed = await self.find_import(ref.model_id, ref.action_id, ref.workspace_id)
            file = listed.import_data_source_id or (
                listed.import_data_source.import_data_source_id if listed.import_data_source else None
            )
            if not file:
                raise InvalidInputError(
                    f"{ref.describe()} does not read a file (it imports from another model): run it with run_action."
                )
        await self.upload_file(
            ref.model_id,
            file,
            source,
            workspace_id=ref.workspace_id,
            chunk_size=chunk_size,
            compress=compress,
            concurrency=concurrency,
        )
        return await self._run(
            ref,
            mapping=mapping,
            wait=wait,
            poll_interval=poll_interval,
            timeout=timeout,
            locale=locale,
            reattach=False,
            fail_on_rejected_rows=fail_on_rejected_rows,
            cancel_on_timeout=cancel_on_timeout,
        )

    async def export_and_download(
        self,
        model: str,
        export: str,
        destination: Destination,
        *,
        workspace_id: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float | None = DEFAULT_TASK_TIMEOUT,  # noqa: ASYNC109 - a deadline on the Anaplan task, in settings.clock time
        locale: str = DEFAULT_LOCALE,
        reattach: bool = False,
        cancel_on_timeout: bool = True,
    ) -> TaskOutcome:
        """Run an export, wait for it, and download its output file (the export's own id) to ``destination``."""
        _check_wait(poll_interval, timeout)
        ref = await self.resolve_action(
            model, export, workspace_id=workspace_id, allowed=(ObjectKind.EXPORT,), call="export_and_download"
        )
        outcome = await self._run(
            ref,
            mapping=[],
            wait=True,
            poll_interval=poll_interval,
            timeout=timeout,
            locale=locale,
            reattach=reattach,
            fail_on_rejected_rows=False,
            cancel_on_timeout=cancel_on_timeout,
        )
        await self.download_file(
            ref.model_id, ref.action_id, destination, workspace_id=ref.workspace_id, concurrency=concurrency
        )
        return outcome

    # ------------------------------------------------------------------------------------------ dumps and logs
    async def stream_failure_dump(
        self,
        model: str,
        action: str,
        task_id: str,
        *,
        object_id: str | None = None,
        workspace_id: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> AsyncIterator[bytes]:
        """Yield the failure dump (CSV: ``_Status_``, the source columns, ``_Line_``, ``_Error_1_``) chunk by chunk.

        ``action`` is an import or a process. For a process, ``object_id`` names the step (the import inside it);
        without it, the first step that left a dump is taken. A dump that is gone raises :class:`NotFoundError`.
        """
        check_task_id(task_id)
        ref = await self.resolve_action(
            model,
            action,
            workspace_id=workspace_id,
            allowed=(ObjectKind.IMPORT, ObjectKind.PROCESS),
            call="get_failure_dump",
        )
        if ref.kind is ObjectKind.IMPORT:
            if object_id not in (None, ref.action_id):
                raise InvalidInputError(
                    f"object_id names a step of a process; an import's dump is its own (got {object_id!r})."
                )
            base = f"{ref.path}/tasks/{task_id}/dump"
            what = f"task {task_id} of {ref.describe()}"
        else:
            if object_id is None:
                outcome = evaluate_task(await self._get_task_info(ref, task_id), action_id=ref.action_id)
                if not outcome.done:
                    raise InvalidInputError(f"Task {task_id} of {ref.describe()} has not finished: it has no dump yet.")
                steps = outcome.dump_steps
                if not steps or not steps[0].object_id:
                    raise NotFoundError(f"No step of task {task_id} of {ref.describe()} left a failure dump.")
                object_id = steps[0].object_id
            elif not is_object_id(object_id):
                raise InvalidInputError(f"object_id must be the 12-digit id of a process step, got {object_id!r}.")
            base = f"{ref.path}/tasks/{task_id}/dumps/{object_id}"
            what = f"step {object_id} of task {task_id} of {ref.describe()}"

        def gone(exc: NotFoundError) -> NotFoundError:
            return NotFoundError(
                f"The failure dump of {what} is not available (HTTP 404): Anaplan keeps a dump only until 48 h after "
                "it was last read or until the same action next completes cleanly, and a run that rejected no rows "
                "has none. Run the action again to get a fresh dump.",
                status=exc.status,
                anaplan_message=exc.anaplan_message,
                method=exc.method,
                path=exc.path,
            )

        try:
            ids = [
                str(member(item, "id", "a chunk"))
                async for item in self._transport.paginate(f"{base}/chunks", "chunks")
            ]
        except NotFoundError as exc:
            raise gone(exc) from None
        async for data in self._fetch_in_order([f"{base}/chunks/{i}" for i in ids], concurrency, gone):
            yield data

    @overload
    async def get_failure_dump(
        self,
        model: str,
        action: str,
        task_id: str,
        destination: Destination,
        *,
        object_id: str | None = None,
        workspace_id: str | None = None,
    ) -> int: ...

    @overload
    async def get_failure_dump(
        self,
        model: str,
        action: str,
        task_id: str,
        destination: None = None,
        *,
        object_id: str | None = None,
        workspace_id: str | None = None,
    ) -> AsyncIterator[bytes]: ...

    async def get_failure_dump(
        self,
        model: str,
        action: str,
        task_id: str,
        destination: Destination | None = None,
        *,
        object_id: str | None = None,
        workspace_id: str | None = None,
    ) -> int | AsyncIterator[bytes]:
        """Write a task's failure dump to ``destination`` (path or binary file) and return the bytes written.

        Without a destination, returns an async iterator of its chunks. See :meth:`stream_failure_dump`.
        """
        chunks = self.stream_failure_dump(model, action, task_id, object_id=object_id, workspace_id=workspace_id)
        if destination is None:
            return chunks
        return await write_chunks(chunks, destination)

    async def get_solution_log(self, model: str, action: str, task_id: str, *, workspace_id: str | None = None) -> str:
        """The solution log of an optimizer action's run; ``task_id`` may be the task of a process containing it.

        Needs the Workspace Administrator role (others get 403).
        """
        check_task_id(task_id)
        ref = await self.resolve_action(
            model, action, workspace_id=workspace_id, allowed=(ObjectKind.ACTION,), call="get_solution_log"
        )
        path = f"{ref.model_path}/optimizeActions/{ref.action_id}/tasks/{task_id}/solutionLogs"
        try:
            response = await self._transport.request("GET", path, headers={"Accept": "text/plain"})
        except NotFoundError as exc:
            raise NotFoundError(
                f"No solution log for task {task_id} of {ref.describe()} (HTTP 404): the action must be an optimizer "
                "action, and the task one of its finished runs (or of a process that contains it).",
                status=exc.status,
                anaplan_message=exc.anaplan_message,
                method=exc.method,
                path=exc.path,
            ) from None
        return response.text


__all__ = [
    "DEFAULT_LOCALE",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_TASK_TIMEOUT",
    "ActionRef",
    "OutcomeStatus",
    "TasksAPI",
    "mapping_parameters_body",
]
