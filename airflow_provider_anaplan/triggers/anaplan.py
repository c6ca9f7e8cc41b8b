"""Triggers that wait for Anaplan tasks in the triggerer: ``AnaplanTaskTrigger`` and ``AnaplanSyncTaskTrigger``.

Both poll until the task ends or their absolute deadline (``end_time``, wall-clock epoch seconds) passes, then yield
exactly one :class:`TriggerEvent`. They are async throughout: the hook is built inside ``run()`` and reads the
connection with the async helpers, so nothing blocks the triggerer's loop.

Event payload (a plain JSON dict; the operators' ``execute_complete`` validates it)::

    {"status": "success" | "partial_success" | "failed" | "cancelled" | "timeout" | "error",
     "task_id": ..., "model_id": ..., "workspace_id": ..., "action_id": ...,   # where the task lives
     "message": "...",                                                       # one line for the log
     "failed_rows": 0, "ignored_rows": 0,                                    # task triggers only
     "timing": {...}, "echo": {...}}                                         # see TaskTiming; the operator's echo

The verdict comes from the client's ``evaluate_task`` (the one place that judges a task); the row-failure policy
(``fail_on``) is applied by the operator, not here, so the trigger stays a dumb waiter.

Lifecycle (Airflow 3.3+ gives triggers an ``on_kill``): ``on_kill`` cancels the Anaplan task when a user kills the
deferred task (mark failed/success, clear); ``cleanup`` never does, because it also runs on triggerer restarts and
redistribution, after which the trigger resumes from its kwargs. Below Airflow 3.3 a killed deferred task leaves its
Anaplan task running until the task's deadline: the trigger then yields ``timeout`` and the operator cancels it when
it resumes (see :mod:`airflow_provider_anaplan.operators._base`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from ..client.task_models import OutcomeStatus, TaskState
from ..exceptions import RateLimitedError, ServerError, TransportError

if TYPE_CHECKING:
    from ..client import AnaplanClient
    from ..client.task_models import TaskOutcome
    from ..hooks.anaplan import AnaplanHook

#: Statuses a task trigger's event may carry; ``success``/``partial_success``/``failed``/``cancelled`` are verdicts.
TASK_EVENT_STATUSES = frozenset(
    {s.value for s in OutcomeStatus if s is not OutcomeStatus.RUNNING} | {"timeout", "error"}
)
#: Statuses an ALM sync trigger's event may carry.
SYNC_EVENT_STATUSES = frozenset({"success", "failed", "cancelled", "timeout", "error"})
#: Consecutive polls that may fail with a transient error (after the client's own retries) before giving up.
MAX_POLL_ERRORS = 3
#: Seconds ``on_kill`` spends on cancelling at most (Airflow bounds it by ``[triggerer] on_kill_timeout`` = 30 too).
CANCEL_TIMEOUT = 20.0
#: Seconds the first poll is spread over at most (a random delay in [0, min(poll_interval, this))), so that many
#: triggers created together (a triggerer picking up 1000 deferred tasks) do not all poll in the same instant.
FIRST_POLL_SPREAD = 5.0


@dataclass
class TaskTiming:
    """Time an Anaplan task spent queued behind other tasks on its model versus running, at poll resolution.

    Anaplan runs one task at a time per model; later ones wait in ``NOT_STARTED``. ``created_at`` is Anaplan's
    ``creationTime``; ``queued_until`` the last poll that still saw ``NOT_STARTED``; ``ended_at`` the first poll that
    saw the task finished. All are epoch seconds. Plain floats, so it travels in trigger kwargs and events.
    """

    created_at: float | None = None
    queued_until: float | None = None
    ended_at: float | None = None

    def observe(self, state: str | None, creation_time_ms: int | None, now: float) -> None:
        """Record one poll's answer."""
        if self.created_at is None and isinstance(creation_time_ms, int) and creation_time_ms > 0:
            self.created_at = min(creation_time_ms / 1000.0, now)  # never in our future (clock skew)
        if self.created_at is None:
            self.created_at = now
        if state == TaskState.NOT_STARTED:
            self.queued_until = now
        elif state in TaskState.TERMINAL and self.ended_at is None:
            self.ended_at = now

    @property
    def queued_seconds(self) -> float | None:
        if self.created_at is None:
            return None
        return round(max(0.0, (self.queued_until or self.created_at) - self.created_at), 3)

    @property
    def running_seconds(self) -> float | None:
        if self.created_at is None or self.ended_at is None:
            return None
        started = max(self.created_at, self.queued_until or self.created_at)
        return round(max(0.0, self.ended_at - started), 3)

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> TaskTiming:
        """Rebuild from :meth:`to_dict` (anything else gives an empty timing)."""
        if not isinstance(data, dict):
            return cls()
        values = {k: data.get(k) for k in ("created_at", "queued_until", "ended_at")}
        return cls(**{k: float(v) if isinstance(v, int | float) else None for k, v in values.items()})

    def describe(self) -> str:
        queued, running = self.queued_seconds, self.running_seconds
        parts = []
        if queued is not None:
            parts.append(f"queued {queued:.1f} s behind other tasks on the model")
        if running is not None:
            parts.append(f"ran {running:.1f} s")
        return ", ".join(parts) if parts else "timing unknown"


