"""The ALM side of the emulated tenant: model structure per revision, revision history per model, sync and report
tasks, and the knobs tests use (roles, archived models, failing syncs, model copies).

A model's *structure* is a small dict of categories (``lists``, ``modules``, ``lineItems``, ``rolesContents``), each
mapping an object name to its definition. Creating a revision snapshots the structure; syncing applies the source
revision's snapshot to the target and appends the revision to the target's history, so the target's latest revision
really changes. A model's history is the list of revisions applied to it, in order (created there, synced in, or
inherited by copying the model); the revisions of one model that another can take (``syncableRevisions``) are those
of the source applied after the target's latest revision, provided the source's history holds that revision (shared
lineage) and the target has no structural change of its own since then.

Tasks advance lazily on ``state.clock`` (no thread): each ALM request first brings every task up to the clock. Syncs
into one target run one at a time (``NOT_STARTED`` while another runs), each taking ``options.sync_duration``;
report tasks take ``options.report_duration``. Nothing here imports the client.
"""

from __future__ import annotations

import copy
import uuid
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ._asgi import HTTPError
from .state import DEFAULT_USER_EMAIL, EmulatorState, Model

CATEGORIES = ("lists", "modules", "lineItems", "rolesContents")
Structure = dict[str, dict[str, dict[str, Any]]]

NOT_STARTED = "NOT_STARTED"
IN_PROGRESS = "IN_PROGRESS"
COMPLETE = "COMPLETE"
CANCELLED = "CANCELLED"

SYNC, COMPARISON, SUMMARY = "sync", "comparison", "summary"

# How a revision came to be in a model's history (``appliedMethod`` of appliedToModels).
CREATED, SYNCED, COPIED = "CREATE", "SYNC", "COPY"

DAY = 86_400.0

# Seed ids of the bundled tenant (emulator/seed.json): the models, and the ALM history given to them.
SALES_FORECAST = "75A40874E6B64FA3AE0743278996850F"
SALES_FORECAST_DEV = "A1C4E2B97F3D4C5E8A6B0D2F4E6A8C01"
REVISION_INITIAL = "D0A1B2C3D4E5F60718293A4B5C6D7E01"  # DEV, 10 days before start; copied into Sales Forecast
REVISION_REGIONS = "D0A1B2C3D4E5F60718293A4B5C6D7E02"  # DEV, 3 days before start; synced into Sales Forecast 1 day ago
REVISION_CHANNELS = "D0A1B2C3D4E5F60718293A4B5C6D7E03"  # DEV, 6 hours before start; syncable into Sales Forecast
SEED_SYNC_TASK = "5E1F0A2B3C4D4E5F8A9B0C1D2E3F4A01"  # the sync of REVISION_REGIONS into Sales Forecast
SEED_COMPARISON_TASK = "5E1F0A2B3C4D4E5F8A9B0C1D2E3F4A02"  # comparison report REVISION_INITIAL -> REVISION_REGIONS
SEED_SUMMARY_TASK = "5E1F0A2B3C4D4E5F8A9B0C1D2E3F4A03"  # summary report of the same pair


@dataclass
class AlmOptions:
    """Knobs for tests and demos; change them on ``alm_for(state).options``."""

    sync_duration: float = 2.0  # clock seconds a sync takes once it starts
    report_duration: float = 1.0  # clock seconds a comparison or summary report task takes
    task_ttl: float = 2 * DAY  # finished tasks are listed (and found) for this long: Anaplan's 48 h
    report_ttl: float = 2 * DAY  # a generated report can be downloaded for this long


@dataclass
class Revision:
    id: str
    name: str
    description: str | None
    created_on: float
    created_by: str
    origin_model_id: str  # the model the revision was created in
    structure: Structure
    creation_method: str = "user"


@dataclass
class Applied:
    """One entry of a model's history: this revision became the model's structure then, by this user and method."""

    revision_id: str
    applied_on: float
    applied_by: str
    method: str


