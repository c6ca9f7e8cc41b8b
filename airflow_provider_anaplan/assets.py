"""Airflow Assets for Anaplan files: ``anaplan://{workspace_id}/{model_id}/files/{file_id}``.

Operators that write a model's file (an upload into an import's source, 113…) or produce one (an export's output,
116…) declare the file as an Asset, so that a downstream DAG can be scheduled on it::

    from airflow_provider_anaplan.assets import anaplan_file_asset

    sales = anaplan_file_asset("8a81b01c7d2e4f3a9b5c6d7e8f901a2b", "75A40874E6B64FA3AE0743278996850F", "113000000001")
    with DAG("after_sales_load", schedule=[sales]): ...

The provider registers :func:`normalize_anaplan_uri` for the ``anaplan`` scheme (``asset-uris`` in its provider
info), and Airflow calls it for every ``Asset(uri="anaplan://...")``: a malformed URI fails at DAG parse time with a
message that says what is wrong, and ids are put in one canonical case (workspace ids lower-case, model ids
upper-case, as Anaplan writes them), so the producer's and the consumer's URIs match.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple
from urllib.parse import SplitResult, urlsplit, urlunsplit

from airflow.sdk import Asset

SCHEME = "anaplan"
URI_FORMAT = "anaplan://{workspace_id}/{model_id}/files/{file_id}"

_HEX32 = re.compile(r"[0-9A-Fa-f]{32}")
_FILE_ID = re.compile(r"11[36]\d{9}")


class AnaplanFileRef(NamedTuple):
    """The three ids an ``anaplan://`` URI names."""

    workspace_id: str
    model_id: str
    file_id: str


def _problem(uri: str, what: str) -> ValueError:
    return ValueError(f"Malformed Anaplan asset URI {uri!r}: {what}. Expected {URI_FORMAT}.")


def _check_ids(uri: str, workspace_id: Any, model_id: Any, file_id: Any) -> AnaplanFileRef:
    if not isinstance(workspace_id, str) or not _HEX32.fullmatch(workspace_id):
        raise _problem(uri, f"the workspace id must be 32 hexadecimal digits, got {workspace_id!r}")
    if not isinstance(model_id, str) or not _HEX32.fullmatch(model_id):
        raise _problem(uri, f"the model id must be 32 hexadecimal digits, got {model_id!r}")
    if not isinstance(file_id, str) or not _FILE_ID.fullmatch(file_id):
        raise _problem(
            uri,
            f"the file id must be 12 digits starting 113 (an import's source file) or 116 (an export's output), "
            f"got {file_id!r}",
        )
    return AnaplanFileRef(workspace_id.lower(), model_id.upper(), file_id)


def _parse(parts: SplitResult, uri: str) -> AnaplanFileRef:
    if parts.scheme.lower() != SCHEME:
        raise _problem(uri, f"the scheme must be {SCHEME!r}, got {parts.scheme!r}")
    if "@" in parts.netloc or ":" in parts.netloc:
        raise _problem(uri, "it must not contain a user, password or port")
    if parts.query:
        raise _problem(uri, f"it must not have a query, got {parts.query!r}")
    segments = parts.path.strip("/").split("/") if parts.path.strip("/") else []
    if not parts.netloc:
        raise _problem(uri, "the workspace id is missing (it is the URI's host part)")
    if len(segments) != 3 or segments[1] != "files":
        raise _problem(uri, f"the path must be /{{model_id}}/files/{{file_id}}, got {parts.path or '(empty)'!r}")
    return _check_ids(uri, parts.netloc, segments[0], segments[2])


def normalize_anaplan_uri(parts: SplitResult) -> SplitResult:
    """Airflow's URI handler for ``anaplan://``: validate, and return the canonical form (raises ValueError)."""
    ref = _parse(parts, urlunsplit(parts))
    return SplitResult(SCHEME, ref.workspace_id, f"/{ref.model_id}/files/{ref.file_id}", "", "")


def parse_anaplan_uri(uri: str) -> AnaplanFileRef:
    """The (workspace id, model id, file id) of an ``anaplan://`` URI, canonical case; ValueError if malformed."""
    if not isinstance(uri, str):
        raise ValueError(f"An Anaplan asset URI must be a string, got {type(uri).__name__}.")
    return _parse(urlsplit(uri.strip()), uri)


def anaplan_file_uri(workspace_id: str, model_id: str, file_id: str) -> str:
    """``anaplan://{workspace_id}/{model_id}/files/{file_id}`` from checked ids (ValueError when one is malformed)."""
    uri = URI_FORMAT.format(workspace_id=workspace_id, model_id=model_id, file_id=file_id)
    ref = _check_ids(uri, workspace_id, model_id, file_id)
    return URI_FORMAT.format(**ref._asdict())


def anaplan_file_asset(
    workspace_id: str,
    model_id: str,
    file_id: str,
    *,
    name: str | None = None,
    group: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Asset:
    """The Airflow ``Asset`` of a model's file, with the canonical URI.

    Airflow identifies an Asset by its name and URI, and an ``Asset(uri=...)`` is named by the URI *as written*: so
    schedule downstream DAGs on this function's Asset (or on ``Asset(uri=...)`` with the canonical URI it returns),
    never on a differently-cased URI. ``name`` and ``group`` default to Airflow's defaults (the URI, ``"asset"``).
    """
    uri = anaplan_file_uri(workspace_id, model_id, file_id)
    options: dict[str, Any] = {"name": name or uri, "extra": extra or {}}
    if group:
        options["group"] = group
    return Asset(uri=uri, **options)


def create_asset(
    *, workspace_id: str, model_id: str, file_id: str, extra: dict[str, Any] | None = None, **_: Any
) -> Asset:
    """Airflow's asset factory for the ``anaplan`` scheme (hook-level lineage ``create_asset(scheme="anaplan")``)."""
    return anaplan_file_asset(workspace_id, model_id, file_id, extra=extra)


__all__ = [
    "SCHEME",
    "URI_FORMAT",
    "AnaplanFileRef",
    "anaplan_file_asset",
    "anaplan_file_uri",
    "create_asset",
    "normalize_anaplan_uri",
    "parse_anaplan_uri",
]