def _check_number(name: str, value: Any, *, positive: bool = True, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int | float) or isinstance(value, bool) or (positive and value <= 0):
        raise ValueError(f"{name} must be a number{' > 0' if positive else ''}, got {value!r}")


def _make_hook(conn_id: str) -> AnaplanHook:
    from ..hooks.anaplan import AnaplanHook

    return AnaplanHook(conn_id)  # on the event loop: reads the connection lazily and asynchronously


class _PollingTrigger(BaseTrigger):
    """Shared loop of both triggers: poll, stop at a verdict or at ``end_time``, tolerate brief API trouble."""

    statuses: frozenset[str] = frozenset()

    def __init__(
        self,
        *,
        anaplan_conn_id: str,
        model_id: str,
        task_id: str,
        poll_interval: float = 5.0,
        end_time: float | None = None,
        timing: dict[str, Any] | None = None,
        echo: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("anaplan_conn_id", anaplan_conn_id), ("model_id", model_id), ("task_id", task_id)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        _check_number("poll_interval", poll_interval)
        _check_number("end_time", end_time, positive=False, optional=True)
        self.anaplan_conn_id = anaplan_conn_id
        self.model_id = model_id
        self.anaplan_task_id = task_id
        self.poll_interval = float(poll_interval)
        self.end_time = float(end_time) if end_time is not None else None
        self.timing = TaskTiming.from_dict(timing).to_dict()
        self.echo = dict(echo or {})
        self._hook: AnaplanHook | None = None

    def _common_kwargs(self) -> dict[str, Any]:
        return {
            "anaplan_conn_id": self.anaplan_conn_id,
            "model_id": self.model_id,
            "task_id": self.anaplan_task_id,
            "poll_interval": self.poll_interval,
            "end_time": self.end_time,
            "timing": dict(self.timing),
            "echo": dict(self.echo),
        }

    def _hook_for_run(self) -> AnaplanHook:
        if self._hook is None:
            self._hook = _make_hook(self.anaplan_conn_id)
        return self._hook

    def _base_payload(self, status: str, message: str, timing: TaskTiming) -> dict[str, Any]:
        return {
            "status": status,
            "task_id": self.anaplan_task_id,
            "model_id": self.model_id,
            "message": message,
            "timing": timing.to_dict(),
            "echo": dict(self.echo),
        }

    async def _poll_once(self, hook: AnaplanHook, timing: TaskTiming) -> dict[str, Any] | None:
        """Read the task once; the payload when it has ended, else None."""
        raise NotImplementedError

    async def run(self) -> AsyncIterator[TriggerEvent]:
        timing = TaskTiming.from_dict(self.timing)
        errors = 0
        try:
            hook = self._hook_for_run()
            spread = random.random() * min(self.poll_interval, FIRST_POLL_SPREAD)  # noqa: S311 - jitter, not crypto
            if self.end_time is not None:
                spread = min(spread, max(0.0, self.end_time - time.time()))
            await asyncio.sleep(spread)
            while True:
                try:
                    payload = await self._poll_once(hook, timing)
                    errors = 0
                except (TransportError, ServerError, RateLimitedError) as exc:
                    errors += 1
                    if errors >= MAX_POLL_ERRORS:
                        raise
                    self.log.warning("Polling Anaplan task %s failed (%s); trying again", self.anaplan_task_id, exc)
                    payload = None
                if payload is not None:
                    yield TriggerEvent(payload)
                    return
                now = time.time()
                if self.end_time is not None and now >= self.end_time:
                    yield TriggerEvent(
                        self._base_payload(
                            "timeout",
                            f"Anaplan task {self.anaplan_task_id} had not finished by its deadline "
                            f"({timing.describe()}).",
                            timing,
                        )
                    )
                    return
                delay = self.poll_interval if self.end_time is None else min(self.poll_interval, self.end_time - now)
                await asyncio.sleep(max(0.0, delay))
        except Exception as exc:  # an event the operator can act on, rather than an opaque TaskDeferralError
            yield TriggerEvent(
                self._base_payload("error", f"Waiting for Anaplan task {self.anaplan_task_id} failed: {exc}", timing)
            )

    async def cleanup(self) -> None:
        """Release nothing but local state; never cancel the Anaplan task here (this also runs on restarts)."""
        self._hook = None
        await super().cleanup()


class AnaplanTaskTrigger(_PollingTrigger):
    """Wait for the task of an import, export, process or action to end.

    :param anaplan_conn_id: the ``anaplan`` connection.
    :param model_id: the model's id (ids only: the operator resolves names before deferring).
    :param action_id: the id of the import (112…), export (116…), action (117…) or process (118…).
    :param task_id: the Anaplan task id.
    :param workspace_id: the workspace id, or None for the model-only API paths.
    :param poll_interval: seconds between polls.
    :param end_time: wall-clock deadline (epoch seconds); at it the trigger yields ``timeout``. None: no deadline.
    :param timing: a :class:`TaskTiming` dict gathered before deferring (queued time seen by the worker).
    :param echo: small JSON data returned unchanged in the event (operators keep state across the deferral here).
    :param cancel_on_kill: cancel the task in ``on_kill`` (Airflow 3.3+); False for watchers such as the sensor.
    """

    statuses = TASK_EVENT_STATUSES

    def __init__(
        self,
        *,
        anaplan_conn_id: str,
        model_id: str,
        action_id: str,
        task_id: str,
        workspace_id: str | None = None,
        poll_interval: float = 5.0,
        end_time: float | None = None,
        timing: dict[str, Any] | None = None,
        echo: dict[str, Any] | None = None,
        cancel_on_kill: bool = True,
    ) -> None:
        super().__init__(
            anaplan_conn_id=anaplan_conn_id,
            model_id=model_id,
            task_id=task_id,
            poll_interval=poll_interval,
            end_time=end_time,
            timing=timing,
            echo=echo,
        )
        if not isinstance(action_id, str) or not action_id:
            raise ValueError(f"action_id must be a non-empty string, got {action_id!r}")
        self.action_id = action_id
        self.workspace_id = workspace_id or None
        self.cancel_on_kill = bool(cancel_on_kill)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                **self._common_kwargs(),
                "action_id": self.action_id,
                "workspace_id": self.workspace_id,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    def _base_payload(self, status: str, message: str, timing: TaskTiming) -> dict[str, Any]:
        return {
            **super()._base_payload(status, message, timing),
            "action_id": self.action_id,
            "workspace_id": self.workspace_id,
        }

    async def _outcome(self, client: AnaplanClient) -> TaskOutcome:
        return await client.get_task_outcome(
            self.model_id, self.action_id, self.anaplan_task_id, workspace_id=self.workspace_id
        )

    async def _poll_once(self, hook: AnaplanHook, timing: TaskTiming) -> dict[str, Any] | None:
        outcome = await hook.arun(self._outcome)
        timing.observe(outcome.task.task_state, outcome.task.creation_time, time.time())
        if not outcome.done:
            return None
        return {
            **self._base_payload(outcome.status.value, outcome.message, timing),
            "failed_rows": outcome.failed_rows,
            "ignored_rows": outcome.ignored_rows,
        }

    async def on_kill(self) -> None:
        """Airflow 3.3+: the user killed the deferred task, so cancel the Anaplan task (Anaplan rolls it back)."""
        if not self.cancel_on_kill:
            return
        hook = self._hook_for_run()

        async def cancel(client: AnaplanClient) -> Any:
            return await client.cancel_task(
                self.model_id, self.action_id, self.anaplan_task_id, workspace_id=self.workspace_id, wait=False
            )

        try:
            outcome = await asyncio.wait_for(hook.arun(cancel), CANCEL_TIMEOUT)
        except Exception as exc:
            self.log.warning("Could not cancel Anaplan task %s: %s; cancel it in Anaplan", self.anaplan_task_id, exc)
            return
        self.log.info(
            "Asked Anaplan to cancel task %s of %s (%s)", self.anaplan_task_id, self.action_id, outcome.status
        )


class AnaplanSyncTaskTrigger(_PollingTrigger):
    """Wait for an ALM sync task on a target model to end.

    ALM tasks cannot be cancelled through Anaplan's API, so neither ``on_kill`` nor a timeout stops the sync: they
    only stop the waiting (the event says so).

    :param anaplan_conn_id: the ``anaplan`` connection.
    :param model_id: the target model's id (the sync task lives there).
    :param task_id: the sync task's id.
    :param poll_interval: seconds between polls.
    :param end_time: wall-clock deadline (epoch seconds); at it the trigger yields ``timeout``. None: no deadline.
    :param timing: a :class:`TaskTiming` dict gathered before deferring.
    :param echo: small JSON data returned unchanged in the event.
    """

    statuses = SYNC_EVENT_STATUSES

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", self._common_kwargs()

    async def _poll_once(self, hook: AnaplanHook, timing: TaskTiming) -> dict[str, Any] | None:
        task = await hook.arun(lambda client: client.get_sync_task(self.model_id, self.anaplan_task_id))
        timing.observe(task.task_state, task.creation_time, time.time())
        if not task.is_terminal:
            return None
        result = task.result
        if task.succeeded:
            status, message = "success", f"ALM sync task {self.anaplan_task_id} on model {self.model_id} completed."
        elif task.task_state == TaskState.CANCELLED:
            status, message = (
                "cancelled",
                f"ALM sync task {self.anaplan_task_id} on model {self.model_id} was cancelled.",
            )
        else:
            reason = str(result.error) if result is not None and result.error is not None else "no details given"
            status, message = (
                "failed",
                f"ALM sync task {self.anaplan_task_id} on model {self.model_id} failed: {reason}",
            )
        return {
            **self._base_payload(status, message, timing),
            "source_revision_id": result.source_revision_id if result is not None else None,
            "target_revision_id": result.target_revision_id if result is not None else None,
        }

    async def on_kill(self) -> None:
        """ALM sync tasks cannot be cancelled through the API: say so, and leave the sync to finish."""
        self.log.warning(
            "The deferred task was killed, but ALM sync task %s on model %s cannot be cancelled through Anaplan's "
            "API; it runs to its end",
            self.anaplan_task_id,
            self.model_id,
        )


__all__ = [
    "SYNC_EVENT_STATUSES",
    "TASK_EVENT_STATUSES",
    "AnaplanSyncTaskTrigger",
    "AnaplanTaskTrigger",
    "TaskTiming",
]
