"""Where the DAG of ``dags/anaplan_bad_input.py`` leaves the error of each failed task (its ``on_failure_callback``
runs in the process of ``dag.test()``), for ``test_bad_input.py`` to check."""

from __future__ import annotations

from typing import Any

#: task id -> the exception that failed the task, as the task runner handed it to the callback.
ERRORS: dict[str, BaseException | None] = {}


def record(context: Any) -> None:
    """``on_failure_callback``: keep the task's exception."""
    ERRORS[context["ti"].task_id] = context.get("exception")
