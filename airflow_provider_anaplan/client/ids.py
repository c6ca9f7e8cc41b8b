"""Anaplan ids: what kind of object an id names, and checks that fail clearly before any network call.

Model objects have 12-digit ids whose first three digits name their kind (112 import, 113 file, 116 export,
117 action, 118 process, ...). Workspaces, models, users and tasks have 32-hex-character ids. An id of the wrong kind
(an export id where an import id belongs) is the most common mistake in a DAG, and Anaplan answers it with a bare 404
or even a 500, so the client rejects it first, with a message that names both kinds.
"""

from __future__ import annotations

import re
from enum import StrEnum

from .errors import InvalidInputError


class ObjectKind(StrEnum):
    """The kinds of Anaplan objects the client names; the value is the word used in messages."""

    WORKSPACE = "workspace"
    MODEL = "model"
    USER = "user"
    TASK = "task"
    LIST = "list"
    MODULE = "module"
    VERSION = "version"
    IMPORT = "import"
    FILE = "file"
    DASHBOARD = "dashboard"
    EXPORT = "export"
    ACTION = "action"
    PROCESS = "process"
    LINE_ITEM = "line item"


#: The 3-digit prefix of a 12-digit model object id, and the kind of object it names.
PREFIX_KINDS: dict[str, ObjectKind] = {
    "101": ObjectKind.LIST,
    "102": ObjectKind.MODULE,
    "107": ObjectKind.VERSION,
    "112": ObjectKind.IMPORT,
    "113": ObjectKind.FILE,
    "115": ObjectKind.DASHBOARD,
    "116": ObjectKind.EXPORT,
    "117": ObjectKind.ACTION,
    "118": ObjectKind.PROCESS,
    "206": ObjectKind.LINE_ITEM,
}

#: The prefixes an id of each model-object kind may carry. A file id is 113 (an import source) or 116 (an export's
#: output file, which has the export's id).
KIND_PREFIXES: dict[ObjectKind, tuple[str, ...]] = {
    ObjectKind.IMPORT: ("112",),
    ObjectKind.FILE: ("113", "116"),
    ObjectKind.EXPORT: ("116",),
    ObjectKind.ACTION: ("117",),
    ObjectKind.PROCESS: ("118",),
    ObjectKind.LIST: ("101",),
    ObjectKind.MODULE: ("102",),
    ObjectKind.VERSION: ("107",),
    ObjectKind.DASHBOARD: ("115",),
    ObjectKind.LINE_ITEM: ("206",),
}

#: The kinds whose ids are 32 hex characters.
HEX_KINDS = frozenset({ObjectKind.WORKSPACE, ObjectKind.MODEL, ObjectKind.USER, ObjectKind.TASK})

#: The kinds a task can be started for (``POST …/{imports|exports|processes|actions}/{id}/tasks``).
RUNNABLE_KINDS = frozenset({ObjectKind.IMPORT, ObjectKind.EXPORT, ObjectKind.PROCESS, ObjectKind.ACTION})

_OBJECT_ID = re.compile(r"[0-9]{12}")
_HEX_ID = re.compile(r"[0-9a-fA-F]{32}")


def is_object_id(value: object) -> bool:
    """True when ``value`` has the shape of a model object id (12 digits)."""
    return isinstance(value, str) and _OBJECT_ID.fullmatch(value) is not None


def is_hex_id(value: object) -> bool:
    """True when ``value`` has the shape of a workspace, model, user or task id (32 hex characters)."""
    return isinstance(value, str) and _HEX_ID.fullmatch(value) is not None


def kind_of(object_id: str) -> ObjectKind | None:
    """The kind of model object a 12-digit id names, from its prefix; ``None`` for anything else."""
    if not is_object_id(object_id):
        return None
    return PREFIX_KINDS.get(object_id[:3])


def looks_like_id(value: str, kind: ObjectKind | str) -> bool:
    """True when ``value`` has the shape of an id of ``kind`` (any 12-digit value for object kinds), not a name."""
    kind = ObjectKind(kind)
    return is_hex_id(value) if kind in HEX_KINDS else is_object_id(value)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeio" else "a"


def check_id(value: object, kind: ObjectKind | str) -> str:
    """Return ``value`` if it is a well-formed id of ``kind``; else raise :class:`InvalidInputError` saying why.

    A 12-digit id with another kind's prefix gets a message naming both kinds, e.g.
    ``'116000000001' is an export id, not an import id``.
    """
    kind = ObjectKind(kind)
    if not isinstance(value, str) or not value:
        raise InvalidInputError(
            f"{_article(kind.value).capitalize()} {kind.value} id must be a non-empty string, got {value!r}."
        )
    if kind in HEX_KINDS:
        if not is_hex_id(value):
            raise InvalidInputError(
                f"{value!r} is not {_article(kind.value)} {kind.value} id: {kind.value} ids are 32 hex characters."
            )
        return value
    prefixes = KIND_PREFIXES.get(kind, ())
    expected = " or ".join(prefixes)
    if not is_object_id(value):
        raise InvalidInputError(
            f"{value!r} is not {_article(kind.value)} {kind.value} id: "
            f"{kind.value} ids are 12 digits starting with {expected}."
        )
    if value[:3] not in prefixes:
        actual = PREFIX_KINDS.get(value[:3])
        if actual is None:
            raise InvalidInputError(
                f"{value!r} is not {_article(kind.value)} {kind.value} id: {kind.value} ids start with {expected}, "
                f"and {value[:3]} is not a prefix this client knows."
            )
        raise InvalidInputError(
            f"{value!r} is {_article(actual.value)} {actual.value} id, not {_article(kind.value)} {kind.value} id "
            f"({kind.value} ids start with {expected})."
        )
    return value


def check_workspace_id(value: object) -> str:
    """Return ``value`` if it is a well-formed workspace id, else raise :class:`InvalidInputError`."""
    return check_id(value, ObjectKind.WORKSPACE)


def check_model_id(value: object) -> str:
    """Return ``value`` if it is a well-formed model id, else raise :class:`InvalidInputError`."""
    return check_id(value, ObjectKind.MODEL)


def check_task_id(value: object) -> str:
    """Return ``value`` if it is a well-formed task id, else raise :class:`InvalidInputError`."""
    return check_id(value, ObjectKind.TASK)


def runnable_kind(object_id: str) -> ObjectKind:
    """The kind of a runnable object (import, export, process or action) from its id, for starting a task of it."""
    kind = kind_of(object_id)
    if kind not in RUNNABLE_KINDS:
        described = f"{_article(kind.value)} {kind.value} id" if kind else "not an id of anything that can be run"
        raise InvalidInputError(
            f"{object_id!r} is {described}: only imports (112…), exports (116…), processes (118…) and actions (117…) "
            "can be run."
        )
    assert kind is not None
    return kind


__all__ = [
    "HEX_KINDS",
    "KIND_PREFIXES",
    "PREFIX_KINDS",
    "RUNNABLE_KINDS",
    "ObjectKind",
    "check_id",
    "check_model_id",
    "check_task_id",
    "check_workspace_id",
    "is_hex_id",
    "is_object_id",
    "kind_of",
    "looks_like_id",
    "runnable_kind",
]
