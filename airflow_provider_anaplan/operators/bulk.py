"""Operators that move files and run a model's actions: :class:`AnaplanUploadAndImportOperator`,
:class:`AnaplanExportAndDownloadOperator`, :class:`AnaplanRunProcessOperator` and :class:`AnaplanRunActionOperator`.

All share the policy of :class:`~airflow_provider_anaplan.operators._base.AnaplanBaseOperator`: both modes
(worker or ``deferrable=True``), absolute deadlines that cancel the task, ``on_kill`` cancelling it, reattaching on
retry, the ``fail_on`` row policy, failure dumps saved to ``dump_to``, and a small XCom result.

**Files.** Uploads stream from a local path, an ``ObjectStoragePath`` (any fsspec backend) or templated text/bytes
with bounded memory (:func:`~airflow_provider_anaplan.operators._io.open_source`); downloads stream into a local path
or an ``ObjectStoragePath`` (:func:`~airflow_provider_anaplan.operators._io.adownload_to`). An operator that uploads
holds the process-wide guard of every (model, file) it writes from the start of the upload until the import or
process that reads it has ended (on the worker) or has been started (before deferring); across workers use a one-slot
pool per file (see :mod:`~airflow_provider_anaplan.operators._guard`).

**Assets.** A file an operator loads is an outlet ``anaplan://{workspace_id}/{model_id}/files/{file_id}``; an export's
file an operator downloads is an inlet. When the workspace, model and file are given as literal ids, the Asset itself
is declared (and visible when the DAG is parsed); otherwise, as the ids are only known at run time, the operator
declares an ``AssetAlias`` (``anaplan_files__<dag id>__<task id>``, or the first ``AssetAlias`` in ``outlets``) and
attaches the file's Asset to it when the task succeeds. Downstream DAGs schedule on
:func:`~airflow_provider_anaplan.assets.anaplan_file_asset` either way.
"""

from __future__ import annotations

import codecs
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AssetAlias

from ..assets import anaplan_file_asset
from ..client.files import DEFAULT_CHUNK_SIZE, DEFAULT_CONCURRENCY, MAX_CHUNK_SIZE
from ..client.ids import ObjectKind
from ..exceptions import InvalidInputError
from ._base import AnaplanBaseOperator, check_flag, check_ref, check_seconds, naming
from ._guard import guard_files
from ._io import adownload_to, aopen_source, check_location, format_bytes, write_stream

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ..client import AnaplanClient
    from ..client.task_models import TaskOutcome

#: Lines of an optimizer's solution log shown in the task log.
SOLUTION_LOG_TAIL_LINES = 20

_HEX32 = re.compile(r"[0-9A-Fa-f]{32}")
_FILE_ID = re.compile(r"11[36]\d{9}")
_SOURCE_KINDS = ("auto", "path", "text")


def _literal(value: Any, pattern: re.Pattern[str]) -> str | None:
    """``value`` when it is a literal id of this form (no template), else None."""
    if isinstance(value, str) and "{" not in value and pattern.fullmatch(value.strip()):
        return value.strip()
    return None


