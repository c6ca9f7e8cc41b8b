"""``AnaplanTaskStatusSensor``: wait for an Anaplan task (started elsewhere) to end, and judge it.

It watches one task of an import, export, process or action: the id given (typically pulled from an upstream
operator's XCom key ``anaplan_task_id``) or, without one, the action's newest task. It applies the same verdict and
row policy (``fail_on``) as the operators, and never cancels the task it watches (not on timeout, not on kill).

A task that ended without success raises an error that is both the Anaplan twin (``TaskFailedError`` or
``TaskCancelledError``) and an ``AirflowFailException``: retrying cannot change a finished task, and ``soft_fail`` /
``never_fail`` turn it into a skip in poke, reschedule and deferrable mode alike.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from ..client.ids import ObjectKind, is_hex_id
from ..exceptions import AnaplanError, InvalidInputError, TaskCancelledError, TaskFailedError
from ..hooks.anaplan import AnaplanHook
from ..links import AnaplanModelLink
from ..operators._base import (
    DEFER_TIMEOUT_MARGIN,
    Location,
    alocate,
    check_fail_on,
    check_flag,
    check_ref,
    check_seconds,
    naming,
    outcome_summary,
    policy_failure,
    run_hook,
    validate_event,
)
from ..triggers.anaplan import TASK_EVENT_STATUSES, AnaplanTaskTrigger, TaskTiming

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ..client import AnaplanClient
    from ..client.task_models import TaskOutcome


class AnaplanTaskFailedSensorError(TaskFailedError, AirflowFailException):
    """The watched task failed (or rejected rows under ``fail_on``): final, so no retry; ``soft_fail`` skips."""


class AnaplanTaskCancelledSensorError(TaskCancelledError, AirflowFailException):
    """The watched task was cancelled: final, so no retry; ``soft_fail`` skips."""


_KINDS = (ObjectKind.IMPORT, ObjectKind.EXPORT, ObjectKind.ACTION, ObjectKind.PROCESS)


class AnaplanTaskStatusSensor(BaseSensorOperator):
    """Wait until an Anaplan task ends; succeed when it succeeded under the row policy, fail (or skip) otherwise.

    :param action: the id or name of the import, export, process or action whose task is watched (templated).
    :param anaplan_task_id: the Anaplan task id (templated), e.g.
        ``"{{ ti.xcom_pull(task_ids='load', key='anaplan_task_id') }}"``; None watches the action's newest task.
    :param anaplan_conn_id: the ``anaplan`` connection (templated).
    :param workspace_id: workspace id or name (templated); default: the connection's.
    :param model_id: model id or name (templated); default: the connection's.
    :param fail_on: ``"rejected"`` (default), ``"warnings"`` or ``"never"``, as for the operators.
    :param deferrable: wait in the triggerer (needs a running triggerer); default ``[operators] default_deferrable``.

    ``poke_interval`` (default 5 s here), ``timeout``, ``mode``, ``soft_fail`` and ``never_fail`` work as for any
    sensor. The XCom value is the operators' small result dict (task id, outcome, row counts).
    """

    template_fields: Sequence[str] = ("anaplan_conn_id", "workspace_id", "model_id", "action", "anaplan_task_id")
    ui_color = "#d4e8fb"
    operator_extra_links = (AnaplanModelLink(),)

    def __init__(
        self,
        *,
        action: str,
        anaplan_task_id: str | None = None,
        anaplan_conn_id: str = AnaplanHook.default_conn_name,
        workspace_id: str | None = None,
        model_id: str | None = None,
        fail_on: str = "rejected",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float | timedelta = 5.0,
        **kwargs: Any,
    ) -> None:
        # Checked before BaseSensorOperator does, so that the error is ours (and names the fix).
        check_seconds(poke_interval, "poke_interval")
        if kwargs.get("timeout") is not None:
            check_seconds(kwargs["timeout"], "timeout", zero=True)
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.action = action
        self.anaplan_task_id = anaplan_task_id
        self.anaplan_conn_id = anaplan_conn_id
        self.workspace_id = workspace_id
        self.model_id = model_id
        self.fail_on = check_fail_on(fail_on)
        self.deferrable = check_flag("deferrable", deferrable)
        self._loc: Location | None = None
        self._watched: str | None = None
        self._linked = False

    @cached_property
    def hook(self) -> AnaplanHook:
        return AnaplanHook(self.anaplan_conn_id)

    # ------------------------------------------------------------------------------------------ resolving
    def check_rendered(self) -> None:
        """The parameters as rendered, before any call: an ``InvalidInputError`` names the one at fault."""
        check_ref("anaplan_conn_id", self.anaplan_conn_id, "the id of an 'anaplan' connection")
        check_ref("workspace_id", self.workspace_id, "a workspace id or name", optional=True)
        check_ref("model_id", self.model_id, "a model id or name", optional=True)
        check_ref("action", self.action, "the id or name of an import, export, process or action")
        task_id = self.anaplan_task_id
        if task_id is None or (isinstance(task_id, str) and not task_id.strip()):
            return  # the action's newest task
        if isinstance(task_id, str) and task_id.strip() == "None":
            raise InvalidInputError(
                "anaplan_task_id rendered to 'None': the XCom it pulls holds no task id. Check the task_ids and key "
                "of the xcom_pull (the operators push key 'anaplan_task_id'), or leave anaplan_task_id unset to "
                "watch the action's newest task."
            )
        if not is_hex_id(str(task_id).strip()):
            raise InvalidInputError(
                f"anaplan_task_id must be an Anaplan task id (32 hex characters), got {task_id!r}; e.g. "
                "\"{{ ti.xcom_pull(task_ids='load', key='anaplan_task_id') }}\", or None for the action's newest task"
            )

    def _run(self, fn: Any) -> Any:
        return run_hook(self, fn)

    def _resolve(self, context: Context) -> bool:
        """Resolve the action (and the task, when none is given); False while the action has no task yet."""
        if self._loc is None:
            self.check_rendered()

            async def resolve(client: AnaplanClient) -> Location:
                workspace_id, model_id = await alocate(self.hook, client, self.workspace_id, self.model_id)
                with naming("action"):
                    ref = await client.resolve_action(
                        model_id, self.action, workspace_id=workspace_id, allowed=_KINDS, call=type(self).__name__
                    )
                return Location(model_id, ref.action_id, workspace_id, ref.name)

            self._loc = self._run(resolve)
        if not self._linked:  # the "Anaplan model" extra link (best effort)
            AnaplanModelLink.persist(context, workspace_id=self._loc.workspace_id, model_id=self._loc.model_id)
            self._linked = True
        if self._watched is None:
            if self.anaplan_task_id:
                self._watched = str(self.anaplan_task_id).strip()
            else:
                loc = self._loc
                tasks = self._run(
                    lambda client: client.list_tasks(loc.model_id, loc.action_id, workspace_id=loc.workspace_id)
                )
                if not tasks:
                    self.log.info("%s has no task yet", loc.describe())
                    return False
                newest = max(enumerate(tasks), key=lambda pair: (pair[1].creation_time or 0, pair[0]))[1]
                self._watched = newest.task_id
                self.log.info("Watching the newest task of %s: %s", loc.describe(), self._watched)
        return True

    def _outcome(self) -> TaskOutcome:
        loc, task_id = self._loc, self._watched
        assert loc is not None and task_id is not None
        return self._run(
            lambda client: client.get_task_outcome(loc.model_id, loc.action_id, task_id, workspace_id=loc.workspace_id)
        )

    def _verdict(self, outcome: TaskOutcome, timing: TaskTiming | None = None) -> dict[str, Any]:
        """The XCom value of a task that passes; raise the final error of one that does not."""
        loc = self._loc
        assert loc is not None
        summary = outcome_summary(outcome, timing, model_id=loc.model_id, workspace_id=loc.workspace_id)
        reason = policy_failure(outcome, self.fail_on)
        if reason is not None:
            self.log.warning("%s", outcome.message)
            if outcome.status.value == "cancelled":
                raise AnaplanTaskCancelledSensorError(reason)
            raise AnaplanTaskFailedSensorError(reason)
        self.log.info("%s", outcome.message)
        return summary

    # ------------------------------------------------------------------------------------------ modes
    def poke(self, context: Context) -> bool | PokeReturnValue:
        if not self._resolve(context):
            return False
        outcome = self._outcome()
        if not outcome.done:
            self.log.info("%s", outcome.message)
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._verdict(outcome))

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        if self._resolve(context):
            outcome = self._outcome()
            if outcome.done:
                return self._verdict(outcome)
        else:  # nothing to watch yet: the trigger needs a task id, so keep poking on the worker
            return super().execute(context)
        loc, task_id = self._loc, self._watched
        assert loc is not None and task_id is not None
        timeout = float(self.timeout) if self.timeout is not None else None
        self.defer(
            trigger=AnaplanTaskTrigger(
                anaplan_conn_id=self.anaplan_conn_id,
                model_id=loc.model_id,
                action_id=loc.action_id,
                task_id=task_id,
                workspace_id=loc.workspace_id,
                poll_interval=float(self.poke_interval),
                end_time=time.time() + timeout if timeout is not None else None,
                echo={"action_name": loc.action_name},
                cancel_on_kill=False,  # a sensor watches; the task is not its own
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=timeout + DEFER_TIMEOUT_MARGIN) if timeout is not None else None,
        )

    def execute_complete(self, context: Context, event: Any = None) -> Any:
        payload = validate_event(event, TASK_EVENT_STATUSES)
        echo = payload.get("echo") if isinstance(payload.get("echo"), dict) else {}
        self._loc = Location(
            payload["model_id"], payload.get("action_id") or "", payload.get("workspace_id"), echo.get("action_name")
        )
        self._watched = payload["task_id"]
        if payload["status"] == "timeout":
            raise AirflowSensorTimeout(f"{payload.get('message')} The sensor timed out after {self.timeout} s.")
        if payload["status"] == "error":
            raise AnaplanError(payload.get("message") or "The trigger failed")
        outcome = self._outcome()
        if not outcome.done:
            raise AnaplanError(f"The trigger reported {payload['status']}, but task {self._watched} is still running")
        return self._verdict(outcome, TaskTiming.from_dict(payload.get("timing")))


__all__ = ["AnaplanTaskCancelledSensorError", "AnaplanTaskFailedSensorError", "AnaplanTaskStatusSensor"]
