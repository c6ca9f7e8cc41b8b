"""``AnaplanALMSyncOperator``: promote a revision of a source model into one or more target models.

For each target, in order, it does what a careful person does by hand:

1. read the target's latest revision; a target already at the revision is reported ``up_to_date`` and left alone
   (so a retried task, or a second run, changes nothing);
2. check that the revision is among the target's syncable revisions, else fail with the reason and the revisions
   that are syncable;
3. generate the comparison report (tab-separated, object by object) and the summary report (counts), log the
   summary, and save both to ``report_to`` when given;
4. with ``take_offline``, take the target offline (unless it already is);
5. start the sync and wait for it, on the worker or (``deferrable=True``) in the triggerer through
   :class:`~airflow_provider_anaplan.triggers.anaplan.AnaplanSyncTaskTrigger`;
6. bring a target it took offline back online, whatever the sync came to (also on a timeout or an error).

The revision is the source's latest (``revision="latest"``), one given by id or name, or a new one created from the
source's current structure (``new_revision_name``, templated, e.g. ``"Release {{ ds }}"``). On a retry the new
revision is not created twice: when the source's latest revision already has that name, it is reused.

**Retries reattach.** A sync this task started and that is still running is followed instead of starting another:
on Airflow 3.3+ its id is kept in the task state store; below 3.3 the newest unfinished sync task of the target
created after the DAG run began is adopted. A sync that finished meanwhile leaves the target at the revision, which
step 1 reports as up to date.

**Cancelling.** Anaplan's API cannot cancel an ALM task, so neither a timeout nor a kill stops a running sync: the task
fails (timeout) or ends, the sync goes on in Anaplan, and a target taken offline is brought back online (on the
worker's kill too; while deferred, a kill leaves a target taken offline offline: bring it back online by hand).

The XCom value: ``source_model_id``, ``revision_id``, ``revision_name``, ``revision_created`` and ``targets`` (one dict
per target: ``target_model_id``, ``status`` (``synced`` or ``up_to_date``), ``sync_task_id``, the target's revision
before and after, the summary totals and the report paths). A failing run pushes what was done so far under the key
``anaplan_outcome``. Every call needs the Workspace Administrator role on the models.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..client.alm_models import AlmTaskState
from ..client.ids import is_hex_id
from ..client.workspace import close_matches
from ..exceptions import (
    AnaplanError,
    AnaplanTimeoutError,
    InvalidInputError,
    ModelStateError,
    NameNotFoundError,
    TaskCancelledError,
    TaskFailedError,
)
from ..links import AnaplanModelLink
from ..triggers.anaplan import SYNC_EVENT_STATUSES, AnaplanSyncTaskTrigger, TaskTiming
from ._base import (
    DEFER_TIMEOUT_MARGIN,
    KILL_CANCEL_TIMEOUT,
    REATTACH_CLOCK_SKEW,
    XCOM_OUTCOME_KEY,
    XCOM_TASK_ID_KEY,
    AnaplanBaseOperator,
    alocate,
    check_flag,
    check_ref,
    naming,
    validate_event,
)
from ._io import as_location, check_location, write_stream

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ..client import AnaplanClient
    from ..client.alm_models import AlmTask, Revision

#: A model in one of these states is offline (users cannot open it).
OFFLINE_STATES = frozenset({"MAINTENANCE", "PRODUCTION_MAINTENANCE"})
#: Prefix of the task state store key that keeps a target's sync task id (Airflow 3.3+).
STATE_KEY_PREFIX = "anaplan_alm_sync_"
LATEST = "latest"


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _report_file(report_to: Any, name: str) -> Any:
    """``report_to`` (a directory: local path, URL or ``ObjectStoragePath``) joined with ``name``."""
    location = as_location(report_to)
    if hasattr(location, "fs"):  # an ObjectStoragePath: rebuilt from its URL (its "/" warns on Airflow 3.1)
        from airflow.sdk import ObjectStoragePath

        return ObjectStoragePath(f"{str(location).rstrip('/')}/{name}")
    return location / name


class AnaplanALMSyncOperator(AnaplanBaseOperator):
    """Sync a revision of a source model into one or more target models, with reports (see the module docstring).

    :param source_model: the source model's id or name (templated), e.g. the DEV model.
    :param target_models: one target model's id or name, or a list of them (templated), synced in order.
    :param revision: ``"latest"`` (default: the source's latest revision), or a revision's id or name (templated).
    :param new_revision_name: create a new revision of the source with this name (templated; at most 60 characters)
        and sync it; reused on a retry when it is already the source's latest revision.
    :param new_revision_description: the new revision's description (templated).
    :param report_to: a directory (templated: a local path, a URL or an ``ObjectStoragePath``) for each target's
        comparison report ``alm_comparison_<target>_<revision>.tsv`` and summary
        ``alm_summary_<target>_<revision>.json``; None: the summary is only logged.
    :param take_offline: take each target offline during its sync (and always back online after).
    :param anaplan_conn_id: the ``anaplan`` connection (templated).
    :param workspace_id: the workspace (id or name) in which model names are looked up (templated); default: the
        connection's.
    :param deferrable: wait for each sync in the triggerer; the reports are generated on the worker.
    :param poll_interval: seconds between polls of the ALM tasks.
    :param timeout: seconds (or a ``timedelta``) the whole try may take; the sync itself cannot be cancelled.
    """

    template_fields: Sequence[str] = (
        "anaplan_conn_id",
        "workspace_id",
        "source_model",
        "target_models",
        "revision",
        "new_revision_name",
        "new_revision_description",
        "report_to",
    )
    ui_color = "#e0d4fb"
    event_statuses = SYNC_EVENT_STATUSES

    def __init__(
        self,
        *,
        source_model: str,
        target_models: str | Sequence[str],
        revision: str | None = LATEST,
        new_revision_name: str | None = None,
        new_revision_description: str | None = None,
        report_to: Any = None,
        take_offline: bool = False,
        **kwargs: Any,
    ) -> None:
        reasons = {
            "fail_on": "an ALM sync has no rows to reject",
            "dump_to": "an ALM sync leaves no failure dump; see report_to",
            "model_id": "name the models in source_model and target_models",
        }
        for ignored, reason in reasons.items():
            if kwargs.get(ignored) is not None:
                raise InvalidInputError(f"AnaplanALMSyncOperator does not take {ignored} ({reason}): remove it")
        super().__init__(**kwargs)
        if new_revision_name is not None and revision not in (None, LATEST):
            raise InvalidInputError("Give either revision or new_revision_name, not both")
        if report_to is not None:
            check_location("report_to", report_to)
        self.source_model = source_model
        self.target_models = target_models
        self.revision = revision
        self.new_revision_name = new_revision_name
        self.new_revision_description = new_revision_description
        self.report_to = report_to
        self.take_offline = check_flag("take_offline", take_offline)
        #: Per try (carried through each deferral in the trigger's echo): the plan and what was done.
        self._state: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------------ execute
    def check_rendered(self) -> None:
        """The parameters as rendered, before any call (see :meth:`AnaplanBaseOperator.check_rendered`)."""
        check_ref("anaplan_conn_id", self.anaplan_conn_id, "the id of an 'anaplan' connection")
        check_ref("workspace_id", self.workspace_id, "a workspace id or name", optional=True)
        check_ref("source_model", self.source_model, "the source model's id or name")
        targets = self.target_models
        if isinstance(targets, str):
            check_ref("target_models", targets, "a model's id or name, or a list of them")
        elif not isinstance(targets, list | tuple) or not targets:
            raise InvalidInputError(
                f"target_models must be a model's id or name, or a non-empty list of them, got "
                f"{type(targets).__name__} {targets!r}"
            )
        else:
            for index, name in enumerate(targets):
                check_ref(f"target_models[{index}]", name, "a model's id or name")
        if self.revision is not None and not isinstance(self.revision, str):  # "" means the latest, like None
            check_ref("revision", self.revision, "'latest', or a revision's id or name", optional=True)
        check_ref("new_revision_name", self.new_revision_name, "the new revision's name", optional=True)
        if self.report_to is not None:
            check_location("report_to", self.report_to, writable=True)

    def execute(self, context: Context) -> Any:
        self.check_rendered()
        self._deadline = time.time() + self.timeout if self.timeout is not None else None
        self._state = self._run(lambda client: self._aplan(client))
        state = self._state
        self.log.info(
            "Promoting revision %s (%r) of model %s into %s",
            state["revision_id"],
            state["revision_name"],
            state["source_model_id"],
            ", ".join(state["targets"]),
        )
        AnaplanModelLink.persist(context, workspace_id=state["workspace_id"], model_id=state["source_model_id"])
        return self._continue(context)

    def execute_complete(self, context: Context, event: Any = None) -> Any:
        """Resume after the trigger: finish this target's sync, then go on with the next targets."""
        payload = validate_event(event, self.event_statuses)
        echo = payload.get("echo") if isinstance(payload.get("echo"), Mapping) else {}
        state = echo.get("alm")
        if not isinstance(state, Mapping) or state.get("task_id") != payload["task_id"]:
            raise AnaplanError(f"The trigger event does not carry this task's ALM state: {payload!r}")
        self._state = json.loads(json.dumps(state))
        deadline = echo.get("deadline")
        self._deadline = float(deadline) if isinstance(deadline, int | float) else None
        timing = TaskTiming.from_dict(payload.get("timing"))
        target, task_id = self._state["targets"][self._state["index"]], payload["task_id"]
        status = payload["status"]
        if status in ("timeout", "error"):
            self._back_online_after_failure(target)
            if status == "timeout":
                self._fail_on_deadline(task_id)
            raise AnaplanError(f"{payload.get('message') or 'The trigger failed'} (ALM sync task {task_id})")
        task = self._guarded(target, lambda: self._run(lambda client: client.get_sync_task(target, task_id)))
        if not task.is_terminal:
            self._back_online_after_failure(target)
            raise AnaplanError(f"The trigger reported ALM sync task {task_id} as {status}, but it is {task.task_state}")
        try:
            self._after_sync(context, target, task, timing)
        except Exception:
            self._push_failure(context)
            raise
        return self._continue(context)

    def _continue(self, context: Context) -> dict[str, Any]:
        """Work through the targets from ``index``; defers (deferrable) while a sync runs."""
        state = self._state
        while state["index"] < len(state["targets"]):
            target = state["targets"][state["index"]]
            if state.get("task_id") is None:
                try:
                    done = self._run(lambda client, target=target: self._aprepare(client, context, target))
                except Exception:
                    self._push_failure(context)
                    raise
                if done is not None:  # up to date: nothing to sync
                    state["results"].append(done)
                    state["index"] += 1
                    continue
            task_id = state["task_id"]
            timing = TaskTiming()
            task = self._guarded(target, self._poll, target, task_id, timing)
            if not task.is_terminal and self.deferrable:
                self._defer(target, task_id, timing)
            while not task.is_terminal:
                now = time.time()
                if self._deadline is not None and now >= self._deadline:
                    self._back_online_after_failure(target)
                    self._fail_on_deadline(task_id)
                wait = self.poll_interval if self._deadline is None else min(self.poll_interval, self._deadline - now)
                time.sleep(max(0.0, wait))
                task = self._guarded(target, self._poll, target, task_id, timing)
            try:
                self._after_sync(context, target, task, timing)
            except Exception:
                self._push_failure(context)
                raise
        return self._result()

    def _defer(self, target: str, task_id: str, timing: TaskTiming) -> None:
        end_time = self._deadline
        defer_timeout = None
        if end_time is not None:
            margin = DEFER_TIMEOUT_MARGIN + 3 * self.poll_interval
            defer_timeout = timedelta(seconds=max(0.0, end_time - time.time()) + margin)
        self.log.info("Deferring: the triggerer polls ALM sync task %s every %g s", task_id, self.poll_interval)
        self.defer(
            trigger=AnaplanSyncTaskTrigger(
                anaplan_conn_id=self.anaplan_conn_id,
                model_id=target,
                task_id=task_id,
                poll_interval=self.poll_interval,
                end_time=end_time,
                timing=timing.to_dict(),
                echo={"alm": self._state, "deadline": self._deadline},
            ),
            method_name="execute_complete",
            timeout=defer_timeout,
        )

    # ------------------------------------------------------------------------------------------ planning
    async def _aplan(self, client: AnaplanClient) -> dict[str, Any]:
        """Resolve the models and the revision (creating a new one when asked): the state of this try."""
        workspace_id, source_id = await alocate(self.hook, client, self.workspace_id, self.source_model, "source_model")
        names = [self.target_models] if isinstance(self.target_models, str) else list(self.target_models or [])
        if not names or not all(isinstance(n, str) and n.strip() for n in names):
            raise InvalidInputError(f"target_models must name one model or more, got {self.target_models!r}")
        targets: list[str] = []
        for name in names:
            with naming("target_models"):
                target_id = await client.resolve_model(name.strip(), workspace_id)
            if target_id == source_id:
                raise InvalidInputError(
                    f"target_models: the source model {source_id} cannot be a target of its own sync; remove it from "
                    "target_models"
                )
            if target_id not in targets:
                targets.append(target_id)
        with naming("new_revision_name" if self.new_revision_name is not None else "revision"):
            revision, created = await self._arevision(client, source_id)
        return {
            "workspace_id": workspace_id,
            "source_model_id": source_id,
            "revision_id": revision.id,
            "revision_name": revision.name,
            "revision_created": created,
            "targets": targets,
            "index": 0,
            "results": [],
            "task_id": None,
        }

    async def _arevision(self, client: AnaplanClient, source_id: str) -> tuple[Revision, bool]:
        if self.new_revision_name is not None:
            name = str(self.new_revision_name).strip()
            latest = await client.get_latest_revision(source_id)
            if latest is not None and latest.name == name:
                self.log.info(
                    "Revision %s (%r) of model %s exists already (an earlier try?): reusing it",
                    latest.id,
                    name,
                    source_id,
                )
                return latest, False
            created = await client.create_revision(source_id, name, self.new_revision_description)
            self.log.info("Created revision %s (%r) in model %s", created.id, created.name, source_id)
            return created, True
        wanted = self.revision.strip() if isinstance(self.revision, str) else self.revision
        if wanted in (None, "", LATEST):
            latest = await client.get_latest_revision(source_id)
            if latest is None:
                raise ModelStateError(f"Model {source_id} has no revision to sync; create one (new_revision_name)")
            return latest, False
        revisions = await client.list_revisions(source_id)
        if is_hex_id(wanted):
            for item in revisions:
                if item.id.upper() == str(wanted).upper():
                    return item, False
        named = [item for item in revisions if item.name == wanted]
        if named:
            return named[-1], False
        known = [item.name or item.id for item in revisions]
        raise NameNotFoundError("revision", str(wanted), f"model {source_id}", known, close_matches(str(wanted), known))

    # ------------------------------------------------------------------------------------------ one target
    async def _aprepare(self, client: AnaplanClient, context: Context, target: str) -> dict[str, Any] | None:
        """Check, report, take offline and start (or reattach to) the sync into ``target``; the target's result
        when it is already at the revision (nothing to do), else None (``task_id`` set in the state)."""
        state = self._state
        source, revision = state["source_model_id"], state["revision_id"]
        current = await client.get_latest_revision(target)
        if current is None:
            raise ModelStateError(
                f"Model {target} has no revision, so it cannot take revisions of model {source}: a sync target is a "
                "copy of the source model (or of a model of the same lineage)."
            )
        if current.id.upper() == revision.upper():
            self.log.info("Model %s is already at revision %s: up to date", target, revision)
            return {"target_model_id": target, "status": "up_to_date", "target_revision_after": current.id}

        adopted = await self._aprevious_sync(client, context, target)
        toggled = False
        if adopted is not None:
            if self.take_offline:  # the earlier try took it offline; bring it back online at the end
                model = await client.get_model(target, model_details=False)
                toggled = model.active_state in OFFLINE_STATES
            state.update(task_id=adopted, toggled=toggled, target_revision_before=current.id, reports={})
            self._remember(context, target, adopted)
            return None

        syncable = await client.list_syncable_revisions(target, source)
        if revision.upper() not in {r.id.upper() for r in syncable}:
            offered = ", ".join(f"{r.id} ({r.name!r})" for r in syncable) or "none"
            raise ModelStateError(
                f"Revision {revision} ({state['revision_name']!r}) of model {source} cannot be synced into model "
                f"{target} (at revision {current.id}, {current.name!r}). Syncable revisions: {offered}. A revision is "
                "syncable when it was applied to the source after the target's latest revision, the two models "
                "share that lineage, and the target has no structural change of its own since."
            )
        reports = await self._areports(client, target, current.id)

        if self.take_offline:
            model = await client.get_model(target, model_details=False)
            if model.active_state not in OFFLINE_STATES:
                await client.set_model_online(target, False)
                toggled = True
                self.log.info("Took model %s offline for the sync", target)
        try:
            task = await client.sync_model(target, source, revision, current.id, wait=False)
        except BaseException:
            if toggled:
                await self._aback_online(client, target, quiet=True)
            raise
        self.log.info("Started ALM sync task %s of revision %s into model %s", task.task_id, revision, target)
        state.update(task_id=task.task_id, toggled=toggled, target_revision_before=current.id, reports=reports)
        self._remember(context, target, task.task_id)
        return None

    async def _areports(self, client: AnaplanClient, target: str, target_revision: str) -> dict[str, Any]:
        """Generate, log and save the comparison and summary reports of the sync into ``target``."""
        state = self._state
        source, revision = state["source_model_id"], state["revision_id"]
        ids = (source, revision, target_revision)
        wait = {"poll_interval": self.poll_interval, "timeout": self._remaining()}
        await client.create_comparison_report(target, *ids, **wait)
        comparison = await client.get_comparison_report(target, target_revision, revision)
        await client.create_summary_report(target, *ids, **wait)
        summary = await client.get_summary_report(target, target_revision, revision)
        totals = summary.totals
        self.log.info(
            "Syncing revision %s into model %s changes %d object(s): %d created, %d modified, %d deleted",
            revision,
            target,
            totals.total,
            totals.created,
            totals.modified,
            totals.deleted,
        )
        for category, counts in sorted(summary.differences.items()):
            self.log.info(
                "  %s: %d created, %d modified, %d deleted", category, counts.created, counts.modified, counts.deleted
            )
        result: dict[str, Any] = {
            "summary": {"created": totals.created, "modified": totals.modified, "deleted": totals.deleted}
        }
        if self.report_to is None:
            return result
        document = {
            "source_model_id": source,
            "target_model_id": target,
            "source_revision_id": revision,
            "source_revision_name": state["revision_name"],
            "target_revision_id": target_revision,
            **summary.model_dump(mode="json", by_alias=True),
        }
        for key, name, data in (
            ("comparison_report_path", f"alm_comparison_{target}_{revision}.tsv", comparison.encode("utf-8")),
            ("summary_report_path", f"alm_summary_{target}_{revision}.json", json.dumps(document, indent=2).encode()),
        ):
            written = await write_stream(
                _one_chunk(data), _report_file(self.report_to, name), count_rows=False, progress=False
            )
            self.log.info("Saved %s to %s", name, written.path)
            result[key] = written.path
        return result

    async def _aprevious_sync(self, client: AnaplanClient, context: Context, target: str) -> str | None:
        """The unfinished sync into ``target`` that an earlier try of this task started, if any."""
        store = context.get("task_state_store")
        if store is not None:
            prior = store.get(STATE_KEY_PREFIX + target)
            if not isinstance(prior, str) or not prior:
                return None
            try:
                task = await client.get_sync_task(target, prior)
            except AnaplanError:
                return None
            if task.is_terminal:
                return None
            self.log.info("Reattaching to ALM sync task %s on model %s that an earlier try started", prior, target)
            return prior
        ti = context.get("ti")
        try_number = getattr(ti, "try_number", None)
        dag_run = context.get("dag_run")
        began = getattr(dag_run, "start_date", None) or getattr(dag_run, "run_after", None)
        if not isinstance(try_number, int) or try_number <= 1 or began is None:
            return None
        since_ms = (began.timestamp() - REATTACH_CLOCK_SKEW) * 1000
        active = [
            t
            for t in await client.list_sync_tasks(target)
            if t.task_state in (AlmTaskState.NOT_STARTED, AlmTaskState.IN_PROGRESS)
            and (t.creation_time or 0) >= since_ms
        ]
        if not active:
            return None
        newest = max(active, key=lambda t: t.creation_time or 0)
        self.log.info(
            "Try %s: reattaching to ALM sync task %s on model %s, started after this DAG run began by an earlier try",
            try_number,
            newest.task_id,
            target,
        )
        return newest.task_id

    def _remember(self, context: Context, target: str, task_id: str) -> None:
        ti = context.get("ti")
        if ti is not None:
            ti.xcom_push(key=XCOM_TASK_ID_KEY, value=task_id)
        store = context.get("task_state_store")
        if store is not None:
            store.set(STATE_KEY_PREFIX + target, task_id)

    def _poll(self, target: str, task_id: str, timing: TaskTiming) -> AlmTask:
        task = self._run(lambda client: client.get_sync_task(target, task_id))
        timing.observe(task.task_state, task.creation_time, time.time())
        return task

    def _after_sync(self, context: Context, target: str, task: AlmTask, timing: TaskTiming) -> None:
        """The sync into ``target`` ended: back online, then the verdict; the target's result is recorded."""
        state = self._state
        timing.observe(task.task_state, task.creation_time, time.time())
        if state.get("toggled"):
            state["toggled"] = False
            self._run(lambda client: self._aback_online(client, target))
        if not task.succeeded:
            reason = str(task.result.error) if task.result is not None and task.result.error is not None else None
            what = f"ALM sync task {task.task_id} of revision {state['revision_id']} into model {target}"
            if task.task_state == AlmTaskState.CANCELLED:
                raise TaskCancelledError(f"{what} was cancelled in Anaplan; nothing was applied")
            raise TaskFailedError(f"{what} failed: {reason or 'no details given'}")
        after = self._run(lambda client: client.get_latest_revision(target))
        self.log.info("ALM sync task %s into model %s completed (%s)", task.task_id, target, timing.describe())
        state["results"].append(
            {
                "target_model_id": target,
                "status": "synced",
                "sync_task_id": task.task_id,
                "target_revision_before": state.get("target_revision_before"),
                "target_revision_after": after.id if after is not None else None,
                "queued_seconds": timing.queued_seconds,
                "running_seconds": timing.running_seconds,
                **(state.get("reports") or {}),
            }
        )
        state.update(index=state["index"] + 1, task_id=None, toggled=False, reports={}, target_revision_before=None)

    def _result(self) -> dict[str, Any]:
        state = self._state
        return {
            "source_model_id": state["source_model_id"],
            "revision_id": state["revision_id"],
            "revision_name": state["revision_name"],
            "revision_created": state["revision_created"],
            "targets": list(state["results"]),
        }

    def _push_failure(self, context: Context) -> None:
        ti = context.get("ti")
        if ti is not None and self._state:
            ti.xcom_push(key=XCOM_OUTCOME_KEY, value=self._result())

    # ------------------------------------------------------------------------------------------ online / failures
    async def _aback_online(self, client: AnaplanClient, target: str, *, quiet: bool = False) -> None:
        try:
            await client.set_model_online(target, True)
        except Exception as exc:
            self.log.error("Could not bring model %s back online: %s; do it by hand", target, exc)
            if not quiet:
                raise
        else:
            self.log.info("Brought model %s back online", target)

    def _back_online_after_failure(self, target: str) -> None:
        """Bring a target this try took offline back online (best effort; the first error is the one reported)."""
        if self._state.get("toggled"):
            self._state["toggled"] = False
            try:
                self._run(lambda client: self._aback_online(client, target, quiet=True))
            except Exception as exc:
                self.log.error("Could not bring model %s back online: %s", target, exc)

    def _guarded(self, target: str, fn: Any, *args: Any) -> Any:
        """``fn(*args)``; on an error the target goes back online first."""
        try:
            return fn(*args)
        except BaseException:
            self._back_online_after_failure(target)
            raise

    def _remaining(self) -> float | None:
        if self._deadline is None:
            return None
        return max(1.0, self._deadline - time.time())

    def _fail_on_deadline(self, task_id: str) -> None:
        raise AnaplanTimeoutError(
            f"ALM sync task {task_id} did not finish within the timeout of {self.timeout:g} s. It goes on in Anaplan "
            "(ALM tasks cannot be cancelled through the API); a retry follows it or finds the target up to date."
        )

    # ------------------------------------------------------------------------------------------ kill
    def on_kill(self) -> None:
        """The sync cannot be cancelled; bring a target this try took offline back online (worker side)."""
        state = self._state
        task_id = state.get("task_id") if state else None
        if not task_id:
            return
        target = state["targets"][state["index"]]
        self.log.warning(
            "Task killed: ALM sync task %s on model %s cannot be cancelled through Anaplan's API; it runs to its end",
            task_id,
            target,
        )
        if not state.get("toggled"):
            return
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="anaplan-online")
        try:
            pool.submit(self._back_online_after_failure, target).result(timeout=KILL_CANCEL_TIMEOUT)
        except concurrent.futures.TimeoutError:
            self.log.warning("Bringing model %s back online took over %g s; check it", target, KILL_CANCEL_TIMEOUT)
        finally:
            pool.shutdown(wait=False)


__all__ = ["AnaplanALMSyncOperator"]