@dataclass
class ModelAlm:
    structure: Structure = field(default_factory=dict)
    history: list[Applied] = field(default_factory=list)

    def latest(self) -> Applied | None:
        return self.history[-1] if self.history else None

    def entry(self, revision_id: str) -> Applied | None:
        """The latest entry of ``revision_id`` in this history."""
        return next((a for a in reversed(self.history) if a.revision_id == revision_id), None)


@dataclass
class AlmTask:
    id: str
    kind: str  # sync | comparison | summary
    model_id: str  # the target model (the one in the request path)
    source_model_id: str
    source_revision_id: str
    target_revision_id: str
    user_id: str
    created: float
    report_path: str = ""  # the report's path under the API origin (report tasks only)
    state: str = NOT_STARTED
    start: float | None = None
    end: float | None = None
    failure: tuple[str, str] | None = None  # (title, message) decided when the task starts
    result: dict[str, Any] | None = None

    @property
    def creation_ms(self) -> int:
        return int(self.created * 1000)


@dataclass
class Report:
    kind: str  # comparison | summary
    generated: float
    comparison_tsv: bytes
    summary: dict[str, Any]


@dataclass
class _InjectedFailure:
    target_model_id: str | None
    title: str
    message: str


def iso(seconds: float) -> str:
    """Epoch seconds as Anaplan's ISO 8601 UTC form with milliseconds (``2026-01-02T03:04:05.678Z``)."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def empty_structure() -> Structure:
    return {category: {} for category in CATEGORIES}


def _normal(structure: Structure) -> Structure:
    """A deep copy with every category present (so that an empty category compares equal to a missing one)."""
    out = empty_structure()
    for category, objects in structure.items():
        out[category] = copy.deepcopy(objects)
    return out


# ------------------------------------------------------------------------------------------------ differences
@dataclass
class Change:
    category: str
    change: str  # Created | Modified | Deleted
    name: str
    prop: str = ""
    target_value: str = ""
    source_value: str = ""


def differences(target: Structure, source: Structure) -> list[Change]:
    """What syncing ``source`` onto ``target`` changes, object by object (and property by property when modified)."""
    target, source = _normal(target), _normal(source)
    changes: list[Change] = []
    for category in CATEGORIES:
        before, after = target.get(category, {}), source.get(category, {})
        for name in sorted(after.keys() - before.keys()):
            changes.append(Change(category, "Created", name, source_value=_render(after[name])))
        for name in sorted(before.keys() & after.keys()):
            if before[name] == after[name]:
                continue
            for prop in sorted(before[name].keys() | after[name].keys()):
                old, new = before[name].get(prop), after[name].get(prop)
                if old != new:
                    changes.append(Change(category, "Modified", name, prop, _value(old), _value(new)))
        for name in sorted(before.keys() - after.keys()):
            changes.append(Change(category, "Deleted", name, target_value=_render(before[name])))
    return changes


def _value(value: Any) -> str:
    if value is None:
        return ""
    return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)


def _render(definition: dict[str, Any]) -> str:
    return "; ".join(f"{key}={_value(value)}" for key, value in sorted(definition.items()))


_CATEGORY_TITLES = {"lists": "List", "modules": "Module", "lineItems": "Line Item", "rolesContents": "Role"}


def comparison_tsv(target_revision: Revision, source_revision: Revision, changes: list[Change]) -> bytes:
    """The full comparison report: one row per created/deleted object and per modified property, tab-separated."""

    def clean(text: str) -> str:
        return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")

    lines = [
        "\t".join(["Target Revision", clean(target_revision.name), target_revision.id]),
        "\t".join(["Source Revision", clean(source_revision.name), source_revision.id]),
        "",
        "\t".join(["Object Type", "Change", "Name", "Property", "Target Value", "Source Value"]),
    ]
    for c in changes:
        row = [_CATEGORY_TITLES[c.category], c.change, c.name, c.prop, c.target_value, c.source_value]
        lines.append("\t".join(clean(v) for v in row))
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def summary_report(target_revision: Revision, source_revision: Revision, changes: list[Change]) -> dict[str, Any]:
    """Totals and per-category counts of objects created, modified and deleted (zero counts and categories left out,
    as Anaplan does)."""
    counts: dict[str, dict[str, set[str]]] = {}
    for c in changes:
        counts.setdefault(c.category, {}).setdefault(c.change.lower(), set()).add(c.name)
    totals = {"created": 0, "modified": 0, "deleted": 0}
    diff: dict[str, dict[str, int]] = {}
    for category in CATEGORIES:
        per = {kind: len(names) for kind, names in counts.get(category, {}).items() if names}
        if not per:
            continue
        diff[category] = {kind: per[kind] for kind in ("created", "modified", "deleted") if per.get(kind)}
        for kind, n in per.items():
            totals[kind] += n
    return {
        "targetRevisionId": target_revision.id,
        "sourceRevisionId": source_revision.id,
        "totals": totals,
        "differences": diff,
    }


# ------------------------------------------------------------------------------------------------ the ALM state
class AlmState:
    """Revisions, histories, tasks and reports of one emulated tenant (see the module docstring)."""

    def __init__(self, state: EmulatorState, options: AlmOptions | None = None) -> None:
        self.state = state
        self.options = options or AlmOptions()
        self.revisions: dict[str, Revision] = {}
        self.models: dict[str, ModelAlm] = {}
        self.tasks: dict[str, AlmTask] = {}  # by id, in creation order
        self.reports: dict[tuple[str, str, str, str], Report] = {}  # (kind, model, target rev, source rev)
        self.not_admin: set[tuple[str, str]] = set()  # (user id, workspace id) without Workspace Administrator
        self.failures: list[_InjectedFailure] = []

    # ------------------------------------------------------------------------------ knobs for tests
    def model(self, model_id: str) -> ModelAlm:
        """The ALM record of a model (an empty structure and no history until something happens)."""
        return self.models.setdefault(model_id, ModelAlm(structure=empty_structure()))

    def structure(self, model_id: str) -> Structure:
        """A copy of the model's current structure."""
        return _normal(self.model(model_id).structure)

    def edit(self, model_id: str, category: str, name: str, definition: dict[str, Any] | None) -> None:
        """Make a structural change in a model, as a model builder would: set an object's definition, or remove it
        (``definition=None``)."""
        if category not in CATEGORIES:
            raise ValueError(f"category must be one of {', '.join(CATEGORIES)}, got {category!r}")
        objects = self.model(model_id).structure.setdefault(category, {})
        if definition is None:
            objects.pop(name, None)
        else:
            objects[name] = copy.deepcopy(definition)

    def set_workspace_admin(self, user: str, workspace_id: str, admin: bool = True) -> None:
        """Grant or take away a user's Workspace Administrator role (the role every ALM call needs) in a workspace;
        ``user`` is an email or a user id. Every user is a workspace administrator everywhere until told otherwise."""
        found = self.state.users.get(user.lower()) or self.state.user_by_id(user)
        if found is None:
            raise ValueError(f"no user {user!r}")
        key = (found.id, workspace_id)
        if admin:
            self.not_admin.discard(key)
        else:
            self.not_admin.add(key)

    def is_workspace_admin(self, user_id: str, workspace_id: str) -> bool:
        return (user_id, workspace_id) not in self.not_admin

    def archive(self, model_id: str, archived: bool = True) -> None:
        """Archive a model (every ALM change on it then answers 422) or restore it."""
        model = self.state.models[model_id]
        model.active_state = "ARCHIVED" if archived else "UNLOCKED"

    def fail_next_sync(
        self,
        *,
        target_model_id: str | None = None,
        title: str = "Model sync failed",
        message: str = "The model could not be synchronized. Try again later.",
    ) -> None:
        """Make the next sync that starts (into ``target_model_id``, or into any model) fail with this error."""
        self.failures.append(_InjectedFailure(target_model_id, title, message))

    def cancel_task(self, task_id: str) -> AlmTask:
        """End an unfinished task as CANCELLED (as when it is cancelled in Anaplan's UI); the target is unchanged."""
        self.tick()
        task = self.tasks[task_id]
        if task.state in (NOT_STARTED, IN_PROGRESS):
            task.state = CANCELLED
            task.end = self.state.clock()
            task.result = None
            self.tick()
        return task

    def copy_model(
        self,
        source_model_id: str,
        name: str,
        *,
        workspace_id: str | None = None,
        model_id: str | None = None,
        revision_id: str | None = None,
    ) -> Model:
        """Copy a model at one of its revisions (default: its latest), as one makes a test or production model.

        The copy inherits the source's history up to that revision, so it shares the source's lineage and can take
        the source's later revisions by sync. Returns the new model (also added to the tenant).
        """
        source_model = self.state.models[source_model_id]
        source = self.model(source_model_id)
        history = list(source.history)
        if revision_id is not None:
            entry = source.entry(revision_id)
            if entry is None:
                raise ValueError(f"revision {revision_id} is not in the history of model {source_model_id}")
            history = history[: history.index(entry) + 1]
        new_id = model_id or uuid.uuid4().hex.upper()
        target_ws = workspace_id or source_model.workspace_id
        model = Model(id=new_id, name=name, workspace_id=target_ws, active_state="UNLOCKED")
        self.state.models[new_id] = model
        self.state.workspaces[target_ws].model_ids.append(new_id)
        structure = self.revisions[history[-1].revision_id].structure if history else source.structure
        self.models[new_id] = ModelAlm(structure=_normal(structure), history=[copy.copy(a) for a in history])
        return model

    # ------------------------------------------------------------------------------ revisions
    def latest_revision(self, model_id: str) -> tuple[Revision, Applied] | None:
        entry = self.model(model_id).latest()
        return (self.revisions[entry.revision_id], entry) if entry else None

    def history(self, model_id: str) -> list[tuple[Revision, Applied]]:
        return [(self.revisions[a.revision_id], a) for a in self.model(model_id).history]

    def has_changes(self, model_id: str) -> bool:
        """True when the model's structure differs from its latest revision (or it has none and is not empty)."""
        record = self.model(model_id)
        latest = record.latest()
        base = self.revisions[latest.revision_id].structure if latest else empty_structure()
        return _normal(record.structure) != _normal(base)

    def create_revision(
        self, model_id: str, name: str, description: str | None, user_id: str, *, at: float | None = None
    ) -> Revision:
        """Snapshot the model's structure as a new revision and append it to the model's history."""
        if self.model(model_id).history and not self.has_changes(model_id):
            raise HTTPError(400, "The model has no structural changes since its latest revision")
        return self._record_revision(model_id, uuid.uuid4().hex.upper(), name, description, user_id, at)

    def _record_revision(
        self,
        model_id: str,
        revision_id: str,
        name: str,
        description: str | None,
        user_id: str,
        at: float | None = None,
    ) -> Revision:
        when = self.state.clock() if at is None else at
        record = self.model(model_id)
        revision = Revision(revision_id, name, description, when, user_id, model_id, _normal(record.structure))
        self.revisions[revision.id] = revision
        record.history.append(Applied(revision.id, when, user_id, CREATED))
        return revision

    def applied_to(self, revision_id: str) -> list[tuple[str, Applied]]:
        """(model id, entry) for every model whose history holds the revision; the model it was created in first."""
        found: list[tuple[str, Applied]] = []
        for model_id, record in self.models.items():
            entry = next((a for a in record.history if a.revision_id == revision_id), None)
            if entry is not None:
                found.append((model_id, entry))
        origin = self.revisions[revision_id].origin_model_id
        found.sort(key=lambda pair: (pair[0] != origin, pair[1].applied_on))
        return found

    def syncable(self, target_model_id: str, source_model_id: str) -> list[tuple[Revision, Applied]]:
        """The source's revisions the target can take, newest first (see the module docstring for the rule)."""
        target, source = self.model(target_model_id), self.model(source_model_id)
        latest = target.latest()
        if latest is None or self.has_changes(target_model_id):
            return []
        ids = [a.revision_id for a in source.history]
        if latest.revision_id not in ids:
            return []
        position = len(ids) - 1 - ids[::-1].index(latest.revision_id)
        seen: set[str] = {latest.revision_id}
        out: list[tuple[Revision, Applied]] = []
        for entry in reversed(source.history[position + 1 :]):
            if entry.revision_id not in seen:
                seen.add(entry.revision_id)
                out.append((self.revisions[entry.revision_id], entry))
        return out

    # ------------------------------------------------------------------------------ tasks
    def create_task(
        self,
        kind: str,
        model_id: str,
        source_model_id: str,
        source_revision_id: str,
        target_revision_id: str,
        user_id: str,
        report_path: str = "",
    ) -> AlmTask:
        self.tick()
        task = AlmTask(
            id=uuid.uuid4().hex.upper(),
            kind=kind,
            model_id=model_id,
            source_model_id=source_model_id,
            source_revision_id=source_revision_id,
            target_revision_id=target_revision_id,
            user_id=user_id,
            created=self.state.clock(),
            report_path=report_path,
        )
        self.tasks[task.id] = task
        self.state.count(f"alm.{kind}_tasks")
        self.tick()
        return task

    def task(self, kind: str, model_id: str, task_id: str) -> AlmTask | None:
        """A task of this kind on this model, unless it is unknown or finished longer ago than ``task_ttl``."""
        self.tick()
        task = self.tasks.get(task_id.upper())
        if task is None or task.kind != kind or task.model_id != model_id or self._expired(task):
            return None
        return task

    def sync_tasks(self, model_id: str) -> list[AlmTask]:
        """The model's sync tasks that are unfinished or finished within ``task_ttl``, newest first."""
        self.tick()
        tasks = [t for t in self.tasks.values() if t.kind == SYNC and t.model_id == model_id and not self._expired(t)]
        return list(reversed(tasks))

    def _expired(self, task: AlmTask) -> bool:
        return (
            task.end is not None
            and task.state in (COMPLETE, CANCELLED)
            and (task.created + self.options.task_ttl <= self.state.clock())
        )

    def report(self, kind: str, model_id: str, target_revision_id: str, source_revision_id: str) -> Report | None:
        self.tick()
        report = self.reports.get((kind, model_id, target_revision_id.upper(), source_revision_id.upper()))
        if report is None or report.generated + self.options.report_ttl <= self.state.clock():
            return None
        return report

    def tick(self) -> None:
        """Bring every task up to the clock, in the order things would have happened."""
        now = self.state.clock()
        for task in self.tasks.values():
            if task.kind != SYNC and task.state == NOT_STARTED:
                self._start(task, task.created)
            if task.kind != SYNC and task.state == IN_PROGRESS and task.end is not None and task.end <= now:
                self._complete(task)
        for model_id in {t.model_id for t in self.tasks.values() if t.kind == SYNC}:
            self._tick_syncs(model_id, now)

    def _tick_syncs(self, model_id: str, now: float) -> None:
        queue = [t for t in self.tasks.values() if t.kind == SYNC and t.model_id == model_id]
        free_at = 0.0
        for task in queue:
            if task.state in (COMPLETE, CANCELLED) and task.end is not None:
                free_at = max(free_at, task.end)
        while True:
            running = next((t for t in queue if t.state == IN_PROGRESS), None)
            if running is not None:
                assert running.end is not None
                if running.end > now:
                    return
                self._complete(running)
                free_at = running.end
                continue
            waiting = next((t for t in queue if t.state == NOT_STARTED), None)
            if waiting is None:
                return
            start = max(waiting.created, free_at)
            if start > now:
                return
            self._start(waiting, start)

    def _start(self, task: AlmTask, at: float) -> None:
        task.state = IN_PROGRESS
        task.start = at
        duration = self.options.sync_duration if task.kind == SYNC else self.options.report_duration
        task.end = at + duration
        task.failure = self._sync_failure(task) if task.kind == SYNC else self._report_failure(task)

    def _sync_failure(self, task: AlmTask) -> tuple[str, str] | None:
        injected = next((f for f in self.failures if f.target_model_id in (None, task.model_id)), None)
        if injected is not None:
            self.failures.remove(injected)
            return injected.title, injected.message
        latest = self.model(task.model_id).latest()
        if latest is None or latest.revision_id != task.target_revision_id:
            return (
                "Target revision mismatch",
                f"Revision {task.target_revision_id} is not the latest revision of the target model "
                f"(the latest is {latest.revision_id if latest else 'none'}).",
            )
        if task.source_revision_id not in {r.id for r, _ in self.syncable(task.model_id, task.source_model_id)}:
            return (
                "Revision not syncable",
                f"Revision {task.source_revision_id} of model {task.source_model_id} is not compatible with the "
                f"target model: it must be a revision of the source model applied after the target's latest revision.",
            )
        return None

    def _report_failure(self, task: AlmTask) -> tuple[str, str] | None:
        if self.model(task.model_id).entry(task.target_revision_id) is None:
            return "Revision not found", f"Revision {task.target_revision_id} is not a revision of the target model."
        if self.model(task.source_model_id).entry(task.source_revision_id) is None:
            return "Revision not found", f"Revision {task.source_revision_id} is not a revision of the source model."
        return None

    def _complete(self, task: AlmTask) -> None:
        task.state = COMPLETE
        ids = {"sourceRevisionId": task.source_revision_id, "targetRevisionId": task.target_revision_id}
        if task.failure is not None:
            title, message = task.failure
            task.result = {"successful": False, **ids, "error": {"title": title, "messageText": message}}
            return
        assert task.end is not None
        source_revision = self.revisions[task.source_revision_id]
        if task.kind == SYNC:
            record = self.model(task.model_id)
            record.structure = _normal(source_revision.structure)
            record.history.append(Applied(source_revision.id, task.end, task.user_id, SYNCED))
            task.result = {"successful": True, **ids}
            return
        target_revision = self.revisions[task.target_revision_id]
        self.store_report(task.kind, task.model_id, target_revision, source_revision, task.end)
        task.result = {"successful": True, **ids, "reportFileUrl": task.report_path}

    def store_report(
        self, kind: str, model_id: str, target_revision: Revision, source_revision: Revision, at: float
    ) -> Report:
        changes = differences(target_revision.structure, source_revision.structure)
        report = Report(
            kind,
            at,
            comparison_tsv(target_revision, source_revision, changes),
            summary_report(target_revision, source_revision, changes),
        )
        self.reports[(kind, model_id, target_revision.id, source_revision.id)] = report
        return report

    # ------------------------------------------------------------------------------ seeding
    def seed_default(self) -> None:
        """The bundled tenant's ALM history (when its two Sales Forecast models exist; see docs/emulator-alm.md)."""
        if SALES_FORECAST not in self.state.models or SALES_FORECAST_DEV not in self.state.models:
            return
        now = self.state.clock()
        user = self.state.users.get(DEFAULT_USER_EMAIL)
        user_id = user.id if user else "8a81b09d5f1e4c2a9b3e7d6f10a2c4e8"
        dev = self.model(SALES_FORECAST_DEV)
        steps: list[tuple[str, str, str, float, Structure]] = [
            (REVISION_INITIAL, "Initial build", "Products, regions and the revenue module", 10 * DAY, _INITIAL),
            (REVISION_REGIONS, "Regional breakdown", "Revenue by region; discounts; sales channels", 3 * DAY, _REGIONS),
            (REVISION_CHANNELS, "Forecast by channel", "Channel forecast module and a viewer role", DAY / 4, _CHANNELS),
        ]
        for revision_id, name, description, ago, structure in steps:
            dev.structure = _normal(structure)
            self._record_revision(SALES_FORECAST_DEV, revision_id, name, description, user_id, now - ago)
        dev.structure = _normal(_PENDING)  # a change not in any revision yet: DEV can take a new revision at once
        prod = self.model(SALES_FORECAST)
        prod.history = [
            Applied(REVISION_INITIAL, now - 10 * DAY + 3600, user_id, COPIED),
            Applied(REVISION_REGIONS, now - DAY + 2, user_id, SYNCED),
        ]
        prod.structure = _normal(_REGIONS)
        initial, regions = self.revisions[REVISION_INITIAL], self.revisions[REVISION_REGIONS]
        for task_id, kind, at in (
            (SEED_COMPARISON_TASK, COMPARISON, now - DAY - 600),
            (SEED_SUMMARY_TASK, SUMMARY, now - DAY - 300),
            (SEED_SYNC_TASK, SYNC, now - DAY),
        ):
            duration = 2.0 if kind == SYNC else 1.0
            task = AlmTask(
                task_id, kind, SALES_FORECAST, SALES_FORECAST_DEV, REVISION_REGIONS, REVISION_INITIAL, user_id, at
            )
            task.state, task.start, task.end = COMPLETE, at, at + duration
            task.result = {
                "successful": True,
                "sourceRevisionId": REVISION_REGIONS,
                "targetRevisionId": REVISION_INITIAL,
            }
            if kind != SYNC:
                self.store_report(kind, SALES_FORECAST, initial, regions, at + duration)
                report = "comparisonReports" if kind == COMPARISON else "summaryReports"
                task.report_path = f"/2/0/models/{SALES_FORECAST}/alm/{report}/{REVISION_INITIAL}/{REVISION_REGIONS}"
                task.result["reportFileUrl"] = task.report_path
            self.tasks[task_id] = task


