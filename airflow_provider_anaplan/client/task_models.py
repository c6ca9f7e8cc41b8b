"""Tasks on the wire (status, result, nested process results, details) and the one function that judges them.

Anaplan's ``taskState: COMPLETE`` only means *finished*: whether the run did what was asked is spread over
``result.successful``, every ``result.nestedResults[]`` step of a process, ``failureDumpAvailable``, the row counts in
``details`` and, for an outright failure, ``currentStep: "Failed."``. :func:`evaluate_task` reads all of them in one
place and answers a :class:`TaskOutcome`: running, success, partial success (rows rejected or ignored), failed or
cancelled. Everything else in the package (waits, operators, triggers) asks it instead of reading the wire itself.

The models are lenient like those in ``models.py``: unknown fields are ignored and unknown states are kept as strings.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import field_validator

from .errors import TaskCancelledError, TaskFailedError
from .models import WireModel


class TaskState:
    """Values of ``TaskInfo.task_state`` known today (the field accepts any string)."""

    NOT_STARTED = "NOT_STARTED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETE = "COMPLETE"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"
    KNOWN = frozenset({NOT_STARTED, IN_PROGRESS, COMPLETE, CANCELLING, CANCELLED})
    #: The states a task never leaves. ``CANCELLING`` is not one of them.
    TERMINAL = frozenset({COMPLETE, CANCELLED})
    #: The states of a task that still holds, or waits for, the model.
    ACTIVE = frozenset({NOT_STARTED, IN_PROGRESS})


# ---------------------------------------------------------------------------------------------------- wire models
class TaskDetail(WireModel):
    """One entry of ``result.details``: a message and ``values``, a flat list of key/value pairs (row counts)."""

    type: str | None = None
    local_message_text: str | None = None
    occurrences: int | None = None
    values: tuple[str, ...] = ()

    @field_validator("values", mode="before")
    @classmethod
    def _values_as_text(cls, value: Any) -> Any:
        # Anaplan sends strings; a number or a null among them is kept, as text, rather than rejected.
        if isinstance(value, list | tuple):
            return tuple("" if v is None else str(v) for v in value)
        return value

    @property
    def pairs(self) -> dict[str, str]:
        """``values`` as a mapping (``["failedCount", "3", ...]`` → ``{"failedCount": "3", ...}``)."""
        return dict(zip(self.values[::2], self.values[1::2], strict=False))

    @property
    def counts(self) -> dict[str, int]:
        """The pairs whose value is a whole number, as ints (the row counts)."""
        out: dict[str, int] = {}
        for key, raw in self.pairs.items():
            text = raw.strip()
            if text.lstrip("-").isdigit():
                out[key] = int(text)
        return out


class TaskResult(WireModel):
    """``task.result`` of a finished task; a process has one nested result per step it ran."""

    successful: bool | None = None
    failure_dump_available: bool = False
    object_id: str | None = None
    object_name: str | None = None
    details: tuple[TaskDetail, ...] = ()
    nested_results: tuple[TaskResult, ...] = ()


class TaskInfo(WireModel):
    """A task as ``GET …/tasks/{taskId}`` describes it (a task list gives only id, state and creation time)."""

    task_id: str
    task_state: str | None = None
    current_step: str | None = None
    progress: float | None = None
    creation_time: int | None = None
    result: TaskResult | None = None
    cancelled_by: Any = None
    type: str | None = None

    @property
    def is_terminal(self) -> bool:
        """True once the task is COMPLETE or CANCELLED (CANCELLING is not terminal)."""
        return self.task_state in TaskState.TERMINAL

    @property
    def is_active(self) -> bool:
        """True while the task runs or waits for the model (NOT_STARTED or IN_PROGRESS)."""
        return self.task_state in TaskState.ACTIVE


# ---------------------------------------------------------------------------------------------------- outcomes
class OutcomeStatus(enum.StrEnum):
    """What a task came to."""

    RUNNING = "running"  # not finished: NOT_STARTED, IN_PROGRESS, CANCELLING (or a state this client does not know)
    SUCCESS = "success"
    PARTIAL_SUCCESS = "partial_success"  # finished successfully, but some rows were rejected or ignored
    FAILED = "failed"
    CANCELLED = "cancelled"


#: Row-count keys of ``details`` that mean rows did not load as given.
FAILED_COUNT_KEYS = ("failedCount",)
IGNORED_COUNT_KEYS = ("ignoredCount",)


@dataclass(frozen=True)
class StepOutcome:
    """One action's part of a task: the task itself for an import, export or action; one step of a process."""

    object_id: str | None
    object_name: str | None
    status: OutcomeStatus
    successful: bool | None
    failure_dump_available: bool
    counts: Mapping[str, int]
    messages: tuple[str, ...]
    number: int | None = None  # 1-based position in the process, None for a task that is not a process

    @property
    def failed_rows(self) -> int:
        """Rows Anaplan rejected (``failedCount``)."""
        return sum(self.counts.get(k, 0) for k in FAILED_COUNT_KEYS)

    @property
    def ignored_rows(self) -> int:
        """Rows Anaplan ignored (``ignoredCount``)."""
        return sum(self.counts.get(k, 0) for k in IGNORED_COUNT_KEYS)

    def describe(self) -> str:
        """``step 2, import 112000000000 'Employees from Employees.csv'`` or the like."""
        kind = _kind_word(self.object_id)
        name = f" {self.object_name!r}" if self.object_name else ""
        where = f"step {self.number}, " if self.number is not None else ""
        return f"{where}{kind} {self.object_id or '?'}{name}"


