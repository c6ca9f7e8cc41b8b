"""What every long-running Anaplan operator shares, in one place: :class:`AnaplanBaseOperator`.

**Parameters** every operator takes: ``anaplan_conn_id``, ``workspace_id`` and ``model_id`` (ids or names; default:
the connection's), ``deferrable`` (default ``[operators] default_deferrable``), ``poll_interval`` (5 s), ``timeout``
(seconds or a ``timedelta``; None for none), ``fail_on`` (the row policy, below), ``dump_to`` (where failure dumps
go) and ``locale``. The connection, workspace, model, action and paths are templated.

**One run, two modes.** On the worker the operator polls the Anaplan task itself; with ``deferrable=True`` it starts
the task, pushes its id to XCom (key ``anaplan_task_id``), and defers to :class:`AnaplanTaskTrigger`. Both paths end
in :meth:`AnaplanBaseOperator._finish`, so the verdict, the row policy, the dumps and the XCom value are the same.

**Deadlines** are absolute: ``timeout`` seconds after the try began. On the worker the operator cancels the task at
the deadline and fails. Deferred, the trigger's own ``end_time`` is the deadline and fires before the scheduler's
``defer(timeout=…)`` (which gets :data:`DEFER_TIMEOUT_MARGIN` more), so ``execute_complete`` still gets to cancel the
Anaplan task on the ``timeout`` event. ``execute_complete`` validates its event and fails loudly on anything else.

**Kills.** ``on_kill`` (worker: SIGTERM, ``execution_timeout``) cancels the Anaplan task. While deferred, Airflow
3.3+ calls the trigger's ``on_kill``, which cancels it; below 3.3 nothing runs on a kill, and the task's deadline
cancels it (the trigger yields ``timeout``, the operator cancels when it resumes; ``cleanup`` never cancels).

**Retries reattach.** A retried try follows the Anaplan task its previous try started while that task is still
NOT_STARTED or IN_PROGRESS, instead of starting a second run. Airflow clears XCom between tries, so: on Airflow 3.3+
the task id is kept in the task state store (``context["task_state_store"]``, through ``ResumableJobMixin``, key
:attr:`external_id_key`; a task that already succeeded is not run again either); below 3.3 (no store) a retry
adopts the newest unfinished task of the action created after the DAG run started.

**Row policy** ``fail_on``: ``"rejected"`` (default) fails when rows were rejected (a failure dump exists);
``"warnings"`` also fails on rows with warnings or ignored rows; ``"never"`` fails only when the task itself failed or
was cancelled. Failure dumps are saved to ``dump_to`` (a local path or an ``ObjectStoragePath``: a directory, or a file
name that may hold ``{task_id}``, ``{action_id}``, ``{object_id}``, ``{object_name}``, ``{step}``; see
:func:`~airflow_provider_anaplan.operators._io.render_dump_target`) and summarised in the log (counts and the first
rejected rows) whatever the policy says; without ``dump_to`` the first rejected rows are only logged.

**XCom** return value (small): task id, action, model, outcome, row counts, time queued and running, dump paths
(and ``steps`` for a process). A failing run pushes the same dict under key ``anaplan_outcome`` before it raises.

**Extension points** (``AnaplanUploadAndImportOperator``, ``AnaplanExportAndDownloadOperator``,
``AnaplanALMSyncOperator`` build on these; override only what differs):

* ``action_field`` / ``allowed_kinds``: which attribute names the action and which kinds it may be.
* ``async aresolve(client, context)``: turn names into ids; must set ``self._loc`` (a :class:`Location`).
* ``async astart(client, context) -> str``: start the Anaplan task and return its id (e.g. upload first).
* ``async aget_outcome(client, task_id) -> TaskOutcome``: the task's verdict now (ALM: map the sync task to a
  ``TaskOutcome(TaskInfo(...), OutcomeStatus.X, message)``).
* ``async acancel(client, task_id)``: cancel the task (ALM: cannot, log only).
* ``make_trigger(task_id, end_time, timing, echo) -> BaseTrigger``: the trigger to defer to.
* ``echo_state() -> dict`` / ``restore_echo(echo)``: small JSON state carried through the deferral (in the trigger's
  kwargs and back in its event; ``defer(kwargs=…)`` is not used because ``dag.test()`` drops it).
* ``async afinish(client, context, outcome) -> dict``: work after the verdict (downloads, solution logs); called for
  every finished task before the row policy raises (check ``outcome.ok``); its dict is merged into the XCom value.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import dataclasses
import io
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseOperator, ResumableJobMixin, conf

from ..client import errors as client_errors
from ..client.ids import ObjectKind
from ..client.task_models import OutcomeStatus, TaskState
from ..client.tasks import mapping_parameters_body
from ..exceptions import (
    AnaplanError,
    AnaplanTimeoutError,
    ConfigurationError,
    InvalidInputError,
    NotFoundError,
    TaskCancelledError,
    TaskFailedError,
)
from ..hooks.anaplan import AnaplanHook
from ..links import AnaplanModelLink
from ..triggers.anaplan import TASK_EVENT_STATUSES, AnaplanTaskTrigger, TaskTiming
from ._io import check_location, save_failure_dumps

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger

    from ..client import AnaplanClient
    from ..client.task_models import TaskOutcome

T = TypeVar("T")

FAIL_ON_CHOICES = ("rejected", "warnings", "never")
#: XCom key of the Anaplan task id, pushed as soon as the task is started or reattached (before any deferral).
XCOM_TASK_ID_KEY = "anaplan_task_id"
#: XCom key of the result dict when the run fails (the return value is only pushed on success).
XCOM_OUTCOME_KEY = "anaplan_outcome"
#: Default ``timeout``: how long one try waits for its Anaplan task.
DEFAULT_TIMEOUT = 24 * 3600.0
#: Seconds the scheduler's ``defer(timeout=…)`` gets beyond the trigger's own deadline (plus a few poll intervals).
DEFER_TIMEOUT_MARGIN = 60.0
#: Seconds ``on_kill`` waits for the cancel request.
KILL_CANCEL_TIMEOUT = 30.0
#: Tolerated clock skew between Airflow and Anaplan when a retry (below Airflow 3.3) looks for its earlier task.
REATTACH_CLOCK_SKEW = 5.0
#: How many rejected rows of a failure dump are shown in the log.
DUMP_PREVIEW_ROWS = 5
_DUMP_PREVIEW_BYTES = 64 * 1024
_SUCCEEDED = "SUCCEEDED"  # get_job_status's word for "finished and passes the row policy"


# ---------------------------------------------------------------------------------------------------- policy
def warning_rows(outcome: Any) -> int:
    """Rows loaded with warnings (``warningsRowCount`` in the task's details), 0 when not reported."""
    counts = getattr(outcome, "counts", None) or {}
    return int(counts.get("warningsRowCount", 0) or 0)


def check_fail_on(fail_on: str) -> str:
    if fail_on not in FAIL_ON_CHOICES:
        raise InvalidInputError(f"fail_on must be one of {', '.join(FAIL_ON_CHOICES)}, got {fail_on!r}")
    return fail_on


def policy_failure(outcome: TaskOutcome, fail_on: str) -> str | None:
    """Why this finished task fails the run under ``fail_on``, or None when it passes. The one row policy."""
    if outcome.status is OutcomeStatus.CANCELLED or outcome.status is OutcomeStatus.FAILED:
        return outcome.message
    if fail_on == "never":
        return None
    failed = getattr(outcome, "failed_rows", 0)
    if failed or getattr(outcome, "failure_dump_available", False):
        return f"{outcome.message} (fail_on={fail_on!r}: rejected rows fail the task)"
    if fail_on == "warnings":
        ignored, warned = getattr(outcome, "ignored_rows", 0), warning_rows(outcome)
        if ignored or warned:
            return (
                f"{outcome.message} ({warned} row(s) with warnings, {ignored} ignored; fail_on='warnings' fails "
                "the task)"
            )
    return None


def raise_for_policy(outcome: TaskOutcome, fail_on: str) -> None:
    """Raise the Airflow twin that fits the verdict when ``policy_failure`` says the run fails."""
    reason = policy_failure(outcome, fail_on)
    if reason is None:
        return
    error: TaskFailedError
    error = TaskCancelledError(reason) if outcome.status is OutcomeStatus.CANCELLED else TaskFailedError(reason)
    error.outcome = outcome  # type: ignore[attr-defined]
    raise error


def outcome_summary(outcome: TaskOutcome, timing: TaskTiming | None = None, **extra: Any) -> dict[str, Any]:
    """The small XCom dict of a finished task."""
    counts = dict(getattr(outcome, "counts", None) or {})
    summary: dict[str, Any] = {
        "task_id": outcome.task_id,
        "action_id": outcome.action_id,
        "action_name": outcome.action_name,
        "outcome": outcome.status.value,
        "rows": {
            "loaded": counts.get("successRowCount"),
            "failed": getattr(outcome, "failed_rows", 0),
            "ignored": getattr(outcome, "ignored_rows", 0),
            "warnings": warning_rows(outcome),
        },
    }
    if timing is not None:
        summary["queued_seconds"] = timing.queued_seconds
        summary["running_seconds"] = timing.running_seconds
    if len(outcome.steps) > 1 or any(step.number is not None for step in outcome.steps):
        summary["steps"] = [
            {
                "number": step.number,
                "object_id": step.object_id,
                "name": step.object_name,
                "outcome": step.status.value,
                "failed_rows": step.failed_rows,
                "ignored_rows": step.ignored_rows,
            }
            for step in outcome.steps
        ]
    summary.update(extra)
    return summary


def validate_event(event: Any, statuses: frozenset[str], expected_task_id: str | None = None) -> dict[str, Any]:
    """The trigger event as a dict, or an :class:`AnaplanError` (an AirflowException) saying what is wrong."""
    if not isinstance(event, Mapping):
        raise AnaplanError(
            f"The trigger resumed this task without a usable event ({event!r}); the Anaplan task's outcome is "
            "unknown. Check it in Anaplan (its id is in XCom under 'anaplan_task_id')."
        )
    status = event.get("status")
    if status not in statuses:
        raise AnaplanError(
            f"Unexpected trigger event status {status!r} (expected one of {sorted(statuses)}): {event!r}"
        )
    for key in ("task_id", "model_id"):
        if not isinstance(event.get(key), str) or not event.get(key):
            raise AnaplanError(f"The trigger event has no {key}: {event!r}")
    if expected_task_id is not None and event["task_id"] != expected_task_id:
        raise AnaplanError(f"The trigger event is about task {event['task_id']}, not {expected_task_id}: {event!r}")
    return dict(event)


def check_seconds(value: float | timedelta | None, name: str, *, zero: bool = False) -> float | None:
    """Seconds from a number or a ``timedelta`` (> 0; >= 0 with ``zero``); None stays None."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0 or (value == 0 and not zero):
        bound = ">= 0" if zero else "> 0"
        quoted = " (a number, not a string)" if isinstance(value, str) else ""
        raise InvalidInputError(f"{name} must be a number of seconds {bound} (or a timedelta){quoted}, got {value!r}")
    return float(value)


def check_flag(name: str, value: Any, *, optional: bool = False) -> Any:
    """``value`` when it is True or False (or None with ``optional``): ``bool("false")`` is True, so no coercion."""
    if isinstance(value, bool) or (optional and value is None):
        return value
    allowed = "True, False or None" if optional else "True or False"
    raise InvalidInputError(f"{name} must be {allowed}, got {type(value).__name__} {value!r}")


def _rendered_hint(value: Any) -> str:
    """What went wrong with a templated value, for an error message."""
    if isinstance(value, str):
        return " (its template rendered to an empty string?)" if not value.strip() else ""
    if isinstance(value, Mapping | list | tuple | set):
        return (
            f", got a {type(value).__name__} {value!r} (a Jinja expression rendered as a native object keeps its "
            "type: pick the name out of it, e.g. '{{ params.cfg.name }}')"
        )
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f", got the number {value!r} (write ids in quotes: they are strings)"
    return f", got {type(value).__name__} {value!r}"


def check_ref(name: str, value: Any, what: str, *, optional: bool = False) -> Any:
    """A templated id or name as rendered: a non-empty string (or None with ``optional``, meaning the default)."""
    if (optional and value is None) or (isinstance(value, str) and value.strip()):
        return value
    shown = f", got {value!r}" if isinstance(value, str) else ""
    default = " or None for the default" if optional else ""
    raise InvalidInputError(f"{name} must be {what} as a non-empty string{default}{shown}{_rendered_hint(value)}")


def check_mapping_parameters(value: Any) -> None:
    """``mapping_parameters`` as rendered: None, a dict of non-empty strings, or a list of pairs."""
    if value is None:
        return
    if isinstance(value, str):
        raise InvalidInputError(
            f"mapping_parameters must be a dict such as {{'Version': 'Actual'}}, got the text {value!r}. A template "
            "renders to text: template the values ({'Version': '{{ params.version }}'}), or set "
            "render_template_as_native_obj=True on the DAG to keep a rendered dict a dict."
        )
    try:
        mapping_parameters_body(value)
    except client_errors.InvalidInputError as exc:
        raise InvalidInputError(f"mapping_parameters: {exc.message}") from None


@contextlib.contextmanager
def naming(field: str) -> Iterator[None]:
    """Errors about the user's value raised inside (a name not found, an id of the wrong kind, a malformed value) get
    ``<field>: `` in front of their message, so that the message names the parameter to fix."""
    try:
        yield
    except client_errors.InvalidInputError as exc:
        if not isinstance(exc, client_errors.ConfigurationError):
            prefix_message(exc, field)
        raise


def prefix_message(exc: client_errors.AnaplanError, field: str) -> None:
    message = exc.message
    if not message.startswith(field):
        exc.message = f"{field}: {message}"
        exc.args = (exc.message,)


def run_hook(owner: Any, fn: Callable[[AnaplanClient], Awaitable[T]]) -> T:
    """``owner.hook.run(fn)`` (the hook is built, and reads its connection, on first use), with a connection that does
    not exist answered by a ``ConfigurationError`` naming ``anaplan_conn_id``."""
    try:
        return owner.hook.run(fn)
    except AirflowNotFoundException as exc:
        raise ConfigurationError(
            f"anaplan_conn_id: there is no Airflow connection {owner.anaplan_conn_id!r}. Create it (connection type "
            "'anaplan') or set anaplan_conn_id to an existing one."
        ) from exc


async def alocate(
    hook: AnaplanHook, client: AnaplanClient, workspace: Any, model: Any, model_field: str = "model_id"
) -> tuple[str | None, str]:
    """The hook's ``aresolve_location``, every error naming the parameter at fault (``workspace_id`` or the model's)."""
    workspace = workspace or hook.workspace_id
    with naming("workspace_id"):
        workspace_id = await client.resolve_workspace(workspace) if workspace else None
    with naming(model_field):
        return await hook.aresolve_location(client, workspace_id, model)


@dataclasses.dataclass
class Location:
    """Where the operator's Anaplan task lives, as ids (resolved once per try, carried through the deferral)."""

    model_id: str
    action_id: str
    workspace_id: str | None = None
    action_name: str | None = None

    def describe(self) -> str:
        name = f" ({self.action_name})" if self.action_name else ""
        return f"{self.action_id}{name} in model {self.model_id}"