def _with(base: Structure, changes: Iterable[tuple[str, str, dict[str, Any] | None]]) -> Structure:
    out = _normal(base)
    for category, name, definition in changes:
        if definition is None:
            out[category].pop(name, None)
        else:
            out[category][name] = definition
    return out


_INITIAL: Structure = _with(
    {},
    [
        ("lists", "Products", {"topLevel": "All Products", "parent": ""}),
        ("lists", "Regions", {"topLevel": "All Regions", "parent": ""}),
        ("modules", "Revenue", {"dimensions": ["Products", "Time"]}),
        ("lineItems", "Revenue.Units", {"format": "NUMBER", "formula": ""}),
        ("lineItems", "Revenue.Price", {"format": "NUMBER", "formula": ""}),
        ("lineItems", "Revenue.Revenue", {"format": "NUMBER", "formula": "Units * Price"}),
        ("rolesContents", "Planner", {"Revenue": "WRITE"}),
    ],
)
_REGIONS: Structure = _with(
    _INITIAL,
    [
        ("lists", "Channels", {"topLevel": "All Channels", "parent": ""}),
        ("modules", "Revenue", {"dimensions": ["Products", "Regions", "Time"]}),
        ("lineItems", "Revenue.Discount %", {"format": "NUMBER", "formula": ""}),
    ],
)
_CHANNELS: Structure = _with(
    _REGIONS,
    [
        ("modules", "Channel Forecast", {"dimensions": ["Channels", "Time"]}),
        ("lineItems", "Channel Forecast.Units", {"format": "NUMBER", "formula": ""}),
        (
            "lineItems",
            "Channel Forecast.Share %",
            {"format": "NUMBER", "formula": "Units / Units[SELECT: All Channels]"},
        ),
        ("lineItems", "Revenue.Revenue", {"format": "NUMBER", "formula": "Units * Price * (1 - Discount %)"}),
        ("rolesContents", "Viewer", {"Revenue": "READ", "Channel Forecast": "READ"}),
    ],
)
_PENDING: Structure = _with(_CHANNELS, [("lineItems", "Revenue.Margin %", {"format": "NUMBER", "formula": ""})])


_ALM: weakref.WeakKeyDictionary[EmulatorState, AlmState] = weakref.WeakKeyDictionary()


def alm_for(state: EmulatorState, *, seed: bool = True) -> AlmState:
    """The ALM state of a tenant, created on first use (with the bundled ALM history when ``seed`` and the bundled
    models are there)."""
    alm = _ALM.get(state)
    if alm is None:
        alm = AlmState(state)
        _ALM[state] = alm
        if seed:
            alm.seed_default()
    return alm


__all__ = [
    "COMPARISON",
    "SUMMARY",
    "SYNC",
    "AlmOptions",
    "AlmState",
    "AlmTask",
    "Revision",
    "alm_for",
    "differences",
    "iso",
]