@dataclass(frozen=True)
class TaskOutcome:
    """The verdict on one task, from :func:`evaluate_task`; the wire object is kept in ``task``."""

    task: TaskInfo
    status: OutcomeStatus
    message: str
    steps: tuple[StepOutcome, ...] = ()
    action_id: str | None = None
    action_name: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def task_id(self) -> str:
        """The task's id."""
        return self.task.task_id

    @property
    def done(self) -> bool:
        """True once the task is finished (whatever the verdict)."""
        return self.status is not OutcomeStatus.RUNNING

    @property
    def ok(self) -> bool:
        """True for a success, including a partial one (some rows rejected or ignored)."""
        return self.status in (OutcomeStatus.SUCCESS, OutcomeStatus.PARTIAL_SUCCESS)

    @property
    def failure_dump_available(self) -> bool:
        """True when any step left a failure dump (which may still have expired since)."""
        return any(step.failure_dump_available for step in self.steps)

    @property
    def failed_step(self) -> StepOutcome | None:
        """The first step that failed, if any."""
        return next((s for s in self.steps if s.status is OutcomeStatus.FAILED), None)

    @property
    def dump_steps(self) -> tuple[StepOutcome, ...]:
        """The steps that have a failure dump (for a process, fetch each by its ``object_id``)."""
        return tuple(s for s in self.steps if s.failure_dump_available)

    @property
    def failed_rows(self) -> int:
        """Rows rejected across all steps."""
        return sum(s.failed_rows for s in self.steps)

    @property
    def ignored_rows(self) -> int:
        """Rows ignored across all steps."""
        return sum(s.ignored_rows for s in self.steps)

    def raise_for_status(self, *, fail_on_rejected_rows: bool = False) -> TaskOutcome:
        """Raise :class:`TaskCancelledError` or :class:`TaskFailedError` unless the task succeeded; return self.

        A partial success (rows rejected or ignored) passes unless ``fail_on_rejected_rows``.
        """
        if self.status is OutcomeStatus.CANCELLED:
            raise _with_outcome(TaskCancelledError(self.message), self)
        if self.status is OutcomeStatus.FAILED or (
            fail_on_rejected_rows and self.status is OutcomeStatus.PARTIAL_SUCCESS
        ):
            raise _with_outcome(TaskFailedError(self.message), self)
        return self


def _with_outcome(error: TaskFailedError, outcome: TaskOutcome) -> TaskFailedError:
    error.outcome = outcome  # type: ignore[attr-defined]  # for callers that want the steps and counts
    return error


_KIND_BY_PREFIX = {"112": "import", "116": "export", "117": "action", "118": "process"}


def _kind_word(object_id: str | None) -> str:
    return _KIND_BY_PREFIX.get((object_id or "")[:3], "action")


def _flatten(results: Iterable[TaskResult]) -> list[TaskResult]:
    out: list[TaskResult] = []
    for result in results:
        if result.nested_results:
            out.extend(_flatten(result.nested_results))
        else:
            out.append(result)
    return out


def _step(result: TaskResult, number: int | None) -> StepOutcome:
    counts: dict[str, int] = {}
    for detail in result.details:
        for key, value in detail.counts.items():
            counts[key] = counts.get(key, 0) + value
    messages = tuple(d.local_message_text for d in result.details if d.local_message_text)
    failed = sum(counts.get(k, 0) for k in FAILED_COUNT_KEYS)
    ignored = sum(counts.get(k, 0) for k in IGNORED_COUNT_KEYS)
    if result.successful is False:
        status = OutcomeStatus.FAILED
    elif result.failure_dump_available or failed or ignored:
        status = OutcomeStatus.PARTIAL_SUCCESS
    else:
        status = OutcomeStatus.SUCCESS
    return StepOutcome(
        object_id=result.object_id,
        object_name=result.object_name,
        status=status,
        successful=result.successful,
        failure_dump_available=result.failure_dump_available,
        counts=counts,
        messages=messages,
        number=number,
    )


