"""Operators that run a model's actions: :class:`AnaplanRunActionOperator` and :class:`AnaplanRunProcessOperator`.

Both share the policy of :class:`~airflow_provider_anaplan.operators._base.AnaplanBaseOperator`: both modes
(worker or ``deferrable=True``), absolute deadlines that cancel the task, ``on_kill`` cancelling it, reattaching on
retry, the ``fail_on`` row policy, failure dumps saved to ``dump_to``, and a small XCom result.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..client.ids import ObjectKind
from ..exceptions import InvalidInputError
from ._base import AnaplanBaseOperator
from ._io import write_stream

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ..client import AnaplanClient
    from ..client.task_models import TaskOutcome

#: Lines of an optimizer's solution log shown in the task log.
SOLUTION_LOG_TAIL_LINES = 20


class AnaplanRunActionOperator(AnaplanBaseOperator):
    """Run one action of a model and wait for its verdict: a delete-by-selection, a sort, an optimizer, or any other
    action (an import that reads from another model, an export whose file you do not need, a process).

    For an optimizer action the solution log is fetched after the run (it needs the Workspace Administrator role),
    shown in the log, and saved to ``solution_log_to`` when given.

    :param action: the action's id or name (templated).
    :param kind: narrow ``action`` to one kind: ``"action"``, ``"import"``, ``"export"`` or ``"process"``.
    :param mapping_parameters: for imports and processes, e.g. ``{"Version": "Actual"}`` (templated).
    :param solution_log_to: where an optimizer's solution log is saved (templated): a local path or an
        ``ObjectStoragePath``. A log that cannot be fetched then fails the task (otherwise it is only a warning).

    Every parameter of :class:`AnaplanBaseOperator` applies (connection, workspace, model, ``deferrable``,
    ``poll_interval``, ``timeout``, ``fail_on``, ``dump_to``, ``locale``). Use ``deferrable=True`` with a running
    triggerer to free the worker slot while Anaplan works.
    """

    template_fields: Sequence[str] = (
        *AnaplanBaseOperator.template_fields,
        "action",
        "mapping_parameters",
        "solution_log_to",
    )

    def __init__(
        self,
        *,
        action: str,
        kind: str | None = None,
        mapping_parameters: Mapping[str, str] | Sequence[Any] | None = None,
        solution_log_to: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.action = action
        self.kind = kind
        if kind is not None:
            try:
                self.allowed_kinds = (ObjectKind(str(kind).lower()),)
            except ValueError:
                raise InvalidInputError(
                    f"kind must be one of action, import, export or process, got {kind!r}"
                ) from None
            if self.allowed_kinds[0] not in AnaplanBaseOperator.allowed_kinds:
                raise InvalidInputError(f"kind must be one of action, import, export or process, got {kind!r}")
        self.mapping_parameters = mapping_parameters
        self.solution_log_to = solution_log_to
        self._action_type: str | None = None

    async def aresolve(self, client: AnaplanClient, context: Context) -> None:
        await super().aresolve(client, context)
        loc = self.loc
        if loc.action_id.startswith("117"):  # another action: its type decides whether it has a solution log
            actions = await client.list_actions(loc.model_id, loc.workspace_id)
            found = next((a for a in actions if a.id == loc.action_id), None)
            if found is not None:
                self._action_type = str(getattr(found, "action_type", None) or "") or None
                if loc.action_name is None:
                    loc.action_name = found.name

    def echo_state(self) -> dict[str, Any]:
        return {**super().echo_state(), "action_type": self._action_type}

    def restore_echo(self, echo: Mapping[str, Any]) -> None:
        super().restore_echo(echo)
        self._action_type = echo.get("action_type")

    async def afinish(self, client: AnaplanClient, context: Context, outcome: TaskOutcome) -> dict[str, Any]:
        if (self._action_type or "").upper() != "OPTIMIZER" or not outcome.done:
            return {}
        loc = self.loc
        try:
            text = await client.get_solution_log(
                loc.model_id, loc.action_id, outcome.task_id, workspace_id=loc.workspace_id
            )
        except Exception as exc:
            if self.solution_log_to is not None:
                raise
            self.log.warning("Could not fetch the optimizer's solution log: %s", exc)
            return {}
        lines = text.splitlines()
        self.log.info(
            "Solution log of task %s (last %d of %d lines):", outcome.task_id, SOLUTION_LOG_TAIL_LINES, len(lines)
        )
        for line in lines[-SOLUTION_LOG_TAIL_LINES:]:
            self.log.info("  %s", line)
        if self.solution_log_to is None:
            return {}
        written = await write_stream(
            _one_chunk(text.encode("utf-8")),
            self.solution_log_to,
            default_name=f"solution_log_{outcome.task_id}.txt",
            count_rows=False,
            progress=False,
        )
        self.log.info("Solution log saved to %s", written.path)
        return {"solution_log_path": written.path}


class AnaplanRunProcessOperator(AnaplanBaseOperator):
    """Run a process (its imports, exports and actions, in order) and report every step's outcome.

    Each step's verdict and row counts go to the log and to the XCom result (``steps``); the failure dumps of the
    steps that rejected rows are fetched, summarised in the log and saved to ``dump_to`` (one file per step: in a
    directory ``anaplan_dump_<task id>_<step id>.csv``; a file name gets ``_<step id>`` when several steps left one,
    unless it holds placeholders such as ``{step}`` or ``{object_name}``).

    :param process: the process's id (118…) or name (templated).
    :param mapping_parameters: e.g. ``{"Version": "Actual"}`` for the process's imports (templated).

    Every parameter of :class:`AnaplanBaseOperator` applies (connection, workspace, model, ``deferrable``,
    ``poll_interval``, ``timeout``, ``fail_on``, ``dump_to``, ``locale``). Use ``deferrable=True`` with a running
    triggerer to free the worker slot while Anaplan works.
    """

    template_fields: Sequence[str] = (*AnaplanBaseOperator.template_fields, "process", "mapping_parameters")
    action_field = "process"
    allowed_kinds = (ObjectKind.PROCESS,)

    def __init__(
        self,
        *,
        process: str,
        mapping_parameters: Mapping[str, str] | Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.process = process
        self.mapping_parameters = mapping_parameters

    async def afinish(self, client: AnaplanClient, context: Context, outcome: TaskOutcome) -> dict[str, Any]:
        if not outcome.steps:
            self.log.info("The process reported no steps")
        for step in outcome.steps:
            rows = ", ".join(f"{key} {value}" for key, value in sorted(step.counts.items())) or "no row counts"
            report = self.log.info if step.status.value == "success" else self.log.warning
            report("  %s: %s (%s)", step.describe(), step.status.value, rows)
        return {}


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


__all__ = ["AnaplanRunActionOperator", "AnaplanRunProcessOperator"]