# ---------------------------------------------------------------------------------------------------- the base
class AnaplanBaseOperator(ResumableJobMixin, BaseOperator):
    """Base of the long-running Anaplan operators: see the module docstring for the shared policy.

    :param anaplan_conn_id: the ``anaplan`` connection (templated).
    :param workspace_id: workspace id or name (templated); default: the connection's.
    :param model_id: model id or name (templated); default: the connection's.
    :param deferrable: wait in the triggerer instead of on the worker (needs a running triggerer); default
        ``[operators] default_deferrable``.
    :param poll_interval: seconds between status polls (Anaplan advises 5).
    :param timeout: seconds (or a ``timedelta``) this try waits for its Anaplan task before cancelling it and
        failing; None waits without limit.
    :param fail_on: ``"rejected"`` (default), ``"warnings"`` or ``"never"``: which rows fail the task.
    :param dump_to: where failure dumps are saved (templated): a local path or an ``ObjectStoragePath``; a directory
        (existing, or ending with ``/``) or a file name, which may hold ``{task_id}``, ``{object_id}``, ``{step}``...
        None: the first rejected rows are only shown in the log.
    :param locale: the locale of the task's messages.
    """

    template_fields: Sequence[str] = ("anaplan_conn_id", "workspace_id", "model_id", "dump_to")
    ui_color = "#d4e8fb"
    operator_extra_links = (AnaplanModelLink(),)

    #: Key of the Anaplan task id in the task state store (Airflow 3.3+). Renaming it breaks in-flight retries.
    external_id_key = "anaplan_task_id"
    #: The attribute holding the action (id or name), and the kinds of action it may name.
    action_field: ClassVar[str] = "action"
    allowed_kinds: ClassVar[tuple[ObjectKind, ...]] = (
        ObjectKind.IMPORT,
        ObjectKind.EXPORT,
        ObjectKind.ACTION,
        ObjectKind.PROCESS,
    )
    #: Event statuses ``execute_complete`` accepts (those of the trigger :meth:`make_trigger` returns).
    event_statuses: ClassVar[frozenset[str]] = TASK_EVENT_STATUSES

    def __init__(
        self,
        *,
        anaplan_conn_id: str = AnaplanHook.default_conn_name,
        workspace_id: str | None = None,
        model_id: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 5.0,
        timeout: float | timedelta | None = DEFAULT_TIMEOUT,
        fail_on: str = "rejected",
        dump_to: Any = None,
        locale: str = "en_US",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.anaplan_conn_id = anaplan_conn_id
        self.workspace_id = workspace_id
        self.model_id = model_id
        self.deferrable = check_flag("deferrable", deferrable)
        self.poll_interval = check_seconds(poll_interval, "poll_interval")
        self.timeout = check_seconds(timeout, "timeout")
        self.fail_on = check_fail_on(fail_on)
        if dump_to is not None:
            check_location("dump_to", dump_to)
        self.dump_to = dump_to
        self.locale = locale
        # Per-try state (never serialized): set by execute()/execute_complete().
        self._loc: Location | None = None
        self._task_id: str | None = None
        self._finished = False
        self._deadline: float | None = None
        self._timing = TaskTiming()
        self._results: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------------------------------ plumbing
    @cached_property
    def hook(self) -> AnaplanHook:
        """The hook of ``anaplan_conn_id`` (reads and checks the connection when first used)."""
        return AnaplanHook(self.anaplan_conn_id)

    def _run(self, fn: Callable[[AnaplanClient], Awaitable[T]]) -> T:
        """Run a client coroutine to completion on the worker; client errors come out as Airflow twins."""
        return run_hook(self, fn)

    @property
    def loc(self) -> Location:
        if self._loc is None:
            raise AnaplanError(f"{type(self).__name__}: the Anaplan action was not resolved yet")
        return self._loc

    @property
    def action_value(self) -> str:
        """What the user gave for the action (after templating)."""
        return getattr(self, self.action_field)

    # ------------------------------------------------------------------------------------------ extension points
    def check_rendered(self) -> None:
        """Check the parameters as rendered (templates are rendered just before ``execute``), before any call; raise
        an ``InvalidInputError`` naming the parameter at fault. Subclasses extend it."""
        check_ref("anaplan_conn_id", self.anaplan_conn_id, "the id of an 'anaplan' connection")
        check_ref("workspace_id", self.workspace_id, "a workspace id or name", optional=True)
        check_ref("model_id", self.model_id, "a model id or name", optional=True)
        kinds = "/".join(kind.value for kind in self.allowed_kinds)
        article = "an" if kinds[0] in "aeiou" else "a"
        check_ref(self.action_field, self.action_value, f"the id or name of {article} {kinds}")
        check_mapping_parameters(getattr(self, "mapping_parameters", None))
        if self.dump_to is not None:
            check_location("dump_to", self.dump_to, writable=True)

    async def aresolve(self, client: AnaplanClient, context: Context) -> None:
        """Resolve the workspace, model and action to ids (one lookup per name) into ``self._loc``."""
        workspace_id, model_id = await alocate(self.hook, client, self.workspace_id, self.model_id)
        with naming(self.action_field):
            ref = await client.resolve_action(
                model_id,
                self.action_value,
                workspace_id=workspace_id,
                allowed=self.allowed_kinds,
                call=type(self).__name__,
            )
        if getattr(self, "mapping_parameters", None) and ref.kind not in (ObjectKind.IMPORT, ObjectKind.PROCESS):
            raise InvalidInputError(
                f"mapping_parameters apply to imports and processes only, and {ref.action_id} is an "
                f"{ref.kind.value}: remove mapping_parameters"
            )
        self._loc = Location(model_id, ref.action_id, workspace_id, ref.name)

    async def astart(self, client: AnaplanClient, context: Context) -> str:
        """Start the Anaplan task; its id."""
        loc = self.loc
        outcome = await client.run_action(
            loc.model_id,
            loc.action_id,
            workspace_id=loc.workspace_id,
            wait=False,
            mapping_parameters=getattr(self, "mapping_parameters", None),
            locale=self.locale,
        )
        return outcome.task_id

    async def aget_outcome(self, client: AnaplanClient, task_id: str) -> TaskOutcome:
        """The task's verdict now (``RUNNING`` while it runs)."""
        loc = self.loc
        outcome = await client.get_task_outcome(loc.model_id, loc.action_id, task_id, workspace_id=loc.workspace_id)
        if loc.action_name and not outcome.action_name:
            outcome = dataclasses.replace(outcome, action_name=loc.action_name)
        return outcome

    async def acancel(self, client: AnaplanClient, task_id: str) -> Any:
        """Ask Anaplan to cancel the task (it rolls the task's changes back); do not wait for it."""
        loc = self.loc
        return await client.cancel_task(loc.model_id, loc.action_id, task_id, workspace_id=loc.workspace_id, wait=False)

    def make_trigger(
        self, task_id: str, end_time: float | None, timing: dict[str, Any], echo: dict[str, Any]
    ) -> BaseTrigger:
        """The trigger this operator defers to."""
        loc = self.loc
        return AnaplanTaskTrigger(
            anaplan_conn_id=self.anaplan_conn_id,
            model_id=loc.model_id,
            action_id=loc.action_id,
            task_id=task_id,
            workspace_id=loc.workspace_id,
            poll_interval=self.poll_interval,
            end_time=end_time,
            timing=timing,
            echo=echo,
        )

    def echo_state(self) -> dict[str, Any]:
        """JSON state carried through the deferral; subclasses extend the dict (keep it small, no secrets)."""
        return {"action_name": self.loc.action_name, "deadline": self._deadline}

    def restore_echo(self, echo: Mapping[str, Any]) -> None:
        """Take back :meth:`echo_state` after the deferral."""
        deadline = echo.get("deadline")
        self._deadline = float(deadline) if isinstance(deadline, int | float) else None

    async def afinish(self, client: AnaplanClient, context: Context, outcome: TaskOutcome) -> dict[str, Any]:
        """Work after the verdict (called before the row policy raises); extra XCom fields."""
        return {}

    # ------------------------------------------------------------------------------------------ execute
    def execute(self, context: Context) -> Any:
        self._begin(context)
        if self.deferrable:
            return self._execute_deferrable(context)
        if self.durable and context.get("task_state_store") is not None:
            return self.execute_resumable(context)  # Airflow 3.3+: reattach through the task state store
        return self.poll_until_complete(self.submit_job(context), context)

    def _begin(self, context: Context) -> None:
        self.check_rendered()
        self._deadline = time.time() + self.timeout if self.timeout is not None else None
        self._run(lambda client: self.aresolve(client, context))
        where = f" of workspace {self.loc.workspace_id}" if self.loc.workspace_id else ""
        self.log.info("Anaplan %s%s", self.loc.describe(), where)
        # The "Anaplan model" extra link (recorded before any deferral; best effort, never fails the task).
        AnaplanModelLink.persist(context, workspace_id=self.loc.workspace_id, model_id=self.loc.model_id)

    def _execute_deferrable(self, context: Context) -> Any:
        task_id: str | None = None
        store = context.get("task_state_store") if self.durable else None
        if store is not None:
            prior = store.get(self.external_id_key)
            if isinstance(prior, str) and prior:
                status = self.get_job_status(prior, context)
                if self.is_job_active(status) or self.is_job_succeeded(status):
                    self.log.info("Reattaching to Anaplan task %s that an earlier try started (%s)", prior, status)
                    task_id = prior
                    self._attach(context, task_id)
        if task_id is None:
            task_id = self.submit_job(context)
            if store is not None:
                store.set(self.external_id_key, task_id)
        outcome = self._poll(task_id)
        if outcome.done:
            return self._finish(context, task_id, outcome)
        end_time = self._deadline
        defer_timeout = None
        if end_time is not None:
            margin = DEFER_TIMEOUT_MARGIN + 3 * self.poll_interval
            defer_timeout = timedelta(seconds=max(0.0, end_time - time.time()) + margin)
        self.log.info("Deferring: the triggerer polls Anaplan task %s every %g s", task_id, self.poll_interval)
        self.defer(
            trigger=self.make_trigger(task_id, end_time, self._timing.to_dict(), self.echo_state()),
            method_name="execute_complete",
            timeout=defer_timeout,
        )

    def execute_complete(self, context: Context, event: Any = None) -> Any:
        """Resume after the trigger: validate its event, then finish like the worker path (or cancel on timeout)."""
        payload = validate_event(event, self.event_statuses)
        echo = payload.get("echo") if isinstance(payload.get("echo"), Mapping) else {}
        self._loc = Location(
            model_id=payload["model_id"],
            action_id=payload.get("action_id") or "",
            workspace_id=payload.get("workspace_id"),
            action_name=echo.get("action_name"),
        )
        self.restore_echo(echo)
        self._task_id = task_id = payload["task_id"]
        self._timing = TaskTiming.from_dict(payload.get("timing"))
        status = payload["status"]
        if status == "timeout":
            self._fail_on_deadline(task_id)
        if status == "error":
            raise AnaplanError(f"{payload.get('message') or 'The trigger failed'} (Anaplan task {task_id})")
        outcome = self._poll(task_id)
        if not outcome.done:
            raise AnaplanError(
                f"The trigger reported Anaplan task {task_id} as {status}, but it is still {outcome.task.task_state}"
            )
        return self._finish(context, task_id, outcome)

    # ------------------------------------------------------------------------------------------ ResumableJobMixin
    def submit_job(self, context: Context) -> str:
        """Start the Anaplan task, or (below Airflow 3.3, on a retry) adopt the one an earlier try left running."""
        task_id = None
        if context.get("task_state_store") is None:
            task_id = self._previous_try_task(context)
        if task_id is None:
            task_id = self._run(lambda client: self.astart(client, context))
            self.log.info("Started Anaplan task %s of %s", task_id, self.loc.describe())
        self._attach(context, task_id)
        return task_id

    def get_job_status(self, external_id: Any, context: Context) -> str:
        """``NOT_STARTED``/``IN_PROGRESS``/``CANCELLING`` while it runs; ``SUCCEEDED`` when it passed; else why not."""
        try:
            outcome = self._poll(str(external_id))
        except NotFoundError:
            return "UNKNOWN"
        if not outcome.done:
            return outcome.task.task_state or "UNKNOWN"
        return _SUCCEEDED if policy_failure(outcome, self.fail_on) is None else outcome.status.value.upper()

    def is_job_active(self, status: str) -> bool:
        return status in TaskState.ACTIVE

    def is_job_succeeded(self, status: str) -> bool:
        return status == _SUCCEEDED

    def poll_until_complete(self, external_id: Any, context: Context) -> dict[str, Any]:
        """Wait on the worker until the task ends (cancelling it at the deadline); the XCom result."""
        task_id = str(external_id)
        self._attach(context, task_id)
        while True:
            outcome = self._poll(task_id)
            if outcome.done:
                return self._finish(context, task_id, outcome)
            now = time.time()
            if self._deadline is not None and now >= self._deadline:
                self._fail_on_deadline(task_id)
            wait = self.poll_interval if self._deadline is None else min(self.poll_interval, self._deadline - now)
            time.sleep(max(0.0, wait))

    def get_job_result(self, external_id: Any, context: Context) -> dict[str, Any]:
        task_id = str(external_id)
        if task_id not in self._results:  # a task a previous try saw succeed
            self._attach(context, task_id)
            outcome = self._poll(task_id)
            return self._finish(context, task_id, outcome)
        return self._results[task_id]

    # ------------------------------------------------------------------------------------------ steps
    def _attach(self, context: Context, task_id: str) -> None:
        """Remember the task and push its id to XCom (before any deferral), once per try."""
        if self._task_id == task_id:
            return
        self._task_id = task_id
        self._finished = False
        ti = context.get("ti")
        if ti is not None:
            ti.xcom_push(key=XCOM_TASK_ID_KEY, value=task_id)

    def _poll(self, task_id: str) -> TaskOutcome:
        outcome = self._run(lambda client: self.aget_outcome(client, task_id))
        self._timing.observe(outcome.task.task_state, outcome.task.creation_time, time.time())
        return outcome

    def _previous_try_task(self, context: Context) -> str | None:
        """Below Airflow 3.3: on a retry, the newest unfinished task of the action created after the DAG run began."""
        ti = context.get("ti")
        try_number = getattr(ti, "try_number", None)
        if not isinstance(try_number, int) or try_number <= 1:
            return None
        dag_run = context.get("dag_run")
        started = getattr(dag_run, "start_date", None) or getattr(dag_run, "run_after", None)
        if started is None:
            return None
        since_ms = (started.timestamp() - REATTACH_CLOCK_SKEW) * 1000
        loc = self.loc
        tasks = self._run(lambda client: client.list_tasks(loc.model_id, loc.action_id, workspace_id=loc.workspace_id))
        candidates = [t for t in tasks if t.is_active and (t.creation_time or 0) >= since_ms]
        if not candidates:
            return None
        newest = max(candidates, key=lambda t: t.creation_time or 0)
        self.log.info(
            "Try %s: reattaching to Anaplan task %s (%s), started after this DAG run began by an earlier try",
            try_number,
            newest.task_id,
            newest.task_state,
        )
        return newest.task_id

    def _fail_on_deadline(self, task_id: str) -> None:
        note = self._cancel(task_id)
        raise AnaplanTimeoutError(
            f"Anaplan task {task_id} of {self.loc.describe()} did not finish within the timeout of "
            f"{self.timeout:g} s ({self._timing.describe()}). {note}"
        )

    def _cancel(self, task_id: str) -> str:
        try:
            self._run(lambda client: self.acancel(client, task_id))
        except Exception as exc:
            self.log.warning("Could not cancel Anaplan task %s: %s", task_id, exc)
            return f"Cancelling it failed ({exc}); cancel it in Anaplan."
        self.log.info("Asked Anaplan to cancel task %s (its changes are rolled back)", task_id)
        return "It was cancelled; Anaplan rolls its changes back."

    def _finish(self, context: Context, task_id: str, outcome: TaskOutcome) -> dict[str, Any]:
        """The one ending of both modes: log, dumps, extra work, row policy, XCom value."""
        self._finished = True
        self._timing.observe(outcome.task.task_state, outcome.task.creation_time, time.time())
        log = self.log.info if outcome.ok else self.log.warning
        log("%s", outcome.message)
        self.log.info("Anaplan task %s: %s", task_id, self._timing.describe())
        dump_paths = self._save_dumps(outcome, task_id)
        failure = policy_failure(outcome, self.fail_on)
        try:
            extra = self._run(lambda client: self.afinish(client, context, outcome)) or {}
        except Exception as exc:
            if failure is None:
                raise
            self.log.warning("After the failed task, %s failed too: %s", type(self).__name__, exc)
            extra = {}
        loc = self.loc
        result = outcome_summary(
            outcome,
            self._timing,
            model_id=loc.model_id,
            workspace_id=loc.workspace_id,
            dump_paths=dump_paths,
            **extra,
        )
        result["action_id"] = result.get("action_id") or loc.action_id
        result["action_name"] = result.get("action_name") or loc.action_name
        self._results[task_id] = result
        if failure is not None:
            ti = context.get("ti")
            if ti is not None:
                ti.xcom_push(key=XCOM_OUTCOME_KEY, value=result)
            raise_for_policy(outcome, self.fail_on)
        return result

    # ------------------------------------------------------------------------------------------ dumps
    def _save_dumps(self, outcome: TaskOutcome, task_id: str) -> list[str]:
        """Save every failure dump to ``dump_to`` (``_io.save_failure_dumps``: streamed, summarised in the log), or
        without ``dump_to`` show the first rejected rows in the log only. Never raises: the verdict matters more."""
        if not outcome.dump_steps:
            return []
        loc = self.loc
        if self.dump_to is None:
            for step in outcome.dump_steps:
                self._preview_dump(outcome, step)
            return []
        try:
            summaries = save_failure_dumps(
                self.hook,
                loc.model_id,
                loc.action_id,
                outcome,
                self.dump_to,
                workspace_id=loc.workspace_id,
                logger=self.log,
            )
        except Exception as exc:
            self.log.warning("Could not save the failure dumps of task %s to %s: %s", task_id, self.dump_to, exc)
            return []
        return [summary.path for summary in summaries if summary.saved and summary.path]

    def _preview_dump(self, outcome: TaskOutcome, step: Any) -> None:
        """Log the first rejected rows of a dump that is not kept (reads only its beginning)."""
        loc = self.loc
        is_process = any(s.number is not None for s in outcome.steps)

        async def head(client: AnaplanClient) -> bytes:
            chunks = client.stream_failure_dump(
                loc.model_id,
                loc.action_id,
                outcome.task_id,
                object_id=step.object_id if is_process else None,
                workspace_id=loc.workspace_id,
            )
            data = bytearray()
            try:
                async for chunk in chunks:
                    data.extend(chunk)
                    if len(data) >= _DUMP_PREVIEW_BYTES:
                        break
            finally:
                await chunks.aclose()
            return bytes(data[:_DUMP_PREVIEW_BYTES])

        try:
            data = self._run(head)
        except Exception as exc:
            self.log.warning("Could not read the failure dump of %s: %s", step.describe(), exc)
            return
        rows = list(csv.reader(io.StringIO(data.decode("utf-8", errors="replace"))))
        if len(data) >= _DUMP_PREVIEW_BYTES and len(rows) > 1:
            rows = rows[:-1]  # the last row may be cut off
        self.log.warning(
            "Failure dump of %s: %d row(s) rejected; not saved (set dump_to to keep it)",
            step.describe(),
            step.failed_rows,
        )
        for row in rows[: DUMP_PREVIEW_ROWS + 1]:
            self.log.warning("  %s", ", ".join(row))

    # ------------------------------------------------------------------------------------------ kill
    def on_kill(self) -> None:
        """Cancel the Anaplan task this try started or reattached (worker side: SIGTERM, ``execution_timeout``).

        Runs in a thread of its own: the signal may arrive while the worker's event loop is running a poll.
        """
        task_id = self._task_id
        if not task_id or self._finished or self._loc is None:
            return
        self.log.info("Task killed: cancelling Anaplan task %s", task_id)
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="anaplan-cancel")
        try:
            pool.submit(self._cancel, task_id).result(timeout=KILL_CANCEL_TIMEOUT)
        except concurrent.futures.TimeoutError:
            self.log.warning(
                "Cancelling Anaplan task %s took over %g s; check it in Anaplan", task_id, KILL_CANCEL_TIMEOUT
            )
        finally:
            pool.shutdown(wait=False)


__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFER_TIMEOUT_MARGIN",
    "FAIL_ON_CHOICES",
    "XCOM_OUTCOME_KEY",
    "XCOM_TASK_ID_KEY",
    "AnaplanBaseOperator",
    "Location",
    "alocate",
    "check_fail_on",
    "check_flag",
    "check_mapping_parameters",
    "check_ref",
    "check_seconds",
    "naming",
    "outcome_summary",
    "policy_failure",
    "raise_for_policy",
    "run_hook",
    "validate_event",
    "warning_rows",
]