def static_file_asset(workspace_id: Any, model_id: Any, file_id: Any) -> Asset | None:
    """The Asset of a model's file when workspace, model and file are literal ids (known when the DAG is parsed)."""
    ids = (_literal(workspace_id, _HEX32), _literal(model_id, _HEX32), _literal(file_id, _FILE_ID))
    if None in ids:
        return None
    return anaplan_file_asset(*ids)  # type: ignore[arg-type]


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise InvalidInputError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _check_positive_int(name: str, value: Any, maximum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1 or (maximum is not None and value > maximum):
        bound = f"from 1 to {maximum} ({maximum // (1024 * 1024)} MB)" if maximum else ">= 1"
        unit = " of bytes" if maximum else ""
        raise InvalidInputError(f"{name} must be an integer{unit} {bound}, got {value!r}")
    return value


def _check_transfer(operator: Any, *, chunk_size: Any, compress: Any, concurrency: Any, encoding: Any) -> None:
    """Check and set the upload settings an operator takes (at DAG parse time, not templated)."""
    operator.chunk_size = _check_positive_int("chunk_size", chunk_size, MAX_CHUNK_SIZE)
    if not (isinstance(compress, bool) or (isinstance(compress, int) and 0 <= compress <= 9)):
        raise InvalidInputError(f"compress must be True, False or a gzip level 0-9, got {compress!r}")
    operator.compress = compress
    operator.concurrency = _check_positive_int("concurrency", concurrency)
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise InvalidInputError(
            f"encoding must name a Python codec such as 'utf-8' or 'cp1252', got {encoding!r}"
        ) from None
    operator.encoding = encoding


def _check_guard_timeout(value: Any) -> float | None:
    return check_seconds(value, "guard_timeout", zero=True)


def _check_source(field: str, value: Any) -> None:
    """An upload source as rendered: something ``open_source`` can take (it checks the file itself when uploading)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidInputError(
            f"{field} must be a path, an ObjectStoragePath, a URL, text or bytes, got {value!r} (its template "
            "rendered to nothing?)"
        )
    if isinstance(value, Mapping | int | float | bool):
        raise InvalidInputError(
            f"{field} must be a path, an ObjectStoragePath, a URL, text or bytes, got {type(value).__name__} "
            f"{value!r} (a Jinja expression rendered as a native object keeps its type)"
        )


class _AnaplanFilesMixin:
    """What the operators that upload or download Anaplan files share: streaming uploads, the (model, file) guard
    around the upload-and-run span, and the files' Assets (see the module docstring)."""

    # Set by the operator's __init__ (these names are documented on each operator).
    source_kind: str
    chunk_size: int
    compress: bool | int
    concurrency: int
    encoding: str
    guard_timeout: float | None
    declare_assets: bool

    # ------------------------------------------------------------------------------------------ guard
    def _files_written(self) -> list[str]:
        """Ids of the files this try uploads into (resolved); the guard covers them."""
        return []

    def _begin(self, context: Context) -> None:
        if getattr(self, "_begun", False):
            return
        super()._begin(context)  # type: ignore[misc]
        self._begun = True

    def execute(self, context: Context) -> Any:
        """Resolve, then run under the guard of every file uploaded (released when the task ends or defers)."""
        self._begun = False
        self._begin(context)
        files = self._files_written()
        if not files:
            return super().execute(context)  # type: ignore[misc]
        loc = self.loc  # type: ignore[attr-defined]
        with guard_files(loc.model_id, files, timeout=self.guard_timeout, logger=self.log):  # type: ignore[attr-defined]
            return super().execute(context)  # type: ignore[misc]

    # ------------------------------------------------------------------------------------------ upload
    async def _aupload(
        self, client: AnaplanClient, file_id: str, file_name: str | None, source: Any, field: str = "source"
    ) -> dict[str, Any]:
        """Stream ``source`` into the model's file; a small dict for the XCom value. ``field`` names it in errors."""
        loc = self.loc  # type: ignore[attr-defined]
        log = self.log  # type: ignore[attr-defined]
        with naming(field):
            opened = await aopen_source(source, kind=self.source_kind, logger=log, encoding=self.encoding)
        where = f"file {file_id}" + (f" ({file_name})" if file_name else "")
        size = f", {format_bytes(opened.size)}" if opened.size is not None and opened.stream is not None else ""
        log.info("Uploading %s%s into %s of model %s", opened.description, size, where, loc.model_id)
        started = time.monotonic()
        with naming(field):
            chunk_size = opened.chunk_size_for(self.chunk_size)
        uploaded = await client.upload_file(
            loc.model_id,
            file_id,
            opened.source,
            workspace_id=loc.workspace_id,
            chunk_size=chunk_size,
            compress=self.compress,
            concurrency=self.concurrency,
        )
        seconds = round(time.monotonic() - started, 3)
        nbytes = opened.bytes_read if opened.bytes_read is not None else opened.size
        if opened.stream is None:  # content: no progress lines were logged
            log.info("Uploaded %s into %s in %.1f s", format_bytes(nbytes or 0), where, seconds)
        return {
            "file_id": file_id,
            "file_name": file_name,
            "bytes": nbytes,
            "chunks": uploaded.chunk_count,
            "seconds": seconds,
        }

    # ------------------------------------------------------------------------------------------ assets
    def _default_alias_name(self) -> str:
        dag_id = self.dag_id if self.has_dag() else None  # type: ignore[attr-defined]
        task_id = self.task_id  # type: ignore[attr-defined]
        return f"anaplan_files__{dag_id}__{task_id}" if dag_id else f"anaplan_files__{task_id}"

    def _declare_file_assets(self, writes: Sequence[Any], reads: Sequence[Any]) -> None:
        """Add the Assets of the files written (outlets) and read (inlets) that are known now; an ``AssetAlias``
        outlet stands for written files that are only known at run time."""
        self._static_outlet_uris: set[str] = set()
        self._asset_alias: AssetAlias | None = None
        if not self.declare_assets:
            return
        ws, model = self.workspace_id, self.model_id  # type: ignore[attr-defined]
        outlets = list(self.outlets or [])  # type: ignore[has-type]
        dynamic = False
        for file in writes:
            asset = static_file_asset(ws, model, file)
            if asset is None:
                dynamic = True
                continue
            self._static_outlet_uris.add(asset.uri)
            if asset not in outlets:
                outlets.append(asset)
        if dynamic:
            alias = next((o for o in outlets if isinstance(o, AssetAlias)), None)
            if alias is None:
                alias = AssetAlias(name=self._default_alias_name())
                outlets.append(alias)
            self._asset_alias = alias
        self.outlets = outlets
        inlets = list(self.inlets or [])  # type: ignore[has-type]
        for file in reads:
            asset = static_file_asset(ws, model, file)
            if asset is not None and asset not in inlets:
                inlets.append(asset)
        self.inlets = inlets

    def _record_file_event(self, context: Context, file_id: str, extra: dict[str, Any]) -> str | None:
        """Record the asset event of a file loaded by this task (sent by Airflow when the task succeeds); its URI."""
        loc = self.loc  # type: ignore[attr-defined]
        log = self.log  # type: ignore[attr-defined]
        if not loc.workspace_id:
            log.info("No workspace id known (set workspace_id): no Asset for file %s", file_id)
            return None
        try:
            asset = anaplan_file_asset(loc.workspace_id, loc.model_id, file_id)
        except ValueError as exc:
            log.warning("No Asset for file %s: %s", file_id, exc)
            return None
        events = context.get("outlet_events") if self.declare_assets else None
        if events is not None:
            if asset.uri in self._static_outlet_uris:
                events[asset].extra.update(extra)
            elif self._asset_alias is not None:
                events[self._asset_alias].add(asset, extra=extra)
        return asset.uri


class AnaplanUploadAndImportOperator(_AnaplanFilesMixin, AnaplanBaseOperator):
    """Upload a file into a model and run the import that reads it; wait for the import's verdict.

    The source streams with bounded memory: a local path, an ``ObjectStoragePath`` (``file://``, ``s3://``, any
    fsspec backend) or a ``scheme://`` URL, or templated text/bytes (content). The import's file is the one the import
    reads (its ``importDataSourceId``) unless ``file`` is given. From the start of the upload until the import has ended
    (on the worker) or has been started (before deferring), no other task of this process writes the same file; across
    workers use a one-slot pool per file (:func:`~airflow_provider_anaplan.operators._guard.file_pool_name`).

    :param import_: the import's id (112…) or name (templated).
    :param source: what to upload (templated): a local path, an ``ObjectStoragePath``, a URL, text (a str with a line
        break) or bytes.
    :param source_kind: ``"auto"`` (default), ``"path"`` or ``"text"``: how a str ``source`` is read. With ``"auto"``
        a str with a line break is content and any other str is a location.
    :param file: the file's id (113…) or name (templated); default: the file the import reads.
    :param mapping_parameters: e.g. ``{"Version": "Actual"}`` (templated).
    :param delete_after_import: delete the uploaded content from Anaplan once the import has ended (whatever its
        verdict), e.g. for sensitive data; the file's definition stays.
    :param chunk_size: upload chunk size in bytes (default 25 MB; raised to fit Anaplan's 1000 chunks).
    :param compress: gzip the chunks (True: level 1; 0-9 a level; False: none).
    :param concurrency: chunks in flight at once (memory: about ``chunk_size * (concurrency + 1)``).
    :param encoding: the encoding text content is uploaded in.
    :param guard_timeout: seconds to wait for another task of this process that writes the same file (None: no limit).
    :param declare_assets: declare the file's Asset as an outlet (default True).

    Every parameter of :class:`AnaplanBaseOperator` applies (connection, workspace, model, ``deferrable``,
    ``poll_interval``, ``timeout``, ``fail_on``, ``dump_to``, ``locale``). The XCom value is the shared result dict
    plus ``file_id``, ``file_name``, ``upload`` (bytes, chunks, seconds; None when a retry reattached to the running
    import), ``asset_uri`` and ``deleted_after_import``.
    """

    template_fields: Sequence[str] = (
        *AnaplanBaseOperator.template_fields,
        "import_",
        "source",
        "file",
        "mapping_parameters",
    )
    action_field = "import_"
    allowed_kinds = (ObjectKind.IMPORT,)

    def __init__(
        self,
        *,
        import_: str,
        source: Any,
        source_kind: str = "auto",
        file: str | None = None,
        mapping_parameters: Mapping[str, str] | Sequence[Any] | None = None,
        delete_after_import: bool = False,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        compress: bool | int = True,
        concurrency: int = DEFAULT_CONCURRENCY,
        encoding: str = "utf-8",
        guard_timeout: float | None = None,
        declare_assets: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _check_choice("source_kind", source_kind, _SOURCE_KINDS)
        if source is None:
            raise InvalidInputError("source is required: a path, an ObjectStoragePath, a URL, text or bytes")
        self.import_ = import_
        self.source = source
        self.source_kind = source_kind
        self.file = file
        self.mapping_parameters = mapping_parameters
        self.delete_after_import = check_flag("delete_after_import", delete_after_import)
        _check_transfer(self, chunk_size=chunk_size, compress=compress, concurrency=concurrency, encoding=encoding)
        self.guard_timeout = _check_guard_timeout(guard_timeout)
        self.declare_assets = check_flag("declare_assets", declare_assets)
        self._file_id: str | None = None
        self._file_name: str | None = None
        self._upload: dict[str, Any] | None = None
        self._declare_file_assets([file], [])

    def _files_written(self) -> list[str]:
        return [self._file_id] if self._file_id else []

    def check_rendered(self) -> None:
        super().check_rendered()
        _check_source("source", self.source)
        check_ref("file", self.file, "a file id (113…) or name", optional=True)

    async def aresolve(self, client: AnaplanClient, context: Context) -> None:
        await super().aresolve(client, context)
        loc = self.loc
        if self.file:
            with naming("file"):
                found = await client.find_file(loc.model_id, self.file, loc.workspace_id)
            if found.id.startswith("116"):
                raise InvalidInputError(
                    f"file: {self.file!r} is an export's output file; give an import's source file (113…), or leave "
                    "file unset to upload into the file the import reads"
                )
        else:
            listed = await client.find_import(loc.model_id, loc.action_id, loc.workspace_id)
            loc.action_name = loc.action_name or listed.name
            file_id = listed.import_data_source_id or (
                listed.import_data_source.import_data_source_id if listed.import_data_source else None
            )
            if not file_id:
                raise InvalidInputError(
                    f"Import {loc.describe()} does not read a file (it imports from another model): run it with "
                    "AnaplanRunActionOperator."
                )
            found = await client.find_file(loc.model_id, file_id, loc.workspace_id)
        self._file_id, self._file_name = found.id, found.name

    async def astart(self, client: AnaplanClient, context: Context) -> str:
        assert self._file_id is not None
        self._upload = await self._aupload(client, self._file_id, self._file_name, self.source)
        return await super().astart(client, context)

    def echo_state(self) -> dict[str, Any]:
        return {**super().echo_state(), "file_id": self._file_id, "file_name": self._file_name, "upload": self._upload}

    def restore_echo(self, echo: Mapping[str, Any]) -> None:
        super().restore_echo(echo)
        self._file_id, self._file_name = echo.get("file_id"), echo.get("file_name")
        self._upload = echo.get("upload")

    async def afinish(self, client: AnaplanClient, context: Context, outcome: TaskOutcome) -> dict[str, Any]:
        loc = self.loc
        file_id = self._file_id or ""
        deleted = False
        if self.delete_after_import and file_id:
            try:
                await client.delete_file(loc.model_id, file_id, workspace_id=loc.workspace_id)
            except Exception as exc:  # the import's verdict matters more than the clean-up
                self.log.warning("Could not delete the content of file %s after the import: %s", file_id, exc)
            else:
                deleted = True
                self.log.info("Deleted the uploaded content of file %s (delete_after_import)", file_id)
        extra = {"anaplan_task_id": outcome.task_id, "import_id": loc.action_id, "rows_loaded": _loaded(outcome)}
        uri = self._record_file_event(context, file_id, extra) if file_id else None
        return {
            "file_id": self._file_id,
            "file_name": self._file_name,
            "upload": self._upload,
            "asset_uri": uri,
            "deleted_after_import": deleted,
        }


class AnaplanExportAndDownloadOperator(_AnaplanFilesMixin, AnaplanBaseOperator):
    """Run an export and stream its file into a local path or an ``ObjectStoragePath``; returns path, size and rows.

    The download goes through a temporary name (or an object store upload committed at the end), so a failed
    transfer never leaves a truncated file. Rows are counted as CSV records while streaming (minus ``header_rows``).

    :param export: the export's id (116…) or name (templated).
    :param destination: where the file goes (templated): a local path, an ``ObjectStoragePath`` or a URL; a directory
        (existing, or ending with ``/``) gets the export's name.
    :param count_rows: count CSV rows (None: for ``.csv``, ``.tsv`` and ``.txt`` names).
    :param header_rows: header lines left out of ``row_count``.
    :param declare_assets: declare the export's file as an inlet Asset (when its ids are literal; default True).

    Every parameter of :class:`AnaplanBaseOperator` applies. The XCom value is the shared result dict plus ``path``,
    ``size`` (bytes), ``row_count``, ``file_id`` and ``download_seconds``. An export that failed downloads nothing.
    """

    template_fields: Sequence[str] = (*AnaplanBaseOperator.template_fields, "export", "destination")
    action_field = "export"
    allowed_kinds = (ObjectKind.EXPORT,)

    def __init__(
        self,
        *,
        export: str,
        destination: Any,
        count_rows: bool | None = None,
        header_rows: int = 1,
        declare_assets: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if destination is None or destination == "":
            raise InvalidInputError("destination is required: a local path, an ObjectStoragePath or a URL")
        check_location("destination", destination)
        if not isinstance(header_rows, int) or isinstance(header_rows, bool) or header_rows < 0:
            raise InvalidInputError(f"header_rows must be an integer >= 0, got {header_rows!r}")
        self.export = export
        self.destination = destination
        self.count_rows = check_flag("count_rows", count_rows, optional=True)
        self.header_rows = header_rows
        self.declare_assets = check_flag("declare_assets", declare_assets)
        self.guard_timeout = None
        self._declare_file_assets([], [export])

    def check_rendered(self) -> None:
        super().check_rendered()
        check_location("destination", self.destination, writable=True)

    async def aresolve(self, client: AnaplanClient, context: Context) -> None:
        await super().aresolve(client, context)
        loc = self.loc
        if loc.action_name is None:
            loc.action_name = (await client.find_export(loc.model_id, loc.action_id, loc.workspace_id)).name

    async def afinish(self, client: AnaplanClient, context: Context, outcome: TaskOutcome) -> dict[str, Any]:
        if not outcome.ok:
            return {}
        loc = self.loc
        with naming("destination"):
            written = await adownload_to(
                client,
                loc.model_id,
                loc.action_id,
                self.destination,
                workspace_id=loc.workspace_id,
                default_name=loc.action_name or f"{loc.action_id}.csv",
                count_rows=self.count_rows,
                header_rows=self.header_rows,
                logger=self.log,
            )
        rows = f", {written.rows} row(s)" if written.rows is not None else ""
        self.log.info("Downloaded %s%s to %s", format_bytes(written.bytes), rows, written.path)
        return {
            "file_id": loc.action_id,
            "path": written.path,
            "size": written.bytes,
            "row_count": written.rows,
            "download_seconds": written.seconds,
        }


def _loaded(outcome: TaskOutcome) -> int | None:
    value = (getattr(outcome, "counts", None) or {}).get("successRowCount")
    return int(value) if isinstance(value, int) else None


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
        if solution_log_to is not None:
            check_location("solution_log_to", solution_log_to)
        self.solution_log_to = solution_log_to
        self._action_type: str | None = None

    def check_rendered(self) -> None:
        super().check_rendered()
        if self.solution_log_to is not None:
            check_location("solution_log_to", self.solution_log_to, writable=True)

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
        with naming("solution_log_to"):
            written = await write_stream(
                _one_chunk(text.encode("utf-8")),
                self.solution_log_to,
                default_name=f"solution_log_{outcome.task_id}.txt",
                count_rows=False,
                progress=False,
            )
        self.log.info("Solution log saved to %s", written.path)
        return {"solution_log_path": written.path}


class AnaplanRunProcessOperator(_AnaplanFilesMixin, AnaplanBaseOperator):
    """Run a process (its imports, exports and actions, in order) and report every step's outcome; optionally upload
    the files its imports read before, and download the files its exports wrote after.

    Each step's verdict and row counts go to the log and to the XCom result (``steps``); the failure dumps of the
    steps that rejected rows are fetched, summarised in the log and saved to ``dump_to`` (one file per step: in a
    directory ``anaplan_dump_<task id>_<step id>.csv``; a file name gets ``_<step id>`` when several steps left one,
    unless it holds placeholders such as ``{step}`` or ``{object_name}``).

    :param process: the process's id (118…) or name (templated).
    :param mapping_parameters: e.g. ``{"Version": "Actual"}`` for the process's imports (templated).
    :param uploads: ``{file id or name: source}`` uploaded, one after the other, before the process starts
        (templated values); a source is what :class:`AnaplanUploadAndImportOperator` takes. Each file is guarded
        like that operator's, and declared as an outlet Asset.
    :param downloads: ``{export id or name: destination}`` downloaded after the process succeeded (templated
        values); a destination is what :class:`AnaplanExportAndDownloadOperator` takes. Each export's file is declared
        as an inlet Asset.
    :param source_kind: how str sources are read (``"auto"``, ``"path"``, ``"text"``).
    :param chunk_size: upload chunk size in bytes.
    :param compress: gzip the upload chunks.
    :param concurrency: upload chunks in flight at once.
    :param encoding: the encoding text content is uploaded in.
    :param guard_timeout: seconds to wait for another task of this process that writes one of the files.
    :param count_rows: count CSV rows of downloads (None: by file name suffix).
    :param header_rows: header lines left out of a download's ``row_count``.
    :param declare_assets: declare the files' Assets (default True).

    Every parameter of :class:`AnaplanBaseOperator` applies (connection, workspace, model, ``deferrable``,
    ``poll_interval``, ``timeout``, ``fail_on``, ``dump_to``, ``locale``). Use ``deferrable=True`` with a running
    triggerer to free the worker slot while Anaplan works. With ``uploads``/``downloads`` the XCom value also has
    ``uploads`` (file id, name, bytes, chunks, seconds, asset_uri) and ``downloads`` (export id, name, path, size,
    row_count).
    """

    template_fields: Sequence[str] = (
        *AnaplanBaseOperator.template_fields,
        "process",
        "mapping_parameters",
        "uploads",
        "downloads",
    )
    action_field = "process"
    allowed_kinds = (ObjectKind.PROCESS,)

    def __init__(
        self,
        *,
        process: str,
        mapping_parameters: Mapping[str, str] | Sequence[Any] | None = None,
        uploads: Mapping[str, Any] | None = None,
        downloads: Mapping[str, Any] | None = None,
        source_kind: str = "auto",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        compress: bool | int = True,
        concurrency: int = DEFAULT_CONCURRENCY,
        encoding: str = "utf-8",
        guard_timeout: float | None = None,
        count_rows: bool | None = None,
        header_rows: int = 1,
        declare_assets: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, value in (("uploads", uploads), ("downloads", downloads)):
            if value is not None and (
                not isinstance(value, Mapping) or not all(isinstance(k, str) and k for k in value)
            ):
                raise InvalidInputError(f"{name} must be a dict keyed by ids or names, got {value!r}")
        _check_choice("source_kind", source_kind, _SOURCE_KINDS)
        if not isinstance(header_rows, int) or isinstance(header_rows, bool) or header_rows < 0:
            raise InvalidInputError(f"header_rows must be an integer >= 0, got {header_rows!r}")
        self.process = process
        self.mapping_parameters = mapping_parameters
        self.uploads = dict(uploads) if uploads else None
        self.downloads = dict(downloads) if downloads else None
        for key, destination in (self.downloads or {}).items():
            check_location(f"downloads[{key!r}]", destination)
        self.source_kind = source_kind
        _check_transfer(self, chunk_size=chunk_size, compress=compress, concurrency=concurrency, encoding=encoding)
        self.guard_timeout = _check_guard_timeout(guard_timeout)
        self.count_rows = check_flag("count_rows", count_rows, optional=True)
        self.header_rows = header_rows
        self.declare_assets = check_flag("declare_assets", declare_assets)
        # Per try: the files and exports resolved to ids ({"key", "file_id"/"export_id", "name"}), upload results.
        self._upload_files: list[dict[str, Any]] = []
        self._download_exports: list[dict[str, Any]] = []
        self._upload_results: list[dict[str, Any]] = []
        self._declare_file_assets(list(uploads or {}), list(downloads or {}))

    def _files_written(self) -> list[str]:
        return [item["file_id"] for item in self._upload_files]

    def check_rendered(self) -> None:
        super().check_rendered()
        for key, source in (self.uploads or {}).items():
            _check_source(f"uploads[{key!r}]", source)
        for key, destination in (self.downloads or {}).items():
            check_location(f"downloads[{key!r}]", destination, writable=True)

    async def aresolve(self, client: AnaplanClient, context: Context) -> None:
        await super().aresolve(client, context)
        loc = self.loc
        self._upload_files, self._download_exports, self._upload_results = [], [], []
        for key in self.uploads or {}:
            with naming("uploads"):
                found = await client.find_file(loc.model_id, key, loc.workspace_id)
            if found.id.startswith("116"):
                raise InvalidInputError(f"uploads: {key!r} is an export's file; upload to an import's file (113…)")
            if any(item["file_id"] == found.id for item in self._upload_files):
                raise InvalidInputError(f"uploads: file {found.id} ({found.name}) is named twice")
            self._upload_files.append({"key": key, "file_id": found.id, "name": found.name})
        for key in self.downloads or {}:
            with naming("downloads"):
                export = await client.find_export(loc.model_id, key, loc.workspace_id)
            self._download_exports.append({"key": key, "export_id": export.id, "name": export.name})

    async def astart(self, client: AnaplanClient, context: Context) -> str:
        uploads = self.uploads or {}
        for item in self._upload_files:
            key = item["key"]
            result = await self._aupload(client, item["file_id"], item["name"], uploads[key], f"uploads[{key!r}]")
            self._upload_results.append(result)
        return await super().astart(client, context)

    def echo_state(self) -> dict[str, Any]:
        return {
            **super().echo_state(),
            "upload_files": self._upload_files,
            "upload_results": self._upload_results,
            "download_exports": self._download_exports,
        }

    def restore_echo(self, echo: Mapping[str, Any]) -> None:
        super().restore_echo(echo)
        self._upload_files = list(echo.get("upload_files") or [])
        self._upload_results = list(echo.get("upload_results") or [])
        self._download_exports = list(echo.get("download_exports") or [])

    async def afinish(self, client: AnaplanClient, context: Context, outcome: TaskOutcome) -> dict[str, Any]:
        if not outcome.steps:
            self.log.info("The process reported no steps")
        for step in outcome.steps:
            rows = ", ".join(f"{key} {value}" for key, value in sorted(step.counts.items())) or "no row counts"
            report = self.log.info if step.status.value == "success" else self.log.warning
            report("  %s: %s (%s)", step.describe(), step.status.value, rows)
        extra: dict[str, Any] = {}
        if self._upload_files:
            done = {result["file_id"]: result for result in self._upload_results}
            uploads = []
            for item in self._upload_files:
                file_id = item["file_id"]
                event = {"anaplan_task_id": outcome.task_id, "process_id": self.loc.action_id}
                uri = self._record_file_event(context, file_id, event)
                uploads.append({**done.get(file_id, {"file_id": file_id, "file_name": item["name"]}), "asset_uri": uri})
            extra["uploads"] = uploads
        if self._download_exports:
            extra["downloads"] = await self._adownload_all(client, outcome)
        return extra

    async def _adownload_all(self, client: AnaplanClient, outcome: TaskOutcome) -> list[dict[str, Any]]:
        if not outcome.ok:
            self.log.warning("The process did not succeed: its exports' files are not downloaded")
            return []
        loc = self.loc
        destinations = self.downloads or {}
        downloads = []
        for item in self._download_exports:
            with naming(f"downloads[{item['key']!r}]"):
                written = await adownload_to(
                    client,
                    loc.model_id,
                    item["export_id"],
                    destinations[item["key"]],
                    workspace_id=loc.workspace_id,
                    default_name=item["name"] or f"{item['export_id']}.csv",
                    count_rows=self.count_rows,
                    header_rows=self.header_rows,
                    logger=self.log,
                )
            rows = f", {written.rows} row(s)" if written.rows is not None else ""
            self.log.info("Downloaded %s (%s%s) to %s", item["name"], format_bytes(written.bytes), rows, written.path)
            downloads.append(
                {
                    "export_id": item["export_id"],
                    "name": item["name"],
                    "path": written.path,
                    "size": written.bytes,
                    "row_count": written.rows,
                }
            )
        return downloads


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


__all__ = [
    "AnaplanExportAndDownloadOperator",
    "AnaplanRunActionOperator",
    "AnaplanRunProcessOperator",
    "AnaplanUploadAndImportOperator",
    "static_file_asset",
]