def evaluate_task(
    task: TaskInfo | Mapping[str, Any],
    *,
    action_id: str | None = None,
    action_name: str | None = None,
) -> TaskOutcome:
    """Judge a task: running, success, partial success, failed or cancelled, with the step and counts that say why.

    ``task`` is a :class:`TaskInfo` or the wire's ``task`` object. ``action_id`` and ``action_name`` only improve
    the message. This is the one place the package turns a task status into a verdict.
    """
    info = task if isinstance(task, TaskInfo) else TaskInfo.model_validate(task)
    result = info.result
    action_id = action_id or (result.object_id if result else None)
    action_name = action_name or (result.object_name if result else None)
    subject = f"Task {info.task_id} of {_kind_word(action_id)} {action_id or '?'}"
    if action_name:
        subject += f" {action_name!r}"

    def outcome(status: OutcomeStatus, message: str, steps: tuple[StepOutcome, ...] = ()) -> TaskOutcome:
        totals: dict[str, int] = {}
        for step in steps:
            for key, value in step.counts.items():
                totals[key] = totals.get(key, 0) + value
        return TaskOutcome(info, status, message, steps, action_id, action_name, totals)

    state = info.task_state
    if state == TaskState.CANCELLED:
        who = f" by {info.cancelled_by}" if isinstance(info.cancelled_by, str) and info.cancelled_by else ""
        return outcome(
            OutcomeStatus.CANCELLED,
            f"{subject} was cancelled{who} before it finished; Anaplan rolled its changes back. Run it again "
            "if the data is still needed.",
        )
    if state != TaskState.COMPLETE:
        progress = f", {info.progress:.0%} done" if isinstance(info.progress, int | float) and info.progress > 0 else ""
        return outcome(OutcomeStatus.RUNNING, f"{subject} is {state or 'in an unknown state'}{progress}.")

    failed_outright = (info.current_step or "").strip().lower().startswith("failed")
    if result is None:
        if failed_outright or (info.current_step or "").strip().lower() != "complete.":
            return outcome(
                OutcomeStatus.FAILED,
                f"{subject} finished as {info.current_step or 'COMPLETE'!r} without a result; check the task in "
                "Anaplan before relying on its data.",
            )
        return outcome(OutcomeStatus.SUCCESS, f"{subject} completed.")

    is_process = bool(result.nested_results)
    if is_process:
        steps = tuple(_step(r, n) for n, r in enumerate(_flatten(result.nested_results), start=1))
    else:
        steps = (_step(result, None),)
    failed_steps = [s for s in steps if s.status is OutcomeStatus.FAILED]
    top_failed = result.successful is False or failed_outright

    if failed_steps or top_failed:
        step = failed_steps[0] if failed_steps else None
        text = subject + " failed"
        if step is not None and is_process:
            text += f" at {step.describe()}"
        reason = "; ".join(step.messages if step is not None else _top_messages(result))
        if reason:
            text += f": {reason}"
        dump_step = step if step is not None and step.failure_dump_available else None
        if dump_step is None and result.failure_dump_available:
            dump_step = next((s for s in steps if s.failure_dump_available), None)
        text += "." + _dump_hint(info.task_id, action_id, dump_step, is_process)
        return outcome(OutcomeStatus.FAILED, text, steps)

    partial = [s for s in steps if s.status is OutcomeStatus.PARTIAL_SUCCESS]
    if partial or result.failure_dump_available:
        failed_rows = sum(s.failed_rows for s in steps)
        ignored_rows = sum(s.ignored_rows for s in steps)
        text = f"{subject} completed with {failed_rows} row(s) rejected and {ignored_rows} ignored"
        reasons = [f"{s.describe()}: {'; '.join(s.messages)}" if is_process else "; ".join(s.messages) for s in partial]
        reasons = [r for r in reasons if r.strip(": ")]
        if reasons:
            text += " (" + " | ".join(reasons) + ")"
        dump_step = next((s for s in steps if s.failure_dump_available), None)
        text += "." + _dump_hint(info.task_id, action_id, dump_step, is_process)
        return outcome(OutcomeStatus.PARTIAL_SUCCESS, text, steps)

    summary = "; ".join(m for s in steps for m in s.messages)
    return outcome(
        OutcomeStatus.SUCCESS, f"{subject} completed successfully" + (f": {summary}" if summary else "."), steps
    )


def _top_messages(result: TaskResult) -> tuple[str, ...]:
    return tuple(d.local_message_text for d in result.details if d.local_message_text)


def _dump_hint(task_id: str, action_id: str | None, step: StepOutcome | None, is_process: bool) -> str:
    if step is None:
        return ""
    target = f", object_id={step.object_id!r}" if is_process and step.object_id else ""
    return (
        f" The rejected rows are in a failure dump: fetch it with get_failure_dump(model, {action_id!r}, "
        f"{task_id!r}{target}) soon, as Anaplan removes it after 48 h or at the next clean run."
    )


__all__ = [
    "OutcomeStatus",
    "StepOutcome",
    "TaskDetail",
    "TaskInfo",
    "TaskOutcome",
    "TaskResult",
    "TaskState",
    "evaluate_task",
]
