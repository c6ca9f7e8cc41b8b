"""The ALM layer: model online status, revisions, syncable revisions, sync tasks, comparison and summary reports, and
``promote``, which does what a careful person does by hand to move a change from one model to the next.

Every call needs the Workspace Administrator role on the models involved (403; the report calls answer 424), and
changes to an archived model are refused (422): both surface as the errors of :mod:`.errors`. Calls that start work
(creating a revision, a sync or a report task) are never retried blindly (``RetryClass.ACTION``).

Waiting: the ``wait=True`` form of a task call polls every ``poll_interval`` seconds (Anaplan advises 5) until the task
is COMPLETE or CANCELLED, and raises :class:`TaskFailedError` when it did not succeed (:class:`TaskCancelledError`
when it was cancelled) or :class:`AnaplanTimeoutError` after ``timeout`` seconds (the task goes on in Anaplan).
Polls sleep with the settings' ``sleep`` and measure time with its ``clock``.
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from ._transport import RetryClass
from .alm_models import AlmTask, AlmTaskState, AppliedToModel, NewRevision, PromotionResult, Revision, SummaryReport
from .errors import (
    AnaplanError,
    AnaplanTimeoutError,
    InvalidInputError,
    ModelStateError,
    NameNotFoundError,
    TaskCancelledError,
    TaskFailedError,
)
from .ids import check_model_id, is_hex_id
from .workspace import close_matches, member, parse, sort_param

if TYPE_CHECKING:
    from ._transport import Transport
    from .models import Model

log = logging.getLogger("airflow_provider_anaplan.client")

#: Seconds between two polls of an ALM task (Anaplan's own advice for task polling).
DEFAULT_POLL_INTERVAL = 5.0
#: Seconds a ``wait=True`` call waits for an ALM task before giving up (the task itself goes on).
DEFAULT_ALM_TIMEOUT = 3600.0
MAX_REVISION_NAME = 60
MAX_REVISION_DESCRIPTION = 250

SYNC, COMPARISON, SUMMARY = "sync", "comparison", "summary"
_COLLECTION = {SYNC: "syncTasks", COMPARISON: "comparisonReportTasks", SUMMARY: "summaryReportTasks"}
_WHAT = {SYNC: "sync", COMPARISON: "comparison report", SUMMARY: "summary report"}
_GETTER = {SYNC: "get_sync_task", COMPARISON: "get_comparison_report_task", SUMMARY: "get_summary_report_task"}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_OFFLINE_STATES = frozenset({"MAINTENANCE", "PRODUCTION_MAINTENANCE"})


class PromotionError(TaskFailedError):
    """The sync of :meth:`ALMAPI.promote` failed or was cancelled; ``result`` holds all that was done before it
    (the revision, the target's revision, both reports and the failed sync task), for the audit trail."""

    result: PromotionResult | None = None
    cancelled: bool = False

    def __init__(self, message: str, *, result: PromotionResult, cancelled: bool = False) -> None:
        super().__init__(message)
        self.result = result
        self.cancelled = cancelled


def _revision_id(value: object, what: str = "revision id") -> str:
    if not is_hex_id(value):
        raise InvalidInputError(f"A {what} is 32 hexadecimal characters, got {value!r}.")
    assert isinstance(value, str)
    return value


def _date_param(value: date | str | None, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and _DATE.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    raise InvalidInputError(f"{name} must be a date or a 'YYYY-MM-DD' string, got {value!r}.")


def _check_poll(poll_interval: float, timeout: float | None) -> None:
    if not isinstance(poll_interval, int | float) or poll_interval < 0:
        raise InvalidInputError(f"poll_interval must be a number of seconds >= 0, got {poll_interval!r}.")
    if timeout is not None and (not isinstance(timeout, int | float) or timeout < 0):
        raise InvalidInputError(f"timeout must be a number of seconds >= 0 or None, got {timeout!r}.")


def _failure(task: AlmTask, kind: str, model_id: str) -> TaskFailedError | None:
    """The error for a terminal task that did not succeed, or None when it succeeded."""
    what = f"ALM {_WHAT[kind]} task {task.task_id} on model {model_id}"
    if task.task_state == AlmTaskState.CANCELLED:
        return TaskCancelledError(f"{what} was cancelled in Anaplan before it finished; nothing was applied.")
    if task.succeeded:
        return None
    error = task.result.error if task.result else None
    detail = str(error) if error else f"no error details (current step: {task.current_step or 'unknown'})"
    return TaskFailedError(f"{what} failed: {detail}.", anaplan_message=error.message_text if error else None)


class ALMAPI:
    """Application Lifecycle Management calls; :class:`AnaplanClient` inherits these methods.

    Model ids are checked before any call; revision ids are 32 hexadecimal characters.
    """

    _transport: Transport

    if TYPE_CHECKING:  # provided by MetadataAPI in AnaplanClient

        async def resolve_model(self, name_or_id: str, workspace_id: str | None = None) -> str: ...

        async def get_model(self, model_id: str, *, model_details: bool = True) -> Model: ...

    # ------------------------------------------------------------------------------------- online status
    async def set_model_online(self, model_id: str, online: bool) -> None:
        """Take a model offline (users cannot open it, e.g. around a sync) or bring it back online."""
        check_model_id(model_id)
        status = "online" if online else "offline"
        await self._transport.request(
            "PUT", f"models/{model_id}/onlineStatus", json={"status": status}, retry=RetryClass.SAFE
        )

    # ----------------------------------------------------------------------------------------- revisions
    async def list_revisions(
        self,
        model_id: str,
        *,
        applied_after: date | str | None = None,
        applied_before: date | str | None = None,
        sort: str | None = None,
    ) -> list[Revision]:
        """The revisions in a model's history (created there or synced in), read across all pages.

        ``applied_after``/``applied_before`` (dates, inclusive) narrow a long history; ``sort`` orders it
        (``-appliedOn``).
        """
        check_model_id(model_id)
        params: dict[str, Any] = {}
        if after := _date_param(applied_after, "applied_after"):
            params["appliedAfter"] = after
        if before := _date_param(applied_before, "applied_before"):
            params["appliedBefore"] = before
        if sort_value := sort_param(sort):
            params["sort"] = sort_value
        path = f"models/{model_id}/alm/revisions"
        pages = self._transport.paginate(path, "revisions", params)
        return [parse(Revision, item, "a revision") async for item in pages]

    async def get_latest_revision(self, model_id: str) -> Revision | None:
        """The model's latest revision (the one its structure is at), or None when it has none."""
        check_model_id(model_id)
        data = await self._transport.get_json(f"models/{model_id}/alm/latestRevision")
        revisions = data.get("revisions") or []
        return parse(Revision, revisions[0], "a revision") if revisions else None

    async def create_revision(self, model_id: str, name: str, description: str | None = None) -> Revision:
        """Tag the model's current structure as a new revision (name ≤ 60 characters, description ≤ 250)."""
        check_model_id(model_id)
        if not isinstance(name, str) or not name.strip():
            raise InvalidInputError(f"A revision needs a non-empty name, got {name!r}.")
        if len(name) > MAX_REVISION_NAME:
            raise InvalidInputError(f"A revision name has at most {MAX_REVISION_NAME} characters, got {len(name)}.")
        body: dict[str, Any] = {"name": name}
        if description is not None:
            if not isinstance(description, str) or len(description) > MAX_REVISION_DESCRIPTION:
                raise InvalidInputError(
                    f"A revision description is a string of at most {MAX_REVISION_DESCRIPTION} characters."
                )
            body["description"] = description
        response = await self._transport.request(
            "POST", f"models/{model_id}/alm/revisions", json=body, retry=RetryClass.ACTION
        )
        data = self._transport.json_of(response)
        return parse(Revision, member(data, "revision", "a new revision"), "a revision")

    async def list_applied_to_models(self, model_id: str, revision_id: str) -> list[AppliedToModel]:
        """The models a revision has reached; the first is the one it was created in (a good sync source)."""
        check_model_id(model_id)
        _revision_id(revision_id)
        data = await self._transport.get_json(f"models/{model_id}/alm/revisions/{revision_id}/appliedToModels")
        return [parse(AppliedToModel, item, "an applied-to model") for item in data.get("appliedToModels") or []]

    async def list_syncable_revisions(self, target_model_id: str, source_model_id: str) -> list[Revision]:
        """The source model's revisions the target can take by sync, newest first (empty: nothing to sync, or the
        models share no lineage, or the target was changed since its latest revision)."""
        check_model_id(target_model_id)
        check_model_id(source_model_id)
        data = await self._transport.get_json(
            f"models/{target_model_id}/alm/syncableRevisions", {"sourceModelId": source_model_id}
        )
        return [parse(Revision, item, "a revision") for item in data.get("revisions") or []]

    # ------------------------------------------------------------------------------------------ sync tasks
    async def sync_model(
        self,
        target_model_id: str,
        source_model_id: str,
        source_revision_id: str,
        target_revision_id: str | None = None,
        *,
        wait: bool = True,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float | None = DEFAULT_ALM_TIMEOUT,  # noqa: ASYNC109 - a deadline on the Anaplan task (settings.clock)
    ) -> AlmTask:
        """Apply a source revision to the target model. ``target_revision_id`` defaults to the target's latest
        revision (read first). ``wait=False`` returns the task as created; ``wait=True`` the finished task."""
        if target_revision_id is None:
            latest = await self.get_latest_revision(target_model_id)
            if latest is None:
                raise ModelStateError(
                    f"Model {target_model_id} has no revision, so nothing can be synced into it: a sync target is a "
                    f"copy of the source model (or of a model of the same lineage)."
                )
            target_revision_id = latest.id
        return await self._run_task(
            SYNC, target_model_id, source_model_id, source_revision_id, target_revision_id, wait, poll_interval, timeout
        )

    async def list_sync_tasks(self, model_id: str) -> list[AlmTask]:
        """The model's sync tasks that are running or finished in the last 48 hours, newest first."""
        check_model_id(model_id)
        data = await self._transport.get_json(f"models/{model_id}/alm/syncTasks")
        return [parse(AlmTask, item, "a sync task") for item in data.get("tasks") or []]

    async def get_sync_task(self, model_id: str, task_id: str) -> AlmTask:
        """One sync task of the (target) model, with its result once it is COMPLETE."""
        return await self._get_task(SYNC, model_id, task_id)

    # ------------------------------------------------------------------------------------------ reports
    async def create_comparison_report(
        self,
        target_model_id: str,
        source_model_id: str,
        source_revision_id: str,
        target_revision_id: str,
        *,
        wait: bool = True,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float | None = DEFAULT_ALM_TIMEOUT,  # noqa: ASYNC109 - a deadline on the Anaplan task (settings.clock)
    ) -> AlmTask:
        """Start generating the full comparison report of two revisions (what a sync would change, object by
        object); fetch it with :meth:`get_comparison_report` once the task is done."""
        return await self._run_task(
            COMPARISON,
            target_model_id,
            source_model_id,
            source_revision_id,
            target_revision_id,
            wait,
            poll_interval,
            timeout,
        )

    async def get_comparison_report_task(self, model_id: str, task_id: str) -> AlmTask:
        """One comparison report task of the (target) model."""
        return await self._get_task(COMPARISON, model_id, task_id)

    async def get_comparison_report(self, model_id: str, target_revision_id: str, source_revision_id: str) -> str:
        """The full comparison report (tab-separated text), available for 48 hours after it was generated."""
        check_model_id(model_id)
        _revision_id(target_revision_id, "target revision id")
        _revision_id(source_revision_id, "source revision id")
        response = await self._transport.request(
            "GET",
            f"models/{model_id}/alm/comparisonReports/{target_revision_id}/{source_revision_id}",
            headers={"Accept": "application/octet-stream"},
        )
        return response.content.decode(response.encoding or "utf-8", errors="replace")

    async def create_summary_report(
        self,
        target_model_id: str,
        source_model_id: str,
        source_revision_id: str,
        target_revision_id: str,
        *,
        wait: bool = True,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float | None = DEFAULT_ALM_TIMEOUT,  # noqa: ASYNC109 - a deadline on the Anaplan task (settings.clock)
    ) -> AlmTask:
        """Start generating the summary report of two revisions (counts of created, modified and deleted objects);
        fetch it with :meth:`get_summary_report` once the task is done."""
        return await self._run_task(
            SUMMARY,
            target_model_id,
            source_model_id,
            source_revision_id,
            target_revision_id,
            wait,
            poll_interval,
            timeout,
        )

    async def get_summary_report_task(self, model_id: str, task_id: str) -> AlmTask:
        """One summary report task of the (target) model."""
        return await self._get_task(SUMMARY, model_id, task_id)

    async def get_summary_report(
        self, model_id: str, target_revision_id: str, source_revision_id: str
    ) -> SummaryReport:
        """The summary report (totals and counts per category), available for 48 hours after it was generated."""
        check_model_id(model_id)
        _revision_id(target_revision_id, "target revision id")
        _revision_id(source_revision_id, "source revision id")
        data = await self._transport.get_json(
            f"models/{model_id}/alm/summaryReports/{target_revision_id}/{source_revision_id}"
        )
        return parse(SummaryReport, member(data, "summaryReport", "a summary report"), "a summary report")

    # ------------------------------------------------------------------------------------------ waiting
    async def wait_for_alm_task(
        self,
        kind: str,
        model_id: str,
        task_id: str,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float | None = DEFAULT_ALM_TIMEOUT,  # noqa: ASYNC109 - a deadline on the Anaplan task (settings.clock)
    ) -> AlmTask:
        """Poll a ``"sync"``, ``"comparison"`` or ``"summary"`` task until it ends; return it when it succeeded,
        raise TaskFailedError/TaskCancelledError when it did not, AnaplanTimeoutError after ``timeout`` seconds."""
        if kind not in _COLLECTION:
            raise InvalidInputError(f"kind must be one of {', '.join(sorted(_COLLECTION))}, got {kind!r}.")
        _check_poll(poll_interval, timeout)
        settings = self._transport.settings
        deadline = None if timeout is None else settings.clock() + timeout
        while True:
            task = await self._get_task(kind, model_id, task_id)
            if task.is_terminal:
                error = _failure(task, kind, model_id)
                if error is not None:
                    raise error
                return task
            now = settings.clock()
            if deadline is not None and now >= deadline:
                raise AnaplanTimeoutError(
                    f"ALM {_WHAT[kind]} task {task_id} on model {model_id} was still {task.task_state} after "
                    f"{timeout:g} s; it goes on in Anaplan (ALM tasks cannot be cancelled through the API): "
                    f"follow it with {_GETTER[kind]}()."
                )
            await settings.sleep(poll_interval if deadline is None else max(0.0, min(poll_interval, deadline - now)))

    # ------------------------------------------------------------------------------------------ promotion
    async def promote(
        self,
        source_model: str,
        target_model: str,
        *,
        revision: str | NewRevision | None = None,
        dry_run: bool = False,
        take_offline: bool = False,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float | None = DEFAULT_ALM_TIMEOUT,  # noqa: ASYNC109 - a deadline on the Anaplan task (settings.clock)
    ) -> PromotionResult:
        """Move a revision of ``source_model`` into ``target_model`` (ids or names), as a careful person would.

        1. the source revision: ``NewRevision(name, description)`` creates it; a revision id or name picks one of the
           source's revisions; ``None`` takes the source's latest revision;
        2. the target's latest revision is read; if it already is that revision, nothing more happens
           (``up_to_date``);
        3. the revision must be among the target's syncable revisions, else :class:`ModelStateError` says why;
        4. the comparison report (TSV) and the summary report are generated and read;
        5. unless ``dry_run``, the sync runs to completion (with the target taken offline around it when
           ``take_offline`` and it was online); a failed or cancelled sync raises :class:`PromotionError`, which
           carries everything done before.
        """
        _check_poll(poll_interval, timeout)
        source_id = await self.resolve_model(source_model)
        target_id = await self.resolve_model(target_model)
        if source_id == target_id:
            raise InvalidInputError(f"The source and the target of a promotion are the same model ({source_id}).")

        created = False
        if isinstance(revision, NewRevision):
            chosen = await self.create_revision(source_id, revision.name, revision.description)
            created = True
            log.info("Created revision %s (%r) in model %s", chosen.id, chosen.name, source_id)
        else:
            chosen = await self._pick_revision(source_id, revision)

        target_revision = await self.get_latest_revision(target_id)
        result = PromotionResult(
            source_model_id=source_id,
            target_model_id=target_id,
            revision=chosen,
            revision_created=created,
            target_revision=target_revision,
            dry_run=dry_run,
        )
        if target_revision is None:
            raise ModelStateError(
                f"Model {target_id} has no revision, so it cannot take revisions of model {source_id}: a sync target "
                f"is a copy of the source model (or of a model of the same lineage)."
            )
        if target_revision.id == chosen.id:
            log.info("Model %s is already at revision %s; nothing to promote", target_id, chosen.id)
            return result.model_copy(update={"up_to_date": True, "target_revision_after": target_revision})

        syncable = await self.list_syncable_revisions(target_id, source_id)
        result = result.model_copy(update={"syncable_revisions": tuple(syncable)})
        if chosen.id not in {r.id for r in syncable}:
            offered = ", ".join(f"{r.id} ({r.name!r})" for r in syncable) or "none"
            raise ModelStateError(
                f"Revision {chosen.id} ({chosen.name!r}) of model {source_id} cannot be synced into model {target_id} "
                f"(at revision {target_revision.id}). Syncable revisions: {offered}. A revision is syncable when it "
                f"was applied to the source after the target's latest revision, the two models share that lineage, "
                f"and the target has no structural change of its own since."
            )

        ids = (source_id, chosen.id, target_revision.id)
        comparison_task = await self.create_comparison_report(
            target_id, *ids, poll_interval=poll_interval, timeout=timeout
        )
        comparison = await self.get_comparison_report(target_id, target_revision.id, chosen.id)
        summary_task = await self.create_summary_report(target_id, *ids, poll_interval=poll_interval, timeout=timeout)
        summary = await self.get_summary_report(target_id, target_revision.id, chosen.id)
        result = result.model_copy(
            update={
                "comparison_report_task": comparison_task,
                "comparison_report": comparison,
                "summary_report_task": summary_task,
                "summary_report": summary,
            }
        )
        log.info(
            "Promotion of revision %s from model %s to model %s: %d created, %d modified, %d deleted",
            chosen.id,
            source_id,
            target_id,
            summary.totals.created,
            summary.totals.modified,
            summary.totals.deleted,
        )
        if dry_run:
            return result

        toggled = False
        if take_offline:
            target = await self.get_model(target_id, model_details=False)
            if target.active_state not in _OFFLINE_STATES:
                await self.set_model_online(target_id, False)
                toggled = True
        try:
            task = await self.sync_model(target_id, *ids, wait=False)
            try:
                task = await self.wait_for_alm_task(
                    SYNC, target_id, task.task_id, poll_interval=poll_interval, timeout=timeout
                )
            except TaskFailedError as exc:
                failed = await self._get_task(SYNC, target_id, task.task_id)
                raise PromotionError(
                    f"Promotion of revision {chosen.id} from model {source_id} to model {target_id}: {exc}",
                    result=result.model_copy(update={"sync_task": failed}),
                    cancelled=isinstance(exc, TaskCancelledError),
                ) from exc
        except BaseException:
            if toggled:
                await self._back_online(target_id, quiet=True)  # the first error is the one to report
            raise
        if toggled:
            await self._back_online(target_id)
        after = await self.get_latest_revision(target_id)
        return result.model_copy(update={"sync_task": task, "target_revision_after": after})

    # ------------------------------------------------------------------------------------------ internals
    async def _back_online(self, model_id: str, *, quiet: bool = False) -> None:
        try:
            await self.set_model_online(model_id, True)
        except AnaplanError:
            log.exception("Could not bring model %s back online after the sync; do it by hand", model_id)
            if not quiet:
                raise

    async def _pick_revision(self, model_id: str, revision: str | None) -> Revision:
        if revision is None:
            latest = await self.get_latest_revision(model_id)
            if latest is None:
                raise ModelStateError(f"Model {model_id} has no revision to promote; create one first.")
            return latest
        if not isinstance(revision, str) or not revision.strip():
            raise InvalidInputError(f"revision must be a revision id or name, or a NewRevision; got {revision!r}.")
        revisions = await self.list_revisions(model_id)
        if is_hex_id(revision):
            for item in revisions:
                if item.id.upper() == revision.upper():
                    return item
        named = [item for item in revisions if item.name == revision]
        if named:
            return named[-1]  # names need not be unique: the one applied last
        names = [item.name or "" for item in revisions]
        raise NameNotFoundError("revision", revision, f"model {model_id}", names, close_matches(revision, names))

    async def _run_task(
        self,
        kind: str,
        target_model_id: str,
        source_model_id: str,
        source_revision_id: str,
        target_revision_id: str,
        wait: bool,
        poll_interval: float,
        timeout: float | None,  # noqa: ASYNC109 - a deadline on the Anaplan task (settings.clock)
    ) -> AlmTask:
        check_model_id(target_model_id)
        check_model_id(source_model_id)
        body = {
            "sourceRevisionId": _revision_id(source_revision_id, "source revision id"),
            "sourceModelId": source_model_id,
            "targetRevisionId": _revision_id(target_revision_id, "target revision id"),
        }
        _check_poll(poll_interval, timeout)
        response = await self._transport.request(
            "POST", f"models/{target_model_id}/alm/{_COLLECTION[kind]}", json=body, retry=RetryClass.ACTION
        )
        task = parse(AlmTask, member(self._transport.json_of(response), "task", "a new task"), "a task")
        log.info("Started ALM %s task %s on model %s", _WHAT[kind], task.task_id, target_model_id)
        if not wait:
            return task
        return await self.wait_for_alm_task(
            kind, target_model_id, task.task_id, poll_interval=poll_interval, timeout=timeout
        )

    async def _get_task(self, kind: str, model_id: str, task_id: str) -> AlmTask:
        check_model_id(model_id)
        _revision_id(task_id, "task id")
        data = await self._transport.get_json(f"models/{model_id}/alm/{_COLLECTION[kind]}/{task_id}")
        return parse(AlmTask, member(data, "task", "a task"), "a task")


__all__ = ["ALMAPI", "DEFAULT_ALM_TIMEOUT", "DEFAULT_POLL_INTERVAL", "PromotionError"]
