"""Pydantic models of the ALM API's wire objects: revisions, the models a revision reached, ALM tasks and reports,
and the result of a promotion.

Lenient like :mod:`.models`: camelCase aliases, unknown fields ignored, enum-like fields kept as plain strings, missing
collections read as empty. ALM task ``creationTime`` is epoch milliseconds on the wire (the community spec's
date-time string is wrong); an ISO string is accepted too and turned into milliseconds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

from .models import WireModel


class AlmTaskState:
    """Values of ``AlmTask.task_state`` known today (the field accepts any string)."""

    NOT_STARTED = "NOT_STARTED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETE = "COMPLETE"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"
    TERMINAL = frozenset({COMPLETE, CANCELLED})
    KNOWN = frozenset({NOT_STARTED, IN_PROGRESS, COMPLETE, CANCELLING, CANCELLED})


class Revision(WireModel):
    """A revision (tag) as a model's history shows it; ``applied_on``/``applied_by``: when it reached that model."""

    id: str
    name: str | None = None
    description: str | None = None
    created_on: str | None = None
    created_by: str | None = None
    creation_method: str | None = None
    applied_on: str | None = None
    applied_by: str | None = None


class AppliedToModel(WireModel):
    """A model a revision has reached (``…/revisions/{id}/appliedToModels``); the first is where it was created."""

    model_id: str | None = None
    model_name: str | None = None
    workspace_id: str | None = None
    applied_by: str | None = None
    applied_on: str | None = None
    applied_method: str | None = None
    model_deleted: bool = False


class AlmTaskError(WireModel):
    """Why an ALM task failed: a title and a message."""

    title: str | None = None
    message_text: str | None = None
    subtitle: str | None = None

    def __str__(self) -> str:
        parts = [p for p in (self.title, self.subtitle, self.message_text) if p]
        return ": ".join(parts) if parts else "no details given"


class AlmTaskResult(WireModel):
    """The outcome of a finished ALM task: ``successful``, the two revisions, a report's URL, or an error."""

    successful: bool | None = None
    source_revision_id: str | None = None
    target_revision_id: str | None = None
    report_file_url: str | None = None
    error: AlmTaskError | None = None


class AlmTask(WireModel):
    """A sync, comparison report or summary report task.

    ``task_url`` comes only with the answer that created the task; ``result`` appears once the task is COMPLETE.
    COMPLETE means finished, not succeeded: :attr:`succeeded` checks ``result.successful``.
    """

    task_id: str
    task_state: str | None = None
    current_step: str | None = None
    creation_time: int | None = None
    task_url: str | None = None
    result: AlmTaskResult | None = None

    @field_validator("creation_time", mode="before")
    @classmethod
    def _epoch_ms(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.isdigit():
                return int(text)
            try:
                return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
            except ValueError:
                return None
        return value

    @property
    def is_terminal(self) -> bool:
        """True once the task is COMPLETE or CANCELLED (it will not change any more)."""
        return self.task_state in AlmTaskState.TERMINAL

    @property
    def succeeded(self) -> bool:
        """True when the task is COMPLETE and its result says it was successful."""
        return self.task_state == AlmTaskState.COMPLETE and bool(self.result and self.result.successful)


class ChangeCounts(WireModel):
    """How many objects were created, modified and deleted."""

    created: int = 0
    modified: int = 0
    deleted: int = 0

    @property
    def total(self) -> int:
        return self.created + self.modified + self.deleted


class SummaryReport(WireModel):
    """The summary of what syncing the source revision onto the target revision changes.

    ``differences`` maps a category (``lists``, ``modules``, ``lineItems``, ``rolesContents``, and any Anaplan adds)
    to its counts; categories without changes are absent.
    """

    target_revision_id: str | None = None
    source_revision_id: str | None = None
    totals: ChangeCounts = Field(default_factory=ChangeCounts)
    differences: dict[str, ChangeCounts] = Field(default_factory=dict)

    @property
    def has_changes(self) -> bool:
        return self.totals.total > 0


class NewRevision(WireModel):
    """A revision to create (name at most 60 characters, description at most 250), for :meth:`promote`."""

    name: str
    description: str | None = None


class PromotionResult(WireModel):
    """Everything a promotion did and saw, for the audit trail.

    ``up_to_date`` is True when the target already had the revision (nothing was synced). ``sync_task`` is None for a
    dry run or when the target was up to date; ``target_revision_after`` is the target's latest revision at the end.
    """

    source_model_id: str
    target_model_id: str
    revision: Revision
    revision_created: bool = False
    target_revision: Revision | None = None
    syncable_revisions: tuple[Revision, ...] = ()
    comparison_report_task: AlmTask | None = None
    comparison_report: str | None = None
    summary_report_task: AlmTask | None = None
    summary_report: SummaryReport | None = None
    sync_task: AlmTask | None = None
    target_revision_after: Revision | None = None
    up_to_date: bool = False
    dry_run: bool = False


__all__ = [
    "AlmTask",
    "AlmTaskError",
    "AlmTaskResult",
    "AlmTaskState",
    "AppliedToModel",
    "ChangeCounts",
    "NewRevision",
    "PromotionResult",
    "Revision",
    "SummaryReport",
]
